"""The one name table between HF transformers' ELECTRA state dict and paddle_electra's, in both directions.

Each row is (hf_names, paddle_name, kind). kind says how the tensors move:
- "copy": same array (embedding tables, LayerNorm weight/bias, biases);
- "linear": torch Linear weight [out, in] -> Paddle Linear weight [in, out] (transpose);
- "qkv_weight" / "qkv_bias": HF's separate query/key/value -> our fused qkv (concatenate along the output axis).
Every conversion checks that each source tensor is used exactly once and each target tensor is filled, with the
name the table expects; anything else raises WeightsError naming the tensors. Shapes are checked where the tensors
land (paddle_electra.weights.load_state and the converters), against the config.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from paddle_electra.config import ElectraConfig
from paddle_electra.errors import WeightsError

# HF buffers and tied copies that are not parameters of their own
HF_IGNORABLE = ("electra.embeddings.position_ids", "electra.embeddings.token_type_ids")
HF_TIED = "generator_lm_head.weight"  # = electra.embeddings.word_embeddings.weight in HF's tied generator


def _linear(hf: str, ours: str):
    return [((f"{hf}.weight",), f"{ours}.weight", "linear"), ((f"{hf}.bias",), f"{ours}.bias", "copy")]


def _norm(hf: str, ours: str):
    return [((f"{hf}.weight",), f"{ours}.weight", "copy"), ((f"{hf}.bias",), f"{ours}.bias", "copy")]


def name_table(config: ElectraConfig, head: str) -> List[Tuple[Tuple[str, ...], str, str]]:
    """Rows for a backbone of `config` plus head in {"discriminator", "generator", "none"}."""
    rows = [((f"electra.embeddings.{t}.weight",), f"electra.embeddings.{t}.weight", "copy")
            for t in ("word_embeddings", "position_embeddings", "token_type_embeddings")]
    rows += _norm("electra.embeddings.LayerNorm", "electra.embeddings.layer_norm")
    if config.embedding_size != config.hidden_size:
        rows += _linear("electra.embeddings_project", "electra.embeddings_project")
    for k in range(config.num_hidden_layers):
        hf, ours = f"electra.encoder.layer.{k}", f"electra.encoder.{k}"
        qkv = tuple(f"{hf}.attention.self.{p}" for p in ("query", "key", "value"))
        rows.append((tuple(f"{n}.weight" for n in qkv), f"{ours}.attention.qkv.weight", "qkv_weight"))
        rows.append((tuple(f"{n}.bias" for n in qkv), f"{ours}.attention.qkv.bias", "qkv_bias"))
        rows += _linear(f"{hf}.attention.output.dense", f"{ours}.attention.output")
        rows += _norm(f"{hf}.attention.output.LayerNorm", f"{ours}.attention.layer_norm")
        rows += _linear(f"{hf}.intermediate.dense", f"{ours}.intermediate")
        rows += _linear(f"{hf}.output.dense", f"{ours}.output")
        rows += _norm(f"{hf}.output.LayerNorm", f"{ours}.layer_norm")
    if head == "discriminator":
        rows += _linear("discriminator_predictions.dense", "discriminator_predictions.dense")
        rows += _linear("discriminator_predictions.dense_prediction", "discriminator_predictions.dense_prediction")
    elif head == "generator":
        rows += _linear("generator_predictions.dense", "generator_predictions.dense")
        rows += _norm("generator_predictions.LayerNorm", "generator_predictions.layer_norm")
        rows.append((("generator_lm_head.bias",), "generator_predictions.output_bias", "copy"))
    elif head != "none":
        raise ValueError(f"head must be discriminator, generator or none, got {head!r}")
    return rows


def hf_to_paddle(hf: Dict[str, np.ndarray], config: ElectraConfig, head: str, source: str = "HF weights"):
    """HF (torch layout) numpy state dict -> paddle_electra state dict. Strict: every tensor accounted for."""
    out, used, problems = {}, set(), []
    for hf_names, ours, kind in name_table(config, head):
        missing = [n for n in hf_names if n not in hf]
        if missing:
            problems.append(f"missing tensor(s) {missing} (needed for {ours})")
            continue
        arrays = [np.asarray(hf[n], dtype=np.float32) for n in hf_names]
        used.update(hf_names)
        if kind == "copy":
            out[ours] = arrays[0]
        elif kind == "linear":
            out[ours] = arrays[0].T
        elif kind == "qkv_weight":
            out[ours] = np.concatenate([a.T for a in arrays], axis=1)
        elif kind == "qkv_bias":
            out[ours] = np.concatenate(arrays, axis=0)
    if head == "generator" and HF_TIED in hf:
        used.add(HF_TIED)
        word = hf.get("electra.embeddings.word_embeddings.weight")
        if word is not None and not np.array_equal(np.asarray(hf[HF_TIED]), np.asarray(word)):
            problems.append(f"{HF_TIED} differs from electra.embeddings.word_embeddings.weight: "
                            "ELECTRA ties them; an untied generator head is not supported")
    unused = [n for n in hf if n not in used and n not in HF_IGNORABLE]
    if unused:
        problems.append(f"unexpected tensor(s) {sorted(unused)}")
    if problems:
        raise WeightsError(f"{source}: " + "; ".join(problems))
    return out


def paddle_to_hf(state: Dict[str, np.ndarray], config: ElectraConfig, head: str) -> Dict[str, np.ndarray]:
    """paddle_electra state dict -> HF state dict (torch layout), including the tied generator_lm_head.weight."""
    h = config.hidden_size
    out, used, problems = {}, set(), []
    for hf_names, ours, kind in name_table(config, head):
        if ours not in state:
            problems.append(f"missing tensor {ours!r}")
            continue
        used.add(ours)
        array = np.asarray(state[ours], dtype=np.float32)
        if kind == "copy":
            out[hf_names[0]] = array
        elif kind == "linear":
            out[hf_names[0]] = np.ascontiguousarray(array.T)
        elif kind == "qkv_weight":
            for i, name in enumerate(hf_names):
                out[name] = np.ascontiguousarray(array[:, i * h:(i + 1) * h].T)
        elif kind == "qkv_bias":
            for i, name in enumerate(hf_names):
                out[name] = array[i * h:(i + 1) * h].copy()
    if head == "generator" and "electra.embeddings.word_embeddings.weight" in out:
        out[HF_TIED] = out["electra.embeddings.word_embeddings.weight"]
    unused = [n for n in state if n not in used]
    if unused:
        problems.append(f"tensor(s) with no HF name: {sorted(unused)}")
    if problems:
        raise WeightsError("paddle_electra weights: " + "; ".join(problems))
    return out
