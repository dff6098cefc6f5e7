"""ElectraConfig: the model shape, read from and written back to the official BERT-style json files.

The field names are those of the official Chinese ELECTRA `config/*.json` and of HF's `config.json`, so one class reads
both. Keys that the original TF code and HF keep only as leftovers (`summary_*`, `directionality`, `architectures`, ...)
are kept verbatim in `extras` so that a file round-trips byte for byte in content; any other unknown key is an error,
because a silently ignored field (say `position_embedding_type: relative_key`) would give a different model.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from importlib import resources

from .errors import ConfigError
from . import fileio

# Keys that do not change the network we build. Anything else unknown raises.
IGNORED_KEYS = frozenset({
    "architectures", "directionality", "output_past", "_num_labels", "summary_type", "summary_use_proj",
    "summary_activation", "summary_last_dropout", "transformers_version", "torch_dtype", "use_cache",
    "classifier_dropout", "id2label", "label2id", "bos_token_id", "eos_token_id", "finetuning_task",
    "problem_type", "_name_or_path", "dtype", "paddlenlp_version", "num_choices", "layer_norm_epsilon_note",
    "classifier_pooling",  # the sequence-classification head's pooling (weights.from_pretrained), not the backbone
})
SUPPORTED_ACTIVATIONS = ("gelu", "relu", "gelu_new")


@dataclass
class ElectraConfig:
    """Shape of one ELECTRA transformer (a discriminator or a generator)."""

    vocab_size: int = 21128
    embedding_size: int = 128
    hidden_size: int = 256
    num_hidden_layers: int = 12
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    hidden_act: str = "gelu"  # exact erf GELU, as the official modeling.py
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12  # TF contrib layer_norm hard-codes 1e-12; Paddle's default 1e-5 would differ
    pad_token_id: int = 0
    model_type: str = "electra"
    position_embedding_type: str = "absolute"
    extras: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        self.validate()

    def validate(self, source="config"):
        """Raise ConfigError naming the field if the shape cannot be built."""
        for name in ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{source}: field {name!r} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(f"{source}: field 'hidden_size' ({self.hidden_size}) must be divisible by "
                              f"'num_attention_heads' ({self.num_attention_heads})")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= value < 1.0:
                raise ConfigError(f"{source}: field {name!r} must be in [0, 1), got {value!r}")
        for name in ("initializer_range", "layer_norm_eps"):
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 < value < float("inf"):
                raise ConfigError(f"{source}: field {name!r} must be a positive finite number, got {value!r}")
        pad = self.pad_token_id
        if not isinstance(pad, int) or isinstance(pad, bool) or not 0 <= pad < self.vocab_size:
            raise ConfigError(f"{source}: field 'pad_token_id' must be an integer in [0, vocab_size="
                              f"{self.vocab_size}), got {pad!r}")
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise ConfigError(f"{source}: field 'hidden_act' is {self.hidden_act!r}; supported: {SUPPORTED_ACTIVATIONS}")
        if self.position_embedding_type != "absolute":
            raise ConfigError(f"{source}: field 'position_embedding_type' is {self.position_embedding_type!r}; "
                              "ELECTRA uses 'absolute' position embeddings only")
        if self.model_type != "electra":
            raise ConfigError(f"{source}: field 'model_type' is {self.model_type!r}, expected 'electra'")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    # ---- json ----------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, source="config") -> "ElectraConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)} - {"extras"}
        kwargs, extras = {}, {}
        for key, value in data.items():
            if key in known:
                kwargs[key] = value
            elif key in IGNORED_KEYS:
                extras[key] = value
            else:
                raise ConfigError(f"{source}: unknown field {key!r} (known: {sorted(known)}; "
                                  f"ignored leftovers: {sorted(IGNORED_KEYS)})")
        config = cls.__new__(cls)
        for f in dataclasses.fields(cls):
            if f.name == "extras":
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            setattr(config, f.name, kwargs.get(f.name, default))
        config.extras = extras
        config._present = list(data.keys())  # remembers which keys the file had, for a faithful round trip
        config.validate(source)
        return config

    def to_dict(self) -> dict:
        """Fields in the file's original order when read from json; extras written back unchanged."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extras"}
        values.update(self.extras)
        order = getattr(self, "_present", None)
        if order is None:
            return values
        out = {k: values[k] for k in order if k in values}
        out.update({k: v for k, v in self.extras.items() if k not in out})  # extras added after reading
        # fields set in code but absent from the file only appear when they differ from the default
        for f in dataclasses.fields(self):
            if f.name != "extras" and f.name not in out:
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
                if values[f.name] != default:
                    out[f.name] = values[f.name]
        return out

    @classmethod
    def from_json(cls, path) -> "ElectraConfig":
        path = os.fspath(path)
        return cls.from_dict(fileio.read_json_file(path, "config file", require_object=False), source=path)

    def to_json(self, path):
        fileio.write_json(path, self.to_dict())

    def replace(self, **changes) -> "ElectraConfig":
        new = dataclasses.replace(self, **changes)
        new.extras = dict(self.extras)
        if hasattr(self, "_present"):
            new._present = list(self._present)
        return new


def _is_number(value) -> bool:
    """An int or float, not a bool (JSON true would otherwise pass as 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ---- presets -------------------------------------------------------------------------------------------------
PRESET_SIZES = ("small", "small-ex", "base", "large")


def preset(size: str, role: str = "discriminator") -> ElectraConfig:
    """The official Chinese config for `size` in {small, small-ex, base, large, tiny} and role in {discriminator, generator}."""
    if role not in ("discriminator", "generator"):
        raise ConfigError(f"role must be 'discriminator' or 'generator', got {role!r}")
    if size not in PRESET_SIZES + ("tiny",):
        raise ConfigError(f"unknown model size {size!r}; choose one of {PRESET_SIZES + ('tiny',)}")
    name = f"{size.replace('-', '_')}_{role}.json"
    text = resources.files("paddle_electra.configs").joinpath(name).read_text(encoding="utf-8")
    return ElectraConfig.from_dict(json.loads(text), source=f"paddle_electra/configs/{name}")


def generator_config(discriminator: ElectraConfig, hidden_ratio: float = 0.25, layers_ratio: float = 1.0) -> ElectraConfig:
    """The official rule for a generator from a discriminator: width x ratio, heads = width // 64, FFN = 4 x width."""
    hidden = max(1, round(discriminator.hidden_size * hidden_ratio))
    return discriminator.replace(
        hidden_size=hidden,
        num_hidden_layers=max(1, round(discriminator.num_hidden_layers * layers_ratio)),
        num_attention_heads=max(1, hidden // 64),
        intermediate_size=4 * hidden,
    )
