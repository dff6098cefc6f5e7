"""Span-extraction reading comprehension on SQuAD-format JSON (CMRC 2018, DRCD).

read: data[].paragraphs[].{context, qas[].{id, question, answers[].{text, answer_start}}} -> QAExample. A train
answer whose answer_start does not point at its text is moved to the nearest occurrence of the text (counted as
`answer_start_realigned`; 21 of CMRC 2018's 10,142 train answers are off by one or two characters); one whose text is
not in the context at all is kept for scoring but cannot be trained on (counted, skipped by featurize).

featurize and decode: paddle_electra/spans.py, the implementation the hub module's predict() uses too (the official
sliding windows; per-window log-softmax, best-context rule, n-best search). A training window that does not hold the
whole answer points at [CLS] (kept, as the official code does). No candidate: "" (the official code writes "empty";
both score 0).
scorer: SpanScorer (official CMRC 2018 EM / F1). Predictions: {question id: answer text} JSON.

Head (deliberate difference, see SpanHead): independent start/end logits; the official code conditions the end on
the start and adds an answerable classifier that is constant for these SQuAD-v1 tasks.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
from tqdm import tqdm

from paddle_electra import spans
from paddle_electra.errors import DataError
from paddle_electra.fileio import write_json
from paddle_electra.metrics import SpanScorer

from ..readers import ReadStats, read_text
from paddle_electra.batching import pad_rows

from .base import Features, Task, run_batches


@dataclass
class QAExample:
    """One question with its context; `answer_start` is the checked character offset of answers[0] (None when that
    answer cannot be located, or the split has no answers)."""

    guid: str  # the question id
    question: str
    context: str
    answers: List[str]
    answer_start: Optional[int]
    article: str  # the article (or paragraph) key: generated splits keep an article on one side

    @property
    def label(self):
        return self.answers or None

    @property
    def answer_text(self):
        return self.answers[0] if self.answers else None


def _need(value, kind, path, field):
    if not isinstance(value, kind):
        names = {list: "a list", dict: "an object", str: "a string", int: "an integer"}
        raise DataError(f"must be {names.get(kind, kind.__name__)}, got {type(value).__name__}", path=path, field=field)
    return value


def locate_answer(context: str, text: str, start) -> Optional[int]:
    """`start` if context[start:] begins with `text`, else the start of the nearest occurrence, else None."""
    if isinstance(start, int) and not isinstance(start, bool) and context.startswith(text, start):
        return start
    hits, at = [], context.find(text)
    while at != -1:
        hits.append(at)
        at = context.find(text, at + 1)
    if not hits:
        return None
    anchor = start if isinstance(start, int) and not isinstance(start, bool) else 0
    return min(hits, key=lambda h: (abs(h - anchor), h))


class SpanTask(Task):
    """SQuAD v1-style extractive QA (every question has an answer span in its context)."""

    kind = "reading-comprehension"
    metric = "F1"
    extensions = ("json",)

    # ---- read ------------------------------------------------------------------------------------------------
    def read(self, path):
        text, _ = read_text(path)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON: {e.msg} (column {e.colno})", path=path, line=e.lineno) from None
        if not isinstance(data, dict) or "data" not in data:
            raise DataError("expected SQuAD-format JSON {'data': [{'paragraphs': [...]}]} (convert raw CMRC 2018 "
                            "files with its squad-style release)", path=path, field="data")
        stats, examples, seen = ReadStats(), [], {}
        for a, article in enumerate(_need(data["data"], list, path, "data")):
            where_a = f"data[{a}]"
            _need(article, dict, path, where_a)
            for p, paragraph in enumerate(_need(article.get("paragraphs"), list, path, f"{where_a}.paragraphs")):
                where_p = f"{where_a}.paragraphs[{p}]"
                _need(paragraph, dict, path, where_p)
                context = _need(paragraph.get("context"), str, path, f"{where_p}.context")
                for q, qa in enumerate(_need(paragraph.get("qas"), list, path, f"{where_p}.qas")):
                    where = f"{where_p}.qas[{q}]"
                    _need(qa, dict, path, where)
                    qid = _need(qa.get("id"), str, path, f"{where}.id")
                    if qid in seen:
                        raise DataError(f"question id {qid!r} repeats {seen[qid]}", path=path, field=f"{where}.id")
                    seen[qid] = where
                    stats.read += 1
                    question = _need(qa.get("question"), str, path, f"{where}.question").strip()
                    if not question or not context.strip():
                        stats.skip("empty question" if not question else "empty context")
                        continue
                    answers = _need(qa.get("answers", []), list, path, f"{where}.answers")
                    golds = []
                    for k, answer in enumerate(answers):
                        _need(answer, dict, path, f"{where}.answers[{k}]")
                        golds.append(_need(answer.get("text"), str, path, f"{where}.answers[{k}].text"))
                    start = None
                    if golds:
                        if not golds[0].strip():
                            raise DataError(f"question {qid!r}: empty answer text", path=path,
                                            field=f"{where}.answers[0].text")
                        given = answers[0].get("answer_start")
                        start = locate_answer(context, golds[0], given)
                        if start is None:
                            stats.note("answer_not_in_context")
                        elif start != given:
                            stats.note("answer_start_realigned")
                    examples.append(QAExample(qid, question, context, golds, start, f"{a}"))
        return examples, stats

    def group_key(self, example):
        return example.article

    def example_key(self, example):
        return example.guid

    # ---- featurize -------------------------------------------------------------------------------------------
    def check_config(self, config):
        """A window must hold [CLS] question [SEP] at least one context token [SEP]."""
        spans.check_lengths(config.max_seq_length, config.max_query_length)

    def featurize(self, examples, tokenizer, config, training):
        self.check_config(config)
        questions = tokenizer.encode_batch([e.question for e in examples], truncation=False)["input_ids"]
        unique = list(dict.fromkeys(e.context for e in examples))
        encoded = tokenizer.encode_batch(unique, truncation=False, return_offsets=True)
        contexts = {c: (ids[1:-1], offsets[1:-1])
                    for c, ids, offsets in zip(unique, encoded["input_ids"], encoded["offsets"])}
        rows, meta = [], []
        stats = {"examples": len(examples), "features": 0, "no_answer_skipped": 0, "answer_outside_window": 0}
        for e, example in enumerate(tqdm(examples, desc="featurize", unit="q", leave=False,
                                         disable=len(examples) < 2000)):
            q_ids = questions[e][1:-1]
            c_ids, offsets = contexts[example.context]
            if training and example.answer_start is None:
                stats["no_answer_skipped"] += 1
                continue
            span = None
            if example.answer_start is not None:
                span = self.answer_tokens(offsets, example.answer_start, len(example.answer_text))
                if span is None and training:
                    stats["no_answer_skipped"] += 1
                    continue
            for w in spans.question_windows(q_ids, c_ids, offsets, tokenizer.cls_token_id, tokenizer.sep_token_id,
                                            config.max_seq_length, config.max_query_length, config.doc_stride):
                start_pos = end_pos = 0
                if span is not None and w.start <= span[0] and span[1] < w.start + w.length:
                    start_pos, end_pos = w.first + span[0] - w.start, w.first + span[1] - w.start
                elif training:
                    stats["answer_outside_window"] += 1
                rows.append((np.asarray(w.input_ids, np.int64), np.asarray(w.token_type_ids, np.int64),
                             np.int64(start_pos), np.int64(end_pos)))
                meta.append((e, w.first, w.is_best, w.offsets))
        stats["features"] = len(rows)
        return Features(rows, meta, stats)

    @staticmethod
    def answer_tokens(offsets, char_start, length):
        """(first, last) context token covering the answer's characters, or None if no token does."""
        char_end = char_start + length
        covering = [i for i, (s, t) in enumerate(offsets) if s < char_end and t > char_start and t > s]
        return (covering[0], covering[-1]) if covering else None

    def collate(self, pad_id):
        def collate(batch):
            return (pad_rows([r[0] for r in batch], pad_id), pad_rows([r[1] for r in batch], 0),
                    np.asarray([r[2] for r in batch], np.int64), np.asarray([r[3] for r in batch], np.int64))
        return collate

    # ---- decode and score ------------------------------------------------------------------------------------
    def evaluate(self, predict, split, features, config):
        candidates = [[] for _ in split.examples]  # (log-prob, char start, char end)
        for indices, (start_logits, end_logits) in run_batches(predict, features.rows, config.eval_batch_size,
                                                               desc=f"eval {split.name}"):
            for row, i in enumerate(indices):
                e, first, is_best, offsets = features.meta[i]
                candidates[e].extend(self.window_candidates(
                    np.asarray(start_logits[row], np.float64), np.asarray(end_logits[row], np.float64),
                    first, is_best, offsets, config))
        predictions = {}
        for example, found in zip(split.examples, candidates):
            ranked = spans.best_answers(found, example.context, config.n_best_size)
            predictions[example.guid] = ranked[0][0] if ranked else ""
        metrics = {"count": len(split.examples)}
        if split.labelled:
            scorer = SpanScorer([(e.guid, e.answers) for e in split.examples])
            scorer.update(predictions)
            metrics = scorer.result()
        return metrics, predictions

    @staticmethod
    def window_candidates(start_logits, end_logits, first, is_best, offsets, config):
        """spans.window_candidates with the run's n_best_size and max_answer_length."""
        return spans.window_candidates(start_logits, end_logits, first, is_best, offsets, config.n_best_size,
                                       config.max_answer_length)

    def write_predictions(self, predictions, path_stem):
        path = f"{path_stem}.json"
        write_json(path, predictions)
        return path
