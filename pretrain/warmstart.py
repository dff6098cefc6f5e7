"""Continued pretraining from released weights: `pretrain/run.py --init-from DIR`.

DIR is what `python -m converters from-tf / from-release / from-hf` (discriminator + generator) or pretrain/export.py
write: a folder with `discriminator/` and `generator/` model directories. A single discriminator model directory is
accepted too (the HF hub often has only that): the generator then starts fresh at the official size (1/4 of the
discriminator's width, or --generator-hidden-size / --generator-layers / --generator) and the run says so loudly.

- The model shapes come from DIR's config.json files; --discriminator / --generator / generator ratio flags that
  contradict them are an error naming both values (--dropout may change dropout). --size only picks the optimisation
  defaults (learning rate, batch, schedule length).
- The dataset must have been built with the model's vocab.txt (`pretrain/data.py --vocab DIR/discriminator/vocab.txt`);
  otherwise the error names the first differing line.
- Every tensor is accounted for in OUT/init_report.json (and printed): loaded, initialised (with the reason) or
  dropped, with shapes; a missing or unexpected tensor or a shape mismatch stops the run before training starts.
- The embeddings are shared between generator and discriminator, as in the official models: a generator file whose
  embedding tables differ from the discriminator's is refused (sharing could keep only one of them).
- The optimizer and the LR schedule start fresh (warmup applies). --resume of a warm-started run continues from its
  checkpoint like any run; --max-steps 0 writes the export of the initial weights, unchanged.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from paddle_electra.config import ElectraConfig, generator_config
from paddle_electra.errors import ConfigError, WeightsError
from paddle_electra.weights import (CONFIG_NAME, VOCAB_NAME, WEIGHTS_NAME, check_model_files, load_safetensors,
                                    load_state, read_config)

REPORT_NAME = "init_report.json"


@dataclass
class InitSource:
    """The model directories a warm start reads; generator None: the generator starts fresh."""

    root: str
    discriminator: str
    generator: Optional[str]


def _is_model_dir(path) -> bool:
    return os.path.isfile(os.path.join(path, CONFIG_NAME)) and os.path.isfile(os.path.join(path, WEIGHTS_NAME))


def find_source(init_from: str) -> InitSource:
    """DIR/{discriminator,generator}/, or DIR itself as a discriminator model directory."""
    root = os.fspath(init_from)
    if not os.path.isdir(root):
        raise ConfigError(f"field 'init_from': {root} is not a folder")
    disc, gen = os.path.join(root, "discriminator"), os.path.join(root, "generator")
    if os.path.isdir(disc):
        if not _is_model_dir(disc):
            raise ConfigError(f"field 'init_from': {disc} holds no {CONFIG_NAME} + {WEIGHTS_NAME}")
        if not os.path.isdir(gen):
            raise ConfigError(f"field 'init_from': {gen} is missing; pass {disc} itself to start the generator "
                              f"fresh from the discriminator alone")
        if not _is_model_dir(gen):
            raise ConfigError(f"field 'init_from': {gen} holds no {CONFIG_NAME} + {WEIGHTS_NAME}")
        return InitSource(root, disc, gen)
    if _is_model_dir(root):
        return InitSource(root, root, None)
    raise ConfigError(f"field 'init_from': {root} has neither discriminator/ and generator/ model directories nor "
                      f"{CONFIG_NAME} + {WEIGHTS_NAME} of its own (convert released weights with "
                      f"`python -m converters` first)")


def _check_overrides(config: ElectraConfig, overrides: dict, flag: str, path: str):
    for key, value in overrides.items():
        if getattr(config, key, None) != value and key not in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            raise ConfigError(f"--{flag} {key}={value!r} contradicts {os.path.join(path, CONFIG_NAME)} "
                              f"({key}={getattr(config, key, None)!r}): with --init-from the shapes come from the "
                              f"model")


def model_configs(cfg, source: InitSource, data_vocab_size: int):
    """(discriminator, generator) configs of a warm start: DIR's, checked against the run's flags."""
    disc = read_config(source.discriminator)
    _check_overrides(disc, cfg.discriminator, "discriminator", source.discriminator)
    if data_vocab_size > disc.vocab_size:
        raise ConfigError(f"the dataset's vocab has {data_vocab_size} tokens but {source.discriminator}/{CONFIG_NAME} "
                          f"has vocab_size {disc.vocab_size}")
    ratio_flags = cfg.generator_hidden_size is not None or cfg.generator_layers != 1.0
    if source.generator is not None:
        gen = read_config(source.generator)
        _check_overrides(gen, cfg.generator, "generator", source.generator)
        if ratio_flags:
            wanted = generator_config(disc, cfg.generator_hidden_size or gen.hidden_size / disc.hidden_size,
                                      cfg.generator_layers)
            for key in ("hidden_size", "num_hidden_layers"):
                if getattr(wanted, key) != getattr(gen, key):
                    raise ConfigError(f"--generator-hidden-size / --generator-layers ask for a generator with {key} "
                                      f"{getattr(wanted, key)} but {source.generator}/{CONFIG_NAME} has "
                                      f"{getattr(gen, key)}")
    else:
        gen = generator_config(disc, cfg.generator_hidden_size or 0.25, cfg.generator_layers)
        gen = gen.replace(**cfg.generator) if cfg.generator else gen
    for key in ("vocab_size", "embedding_size"):
        if getattr(gen, key) != getattr(disc, key):
            raise ConfigError(f"{source.generator}/{CONFIG_NAME}: {key} {getattr(gen, key)} differs from the "
                              f"discriminator's {getattr(disc, key)}; the two share their embeddings")
    if cfg.dropout is not None:
        disc = disc.replace(hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout)
        gen = gen.replace(hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout)
    return disc, gen


def check_vocab(model_dir: str, data_dir: str):
    """The dataset's vocab.txt must be the model's, line for line."""
    model_vocab, data_vocab = os.path.join(model_dir, VOCAB_NAME), os.path.join(data_dir, VOCAB_NAME)
    if not os.path.isfile(model_vocab):
        raise ConfigError(f"{model_vocab}: missing; the model directory needs the vocab it was trained with")
    check_model_files(model_dir, [VOCAB_NAME])
    with open(model_vocab, encoding="utf-8") as f:
        ours = f.read().splitlines()
    with open(data_vocab, encoding="utf-8") as f:
        theirs = f.read().splitlines()
    for number, (a, b) in enumerate(zip(ours, theirs), start=1):
        if a != b:
            raise ConfigError(f"{data_vocab} line {number} is {b!r} but {model_vocab} line {number} is {a!r}: build "
                              f"the dataset with the model's vocab (pretrain/data.py --vocab {model_vocab})")
    if len(ours) != len(theirs):
        raise ConfigError(f"{data_vocab} has {len(theirs)} lines but {model_vocab} has {len(ours)}: build the "
                          f"dataset with the model's vocab (pretrain/data.py --vocab {model_vocab})")


def _shapes(state, names):
    return {name: list(state[name].shape) for name in sorted(names)}


def load_initial_weights(model, source: InitSource) -> dict:
    """Copy DIR's weights into an ElectraForPretraining; return the load report (every tensor, with shapes)."""
    disc_path = os.path.join(source.discriminator, WEIGHTS_NAME)
    check_model_files(source.discriminator, [WEIGHTS_NAME])
    disc_tensors = load_safetensors(disc_path)
    # a directory without the replaced-token head (e.g. a plain encoder) gets a fresh one, reported
    disc_report = load_state(model.discriminator, disc_tensors, disc_path,
                             allow_new_prefixes=("discriminator_predictions.",))
    disc_state = model.discriminator.state_dict()
    report = {
        "init_from": os.path.abspath(source.root),
        "discriminator": {
            "dir": os.path.abspath(source.discriminator),
            "loaded": _shapes(disc_state, set(disc_state) - set(disc_report.newly_initialized)),
            "initialized": {n: {"shape": list(disc_state[n].shape), "why": "not in the file"}
                            for n in sorted(disc_report.newly_initialized)},
            "dropped": {n: list(disc_tensors[n].shape) for n in sorted(disc_report.dropped)},
        },
    }
    gen_state = model.generator.state_dict()
    shared = {n for n in gen_state if n.startswith("electra.embeddings.")}
    if source.generator is None:
        report["generator"] = {
            "dir": None,
            "loaded": {},
            "initialized": {n: {"shape": list(gen_state[n].shape),
                                "why": "no generator in --init-from: fresh at hidden_size "
                                       f"{model.generator.config.hidden_size}, {model.generator.config.num_hidden_layers}"
                                       " layers"} for n in sorted(set(gen_state) - shared)},
            "dropped": {},
            "shared_with_discriminator": sorted(shared),
        }
        return report
    gen_path = os.path.join(source.generator, WEIGHTS_NAME)
    check_model_files(source.generator, [WEIGHTS_NAME])
    gen_tensors = load_safetensors(gen_path)
    for name in sorted(shared):
        if name in gen_tensors and name in disc_tensors and (
                gen_tensors[name].shape != disc_tensors[name].shape
                or not np.array_equal(gen_tensors[name], disc_tensors[name])):
            raise WeightsError(f"{gen_path}: tensor {name!r} differs from the discriminator's in {disc_path}; "
                               f"ELECTRA shares its embeddings, so one model can start from only one of them")
    gen_report = load_state(model.generator, gen_tensors, gen_path)
    report["generator"] = {
        "dir": os.path.abspath(source.generator),
        "loaded": _shapes(gen_state, set(gen_state) - shared),
        "initialized": {},
        "dropped": {n: list(gen_tensors[n].shape) for n in sorted(gen_report.dropped)},
        "shared_with_discriminator": sorted(shared),
    }
    return report


def summary_lines(report: dict):
    """What the run prints about its starting point; a fresh generator is said loudly."""
    d, g = report["discriminator"], report["generator"]
    lines = [f"init from {report['init_from']}: discriminator {len(d['loaded'])} tensors loaded"
             + (f", {len(d['initialized'])} initialised ({', '.join(d['initialized'])})" if d["initialized"] else "")
             + (f", {len(d['dropped'])} dropped" if d["dropped"] else "")]
    if g["dir"] is None:
        lines.append(f"WARNING: no generator in --init-from: the generator's {len(g['initialized'])} tensors start "
                     f"fresh (random); only the shared embeddings come from the discriminator")
    else:
        lines.append(f"generator {len(g['loaded'])} tensors loaded (+{len(g['shared_with_discriminator'])} embedding "
                     f"tables shared with the discriminator)")
    return lines
