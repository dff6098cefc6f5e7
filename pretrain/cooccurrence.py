"""Distributional vectors from co-occurrence counts: the truncated SVD of a positive PMI matrix (Levy & Goldberg's
classic recipe), used twice:

- `pretrain.demo.probe`: a non-neural reference representation of the pretraining text (character vectors);
- `pretrain/run.py --embedding-init ppmi-svd`: the starting point of the shared word-embedding table, computed from
  the training data's own token ids before the first step (a few seconds at the demo's size), so that ELECTRA starts
  from tokens already organised by the company they keep instead of from noise.
"""
from __future__ import annotations

import numpy as np


def cooccurrence_counts(ids: np.ndarray, vocab_size: int, window: int = 3, chunk: int = 1 << 22):
    """Sparse [vocab_size, vocab_size] counts of ids within `window` positions of each other in the stream `ids`
    (symmetric; a negative id pairs with nothing), accumulated `chunk` positions at a time so that memory follows
    the number of distinct pairs, not the length of the stream."""
    import scipy.sparse as sp
    ids = np.asarray(ids, dtype=np.int64)
    total = sp.csr_matrix((vocab_size, vocab_size), dtype=np.float64)
    for start in range(0, len(ids), chunk):
        rows, cols = [], []
        for offset in range(1, window + 1):
            stop = min(start + chunk, len(ids) - offset)  # pairs (i, i + offset) whose first position is in the chunk
            if stop <= start:
                continue
            a, b = ids[start:stop], ids[start + offset:stop + offset]
            keep = (a >= 0) & (b >= 0)
            rows += [a[keep], b[keep]]
            cols += [b[keep], a[keep]]
        if rows:
            rows, cols = np.concatenate(rows), np.concatenate(cols)
            total = total + sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=total.shape).tocsr()
    return total


def ppmi_svd(ids: np.ndarray, vocab_size: int, dim: int, window: int = 3, seed: int = 0) -> np.ndarray:
    """[vocab_size, dim] vectors U sqrt(S) of the positive PMI of ids co-occurring within `window` positions of
    the stream `ids` (symmetric; a negative id pairs with nothing: boundaries, special tokens), context counts
    smoothed with exponent 0.75. Rows of ids that never co-occur are zero."""
    import scipy.sparse as sp
    from sklearn.utils.extmath import randomized_svd
    pairs = cooccurrence_counts(ids, vocab_size, window).tocoo()
    total = pairs.data.sum()
    row_sums = np.bincount(pairs.row, weights=pairs.data, minlength=vocab_size)
    context = np.bincount(pairs.col, weights=pairs.data, minlength=vocab_size) ** 0.75
    context = context / context.sum() * total
    pmi = np.maximum(np.log(pairs.data * total / (row_sums[pairs.row] * context[pairs.col])), 0.0)
    matrix = sp.coo_matrix((pmi, (pairs.row, pairs.col)), shape=pairs.shape).tocsr()
    u, s, _ = randomized_svd(matrix, dim, random_state=seed)
    vectors = u * np.sqrt(s)
    vectors[row_sums == 0] = 0.0  # exactly zero, not the SVD's rounding noise
    return vectors


def embedding_table_from_data(dataset, table: np.ndarray, std: float, max_tokens: int = 50_000_000,
                              window: int = 3) -> tuple:
    """(new table, tokens counted): `table` ([V, E], the initialised word embeddings) with the rows of every token
    seen in the first `max_tokens` tokens of the PretrainingDataset replaced by its PPMI-SVD vectors, scaled to
    element std `std` (the initializer's) so that the layers after the embeddings see inputs of the usual size.
    Special tokens ([CLS], [SEP], [PAD], ...) are boundaries, not contexts; unseen rows keep their random values."""
    pieces, count = [], 0
    for tokens in dataset._tokens:
        take = min(len(tokens), max_tokens - count)
        pieces.append(np.asarray(tokens[:take], dtype=np.int64))
        count += take
        if count >= max_tokens:
            break
    ids = np.concatenate(pieces)
    special = np.array(sorted(dataset.special_ids.values()))
    ids[np.isin(ids, special)] = -1
    vectors = ppmi_svd(ids, table.shape[0], table.shape[1], window=window)
    seen = np.abs(vectors).sum(1) > 0
    scaled = vectors[seen] / (vectors[seen].std() + 1e-12) * std
    out = np.array(table, dtype=np.float32, copy=True)
    out[seen] = scaled.astype(np.float32)
    return out, int(count)
