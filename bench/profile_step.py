"""Where one pretraining or fine-tuning step's time goes, per phase and per Paddle operator (issue 15: profile before
optimising).

    python -m bench.profile_step [--config pretrain/configs/peoples_daily_tiny.json] [--data DATA] [--steps 40]
                                 [--threads 1] [--ops 30] [--out bench/results/profile_step.md]
    python -m bench.profile_step --finetune small [--batch 32] [--seq-len 128] [--threads 2] [--steps 4] [--out ...]

--finetune SIZE profiles the fine-tuning step instead (bench/finetune_step.py's "ours": ElectraForSequenceClassification
of the official SIZE shape, 2 labels, mean of the cross-entropy, backward, AdamW with the official layer-wise decay 0.8
and global-norm clipping), on random ids of [batch, seq-len].

The step is pretrain/train.py's, in the same order and with the same functions: the masks and the generator's
uniforms (pretrain/rng.py), forward of generator + discriminator (`ElectraForPretraining`), backward, the logged
gradient norm, AdamW with global-norm clipping, clear_grad, the schedule. Phases are timed with wall clocks around
each call (Paddle's CPU kernels run synchronously, so a phase's time is its own); the operator table is Paddle's
profiler (`paddle.profiler`, CPU target) over the same steps, its operator summary sorted by total CPU time, forward
and backward kernels apart (`*_grad`). Data: a dataset built by pretrain/data.py (`--data`), else random ids of the
config's shape (the cost of a step does not depend on the ids).
"""
from __future__ import annotations

import io
import os
import sys
import time
from contextlib import redirect_stdout

import numpy as np
from paddle_electra.errors import command
from paddle_electra.runconfig import ArgumentParser

PHASES = ("masks", "forward", "backward", "grad_norm", "optimizer", "clear_grad")


def build(config_path: str, data_dir, overrides: dict, seq_len: int = 32):
    import paddle_electra  # noqa: F401  (CPU environment before paddle)
    import paddle
    from paddle_electra.optim import build_optimizer, global_grad_norm, linear_warmup_decay
    from paddle_electra.pretraining import ElectraForPretraining, init_positions_sinusoidal
    from pretrain.config import PretrainConfig
    from pretrain.rng import draw_masks, draw_sample_uniforms

    cfg = PretrainConfig.load(config_path, dict(overrides, data=data_dir or "unused", output_dir="unused")).resolve()
    batch, seq = cfg.train_batch_size, None
    if data_dir:
        from pretrain.dataset import PretrainingDataset
        data = PretrainingDataset(data_dir)
        tokenizer = data.tokenizer()
        vocab, seq = data.vocab_size, data.max_seq_length
        special, mask_id = tokenizer.special_token_ids, tokenizer.mask_token_id
        arrays = data.batch(np.arange(batch) % len(data))
    else:
        vocab, seq = 8000, seq_len
        special, mask_id = [0, 100, 101, 102, 103], 103
        rng = np.random.default_rng(0)
        ids = rng.integers(104, vocab, size=(batch, seq)).astype("int64")
        ids[:, 0], ids[:, -1] = 101, 102
        arrays = {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": np.ones_like(ids)}
    disc_cfg, gen_cfg = cfg.model_configs(vocab)
    paddle.seed(0)
    model = ElectraForPretraining(disc_cfg, gen_cfg, special, mask_id, mask_prob=cfg.mask_prob,
                                  gen_weight=cfg.gen_weight, disc_weight=cfg.disc_weight, temperature=cfg.temperature)
    if cfg.position_init == "sinusoidal":
        init_positions_sinusoidal(model.discriminator.electra.embeddings, disc_cfg.initializer_range)
    schedule = linear_warmup_decay(cfg.learning_rate, cfg.warmup_steps, cfg.num_train_steps)
    optimizer = build_optimizer(model, schedule, cfg.weight_decay, clip_norm=cfg.clip_norm, epsilon=cfg.adam_epsilon)
    params = [p for p in model.parameters() if not p.stop_gradient]
    tensors = {k: paddle.to_tensor(v) for k, v in arrays.items()}
    model.train()
    clock = {phase: 0.0 for phase in PHASES}

    def step(i: int):
        t0 = time.perf_counter()
        positions = i * batch + np.arange(batch)
        masked = draw_masks(tensors["input_ids"], tensors["attention_mask"], positions, cfg.seed, model.special_ids,
                            model.mask_token_id, cfg.mask_prob)
        uniforms = draw_sample_uniforms(positions, masked.positions.shape[1], cfg.seed)
        t1 = time.perf_counter()
        out = model(tensors["input_ids"], tensors["token_type_ids"], tensors["attention_mask"], masked=masked,
                    sample_uniforms=uniforms)
        real = float(tensors["attention_mask"].sum())
        loss = cfg.gen_weight * out.gen_loss_sum / float(masked.weights.sum()) + \
            cfg.disc_weight * out.disc_loss_sum / real
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        global_grad_norm(params)
        t4 = time.perf_counter()
        optimizer.step()
        t5 = time.perf_counter()
        optimizer.clear_grad()
        schedule.step()
        t6 = time.perf_counter()
        for phase, seconds in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
            clock[phase] += seconds

    shape = (f"discriminator {disc_cfg.num_hidden_layers} layers x h{disc_cfg.hidden_size} (FFN "
             f"{disc_cfg.intermediate_size}), generator {gen_cfg.num_hidden_layers} x h{gen_cfg.hidden_size}, "
             f"vocab {vocab}, batch {batch} x {seq}")
    return step, clock, shape


FINETUNE_PHASES = ("forward", "backward", "optimizer", "clear_grad")


def build_finetune(size: str, batch: int, seq_len: int):
    """The fine-tuning step of `size` on random ids: (step, clock, shape), as build()."""
    import paddle_electra  # noqa: F401  (CPU environment before paddle)
    import paddle
    import paddle.nn.functional as F
    from paddle_electra.config import preset
    from paddle_electra.modeling import ElectraForSequenceClassification
    from paddle_electra.optim import build_optimizer, linear_warmup_decay

    config = preset(size)
    paddle.seed(0)
    model = ElectraForSequenceClassification(config, num_labels=2)
    model.train()
    schedule = linear_warmup_decay(1e-4, 10, 1000)
    optimizer = build_optimizer(model, schedule, layerwise_decay=0.8)
    rng = np.random.default_rng(0)
    ids = rng.integers(104, config.vocab_size, size=(batch, seq_len)).astype("int64")
    ids[:, 0], ids[:, -1] = 101, 102
    tensors = [paddle.to_tensor(a) for a in (ids, np.zeros_like(ids), np.ones_like(ids))]
    labels = paddle.to_tensor(rng.integers(0, 2, size=(batch,)).astype("int64"))
    clock = {phase: 0.0 for phase in FINETUNE_PHASES}

    def step(i: int):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(*tensors), labels).mean()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        optimizer.step()
        t3 = time.perf_counter()
        optimizer.clear_grad()
        schedule.step()
        t4 = time.perf_counter()
        for phase, seconds in zip(FINETUNE_PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            clock[phase] += seconds

    shape = (f"sequence classification, {size}: {config.num_hidden_layers} layers x h{config.hidden_size} (FFN "
             f"{config.intermediate_size}), vocab {config.vocab_size}, batch {batch} x {seq_len}")
    return step, clock, shape


def operator_table(step, steps: int, top: int) -> str:
    import paddle.profiler as profiler
    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU])
    prof.start()
    for i in range(steps):
        step(10_000 + i)
        prof.step()
    prof.stop()
    text = io.StringIO()
    with redirect_stdout(text):
        prof.summary(sorted_by=profiler.SortedKeys.CPUTotal, op_detail=False, thread_sep=False, time_unit="ms",
                     views=[profiler.SummaryView.OperatorView])
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    return "\n".join(lines[:top + 8])


@command
def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m bench.profile_step", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=os.path.join("pretrain", "configs", "peoples_daily_tiny.json"))
    parser.add_argument("--data", help="a dataset folder from pretrain/data.py (default: random ids)")
    parser.add_argument("--steps", type=int, default=40, help="timed steps (after 5 warm-up steps)")
    parser.add_argument("--seq-len", type=int, default=32, help="sequence length of the random ids (without --data)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the demo's processes use 1)")
    parser.add_argument("--ops", type=int, default=30, help="rows of the operator table")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON",
                        help="config overrides, e.g. train_batch_size=16 'discriminator={\"hidden_size\": 256}'")
    parser.add_argument("--finetune", metavar="SIZE", help="profile the fine-tuning step of this official size "
                        "(small, base, ...) instead of pretraining")
    parser.add_argument("--batch", type=int, default=32, help="batch size of --finetune")
    parser.add_argument("--out", help="also write the report (markdown) here")
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    import json
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    if args.finetune:
        step, clock, shape = build_finetune(args.finetune, args.batch, args.seq_len)
    else:
        step, clock, shape = build(args.config or None, args.data, overrides, args.seq_len)
    for i in range(5):
        step(i)
    for phase in clock:
        clock[phase] = 0.0
    started = time.perf_counter()
    for i in range(args.steps):
        step(100 + i)
    wall = time.perf_counter() - started
    kind = "fine-tuning" if args.finetune else "pretraining"
    lines = [f"# One {kind} step, by phase and by operator ({args.threads} thread(s))", "",
             f"Shape: {shape}; {args.steps} steps after 5 warm-up steps; {time.strftime('%Y-%m-%d')}, "
             f"{os.cpu_count()} CPUs.", "", "| phase | ms per step | share |", "|---|---|---|"]
    for phase, seconds in clock.items():
        lines.append(f"| {phase} | {1000 * seconds / args.steps:.2f} | {100 * seconds / wall:.1f}% |")
    lines += [f"| step (wall) | {1000 * wall / args.steps:.2f} | 100% |", "",
              "Paddle profiler, operator view (sorted by total CPU time):", "", "```",
              operator_table(step, args.steps, args.ops), "```"]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        from paddle_electra.fileio import write_text
        write_text(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
