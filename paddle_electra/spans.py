"""Extractive QA windows and span decoding: the one implementation behind fine-tuning's evaluation
(finetune/kinds/span.py, CMRC 2018 / DRCD) and the hub module's predict(), so that predict() returns the answers the
evaluation scored.

Windows: the question is cut to max_query_length tokens; the context is tokenized once with character offsets and
cut into windows of max_seq_length - len(question) - 3 tokens every doc_stride tokens (the official sliding windows):
"[CLS] question [SEP] window [SEP]", segment 1 for the window and its [SEP].

Decoding: per window, log-softmax over [CLS] and the window's tokens; the n_best best starts x ends, discarding spans
that end before they start, are longer than max_answer_length tokens, or start at a token whose best-context window
(min(left, right) context + 0.01 x window length, BERT's rule) is another one; the candidates of all windows are ranked
by start + end log-probability. An answer is the original context from the start token's first character to the end
token's last character (tokenizer offsets): always an exact substring of the context, [UNK] tokens included.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

from .errors import ConfigError


def check_lengths(max_seq_length: int, max_query_length: int, seq_name="max_seq_length",
                  query_name="max_query_length") -> None:
    """A window must hold [CLS] question [SEP] at least one context token [SEP]."""
    if max_seq_length - 3 - max_query_length < 1:
        raise ConfigError(f"field '{query_name}' is {max_query_length}: {seq_name} {max_seq_length} leaves no room "
                          f"for context after such a question; lower {query_name}")


def windows(n_tokens: int, window: int, stride: int) -> List[Tuple[int, int]]:
    """(start, length) of the official doc-stride windows over n_tokens context tokens."""
    spans, start = [], 0
    while True:
        length = min(n_tokens - start, window)
        spans.append((start, length))
        if start + length >= n_tokens:
            return spans
        start += min(length, stride)


def best_context(spans, n_tokens: int) -> np.ndarray:
    """For each context token, the window where it has the most context: min(left, right) + 0.01 x length (the
    first such window on a tie)."""
    best, score = np.zeros(n_tokens, np.int64), np.full(n_tokens, -1.0)
    for w, (start, length) in enumerate(spans):
        j = np.arange(length)
        s = np.minimum(j, length - 1 - j) + 0.01 * length
        better = s > score[start: start + length]
        score[start: start + length][better] = s[better]
        best[start: start + length][better] = w
    return best


@dataclass
class Window:
    """One model input of a question: ids and segment ids, where its context tokens start (`first`), which context
    tokens they are (`start`, `length`), which of them have their best context here, and their character offsets."""

    input_ids: List[int]
    token_type_ids: List[int]
    first: int
    start: int
    length: int
    is_best: np.ndarray
    offsets: Sequence[Tuple[int, int]]


def question_windows(question_ids, context_ids, context_offsets, cls_id, sep_id, max_seq_length: int,
                     max_query_length: int, doc_stride: int) -> List[Window]:
    """The windows of one question; ids come without [CLS]/[SEP] (the tokenizer's, stripped)."""
    head = [cls_id] + list(question_ids[:max_query_length]) + [sep_id]
    first = len(head)
    spans = windows(len(context_ids), max_seq_length - first - 1, doc_stride)
    best = best_context(spans, len(context_ids))
    out = []
    for w, (start, length) in enumerate(spans):
        out.append(Window(head + list(context_ids[start: start + length]) + [sep_id], [0] * first + [1] * (length + 1),
                          first, start, length, best[start: start + length] == w, context_offsets[start: start + length]))
    return out


def window_candidates(start_logits, end_logits, first: int, is_best, offsets, n_best_size: int,
                      max_answer_length: int) -> List[Tuple[float, int, int]]:
    """Scored spans of one window: (start log-prob + end log-prob, first char, end char) in context characters;
    `offsets` are the character offsets of the window's tokens."""
    start_logits, end_logits = np.asarray(start_logits, np.float64), np.asarray(end_logits, np.float64)
    w_len = len(offsets)
    positions = np.r_[0, first: first + w_len]  # [CLS] and the window: the official answer mask
    start_lp = start_logits[positions] - np.logaddexp.reduce(start_logits[positions])
    end_lp = end_logits[positions] - np.logaddexp.reduce(end_logits[positions])
    # index 0 is [CLS]; window token j is index j + 1
    starts = [j for j in np.argsort(-start_lp[1:], kind="stable")[:n_best_size] if is_best[j]]
    ends = np.argsort(-end_lp[1:], kind="stable")[:n_best_size]
    out = []
    for s in starts:
        for t in ends:
            if s <= t < s + max_answer_length:
                out.append((float(start_lp[s + 1] + end_lp[t + 1]), offsets[s][0], offsets[t][1]))
    return out


def best_answers(candidates, context: str, n_best_size: int) -> List[Tuple[str, float]]:
    """The n_best_size best distinct answer texts of one question's candidates (all windows), best first, with
    their scores; [] when no span qualified (the answer is then "", which scores 0 like the official "empty")."""
    ranked, seen = [], set()
    for score, s, t in sorted(candidates, key=lambda c: -c[0]):
        text = context[s:t]
        if text not in seen:
            seen.add(text)
            ranked.append((text, score))
        if len(ranked) == n_best_size:
            break
    return ranked
