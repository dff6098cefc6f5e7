"""Pretraining step benchmark: generator + discriminator forward, backward and optimizer step, Chinese-small shapes.

Implementations, each in its own process on the same [B, 128] batch of packed sequences:
- ours: `paddle_electra.ElectraForPretraining` + `paddle_electra.optim.build_optimizer` (masking, inverse-CDF sampling
  and replacement run inside the model's forward, on Paddle ops);
- paddlenlp: `ElectraForTotalPretraining` + `ElectraPretrainingCriterion` with the same AdamW recipe; run with the
  environment as shipped and with ours (whatever importing paddle_electra sets). PaddleNLP builds generator and
  discriminator from one config; for the official 1/4-width generator we swap in an `ElectraGenerator` of the
  generator config and re-tie the word embeddings, which is what its `ElectraForTotalPretraining` would hold if it
  took two configs. Its generator scores the whole vocabulary at every position, as shipped;
- hf: transformers `ElectraForMaskedLM` (generator) + `ElectraForPreTraining` (discriminator) on torch with all
  embeddings shared and the generator's output tied to them, torch AdamW with the same hyper-parameters and
  global-norm clipping; sampling at the masked positions only, as ELECTRA training scripts on HF do.
Masking for the two references is the official rule on numpy (round(15% of real tokens), 85% [MASK]), inside the
timed step.

Settings: 'small' (official Chinese small: generator hidden 64) and 'small-eq' (generator = discriminator size, the
layout of environment.md's reference numbers).
"""
from __future__ import annotations

import math
import time

import numpy as np

from bench import common, shapes

WARMUP_LR, TOTAL_STEPS, PEAK_LR = 10, 10000, 5e-4


def step_flops(setting: str, batch: int, seq_len: int) -> dict:
    """Analytic matmul FLOPs of one training step: encoder matmuls of both networks (what the peak share counts)."""
    disc, gen = shapes.pretrain_configs(setting)
    tokens = batch * seq_len
    enc = sum(common.encoder_matmul_flops(c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"], seq_len,
                                          tokens, c["embedding_size"]) for c in (disc, gen))
    return {"encoder_train_flops": common.train_flops(enc)}


# ---- implementations (each builds model + optimizer and returns a step function) --------------------------------
def build_ours(disc, gen, ids, tt, mask):
    import paddle
    from paddle_electra.config import ElectraConfig
    from paddle_electra.pretraining import ElectraForPretraining
    from paddle_electra.optim import build_optimizer, linear_warmup_decay

    model = ElectraForPretraining(ElectraConfig(**disc), ElectraConfig(**gen), special_ids=shapes.SPECIAL_IDS,
                                  mask_token_id=shapes.MASK)
    model.train()
    schedule = linear_warmup_decay(PEAK_LR, WARMUP_LR, TOTAL_STEPS)
    optimizer = build_optimizer(model, schedule)
    ids_t, tt_t, mask_t = (paddle.to_tensor(a) for a in (ids, tt, mask))

    def step():
        out = model(ids_t, tt_t, mask_t)
        out.loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        schedule.step()
        return float(out.loss)

    return step


def build_paddlenlp(disc, gen, ids, tt, mask):
    import paddle
    from paddlenlp.transformers import ElectraConfig, ElectraForTotalPretraining, ElectraGenerator
    from paddlenlp.transformers.electra.modeling import ElectraPretrainingCriterion

    disc_cfg = ElectraConfig(**disc)
    model = ElectraForTotalPretraining(disc_cfg)
    if gen != disc:
        model.generator = ElectraGenerator(ElectraConfig(**gen))
        model.tie_weights()
    model.train()
    criterion = ElectraPretrainingCriterion(disc_cfg)
    schedule = paddle.optimizer.lr.LambdaDecay(
        PEAK_LR, lambda t: min(1.0, t / WARMUP_LR) * max(0.0, 1 - t / TOTAL_STEPS))
    decay = [p.name for n, p in model.named_parameters() if not any(s in n for s in ("bias", "norm"))]
    optimizer = paddle.optimizer.AdamW(schedule, parameters=model.parameters(), epsilon=1e-6, weight_decay=0.01,
                                       apply_decay_param_fun=lambda name: name in decay,
                                       grad_clip=paddle.nn.ClipGradByGlobalNorm(1.0))
    rng = np.random.default_rng(1)
    tt_t = paddle.to_tensor(tt)

    def step():
        masked, chosen = shapes.mask_batch(ids, rng)
        labels = np.where(chosen, ids, -100)
        gen_logits, disc_logits, disc_labels, attention = model(
            input_ids=paddle.to_tensor(masked), token_type_ids=tt_t, raw_input_ids=paddle.to_tensor(ids),
            generator_labels=paddle.to_tensor(labels))
        loss = criterion(gen_logits, disc_logits, paddle.to_tensor(labels), disc_labels, attention)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        schedule.step()
        return float(loss)

    return step


def build_hf(disc, gen, ids, tt, mask):
    import torch
    from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

    torch.manual_seed(0)
    d = ElectraForPreTraining(ElectraConfig(**disc))
    g = ElectraForMaskedLM(ElectraConfig(**gen))
    g.electra.embeddings = d.electra.embeddings  # share all of electra/embeddings, as the official models
    g.generator_lm_head.weight = d.electra.embeddings.word_embeddings.weight
    d.train(), g.train()
    params = {id(p): (n, p) for m in (d, g) for n, p in m.named_parameters()}.values()
    no_decay = [any(s in n for s in ("bias", "LayerNorm")) for n, _ in params]
    groups = [{"params": [p for (_, p), nd in zip(params, no_decay) if not nd], "weight_decay": 0.01},
              {"params": [p for (_, p), nd in zip(params, no_decay) if nd], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=PEAK_LR, eps=1e-6)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: min(1.0, t / WARMUP_LR) * max(0.0, 1 - t / TOTAL_STEPS))
    rng = np.random.default_rng(1)
    ids_t, tt_t, mask_t = (torch.from_numpy(a) for a in (ids, tt, mask))
    all_params = [p for _, p in params]

    def step():
        masked, chosen = shapes.mask_batch(ids, rng)
        chosen_t = torch.from_numpy(chosen)
        labels = torch.where(chosen_t, ids_t, torch.full_like(ids_t, -100))
        gen_out = g(input_ids=torch.from_numpy(masked), token_type_ids=tt_t, attention_mask=mask_t, labels=labels)
        with torch.no_grad():
            logits = gen_out.logits[chosen_t]  # [M, V] at the masked positions
            u = torch.rand_like(logits)
            sampled = torch.argmax(logits - torch.log(-torch.log(u + 1e-9) + 1e-9), dim=-1)
            fake = ids_t.clone()
            fake[chosen_t] = sampled
            disc_labels = (fake != ids_t).long()
        disc_out = d(input_ids=fake, token_type_ids=tt_t, attention_mask=mask_t, labels=disc_labels)
        loss = gen_out.loss + 50.0 * disc_out.loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(all_params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        return float(loss)

    return step


BUILDERS = {"ours": build_ours, "paddlenlp": build_paddlenlp, "hf": build_hf}


def worker(spec: dict) -> dict:
    disc, gen = shapes.pretrain_configs(spec["setting"])
    ids, tt, mask = shapes.full_batch(spec["batch"], spec["seq_len"], seed=0)
    t0 = time.perf_counter()
    step = BUILDERS[spec["impl"]](disc, gen, ids, tt, mask)
    build_s = time.perf_counter() - t0
    losses = []
    summary = common.time_repeats(lambda: losses.append(step()), spec["warmup"], spec["repeats"])
    if not all(math.isfinite(x) for x in losses):
        raise RuntimeError(f"non-finite loss {losses}")
    tokens = spec["batch"] * spec["seq_len"]
    return {**summary, "tokens_per_s": tokens / summary["median_s"], "build_s": build_s, "losses": losses}


# ---- orchestration ---------------------------------------------------------------------------------------------
IMPLS = [("ours", "ours", "paddle_electra"), ("paddlenlp", "shipped", "PaddleNLP (as shipped)"),
         ("paddlenlp", "ours", "PaddleNLP (our env)"), ("hf", "shipped", "HF transformers (torch)")]


def plan(level: str):
    """(setting, batch, warmup, repeats, (impl, env) pairs to skip) per level: quick (~1.5 min), default, long.
    Default keeps every implementation at batch 16 and drops the as-shipped PaddleNLP run at batch 32 (the slowest
    row, ~4x ours), which the targets do not use; long runs the whole matrix."""
    shipped = {("paddlenlp", "shipped")}
    if level == "quick":
        return [("small", 16, 1, 1, shipped)]
    if level == "long":
        return [(s, b, 1, 3, set()) for s in ("small", "small-eq") for b in (16, 32)]
    return [("small", 16, 1, 3, set()), ("small", 32, 1, 2, shipped), ("small-eq", 16, 1, 3, set()),
            ("small-eq", 32, 1, 2, shipped)]


def run(level: str, peak_gflops: float) -> dict:
    """All cases of `level`; returns {"rows": [...], "table": markdown}."""
    rows = common.run_step_cases(
        "pretrain", "bench.pretrain_step", plan(level), IMPLS, "setting",
        lambda setting, batch: step_flops(setting, batch, 128)["encoder_train_flops"], ("tokens_per_s", "losses"),
        lambda r: f"{r['tokens_per_s']:.0f} tokens/s, step {r['median_s']:.2f} s, RSS {r['peak_rss_mb']:.0f} MiB",
        peak_gflops)
    return {"rows": rows, "table": table(rows)}


TITLES = {"small": "official small (generator 1/4 width)", "small-eq": "small, generator = discriminator"}


def table(rows) -> str:
    return common.step_table(rows, "setting", "tokens_per_s", "tokens/s",
                             lambda setting, batch: f"Pretraining step, {TITLES[setting]}, batch {batch} x 128")


if __name__ == "__main__":
    common.worker_main(worker)
