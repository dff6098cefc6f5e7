"""Padding and length bucketing of token-id rows: the one implementation used by fine-tuning (finetune/kinds), the
hub module's predict() and the exported-model runners (paddle_electra/export.py)."""
from __future__ import annotations

from typing import Iterable, List, Sequence

import numpy as np

from .errors import ConfigError


def length_buckets(lengths: Sequence[int], batch_size: int) -> List[np.ndarray]:
    """Indices grouped into batches of similar length: sorted by length (stable), then cut every batch_size; padding
    each batch to its own longest then costs little."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def pad_rows(rows: Iterable[Sequence[int]], pad_id: int = 0, multiple: int = 1, dtype=np.int64) -> np.ndarray:
    """Right-pad sequences with `pad_id` to the longest (rounded up to `multiple`): [B, L] of `dtype`."""
    rows = list(rows)
    longest = max((len(r) for r in rows), default=0)
    width = -(-longest // multiple) * multiple if multiple > 1 else longest
    out = np.full((len(rows), width), pad_id, dtype=dtype)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out
