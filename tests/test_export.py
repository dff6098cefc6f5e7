"""The inference fast path computes what the dygraph model computes: exported Paddle Inference predictor (oneDNN)
and ONNX Runtime against dygraph on a tiny model, with padding, length bucketing and several heads."""
import json

import numpy as np
import pytest

import paddle_electra  # noqa: F401  (environment first)
import paddle

from paddle_electra import preset
from paddle_electra.errors import ConfigError, WeightsError
from paddle_electra.export import (DygraphRunner, GatedRunner, InferenceRunner, OnnxRunner, export_for_inference,
                                   length_buckets, pad_rows, predict_bucketed, quantize_onnx, read_manifest)
from paddle_electra.modeling import ElectraForQuestionAnswering, ElectraForSequenceClassification

ATOL = 1e-4


def _batch(rng, batch, length, vocab):
    ids = rng.integers(5, vocab, size=(batch, length)).astype(np.int64)
    types = np.zeros_like(ids)
    types[:, length // 2:] = 1
    mask = np.ones_like(ids)
    for row in range(1, batch):  # ragged: row r keeps length - 2r real tokens
        cut = max(2, length - 2 * row)
        ids[row, cut:], types[row, cut:], mask[row, cut:] = 0, 0, 0
    return ids, types, mask


@pytest.fixture(scope="module")
def seqcls_export(tmp_path_factory):
    paddle.seed(7)
    model = ElectraForSequenceClassification(preset("tiny"), num_labels=3)
    model.train()  # export must switch to eval itself and restore the mode
    out = tmp_path_factory.mktemp("export")
    paths = export_for_inference(model, out, onnx=True)
    return model, out, paths


def test_export_files_and_model_restored(seqcls_export):
    model, out, paths = seqcls_export
    assert model.training  # mode restored
    assert "forward" not in model.__dict__  # to_static's in-place forward replacement undone
    manifest = read_manifest(out)
    assert manifest["inputs"] == ["input_ids", "token_type_ids", "attention_mask"]
    assert manifest["num_labels"] == 3 and manifest["model_class"] == "ElectraForSequenceClassification"
    for key in ("model", "params", "onnx", "manifest"):
        assert paths[key].startswith(str(out))
    assert not [p for p in out.iterdir() if p.name.startswith(".export-")]


@pytest.mark.parametrize("batch,length", [(1, 7), (4, 33), (3, 128)])
def test_predictor_and_onnx_match_dygraph(seqcls_export, batch, length):
    model, out, _ = seqcls_export
    arrays = _batch(np.random.default_rng(length), batch, length, model.config.vocab_size)
    reference = DygraphRunner(model)(*arrays)
    model.train()
    for runner in (InferenceRunner(out, num_threads=1), InferenceRunner(out, use_onednn=False),
                   OnnxRunner(out, num_threads=1)):
        got = runner(*arrays)
        assert got.shape == (batch, 3)
        np.testing.assert_allclose(got, reference, atol=ATOL, rtol=1e-4)
    # padding must not leak into the [CLS] logits: a row alone, unpadded, gives the same result
    last = arrays[2][-1].sum()
    alone = InferenceRunner(out, num_threads=1)(*(a[-1:, :last] for a in arrays))
    np.testing.assert_allclose(alone, reference[-1:], atol=ATOL, rtol=1e-4)


def test_bucketed_prediction_keeps_order(seqcls_export):
    model, out, _ = seqcls_export
    rng = np.random.default_rng(3)
    lengths = rng.integers(3, 60, size=23)
    encodings = {"input_ids": [list(rng.integers(5, 99, size=n)) for n in lengths],
                 "token_type_ids": [[0] * n for n in lengths], "attention_mask": [[1] * n for n in lengths]}
    one_by_one = np.concatenate([DygraphRunner(model)(*(np.array([encodings[k][i]]) for k in encodings))
                                 for i in range(len(lengths))])
    bucketed = predict_bucketed(InferenceRunner(out, num_threads=1), encodings, batch_size=5)
    np.testing.assert_allclose(bucketed, one_by_one, atol=ATOL, rtol=1e-4)
    unsorted = predict_bucketed(OnnxRunner(out, num_threads=1), encodings, batch_size=5, bucket=False)
    np.testing.assert_allclose(unsorted, one_by_one, atol=ATOL, rtol=1e-4)
    model.train()


def test_two_output_model(tmp_path):
    paddle.seed(1)
    model = ElectraForQuestionAnswering(preset("tiny"))
    export_for_inference(model, tmp_path)
    arrays = _batch(np.random.default_rng(0), 2, 19, model.config.vocab_size)
    start, end = DygraphRunner(model)(*arrays)
    got_start, got_end = InferenceRunner(tmp_path, num_threads=1)(*arrays)
    np.testing.assert_allclose(got_start, start, atol=ATOL, rtol=1e-4)
    np.testing.assert_allclose(got_end, end, atol=ATOL, rtol=1e-4)


def test_bf16_predictor_is_close(seqcls_export):
    model, out, _ = seqcls_export
    from paddle_electra.export import bf16_supported
    if not bf16_supported():
        with pytest.raises(ConfigError, match="bfloat16"):
            InferenceRunner(out, precision="bf16")
        return
    arrays = _batch(np.random.default_rng(5), 4, 40, model.config.vocab_size)
    reference = InferenceRunner(out, num_threads=1)(*arrays)
    got = InferenceRunner(out, num_threads=1, precision="bf16")(*arrays)
    assert np.abs(got - reference).max() < 0.1  # bf16 keeps 8 bits of mantissa
    with pytest.raises(ConfigError, match="precision"):
        InferenceRunner(out, precision="fp16")


def test_int8_model_quantizes_every_weight_matmul_and_stays_close(seqcls_export, tmp_path):
    """paddle2onnx keeps weights in Constant nodes; quantize_onnx must still find every weight matrix (one per
    nn.Linear: fused QKV, attention output, the FFN's two, the head), leave attention's two activation-by-activation
    matmuls per layer in fp32, and compute nearly what fp32 does."""
    onnx = pytest.importorskip("onnx")
    model, out, _ = seqcls_export
    path = quantize_onnx(out, tmp_path / "int8.onnx")
    ops = [node.op_type for node in onnx.load(path).graph.node]
    layers = model.config.num_hidden_layers
    assert ops.count("MatMulInteger") == sum(isinstance(m, paddle.nn.Linear) for m in model.sublayers())
    assert ops.count("MatMul") == 2 * layers and "Constant" not in ops
    assert ops.count("DynamicQuantizeLinear") == ops.count("MatMulInteger")
    arrays = _batch(np.random.default_rng(11), 4, 40, model.config.vocab_size)
    reference = OnnxRunner(out, num_threads=1)(*arrays)
    got = OnnxRunner(path, num_threads=1)(*arrays)
    scale = np.abs(reference).max()
    assert 0 < np.abs(got - reference).max() < 0.05 * scale  # quantized (not equal), yet close
    with pytest.raises(ConfigError, match="precision"):
        OnnxRunner(out, precision="int4")


def _fake(outputs):
    calls = []

    def run(*arrays):
        calls.append(len(arrays[0]))
        return outputs(*arrays)
    run.calls = calls
    return run


def test_gated_runner_switches_to_int8_only_after_agreeing():
    ids = np.ones((8, 5), np.int64)
    mask = np.ones_like(ids)
    mask[:, 3:] = 0  # padding: a disagreement there does not count
    fp32 = _fake(lambda *a: np.tile([[0.0, 1.0]], (len(a[0]), 5, 1)))
    padded_only = _fake(lambda *a: np.where(a[2][..., None] == 1, [0.0, 1.0], [1.0, 0.0]))
    chosen = []
    gate = GatedRunner(fp32, padded_only, check_rows=16, min_agreement=0.99, on_choice=lambda *c: chosen.append(c))
    first = gate(ids, ids, mask)
    np.testing.assert_array_equal(first, fp32(ids, ids, mask))  # while checking, fp32's outputs come back
    assert gate.choice is None
    gate(ids, ids, mask)
    assert gate.choice == "int8" and chosen == [("int8", 1.0, 16 * 3, 16)]
    gate(ids, ids, mask)
    assert len(padded_only.calls) == 3 and len(fp32.calls) == 2 + 1  # the test's own call above counts once

    wrong = _fake(lambda *a: np.tile([[1.0, 0.0]], (len(a[0]), 5, 1)) if a[0][0, 0] == 2 else fp32(*a))
    gate = GatedRunner(fp32, wrong, check_rows=16, min_agreement=0.99)
    gate(ids, ids, mask)
    gate(ids * 2, ids, mask)  # half the rows disagree
    assert gate.choice == "fp32" and gate.agreement == 0.5
    calls = len(wrong.calls)
    gate(ids, ids, mask)
    assert len(wrong.calls) == calls


def test_damaged_export_is_refused(seqcls_export, tmp_path):
    """The export's manifest.json (fileio's format) covers every file it wrote: a truncated weights file is refused by
    name before a predictor loads it."""
    import shutil
    _, out, _ = seqcls_export
    copy = tmp_path / "export"
    shutil.copytree(out, copy)
    params = copy / "inference.pdiparams"
    params.write_bytes(params.read_bytes()[:-10])
    with pytest.raises(WeightsError, match="inference.pdiparams"):
        InferenceRunner(copy)
    assert set(read_manifest(out)["files"]) >= {"inference.json", "inference.pdiparams", "model.onnx"}


def test_incomplete_export_is_refused(tmp_path):
    with pytest.raises(WeightsError, match="manifest.json"):
        InferenceRunner(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other", "files": {}}))
    with pytest.raises(WeightsError, match="format"):
        read_manifest(tmp_path)
    with pytest.raises(WeightsError, match="ONNX model not found"):
        OnnxRunner(tmp_path)


def test_bucketing_helpers():
    batches = length_buckets([5, 1, 4, 1, 9], 2)
    assert [b.tolist() for b in batches] == [[1, 3], [2, 0], [4]]
    padded = pad_rows([[1, 2, 3], [4]], pad_id=0, multiple=4)
    assert padded.tolist() == [[1, 2, 3, 0], [4, 0, 0, 0]] and padded.dtype == np.int64
