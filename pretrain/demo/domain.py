"""Domain adaptation in miniature: continue pretraining a general model on legal text, then fine-tune on CAIL 2018.

    python -m pretrain.demo.domain --general runs/demo [--cail-dir DIR] [--steps 500] [--seeds 5] \
        [--workdir runs/domain] [--write]

How the seed's legal models were made (a general Chinese ELECTRA, then more pretraining on legal text), measured at
the demo's scale with a control for "just more pretraining":

1. The CAIL 2018 sample (`--cail-dir`, default ../shared/data/cail2018: data_train_sample.json + accu.txt) is split by
   case number: every 5th case is the evaluation split (dev.json), the rest the training split (train.json). Only
   the training split's fact texts become pretraining text (one sentence per line, a blank line between cases); no
   evaluation case is ever pretrained on.
2. Two continued-pretraining runs start from the general model (`--general`: a demo workdir, its
   pretrain/export/{discriminator,generator}; `pretrain/run.py --init-from`), side by side, one thread each, with
   the same steps, batch, sequence length and schedule: one on the legal text ("+legal"), one on the general model's
   own training text ("+general", the control: the same extra compute on text of the general domain).
3. The general model, both continued models and a random-initialisation control are fine-tuned on cail2018
   (single-accusation cases) with identical settings and the same paired seeds; beside them the char 1-2-gram
   TF-IDF + logistic regression baseline on the same split.

The finding is the paired difference "+legal" minus "+general" (the domain effect at equal compute), with its 95%
interval, and each against the general model and random init. Outputs in WORKDIR: cail/ (the split and the legal
text), data-legal/ and data-general/ (datasets built with the general model's vocab), continue-legal/ and
continue-general/ (pretraining runs), finetune/<model>/, domain.json and domain.md; `--write` copies the two to
pretrain/results/. Stages are skipped when finished, as in the demo, so an interrupted run continues.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

from paddle_electra.errors import ConfigError, DataError, command
from paddle_electra.fileio import read_bytes, write_bytes, write_json, write_text
from paddle_electra.runconfig import ArgumentParser
from pretrain.demo import pipeline as demo
from pretrain.demo.evidence import paired_gain

DEV_EVERY = 5  # every 5th case (0, 5, 10, ...) is held out for evaluation
CONTINUED = ("legal", "general")
# continued pretraining: the demo model's optimisation at 4x its sequence length (facts average ~420 characters),
# half its batch, a lower peak rate (the weights are trained already); warmup 10% of the steps
PRETRAIN = dict(train_batch_size=32, learning_rate=1e-3, mask_prob=0.25, seq_len=128)
# fine-tuning: the demo's protocol (pretrain/README.md, section 6) at seq 128, for 202 classes
FINETUNE = dict(train_batch_size=32, learning_rate=6e-3, layerwise_lr_decay=0.8, eval_every_epoch=False, log_every=20,
                num_train_epochs=6, max_seq_length=128, pooling="mean")
MODELS = ("general", "general+general", "general+legal", "random-init")
RESULTS_DIR = os.path.join(demo.PRETRAIN_DIR, "results")


def shared_cail_dir() -> str:
    root = os.environ.get("PADDLE_ELECTRA_SHARED_DATA", os.path.join("..", "shared", "data"))
    return os.path.join(root, "cail2018")


def stage_split(p: demo.Pipeline, _, cail_dir: str) -> dict:
    """train.json / dev.json (the cases' lines as they are), accu.txt, and the training split's facts as text."""
    from pretrain.corpus import split_sentences
    source = os.path.join(cail_dir, "data_train_sample.json")
    if not os.path.isfile(source):
        raise DataError("CAIL 2018 sample not found (pass --cail-dir)", path=source)
    from finetune.readers import read_text
    text, _ = read_text(source)  # the sample is GB18030; the split is written as UTF-8
    lines = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    train, dev, documents, chars = [], [], [], 0
    for number, line in enumerate(lines):
        (dev if number % DEV_EVERY == 0 else train).append(line)
        if number % DEV_EVERY:
            try:
                fact = json.loads(line)["fact"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise DataError("case without a readable 'fact'", path=source, line=number + 1) from None
            sentences = split_sentences(fact.replace("\r", "").replace("\n", ""))
            documents.append("\n".join(sentences))
            chars += sum(len(s) for s in sentences)
    folder = p.path("cail")
    os.makedirs(folder, exist_ok=True)
    write_text(os.path.join(folder, "train.json"), "\n".join(train) + "\n")
    write_text(os.path.join(folder, "dev.json"), "\n".join(dev) + "\n")
    write_text(p.path("legal.txt"), "\n\n".join(documents) + "\n")
    accusations = os.path.join(cail_dir, "accu.txt")
    if os.path.isfile(accusations):
        write_bytes(os.path.join(folder, "accu.txt"), read_bytes(accusations))
    return {"cases": len(lines), "train_cases": len(train), "dev_cases": len(dev), "legal_text_chars": chars}


def stage_data(p: demo.Pipeline, _, general: str) -> dict:
    """Both continued runs' datasets, tokenized with the general model's vocab."""
    vocab = os.path.join(general, "pretrain", "export", "discriminator", "vocab.txt")
    texts = {"legal": p.path("legal.txt"), "general": os.path.join(general, "corpus", "train.txt")}
    result = {}
    for name, text in texts.items():
        if not os.path.isfile(text):
            raise DataError("pretraining text not found", path=text)
        out = p.path(f"data-{name}")
        p.child(["-m", "pretrain.data", "--input", text, "--output", out, "--vocab", vocab, "--max-seq-length",
                 PRETRAIN["seq_len"], "--overwrite", "--quiet"])
        index = demo._read_json(os.path.join(out, "index.json"))
        result[name] = {"examples": index["num_examples"], "tokens": index["num_tokens"]}
    return result


def stage_continue(p: demo.Pipeline, _, general: str, steps: int, seed: int) -> dict:
    jobs = []
    for name in CONTINUED:
        out = p.path(f"continue-{name}")
        jobs.append((["-m", "pretrain.run", "--init-from", os.path.join(general, "pretrain", "export"),
                      "--data", p.path(f"data-{name}"), "--output-dir", out, "--resume", "--progress", "false",
                      "--num-train-steps", steps, "--warmup-steps", max(1, steps // 10),
                      "--train-batch-size", PRETRAIN["train_batch_size"], "--learning-rate",
                      PRETRAIN["learning_rate"], "--mask-prob", PRETRAIN["mask_prob"], "--seed", seed,
                      "--save-every", max(1, steps // 4), "--keep-checkpoints", 2, "--log-every", 10],
                     out + ".log"))
    p.children(jobs)
    result = {}
    for name in CONTINUED:
        summary = demo._read_json(p.path(f"continue-{name}", "summary.json"))
        if summary["stopped"] != "max_steps":
            raise demo.Interrupted()
        result[name] = {"steps": summary["steps"], "tokens": summary["steps"] * summary["global_batch"] *
                        summary["seq_len"], "tokens_per_s": summary["tokens_per_s"]}
    return result


def stage_finetune(p: demo.Pipeline, _, general: str, seeds: int, first_seed: int) -> dict:
    models = {"general": os.path.join(general, "pretrain", "export", "discriminator"),
              "general+general": p.path("continue-general", "export", "discriminator"),
              "general+legal": p.path("continue-legal", "export", "discriminator"),
              "random-init": os.path.join(general, "pretrain", "export", "discriminator")}
    jobs, outs = [], {}
    for name, model in models.items():
        out = outs[name] = p.path("finetune", name)
        jobs.append((["-m", "finetune.run", "--task", "cail2018", "--data-dir", p.path("cail"), "--model", model,
                      "--hub-home", p.path("hub_home"), "--output-dir", out, "--seeds", seeds, "--do_test", "false",
                      *demo.finetune_flags(dict(FINETUNE, seed=first_seed)),
                      *(["--random_init", "true"] if name == "random-init" else [])], out + ".log"))
    for i in range(0, len(jobs), 2):
        p.children(jobs[i:i + 2])
    return {name: demo.finetune_summary(out) for name, out in outs.items()}


def stage_baseline(p: demo.Pipeline, _) -> dict:
    from finetune import config as fc
    from finetune.tasks import get_task
    from pretrain.demo.evidence import bag_of_characters
    task = get_task("cail2018")
    config = fc.resolve(task, flags={k: str(v) for k, v in FINETUNE.items()})
    splits = task.load_splits(p.path("cail"), config)
    result = bag_of_characters(task, splits["train"].examples, splits["dev"].examples)
    print(f"  {result['name']}: {result['metric']} {result['value']:.2f}")
    return result


def run_domain(workdir: str, general: str, cail_dir: str, steps: int, seeds: int, seed: int = 0) -> dict:
    started = time.time()
    general = os.path.abspath(general)
    for needed in (os.path.join(general, "pretrain", "export", "discriminator"),
                   os.path.join(general, "pretrain", "export", "generator")):
        if not os.path.isdir(needed):
            raise ConfigError(f"--general {general}: {needed} is missing (a finished `make demo` workdir has it)")
    recipe = dataclasses.replace(demo.RECIPES["default"], seed=seed)
    p = demo.Pipeline(workdir, recipe)
    split = p.stage(1, "cail-split", {"cail_dir": os.path.abspath(cail_dir), "dev_every": DEV_EVERY},
                    lambda s: stage_split(p, s, cail_dir))
    data = p.stage(2, "data", {"general": general, "pretrain": PRETRAIN}, lambda s: stage_data(p, s, general))
    pretraining = p.stage(3, "continue", {"general": general, "steps": steps, "pretrain": PRETRAIN,
                                          "seed": recipe.pretrain_seed},
                          lambda s: stage_continue(p, s, general, steps, recipe.pretrain_seed))
    tuned = p.stage(4, "finetune", {"seeds": seeds, "finetune": FINETUNE, "first_seed": recipe.first_finetune_seed},
                    lambda s: stage_finetune(p, s, general, seeds, recipe.first_finetune_seed))
    baseline = p.stage(5, "baseline", {"finetune": FINETUNE}, lambda s: stage_baseline(p, s))
    comparisons = []
    for ours, theirs in (("general+legal", "general+general"), ("general+legal", "general"),
                         ("general+general", "general"), ("general+legal", "random-init"),
                         ("general", "random-init")):
        gain = paired_gain(tuned[ours]["dev_per_seed"], tuned[theirs]["dev_per_seed"])
        comparisons.append({"model": ours, "versus": theirs, "difference_mean": gain["gain_mean"],
                            "difference_ci95": gain["gain_ci95"], "difference_per_seed": gain["gain_per_seed"]})
    result = {"general": general, "split": split, "data": data, "pretraining": pretraining,
              "pretrain_settings": PRETRAIN, "finetune": FINETUNE, "seeds": seeds,
              "models": {name: {"dev_mean": tuned[name]["dev_mean"], "dev_per_seed": tuned[name]["dev_per_seed"],
                                "train_examples": tuned[name]["train_examples"],
                                "dev_examples": tuned[name]["dev_examples"]} for name in MODELS},
              "comparisons": comparisons, "baseline": baseline, "stages": p.times,
              "wall_seconds": time.time() - started}
    write_json(p.path("domain.json"), result)
    write_text(p.path("domain.md"), domain_markdown(result))
    print("\n" + domain_markdown(result))
    return result


def domain_markdown(result) -> str:
    split, pre = result["split"], result["pretraining"]
    any_model = result["models"]["general"]
    lines = [f"# Domain adaptation: CAIL 2018 accusation accuracy ({result['seeds']} paired seeds)", "",
             f"Split: {split['train_cases']} training cases (their facts: {split['legal_text_chars']:,} characters of "
             f"legal pretraining text), {split['dev_cases']} evaluation cases; single-accusation cases: "
             f"{any_model['train_examples']} train / {any_model['dev_examples']} dev. Continued pretraining: "
             + ", ".join(f"+{name} {pre[name]['steps']} steps, {pre[name]['tokens'] / 1e6:.2f}M tokens "
                         f"({pre[name]['tokens_per_s']:.0f} tokens/s)" for name in CONTINUED) + ".", "",
             "| model | accuracy (mean) | per seed |", "|---|---|---|"]
    for name, m in result["models"].items():
        lines.append(f"| {name} | {m['dev_mean']:.2f} | {', '.join(f'{v:.2f}' for v in m['dev_per_seed'].values())} |")
    b = result["baseline"]
    lines += [f"| {b['name']} | {b['value']:.2f} | - |", "", "| model | versus | difference [95% CI] |", "|---|---|---|"]
    for c in result["comparisons"]:
        low, high = c["difference_ci95"]
        lines.append(f"| {c['model']} | {c['versus']} | {c['difference_mean']:+.2f} [{low:+.2f}, {high:+.2f}] |")
    return "\n".join(lines) + "\n"


@command
def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m pretrain.demo.domain", description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--general", required=True, help="a finished demo workdir (its pretrain/export and corpus)")
    parser.add_argument("--cail-dir", default=None, help="data_train_sample.json + accu.txt (default: "
                                                          "$PADDLE_ELECTRA_SHARED_DATA/cail2018)")
    parser.add_argument("--steps", type=int, default=500, help="continued-pretraining steps of each run (default 500)")
    parser.add_argument("--seeds", type=int, default=5, help="paired fine-tuning seeds (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="moves the pretraining and fine-tuning seeds as the "
                                                           "demo's --seed does")
    parser.add_argument("--workdir", default=os.path.join("runs", "domain"))
    parser.add_argument("--write", action="store_true", help="copy domain.{json,md} to pretrain/results/")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.seeds < 2:
        raise ConfigError(f"--steps must be >= 1 and --seeds >= 2 (an interval needs two), got {args.steps} and "
                          f"{args.seeds}")

    def run():
        run_domain(os.path.abspath(args.workdir), args.general, args.cail_dir or shared_cail_dir(), args.steps,
                   args.seeds, args.seed)
        if args.write:
            for suffix in ("json", "md"):
                write_bytes(os.path.join(RESULTS_DIR, f"domain.{suffix}"),
                            read_bytes(os.path.join(args.workdir, f"domain.{suffix}")))

    return demo.run_pipeline(run)


if __name__ == "__main__":
    sys.exit(main())
