"""Where pretraining's random numbers come from, so that a run is a function of (seed, data, config) alone.

- Masking and Gumbel noise: with `per_sample_rng`, each example's draws come from Paddle's generator reseeded by
  (seed, the example's position in the global stream). The draws then do not depend on which rank or which
  micro-batch the example lands in, so 1 process with accumulation, or N processes, give the same masks (the
  distributed test relies on this). Without it, one reseed per micro-batch (seed, step, rank, micro-batch).
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


def derive_seed(*parts) -> int:
    """A 63-bit seed from any parts (stable across processes and Python versions, unlike hash())."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def draw_masks(input_ids, attention_mask, positions, seed, special_ids, mask_token_id, mask_prob,
               per_sample=True, step=0, tag=""):
    """Choose the positions to predict for a micro-batch ([B, L] int64 tensors); `positions` [B] are the
    examples' places in the global stream. Returns an rtd.MaskedBatch."""
    if not per_sample:
        paddle.seed(derive_seed(seed, "mask-batch", tag, step, int(positions[0])))
        return rtd.mask_tokens(input_ids, attention_mask, special_ids, mask_token_id, mask_prob)
    rows = []
    for i, position in enumerate(positions):
        paddle.seed(derive_seed(seed, "mask", int(position)))
        rows.append(rtd.mask_tokens(input_ids[i:i + 1], attention_mask[i:i + 1], special_ids, mask_token_id,
                                    mask_prob))
    return rtd.MaskedBatch(*(paddle.concat([getattr(r, name) for r in rows]) for name in
                             ("masked_ids", "positions", "targets", "weights")))


def draw_gumbel_noise(positions, num_slots, vocab_size, seed, per_sample=True, step=0, tag=""):
    """Gumbel noise [B, N, V] for the generator's samples, keyed like draw_masks (a separate stream)."""
    if not per_sample:
        paddle.seed(derive_seed(seed, "noise-batch", tag, step, int(positions[0])))
        return rtd.gumbel_noise([len(positions), num_slots, vocab_size])
    rows = []
    for position in positions:
        paddle.seed(derive_seed(seed, "noise", int(position)))
        rows.append(rtd.gumbel_noise([1, num_slots, vocab_size]))
    return paddle.concat(rows)


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
