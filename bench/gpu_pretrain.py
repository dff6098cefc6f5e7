"""GPU pretraining throughput: paddle_electra vs PaddleNLP vs HF transformers, AMP bf16, tokens/s per GPU.

Run on a machine with one NVIDIA GPU, from the repository root:

    pip install "paddlepaddle-gpu==3.3.1" -i https://www.paddlepaddle.org.cn/packages/stable/cu126/
    pip install paddlenlp==2.8.1 "torch>=2.4" transformers==4.46.3 "huggingface_hub<0.27" "aistudio-sdk<0.3"
    pip install -e .            # paddle_electra (or run with PYTHONPATH=.)
    python bench/gpu_pretrain.py                       # small and base, bf16, batch 128 / 64, seq 128
    python bench/gpu_pretrain.py --sizes small --amp fp32 --batch 64

(The paddle index serves CUDA 11.8 / 12.6 / 12.9 wheels: pick the cuXXX folder matching the driver. paddlenlp
is optional: without it that row is reported as skipped. torch wheels from PyPI bundle their CUDA runtime.)
Each implementation runs in its own process (--worker), so the two frameworks never share the GPU. The card's name,
driver and the versions are printed with the table; results go to bench/results/gpu_latest.json.

Per step: generator + discriminator forward, backward, AdamW (+ global-norm clipping), shared embeddings, the
official masking (15%, 85% [MASK]). ours: `paddle.amp.auto_cast(dtype="bfloat16")` and the model's own fused
attention (`F.scaled_dot_product_attention` on GPU); PaddleNLP: the same autocast over `ElectraForTotalPretraining`
(generator logits over the vocab at every position, as shipped); HF: `torch.autocast(bfloat16)`, eager attention.
`--device cpu --sizes tiny --steps 2` smoke-tests the script without a GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAG = "GPU_BENCH_RESULT "
PAD, UNK, CLS, SEP, MASK = 0, 100, 101, 102, 103
SPECIAL = (PAD, UNK, CLS, SEP, MASK)
FIELDS = ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
          "intermediate_size", "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob",
          "max_position_embeddings", "type_vocab_size", "initializer_range", "layer_norm_eps", "pad_token_id")


def configs(size):
    from paddle_electra.config import preset  # workers get the checkout on PYTHONPATH
    return tuple({f: getattr(preset(size, role), f) for f in FIELDS} for role in ("discriminator", "generator"))


def batch_arrays(batch, seq_len, vocab, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    ids = rng.integers(MASK + 1, vocab, size=(batch, seq_len), dtype=np.int64)
    ids[:, 0], ids[:, -1] = CLS, SEP
    return ids


def mask_numpy(ids, rng, prob=0.15):
    import numpy as np
    masked, chosen = ids.copy(), np.zeros(ids.shape, dtype=bool)
    count = max(1, int(round(ids.shape[1] * prob)))
    for row in range(ids.shape[0]):
        picked = rng.choice(np.arange(1, ids.shape[1] - 1), size=count, replace=False)
        chosen[row, picked] = True
        masked[row, picked[rng.random(count) < 0.85]] = MASK
    return masked, chosen


def encoder_flops(cfg, seq_len, tokens):
    h, n, f, e = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"], cfg["embedding_size"]
    per_token = n * (4 * h * h + 2 * h * f + 2 * seq_len * h) + (e * h if e != h else 0)
    return 2.0 * per_token * tokens


# ---- one implementation per process ------------------------------------------------------------------------------
def run_paddle(spec, impl):
    import numpy as np
    import paddle
    paddle.set_device(spec["device"])
    paddle.seed(0)
    disc, gen = configs(spec["size"])
    ids = batch_arrays(spec["batch"], spec["seq_len"], disc["vocab_size"])
    amp = spec["amp"] == "bf16"
    if impl == "ours":
        from paddle_electra.config import ElectraConfig
        from paddle_electra.optim import build_optimizer, linear_warmup_decay
        from paddle_electra.pretraining import ElectraForPretraining
        model = ElectraForPretraining(ElectraConfig(**disc), ElectraConfig(**gen), SPECIAL, MASK)
        schedule = linear_warmup_decay(5e-4, 10, 10000)
        optimizer = build_optimizer(model, schedule)
        ids_t = paddle.to_tensor(ids)
        types, mask = paddle.zeros_like(ids_t), paddle.ones_like(ids_t)

        def forward():
            return model(ids_t, types, mask).loss
    else:
        from paddlenlp.transformers import ElectraConfig, ElectraForTotalPretraining, ElectraGenerator
        from paddlenlp.transformers.electra.modeling import ElectraPretrainingCriterion
        cfg = ElectraConfig(**disc)
        model = ElectraForTotalPretraining(cfg)
        if gen != disc:
            model.generator = ElectraGenerator(ElectraConfig(**gen))
            model.tie_weights()
        criterion = ElectraPretrainingCriterion(cfg)
        schedule = paddle.optimizer.lr.LambdaDecay(5e-4, lambda t: min(1.0, t / 10))
        optimizer = paddle.optimizer.AdamW(schedule, parameters=model.parameters(), epsilon=1e-6,
                                           weight_decay=0.01, grad_clip=paddle.nn.ClipGradByGlobalNorm(1.0))
        rng = np.random.default_rng(1)
        raw = paddle.to_tensor(ids)

        def forward():
            masked, chosen = mask_numpy(ids, rng)
            labels = paddle.to_tensor(np.where(chosen, ids, -100))
            gen_logits, disc_logits, disc_labels, attention = model(
                input_ids=paddle.to_tensor(masked), raw_input_ids=raw, generator_labels=labels)
            return criterion(gen_logits, disc_logits, labels, disc_labels, attention)
    model.train()

    def step():
        with paddle.amp.auto_cast(enable=amp, dtype="bfloat16", level="O1"):
            loss = forward()
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        schedule.step()
        return loss

    def sync():
        if spec["device"].startswith("gpu"):
            paddle.device.synchronize()

    info = {}
    if spec["device"].startswith("gpu"):
        info["card"] = paddle.device.cuda.get_device_name()
    return step, sync, info, lambda: (paddle.device.cuda.max_memory_allocated() / 2**20
                                      if spec["device"].startswith("gpu") else None)


def run_torch(spec):
    import numpy as np
    import torch
    from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining
    device = "cuda" if spec["device"].startswith("gpu") else "cpu"
    torch.manual_seed(0)
    disc, gen = configs(spec["size"])
    d = ElectraForPreTraining(ElectraConfig(**disc)).to(device)
    g = ElectraForMaskedLM(ElectraConfig(**gen)).to(device)
    g.electra.embeddings = d.electra.embeddings
    g.generator_lm_head.weight = d.electra.embeddings.word_embeddings.weight
    d.train(), g.train()
    params = list({id(p): p for m in (d, g) for p in m.parameters()}.values())
    optimizer = torch.optim.AdamW(params, lr=5e-4, eps=1e-6, weight_decay=0.01)
    ids_np = batch_arrays(spec["batch"], spec["seq_len"], disc["vocab_size"])
    ids = torch.from_numpy(ids_np).to(device)
    mask = torch.ones_like(ids)
    rng = np.random.default_rng(1)
    amp = spec["amp"] == "bf16"

    def step():
        masked, chosen = mask_numpy(ids_np, rng)
        chosen_t = torch.from_numpy(chosen).to(device)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            out = g(input_ids=torch.from_numpy(masked).to(device), attention_mask=mask,
                    labels=torch.where(chosen_t, ids, torch.full_like(ids, -100)))
            with torch.no_grad():
                logits = out.logits[chosen_t].float()
                noise = -torch.log(-torch.log(torch.rand_like(logits) + 1e-9) + 1e-9)
                fake = ids.clone()
                fake[chosen_t] = torch.argmax(logits + noise, -1)
            disc_out = d(input_ids=fake, attention_mask=mask, labels=(fake != ids).long())
            loss = out.loss + 50.0 * disc_out.loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    info = {"card": torch.cuda.get_device_name()} if device == "cuda" else {}
    return step, sync, info, lambda: torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None


def worker(spec):
    impl = spec["impl"]
    step, sync, info, memory = run_torch(spec) if impl == "hf" else run_paddle(spec, impl)
    for _ in range(spec["warmup"]):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(spec["steps"]):
        loss = step()
    sync()
    elapsed = (time.perf_counter() - t0) / spec["steps"]
    final = float(loss)
    if final != final:
        raise RuntimeError("loss is NaN")
    disc, gen = configs(spec["size"])
    tokens = spec["batch"] * spec["seq_len"]
    flops = 3 * sum(encoder_flops(c, spec["seq_len"], tokens) for c in (disc, gen))
    return {**info, "step_s": elapsed, "tokens_per_s": tokens / elapsed, "encoder_tflops": flops / elapsed / 1e12,
            "peak_mem_mib": memory(), "loss": final}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="small,base")
    parser.add_argument("--batch", default="128,64", help="per size, comma-separated (one value = all sizes)")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--amp", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--impls", default="ours,paddlenlp,hf")
    parser.add_argument("--device", default="gpu", help="gpu (default) or cpu for a smoke test")
    args = parser.parse_args()
    if args.worker:
        print(TAG + json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    sizes = args.sizes.split(",")
    batches = [int(b) for b in args.batch.split(",")]
    batches = batches * len(sizes) if len(batches) == 1 else batches
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])),
               GLOG_minloglevel="2", PYTHONWARNINGS="ignore")
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        smi = "nvidia-smi unavailable"
    print(f"device: {smi}", flush=True)
    rows = []
    for size, batch in zip(sizes, batches):
        for impl in args.impls.split(","):
            spec = {"impl": impl, "size": size, "batch": batch, "seq_len": args.seq_len, "steps": args.steps,
                    "warmup": args.warmup, "amp": args.amp, "device": args.device}
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)], env=env,
                                  capture_output=True, text=True, cwd=REPO)
            lines = [line for line in proc.stdout.splitlines() if line.startswith(TAG)]
            if proc.returncode or not lines:
                tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
                rows.append({**spec, "error": " | ".join(tail)})
                print(f"{size} b{batch} {impl}: failed: {' | '.join(tail)}", flush=True)
                continue
            r = {**spec, **json.loads(lines[-1][len(TAG):])}
            rows.append(r)
            print(f"{size} b{batch} {impl}: {r['tokens_per_s']:,.0f} tokens/s, {r['encoder_tflops']:.1f} TFLOP/s "
                  f"(encoder matmuls), peak {r['peak_mem_mib'] or 0:,.0f} MiB", flush=True)
    print("\n| size | batch x seq | implementation | tokens/s | ours / this | encoder TFLOP/s | peak GPU MiB |")
    print("|---|---|---|---|---|---|---|")
    for size, batch in zip(sizes, batches):
        ours = next((r.get("tokens_per_s") for r in rows if r["size"] == size and r["impl"] == "ours"), None)
        for r in (r for r in rows if r["size"] == size):
            if "error" in r:
                print(f"| {size} | {batch} x {args.seq_len} | {r['impl']} | failed | - | - | - |")
                continue
            ratio = f"{ours / r['tokens_per_s']:.2f}" if ours else "-"
            print(f"| {size} | {batch} x {args.seq_len} | {r['impl']} | {r['tokens_per_s']:,.0f} | {ratio} | "
                  f"{r['encoder_tflops']:.1f} | {r['peak_mem_mib'] or 0:,.0f} |")
    if args.device != "gpu":
        return 0  # a smoke test leaves the recorded GPU results alone
    os.makedirs(os.path.join(REPO, "bench", "results"), exist_ok=True)
    out = os.path.join(REPO, "bench", "results", "gpu_latest.json")
    with open(out + ".tmp", "w", encoding="utf-8") as f:
        json.dump({"device": smi, "amp": args.amp, "rows": rows}, f, indent=2)
    os.replace(out + ".tmp", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
