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

Per step, the same work on every side: generator + discriminator forward, backward, AdamW (+ global-norm
clipping), shared embeddings, on one padded batch (lengths drawn between half and all of --seq-len, the same batch
and padding mask for all). The masked positions (15% of the real tokens, 85% of them shown as [MASK]) are drawn
before the timed loop (a cycle of N_MASKS draws), so no side times host-side masking. Generator logits are computed
at the masked slots only by ours and by HF (backbone, then the LM head on the gathered slots).
What still differs, by design of each implementation:
- ours: `paddle.amp.auto_cast(dtype="bfloat16")`, the model's own fused attention on GPU
  (`F.scaled_dot_product_attention` with the padding mask), replaced tokens sampled by inverse CDF (one uniform
  per slot);
- PaddleNLP: the same autocast over `ElectraForTotalPretraining` as shipped: generator logits over the vocabulary
  at every position (it has no masked-slot path), padding mask derived from the pad id;
- HF: `torch.autocast(bfloat16)`, eager attention (transformers' Electra has no SDPA path), Gumbel-max sampling
  (one uniform per vocabulary entry per slot).
`--device cpu --sizes tiny --steps 2` smoke-tests the script without a GPU (tests/test_gpu_paths.py runs it).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from paddle_electra.errors import command
from paddle_electra.runconfig import ArgumentParser

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


N_MASKS = 4  # mask draws made before timing, used in turn


def batch_arrays(batch, seq_len, vocab, seed=0):
    """ids and attention mask [batch, seq_len]: [CLS] random tokens [SEP], then padding; lengths between half and
    all of seq_len (real batches are padded; an all-ones mask would skip the masking work of the fused path)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    ids = rng.integers(MASK + 1, vocab, size=(batch, seq_len), dtype=np.int64)
    lengths = rng.integers(seq_len // 2, seq_len + 1, size=batch)
    lengths[0] = seq_len  # the longest row sets the padded length
    mask = (np.arange(seq_len)[None, :] < lengths[:, None]).astype(np.int64)
    ids[:, 0] = CLS
    ids[np.arange(batch), lengths - 1] = SEP
    ids[mask == 0] = PAD
    return ids, mask


def mask_numpy(ids, attention_mask, rng, prob=0.15):
    """(masked ids, chosen [B, L] bool): 15% of each row's real non-special tokens, 85% of them shown as [MASK]."""
    import numpy as np
    masked, chosen = ids.copy(), np.zeros(ids.shape, dtype=bool)
    for row in range(ids.shape[0]):
        candidates = np.flatnonzero((attention_mask[row] == 1) & ~np.isin(ids[row], SPECIAL))
        count = max(1, int(round(len(candidates) * prob)))
        picked = rng.choice(candidates, size=count, replace=False)
        chosen[row, picked] = True
        masked[row, picked[rng.random(count) < 0.85]] = MASK
    return masked, chosen


def encoder_flops(cfg, seq_len, tokens):
    h, n, f, e = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"], cfg["embedding_size"]
    per_token = n * (4 * h * h + 2 * h * f + 2 * seq_len * h) + (e * h if e != h else 0)
    return 2.0 * per_token * tokens


def training_flops_per_token(size, seq_len, mask_prob=0.15):
    """Matmul FLOPs of one pretraining step per real token, forward + backward (3 x forward): both encoders
    (projections, FFN, attention scores and context, embedding projection), the generator's head on the masked
    slots (dense, then the tied vocabulary matrix) and the discriminator's head. Element-wise work is left out."""
    disc, gen = configs(size)
    forward = sum(encoder_flops(c, seq_len, 1) for c in (disc, gen))
    forward += 2 * mask_prob * (gen["hidden_size"] * gen["embedding_size"]
                                + gen["embedding_size"] * gen["vocab_size"])
    forward += 2 * (disc["hidden_size"] ** 2 + disc["hidden_size"])
    return 3 * forward


def estimate(sizes, seq_len, peaks, utilisations):
    """The expected tokens/s per GPU from the FLOP count: peak x utilisation / FLOPs per token (an estimate, not a
    measurement: the utilisation a run reaches is what bench/gpu_pretrain.py measures)."""
    print(f"Estimated pretraining throughput per GPU at seq {seq_len} (matmul FLOPs only; MFU = model FLOPs "
          f"utilisation; an estimate until measured)\n")
    head = " | ".join(f"{name} {peak:g} TFLOP/s, MFU {u:.0%}" for name, peak in peaks for u in utilisations)
    print(f"| size | GFLOP per token (fwd + bwd) | {head} |")
    print("|---|---|" + "---|" * (len(peaks) * len(utilisations)))
    for size in sizes:
        flops = training_flops_per_token(size, seq_len)
        cells = " | ".join(f"{peak * 1e12 * u / flops:,.0f}" for _, peak in peaks for u in utilisations)
        print(f"| {size} | {flops / 1e9:.3f} | {cells} |")


# ---- one implementation per process ------------------------------------------------------------------------------
def run_paddle(spec, impl):
    import numpy as np
    import paddle
    paddle.set_device(spec["device"])
    paddle.seed(0)
    disc, gen = configs(spec["size"])
    ids, attention_mask = batch_arrays(spec["batch"], spec["seq_len"], disc["vocab_size"])
    amp = spec["amp"] == "bf16"
    turn = iter(range(10 ** 9))
    if impl == "ours":
        from paddle_electra import rtd
        from paddle_electra.config import ElectraConfig
        from paddle_electra.optim import build_optimizer, linear_warmup_decay
        from paddle_electra.pretraining import ElectraForPretraining
        model = ElectraForPretraining(ElectraConfig(**disc), ElectraConfig(**gen), SPECIAL, MASK)
        schedule = linear_warmup_decay(5e-4, 10, 10000)
        optimizer = build_optimizer(model, schedule)
        ids_t, mask = paddle.to_tensor(ids), paddle.to_tensor(attention_mask)
        types = paddle.zeros_like(ids_t)
        draws = [rtd.mask_tokens(ids_t, mask, model.special_ids, model.mask_token_id, model.mask_prob)
                 for _ in range(N_MASKS)]

        def forward():
            return model(ids_t, types, mask, masked=draws[next(turn) % N_MASKS]).loss
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
        draws = []
        for _ in range(N_MASKS):
            masked, chosen = mask_numpy(ids, attention_mask, rng)
            draws.append((paddle.to_tensor(masked), paddle.to_tensor(np.where(chosen, ids, -100))))

        def forward():
            masked, labels = draws[next(turn) % N_MASKS]
            gen_logits, disc_logits, disc_labels, attention = model(
                input_ids=masked, raw_input_ids=raw, generator_labels=labels)
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
    ids_np, mask_np = batch_arrays(spec["batch"], spec["seq_len"], disc["vocab_size"])
    ids, mask = torch.from_numpy(ids_np).to(device), torch.from_numpy(mask_np).to(device)
    rng = np.random.default_rng(1)
    draws = []
    for _ in range(N_MASKS):
        masked, chosen = mask_numpy(ids_np, mask_np, rng)
        draws.append((torch.from_numpy(masked).to(device), torch.from_numpy(chosen).to(device)))
    turn = iter(range(10 ** 9))
    amp = spec["amp"] == "bf16"

    def step():
        masked, chosen_t = draws[next(turn) % N_MASKS]
        with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            # generator logits at the masked slots only, as ours: backbone, then the LM head on the gathered slots
            hidden = g.electra(input_ids=masked, attention_mask=mask).last_hidden_state
            logits = g.generator_lm_head(g.generator_predictions(hidden[chosen_t])).float()
            gen_loss = torch.nn.functional.cross_entropy(logits, ids[chosen_t])
            with torch.no_grad():
                noise = -torch.log(-torch.log(torch.rand_like(logits) + 1e-9) + 1e-9)
                fake = ids.clone()
                fake[chosen_t] = torch.argmax(logits + noise, -1)
            disc_out = d(input_ids=fake, attention_mask=mask, labels=(fake != ids).long())
            loss = gen_loss + 50.0 * disc_out.loss
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
    # tokens/s counts real (non-padding) tokens; the matmul FLOPs run over every padded position
    tokens = int(batch_arrays(spec["batch"], spec["seq_len"], disc["vocab_size"])[1].sum())
    flops = 3 * sum(encoder_flops(c, spec["seq_len"], spec["batch"] * spec["seq_len"]) for c in (disc, gen))
    return {**info, "step_s": elapsed, "tokens_per_s": tokens / elapsed, "encoder_tflops": flops / elapsed / 1e12,
            "peak_mem_mib": memory(), "loss": final}


@command
def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="small,base")
    parser.add_argument("--batch", default="128,64", help="per size, comma-separated (one value = all sizes)")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--amp", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--impls", default="ours,paddlenlp,hf")
    parser.add_argument("--device", default="gpu", help="gpu (default) or cpu for a smoke test")
    parser.add_argument("--estimate", action="store_true",
                        help="print the tokens/s per GPU expected from the FLOP count (dense bf16 peaks of the A100 "
                             "and H100 SXM, MFU 20-40%%) and exit; no GPU needed")
    args = parser.parse_args()
    if args.estimate:
        estimate(args.sizes.split(","), args.seq_len, (("A100", 312.0), ("H100", 989.0)), (0.2, 0.4))
        return 0
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
