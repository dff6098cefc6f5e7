"""CAIL 2018 crime prediction: the accusation of a criminal case from its fact description (JSON lines).

Label protocol. The official CAIL 2018 task is multi-label (a case may carry several accusations; scored by macro/
micro F1). HFL report a single "crime prediction" accuracy for CAIL 2018 and no code for it; an accuracy is only
defined when each case has one gold label, so we read their number as single-label classification and implement
exactly that: a case with exactly one accusation is an example, its accusation the label; cases with several
accusations are skipped and counted (388 + 13 + 2 of the 3,675 cases in ../shared/data's sample). The label set is
the 202 accusations of `accu.txt` (the official list, ids in file order) when the data directory has it, otherwise
the sorted accusations found in the split files. Accusations are compared after removing the "[" and "]" that the
data files put around alternatives ("[走私、贩卖、运输、制造]毒品"), as the official baseline does; accu.txt spells
them without brackets.

Files: `train.json` / `dev.json` / `test.json` or the official `data_train.json` / `data_valid.json` /
`data_test.json` (any name holding train / valid / test); UTF-8 or GB18030 (detected).
"""
import json
import os

from paddle_electra.errors import DataError

from ..kinds import ClassificationTask, TextExample
from ..readers import ReadStats, read_text
from .registry import register_task


def accusation_name(raw: str) -> str:
    return raw.replace("[", "").replace("]", "").strip()


@register_task("cail2018")
class CAIL2018(ClassificationTask):
    """Single-label accusation prediction from the fact description."""

    description = "CAIL 2018 crime prediction, single-accusation cases (accuracy)"
    extensions = ("json", "jsonl")
    defaults = {"max_seq_length": 512}  # facts average ~420 characters
    learning_rates = {"small": 5e-4, "small-ex": 5e-4, "base": 3e-4, "large": 1e-4}  # the seed README's CAIL rates

    def __init__(self):
        self.labels = ()
        self.label_source = None

    def read(self, path):
        text, encoding = read_text(path)
        stats, examples = ReadStats(), []
        stats.note(f"encoding_{encoding}")
        for number, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                case = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"invalid JSON ({e.msg}, column {e.colno})", path=path, line=number) from None
            fact = case.get("fact") if isinstance(case, dict) else None
            meta = case.get("meta") if isinstance(case, dict) else None
            if not isinstance(fact, str):
                raise DataError("case needs a string 'fact'", path=path, line=number, field="fact")
            accusations = meta.get("accusation") if isinstance(meta, dict) else None
            if not isinstance(accusations, list) or not all(isinstance(a, str) for a in accusations):
                raise DataError("case needs meta.accusation, a list of strings", path=path, line=number,
                                field="meta.accusation")
            stats.read += 1
            if not fact.strip():
                stats.skip("empty text")
                continue
            if len(accusations) != 1:
                stats.skip("not exactly one accusation")
                continue
            examples.append(TextExample(f"{path}:{number}", fact.strip(), None, accusation_name(accusations[0])))
        return examples, stats

    def load_file_splits(self, data_dir):
        splits = super().load_file_splits(data_dir)
        accu = os.path.join(data_dir, "accu.txt")
        if os.path.isfile(accu):
            names, _ = read_text(accu)
            self.labels = tuple(n.strip() for n in names.split("\n") if n.strip())
            self.label_source = accu
        else:
            self.labels = tuple(sorted({e.label for s in splits.values() for e in s.examples if e.label}))
            self.label_source = "the accusations of the split files (no accu.txt)"
        known = set(self.labels)
        for split in splits.values():
            for example in split.examples:
                if example.label is not None and example.label not in known:
                    path, _, line = example.guid.rpartition(":")
                    raise DataError(f"accusation {example.label!r} is not in {self.label_source}", path=path,
                                    line=int(line), field="meta.accusation")
        return splits
