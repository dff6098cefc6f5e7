"""Shapes of every head, save/load, sharing, and strict loading on a tiny config."""
import json

import numpy as np
import paddle
import pytest

from paddle_electra import (ElectraConfig, ElectraDiscriminator, ElectraEncoder, ElectraForPretraining,
                            ElectraForQuestionAnswering, ElectraForSequenceClassification,
                            ElectraForTextMatching, ElectraForTokenClassification, ElectraGenerator, WeightsError)
from paddle_electra.weights import WEIGHTS_NAME, load_safetensors

TINY = ElectraConfig(vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=37, max_position_embeddings=64)


def inputs(batch=3, length=11, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 99, size=(batch, length))
    mask = np.ones_like(ids)
    mask[-1, length - 4:] = 0
    ids[mask == 0] = 0
    return paddle.to_tensor(ids), paddle.zeros([batch, length], dtype="int64"), paddle.to_tensor(mask)


@pytest.mark.parametrize("batch", [1, 3])
def test_head_shapes_keep_rank_at_any_batch(batch):
    paddle.seed(0)
    ids, types, mask = inputs(batch)
    assert ElectraDiscriminator(TINY)(ids, types, mask).shape == [batch, 11]
    assert ElectraGenerator(TINY)(ids, types, mask).shape == [batch, 11, 99]
    assert ElectraGenerator(TINY)(ids, types, mask, positions=paddle.zeros([batch, 3], "int64")).shape == [batch, 3, 99]
    assert ElectraForSequenceClassification(TINY, num_labels=3)(ids, types, mask).shape == [batch, 3]
    assert ElectraForTokenClassification(TINY, num_labels=5)(ids, types, mask).shape == [batch, 11, 5]
    start, end = ElectraForQuestionAnswering(TINY)(ids, types, mask)
    assert start.shape == end.shape == [batch, 11]
    pooled, sequence = ElectraEncoder(TINY)(ids, types, mask)
    assert pooled.shape == [batch, 32] and sequence.shape == [batch, 11, 32]
    matcher = ElectraForTextMatching(TINY, num_labels=2)
    assert matcher(ids, types, mask, ids, types, mask).shape == [batch, 2]


def test_hidden_states_and_attentions():
    model = ElectraDiscriminator(TINY)
    model.eval()
    ids, types, mask = inputs()
    out = model.electra(ids, types, mask, output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    assert out.attentions[0].shape == [3, 4, 11, 11]
    # padded keys get no attention; every row sums to one
    probs = out.attentions[0].numpy()
    assert np.allclose(probs.sum(-1), 1.0, atol=1e-5)
    assert probs[-1, :, :, -4:].max() < 1e-6
    np.testing.assert_array_equal(out.last_hidden_state.numpy(), out.hidden_states[-1].numpy())


def test_padding_does_not_change_real_tokens():
    model = ElectraDiscriminator(TINY)
    model.eval()
    ids, types, mask = inputs(batch=1, length=8)
    longer = paddle.concat([ids, paddle.zeros([1, 5], "int64")], axis=1)
    longer_mask = paddle.concat([mask, paddle.zeros([1, 5], "int64")], axis=1)
    a = model(ids, types, mask).numpy()
    b = model(longer, paddle.zeros_like(longer), longer_mask).numpy()[:, :8]
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_pretraining_shares_all_embeddings_and_counts_parameters_once():
    model = ElectraForPretraining(TINY, TINY.replace(hidden_size=8, num_attention_heads=1, intermediate_size=32),
                                  special_ids=[1, 2, 3], mask_token_id=3)
    assert model.generator.electra.embeddings is model.discriminator.electra.embeddings
    names = [n for n, _ in model.named_parameters()]
    assert len(names) == len({id(p) for p in model.parameters()})
    assert not any(n.startswith("generator.electra.embeddings.") for n in names)


def test_masked_lm_only_objective_skips_the_discriminator():
    """disc_weight 0 (pretrain.demo.curve's masked-LM control): the loss is the generator's, the discriminator's own
    layers get no gradient, the shared embeddings still do."""
    paddle.seed(1)
    model = ElectraForPretraining(TINY, TINY, special_ids=[0, 1, 2, 3], mask_token_id=3, disc_weight=0.0)
    ids, types, mask = inputs(batch=2, length=12)
    out = model(ids, types, mask)
    assert float(out.disc_loss) == 0.0 and float(out.loss) == pytest.approx(float(out.gen_loss))
    out.loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is None for n, g in grads.items() if n.startswith(("discriminator.electra.encoder.",
                                                                   "discriminator.discriminator_predictions.")))
    assert grads["discriminator.electra.embeddings.word_embeddings.weight"] is not None
    assert all(g is not None for n, g in grads.items() if n.startswith("generator.electra.encoder."))


def test_save_and_load_are_bit_identical(tmp_path):
    paddle.seed(1)
    model = ElectraForSequenceClassification(TINY, num_labels=3)
    model.eval()
    ids, types, mask = inputs()
    model.save_pretrained(tmp_path)
    again = ElectraForSequenceClassification.from_pretrained(tmp_path)
    again.eval()
    np.testing.assert_array_equal(model(ids, types, mask).numpy(), again(ids, types, mask).numpy())
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["hidden_size"] == 32 and len(config["id2label"]) == 3


def test_task_model_from_pretraining_directory_reports_new_head(tmp_path):
    ElectraDiscriminator(TINY).save_pretrained(tmp_path)
    model = ElectraForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    assert model.load_report.newly_initialized == ["classifier.classifier.weight", "classifier.classifier.bias"]
    assert set(model.load_report.dropped) == {"discriminator_predictions.dense.weight",
                                              "discriminator_predictions.dense.bias",
                                              "discriminator_predictions.dense_prediction.weight",
                                              "discriminator_predictions.dense_prediction.bias"}


def test_mismatched_weights_name_every_tensor(tmp_path):
    ElectraDiscriminator(TINY).save_pretrained(tmp_path)
    (tmp_path / "manifest.json").unlink()  # a hand-edited folder (with its manifest the edit itself is refused)
    config = json.loads((tmp_path / "config.json").read_text())
    config["intermediate_size"] = 40
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError) as err:
        ElectraDiscriminator.from_pretrained(tmp_path)
    message = str(err.value)
    assert "electra.encoder.0.intermediate.weight" in message and "[32, 37]" in message and "[32, 40]" in message
    assert "electra.encoder.1.output.weight" in message


def test_unexpected_and_missing_tensors(tmp_path):
    from paddle_electra.weights import save_safetensors, state_dict_numpy
    state = state_dict_numpy(ElectraDiscriminator(TINY))
    state["electra.encoder.7.mystery"] = np.zeros(3, np.float32)
    del state["electra.embeddings.layer_norm.bias"]
    save_safetensors(state, tmp_path / WEIGHTS_NAME)
    TINY.to_json(tmp_path / "config.json")
    with pytest.raises(WeightsError, match="unexpected tensor 'electra.encoder.7.mystery'") as err:
        ElectraDiscriminator.from_pretrained(tmp_path)
    assert "missing tensor 'electra.embeddings.layer_norm.bias'" in str(err.value)


def test_corrupted_and_truncated_weights_are_refused(tmp_path):
    ElectraDiscriminator(TINY).save_pretrained(tmp_path)
    path = tmp_path / WEIGHTS_NAME
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01  # one bit in the tensor data: safetensors cannot see it, the checksum can
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="checksum mismatch"):
        ElectraDiscriminator.from_pretrained(tmp_path)
    path.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(WeightsError, match=str(path)):
        load_safetensors(path)
    path.write_bytes(b"")
    with pytest.raises(WeightsError, match="not a valid safetensors"):
        load_safetensors(path)


def test_pickle_only_directory_points_at_the_converter(tmp_path):
    TINY.to_json(tmp_path / "config.json")
    (tmp_path / "model_state.pdparams").write_bytes(b"\x80\x04not really")
    with pytest.raises(WeightsError, match="pickle file.*--allow-pickle"):
        ElectraDiscriminator.from_pretrained(tmp_path)


def test_mean_pooling_head_averages_real_tokens_only(tmp_path):
    """pooling="mean": the classifier sees the mean of the unpadded token states, so extra padding changes nothing;
    the choice survives save_pretrained / from_pretrained (config.json "classifier_pooling")."""
    paddle.seed(3)
    model = ElectraForSequenceClassification(TINY, num_labels=3, dropout=0.0, pooling="mean")
    model.eval()
    ids, types, mask = inputs(batch=3, length=11)
    logits = model(ids, types, mask).numpy()
    hidden = model.electra(ids, types, mask).last_hidden_state.numpy()
    m = mask.numpy()[..., None].astype("float32")
    pooled = (hidden * m).sum(1) / m.sum(1)
    expected = pooled @ model.classifier.classifier.weight.numpy() + model.classifier.classifier.bias.numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    # the padded example scored alone at its own length
    length = int(m[-1].sum())
    alone = model(ids[-1:, :length], types[-1:, :length], mask[-1:, :length]).numpy()
    np.testing.assert_allclose(logits[-1:], alone, rtol=1e-4, atol=1e-5)
    # [CLS] pooling on the same weights gives other logits
    cls_model = ElectraForSequenceClassification(TINY, num_labels=3, dropout=0.0)
    cls_model.set_state_dict(model.state_dict())
    cls_model.eval()
    assert not np.allclose(cls_model(ids, types, mask).numpy(), logits)

    model.save_pretrained(str(tmp_path))
    assert json.loads((tmp_path / "config.json").read_text())["classifier_pooling"] == "mean"
    loaded = ElectraForSequenceClassification.from_pretrained(str(tmp_path), dropout=0.0)
    loaded.eval()
    assert loaded.pooling == "mean"
    np.testing.assert_array_equal(loaded(ids, types, mask).numpy(), logits)
    with pytest.raises(ValueError, match="pooling must be one of"):
        ElectraForSequenceClassification(TINY, pooling="max")


def test_linear_with_matmul_bias_gradient_matches_the_plain_op():
    """modeling.Linear's CPU training backward (bias gradient as ones @ dy) against F.linear's: the same forward to
    the bit, gradients of x, W and b equal up to float summation order, for 2-D and 3-D inputs; the plain op where
    no gradient is needed; and the parameters keep nn.Linear's names."""
    import paddle.nn.functional as F

    from paddle_electra.modeling import Linear, linear
    paddle.seed(3)
    layer = linear(24, 40, 0.02)
    assert isinstance(layer, Linear) and sorted(layer.state_dict()) == ["bias", "weight"]
    with paddle.no_grad():
        layer.bias.set_value(paddle.randn([40]))
    for shape in ([7, 24], [3, 5, 24]):
        x = paddle.randn(shape)
        x.stop_gradient = False
        dy = paddle.randn(shape[:-1] + [40])
        grads = []
        for forward in (lambda: layer(x), lambda: F.linear(x, layer.weight, layer.bias)):
            y = forward()
            y.backward(dy)
            grads.append((y.numpy(), x.grad.numpy(), layer.weight.grad.numpy(), layer.bias.grad.numpy()))
            x.clear_gradient()
            layer.clear_gradients()
        np.testing.assert_array_equal(grads[0][0], grads[1][0])
        for ours, plain in zip(grads[0][1:], grads[1][1:]):
            np.testing.assert_allclose(ours, plain, rtol=1e-5, atol=1e-6)
    with paddle.no_grad():  # inference: the plain op, no PyLayer node
        np.testing.assert_array_equal(layer(x).numpy(), F.linear(x, layer.weight, layer.bias).numpy())
