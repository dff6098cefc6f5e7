"""FinetuneConfig: the fine-tuning run config, resolved as defaults -> task defaults -> json hparams -> flags.

Field names are those of the official `configure_finetuning.py` (learning_rate, num_train_epochs, train_batch_size,
max_seq_length, layerwise_lr_decay, ...), so the seed's `params_cmrc2018.json` loads as it is. A few official keys
that describe the TF pipeline rather than the run (`vocab_size`, `do_lower_case`) are checked against the model
instead of being ignored. Any other unknown key raises ConfigError naming the source (file or flag).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from paddle_electra.errors import ConfigError
from paddle_electra.fileio import read_json_file
from paddle_electra import runconfig
from paddle_electra.runconfig import field_types

# The seed's README recommends small 3e-4 and base 1e-4 (used for its results tables, "not tuned"). Large takes the
# official size override (5e-5, layer-wise decay 0.9). small-ex is small's width at 24 layers: we keep small's 3e-4
# (the width, not the depth, sets the Adam step scale; the maintainer's 5e-4 is a suggestion for other tasks) and
# use large's 0.9 decay, because 0.8 over 24 layers would leave the embeddings at 0.8^26 = 0.3% of the head's LR.
# "tiny" is the test-only preset (a few steps on random weights need a large LR to move at all).
SIZE_LEARNING_RATES = {"tiny": 1e-3, "small": 3e-4, "small-ex": 3e-4, "base": 1e-4, "large": 5e-5}
SIZE_LAYERWISE_DECAY = {"tiny": 0.8, "small": 0.8, "small-ex": 0.9, "base": 0.8, "large": 0.9}
MODEL_SIZES = tuple(SIZE_LEARNING_RATES)


@dataclass
class FinetuneConfig:
    """Every setting of one fine-tuning run; None means "derive from the model size / task"."""

    task: str = ""
    model_size: Optional[str] = None  # inferred from the model's config.json when not given
    learning_rate: Optional[float] = None  # None: the task's per-size rate, else SIZE_LEARNING_RATES
    layerwise_lr_decay: Optional[float] = None  # None: SIZE_LAYERWISE_DECAY; 1.0 turns it off
    num_train_epochs: int = 3
    # seq-cls head: "cls" (the official [CLS] head) or "mean" (mean of the token states; pretrain/README.md, sec. 6)
    pooling: str = "cls"
    # dropout inside the backbone while fine-tuning (hidden and attention); None keeps the model's config.json values.
    # Models pretrained without dropout (the demo's) have 0 there, which leaves a small labelled set unregularised
    backbone_dropout: Optional[float] = None
    train_batch_size: int = 32
    # training batches of similar lengths (each run of 50 batches' examples of the epoch's shuffled order is sorted by
    # length and cut into batches, whose order is then shuffled): padding to a batch's longest costs less. Off by
    # default (the official recipe draws batches uniformly)
    group_by_length: bool = False
    eval_batch_size: int = 32
    max_seq_length: int = 128
    warmup_proportion: float = 0.1
    weight_decay_rate: float = 0.01
    clip_norm: float = 1.0
    adam_epsilon: float = 1e-6
    # span extraction (CMRC 2018, DRCD)
    max_query_length: int = 64
    doc_stride: int = 128
    n_best_size: int = 20
    max_answer_length: int = 30
    # trials
    num_trials: int = 1
    seed: int = 1
    # what to run
    do_train: bool = True
    do_eval: bool = True
    do_test: bool = True
    eval_every_epoch: bool = True
    write_test_outputs: bool = True  # official key; predictions are always written, so only `true` is accepted
    load_checkpoint: Optional[str] = None  # the module's fine-tuned parameters (best_model/model.safetensors)
    random_init: bool = False  # discard the pretrained backbone weights: the no-pretraining baseline
    keep_all_checkpoints: bool = False  # keep every epoch_N (default: only the last, which resume needs)
    # checked against the model instead of configuring it
    vocab_size: Optional[int] = None
    do_lower_case: Optional[bool] = None
    # data
    split_dev_for_train: float = 0.0  # train on this fraction of dev (deterministic) when there is no train file
    split_train_for_dev: float = 0.0  # hold this fraction of train out as dev when there is no dev file
    max_train_examples: Optional[int] = None  # deterministic subsample, for smoke runs
    max_eval_examples: Optional[int] = None
    # runtime
    device: str = "auto"  # auto | cpu | gpu
    log_every: int = 10  # VisualDL scalars every N steps
    num_workers: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# official keys whose values we accept but which configure nothing here
_OFFICIAL_ALIASES = {"task_names": "task", "predict_batch_size": "eval_batch_size", "seeds": "num_trials"}
_FIELD_TYPES = field_types(FinetuneConfig)


def apply(config: FinetuneConfig, values: dict, source: str) -> FinetuneConfig:
    """A copy of `config` with `values` (json or flag values; strings are read as their field's type, since
    official hparams files write some numbers as strings) applied; ConfigError on unknown keys or bad types."""
    values = dict(values)
    for key in ("task_names", "task"):
        if isinstance(values.get(key), list):  # official task_names is a list
            if len(values[key]) != 1:
                raise ConfigError(f"{source}: field 'task_names' must name exactly one task (multi-task "
                                  f"fine-tuning is not supported), got {values[key]!r}")
            values[key] = values[key][0]
    return runconfig.apply(config, values, source, aliases=_OFFICIAL_ALIASES, read_strings=True)


def read_hparams(path) -> dict:
    """A json hparams file as a dict. A trailing comma before } or ] is tolerated, because the seed's README
    example (params_cmrc2018.json) has one; everything else must be strict JSON."""
    return read_json_file(path, "hparams file", trailing_commas=True)


def parse_flags(tokens) -> dict:
    """`--key value` / `--key=value` pairs (a bare boolean `--flag` is true) into {field: typed value}; official key
    names are accepted."""
    return runconfig.read_flags(tokens, _FIELD_TYPES, aliases=_OFFICIAL_ALIASES, config_key=None)[1]


def resolve(task, hparams: Optional[dict] = None, flags: Optional[dict] = None, hparams_source="hparams",
            base: Optional[FinetuneConfig] = None) -> FinetuneConfig:
    """defaults -> task.defaults -> hparams -> flags, then validated. The size-dependent fields stay None until
    `finalize` knows the model."""
    config = base or FinetuneConfig()
    config = apply(config, dict(task.defaults), f"task {task.name} defaults")
    config = apply(config, hparams or {}, hparams_source)
    config = apply(config, flags or {}, "command line")
    if config.task and config.task != task.name:
        raise ConfigError(f"{hparams_source}: task_names says {config.task!r} but the run is for task {task.name!r}")
    return dataclasses.replace(config, task=task.name)


def infer_model_size(electra_config) -> str:
    """The preset size whose width (and depth, for small vs small-ex) the model has; ConfigError if none fits."""
    hidden, layers = electra_config.hidden_size, electra_config.num_hidden_layers
    if hidden < 256:
        return "tiny"
    if hidden == 256:
        return "small-ex" if layers > 12 else "small"
    sizes = {768: "base", 1024: "large"}
    if hidden in sizes:
        return sizes[hidden]
    raise ConfigError(f"cannot tell the model size of a model with hidden_size {hidden}: pass --model_size "
                      f"(one of {', '.join(MODEL_SIZES)}) to pick the default learning rate and layer-wise decay")


def finalize(config: FinetuneConfig, task, model_size: str) -> FinetuneConfig:
    """Fill the size-dependent defaults (learning rate, layer-wise decay) and check every range."""
    model_size = config.model_size or model_size  # an explicit model_size wins over the inferred one
    changes = {"model_size": model_size}
    if config.learning_rate is None:
        rates = getattr(task, "learning_rates", None) or {}
        changes["learning_rate"] = rates.get(model_size, SIZE_LEARNING_RATES.get(model_size, 1e-4))
    if config.layerwise_lr_decay is None:
        changes["layerwise_lr_decay"] = SIZE_LAYERWISE_DECAY.get(model_size, 0.8)
    config = dataclasses.replace(config, **changes)
    validate(config)
    if config.pooling != "cls" and task.kind != "seq-cls":
        raise ConfigError(f"field 'pooling' is a seq-cls option; task {task.name!r} is {task.kind}")
    check = getattr(task, "check_config", None)
    if check is not None:  # the kind's own constraints (QA: the question must leave room for context)
        check(config)
    return config


def validate(config: FinetuneConfig):
    """Raise ConfigError naming the first field that is out of range."""
    def need(ok, name, rule):
        if not ok:
            raise ConfigError(f"field {name!r} {rule}, got {getattr(config, name)!r}")

    for name in ("num_train_epochs", "train_batch_size", "eval_batch_size", "max_query_length", "doc_stride",
                 "n_best_size", "max_answer_length", "num_trials", "log_every"):
        need(getattr(config, name) >= 1, name, "must be >= 1")
    need(config.max_seq_length >= 8, "max_seq_length", "must be >= 8")
    need(config.learning_rate is None or config.learning_rate > 0, "learning_rate", "must be positive")
    need(config.layerwise_lr_decay is None or 0 < config.layerwise_lr_decay <= 1, "layerwise_lr_decay",
         "must be in (0, 1]")
    need(0 <= config.warmup_proportion < 1, "warmup_proportion", "must be in [0, 1)")
    need(config.weight_decay_rate >= 0, "weight_decay_rate", "must be >= 0")
    need(config.clip_norm >= 0, "clip_norm", "must be >= 0 (0 turns clipping off)")
    need(0 <= config.split_dev_for_train < 1, "split_dev_for_train", "must be in [0, 1)")
    need(0 <= config.split_train_for_dev < 1, "split_train_for_dev", "must be in [0, 1)")
    need(config.max_train_examples is None or config.max_train_examples >= 1, "max_train_examples", "must be >= 1")
    need(config.max_eval_examples is None or config.max_eval_examples >= 1, "max_eval_examples", "must be >= 1")
    need(config.device in ("auto", "cpu", "gpu"), "device", "must be auto, cpu or gpu")
    need(config.pooling in ("cls", "mean"), "pooling", "must be cls or mean")
    need(config.num_workers >= 0, "num_workers", "must be >= 0")
    need(config.write_test_outputs, "write_test_outputs", "is always on here (predictions are always written)")
    need(config.model_size is None or config.model_size in MODEL_SIZES, "model_size", f"must be one of {MODEL_SIZES}")
