"""Shared benchmark machinery: one subprocess per implementation, timing, peak RSS, matmul peak, tables.

Every figure the benchmarks print is a ratio against a reference measured in the same run on the same machine;
absolute times on a shared 2-core machine mean little. Each implementation runs in its own Python process with an
explicit environment, so thread settings (OMP_NUM_THREADS, MKL_DEBUG_CPU_TYPE: both read once, at library import)
and peak RSS are its own.

Protocol: a bench module `bench.X` defines `worker(spec: dict) -> dict` and calls `worker_main(worker)` under
`__main__`; `run_worker("bench.X", spec, env)` starts `python -m bench.X --worker JSON` and reads back the one
result line it prints.
"""
from __future__ import annotations

import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
RESULT_TAG = "BENCH_RESULT "
# the variables Paddle/MKL/OpenMP read at import; set per environment below, never inherited from the parent
PERF_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "MKL_DEBUG_CPU_TYPE", "PADDLE_ELECTRA_NO_ENV",
             "FLAGS_use_stride_kernel", "KMP_BLOCKTIME", "OMP_WAIT_POLICY")
_SCRATCH = tempfile.mkdtemp(prefix="pe-bench-")


def num_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def base_env() -> dict:
    """The parent's environment minus the performance variables, plus quiet, offline library settings."""
    env = {k: v for k, v in os.environ.items() if k not in PERF_VARS}
    env.update({
        "GLOG_minloglevel": "2", "PYTHONWARNINGS": "ignore", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "HUB_HOME": os.path.join(_SCRATCH, "hub"), "PPNLP_HOME": os.path.join(_SCRATCH, "ppnlp"),
        "TOKENIZERS_PARALLELISM": "true",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    })
    return env


def our_settings() -> dict:
    """The variables paddle_electra.env.configure() sets on a clean environment (whatever it sets today)."""
    from paddle_electra import env as pe_env
    saved = dict(os.environ)
    try:
        for name in PERF_VARS:
            os.environ.pop(name, None)
        return dict(pe_env.configure())
    finally:
        os.environ.clear()
        os.environ.update(saved)


def make_env(kind: str) -> dict:
    """'shipped': nothing set, as a user of the library gets it (Paddle then runs on one thread, MKL on its generic
    AMD path); 'ours': what importing paddle_electra sets (paddle_electra.env: all cores; on AMD MKL_DEBUG_CPU_TYPE=5),
    applied before any library starts, so PaddleNLP and HF runs in 'ours' get exactly the same settings."""
    env = base_env()
    if kind == "shipped":
        env["PADDLE_ELECTRA_NO_ENV"] = "1"
    elif kind == "ours":
        env.update(our_settings())
    else:
        raise ValueError(f"unknown environment kind {kind!r}")
    return env


# ---- subprocess protocol ---------------------------------------------------------------------------------------
class WorkerError(RuntimeError):
    """A benchmark subprocess failed; the message holds the tail of its output."""


def run_worker(module: str, spec: dict, env_kind: str, timeout: float = 1800) -> dict:
    """Run `module`'s worker on `spec` in a fresh process with environment `env_kind`; return its result dict."""
    cmd = [sys.executable, "-m", module, "--worker", json.dumps(spec)]
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=make_env(env_kind), cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise WorkerError(f"{module} {spec} timed out after {timeout:.0f} s") from None
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        raise WorkerError(f"{module} {spec} failed (exit {proc.returncode}):\n{tail}")
    result = json.loads(lines[-1][len(RESULT_TAG):])
    result["process_s"] = round(time.perf_counter() - started, 1)
    return result


def worker_main(worker) -> None:
    """Entry point of a bench module: `--worker JSON` runs one measurement and prints the result line."""
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        spec = json.loads(sys.argv[2])
        result = worker(spec)
        result.setdefault("peak_rss_mb", peak_rss_mb())
        result["env"] = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_DEBUG_CPU_TYPE")}
        result["loadavg"] = os.getloadavg()
        sys.stdout.flush()
        print(RESULT_TAG + json.dumps(result), flush=True)
        return
    raise SystemExit(f"usage: python -m {sys.argv[0]} --worker JSON (the benchmarks run through bench/run)")


# ---- measurement helpers ---------------------------------------------------------------------------------------
def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def time_repeats(fn, warmup: int, repeats: int, budget_s: float = None) -> dict:
    """Call fn() `warmup` times untimed, then up to `repeats` times (fewer, but at least 2, once the timed calls
    pass `budget_s`); fn must block until its work is done."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if budget_s is not None and len(times) >= 2 and sum(times) > budget_s:
            break
    return summarize(times)


def summarize(times) -> dict:
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "times_s": [round(t, 4) for t in times]}


def spread(summary: dict) -> float:
    """(max - min) / median of the repeats: the run-to-run noise of one measurement."""
    return (summary["max_s"] - summary["min_s"]) / summary["median_s"] if summary["median_s"] else float("nan")


def matmul_peak_worker(spec: dict) -> dict:
    """GFLOP/s of an n x n fp32 matmul (the machine's practical GEMM peak for this library and env)."""
    n, repeats = spec.get("n", 2048), spec.get("repeats", 10)
    framework = spec["framework"]
    if framework == "paddle":
        import paddle
        a, b = paddle.randn([n, n]), paddle.randn([n, n])
        fn = lambda: paddle.matmul(a, b).numpy()  # noqa: E731  (.numpy() waits for the result)
        threads = os.environ.get("OMP_NUM_THREADS", "unset (Paddle: 1)")
    elif framework == "torch":
        import torch
        a, b = torch.randn(n, n), torch.randn(n, n)
        fn = lambda: torch.matmul(a, b)  # noqa: E731
        threads = torch.get_num_threads()
    else:
        raise ValueError(framework)
    summary = time_repeats(fn, 2, repeats)
    flops = 2.0 * n ** 3
    return {"gflops": flops / summary["median_s"] / 1e9, "best_gflops": flops / summary["min_s"] / 1e9,
            "threads": threads, **summary}


# ---- model shapes and analytic FLOPs ----------------------------------------------------------------------------
def encoder_matmul_flops(hidden, layers, intermediate, seq_len, tokens, embedding=None) -> float:
    """Forward FLOPs of an encoder's matmuls for `tokens` tokens in sequences of `seq_len`: Q/K/V/output
    projections, the FFN, attention scores and context (2 x seq_len x hidden per token each), and the embedding
    projection when embedding != hidden. A multiply-add counts 2."""
    per_token = layers * (4 * hidden * hidden + 2 * hidden * intermediate + 2 * seq_len * hidden)
    if embedding is not None and embedding != hidden:
        per_token += embedding * hidden
    return 2.0 * per_token * tokens


def train_flops(forward_flops: float) -> float:
    """Forward + backward (the backward costs two forwards: grads of inputs and of weights)."""
    return 3.0 * forward_flops


# ---- reporting --------------------------------------------------------------------------------------------------
def machine_info() -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    versions = {}
    for name in ("paddle", "paddlenlp", "torch", "transformers", "tokenizers", "onnxruntime", "paddle2onnx"):
        try:
            from importlib.metadata import version
            dist = {"paddle": "paddlepaddle"}.get(name, name)
            versions[name] = version(dist)
        except Exception:  # noqa: BLE001  (a missing package is reported as absent)
            versions[name] = None
    return {"cpu": cpu, "cores": num_cores(), "python": platform.python_version(), "platform": platform.platform(),
            "loadavg_at_start": load, "versions": versions}


def fmt(value, digits=3) -> str:
    """A number with `digits` significant digits (no scientific notation for the ranges we print)."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if value == 0:
        return "0"
    magnitude = int(math.floor(math.log10(abs(value))))
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:,.{decimals}f}"


def markdown_table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in row) + " |")
    return "\n".join(lines)


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return a / b


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    worker_main(matmul_peak_worker)


# ---- step benchmarks (pretrain_step, finetune_step): one runner, one table --------------------------------------
def run_step_cases(section: str, worker_module: str, cases, impls, case_key: str, flops_of, result_keys,
                   describe, peak_gflops) -> list:
    """Run every (case, batch) x implementation of a step benchmark in its own worker process; one row each.

    cases: (case, batch, warmup, repeats, (impl, env) pairs to skip); flops_of(case, batch) -> analytic encoder
    FLOPs of one step; result_keys: the worker's throughput fields copied into the row; describe(result) -> log line."""
    rows = []
    for case, batch, warmup, repeats, skip in cases:
        flops = flops_of(case, batch)
        for impl, env, label in impls:
            if (impl, env) in skip:
                continue
            spec = {"impl": impl, case_key: case, "batch": batch, "seq_len": 128, "warmup": warmup,
                    "repeats": repeats}
            log(f"[{section}] {case} b{batch} {label} ...")
            base = {case_key: case, "batch": batch, "impl": impl, "env": env, "label": label}
            try:
                r = run_worker(worker_module, spec, env)
            except WorkerError as e:
                log(str(e))
                rows.append({**base, "error": str(e).splitlines()[0]})
                continue
            gflops = flops / r["median_s"] / 1e9
            rows.append({**base, **{k: r[k] for k in result_keys}, "step_s": r["median_s"], "spread": spread(r),
                         "enc_gflops": gflops, "peak_share": gflops / peak_gflops if peak_gflops else None,
                         "peak_rss_mb": r["peak_rss_mb"], "times_s": r["times_s"]})
            log("    " + describe(r))
    return rows


def step_table(rows, case_key: str, rate_key: str, rate_header: str, title) -> str:
    """One markdown table per (case, batch): throughput, ratio of ours to each, encoder GFLOP/s, share of the
    matmul peak, peak RSS, spread. title(case, batch) -> the table's heading."""
    out = []
    for (case, batch) in dict.fromkeys((r[case_key], r["batch"]) for r in rows):
        group = [r for r in rows if r[case_key] == case and r["batch"] == batch]
        ours = next((r.get(rate_key) for r in group if r["impl"] == "ours"), None)
        body = []
        for r in group:
            if "error" in r:
                body.append([r["label"], "failed: " + r["error"][:60], "-", "-", "-", "-", "-"])
                continue
            body.append([r["label"], r[rate_key], ratio(ours, r[rate_key]), r["enc_gflops"],
                         None if r["peak_share"] is None else f"{100 * r['peak_share']:.0f}%", r["peak_rss_mb"],
                         f"{100 * r['spread']:.0f}%"])
        out.append(f"**{title(case, batch)}**\n\n" + markdown_table(
            ["implementation", rate_header, "ours / this", "encoder GFLOP/s", "of matmul peak", "peak RSS MiB",
             "spread"], body))
    return "\n\n".join(out)
