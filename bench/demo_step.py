"""Pretraining speed at the demo's shape, through the real loop (`python -m pretrain.run`), for one or more checkouts.

    python -m bench.demo_step [--steps 300] [--repo PATH ...] [--label NAME ...] [--write]

Each `--repo` is a checkout of this project (default: this one); its own `pretrain.run` trains the demo's model
(pretrain/configs/peoples_daily_tiny.json: 2 layers, hidden 64, batch 64 x 32 tokens) for `--steps` steps on the same
dataset (People's Daily + the sentiment task's train-split reviews, 8,000-token WordPiece vocab, built once with this
checkout's builder), with evaluation and checkpoints off. The figure is the run's own tokens/s over the loop (its
summary.json), so start-up and export are not counted. Checkouts run one after another, never side by side, and the
first is repeated at the end to show the machine's drift. To compare against an older commit:

    git worktree add /tmp/before <commit> && python -m bench.demo_step --repo /tmp/before --repo . --write

`--write` stores the table in bench/results/demo_step.{json,md}.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from bench import common
from paddle_electra.errors import command
from paddle_electra.runconfig import ArgumentParser

CONFIG = os.path.join("pretrain", "configs", "peoples_daily_tiny.json")


def build_demo_data(root: str) -> str:
    """The demo's corpus and 32-token shards under root/data (what pretrain/demo/pipeline.py stages 1-3 make)."""
    from paddle_electra.tokenizer import build_vocab
    from pretrain.corpus import write_corpus
    from pretrain.data import BuildOptions, build_dataset
    from pretrain.demo.pipeline import add_review_text
    corpus = os.path.join(root, "corpus")
    write_corpus(corpus)
    add_review_text(os.path.join(corpus, "train.txt"))
    vocab = build_vocab([os.path.join(corpus, "train.txt")], 8000, os.path.join(root, "vocab.txt"), min_frequency=2)
    out = os.path.join(root, "data")
    build_dataset([os.path.join(corpus, "train.txt")], out, vocab=vocab, options=BuildOptions(max_seq_length=32),
                  num_workers=0, progress=False)
    return out


def run_checkout(repo: str, data: str, steps: int, scratch: str, profile: str = None) -> dict:
    out = tempfile.mkdtemp(prefix="run-", dir=scratch)
    env = common.base_env()
    env["PYTHONPATH"] = os.path.abspath(repo)
    env["OMP_NUM_THREADS"] = str(common.num_cores())
    command = [sys.executable, "-m", "pretrain.run", "--config", CONFIG, "--data", data, "--output-dir", out,
               "--max-steps", str(steps), "--num-train-steps", str(max(steps, 2500)), "--max-minutes", "none",
               "--eval-every", "0", "--save-every", "0", "--progress", "false", "--visualdl", "false",
               "--export", "false"]
    if profile:  # sample the run with py-spy (pip install py-spy): a flame graph and a per-function table
        command = [os.path.join(os.path.dirname(sys.executable), "py-spy"), "record", "--rate", "200", "--format", "raw", "--output", profile, "--", *command]
    started = time.time()
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{repo}: pretrain.run failed:\n{done.stderr[-2000:]}")
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
        summary = json.load(f)
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=repo, capture_output=True, text=True)
    return {"repo": os.path.abspath(repo), "commit": commit.stdout.strip(), "steps": summary["steps"],
            "tokens_per_s": summary["tokens_per_s"], "seconds_per_step": summary["wall_seconds"] / summary["steps"],
            "wall_seconds": time.time() - started}


def profile_table(path: str, top: int = 25) -> str:
    """Inclusive share of the samples per function (file:function), from py-spy's collapsed stacks."""
    totals, inclusive = 0, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            count = int(count)
            totals += count
            frames = {frame.split(" (")[0] + " " + frame.split("(")[-1].split(":")[0].rsplit("/", 1)[-1]
                      for frame in stack.split(";")}
            for frame in frames:
                inclusive[frame] = inclusive.get(frame, 0) + count
    rows = sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]
    return "\n".join(f"{100.0 * n / totals:5.1f}%  {name}" for name, n in rows)


@command
def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m bench.demo_step", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repo", action="append", help="checkout to measure (repeatable; default: this one)")
    parser.add_argument("--label", action="append", help="a name per --repo, for the table")
    parser.add_argument("--write", action="store_true", help="store bench/results/demo_step.{json,md}")
    parser.add_argument("--profile", metavar="FILE", help="py-spy the (first) checkout's run into FILE (raw "
                        "collapsed stacks) and print the functions with the largest inclusive share")
    args = parser.parse_args(argv)
    repos = args.repo or [str(common.REPO)]
    labels = args.label or [os.path.basename(os.path.abspath(r)) for r in repos]
    scratch = tempfile.mkdtemp(prefix="pe-demo-step-")
    try:
        data = build_demo_data(scratch)
        order = list(range(len(repos))) + ([0] if len(repos) > 1 else [])
        rows = []
        for i in order:
            profile = args.profile if args.profile and not rows else None
            row = run_checkout(repos[i], data, args.steps, scratch, profile)
            if profile:
                print(profile_table(profile))
            row["label"] = labels[i]
            rows.append(row)
            print(f"{row['label']:>12s} {row['commit']}: {row['tokens_per_s']:8.0f} tokens/s "
                  f"({1000 * row['seconds_per_step']:.0f} ms/step incl. start-up share)", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    first = rows[0]["tokens_per_s"]
    lines = [f"# Pretraining speed at the demo shape ({args.steps} steps, batch 64 x 32, 2 layers h64, vocab 8,000)",
             "", f"Machine: {platform.processor() or platform.machine()}, {common.num_cores()} cores, "
             f"{time.strftime('%Y-%m-%d')}; checkouts run one after another, the first again at the end.", "",
             "| run | commit | tokens/s | ratio to the first |", "|---|---|---|---|"]
    lines += [f"| {r['label']} | {r['commit']} | {r['tokens_per_s']:.0f} | {r['tokens_per_s'] / first:.2f}x |"
              for r in rows]
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    if args.write:
        from paddle_electra.fileio import write_json, write_text
        write_json(str(common.RESULTS / "demo_step.json"), {"steps": args.steps, "rows": rows,
                                                            "cpu": platform.processor(), "cores": common.num_cores()})
        write_text(str(common.RESULTS / "demo_step.md"), table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
