"""`python -m bench [--quick | --long] [--only a,b] [--no-write]` (or bench/run): every benchmark, one table, results.

Sections: peak (matmul GFLOP/s), pretrain, finetune, inference, quantization (int8 against fp32 on fine-tuned
models; needs a finished `make demo`, see --demo-dir), tokenize, data. Each implementation runs in its own
process (bench/common.py); the printed and written figures are ratios against references measured in this run.
Writes bench/results/latest.json (all raw numbers, times of every repeat, machine, load) and latest.md.
"""
from __future__ import annotations

import json
import os
import sys
import time

from bench import common
from paddle_electra.errors import command
from paddle_electra.runconfig import ArgumentParser

SECTIONS = ("peak", "pretrain", "finetune", "inference", "quantization", "tokenize", "data")


def measure_peaks(quick: bool) -> dict:
    peaks = {}
    for framework, env, label in (("paddle", "ours", "Paddle, our env"), ("paddle", "shipped", "Paddle, as shipped"),
                                  ("torch", "shipped", "torch")):
        common.log(f"[peak] {label} 2048^3 fp32 matmul ...")
        try:
            r = common.run_worker("bench.common", {"framework": framework, "n": 2048, "repeats": 5 if quick else 10},
                                  env)
        except common.WorkerError as e:
            common.log(str(e))
            continue
        peaks[label] = r
        common.log(f"    {r['gflops']:.0f} GFLOP/s (median), best {r['best_gflops']:.0f}")
    return peaks


def peak_table(peaks: dict) -> str:
    body = [[label, r["gflops"], r["best_gflops"], str(r["threads"])] for label, r in peaks.items()]
    return "**Matmul peak (2048 x 2048 x 2048 fp32)**\n\n" + common.markdown_table(
        ["library", "GFLOP/s (median)", "GFLOP/s (best)", "threads"], body)


def targets(results: dict) -> str:
    """The issue's targets, each as measured ratio vs goal."""
    lines = []

    def add(what, value, goal, better="higher", note=""):
        if value is None:
            lines.append([what, "not measured", goal, "-", note])
            return
        ok = value >= goal if better == "higher" else value <= goal
        lines.append([what, value, goal, "met" if ok else "short", note])

    pre = results.get("pretrain", {}).get("rows", [])
    for setting in ("small", "small-eq"):
        for batch in (16, 32):
            case = {(r["impl"], r["env"]): r for r in pre if r["setting"] == setting and r["batch"] == batch
                    and "tokens_per_s" in r}
            ours = case.get(("ours", "ours"))
            if not ours:
                continue
            tag = f"pretrain {setting} b{batch}"
            for key, name, goal in ((("paddlenlp", "ours"), "PaddleNLP (our env)", 1.5),
                                    (("paddlenlp", "shipped"), "PaddleNLP (as shipped)", 1.5),
                                    (("hf", "shipped"), "HF torch", 1.2)):
                other = case.get(key, {}).get("tokens_per_s")
                add(f"{tag}: ours / {name}", common.ratio(ours["tokens_per_s"], other), goal)
            add(f"{tag}: encoder matmul share of peak", ours.get("peak_share"), 0.40)
            if batch == 32:
                ref = case.get(("paddlenlp", "ours")) or case.get(("paddlenlp", "shipped"))
                add(f"{tag}: peak RSS ours / PaddleNLP", common.ratio(ours["peak_rss_mb"], ref and ref["peak_rss_mb"]),
                    1.0, "lower", f"{ours['peak_rss_mb']:.0f} vs {ref['peak_rss_mb']:.0f} MiB" if ref else "")
    inf = results.get("inference", {}).get("rows", [])
    for batch in (32, 1):
        case = {(r["impl"], r.get("mode"), r.get("env")): r.get("sentences_per_s") for r in inf if r["batch"] == batch}
        exported = case.get(("ours-exported", "bucketed", "ours"))
        if exported is None:
            continue
        for key, name, goal in ((("paddlenlp", "padded128", "ours"), "PaddleNLP dygraph padded (our env)", 3.0),
                                (("paddlenlp", "padded128", "shipped"), "PaddleNLP dygraph padded (as shipped)", 3.0),
                                (("paddlenlp", "bucketed", "ours"), "PaddleNLP dygraph bucketed (our env)", 3.0),
                                (("hf", "bucketed", "shipped"), "HF torch eager (bucketed)", 2.0),
                                (("hf", "padded128", "shipped"), "HF torch eager (padded)", 2.0)):
            if key in case:
                add(f"inference b{batch}: exported / {name}", common.ratio(exported, case[key]), goal)
        int8, hf = case.get(("ours-onnx-int8", "bucketed", "ours")), case.get(("hf", "bucketed", "shipped"))
        if int8 and hf:
            add(f"inference b{batch}: ONNX Runtime int8 / HF torch eager fp32 (bucketed)", common.ratio(int8, hf), 2.0,
                note="the path predict() runs by default once int8 agrees with fp32")
        hf_int8 = case.get(("hf-int8", "bucketed", "shipped"))
        if int8 and hf_int8:
            add(f"inference b{batch}: ONNX Runtime int8 / HF torch dynamic int8", common.ratio(int8, hf_int8), 1.0)
        bf16 = case.get(("ours-exported-bf16", "bucketed", "ours"))
        hf_bf16 = case.get(("hf-bf16", "bucketed", "shipped"))
        if bf16 and hf_bf16:
            add(f"inference b{batch}: exported bf16 / HF torch autocast bf16", common.ratio(bf16, hf_bf16), 2.0,
                note="opt-in bf16 on both sides (AMX here)")
        hub, fast = case.get(("hub", "predict", "ours")), case.get(("hub-fast", "predict", "ours"))
        if hub and fast:
            add(f"inference b{batch}: hub predict() default (fast path) / fast_inference=False", common.ratio(fast, hub),
                1.0, note="predict() exports on its first call of >= 32 examples")
    from bench.quantization import GATE_ACCURACY_POINTS, GATE_AGREEMENT
    for r in results.get("quantization", {}).get("rows", []):
        if "error" in r:
            continue
        add(f"int8 {r['model']}: label agreement with fp32 (%)", r["agreement"], GATE_AGREEMENT)
        add(f"int8 {r['model']}: |accuracy change| (points)", abs(r["accuracy_change"]), GATE_ACCURACY_POINTS, "lower",
            f"fp32 {r['fp32_accuracy']:.2f}, int8 {r['int8_accuracy']:.2f}")
    tok = {r["impl"]: r.get("texts_per_s") for r in results.get("tokenize", {}).get("rows", [])}
    if tok.get("ours"):
        add("tokenize: ours / PaddleNLP", common.ratio(tok["ours"], tok.get("paddlenlp")), 5.0)
        # was "overhead over raw tokenizers <= 10%" until the pure-Python fast path left the Rust pipeline behind
        add("tokenize: ours / raw tokenizers encode_batch + .ids", common.ratio(tok["ours"], tok.get("raw")), 0.91)
    if not lines:
        return ""
    headers = ["figure", "measured", "target", "status", "note"]
    return "**Targets (issues 8 and 15)**\n\n" + common.markdown_table(headers, lines)


@command
def main(argv=None) -> int:
    parser = ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases and repeats (~3 min on 2 quiet cores)")
    parser.add_argument("--long", action="store_true", help="the whole matrix: every batch, size and environment")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/results alone")
    parser.add_argument("--out", default=str(common.RESULTS), help="results folder (latest.json, latest.md)")
    parser.add_argument("--render", metavar="JSON", help="measure nothing: rebuild the report of a results file")
    parser.add_argument("--demo-dir", default="runs/demo", help="a finished `make demo` run, for the quantization "
                        "section's fine-tuned models (default runs/demo)")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {SECTIONS}")
    if args.quick and args.long:
        parser.error("--quick and --long exclude each other")
    if args.render:
        with open(args.render, encoding="utf-8") as f:
            results = json.load(f)
    else:
        results = measure(only, "quick" if args.quick else "long" if args.long else "default", args.demo_dir)
    report = render(results)
    print(report)
    if not args.no_write:
        from paddle_electra.fileio import write_json, write_text
        os.makedirs(args.out, exist_ok=True)
        write_json(os.path.join(args.out, "latest.json"), results)
        write_text(os.path.join(args.out, "latest.md"), report)
        common.log(f"wrote {os.path.join(args.out, 'latest.json')} and latest.md")
    return 0


def measure(only, level: str, demo_dir: str = "runs/demo") -> dict:
    """Run the sections in `only`; every section stores its rows and its rendered table in the results."""
    started = time.time()
    results = {"machine": common.machine_info(), "level": level, "our_env": common.our_settings(),
               "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    peak = None
    if "peak" in only or "pretrain" in only or "finetune" in only:
        peaks = measure_peaks(level == "quick")
        results["peak"] = peaks
        # the machine's capability: the best repeat of the best library (medians suffer most from other load)
        peak = max((r["best_gflops"] for r in peaks.values()), default=None)
        results["peak_gflops"] = peak
    if "pretrain" in only:
        from bench import pretrain_step
        results["pretrain"] = pretrain_step.run(level, peak)
    if "finetune" in only:
        from bench import finetune_step
        results["finetune"] = finetune_step.run(level, peak)
    if "inference" in only:
        from bench import inference
        results["inference"] = inference.run(level)
    if "quantization" in only:
        from bench import quantization
        results["quantization"] = quantization.run(level, demo_dir)
    if "tokenize" in only:
        from bench import tokenization
        results["tokenize"] = tokenization.run(level)
    if "data" in only:
        from bench import data_builder
        results["data"] = data_builder.run(level)
    try:
        results["loadavg_at_end"] = os.getloadavg()
    except OSError:
        results["loadavg_at_end"] = None
    results["elapsed_s"] = round(time.time() - started, 1)
    return results


def render(results: dict) -> str:
    """The markdown report: header, targets, then each section's table."""
    machine, level = results["machine"], results.get("level", "default")
    header = (f"# paddle-electra benchmarks{'' if level == 'default' else f' ({level})'}\n\n"
              f"{results['started']} on {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}; "
              f"paddle {machine['versions']['paddle']}, paddlenlp {machine['versions']['paddlenlp']}, "
              f"torch {machine['versions']['torch']}, transformers {machine['versions']['transformers']}, "
              f"onnxruntime {machine['versions']['onnxruntime']}. Load average at start "
              f"{_load(machine['loadavg_at_start'])}, at end {_load(results.get('loadavg_at_end'))} (other work on "
              f"the machine makes absolute numbers noisy; every ratio compares runs made minutes apart in this run). "
              f"Total {results['elapsed_s'] / 60:.1f} min.\n\n"
              f"'our env' = what importing paddle_electra sets on this machine ({_settings(results.get('our_env', {}))}; "
              "MKL_DEBUG_CPU_TYPE=5 is added on AMD CPUs only); 'as shipped' = none of it. "
              "'spread' = (slowest - fastest) / median of the repeats.\n")
    tables = [targets(results)]
    if "peak" in results:
        tables.append(peak_table(results["peak"]))
    tables += [results[name]["table"] for name in ("pretrain", "finetune", "inference", "quantization", "tokenize",
                                                   "data")
               if name in results]
    return header + "\n" + "\n\n".join(t for t in tables if t) + "\n"


def _settings(settings: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items()) or "nothing"


def _load(load) -> str:
    return "n/a" if not load else "/".join(f"{x:.1f}" for x in load)


if __name__ == "__main__":
    sys.exit(main())
