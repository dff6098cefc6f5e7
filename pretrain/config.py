"""The pretraining run config: dataclass defaults -> one JSON file (`--config`) -> type-checked `--key value` flags.

Unknown keys raise ConfigError (with the closest known key), as do values of the wrong type. Fields left None get
the official per-size default in `resolve()` (electra-reference.md section 2.7, [CE] README "Training Details"):

    size      learning_rate  train_batch_size  num_train_steps
    small     5e-4           1024              1,000,000
    small-ex  5e-4           384               2,000,000
    base      2e-4           256               1,000,000
    large     1e-4           96                2,000,000   (CN README says 1e-4, the EN README 2e-4; we take the
                                                            CN value, the one stated for the Chinese model)
    tiny      5e-4           128               1,000,000   (not official: configure_pretraining.py's defaults)

and for every size: warmup 10,000 steps, linear decay to 0 (power 1), AdamW (eps 1e-6) with weight decay 0.01
except LayerNorm and bias, global-norm clipping at 1.0, mask_prob 0.15, gen_weight 1, disc_weight 50,
temperature 1, generator = the size's preset generator (1/4 of the discriminator's width, same depth).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Optional

from paddle_electra.config import ElectraConfig, generator_config, preset
from paddle_electra.errors import ConfigError
from paddle_electra import runconfig
from paddle_electra.runconfig import field_types, suggest

SIZES = ("small", "small-ex", "base", "large", "tiny")
SIZE_DEFAULTS = {
    "small": dict(learning_rate=5e-4, train_batch_size=1024, num_train_steps=1_000_000),
    "small-ex": dict(learning_rate=5e-4, train_batch_size=384, num_train_steps=2_000_000),
    "base": dict(learning_rate=2e-4, train_batch_size=256, num_train_steps=1_000_000),
    "large": dict(learning_rate=1e-4, train_batch_size=96, num_train_steps=2_000_000),
    "tiny": dict(learning_rate=5e-4, train_batch_size=128, num_train_steps=1_000_000),
}
AMP_CHOICES = ("auto", "none", "bf16", "fp16")


@dataclass
class PretrainConfig:
    """Everything a pretraining run needs besides the data; saved in every checkpoint."""

    data: str = ""  # dataset directory built by pretrain/data.py
    output_dir: str = ""
    eval_data: str = ""  # optional held-out dataset directory (same vocab) for --eval-every and the final eval
    size: str = "small"
    # model shape: overrides of the size's preset discriminator / generator config (ElectraConfig field names)
    discriminator: dict = field(default_factory=dict)
    generator: dict = field(default_factory=dict)
    # generator width / depth as fractions of the discriminator's (the official rule); None = the size's preset
    # generator, or 0.25 when `discriminator` changes the shape
    generator_hidden_size: Optional[float] = None
    generator_layers: float = 1.0
    dropout: Optional[float] = None  # sets hidden and attention dropout of both models when given
    # objective
    mask_prob: float = 0.15
    # "token": each token chosen on its own (the official code); "whole-word": all tokens of a chosen word together,
    # the same budget in tokens (needs a dataset built with pretrain/data.py --word-boundaries jieba)
    masking: str = "token"
    gen_weight: float = 1.0
    disc_weight: float = 50.0  # 0: masked-LM only, the discriminator is not run (pretrain/demo/curve.py's control)
    temperature: float = 1.0
    # "normal" (the official truncated-normal start) or "sinusoidal": the position embeddings start from a scaled
    # sine/cosine table (paddle_electra.pretraining.init_positions_sinusoidal); helps tiny models off the plateau
    position_init: str = "normal"
    # the word-embedding table's starting point: "normal" (the initializer) or "ppmi-svd" (the PPMI-SVD vectors of
    # the training data's token co-occurrences, pretrain/cooccurrence.py; fresh runs only, not with init_from)
    embedding_init: str = "normal"
    # optimisation
    learning_rate: Optional[float] = None
    warmup_steps: int = 10000
    num_train_steps: Optional[int] = None  # length of the LR schedule
    lr_decay_power: float = 1.0
    train_batch_size: Optional[int] = None  # global: all ranks x all accumulation steps
    gradient_accumulation_steps: int = 1
    weight_decay: float = 0.01
    adam_epsilon: float = 1e-6
    clip_norm: float = 1.0
    amp: str = "auto"  # auto: bf16 on a GPU that supports it, else fp16 on GPU; fp32 on CPU (see train.py)
    seed: int = 42
    # draws (masking, generator samples) keyed by the example's position in the stream: results do not depend on
    # the number of ranks or accumulation steps; False: keyed by (step, rank, micro-batch) as well (pretrain/rng.py)
    per_sample_rng: bool = True
    # run control
    max_steps: Optional[int] = None  # stop after this many optimizer steps (default: num_train_steps)
    max_minutes: Optional[float] = None  # stop (checkpoint, export) after this much wall time
    # distributed runs: a rank that hears nothing from the others for this long stops the job with one line
    # (None: 25 s on CPU, under gloo's fixed 30-s receive timeout; 600 s on GPU; 0 turns the watchdog off)
    peer_timeout_s: Optional[float] = None
    eval_every: int = 0  # steps; 0 = only at the end (when eval_data is set)
    eval_batches: int = 50
    eval_batch_size: Optional[int] = None  # default: the per-rank micro-batch size
    save_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 10  # VisualDL / progress-bar refresh; losses.jsonl gets every step
    resume: str = ""  # "" (fresh run), "latest" (newest valid checkpoint in output_dir) or a checkpoint directory
    # continued pretraining: start from released weights (DIR/{discriminator,generator}/ or one discriminator model
    # directory); shapes come from DIR, optimizer and schedule start fresh (pretrain/warmstart.py)
    init_from: str = ""
    export: bool = True  # write output_dir/export/{discriminator,generator} at the end
    visualdl: bool = True
    progress: bool = True

    # ------------------------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, json_path: Optional[str] = None, overrides: Optional[dict] = None) -> "PretrainConfig":
        """Defaults, then a JSON file (JSON's own types), then `overrides` (typed values, e.g. from parse_flags)."""
        return runconfig.load(cls, json_path, overrides, what="run config")

    def resolve(self) -> "PretrainConfig":
        """Fill the per-size defaults and validate; returns a new config."""
        if self.size not in SIZES:
            raise ConfigError(f"field 'size' is {self.size!r}; choose one of {SIZES}")
        filled = {k: v for k, v in SIZE_DEFAULTS[self.size].items() if getattr(self, k) is None}
        cfg = dataclasses.replace(self, **filled)
        for name in ("data", "output_dir"):
            if not getattr(cfg, name):
                raise ConfigError(f"field {name!r} is required (--{name.replace('_', '-')} DIR)")
        positive = ("train_batch_size", "gradient_accumulation_steps", "num_train_steps", "eval_batches",
                    "keep_checkpoints", "log_every")
        for name in positive:
            if getattr(cfg, name) <= 0:
                raise ConfigError(f"field {name!r} must be positive, got {getattr(cfg, name)}")
        for name in ("warmup_steps", "eval_every", "save_every"):
            if getattr(cfg, name) < 0:
                raise ConfigError(f"field {name!r} must be >= 0, got {getattr(cfg, name)}")
        if cfg.max_steps is not None and (cfg.max_steps < 0 or (cfg.max_steps == 0 and not cfg.init_from)):
            raise ConfigError(f"field 'max_steps' must be positive (0 only with init_from: export the initial "
                              f"weights), got {cfg.max_steps}")
        if cfg.max_minutes is not None and cfg.max_minutes <= 0:
            raise ConfigError(f"field 'max_minutes' must be positive, got {cfg.max_minutes}")
        if cfg.peer_timeout_s is not None and cfg.peer_timeout_s < 0:
            raise ConfigError(f"field 'peer_timeout_s' must be >= 0, got {cfg.peer_timeout_s}")
        if not 0.0 < cfg.mask_prob < 1.0:
            raise ConfigError(f"field 'mask_prob' must be in (0, 1), got {cfg.mask_prob}")
        if cfg.masking not in ("token", "whole-word"):
            raise ConfigError(f"field 'masking' is {cfg.masking!r}; choose 'token' or 'whole-word'")
        if cfg.embedding_init not in ("normal", "ppmi-svd"):
            raise ConfigError(f"field 'embedding_init' is {cfg.embedding_init!r}; choose 'normal' or 'ppmi-svd'")
        if cfg.embedding_init != "normal" and cfg.init_from:
            raise ConfigError("field 'embedding_init' applies to fresh runs; init_from brings its own embeddings")
        if cfg.position_init not in ("normal", "sinusoidal"):
            raise ConfigError(f"field 'position_init' is {cfg.position_init!r}; choose 'normal' or 'sinusoidal'")
        if cfg.amp not in AMP_CHOICES:
            raise ConfigError(f"field 'amp' is {cfg.amp!r}; choose one of {AMP_CHOICES}")
        if cfg.train_batch_size % cfg.gradient_accumulation_steps:
            raise ConfigError(f"train_batch_size {cfg.train_batch_size} is not divisible by "
                              f"gradient_accumulation_steps {cfg.gradient_accumulation_steps}")
        if cfg.dropout is not None and not 0.0 <= cfg.dropout < 1.0:
            raise ConfigError(f"field 'dropout' must be in [0, 1), got {cfg.dropout}")
        if not cfg.learning_rate > 0:
            raise ConfigError(f"field 'learning_rate' must be positive, got {cfg.learning_rate}")
        if cfg.gen_weight <= 0 or cfg.disc_weight < 0:
            raise ConfigError(f"fields 'gen_weight' (> 0) and 'disc_weight' (>= 0; 0 = masked-LM only) got "
                              f"{cfg.gen_weight} and {cfg.disc_weight}")
        cfg.model_configs(preset(cfg.size).vocab_size)  # shape overrides fail here, before any data is read
        return cfg

    def check_paths(self):
        """The input paths exist: checked by the command line before any data is read or any model is built."""
        for name in ("data", "eval_data"):
            path = getattr(self, name)
            if path and not os.path.isfile(os.path.join(path, "index.json")):
                raise ConfigError(f"field {name!r}: {path} is not a dataset directory built by pretrain/data.py "
                                  "(no index.json)")
        if self.resume not in ("", "latest", True) and not os.path.isdir(str(self.resume)):
            raise ConfigError(f"field 'resume': checkpoint directory {self.resume} not found")
        if self.init_from:
            from pretrain.warmstart import find_source
            find_source(self.init_from)

    def micro_batch_size(self, world_size: int) -> int:
        """Examples per rank per forward pass."""
        per_step = self.train_batch_size // self.gradient_accumulation_steps
        if per_step % world_size:
            raise ConfigError(f"train_batch_size / gradient_accumulation_steps = {per_step} is not divisible by the "
                              f"{world_size} ranks")
        return per_step // world_size

    def model_configs(self, vocab_size: int):
        """(discriminator, generator) ElectraConfigs: the size's presets, the overrides, the data's vocab size."""
        shape_changed = bool(self.discriminator)
        disc = _apply(preset(self.size, "discriminator"), self.discriminator, "discriminator")
        disc = disc.replace(vocab_size=vocab_size)
        if self.generator_hidden_size is None and not shape_changed:
            gen = preset(self.size, "generator").replace(vocab_size=vocab_size)
            if self.generator_layers != 1.0:
                gen = gen.replace(num_hidden_layers=max(1, round(disc.num_hidden_layers * self.generator_layers)))
        else:
            gen = generator_config(disc, self.generator_hidden_size or 0.25, self.generator_layers)
        gen = _apply(gen, self.generator, "generator")
        if self.dropout is not None:
            disc = disc.replace(hidden_dropout_prob=self.dropout, attention_probs_dropout_prob=self.dropout)
            gen = gen.replace(hidden_dropout_prob=self.dropout, attention_probs_dropout_prob=self.dropout)
        return disc, gen

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _apply(config: ElectraConfig, overrides: dict, what: str) -> ElectraConfig:
    known = {f.name for f in dataclasses.fields(ElectraConfig)} - {"extras"}
    for key in overrides:
        if key not in known:
            raise ConfigError(f"field {what!r}: unknown ElectraConfig key {key!r}{suggest(key, known)}")
    try:
        return config.replace(**overrides)
    except TypeError as e:
        raise ConfigError(f"field {what!r}: {e}") from None


_HINTS = field_types(PretrainConfig)


def parse_flags(argv) -> tuple:
    """(config_json_path or None, {field: typed value}) of `--key value`, `--key=value`, bare `--flag` for booleans
    (true) and bare `--resume` ("latest"); dashes in keys mean underscores."""
    return runconfig.read_flags(argv, _HINTS, bare={"resume": "latest"})


def from_argv(argv) -> PretrainConfig:
    """Command line -> resolved PretrainConfig."""
    config_path, values = parse_flags(argv)
    cfg = PretrainConfig.load(config_path, values).resolve()
    return dataclasses.replace(cfg, data=os.fspath(cfg.data), output_dir=os.fspath(cfg.output_dir))
