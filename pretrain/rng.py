"""Where pretraining's random numbers come from, so that a run is a function of (seed, data, config) alone.

- Masking and the generator's samples: every uniform is a counter-based hash (splitmix64) of (seed, stream, the
  example's position in the global stream, the index inside the example), computed for a whole micro-batch at once in
  NumPy. With `per_sample_rng` the key is the position alone, so the draws do not depend on which rank or which
  micro-batch the example lands in: 1 process with accumulation, or N processes, give the same masks (the
  distributed test relies on this). Without it the key also holds (step, rank, micro-batch). Either way no generator
  is reseeded and nothing is drawn per vocabulary entry: one uniform per position, per slot and per sample.
- Dropout: reseeded before every micro-batch from (seed, step, rank, micro-batch). Dropout masks therefore differ
  between a 1-process and a 2-process run (the same example meets a different mask), which is why the equivalence
  test sets dropout to 0; they are identical between an interrupted-and-resumed and an uninterrupted run.
- Checkpoints still store the Python, NumPy and Paddle generator states (capture/restore below) so that code
  drawing outside these reseeds (none in this package today) would also resume exactly.
"""
from __future__ import annotations

import hashlib
import random

import numpy as np
import paddle

from paddle_electra import rtd

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def derive_seed(*parts) -> int:
    """A 63-bit seed from any parts (stable across processes and Python versions, unlike hash())."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (Steele et al. 2014), elementwise on uint64 with wrap-around."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hashed_uniforms(keys, width: int) -> np.ndarray:
    """[len(keys), width] float32 uniforms in [0, 1): entry (i, j) depends only on (keys[i], j)."""
    keys = np.asarray(keys, dtype=np.uint64)[:, None]
    with np.errstate(over="ignore"):
        counters = keys + (np.arange(1, width + 1, dtype=np.uint64) * _GOLDEN)[None, :]
        bits = _splitmix64(counters) >> np.uint64(40)  # the top 24 bits: exactly representable in float32
    return (bits.astype(np.float64) / float(1 << 24)).astype(np.float32)


def example_keys(seed, stream: str, positions, per_sample=True, step=0, tag="") -> np.ndarray:
    """One 64-bit key per example for a stream of draws ("mask", "keep", "sample")."""
    base = derive_seed(seed, stream) if per_sample else derive_seed(seed, stream, tag, step)
    with np.errstate(over="ignore"):
        return _splitmix64(np.uint64(base) + np.asarray(positions, dtype=np.uint64) * _GOLDEN)


def draw_masks(input_ids, attention_mask, positions, seed, special_ids, mask_token_id, mask_prob,
               per_sample=True, step=0, tag="", word_starts=None):
    """Choose the positions to predict for a micro-batch ([B, L] int64 tensors); `positions` [B] are the
    examples' places in the global stream. With `word_starts` ([B, L], 1 where a token begins a word) whole words
    are masked (rtd.mask_whole_words), else single tokens. Returns an rtd.MaskedBatch."""
    length = input_ids.shape[1]
    n = min(rtd.max_predictions(length, mask_prob), length)
    scores = hashed_uniforms(example_keys(seed, "mask", positions, per_sample, step, tag), length)
    keep = hashed_uniforms(example_keys(seed, "keep", positions, per_sample, step, tag), n)
    if word_starts is not None:
        return rtd.mask_whole_words(input_ids, attention_mask, word_starts, special_ids, mask_token_id, mask_prob,
                                    uniforms=(scores, keep))
    return rtd.mask_tokens(input_ids, attention_mask, special_ids, mask_token_id, mask_prob,
                           uniforms=(paddle.to_tensor(scores), paddle.to_tensor(keep)))


def draw_sample_uniforms(positions, num_slots, seed, per_sample=True, step=0, tag=""):
    """[B, N] uniforms for the generator's samples (rtd.sample_tokens), keyed like draw_masks (own stream)."""
    return paddle.to_tensor(hashed_uniforms(example_keys(seed, "sample", positions, per_sample, step, tag), num_slots))


def seed_dropout(seed, step, rank, micro):
    """Reseed Paddle's generator for the dropout of one micro-batch."""
    paddle.seed(derive_seed(seed, "dropout", step, rank, micro))


def capture_rng_state() -> dict:
    """Python, NumPy and Paddle generator states as JSON-serialisable values."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "paddle": [list(_plain(s.__getstate__())) for s in paddle.get_rng_state()],
    }


def restore_rng_state(state: dict):
    """Inverse of capture_rng_state."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    current = paddle.get_rng_state()
    if len(current) != len(state["paddle"]):
        return  # saved on another device kind; every draw is reseeded anyway
    cls = type(current[0])
    restored = []
    for saved in state["paddle"]:
        generator_state = cls.__new__(cls)  # pybind11 pickling protocol: __setstate__ initialises the object
        generator_state.__setstate__(tuple(saved))
        restored.append(generator_state)
    paddle.set_rng_state(restored)


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
