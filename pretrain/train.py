"""The ELECTRA pretraining loop: data -> masks -> forward -> backward -> clip -> step -> log -> eval/checkpoint.

Losses are normalised over the GLOBAL batch (all ranks, all accumulation steps): the generator loss is the sum over
every masked slot of the global batch divided by the number of slots, the discriminator loss likewise over real
tokens. With one process and no accumulation this is exactly the official objective; with N ranks or k
accumulation steps it is the same number, because each rank scales its partial sums by the global counts (one small
all-reduce before the forward pass). So `train_batch_size` alone defines the optimisation, however it is split.

AMP: "auto" means bf16 on a GPU that supports it (fp16 with a dynamic loss scaler otherwise) and fp32 on CPU: on
CPU Paddle 3.3 has no bf16 kernels for matmul/softmax/layer_norm, and bf16 autocast of the tiny model measured slower
than fp32 on this machine (paddle.amp.is_bfloat16_supported() is True on CPU all the same, so "auto" checks the
device first); "bf16"/"fp16" force it.
"""
from __future__ import annotations

import json
import os
import resource
import time

import numpy as np

import paddle_electra  # noqa: F401  (CPU environment before paddle)
import paddle

from paddle_electra.errors import ConfigError
from paddle_electra.fileio import write_text
from paddle_electra.optim import build_optimizer, global_grad_norm, linear_warmup_decay
from paddle_electra.pretraining import ElectraForPretraining, init_positions_sinusoidal
from pretrain.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from pretrain.config import PretrainConfig
from pretrain.dataset import EpochSampler, PretrainingDataset
from pretrain.evaluate import evaluate, format_result, unigram_token
from pretrain import warmstart
from pretrain.export import export_model
from pretrain.rng import (capture_rng_state, derive_seed, draw_masks, draw_sample_uniforms, restore_rng_state,
                         seed_dropout)
from pretrain.runtime import (PeerWatchdog, StopFlag, all_reduce_gradients, all_reduce_sum, format_summary,
                              init_distributed, peer_timeout, read_jsonl, resolve_amp)

METRICS = ("gen_sum", "disc_sum", "gen_correct", "disc_correct", "true_pos", "pred_pos", "actual_pos")


def get_lr(step: int, peak_lr: float, warmup_steps: int, total_steps: int, power: float = 1.0) -> float:
    """The official schedule (what optim.linear_warmup_decay computes): peak * (1 - t/T)^p * min(1, t/W)."""
    decay = (1.0 - min(step, total_steps) / total_steps) ** power
    return peak_lr * decay * (min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0)


def train(cfg: PretrainConfig) -> dict:
    """Run (or resume) pretraining as configured; return the final summary."""
    world, rank = init_distributed()
    is_main = rank == 0
    started = time.time()
    say = (lambda message: print(message, flush=True)) if is_main else (lambda message: None)

    # --- data: every rank reads only its own micro-batches of each global batch --------------------------------------
    data = PretrainingDataset(cfg.data)
    tokenizer = data.tokenizer()
    sampler = EpochSampler(len(data), cfg.seed)
    micro, accum = cfg.micro_batch_size(world), cfg.gradient_accumulation_steps
    global_batch = cfg.train_batch_size
    eval_data = PretrainingDataset(cfg.eval_data) if cfg.eval_data else None
    if eval_data is not None and eval_data.index["vocab_sha256"] != data.index["vocab_sha256"]:
        raise ConfigError(f"eval_data {cfg.eval_data} was built with another vocab than data {cfg.data}")
    unigram_id = unigram_token(data.token_counts(), tokenizer.special_token_ids)
    whole_words = cfg.masking == "whole-word"
    for dataset, name in ((data, "data"), (eval_data, "eval_data")):
        if whole_words and dataset is not None and not dataset.word_boundaries:
            raise ConfigError(f"masking 'whole-word' needs word boundaries, and {name} {dataset.directory} has none: "
                              f"rebuild it with pretrain/data.py --word-boundaries jieba")

    # --- model, optimizer, schedule (the same initial weights on every rank) ------------------------------------------
    paddle.seed(derive_seed(cfg.seed, "init"))
    init_source = None
    if cfg.init_from:  # continued pretraining: shapes (and below, weights) from released models
        init_source = warmstart.find_source(cfg.init_from)
        warmstart.check_vocab(init_source.discriminator, cfg.data)
        disc_cfg, gen_cfg = warmstart.model_configs(cfg, init_source, data.vocab_size)
    else:
        disc_cfg, gen_cfg = cfg.model_configs(data.vocab_size)
    model = ElectraForPretraining(disc_cfg, gen_cfg, tokenizer.special_token_ids, tokenizer.mask_token_id,
                                  mask_prob=cfg.mask_prob, gen_weight=cfg.gen_weight, disc_weight=cfg.disc_weight,
                                  temperature=cfg.temperature)
    if cfg.position_init == "sinusoidal" and init_source is None:
        init_positions_sinusoidal(model.discriminator.electra.embeddings, disc_cfg.initializer_range)
    schedule = linear_warmup_decay(cfg.learning_rate, cfg.warmup_steps, cfg.num_train_steps, cfg.lr_decay_power)
    optimizer = build_optimizer(model, schedule, cfg.weight_decay, clip_norm=cfg.clip_norm, epsilon=cfg.adam_epsilon)
    amp = resolve_amp(cfg.amp)
    scaler = paddle.amp.GradScaler(init_loss_scaling=2.0 ** 15) if amp == "float16" else None
    params = [p for p in model.parameters() if not p.stop_gradient]

    # --- resume: weights, optimizer, schedule, RNG; the data position is the step itself -----------------------------
    ckpt_root = os.path.join(cfg.output_dir, "checkpoints")
    step = 0
    resume_from = None
    if cfg.resume:
        resume_from = latest_checkpoint(ckpt_root, log=say) if cfg.resume == "latest" else cfg.resume
        if resume_from is None:
            say(f"--resume: no checkpoint in {ckpt_root} yet; starting from step 0")
    elif list_checkpoints(ckpt_root):
        raise ConfigError(f"{ckpt_root} already holds checkpoints; pass --resume to continue that run or choose "
                          f"another --output-dir")
    if resume_from:
        state = load_checkpoint(resume_from, model, optimizer, schedule, scaler)
        if state["data"]["vocab_sha256"] != data.index["vocab_sha256"]:
            raise ConfigError(f"{resume_from} was trained on data with another vocab than {cfg.data}")
        if state["data"]["global_batch"] != global_batch:
            raise ConfigError(f"{resume_from} used train_batch_size {state['data']['global_batch']}, now "
                              f"{global_batch}: the data position would not match")
        restore_rng_state(state["rng"])
        step = state["step"]
        say(f"resumed from {resume_from} at step {step}")
    elif cfg.embedding_init == "ppmi-svd":
        from pretrain.cooccurrence import embedding_table_from_data
        word_embeddings = model.discriminator.electra.embeddings.word_embeddings.weight
        took = time.time()
        table, tokens = embedding_table_from_data(data, word_embeddings.numpy(), disc_cfg.initializer_range)
        word_embeddings.set_value(table)  # every rank computes the same table from the same data
        say(f"word embeddings start from the PPMI-SVD of {tokens:,} training tokens ({time.time() - took:.1f} s)")
    elif init_source is not None:
        report = warmstart.load_initial_weights(model, init_source)
        if is_main:
            from paddle_electra.fileio import write_json
            write_json(os.path.join(cfg.output_dir, warmstart.REPORT_NAME), report)
            for line in warmstart.summary_lines(report):
                say(line)
    # a dead or hung rank ends the run within peer_timeout_s with one line on the others (not a hang)
    watchdog = PeerWatchdog(rank, world, peer_timeout(cfg.peer_timeout_s),
                            f"Start every node again with --resume: it continues from the newest checkpoint in "
                            f"{ckpt_root}.")
    watchdog.beat(step)
    if world > 1:
        # every rank must continue from the same checkpoint: rank 0 writes them, so OUTPUT must be one folder that
        # every node sees (a shared filesystem); a node with its own empty copy would silently start from step 0
        with watchdog.guard():
            starts = all_reduce_sum(np.eye(world)[rank] * step, world)
        if len(set(starts.tolist())) > 1:
            seen = ", ".join(f"rank {r}: {int(at)}" for r, at in enumerate(starts))
            raise ConfigError(f"the ranks would resume from different steps ({seen}): --output-dir {cfg.output_dir} "
                              f"must be one folder that every node shares, where rank 0 writes the checkpoints")
    max_steps = min(cfg.num_train_steps if cfg.max_steps is None else cfg.max_steps, cfg.num_train_steps)
    # data parallel: every rank runs the plain model on its micro-batches, then one all-reduce sums the gradients
    # (runtime.all_reduce_gradients) before the update. Not fleet.distributed_model: its reducer all-reduces inside
    # the backward pass, where a lost peer aborts the process from C++ (measured on loopback) instead of raising the
    # error the watchdog turns into one line; the gradients are the same sums (tests/test_pretrain_distributed.py)

    # --- logging: per-step jsonl (truncated to the resume point), VisualDL, progress bar -------------------------------
    losses_path = os.path.join(cfg.output_dir, "losses.jsonl")
    writer = bar = losses_file = None
    if is_main:
        os.makedirs(cfg.output_dir, exist_ok=True)
        # cut both logs back to the resume point with an atomic rewrite, then append: a kill at any moment
        # leaves either the old or the new log, never a truncated one
        for name in ("losses.jsonl", "eval.jsonl"):
            path = os.path.join(cfg.output_dir, name)
            kept = read_jsonl(path, max_step=step) if resume_from else []
            write_text(path, "".join(json.dumps(record) + "\n" for record in kept))
        losses_file = open(losses_path, "a", encoding="utf-8")
        if cfg.visualdl:
            from visualdl import LogWriter
            writer = LogWriter(logdir=os.path.join(cfg.output_dir, "visualdl"))
        from tqdm import tqdm
        bar = tqdm(total=max_steps, initial=step, desc="pretraining", unit="step", disable=not cfg.progress,
                   dynamic_ncols=True)
    say(f"world {world} x micro-batch {micro} x accumulation {accum} = global batch {global_batch}, "
        f"seq {data.max_seq_length}, amp {amp or 'fp32'}, lr {cfg.learning_rate}, steps {step}->{max_steps}")

    def checkpoint(at_step, metrics):
        if is_main:
            trainer_state = {
                "config": cfg.to_dict(), "discriminator_config": disc_cfg.to_dict(),
                "generator_config": gen_cfg.to_dict(), "rng": capture_rng_state(), "world_size": world,
                "data": {"dir": cfg.data, "vocab_sha256": data.index["vocab_sha256"], "global_batch": global_batch,
                         "next_position": at_step * global_batch, "num_examples": len(data)},
                "metrics": metrics, "paddle_version": paddle.__version__}
            with watchdog.paused():
                path = save_checkpoint(ckpt_root, at_step, model, optimizer, schedule, trainer_state,
                                       tokenizer, scaler, keep=cfg.keep_checkpoints)
            say(f"checkpoint {path}")
        if world > 1:
            paddle.distributed.barrier()

    def run_eval(at_step):
        if not is_main or eval_data is None:
            return None
        # evaluate()'s default seed: the same examples and draws as `pretrain/evaluate.py` with the same sizes
        with watchdog.paused():
            result = evaluate(model, eval_data, unigram_id, cfg.eval_batch_size or micro, cfg.eval_batches, amp=amp,
                              masking=cfg.masking)
        result["step"] = at_step
        with open(os.path.join(cfg.output_dir, "eval.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(result) + "\n")
        if writer is not None:
            for key in ("disc_auc", "disc_accuracy", "gen_accuracy", "gen_accuracy_at_mask", "unigram_accuracy",
                        "gen_loss", "disc_loss"):
                if result[key] is not None:
                    writer.add_scalar(f"eval/{key}", result[key], at_step)
        say(f"step {at_step}: {format_result(result)}")
        return result

    stop = StopFlag()
    window = {"tokens": 0.0, "time": time.time()}
    last, eval_result, saved_step, stop_reason = {}, None, step if resume_from else None, None
    run_tokens, loop_seconds = 0.0, 0.0
    model.train()

    # --- the loop -----------------------------------------------------------------------------------------------------
    with watchdog.guard():  # a collective that fails (a killed peer) ends the run with one line
        while step < max_steps:
            watchdog.beat(step)
            step_started = time.time()
            # 1. this rank's micro-batches of global batch `step`, and their masks (keyed by position in the stream)
            batches = []
            for m in range(accum):
                positions = step * global_batch + (m * world + rank) * micro + np.arange(micro)
                indices = sampler.indices(positions)
                arrays = data.batch(indices, word_starts=True) if whole_words else data.batch(indices)
                starts = arrays.pop("word_starts", None)
                tensors = {k: paddle.to_tensor(v) for k, v in arrays.items()}
                masked = draw_masks(tensors["input_ids"], tensors["attention_mask"], positions, cfg.seed,
                                    model.special_ids, model.mask_token_id, cfg.mask_prob, cfg.per_sample_rng, step,
                                    tag=f"{rank}/{m}", word_starts=starts)
                batches.append((positions, tensors, masked))
            # 2. global counts for the loss normalisation, and a stop request any rank has seen
            timed_out = cfg.max_minutes is not None and time.time() - started > 60 * cfg.max_minutes
            local = [sum(float(b[2].weights.sum()) for b in batches),
                     sum(float(b[1]["attention_mask"].sum()) for b in batches),
                     float(stop.reason is not None or timed_out)]
            total_slots, total_real, stop_requested = all_reduce_sum(local, world)
            # 3. forward + backward per micro-batch; gradients sync across ranks on the last one only
            sums = np.zeros(len(METRICS))
            for m, (positions, tensors, masked) in enumerate(batches):
                uniforms = draw_sample_uniforms(positions, masked.positions.shape[1], cfg.seed, cfg.per_sample_rng,
                                                step, tag=f"{rank}/{m}")
                seed_dropout(cfg.seed, step, rank, m)
                with paddle.amp.auto_cast(enable=amp is not None, dtype=amp or "float16", level="O1"):
                    out = model(tensors["input_ids"], tensors["token_type_ids"], tensors["attention_mask"],
                                masked=masked, sample_uniforms=uniforms)
                # normalised by the global counts: the sum of every rank's gradients is the global-batch gradient
                loss = (cfg.gen_weight * out.gen_loss_sum / (total_slots + 1e-6)
                        + cfg.disc_weight * out.disc_loss_sum / (total_real + 1e-6))
                (scaler.scale(loss) if scaler is not None else loss).backward()
                sums += _batch_sums(out, tensors["attention_mask"])
            if world > 1:
                all_reduce_gradients(params)
            # 4. clip (inside the optimizer) + step; the LR used is the schedule's value before it advances
            lr = schedule.get_lr()
            grad_norm = apply_update(optimizer, scaler, params)
            optimizer.clear_grad()
            schedule.step()
            step += 1
            # 5. global metrics of this step
            s = dict(zip(METRICS, all_reduce_sum(sums, world)))
            gen_loss, disc_loss = s["gen_sum"] / (total_slots + 1e-6), s["disc_sum"] / (total_real + 1e-6)
            last = {"step": step, "loss": cfg.gen_weight * gen_loss + cfg.disc_weight * disc_loss, "gen_loss": gen_loss,
                    "disc_loss": disc_loss, "gen_acc": s["gen_correct"] / (total_slots + 1e-6),
                    "disc_acc": s["disc_correct"] / (total_real + 1e-6),
                    "disc_precision": s["true_pos"] / (s["pred_pos"] + 1e-6),
                    "disc_recall": s["true_pos"] / (s["actual_pos"] + 1e-6), "lr": lr, "grad_norm": grad_norm,
                    "tokens": total_real}
            window["tokens"] += total_real
            run_tokens += total_real
            loop_seconds += time.time() - step_started
            if is_main:
                losses_file.write(json.dumps(last) + "\n")
                losses_file.flush()
                if step % cfg.log_every == 0 or step == max_steps:
                    now = time.time()
                    last["tokens_per_s"] = window["tokens"] / max(now - window["time"], 1e-9)
                    window.update(tokens=0.0, time=now)
                    if writer is not None:
                        for key in ("loss", "gen_loss", "gen_acc", "disc_loss", "disc_acc", "disc_precision",
                                    "disc_recall", "lr", "grad_norm", "tokens_per_s"):
                            writer.add_scalar(f"train/{key}", last[key], step)
                    postfix = dict(loss=f"{last['loss']:.3f}", gen_acc=f"{last['gen_acc']:.3f}",
                                   disc_acc=f"{last['disc_acc']:.3f}", tok_s=f"{last['tokens_per_s']:.0f}")
                    if cfg.max_minutes is not None:  # the bar's ETA is for max_steps; this is the time limit's
                        postfix["min_left"] = f"{cfg.max_minutes - (now - started) / 60:.1f}"
                    bar.set_postfix(postfix, refresh=False)
                bar.update(1)
            # 6. evaluation and checkpoints on schedule; a stop request ends the run after this step
            if cfg.eval_every and step % cfg.eval_every == 0 and step < max_steps:
                eval_result = run_eval(step) or eval_result
            if cfg.save_every and step % cfg.save_every == 0:
                checkpoint(step, last)
                saved_step = step
            if stop_requested:
                stop_reason = stop.reason or ("time limit" if timed_out else "stop requested by another rank")
                say(f"\nstopping after step {step}: {stop_reason}")
                break

        # --- at exit: checkpoint, final evaluation, export, summary ---------------------------------------------------
        stop.restore()
        if saved_step != step:
            checkpoint(step, last)
    watchdog.stop()  # what follows is rank-local
    if is_main:
        bar.close()
        losses_file.close()
    eval_result = run_eval(step) if eval_data is not None else eval_result
    export_paths = None
    if is_main and cfg.export:
        export_paths = export_model(model, tokenizer, os.path.join(cfg.output_dir, "export"))
    elapsed = time.time() - started
    summary = {
        "steps": step, "stopped": stop_reason or ("max_steps" if step >= max_steps else None),
        "world_size": world, "global_batch": global_batch, "seq_len": data.max_seq_length, "amp": amp or "fp32",
        "wall_seconds": elapsed, "last": last, "eval": eval_result, "export": export_paths,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "tokens_this_run": run_tokens, "tokens_per_s": run_tokens / max(loop_seconds, 1e-9),
    }
    if is_main:
        from paddle_electra.fileio import write_json
        write_json(os.path.join(cfg.output_dir, "summary.json"), summary)
        say(format_summary(summary))
        if writer is not None:
            writer.close()
    return summary


def apply_update(optimizer, scaler, params) -> float:
    """Unscale the gradients (fp16 only), measure their global norm, step; returns the norm (before clipping).

    Paddle's GradScaler remembers that it unscaled per optimizer object (`_optimizer_states[id(optimizer)]`), so the
    object unscaled must be the object stepped: unscaling an inner optimizer and stepping a wrapper of it (fleet's
    distributed optimizer, which this loop used before it summed gradients itself) would divide the gradients by the
    loss scale a second time inside `scaler.step`."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    grad_norm = global_grad_norm(params)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return grad_norm


def _batch_sums(out, attention_mask) -> np.ndarray:
    """This micro-batch's contributions to METRICS (sums, so ranks and micro-batches add up)."""
    with paddle.no_grad():
        real = attention_mask.astype("float32")
        predicted = (out.disc_logits > 0).astype("float32")
        truth = out.disc_labels.astype("float32")
        values = paddle.stack([
            out.gen_loss_sum.detach().astype("float32"), out.disc_loss_sum.detach().astype("float32"),
            out.gen_correct.sum(), ((predicted == truth).astype("float32") * real).sum(),
            (predicted * truth * real).sum(), (predicted * real).sum(), (truth * real).sum()])
    return values.numpy().astype(np.float64)
