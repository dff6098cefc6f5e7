"""Single-text and text-pair classification (ChnSentiCorp, LCQMC, BQ Corpus, XNLI, CAIL 2018, review sentiment).

read: a TSV/CSV file, columns found by header name -> TextExample. featurize: "[CLS] a [SEP] (b [SEP])", segment 0
for a, 1 for b, pairs truncated from the longer side (the official rule, via ElectraTokenizer). head: the module's
seq-cls head (dropout + dense on [CLS]). scorer: AccuracyScorer. Predictions: one label per line, in file order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import numpy as np

from paddle_electra.errors import DataError
from paddle_electra.fileio import write_text
from paddle_electra.metrics import AccuracyScorer

from ..readers import ReadStats, read_table
from paddle_electra.batching import pad_rows

from .base import Features, Task, run_batches


@dataclass
class TextExample:
    """One classification example; `guid` is "file:line" so an error or prediction can be traced to its row."""

    guid: str
    text_a: str
    text_b: Optional[str]
    label: Optional[str]


class ClassificationTask(Task):
    """A data set of (text_a[, text_b], label) rows; subclasses declare labels and accepted column names."""

    kind = "seq-cls"
    metric = "accuracy"
    labels: Sequence[str] = ()
    label_aliases: Dict[str, str] = {}  # other spellings of a label in the data -> the label
    text_a_names: Sequence[str] = ("text_a", "sentence1", "sentence", "text", "text_left", "query", "premise")
    text_b_names: Optional[Sequence[str]] = None  # None: single-text task
    label_names: Sequence[str] = ("label", "gold_label", "labels")
    headerless: Optional[Sequence[str]] = None  # column order of header-less copies, e.g. ("text_a", "text_b", "label")
    extra_columns: Dict[str, Sequence[str]] = {}  # optional columns a task filters on (XNLI's language)

    # ---- read ------------------------------------------------------------------------------------------------
    def label_of(self, value: str):
        """The canonical label of a raw label value, or None if it is not one."""
        value = value.strip()
        value = self.label_aliases.get(value, value)
        return value if value in self.labels else None

    def keep_row(self, row: dict, stats: ReadStats) -> bool:
        """Row filter hook (XNLI keeps one language); count what is dropped in `stats`."""
        return True

    def read(self, path):
        columns = {"text_a": self.text_a_names}
        if self.text_b_names is not None:
            columns["text_b"] = self.text_b_names
        columns["label"] = self.label_names
        columns.update(self.extra_columns)
        optional = ("label",) + tuple(self.extra_columns)

        def looks_like_data(row):
            return self.label_of(row.get("label", "")) is not None

        rows = read_table(path, columns, optional=optional, headerless=self.headerless,
                          looks_like_data=looks_like_data)
        labelled = any("label" in row for _, row in rows[:1])
        stats, examples = ReadStats(), []
        for line, row in rows:
            stats.read += 1
            if not self.keep_row(row, stats):
                continue
            text_a = row["text_a"].strip()
            text_b = row["text_b"].strip() if "text_b" in row else None
            if not text_a or (self.text_b_names is not None and not text_b):
                stats.skip("empty text")  # nothing to classify; the official reader would feed "[CLS] [SEP]"
                continue
            label = None
            if labelled:
                label = self.label_of(row["label"])
                if label is None:
                    raise DataError(f"label {row['label']!r} is not one of {list(self.labels)}", path=path,
                                    line=line, field="label")
            examples.append(TextExample(f"{path}:{line}", text_a, text_b, label))
        return examples, stats

    def group_key(self, example) -> str:
        # XNLI has three hypotheses per premise: keep them on one side of a generated split
        return example.text_a

    def example_key(self, example) -> str:
        return f"{example.text_a}\t{example.text_b}\t{example.guid}"

    # ---- featurize -------------------------------------------------------------------------------------------
    def featurize(self, examples, tokenizer, config, training):
        pairs = None if self.text_b_names is None else [e.text_b for e in examples]
        encoded = tokenizer.encode_batch([e.text_a for e in examples], pairs, max_seq_len=config.max_seq_length,
                                         truncation="longest_first")
        index = {label: i for i, label in enumerate(self.labels)}
        rows = []
        for ids, types, example in zip(encoded["input_ids"], encoded["token_type_ids"], examples):
            label = index[example.label] if example.label is not None else -1
            rows.append((np.asarray(ids, np.int64), np.asarray(types, np.int64), np.int64(label)))
        truncated = sum(1 for ids in encoded["input_ids"] if len(ids) == config.max_seq_length)
        return Features(rows, stats={"features": len(rows), "at_max_seq_length": truncated})

    def collate(self, pad_id):
        def collate(batch):
            return (pad_rows([r[0] for r in batch], pad_id), pad_rows([r[1] for r in batch], 0),
                    np.asarray([r[2] for r in batch], np.int64))
        return collate

    def hub_kwargs(self):
        return {"task": self.kind, "num_classes": len(self.labels),
                "label_map": {i: label for i, label in enumerate(self.labels)}}

    # ---- evaluate --------------------------------------------------------------------------------------------
    def evaluate(self, predict, split, features, config):
        scorer = AccuracyScorer()
        predicted = np.zeros(len(features.rows), np.int64)
        for indices, logits in run_batches(predict, features.rows, config.eval_batch_size, desc=f"eval {split.name}"):
            logits = np.asarray(logits)
            predicted[indices.start: indices.stop] = logits.argmax(axis=-1)
            if split.labelled:
                scorer.update(logits, np.asarray([features.rows[i][2] for i in indices]))
        metrics = scorer.result() if split.labelled else {"count": len(features.rows)}
        return metrics, [self.labels[i] for i in predicted]

    def write_predictions(self, predictions, path_stem):
        path = f"{path_stem}.txt"
        write_text(path, "".join(f"{label}\n" for label in predictions))
        return path
