"""Evaluation metrics as Scorer objects (update / result / reset), after google electra's scorer.py.

Conventions: accuracy, precision, recall, F1 and EM are percentages in [0, 100]; ROC AUC is a probability in
[0, 1]. Inputs may be lists, numpy arrays or Paddle/torch tensors; nothing here imports Paddle.

The CMRC 2018 / DRCD span metric reproduces the official evaluation script (ymcui/cmrc2018
`baseline/cmrc2018_evaluate.py` v6, which scores the same as `squad-style-data/cmrc2018_evaluate.py` v5 and
Chinese-ELECTRA's `cmrc2018_drcd_evaluate.py`) operation by operation, so that scores agree to the last bit.
"""
from __future__ import annotations

import abc
import functools
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from paddle_electra.errors import DataError

__all__ = [
    "CMRC_SP_CHAR",
    "AccuracyScorer",
    "BinaryScorer",
    "ChunkF1Scorer",
    "Scorer",
    "SpanScorer",
    "cmrc_em",
    "cmrc_f1",
    "cmrc_segments",
    "evaluate_predictions",
    "extract_chunks",
    "format_cmrc_result",
    "load_cmrc_questions",
    "roc_auc",
]


class Scorer(abc.ABC):
    """Accumulates predictions over an evaluation pass; `result()` may be called any time, `reset()` starts over."""

    @abc.abstractmethod
    def update(self, *args, **kwargs):
        """Add one batch of predictions and references."""

    @abc.abstractmethod
    def result(self) -> dict:
        """Metrics over everything added since the last reset."""

    @abc.abstractmethod
    def reset(self):
        """Forget everything added so far."""


def _to_numpy(x):
    """A numpy view of a list, array or framework tensor (Paddle and torch tensors both offer detach/cpu/numpy)."""
    if isinstance(x, np.ndarray):
        return x
    for method in ("detach", "cpu", "numpy"):
        if hasattr(x, method) and not isinstance(x, (list, tuple)):
            x = getattr(x, method)()
    return np.asarray(x)


class _LossMean:
    """Mean loss per example, whether batches report one mean loss or one loss per example."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def add(self, loss, n):
        loss = _to_numpy(loss).astype(np.float64)
        if loss.ndim == 0:
            # a batch-mean loss stands for n examples, so the pass-level mean is example-weighted like google's
            self.total += float(loss) * n
            self.count += n
        else:
            if loss.size != n:
                raise ValueError(f"loss has {loss.size} values but the batch has {n} examples")
            self.total += float(loss.sum())
            self.count += n

    def mean(self):
        return self.total / self.count if self.count else None


# --------------------------------------------------------------------------------------------------------------
# Classification


class AccuracyScorer(Scorer):
    """Accuracy in percent over all examples (and the per-example mean loss when losses are given)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self._correct, self._count, self._loss = 0, 0, _LossMean()

    def update(self, predictions, labels, loss=None):
        """Add a batch: `predictions` are class ids shaped like `labels`, or logits with one extra last axis."""
        labels = _to_numpy(labels)
        predictions = _to_numpy(predictions)
        if predictions.ndim == labels.ndim + 1:
            predictions = predictions.argmax(axis=-1)
        if predictions.shape != labels.shape:
            raise ValueError(f"predictions of shape {predictions.shape} do not match labels of shape {labels.shape}")
        self._correct += int((predictions == labels).sum())
        self._count += int(labels.size)
        if loss is not None:
            self._loss.add(loss, int(labels.size))

    def result(self) -> dict:
        if self._count == 0:
            raise ValueError("AccuracyScorer.result() called before any example was added")
        out = {"accuracy": 100.0 * self._correct / self._count, "count": self._count}
        if self._loss.count:
            out["loss"] = self._loss.mean()
        return out


# --------------------------------------------------------------------------------------------------------------
# CMRC 2018 / DRCD span metric (official evaluation rules)

# The official `sp_char` list, in file order. "……" is one 2-character entry and the script tests single
# characters against the list, so it never matches: a lone "…" is kept (as are ASCII . , ? ! ( ) " ' and 【】).
CMRC_SP_CHAR = (
    "-", ":", "_", "*", "^", "/", "\\", "~", "`", "+", "=",
    "，", "。", "：", "？", "！", "“", "”", "；", "’", "《", "》", "……", "·", "、",
    "「", "」", "（", "）", "－", "～", "『", "』",
)
_SP_CHAR = frozenset(CMRC_SP_CHAR)


@functools.lru_cache(maxsize=1)
def _run_tokenizer():
    # The official script calls nltk.word_tokenize(run): Punkt sentence splitting (needs the 'punkt_tab' data
    # download, not available offline) followed by NLTKWordTokenizer on each sentence. We run NLTKWordTokenizer on
    # the whole run, i.e. word_tokenize(run, preserve_line=True), which needs no data. The two differ only when
    # Punkt breaks a sentence *inside* a run: '?' and '!' are split off either way, but NLTKWordTokenizer splits
    # a period off only at the end of its input, so "mr. smith. he" gives [mr., smith., he] here and
    # [mr., smith, ., he] officially if Punkt breaks after "smith.". That needs ASCII '.'/'?'/'!' + space + more
    # non-Chinese text within one answer (Chinese '。' is an sp_char, dropped without ending the run). In CMRC dev
    # (9,657 golds) only 9 golds have one, all initials like "henry a. walsh" that an untrained Punkt does not
    # split; DRCD dev has none. A gold still scores F1 = 100 against itself, and EM never tokenizes.
    # NLTKWordTokenizer's rules change between nltk releases (3.10 splits em dashes and treats a leading
    # apostrophe differently), which is why nltk is pinned; tests/fixtures/cmrc_eval_cases.json records both.
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer().tokenize


def _is_cmrc_chinese(char):
    # the official test is re.search(r'[\u4e00-\u9fa5]', char): CJK Unified Ideographs up to U+9FA5 only,
    # so 〇, Extension A/B, U+9FA6-U+9FFF and compatibility ideographs are "other" characters
    return "\u4e00" <= char <= "\u9fa5"


def _normalize(text):
    return str(text).lower().strip()


def cmrc_segments(text) -> list:
    """The official `mixed_segmentation(text, rm_punc=True)`: one segment per Chinese char, nltk tokens elsewhere."""
    tokenize = _run_tokenizer()
    segments, run = [], []
    for char in _normalize(text):
        if char in _SP_CHAR:
            continue  # dropped without ending the pending run: "ω-force" -> "ωforce"
        if _is_cmrc_chinese(char):
            if run:
                segments.extend(tokenize("".join(run)))
                run = []
            segments.append(char)
        else:
            run.append(char)
    if run:
        segments.extend(tokenize("".join(run)))
    return segments


def _em_key(text):
    # official remove_punctuation: strip happens before deletion, so "「 北京 」" keeps its inner spaces
    return "".join(char for char in _normalize(text) if char not in _SP_CHAR)


def _longest_common_substring(a, b):
    """Length of the longest common contiguous run of equal items of `a` and `b`."""
    best = 0
    previous = [0] * (len(b) + 1)
    for item in a:
        current = [0] * (len(b) + 1)
        for j, other in enumerate(b, start=1):
            if item == other:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def _f1_fraction(prediction_segments, gold_segments):
    common = _longest_common_substring(gold_segments, prediction_segments)
    if common == 0:
        return 0
    # same operations in the same order as the official calc_f1_score, so the float is bit-identical
    precision = 1.0 * common / len(prediction_segments)
    recall = 1.0 * common / len(gold_segments)
    return (2 * precision * recall) / (precision + recall)


def _question_scores(prediction, golds):
    """(F1 fraction, EM 0/1) for one question, as the official calc_f1_score / calc_em_score return them."""
    prediction_segments = cmrc_segments(prediction)
    f1 = max(_f1_fraction(prediction_segments, cmrc_segments(gold)) for gold in golds)
    prediction_key = _em_key(prediction)
    em = int(any(_em_key(gold) == prediction_key for gold in golds))
    return f1, em


def _check_golds(golds):
    if isinstance(golds, str) or not isinstance(golds, Sequence) or len(golds) == 0:
        raise ValueError("golds must be a non-empty list of answer strings")


def cmrc_f1(prediction, golds) -> float:
    """Official CMRC F1 of one prediction in percent: longest common substring of segments, max over `golds`."""
    _check_golds(golds)
    return 100.0 * _question_scores(prediction, golds)[0]


def cmrc_em(prediction, golds) -> float:
    """Official CMRC exact match in percent (100.0 or 0.0): equal to any gold after lower/strip/sp_char removal."""
    _check_golds(golds)
    return 100.0 * _question_scores(prediction, golds)[1]


def _as_text(value, what, path, field):
    # the official script applies str() to predictions and golds; numbers therefore score as their str() form,
    # but null/bool/list/object are certainly mistakes and are refused rather than scored as "None" or "[...]"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise DataError(f"{what} must be a string, got {type(value).__name__}", path=path, field=field)


def load_cmrc_questions(dataset, path=None) -> list:
    """[(question id, [gold texts])] in file order from SQuAD-style CMRC/DRCD JSON or the raw CMRC 2018 list."""
    if isinstance(dataset, Mapping):
        if "data" not in dataset:
            raise DataError("expected SQuAD-style {'data': [...]} or a raw CMRC list of documents", path=path,
                            field="data")
        articles, prefix = dataset["data"], "data"
    else:
        articles, prefix = dataset, ""
    if not isinstance(articles, list):
        raise DataError("must be a list of articles", path=path, field=prefix or "<top level>")
    questions = []
    for a, article in enumerate(articles):
        where = f"{prefix}[{a}]"
        if not isinstance(article, Mapping):
            raise DataError("must be an object", path=path, field=where)
        # as v6: an article holds 'paragraphs', or is itself a paragraph (raw CMRC: context_id/context_text/qas)
        if "paragraphs" in article:
            paragraphs = article["paragraphs"]
            if not isinstance(paragraphs, list):
                raise DataError("must be a list", path=path, field=f"{where}.paragraphs")
            paragraph_fields = [f"{where}.paragraphs[{p}]" for p in range(len(paragraphs))]
        else:
            paragraphs, paragraph_fields = [article], [where]
        for paragraph, pfield in zip(paragraphs, paragraph_fields):
            if not isinstance(paragraph, Mapping) or not isinstance(paragraph.get("qas"), list):
                raise DataError("must be an object with a 'qas' list", path=path, field=f"{pfield}.qas")
            for q, qa in enumerate(paragraph["qas"]):
                qfield = f"{pfield}.qas[{q}]"
                if not isinstance(qa, Mapping):
                    raise DataError("must be an object", path=path, field=qfield)
                # ids are used as given, as v6 does (v5 strips them; no CMRC or DRCD id has outer whitespace)
                key = "id" if "id" in qa else "query_id"
                qid = qa.get(key)
                if not isinstance(qid, str):
                    raise DataError("question needs a string 'id' (or 'query_id')", path=path, field=f"{qfield}.{key}")
                answers = qa.get("answers")
                if not isinstance(answers, list) or not answers:
                    # the official script crashes on max([]) here; name the question instead
                    raise DataError(f"question {qid!r} needs a non-empty 'answers' list", path=path,
                                    field=f"{qfield}.answers")
                golds = []
                for k, answer in enumerate(answers):
                    afield = f"{qfield}.answers[{k}]"
                    if isinstance(answer, Mapping):
                        if "text" not in answer:
                            raise DataError("answer object needs 'text'", path=path, field=f"{afield}.text")
                        golds.append(_as_text(answer["text"], "answer text", path, f"{afield}.text"))
                    else:
                        golds.append(_as_text(answer, "answer", path, afield))
                questions.append((qid, golds))
    if not questions:
        raise DataError("holds no questions, so EM and F1 are undefined", path=path)
    return questions


def _score_questions(questions, predictions, on_skip=None):
    f1_sum, em_sum, skipped = 0, 0, 0
    for qid, golds in questions:
        if qid not in predictions:
            skipped += 1
            if on_skip is not None:
                on_skip(qid)
            continue
        f1, em = _question_scores(predictions[qid], golds)
        f1_sum += f1
        em_sum += em
    total = len(questions)
    f1_score = 100.0 * f1_sum / total
    em_score = 100.0 * em_sum / total
    return {"AVERAGE": (em_score + f1_score) * 0.5, "F1": f1_score, "EM": em_score, "TOTAL": total, "SKIP": skipped}


def _check_predictions(predictions, path):
    if not isinstance(predictions, Mapping):
        raise DataError("predictions must be a JSON object mapping question id to answer text", path=path)
    return {qid: _as_text(text, "prediction", path, qid) for qid, text in predictions.items()}


def evaluate_predictions(dataset, predictions, dataset_path=None, predictions_path=None,
                         on_skip: Callable[[str], None] | None = None) -> dict:
    """Official CMRC/DRCD scores {"AVERAGE","F1","EM","TOTAL","SKIP"}; EM/F1 in percent over TOTAL questions.

    A question without a prediction scores 0 and counts in SKIP (`on_skip(qid)` is called for it, where the
    official script logs "Unanswered question"); predictions for unknown ids are ignored, as officially.
    """
    questions = load_cmrc_questions(dataset, path=dataset_path)
    return _score_questions(questions, _check_predictions(predictions, predictions_path), on_skip)


def format_cmrc_result(scores, prediction_file) -> OrderedDict:
    """The official output object: AVERAGE/F1/EM as '%.3f' strings, TOTAL, SKIP, and FILE (the predictions path)."""
    out = OrderedDict()
    out["AVERAGE"] = f"{scores['AVERAGE']:.3f}"  # same digits as the official '%.3f' % x
    out["F1"] = f"{scores['F1']:.3f}"
    out["EM"] = f"{scores['EM']:.3f}"
    out["TOTAL"] = scores["TOTAL"]
    out["SKIP"] = scores["SKIP"]
    out["FILE"] = str(prediction_file)
    return out


class SpanScorer(Scorer):
    """CMRC 2018 / DRCD EM and F1 of predicted answer texts against the gold answers of a dataset."""

    def __init__(self, questions):
        """`questions`: [(question id, [gold texts])] in dataset order, e.g. from `load_cmrc_questions`."""
        self._questions = [(qid, list(golds)) for qid, golds in questions]
        for qid, golds in self._questions:
            _check_golds(golds)
        if not self._questions:
            raise ValueError("SpanScorer needs at least one question")
        self.reset()

    @classmethod
    def from_dataset(cls, dataset, path=None):
        """A scorer over every question of a SQuAD-style or raw CMRC dataset object."""
        return cls(load_cmrc_questions(dataset, path=path))

    def reset(self):
        self._predictions = {}

    def update(self, predictions: Mapping[str, str]):
        """Add {question id: predicted answer text}; predicting the same question twice is a decoding bug."""
        for qid, text in predictions.items():
            if qid in self._predictions:
                raise ValueError(f"question {qid!r} was already predicted")
            self._predictions[qid] = _as_text(text, "prediction", None, qid)

    def result(self) -> dict:
        return _score_questions(self._questions, self._predictions)


# --------------------------------------------------------------------------------------------------------------
# Token classification (BIO / BIOES chunks)


def _split_tag(tag, where):
    if tag == "O":
        return "O", ""
    if not isinstance(tag, str) or len(tag) < 3 or tag[0] not in "BIES" or tag[1] != "-":
        raise DataError(f"tag {tag!r} is neither 'O' nor B-/I-/E-/S- followed by a type", field=where)
    return tag[0], tag[2:]


def extract_chunks(tags, where="tags") -> list:
    """Chunks (type, start, end exclusive) of one BIO or BIOES tag sequence, with conlleval's rules.

    Ill-formed sequences are read as conlleval (and seqeval's default mode) read them: an I-/E- tag that does
    not continue a chunk of its own type starts a new chunk, and a chunk ends at O, at B-/S-, after E-/S-, or
    where the type changes.
    """
    chunks = []
    start, chunk_type = None, ""
    previous_prefix = "O"
    for i, tag in enumerate(list(tags) + ["O"]):  # a trailing O closes the last chunk
        prefix, tag_type = _split_tag(tag, f"{where}[{i}]")
        if start is not None and (previous_prefix in "ES" or prefix in "BSO" or tag_type != chunk_type):
            chunks.append((chunk_type, start, i))
            start = None
        if prefix != "O" and start is None:
            start, chunk_type = i, tag_type
        previous_prefix = prefix
    return chunks


def _as_list(sequence):
    return list(sequence) if isinstance(sequence, (list, tuple)) else _to_numpy(sequence).tolist()


def _prf(correct, predicted, gold):
    precision = 100.0 * correct / predicted if predicted else 0.0
    recall = 100.0 * correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


class ChunkF1Scorer(Scorer):
    """Micro precision / recall / F1 (percent) of exact chunks in BIO or BIOES tagging, plus per-type scores.

    A chunk counts as correct only when its type, start and end all match a gold chunk in the same sentence;
    0/0 precision or recall is reported as 0, as seqeval does.
    """

    def __init__(self, label_list=None, ignore_label=-100):
        """`label_list` maps integer tag ids to tag strings; gold ids equal to `ignore_label` are dropped."""
        self.label_list = list(label_list) if label_list is not None else None
        self.ignore_label = ignore_label
        self.reset()

    def reset(self):
        self._sentences = 0
        self._correct, self._predicted, self._gold = {}, {}, {}

    def _tags(self, values, keep, where):
        if keep is not None:
            values = [v for v, k in zip(values, keep) if k]
        if self.label_list is None:
            return values
        tags = []
        for i, v in enumerate(values):
            if isinstance(v, str):
                tags.append(v)
            elif not 0 <= int(v) < len(self.label_list):
                raise DataError(f"tag id {v} is outside the label list of {len(self.label_list)}", field=f"{where}[{i}]")
            else:
                tags.append(self.label_list[int(v)])
        return tags

    def update(self, predictions, labels):
        """Add a batch of sentences: tag-string sequences, or id sequences (padded arrays allowed) with label_list."""
        if len(predictions) != len(labels):
            raise ValueError(f"{len(predictions)} predicted sentences but {len(labels)} gold sentences")
        for s, (predicted, gold) in enumerate(zip(predictions, labels)):
            gold_values = _as_list(gold)
            keep = None
            if self.label_list is not None:
                keep = [isinstance(v, str) or v != self.ignore_label for v in gold_values]
            gold_tags = self._tags(gold_values, keep, f"labels[{s}]")
            predicted_values = _as_list(predicted)
            if len(predicted_values) != len(gold_values):
                raise ValueError(f"sentence {s}: {len(predicted_values)} predicted tags but {len(gold_values)} gold tags")
            predicted_tags = self._tags(predicted_values, keep, f"predictions[{s}]")
            predicted_chunks = set(extract_chunks(predicted_tags, f"predictions[{s}]"))
            gold_chunks = set(extract_chunks(gold_tags, f"labels[{s}]"))
            for chunk_type, *_ in predicted_chunks:
                self._predicted[chunk_type] = self._predicted.get(chunk_type, 0) + 1
            for chunk_type, *_ in gold_chunks:
                self._gold[chunk_type] = self._gold.get(chunk_type, 0) + 1
            for chunk_type, *_ in predicted_chunks & gold_chunks:
                self._correct[chunk_type] = self._correct.get(chunk_type, 0) + 1
            self._sentences += 1

    def result(self) -> dict:
        if self._sentences == 0:
            raise ValueError("ChunkF1Scorer.result() called before any sentence was added")
        correct, predicted, gold = (sum(d.values()) for d in (self._correct, self._predicted, self._gold))
        precision, recall, f1 = _prf(correct, predicted, gold)
        per_type = {}
        for chunk_type in sorted(set(self._predicted) | set(self._gold)):
            p, r, f = _prf(self._correct.get(chunk_type, 0), self._predicted.get(chunk_type, 0),
                           self._gold.get(chunk_type, 0))
            per_type[chunk_type] = {"precision": p, "recall": r, "f1": f, "support": self._gold.get(chunk_type, 0)}
        return {"precision": precision, "recall": recall, "f1": f1, "correct": correct, "predicted": predicted,
                "gold": gold, "sentences": self._sentences, "per_type": per_type}


# --------------------------------------------------------------------------------------------------------------
# Replaced-token detection (the ELECTRA discriminator)


def roc_auc(scores, labels):
    """Exact ROC AUC = Mann-Whitney U / (n_pos * n_neg), tied scores sharing their average rank; None if one class."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores but {labels.size} labels")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN, which has no rank")
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    _, group, counts = np.unique(scores, return_inverse=True, return_counts=True)
    last_rank = np.cumsum(counts)  # 1-based rank of the last member of each tie group
    average_rank = last_rank - (counts - 1) / 2.0
    # ranks are half-integers and their sum stays far below 2**53, so this float64 sum is exact
    positive_rank_sum = float(average_rank[group.ravel()][labels].sum())
    u = positive_rank_sum - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


class BinaryScorer(Scorer):
    """Discriminator metrics from logits and 0/1 labels: accuracy, precision, recall (percent) and exact ROC AUC.

    A token is predicted "replaced" when its logit > 0 (sigmoid > 0.5), as in the reference. Precision (recall)
    with no predicted (no actual) positives is reported as 0. The reference's tf.metrics.auc approximates AUC
    with 200 thresholds; this one is exact, so small differences are expected.
    """

    def __init__(self):
        self.reset()

    def reset(self):
        self._logits, self._labels, self._loss = [], [], _LossMean()

    def update(self, logits, labels, mask=None, loss=None):
        """Add a batch; `mask` (same shape, 1 = real token) selects the positions to score, as input_mask does."""
        logits = _to_numpy(logits).astype(np.float64)
        labels = _to_numpy(labels)
        if logits.shape != labels.shape:
            raise ValueError(f"logits of shape {logits.shape} do not match labels of shape {labels.shape}")
        if not np.isin(labels, (0, 1)).all():
            raise ValueError("labels must be 0 (original) or 1 (replaced)")
        if mask is not None:
            mask = _to_numpy(mask)
            if mask.shape != labels.shape:
                raise ValueError(f"mask of shape {mask.shape} does not match labels of shape {labels.shape}")
            keep = mask.astype(bool)
            logits, labels = logits[keep], labels[keep]
        self._logits.append(logits.ravel())
        self._labels.append(labels.ravel().astype(bool))
        if loss is not None:
            self._loss.add(loss, int(labels.size))

    def result(self) -> dict:
        logits = np.concatenate(self._logits) if self._logits else np.zeros(0)
        labels = np.concatenate(self._labels) if self._labels else np.zeros(0, dtype=bool)
        if labels.size == 0:
            raise ValueError("BinaryScorer.result() called before any (unmasked) token was added")
        predicted = logits > 0
        true_positives = int((predicted & labels).sum())
        n_predicted, n_positive = int(predicted.sum()), int(labels.sum())
        out = {
            "accuracy": 100.0 * int((predicted == labels).sum()) / labels.size,
            "precision": 100.0 * true_positives / n_predicted if n_predicted else 0.0,
            "recall": 100.0 * true_positives / n_positive if n_positive else 0.0,
            "auc": roc_auc(logits, labels),
            "count": int(labels.size),
            "positives": n_positive,
        }
        if self._loss.count:
            out["loss"] = self._loss.mean()
        return out
