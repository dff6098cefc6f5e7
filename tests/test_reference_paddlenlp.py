"""Our ElectraDiscriminator / ElectraGenerator against PaddleNLP 2.8's (paddlenlp.transformers), identical random
weights copied across with the converter's name map: logits equal to an absolute 1e-5 x max(1, largest |logit|)
(fp32) at every position, padded ones included, with and without padding.

What PaddleNLP does differently, found by reading paddlenlp/transformers/electra/modeling.py and checked here:
- Attention mask. Given no mask, PaddleNLP masks the keys whose id equals pad_token_id (additive -1e4); ours masks
  nothing. The unpadded inputs below contain no id 0, so both attend everywhere. Given a [B, L] integer mask,
  PaddleNLP hands it to paddle.nn.TransformerEncoder, which turns it into (mask - 1) * 1e9: -1e9 on padded keys
  where the official code and ours add -1e4. Both underflow to exactly 0 after softmax in fp32, so the logits agree;
  the test also passes PaddleNLP the official additive mask as a float [B, 1, 1, L] tensor (its other accepted
  form), which makes the two computations identical.
- LayerNorm eps. paddle.nn.TransformerEncoderLayer and PaddleNLP's generator head build their LayerNorms with
  Paddle's default 1e-5; PaddleNLP's `_init_weights` then overwrites every LayerNorm's `_epsilon` with
  config.layer_norm_eps (1e-12, the TF value ours uses) when the model is built. Asserted below, as a model
  built without `init_weights` would differ at the 1e-5 level.
- GELU. Both use the exact erf form (F.gelu, approximate=False): TransformerEncoderLayer(activation="gelu") and
  PaddleNLP's GELUActivation. PaddleNLP's generator head uses config.hidden_act, ours always gelu: same for these
  configs (and for every official one).
- Discriminator output shape. PaddleNLP squeezes every size-1 axis (`.squeeze()`), so batch 1 gives [L]; ours is
  always [B, L]. Batches here have 3 rows.
- Embeddings. ElectraForTotalPretraining ties only the word table between generator and discriminator (the
  official model shares all of electra/embeddings); the single models compared here are unaffected.
Padded query positions are compared too: both sides mask the same keys, so their outputs agree as well.
"""
import numpy as np
import paddle
import pytest

from conftest import reference  # a missing reference library: skip here, fail under CI=true

from converters.mapping import hf_to_paddle
from converters.paddlenlp_weights import to_hf_names
from paddle_electra import ElectraDiscriminator, ElectraGenerator, preset

# (size, layers kept): every official shape; base, small-ex and large cut to 2 layers so CI stays fast (the layers
# are identical, so 2 of them test the per-layer computation of all 12 or 24; width, heads, FFN and the embedding
# projection are the size's own)
SHAPES = [("small", None), ("base", 2), ("small-ex", 2), ("large", 2)]
FIELDS = ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
          "intermediate_size", "hidden_act", "max_position_embeddings", "type_vocab_size", "layer_norm_eps",
          "pad_token_id", "initializer_range")


@pytest.fixture(scope="module")
def nlp():
    """paddlenlp.transformers, imported once outside any test's captured stderr (its logger keeps that stream)."""
    return reference("paddlenlp.transformers")


def batch(vocab, pad, seed=0, length=24):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, size=(3, length))  # no id 0 (= pad_token_id), see the module docstring
    ids[:, 0] = 101
    types = np.zeros_like(ids)
    types[:, length // 2:] = 1
    mask = np.ones_like(ids)
    if pad:
        for row, keep in ((1, length - 5), (2, 7)):
            ids[row, keep:], mask[row, keep:], types[row, keep:] = 0, 0, 0
    return ids, types, mask


_PAIRS = {}


def build_pair(nlp, role, size, layers, seed=1):
    """(config, PaddleNLP model, our model) with the same random weights; built once per shape (base takes seconds)."""
    if (role, size) in _PAIRS:
        return _PAIRS[role, size]
    cfg = preset(size, role)
    if layers:
        cfg = cfg.replace(num_hidden_layers=layers)
    theirs = getattr(nlp, "ElectraDiscriminator" if role == "discriminator" else "ElectraGenerator")(
        nlp.ElectraConfig(**{f: getattr(cfg, f) for f in FIELDS}))
    rng = np.random.default_rng(seed)
    for name, p in theirs.named_parameters():  # random everywhere, biases and LayerNorms included
        base = 1.0 if ("norm" in name and name.endswith("weight")) else 0.0
        p.set_value((rng.random(p.shape, dtype=np.float32) - 0.5) * 0.1 + base)
    theirs.eval()
    state = {k: v.numpy() for k, v in theirs.state_dict().items()}
    with paddle.LazyGuard():  # skip our own random init: every parameter is overwritten right away
        ours = (ElectraDiscriminator if role == "discriminator" else ElectraGenerator)(cfg)
    weights = hf_to_paddle(to_hf_names(state, cfg, role, "paddlenlp", "config"), cfg, role)
    assert sorted(weights) == sorted(ours.state_dict())
    ours.set_state_dict({k: paddle.to_tensor(v) for k, v in weights.items()})
    ours.eval()
    _PAIRS[role, size] = cfg, theirs, ours
    return _PAIRS[role, size]


@pytest.mark.parametrize("size,layers", SHAPES)
@pytest.mark.parametrize("role", ["discriminator", "generator"])
@pytest.mark.parametrize("pad", [False, True])
def test_logits_match_paddlenlp(nlp, role, size, layers, pad):
    cfg, theirs, ours = build_pair(nlp, role, size, layers)
    eps = {layer._epsilon for layer in theirs.sublayers() if isinstance(layer, paddle.nn.LayerNorm)}
    assert eps == {1e-12}
    ids, types, mask = batch(cfg.vocab_size, pad)
    t = {k: paddle.to_tensor(v) for k, v in dict(ids=ids, types=types, mask=mask).items()}
    with paddle.no_grad():
        got = ours(t["ids"], t["types"], t["mask"] if pad else None).numpy()
        if pad:
            official = ((1.0 - t["mask"].astype("float32")) * -10000.0).unsqueeze([1, 2])  # [B, 1, 1, L]
            expected = [theirs(t["ids"], t["types"], attention_mask=m).numpy() for m in (t["mask"], official)]
        else:
            expected = [theirs(t["ids"], t["types"]).numpy()]
    for want in expected:
        assert got.shape == want.shape
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale)
