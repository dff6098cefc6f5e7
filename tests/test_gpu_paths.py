"""The GPU-path defects of issue 16, each guarded on CPU where the logic allows (shapes, state round trips, the order
of calls); the GPU run itself is `bench/gpu_pretrain.py` and the fused-attention check below, on a lent GPU.

1. Fused attention gets the padding mask as [B, 1, L, L] (Paddle's flash kernel steps mask rows by the key length
   and reads a [B, 1, 1, L] mask out of bounds; the memory-efficient kernel rejects it).
2. pretrain/evaluate.py runs every model call under the run's autocast (a bf16 run once took the fp32 fused path).
3. fp16 with fleet: the optimizer object unscaled is the object stepped (GradScaler tracks unscaling per object).
4. The fp16 GradScaler state survives a checkpoint round trip (`scale` stays a 1-element array).
5. bench/gpu_pretrain.py: every side gets the same padded batch and pre-drawn masks (smoke run on CPU).
6. The hub module's GPU inference uses the selected GPU, not CUDAPlace(0).
"""
import contextlib
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from paddle_electra import modeling
from paddle_electra.config import ElectraConfig
from paddle_electra.modeling import ElectraModel
from paddle_electra.pretraining import ElectraForPretraining

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = ElectraConfig(vocab_size=60, hidden_size=16, embedding_size=16, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def padded_batch():
    ids = np.array([[1, 7, 8, 9, 10, 11, 2], [1, 12, 13, 2, 0, 0, 0], [1, 14, 2, 0, 0, 0, 0]], dtype=np.int64)
    return paddle.to_tensor(ids), paddle.to_tensor((ids != 0).astype(np.int64))


# 1 ------------------------------------------------------------------------------------------------------------------
def test_fused_attention_gets_a_query_by_key_mask_and_equals_the_plain_path(monkeypatch):
    paddle.seed(3)
    model = ElectraModel(CONFIG)
    model.eval()
    ids, mask = padded_batch()
    plain = model(ids, attention_mask=mask).last_hidden_state.numpy()

    seen = []
    real_sdpa = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kwargs):
        seen.append(list(attn_mask.shape))
        return real_sdpa(q, k, v, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(modeling, "use_fused_attention", lambda x: True)  # the GPU branch, run on CPU
    monkeypatch.setattr(modeling.F, "scaled_dot_product_attention", spy)
    fused = model(ids, attention_mask=mask).last_hidden_state.numpy()
    assert seen == [[3, 1, 7, 7]] * CONFIG.num_hidden_layers
    real = mask.numpy().astype(bool)
    np.testing.assert_allclose(fused[real], plain[real], rtol=1e-5, atol=1e-5)


def test_fused_attention_mask_is_dense_whatever_the_stride_flag():
    additive = (1.0 - padded_batch()[1].astype("float32")).unsqueeze([1, 2]) * -10000.0
    expanded = modeling.fused_attention_mask(additive, 7, paddle.float32)
    assert expanded.shape == [3, 1, 7, 7] and expanded.is_contiguous()
    np.testing.assert_array_equal(expanded.numpy(), np.broadcast_to(additive.numpy(), [3, 1, 7, 7]))


# 2 ------------------------------------------------------------------------------------------------------------------
def test_evaluate_runs_every_model_call_under_the_runs_autocast(monkeypatch, tmp_path):
    from conftest import small_pd_dataset
    from pretrain.dataset import PretrainingDataset
    from pretrain.evaluate import evaluate
    data = PretrainingDataset(small_pd_dataset(tmp_path, articles=20, vocab_size=500))
    tok = data.tokenizer()
    cfg = CONFIG.replace(vocab_size=data.vocab_size)
    model = ElectraForPretraining(cfg, cfg.replace(hidden_size=8, num_attention_heads=1, intermediate_size=16),
                                  tok.special_token_ids, tok.mask_token_id)

    depth, calls = [0], []
    real_auto_cast = paddle.amp.auto_cast

    @contextlib.contextmanager
    def recording_auto_cast(*args, **kwargs):
        with real_auto_cast(*args, **kwargs):
            depth[0] += 1
            try:
                yield
            finally:
                depth[0] -= 1

    monkeypatch.setattr(paddle.amp, "auto_cast", recording_auto_cast)
    for part in (model.generator, model.discriminator):
        part.register_forward_pre_hook(lambda layer, inputs: calls.append((type(layer).__name__, depth[0])))
    evaluate(model, data, unigram_id=5, batch_size=4, num_batches=2, amp="bfloat16")
    assert len(calls) == 4 and all(inside == 1 for _, inside in calls), calls


# 3 ------------------------------------------------------------------------------------------------------------------
def test_fp16_update_unscales_the_optimizer_it_steps(monkeypatch):
    from pretrain import train as train_module
    events = []

    class Scaler:
        def unscale_(self, optimizer):
            events.append(("unscale_", optimizer))

        def step(self, optimizer):
            events.append(("step", optimizer))

        def update(self):
            events.append(("update", None))

    fleet_optimizer = object()  # e.g. a wrapper such as fleet.distributed_optimizer around the inner optimizer
    monkeypatch.setattr(train_module, "global_grad_norm", lambda params: events.append(("norm", None)) or 1.5)
    assert train_module.apply_update(fleet_optimizer, Scaler(), []) == 1.5
    assert events == [("unscale_", fleet_optimizer), ("norm", None), ("step", fleet_optimizer), ("update", None)]


# 4 ------------------------------------------------------------------------------------------------------------------
def enabled_grad_scaler(monkeypatch, **kwargs):
    """A GradScaler that is enabled although this is a CPU (Paddle turns it off outside GPU/XPU places)."""
    import paddle.amp.grad_scaler as grad_scaler

    class GpuPlace:
        def is_gpu_place(self):
            return True

    class Tracer:
        _expected_place = GpuPlace()

    with monkeypatch.context() as patch:
        patch.setattr(grad_scaler, "_dygraph_tracer", lambda: Tracer())
        scaler = paddle.amp.GradScaler(**kwargs)
    assert scaler.state_dict()
    return scaler


def test_fp16_scaler_state_survives_a_checkpoint_round_trip(monkeypatch, tmp_path):
    from paddle_electra.optim import build_optimizer, linear_warmup_decay
    from pretrain.checkpoint import load_checkpoint, save_checkpoint
    paddle.seed(1)
    model = ElectraModel(CONFIG)
    schedule = linear_warmup_decay(1e-3, 2, 10)
    optimizer = build_optimizer(model, schedule)
    scaler = enabled_grad_scaler(monkeypatch, init_loss_scaling=2.0 ** 15, incr_every_n_steps=500)
    scaler._scale = paddle.to_tensor(np.array([4096.0], dtype=np.float32))  # after some overflow steps
    scaler._incr_count, scaler._decr_count = 37, 1
    path = save_checkpoint(str(tmp_path / "checkpoints"), 5, model, optimizer, schedule, {"step": 5}, scaler=scaler)
    saved = json.loads(open(os.path.join(path, "trainer_state.json"), encoding="utf-8").read())["scaler"]
    assert saved["scale"] == [4096.0]

    restored = enabled_grad_scaler(monkeypatch)
    load_checkpoint(path, model, optimizer, schedule, scaler=restored)
    got, want = restored.state_dict(), scaler.state_dict()
    assert sorted(got) == sorted(want)
    np.testing.assert_array_equal(got.pop("scale"), want.pop("scale"))
    assert got == want

    # a checkpoint written before the fix holds the scale as a bare float: it loads too
    state_file = os.path.join(path, "trainer_state.json")
    state = json.loads(open(state_file, encoding="utf-8").read())
    state["scaler"]["scale"] = 2048.0
    with open(state_file, "w", encoding="utf-8") as f:
        json.dump(state, f)
    legacy = enabled_grad_scaler(monkeypatch)
    load_checkpoint(path, model, scaler=legacy, verify=False)
    assert float(legacy.state_dict()["scale"][0]) == 2048.0


# 5 ------------------------------------------------------------------------------------------------------------------
def test_gpu_bench_does_the_same_work_on_every_side():
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    try:
        import gpu_pretrain
    finally:
        sys.path.pop(0)
    ids, mask = gpu_pretrain.batch_arrays(16, 32, 500)
    assert mask.all(axis=1).any() and not mask.all(), "a padded batch: some rows shorter than the longest"
    assert (ids[mask == 0] == gpu_pretrain.PAD).all()
    masked, chosen = gpu_pretrain.mask_numpy(ids, mask, np.random.default_rng(0))
    assert not chosen[mask == 0].any() and not np.isin(ids[chosen], gpu_pretrain.SPECIAL).any()
    lengths = mask.sum(1) - 2  # real non-special tokens per row
    np.testing.assert_array_equal(chosen.sum(1), np.maximum(1, np.round(lengths * 0.15)).astype(int))
    done = subprocess.run([sys.executable, "bench/gpu_pretrain.py", "--device", "cpu", "--sizes", "tiny", "--batch",
                           "4", "--seq-len", "32", "--steps", "2", "--warmup", "1", "--impls", "ours,hf"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| tiny |")]
    assert len(rows) == 2 and not any("failed" in row for row in rows), done.stdout[-2000:]


# 6 ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("current, expected", [("gpu:1", 1), ("gpu:0", 0), ("cpu", 0)])
def test_hub_module_infers_on_the_selected_gpu(monkeypatch, current, expected):
    from paddle_electra.hub.module import ElectraHubModule
    device = {"now": current}
    monkeypatch.setattr(paddle, "is_compiled_with_cuda", lambda: True)
    monkeypatch.setattr(paddle.device.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(paddle.device, "get_device", lambda: device["now"])
    monkeypatch.setattr(paddle, "set_device", lambda name: device.update(now="gpu:0" if name == "gpu" else name))
    monkeypatch.setattr(paddle, "CUDAPlace", lambda index: f"Place(gpu:{index})")
    moved = []

    class Holder:  # just what _use_device touches: no parameters, so nothing moves
        def parameters(self):
            return iter(())

        def to(self, device):
            moved.append(device)

    assert ElectraHubModule._use_device(Holder(), True) == f"Place(gpu:{expected})"
    assert device["now"] == (current if current.startswith("gpu") else "gpu:0")
    assert moved == []


def gpu_available() -> bool:
    return paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


@pytest.mark.skipif(not gpu_available(), reason="needs a CUDA GPU (run where one is lent)")
@pytest.mark.parametrize("amp", ["bfloat16", None])
def test_on_gpu_the_fused_path_equals_the_plain_path_on_a_padded_batch(amp):
    """The real kernels (flash / memory-efficient attention), padded rows included, against the plain path that
    output_attentions selects; bf16 tolerance under autocast."""
    paddle.set_device("gpu")
    try:
        paddle.seed(3)
        model = ElectraModel(CONFIG.replace(hidden_size=64, num_attention_heads=2, intermediate_size=128,
                                            embedding_size=64))
        model.eval()
        ids = np.random.default_rng(0).integers(5, 60, size=(4, 40))
        lengths = [40, 33, 17, 5]
        for row, n in enumerate(lengths):
            ids[row, n:] = 0
        ids_t, mask = paddle.to_tensor(ids), paddle.to_tensor((ids != 0).astype(np.int64))
        with paddle.amp.auto_cast(enable=amp is not None, dtype=amp or "float16", level="O1"):
            fused = model(ids_t, attention_mask=mask).last_hidden_state.astype("float32").numpy()
            plain = model(ids_t, attention_mask=mask, output_attentions=True).last_hidden_state
            plain = plain.astype("float32").numpy()
        assert np.isfinite(fused).all()
        real = ids != 0
        tolerance = 3e-2 if amp else 1e-4
        np.testing.assert_allclose(fused[real], plain[real], rtol=tolerance, atol=tolerance)
    finally:
        paddle.set_device("cpu")
