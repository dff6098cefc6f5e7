"""Model shapes and synthetic batches shared by the benchmarks, plus the weight maps to PaddleNLP and HF.

The shapes are the official Chinese ELECTRA ones (paddle_electra/configs); the same field values build the PaddleNLP
and HF models, so every implementation computes the same network on the same inputs.
"""
from __future__ import annotations

import numpy as np

# ids of Google's Chinese BERT vocab (the one the official Chinese ELECTRA models use)
PAD, UNK, CLS, SEP, MASK = 0, 100, 101, 102, 103
SPECIAL_IDS = (PAD, UNK, CLS, SEP, MASK)
VOCAB_SIZE = 21128
SHAPE_FIELDS = ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob",
                "max_position_embeddings", "type_vocab_size", "initializer_range", "layer_norm_eps", "pad_token_id")


def config_fields(size: str, role: str) -> dict:
    """The official config of `size` (small/base/...) and `role` as a plain dict of shape fields."""
    from paddle_electra.config import preset
    cfg = preset(size, role)
    return {name: getattr(cfg, name) for name in SHAPE_FIELDS}


def pretrain_configs(setting: str):
    """(discriminator fields, generator fields) of a pretraining setting:
    'small' = official Chinese small (generator 1/4 of the discriminator's width),
    'small-eq' = generator the same size as the discriminator (PaddleNLP's only layout; environment.md's reference)."""
    disc = config_fields("small", "discriminator")
    if setting == "small":
        return disc, config_fields("small", "generator")
    if setting == "small-eq":
        return disc, dict(disc)
    if setting == "base":
        return config_fields("base", "discriminator"), config_fields("base", "generator")
    raise ValueError(f"unknown pretraining setting {setting!r}")


def full_batch(batch: int, seq_len: int, seed: int = 0):
    """[CLS] w1 .. w_{L-2} [SEP] with random ordinary ids: packed pretraining sequences, no padding.
    Returns int64 arrays input_ids, token_type_ids, attention_mask, each [B, L]."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(MASK + 1, VOCAB_SIZE, size=(batch, seq_len), dtype=np.int64)
    ids[:, 0], ids[:, -1] = CLS, SEP
    return ids, np.zeros_like(ids), np.ones_like(ids)


def mask_batch(ids: np.ndarray, rng: np.random.Generator, mask_prob: float = 0.15, replace_prob: float = 0.85):
    """The official masking on numpy, for the reference implementations: round(real * p) positions (at least 1)
    among non-special tokens, 85% of them [MASK], the rest kept. Returns (masked_ids, positions_mask [B, L] bool)."""
    masked = ids.copy()
    chosen = np.zeros(ids.shape, dtype=bool)
    for row in range(ids.shape[0]):
        candidates = np.flatnonzero(~np.isin(ids[row], SPECIAL_IDS))
        real = int((ids[row] != PAD).sum())
        count = min(len(candidates), max(1, int(np.round(real * mask_prob))))
        picked = rng.choice(candidates, size=count, replace=False)
        chosen[row, picked] = True
        masked[row, picked[rng.random(count) < replace_prob]] = MASK
    return masked, chosen


# ---- weight maps: paddle_electra state -> PaddleNLP / HF state (for output-equality checks) ----------------------
def ours_to_paddlenlp_backbone(state: dict, num_layers: int, prefix_in="electra.", prefix_out="electra.") -> dict:
    """paddle_electra backbone tensors -> PaddleNLP ElectraModel names (nn.TransformerEncoder layout).
    Both store Linear weights [in, out]; our fused qkv splits into q_proj, k_proj, v_proj."""
    out = {}
    for table in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        out[f"{prefix_out}embeddings.{table}.weight"] = state[f"{prefix_in}embeddings.{table}.weight"]
    for p in ("weight", "bias"):
        out[f"{prefix_out}embeddings.layer_norm.{p}"] = state[f"{prefix_in}embeddings.layer_norm.{p}"]
        if f"{prefix_in}embeddings_project.{p}" in state:
            out[f"{prefix_out}embeddings_project.{p}"] = state[f"{prefix_in}embeddings_project.{p}"]
    for k in range(num_layers):
        src, dst = f"{prefix_in}encoder.{k}.", f"{prefix_out}encoder.layers.{k}."
        for p in ("weight", "bias"):
            q, kk, v = np.split(state[f"{src}attention.qkv.{p}"], 3, axis=-1)
            for proj, part in (("q_proj", q), ("k_proj", kk), ("v_proj", v)):
                out[f"{dst}self_attn.{proj}.{p}"] = part
            out[f"{dst}self_attn.out_proj.{p}"] = state[f"{src}attention.output.{p}"]
            out[f"{dst}norm1.{p}"] = state[f"{src}attention.layer_norm.{p}"]
            out[f"{dst}linear1.{p}"] = state[f"{src}intermediate.{p}"]
            out[f"{dst}linear2.{p}"] = state[f"{src}output.{p}"]
            out[f"{dst}norm2.{p}"] = state[f"{src}layer_norm.{p}"]
    return out


def ours_to_hf_backbone(state: dict, cfg) -> dict:
    """paddle_electra backbone tensors -> HF ElectraModel names (torch layout), via the project's converter table."""
    from converters.mapping import paddle_to_hf
    backbone = {k: v for k, v in state.items() if k.startswith("electra.")}
    return paddle_to_hf(backbone, cfg, "none")
