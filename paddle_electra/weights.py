"""Model directories (config.json, vocab.txt, model.safetensors) and strict, checked state-dict loading.

Weights are stored with safetensors (no code runs on load) and a sha256 of the tensor bytes in the file's metadata,
so a bit flip that safetensors' header checks cannot see is still refused. Loading is all-or-nothing: every missing,
unexpected or mis-shaped tensor is named in one WeightsError before any parameter is touched.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np

from .config import ElectraConfig
from .errors import ConfigError, WeightsError
from . import fileio

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
VOCAB_NAME = "vocab.txt"
CHECKSUM_KEY = "paddle_electra_sha256"
POOLING_KEY = "classifier_pooling"  # config.json key of ElectraForSequenceClassification's pooling when not "cls"
PICKLE_NAMES = ("model_state.pdparams", "pytorch_model.bin", "model.pdparams")

# Pretraining heads a fine-tuning model may leave behind when it starts from a pretraining checkpoint.
DROPPABLE_PREFIXES = ("discriminator_predictions.", "generator_predictions.")


def tensor_digest(tensors: Dict[str, np.ndarray]) -> str:
    """sha256 over names, dtypes, shapes and bytes, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        h.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def save_safetensors(tensors: Dict[str, np.ndarray], path, metadata=None):
    """Write tensors atomically, with a checksum in the metadata."""
    from safetensors.numpy import save_file
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    meta = {"format": "np", CHECKSUM_KEY: tensor_digest(tensors)}
    meta.update(metadata or {})
    with fileio.atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=meta)


def load_safetensors(path, verify=True) -> Dict[str, np.ndarray]:
    """Read a safetensors file into numpy arrays; WeightsError naming the file if it is truncated or corrupt."""
    from safetensors import safe_open
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: weights file not found")
    try:
        with safe_open(path, framework="numpy") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except WeightsError:
        raise
    except Exception as err:  # safetensors raises its own error types and ValueError/OSError on bad headers
        raise WeightsError(f"{path}: not a valid safetensors file ({type(err).__name__}: {err})") from None
    expected = metadata.get(CHECKSUM_KEY)
    if verify and expected is not None and tensor_digest(tensors) != expected:
        raise WeightsError(f"{path}: checksum mismatch: the tensor data is corrupt (bit flip or partial write)")
    return tensors


def parameter_count(path) -> int:
    """Number of parameters in a safetensors file, from its JSON header alone (no tensor is read)."""
    with open(path, "rb") as f:  # an 8-byte little-endian header length, then the header
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    return sum(math.prod(entry["shape"]) for key, entry in header.items() if key != "__metadata__")


def state_dict_numpy(model) -> Dict[str, np.ndarray]:
    """The model's parameters as float32/int numpy arrays, one entry per name."""
    return {name: np.asarray(param.numpy()) for name, param in model.state_dict().items()}


@dataclass
class LoadReport:
    """What a load did beyond copying matching tensors."""

    newly_initialized: List[str] = field(default_factory=list)  # head parameters absent from the file
    dropped: List[str] = field(default_factory=list)  # pretraining-head tensors the model has no place for


def load_state(model, tensors: Dict[str, np.ndarray], source: str, allow_new_prefixes=(),
               droppable_prefixes=DROPPABLE_PREFIXES) -> LoadReport:
    """Copy `tensors` into `model`, checking names and shapes first; nothing is changed if anything is wrong."""
    own = model.state_dict()
    report = LoadReport()
    problems = []
    for name, param in own.items():
        if name not in tensors:
            if name.startswith(tuple(allow_new_prefixes)):
                report.newly_initialized.append(name)
            else:
                problems.append(f"missing tensor {name!r} (model shape {list(param.shape)})")
        elif list(tensors[name].shape) != list(param.shape):
            problems.append(f"tensor {name!r}: file shape {list(tensors[name].shape)} != model shape {list(param.shape)}")
    for name in tensors:
        if name not in own:
            if name.startswith(tuple(droppable_prefixes)):
                report.dropped.append(name)
            else:
                problems.append(f"unexpected tensor {name!r} (file shape {list(tensors[name].shape)})")
    if problems:
        raise WeightsError(f"{source}: cannot load into {type(model).__name__}:\n  " + "\n  ".join(problems))
    for name, param in own.items():
        if name in tensors:
            value = tensors[name]
            if value.dtype != np.dtype(str(param.numpy().dtype)):
                value = value.astype(param.numpy().dtype)
            param.set_value(value)
    return report


def save_pretrained(model, directory, tokenizer=None, extra_config=None):
    """Write config.json, model.safetensors (and vocab.txt when a tokenizer is given) into `directory`."""
    os.makedirs(directory, exist_ok=True)
    config = model.config.replace()
    if getattr(model, "architecture", None):
        config.extras["architectures"] = [model.architecture]
    if getattr(model, "num_labels", None) and "id2label" not in config.extras:
        config.extras["id2label"] = {str(i): f"LABEL_{i}" for i in range(model.num_labels)}
    if getattr(model, "pooling", "cls") != "cls":  # from_pretrained rebuilds the same head
        config.extras[POOLING_KEY] = model.pooling
    config.extras.update(extra_config or {})
    tensors = state_dict_numpy(model)
    save_safetensors(tensors, os.path.join(directory, WEIGHTS_NAME))
    config.to_json(os.path.join(directory, CONFIG_NAME))
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)  # adds vocab.txt and tokenizer_config.json to manifest.json itself
    fileio.update_manifest(directory, [CONFIG_NAME, WEIGHTS_NAME])


def check_model_files(directory, names):
    """When `directory` has a manifest.json (every directory this project writes does), refuse any of `names` whose
    size or sha256 differs from it: a config.json edited by hand or a half-copied file loads wrong without an error.
    Directories from elsewhere (HF, PaddleNLP) have no manifest and load as they are."""
    if os.path.isfile(os.path.join(directory, fileio.MANIFEST_NAME)):
        fileio.verify_manifest(directory, WeightsError, names=set(names))


def read_config(directory) -> ElectraConfig:
    path = os.path.join(directory, CONFIG_NAME)
    if not os.path.isdir(directory):
        raise ConfigError(f"{directory}: model directory not found")
    check_model_files(directory, [CONFIG_NAME])
    return ElectraConfig.from_json(path)


def from_pretrained(cls, directory, **head_kwargs):
    """Build `cls` from a model directory; the head is freshly initialised when the directory has none."""
    directory = os.fspath(directory)
    config = read_config(directory)
    weights_path = os.path.join(directory, WEIGHTS_NAME)
    if not os.path.isfile(weights_path):
        pickles = [n for n in PICKLE_NAMES if os.path.isfile(os.path.join(directory, n))]
        hint = (f" It holds {pickles[0]}, a pickle file that can run code when loaded: convert it with "
                f"`python -m converters ... --allow-pickle` if you trust its source.") if pickles else ""
        raise WeightsError(f"{weights_path}: weights file not found.{hint}")
    check_model_files(directory, [WEIGHTS_NAME])
    takes_labels = "num_labels" in inspect.signature(cls.__init__).parameters
    if takes_labels and "num_labels" not in head_kwargs and "id2label" in config.extras:
        head_kwargs["num_labels"] = len(config.extras["id2label"])
    if "pooling" in inspect.signature(cls.__init__).parameters and POOLING_KEY in config.extras:
        head_kwargs.setdefault("pooling", config.extras[POOLING_KEY])
    model = cls(config, **head_kwargs)
    head_prefixes = tuple(name + "." for name, _ in model.named_children() if name != "electra")
    model.load_report = load_state(model, load_safetensors(weights_path), weights_path,
                                   allow_new_prefixes=head_prefixes)
    return model


def read_json(path):
    """Any JSON file of a checkpoint (config, index, weight map); one ConfigError line when unreadable."""
    return fileio.read_json_file(path, "JSON file", require_object=False)
