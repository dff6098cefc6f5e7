"""The Task base class: what every kind (classification, tagging, span) implements once, and the split logic they
share. A data set is a small declarative subclass of a kind (see finetune/tasks/)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from tqdm import tqdm

from paddle_electra.errors import ConfigError, DataError

from .. import readers
from ..readers import ReadStats


@dataclass
class Split:
    """Examples of one split with the reader's statistics and where they came from."""

    name: str
    examples: list
    stats: ReadStats
    source: str  # a path, or a description such as "20% of dev.tsv (by premise)"
    labelled: bool = True


@dataclass
class Features:
    """Model inputs of one split: `rows` are numpy tuples in the hub module's batch order; `meta` is what the
    decoder needs besides the logits (one entry per row, or None)."""

    rows: List[tuple]
    meta: Optional[list] = None
    stats: Dict[str, int] = field(default_factory=dict)


class Task:
    """One fine-tuning data set. Kinds fill read / featurize / evaluate; data sets fill the class attributes."""

    name = ""  # set by @register_task
    kind = ""  # the PaddleHub task string the module is built with
    description = ""
    extensions: Sequence[str] = ("tsv",)
    defaults: Dict[str, object] = {}  # FinetuneConfig overrides for this task
    learning_rates: Dict[str, float] = {}  # per-size learning rates where the task has its own
    metric = "accuracy"  # the dev metric that selects the best epoch
    needs_data_dir = True

    # ---- kind interface --------------------------------------------------------------------------------------
    def read(self, path) -> tuple:
        """(examples, ReadStats) of one file."""
        raise NotImplementedError

    def featurize(self, examples, tokenizer, config, training: bool) -> Features:
        raise NotImplementedError

    def hub_kwargs(self) -> dict:
        """Keyword arguments of hub.Module / ElectraHubModule besides the model itself."""
        return {"task": self.kind}

    def collate(self, pad_id: int) -> Callable:
        """Batch function for the training rows."""
        raise NotImplementedError

    def evaluate(self, predict, split: Split, features: Features, config) -> tuple:
        """(metrics dict, predictions) of a model on a split; `predict(rows)` pads a list of feature rows and returns
        the model's numpy outputs for them."""
        raise NotImplementedError

    def write_predictions(self, predictions, path_stem) -> str:
        raise NotImplementedError

    def has_label(self, example) -> bool:
        """Whether the example carries a gold label (test files may not)."""
        return getattr(example, "label", None) is not None

    def group_key(self, example) -> str:
        """Examples sharing this key go to the same side of a generated train/dev split."""
        return self.example_key(example)

    def example_key(self, example) -> str:
        return str(example.guid)

    # ---- splits ----------------------------------------------------------------------------------------------
    def split_files(self, data_dir) -> Dict[str, Optional[str]]:
        if data_dir is None or not os.path.isdir(data_dir):
            raise DataError("data directory not found (pass --data-dir)", path=data_dir)
        return {split: readers.find_split_file(data_dir, split, self.extensions) for split in ("train", "dev", "test")}

    def load_file_splits(self, data_dir) -> Dict[str, Split]:
        """The splits present as files; a kind or task overrides this when the data is embedded."""
        splits = {}
        for name, path in self.split_files(data_dir).items():
            if path is not None:
                examples, stats = self.read(path)
                splits[name] = Split(name, examples, stats, path,
                                     labelled=all(self.has_label(e) for e in examples))
        return splits

    def load_splits(self, data_dir, config) -> Dict[str, Split]:
        """train / dev (/ test) after the configured generated splits and subsampling."""
        splits = self.load_file_splits(data_dir)
        if config.split_dev_for_train and config.split_train_for_dev:
            raise ConfigError("set only one of split_dev_for_train and split_train_for_dev")
        if config.split_dev_for_train:
            if "train" in splits:
                raise ConfigError(f"split_dev_for_train is set but {splits['train'].source} exists: a generated "
                                  f"split would train on dev examples the real train file does not hold")
            splits["train"], splits["dev"] = self._carve(splits, "dev", config.split_dev_for_train, "train")
        elif config.split_train_for_dev:
            if "dev" in splits:
                raise ConfigError(f"split_train_for_dev is set but {splits['dev'].source} exists")
            splits["dev"], splits["train"] = self._carve(splits, "train", config.split_train_for_dev, "dev")
        for name in ("train", "dev"):
            if name in splits and splits[name].examples and not splits[name].labelled:
                unlabelled = next(e for e in splits[name].examples if not self.has_label(e))
                raise DataError(f"the {name} split needs gold labels, but example {unlabelled.guid!r} "
                                f"has none (is the label column missing?)", path=splits[name].source, field="label")
        missing = [s for s in ("train", "dev") if s not in splits and (s == "dev" or config.do_train)]
        if missing:
            hint = {"train": "pass --split_dev_for_train 0.5 to train on half of dev (smoke runs only)",
                    "dev": "pass --split_train_for_dev 0.1 to hold out a tenth of train"}[missing[0]]
            raise DataError(f"no {missing[0]} file for task {self.name} (looked for {missing[0]}.* and "
                            f"*_{missing[0]}.* with extensions {list(self.extensions)}); {hint}", path=data_dir)
        if config.max_train_examples and "train" in splits:
            splits["train"].examples = readers.subsample(splits["train"].examples, config.max_train_examples,
                                                         self.example_key)
        if config.max_eval_examples:
            for name in ("dev", "test"):
                if name in splits:
                    splits[name].examples = readers.subsample(splits[name].examples, config.max_eval_examples,
                                                              self.example_key)
        for split in splits.values():
            if not split.examples:
                raise DataError(f"the {split.name} split has no usable examples "
                                f"(skipped: {split.stats.skipped or 'none'})", path=split.source)
        return splits

    def _carve(self, splits, source_name, fraction, new_name):
        """(new split, what is left of the source): `fraction` of the source's groups, chosen by a stable hash."""
        source = splits.get(source_name)
        if source is None:
            raise DataError(f"cannot make a {new_name} split: there is no {source_name} file", path=None)
        rest, taken = readers.split_by_group(source.examples, fraction, self.group_key)
        if not rest or not taken:
            raise DataError(f"a {fraction:.0%} split of {len(source.examples)} {source_name} examples leaves one "
                            f"side empty", path=source.source)
        described = f"{fraction:.0%} of {source.source} (grouped, stable hash)"
        left = f"{1 - fraction:.0%} of {source.source} (the rest)"
        return (Split(new_name, taken, source.stats, described, source.labelled),
                Split(source_name, rest, source.stats, left, source.labelled))


# ---- shared batching helpers ---------------------------------------------------------------------------------
def run_batches(predict, rows, batch_size, desc="eval"):
    """Call `predict(list of rows)` (which pads and runs the model) on consecutive batches; yields (index range,
    numpy outputs)."""
    for start in tqdm(range(0, len(rows), batch_size), desc=desc, unit="batch", leave=False,
                      disable=len(rows) <= batch_size):
        batch = rows[start: start + batch_size]
        yield range(start, start + len(batch)), predict(batch)
