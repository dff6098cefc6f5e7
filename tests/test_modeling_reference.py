"""Our discriminator and generator against HF transformers' ElectraForPreTraining / ElectraForMaskedLM (torch),
with identical random weights copied across: logits equal to an absolute 1e-5 x max(1, largest |logit|) (fp32) at
every position, padded ones included, with and without padding."""
import numpy as np
import pytest
from conftest import reference  # a missing reference library: skip here, fail under CI=true

torch = reference("torch")
transformers = reference("transformers")

import paddle  # noqa: E402

from converters.mapping import hf_to_paddle, paddle_to_hf  # noqa: E402
from paddle_electra import ElectraDiscriminator, ElectraGenerator, preset  # noqa: E402

# (size, layers kept): base and small-ex keep 2 layers, large 1, so CI stays fast; width, heads and embeddings are real
SHAPES = [("small", 12), ("base", 2), ("small-ex", 2), ("large", 1)]


def hf_config(cfg):
    return transformers.ElectraConfig(
        vocab_size=cfg.vocab_size, embedding_size=cfg.embedding_size, hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        intermediate_size=cfg.intermediate_size, hidden_act=cfg.hidden_act, max_position_embeddings=cfg.max_position_embeddings,
        type_vocab_size=cfg.type_vocab_size, layer_norm_eps=cfg.layer_norm_eps,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def batch(vocab, seed=0, batch_size=3, length=24, pad=True):
    rng = np.random.default_rng(seed)
    ids = rng.integers(104, vocab, size=(batch_size, length))
    ids[:, 0] = 101
    types = np.zeros_like(ids)
    types[:, length // 2:] = 1
    mask = np.ones_like(ids)
    if pad:
        for row, keep in enumerate([length, length - 5, 7][:batch_size]):
            ids[row, keep:] = 0
            mask[row, keep:] = 0
            types[row, keep:] = 0
    return ids, types, mask


def randomize(model, seed):
    """HF init leaves biases at 0 and LayerNorm at 1/0; random values everywhere make the test see every tensor."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            offset = 1.0 if name.endswith("LayerNorm.weight") else 0.0
            p.copy_(torch.randn(p.shape, generator=g) * 0.05 + offset)


def run_pair(role, size, layers, pad):
    cfg = preset(size, role).replace(num_hidden_layers=layers)
    torch.manual_seed(0)
    hf_cls = transformers.ElectraForPreTraining if role == "discriminator" else transformers.ElectraForMaskedLM
    hf_model = hf_cls(hf_config(cfg)).eval()
    randomize(hf_model, 1)
    hf_state = {k: v.detach().numpy() for k, v in hf_model.state_dict().items()}
    ours = (ElectraDiscriminator if role == "discriminator" else ElectraGenerator)(cfg)
    ours.set_state_dict({k: paddle.to_tensor(v) for k, v in hf_to_paddle(hf_state, cfg, role).items()})
    ours.eval()
    ids, types, mask = batch(cfg.vocab_size, pad=pad)
    with torch.no_grad():
        expected = hf_model(torch.tensor(ids), attention_mask=torch.tensor(mask), token_type_ids=torch.tensor(types)).logits.numpy()
    got = ours(paddle.to_tensor(ids), paddle.to_tensor(types), paddle.to_tensor(mask)).numpy()
    return cfg, hf_state, ours, expected, got, mask


@pytest.mark.parametrize("size,layers", SHAPES)
@pytest.mark.parametrize("role", ["discriminator", "generator"])
@pytest.mark.parametrize("pad", [False, True])
def test_logits_match_hf(role, size, layers, pad):
    cfg, _, _, expected, got, mask = run_pair(role, size, layers, pad)
    assert got.shape == expected.shape
    # every position, padded ones included (as against PaddleNLP): both sides mask padded keys only, so a padded
    # position's output is defined and must agree too
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * scale)


def test_mapping_round_trips_exactly():
    cfg, hf_state, ours, *_ = run_pair("generator", "small", 2, False)
    ours_state = {k: v.numpy() for k, v in ours.state_dict().items()}
    back = paddle_to_hf(ours_state, cfg, "generator")
    for name, array in hf_state.items():
        if name in ("electra.embeddings.position_ids", "electra.embeddings.token_type_ids"):
            continue
        np.testing.assert_array_equal(back[name], array, err_msg=name)
