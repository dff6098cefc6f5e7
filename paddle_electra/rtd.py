"""The replaced-token-detection objective as pure functions: mask, sample, replace, label.

Shapes: B batch, L sequence length, N = max predictions per sequence, V vocabulary.

Decisions against the official code (electra-reference.md §2, open question 11):
- Positions are drawn WITHOUT replacement (uniform over candidates). The official `tf.random.categorical` draws with
  replacement, so duplicates occur and their sampled ids get floor-averaged; that is a quirk, not a design.
- The number to mask per sequence is the official one: max(1, min(N, round_half_even(real_tokens * mask_prob))),
  counting [CLS]/[SEP] among the real tokens; [CLS], [SEP], [MASK] and padding are never candidates.
- 85% of chosen positions become [MASK], 15% keep the original token; no random-token 10% (as the official code).
- Sampled tokens are written into every chosen position; a position whose sample equals the original is labelled
  "original" (0), as the official code does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import paddle
import paddle.nn.functional as F


def max_predictions(max_seq_length: int, mask_prob: float) -> int:
    """The official N: int((mask_prob + 0.005) * max_seq_length) -> 19 at 128, 79 at 512 for mask_prob 0.15."""
    return max(1, int((mask_prob + 0.005) * max_seq_length))


@dataclass
class MaskedBatch:
    """What the generator sees and what it must predict."""

    masked_ids: paddle.Tensor  # [B, L] input with [MASK] at 85% of the chosen positions
    positions: paddle.Tensor  # [B, N] int64, chosen positions (0 in unused slots)
    targets: paddle.Tensor  # [B, N] int64, original ids at positions (0 in unused slots)
    weights: paddle.Tensor  # [B, N] float32, 1 for used slots, 0 for unused


def mask_tokens(input_ids, attention_mask, special_ids, mask_token_id, mask_prob=0.15, num_predictions=None,
                replace_prob=0.85, uniforms=None) -> MaskedBatch:
    """Choose positions to predict and build the generator's input.

    `uniforms`: optional (scores [B, L], keep [B, N]) float32 draws in [0, 1) that fix the choice (pretrain/rng.py
    derives them per example); without them the draws come from Paddle's global generator."""
    b, l = input_ids.shape
    n = min(num_predictions or max_predictions(l, mask_prob), l)
    position_u, keep_u = uniforms if uniforms is not None else (paddle.rand([b, l]), paddle.rand([b, n]))
    candidate, num_to_mask = _budget(input_ids, attention_mask, special_ids, mask_prob, n)
    # uniform choice without replacement: the top-n of random scores over candidates
    scores = paddle.where(candidate, position_u.astype("float32"), paddle.full([b, l], -1.0))
    top_scores, positions = paddle.topk(scores, k=n, axis=1)  # [B, N]
    slot = paddle.arange(n, dtype="float32").unsqueeze(0)
    weights = (slot < num_to_mask.unsqueeze(1)).astype("float32") * (top_scores >= 0).astype("float32")
    positions = (positions * weights.astype(positions.dtype)).astype("int64")
    # 85% of the used slots become [MASK]; the rest keep the original token
    to_mask = (keep_u[:, :n] < replace_prob).astype("int64") * weights.astype("int64")
    return _masked_batch(input_ids, positions, weights, to_mask, mask_token_id)


def mask_whole_words(input_ids, attention_mask, word_starts, special_ids, mask_token_id, mask_prob=0.15,
                     num_predictions=None, replace_prob=0.85, uniforms=None) -> MaskedBatch:
    """Whole-word masking: every token of a chosen word is chosen, none of an unchosen one.

    `word_starts` [B, L] is 1 where a token begins a word (pretrain/data.py --word-boundaries). The budget in
    tokens is mask_tokens' (the official 15%); words are visited in a uniformly random order (each word's score is
    the uniform at its first token) and taken whole while they fit the budget; a word that does not fit is skipped
    (Google BERT's whole-word rule), so an example can end up to a word's length under budget. A word is a candidate
    when all its tokens are; [MASK] vs keep-the-original (85/15) is drawn once per word, so a word is also never
    partly shown. Host-side NumPy: words are short lists and a batch is a few thousand tokens."""
    b, l = input_ids.shape
    n = min(num_predictions or max_predictions(l, mask_prob), l)
    position_u, keep_u = uniforms if uniforms is not None else (paddle.rand([b, l]), paddle.rand([b, n]))
    candidate, num_to_mask = _budget(input_ids, attention_mask, special_ids, mask_prob, n)
    candidate, num_to_mask = candidate.numpy(), num_to_mask.numpy().astype(np.int64)
    starts, scores, keep_u = np.asarray(word_starts).astype(bool), np.asarray(position_u), np.asarray(keep_u)
    positions, weights, to_mask = np.zeros((b, n), np.int64), np.zeros((b, n), np.float32), np.zeros((b, n), np.int64)
    for row in range(b):
        begins = np.flatnonzero(starts[row] | (np.arange(l) == 0))
        ends = np.append(begins[1:], l)
        whole = np.logical_and.reduceat(candidate[row], begins)  # every token of the word is a candidate
        order = np.argsort(-scores[row][begins], kind="stable")
        used, words = 0, 0
        for w in order:
            size = ends[w] - begins[w]
            if not whole[w] or used + size > num_to_mask[row]:
                continue
            positions[row, used:used + size] = np.arange(begins[w], ends[w])
            weights[row, used:used + size] = 1.0
            to_mask[row, used:used + size] = int(keep_u[row, words] < replace_prob)
            used, words = used + size, words + 1
            if used == num_to_mask[row]:
                break
    return _masked_batch(input_ids, paddle.to_tensor(positions), paddle.to_tensor(weights), paddle.to_tensor(to_mask),
                         mask_token_id)


def _budget(input_ids, attention_mask, special_ids, mask_prob, n):
    """(candidate [B, L] bool, num_to_mask [B] float32): the official count, round half to even of
    real_tokens * mask_prob, at least 1, at most N and the number of candidates."""
    real = attention_mask.astype("bool")
    candidate = real
    for token_id in special_ids:
        candidate = paddle.logical_and(candidate, input_ids != token_id)
    num_real = real.astype("float32").sum(axis=1)
    num_to_mask = paddle.round(num_real * mask_prob)  # Paddle rounds half away from zero; fix the .5 cases below
    half = (num_real * mask_prob - paddle.floor(num_real * mask_prob)) == 0.5
    num_to_mask = paddle.where(half & (paddle.floor(num_real * mask_prob) % 2 == 0),
                               paddle.floor(num_real * mask_prob), num_to_mask)
    num_candidates = candidate.astype("float32").sum(axis=1)
    return candidate, paddle.minimum(paddle.clip(num_to_mask, min=1.0, max=float(n)), num_candidates)


def _masked_batch(input_ids, positions, weights, to_mask, mask_token_id) -> MaskedBatch:
    """Targets (original ids at the used slots) and the generator's input ([MASK] where to_mask is 1)."""
    targets = paddle.take_along_axis(input_ids.astype("int64"), positions, axis=1) * weights.astype("int64")
    masked_ids = scatter_at(input_ids.astype("int64"), positions, paddle.full_like(positions, mask_token_id), to_mask)
    return MaskedBatch(masked_ids, positions, targets, weights)


def scatter_at(ids, positions, values, keep):
    """ids[b, positions[b, j]] = values[b, j] wherever keep[b, j] == 1; other slots leave ids unchanged. [B, L]."""
    b, l = ids.shape
    flat = (positions + paddle.arange(b, dtype="int64").unsqueeze(1) * l).reshape([-1])
    keep = keep.reshape([-1]).astype("bool")
    flat_ids = ids.reshape([-1])
    chosen = paddle.masked_select(flat, keep)
    if chosen.shape[0] == 0:
        return ids
    return paddle.scatter(flat_ids, chosen, paddle.masked_select(values.reshape([-1]), keep),
                          overwrite=True).reshape([b, l])


def sample_tokens(logits, temperature=1.0, uniforms=None):
    """Sample ids from softmax(logits / temperature) by inverse CDF, without gradient. [B, N, V] -> [B, N] int64.

    One uniform u per slot picks the first id whose cumulative probability exceeds u: exactly the softmax's
    distribution, as the official Gumbel-max sampler, but with one random number per slot instead of V (the Gumbel
    noise was ~45% of the demo's step). `uniforms` [B, N] in [0, 1) fixes the draw; default Paddle's generator."""
    with paddle.no_grad():
        logits = logits.detach().astype("float32")
        if temperature != 1.0:  # a division over [B, N, V] costs a tenth of the demo's step on this CPU
            logits = logits / temperature
        if uniforms is None:
            uniforms = paddle.rand(logits.shape[:-1])
        cdf = paddle.cumsum(F.softmax(logits, axis=-1), axis=-1)  # [B, N, V], last entry ~1
        threshold = uniforms.astype("float32").unsqueeze(-1) * cdf[..., -1:]  # scaled: rounding cannot pass the end
        # binary search for the number of entries <= threshold (the cdf is non-decreasing): no pass over V
        index = paddle.searchsorted(cdf, threshold, right=True).squeeze(-1)
        return paddle.clip(index, max=logits.shape[-1] - 1).astype("int64")


def replace_tokens(input_ids, masked: MaskedBatch, sampled):
    """The discriminator's input and labels: samples written at the chosen positions; label 1 where changed.

    Returns (fake_ids [B, L] int64, labels [B, L] int64)."""
    original = input_ids.astype("int64")
    fake = scatter_at(original, masked.positions, sampled, masked.weights)
    labels = (fake != original).astype("int64")
    return fake, labels
