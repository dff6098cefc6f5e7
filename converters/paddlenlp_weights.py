"""PaddleNLP 2.8 ELECTRA weights (`model_state.pdparams` + `config.json` / `model_config.json`) <-> model directories.

PaddleNLP builds ELECTRA from `paddle.nn.TransformerEncoderLayer`, so its names differ from HF's inside each layer
(`encoder.layers.k.self_attn.q_proj`, `linear1`, `norm1`, ...) and its Linear weights are [in, out], like ours.
`paddlenlp_name` spells each HF name the PaddleNLP way; the per-layer list itself is `converters.mapping.name_table`.
Models it saves (all with the `electra.` backbone prefix, `ElectraModel` without it):
- ElectraDiscriminator: backbone + `discriminator_predictions.{dense,dense_prediction}`;
- ElectraGenerator: backbone + `generator_predictions.{dense,layer_norm}` + `generator_lm_head_bias` (the output
  projection is tied to the word embeddings, as in the official model);
- ElectraForTotalPretraining: `generator.*` and `discriminator.*`, one config for both; unlike the official model
  only the word table is tied, so each keeps its own position/token-type tables and embedding LayerNorm.
`.pdparams` is a pickle: it is read with `paddle.load` only when the caller opts in (`allow_pickle`).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Dict

import numpy as np

from paddle_electra.config import ElectraConfig
from paddle_electra.errors import ConfigError, WeightsError
from paddle_electra import fileio
from paddle_electra.weights import VOCAB_NAME, read_json

from .hf import (PICKLE_WARNING, check_output_dir, check_vocab, do_lower_case, hf_layout, output_dir,
                 read_model_dir, summarize, warn, write_model_dir, write_vocab)
from .mapping import HF_TIED, hf_to_paddle, paddle_to_hf

WEIGHTS_FILE = "model_state.pdparams"
CONFIG_FILES = ("config.json", "model_config.json")  # PaddleNLP >= 2.5 writes the first, older versions the second
CLASS_OF_HEAD = {"discriminator": "ElectraDiscriminator", "generator": "ElectraGenerator", "none": "ElectraModel"}
# paddlenlp.transformers.ElectraConfig defaults (2.8.1): what PaddleNLP builds for a field its config file omits
PADDLENLP_DEFAULTS = dict(vocab_size=22608, embedding_size=768, hidden_size=768, num_hidden_layers=12,
                          num_attention_heads=12, intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
                          attention_probs_dropout_prob=0.1, max_position_embeddings=512, type_vocab_size=2,
                          initializer_range=0.02, pad_token_id=0, layer_norm_eps=1e-12)

# HF -> PaddleNLP, applied in order to the dotted name ("attention.output.*" before "output.*")
_RENAMES = (
    (".encoder.layer.", ".encoder.layers."),
    (".attention.self.query.", ".self_attn.q_proj."),
    (".attention.self.key.", ".self_attn.k_proj."),
    (".attention.self.value.", ".self_attn.v_proj."),
    (".attention.output.dense.", ".self_attn.out_proj."),
    (".attention.output.LayerNorm.", ".norm1."),
    (".intermediate.dense.", ".linear1."),
    (".output.dense.", ".linear2."),
    (".output.LayerNorm.", ".norm2."),
    (".LayerNorm.", ".layer_norm."),
)


def paddlenlp_name(hf_name: str) -> str:
    """PaddleNLP's name for the HF tensor `hf_name` (inside ElectraDiscriminator / ElectraGenerator)."""
    if hf_name == "generator_lm_head.bias":
        return "generator_lm_head_bias"
    name = "." + hf_name
    for old, new in _RENAMES:
        name = name.replace(old, new)
    return name[1:]


def name_table(config: ElectraConfig, head: str):
    """PaddleNLP name -> (HF name, PaddleNLP shape, transpose between the two)."""
    return {paddlenlp_name(hf): (hf, tuple(shape[::-1] if transposed else shape), transposed)
            for hf, (shape, transposed) in hf_layout(config, head).items()}


# ---- configs ------------------------------------------------------------------------------------------------------
def _model_config(node):
    """The flat model config inside a (possibly legacy, nested `init_args`) PaddleNLP config node."""
    if not isinstance(node, dict):
        return None
    if "vocab_size" in node or "hidden_size" in node:
        return {k: v for k, v in node.items() if k not in ("init_args", "init_class")}
    for arg in node.get("init_args") or []:
        found = _model_config(arg)
        if found is not None:
            return found
    return None


def electra_config(flat: dict, source: str) -> ElectraConfig:
    """Our config from PaddleNLP's fields; its other keys (gen_weight, num_choices, ...) do not change the network."""
    fields = {f.name for f in dataclasses.fields(ElectraConfig)} - {"extras", "model_type", "position_embedding_type"}
    values = dict(PADDLENLP_DEFAULTS)
    values.update({k: v for k, v in flat.items() if k in fields})
    return ElectraConfig.from_dict(values, source=source)


def read_configs(path) -> Dict[str, ElectraConfig]:
    """{"default": cfg} for a flat config; per role for a legacy ElectraForTotalPretraining one."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    configs = {}
    if isinstance(data.get("init_args"), list):  # legacy: {"init_class": ..., "init_args": [sub-model configs]}
        for arg in data["init_args"]:
            role = {"ElectraGenerator": "generator", "ElectraDiscriminator": "discriminator"}.get(
                arg.get("init_class") if isinstance(arg, dict) else None)
            flat = _model_config(arg)
            if role and flat is not None:
                configs[role] = electra_config(flat, path)
    flat = _model_config(data)
    if flat is None and not configs:
        raise ConfigError(f"{path}: no model config (vocab_size, hidden_size, ...) found")
    if flat is not None:
        configs["default"] = electra_config(flat, path)
    return configs


def find_config(model_dir) -> str:
    for name in CONFIG_FILES:
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            return path
    raise ConfigError(f"{model_dir}: no {' or '.join(CONFIG_FILES)}")


# ---- weights ------------------------------------------------------------------------------------------------------
def load_pdparams(path, allow_pickle: bool) -> Dict[str, np.ndarray]:
    """A `.pdparams` file via paddle.load, which unpickles it: refused unless the caller opted in."""
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: weights file not found")
    if not allow_pickle:
        raise WeightsError(f"{path}: a .pdparams file is a pickle, which can run arbitrary code when loaded; "
                           "refusing it without --allow-pickle (pass it only if you trust the file's source)")
    warn(f"loading {path}: {PICKLE_WARNING}")
    import paddle
    try:
        state = paddle.load(path, return_numpy=True)
    except Exception as err:  # truncated / not a pickle: UnpicklingError, EOFError, ValueError ...
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise WeightsError(f"{path}: not a readable .pdparams file ({type(err).__name__}: {message})") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a dict of tensors, found {type(state).__name__}")
    out = {}
    for name, value in state.items():
        if not isinstance(value, np.ndarray):
            raise WeightsError(f"{path}: entry {name!r} is a {type(value).__name__}, not a tensor")
        out[name] = value
    return out


def split_state(state: Dict[str, np.ndarray]) -> Dict[str, Dict[str, np.ndarray]]:
    """{"discriminator": ..., "generator": ...} for ElectraForTotalPretraining, else {"single": state}."""
    prefixes = ("generator.", "discriminator.")
    if any(n.startswith(prefixes) for n in state):
        parts = {p[:-1]: {n[len(p):]: v for n, v in state.items() if n.startswith(p)} for p in prefixes}
        stray = [n for n in state if not n.startswith(prefixes)]
        return parts if not stray else {**parts, "stray": {n: state[n] for n in stray}}
    if not any(n.startswith("electra.") for n in state):  # ElectraModel saves its names without the prefix
        state = {f"electra.{n}": v for n, v in state.items()}
    return {"single": state}


def head_of(state) -> str:
    if any(n.startswith("discriminator_predictions.") for n in state):
        return "discriminator"
    if any(n.startswith(("generator_predictions.", "generator_lm_head")) for n in state):
        return "generator"
    return "none"


def to_hf_names(state, config: ElectraConfig, head: str, source: str, config_path: str) -> Dict[str, np.ndarray]:
    """PaddleNLP names -> HF names (torch layout), checking names and shapes against the config."""
    table = name_table(config, head)
    problems = []
    if "generator_lm_head.weight" in state:
        problems.append("an untied generator output layer ('generator_lm_head.weight'): ELECTRA ties it to the "
                        "word embeddings")
    problems += [f"unknown tensor {n!r}" for n in state if n not in table and n != "generator_lm_head.weight"]
    problems += [f"missing tensor {n!r}" for n in table if n not in state]
    problems += [f"{n!r} has shape {list(state[n].shape)}, {config_path} implies {list(shape)}"
                 for n, (_, shape, _) in table.items() if n in state and tuple(state[n].shape) != shape]
    if problems:
        raise WeightsError(f"{source}: {summarize(problems)}")
    return {hf: (state[n].T if transposed else state[n]) for n, (hf, _, transposed) in table.items()}


def from_paddlenlp(model_dir, out, allow_pickle=False, vocab=None, force=False) -> Dict[str, str]:
    """PaddleNLP folder -> one model directory, or OUT/discriminator + OUT/generator for ElectraForTotalPretraining."""
    model_dir = os.fspath(model_dir)
    if not os.path.isdir(model_dir):
        raise ConfigError(f"{model_dir}: --model folder not found")
    config_path = find_config(model_dir)
    configs = read_configs(config_path)
    vocab = os.fspath(vocab) if vocab else os.path.join(model_dir, VOCAB_NAME)
    check_vocab(vocab, next(iter(configs.values())).vocab_size)
    check_output_dir(out, force)
    weights = os.path.join(model_dir, WEIGHTS_FILE)
    parts = split_state(load_pdparams(weights, allow_pickle))
    if "stray" in parts:
        raise WeightsError(f"{weights}: tensors outside generator.* / discriminator.*: "
                           f"{summarize(repr(n) for n in parts['stray'])}")
    lower = do_lower_case(model_dir)
    written = {}
    with output_dir(out, force) as tmp:
        for part, state in parts.items():
            config = configs.get(part, configs.get("default"))
            if config is None:
                raise ConfigError(f"{config_path}: no config for the {part}")
            head = head_of(state)
            if part != "single" and head != {"discriminator": "discriminator", "generator": "generator"}[part]:
                raise WeightsError(f"{weights}: the {part}.* tensors hold no {part} head")
            source = weights if part == "single" else f"{weights} ({part}.*)"
            ours = hf_to_paddle(to_hf_names(state, config, head, source, config_path), config, head, source=source)
            write_model_dir(tmp if part == "single" else os.path.join(tmp, part), config, ours, head, vocab, lower)
            written[part] = head
    return written


def to_paddlenlp(model_dir, out, force=False) -> str:
    """Model directory -> model_state.pdparams + config.json / model_config.json for PaddleNLP's from_pretrained."""
    import paddle
    config, tensors, head, vocab = read_model_dir(model_dir)
    check_output_dir(out, force)
    hf = paddle_to_hf(tensors, config, head)
    hf.pop(HF_TIED, None)  # PaddleNLP's generator uses the word table directly
    state = {name: np.ascontiguousarray(hf[hf_name].T if transposed else hf[hf_name], dtype=np.float32)
             for name, (hf_name, _, transposed) in name_table(config, head).items()}
    if head == "none":  # ElectraModel's own names have no prefix
        state = {n[len("electra."):]: v for n, v in state.items()}
    data = {k: getattr(config, k) for k in PADDLENLP_DEFAULTS}
    data.update(architectures=[CLASS_OF_HEAD[head]], model_type="electra")
    with output_dir(out, force) as tmp:
        paddle.save(state, os.path.join(tmp, WEIGHTS_FILE))
        for name in CONFIG_FILES:  # identical content: PaddleNLP 2.8 reads config.json, older ones model_config.json
            fileio.write_json(os.path.join(tmp, name), data)
        write_vocab(tmp, vocab, do_lower_case(model_dir))
    return head
