"""Smoke protocol: run finetune/run.py on each of the seven benchmarks' real files for a few hundred steps.

    python -m finetune.smoke --data-root ../shared/data [--model DIR] [--steps 300] [--output-dir runs/finetune-smoke]

It checks that every reader, featurizer, decoder and metric works on the real files end to end, not accuracy: with
no --model it fine-tunes a randomly initialised `--size` model (default small: the official small shape with the
shared Chinese vocab), whose scores stay near chance. Pass a converted chinese-electra-small model directory (or the
pretraining demo's) for meaningful numbers. Each task trains one epoch of about `steps` steps (`steps x batch`
examples, a stable subsample; a quarter of that for QA, whose questions give ~4 windows each) and evaluates on up to
--max-eval-examples dev examples. DRCD, BQ Corpus and XNLI have only a dev file in ../shared/data, so half of it
(grouped by article / premise) is trained on; CAIL 2018 has only a train sample, so a fifth of it is held out as
dev. QA runs use max_seq_length 256 here (512 in the real recipe) to keep CPU time down.
Prints a table (task, metric, examples, seconds) and writes <output>/smoke.json.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from paddle_electra.errors import command
from paddle_electra.runconfig import ArgumentParser

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# task -> (folder under the data root, extra run.py flags)
SMOKE_TASKS = {
    "cmrc2018": ("cmrc2018", {}),
    "drcd": ("drcd", {"split_dev_for_train": 0.5}),
    "xnli": ("xnli", {"split_dev_for_train": 0.5}),
    "chnsenticorp": ("chnsenticorp", {}),
    "lcqmc": ("lcqmc", {}),
    "bqcorpus": ("bq_corpus", {"split_dev_for_train": 0.5}),
    "cail2018": ("cail2018", {"split_train_for_dev": 0.2}),
}
QA_TASKS = ("cmrc2018", "drcd")
QA_WINDOWS = 4


def run_args(task, data_root, model, output_dir, steps, batch_size, max_eval_examples, qa_max_seq_length=256,
             classification_max_seq_length=128):
    """The finetune/run.py arguments of one smoke run."""
    folder, extra = SMOKE_TASKS[task]
    # a QA question gives ~4 windows (CMRC/DRCD contexts of ~500 characters at 256 tokens, stride 128)
    examples = steps * batch_size // (QA_WINDOWS if task in QA_TASKS else 1)
    flags = dict(extra, num_train_epochs=1, train_batch_size=batch_size, eval_batch_size=max(batch_size, 32),
                 max_train_examples=max(1, examples), max_eval_examples=max_eval_examples, log_every=10)
    flags["max_seq_length"] = qa_max_seq_length if task in QA_TASKS else classification_max_seq_length
    args = ["--task", task, "--model", model, "--data-dir", os.path.join(data_root, folder),
            "--output-dir", os.path.join(output_dir, task)]
    for key, value in flags.items():
        args += [f"--{key}", str(value)]
    return args


def random_model(data_root, folder, size="small"):
    """A randomly initialised `size` discriminator with the shared Chinese BERT vocab, as a model directory."""
    from paddle_electra import preset
    from paddle_electra.modeling import ElectraDiscriminator
    from paddle_electra.tokenizer import ElectraTokenizer
    import paddle
    if os.path.isfile(os.path.join(folder, "model.safetensors")):
        return folder
    tokenizer = ElectraTokenizer(os.path.join(data_root, "vocab", "chinese_bert_vocab.txt"))
    paddle.seed(0)
    ElectraDiscriminator(preset(size).replace(vocab_size=tokenizer.vocab_size)).save_pretrained(folder, tokenizer)
    return folder


@command
def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=os.path.join(REPO, "..", "shared", "data"))
    parser.add_argument("--model", help="model dir or module; default: a random-init small model (smoke only)")
    parser.add_argument("--output-dir", default=os.path.join("runs", "finetune-smoke"))
    parser.add_argument("--steps", type=int, default=300, help="training steps per task (one epoch)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-eval-examples", type=int, default=500)
    parser.add_argument("--qa-max-seq-length", type=int, default=256)
    parser.add_argument("--tasks", nargs="+", default=list(SMOKE_TASKS), choices=list(SMOKE_TASKS))
    parser.add_argument("--size", default="small", choices=["tiny", "small", "base"],
                        help="preset of the random-init model used when --model is not given")
    args = parser.parse_args(argv)
    model = args.model or random_model(args.data_root, os.path.join(args.output_dir, f"random-{args.size}"),
                                       args.size)
    rows = []
    for task in args.tasks:
        command = [sys.executable, os.path.join(REPO, "finetune", "run.py")] + run_args(
            task, args.data_root, model, args.output_dir, args.steps, args.batch_size, args.max_eval_examples,
            args.qa_max_seq_length)
        print("+", " ".join(command), flush=True)
        started = time.time()
        code = subprocess.call(command)
        seconds = time.time() - started
        row = {"task": task, "exit": code, "seconds": round(seconds, 1)}
        metrics_path = os.path.join(args.output_dir, task, "metrics.json")
        if code == 0 and os.path.exists(metrics_path):
            with open(metrics_path, encoding="utf-8") as f:
                metrics = json.load(f)
            run = metrics["runs"][0]
            row.update(dev={k: v for k, v in run.get("dev", {}).items() if isinstance(v, (int, float))},
                       train_examples=metrics["data"]["train"]["examples"],
                       dev_examples=metrics["data"]["dev"]["examples"])
        rows.append(row)
    from paddle_electra.fileio import write_json
    write_json(os.path.join(args.output_dir, "smoke.json"), {"model": model, "steps": args.steps, "tasks": rows})
    print(f"\n{'task':14s} {'exit':>4s} {'train':>6s} {'dev':>5s} {'seconds':>8s}  dev metrics")
    for row in rows:
        dev = " ".join(f"{k}={v:.2f}" for k, v in row.get("dev", {}).items() if k not in ("count", "TOTAL", "SKIP"))
        print(f"{row['task']:14s} {row['exit']:4d} {row.get('train_examples', '-'):>6} "
              f"{row.get('dev_examples', '-'):>5} "
              f"{row['seconds']:8.1f}  {dev}")
    return 0 if all(r["exit"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
