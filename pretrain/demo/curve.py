"""Compute vs downstream gain, ELECTRA vs masked-LM: the seed's central claim, in miniature on 2 CPU cores.

    python -m pretrain.demo.curve [--minutes 2.5 5 10] [--long] [--all-rows] [--seeds 5] [--seed N] [--workdir runs/curve] [--write]
    python -m pretrain.demo.curve --objectives electra electra-wwm electra-original-segments --equal-steps \
        --minutes 10 --workdir runs/variants      # pretraining variants at equal steps (pretrain/README.md, 6)

For each pretraining budget (minutes of wall time) the demo's model is pretrained twice from the same data and
initialisation seed: once with the ELECTRA objective (the demo's recipe: a half-size generator + the discriminator,
replaced-token detection) and once with masked-LM only (`--disc-weight 0`: a generator of the discriminator's width
and depth, no discriminator; the discriminator is then never run, so masked-LM gets the steps it can do in the same
time). The two runs of a budget go side by side, one CPU thread each, so they share the machine equally; at this
model size a second thread adds almost nothing to one run (pretrain/README.md, section 6). The backbone that is
fine-tuned has the same width, depth and parameter count in both cases (the discriminator, resp. the full-width
generator; the generator follows the official rule of heads = width / 64, so the demo's 64-wide model has 1
attention head as masked-LM and 2 as ELECTRA's discriminator). Each model is then fine-tuned on
the curve's evidence rows (the low-label rows of the demo: review sentiment with 500 labels, People's Daily POS with
200 sentences) with the demo's fine-tuning settings and the same paired seeds as one shared random-init control.
The gain is the mean of the per-seed differences to that control, with a 95% t interval.

`--objectives` picks what is compared (default: electra mlm). Besides the two objectives there are variants of
ELECTRA that differ in the data or the masking only: `electra-wwm` (whole-word masking over jieba word boundaries)
and `electra-original-segments` (examples packed with Chinese-ELECTRA's pre-fix segment rule). They cost the same
per step, so `--equal-steps` gives every run the ELECTRA schedule of the budget (STEPS_PER_MINUTE["electra"] x
minutes steps, no time limit) instead of a wall-time limit, and runs go two at a time.

Outputs in WORKDIR: the demo's corpus/vocab/shards (stages 1-3 of pretrain/demo/pipeline.py), curve/<objective>-<minutes>min/
(pretraining run and fine-tuning folders), curve.json, curve.md and curve.png (gain against pretraining minutes, one
line per objective and row). `--write` copies the three result files to pretrain/results/curve.{json,md,png}.
Stages are skipped when finished, as in the demo, so an interrupted run continues.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

from paddle_electra.errors import ConfigError, command
from paddle_electra.fileio import read_bytes, save_figure, write_bytes, write_json, write_text
from paddle_electra.runconfig import ArgumentParser
from pretrain.demo import pipeline as demo
from pretrain.demo.evidence import paired_gain

OBJECTIVES = {
    # objective -> pretrain/run.py flags on top of the demo's recipe, the exported model fine-tuning starts from, and
    # pretrain/data.py flags where the run needs its own data (built in WORKDIR/data-<objective>)
    "electra": {"flags": {}, "model": "discriminator"},
    "mlm": {"flags": {"disc_weight": 0.0, "generator_hidden_size": 1.0, "generator_layers": 1.0}, "model": "generator"},
    "electra-wwm": {"flags": {"masking": "whole-word"}, "model": "discriminator",
                    "data": {"word_boundaries": "jieba"}},
    "electra-original-segments": {"flags": {}, "model": "discriminator", "data": {"segment_logic": "original"}},
}
DEFAULT_OBJECTIVES = ("electra", "mlm")
# optimizer steps per minute of one run on one thread beside a second run, a little under what was measured on the
# 2-core Xeon of pretrain/README.md, section 6 (2026-12-07, after the step speed-ups: ELECTRA 418, masked-LM 583), so
# each LR schedule has decayed when its time is up (230 / 350, measured before them, ended both schedules at ~60%
# of the budget)
STEPS_PER_MINUTE = {"electra": 400.0, "mlm": 560.0}
DEFAULT_MINUTES = (2.5, 5.0, 10.0)
LONG_MINUTES = (20.0, 40.0)
RESULTS_DIR = os.path.join(demo.PRETRAIN_DIR, "results")


def data_folder(objective: str) -> str:
    return f"data-{objective}" if "data" in OBJECTIVES[objective] else "data"


def data_flags(objective: str) -> list:
    flags = []
    for key, value in OBJECTIVES[objective].get("data", {}).items():
        flags += [f"--{key.replace('_', '-')}", value]
    return flags


def pretrain_args(p: demo.Pipeline, objective: str, minutes: float, seconds_before: float,
                  equal_steps: bool = False) -> list:
    recipe = p.recipe
    steps = max(10, round(STEPS_PER_MINUTE["electra" if equal_steps else objective] * minutes))
    settings = dict(recipe.pretrain, seed=recipe.pretrain_seed, num_train_steps=steps, warmup_steps=max(1, steps // 10),
                    **OBJECTIVES[objective]["flags"])
    flags = []
    for key, value in settings.items():
        flags += [f"--{key.replace('_', '-')}", demo.json.dumps(value) if isinstance(value, (dict, bool)) else value]
    if equal_steps:  # the budget is the steps; the time limit (the recipe's is the budget) only guards a stuck run
        flags += ["--max-minutes", f"{4 * minutes:g}"]
    else:  # the budget is wall time: what is left of it (a resumed run continues its own schedule)
        flags += ["--max-minutes", f"{max(minutes * 60.0 - seconds_before, 6.0) / 60.0:.4f}"]
    folder = data_folder(objective)
    return ["-m", "pretrain.run", "--data", p.path(folder, "train"), "--eval-data", p.path(folder, "heldout"),
            "--output-dir", p.path("curve", f"{objective}-{minutes:g}min", "pretrain"), "--resume",
            "--progress", "false", *flags]


def stage_pretrain_pair(p: demo.Pipeline, seconds_before: float, minutes: float, objectives=DEFAULT_OBJECTIVES,
                        equal_steps: bool = False) -> dict:
    """Pretrain every objective for the budget, two side by side (one thread each)."""
    jobs = [(pretrain_args(p, objective, minutes, seconds_before, equal_steps),
             p.path("curve", f"{objective}-{minutes:g}min", "pretrain.log")) for objective in objectives]
    for i in range(0, len(jobs), 2):
        p.children(jobs[i:i + 2])
    result = {}
    for objective in objectives:
        summary = demo._read_json(p.path("curve", f"{objective}-{minutes:g}min", "pretrain", "summary.json"))
        if summary["stopped"] not in (("max_steps",) if equal_steps else ("time limit", "max_steps")):
            raise demo.Interrupted()
        result[objective] = {"steps": summary["steps"], "tokens_per_s": summary["tokens_per_s"],
                             "stopped": summary["stopped"], "tokens": summary["steps"] * summary["global_batch"]
                             * summary["seq_len"]}
        print(f"  {objective} {minutes:g} min: {summary['steps']} steps ({summary['tokens_per_s']:.0f} tokens/s)")
    return result


def curve_rows(recipe: demo.Recipe, all_rows: bool = False) -> list:
    """The low-label evidence row of each task of the recipe, or with `all_rows` every evidence row (the larger label
    budgets show how far the sentence task is from its baseline): [(task, examples)]."""
    if all_rows:
        return [(task, examples) for task, examples, _ in recipe.evidence]
    rows = {}
    for task, examples, _ in recipe.evidence:
        rows[task] = min(examples, rows.get(task, examples))
    return list(rows.items())


def finetune_args(p: demo.Pipeline, model: str, out: str, task: str, examples: int, random_init: bool) -> list:
    extra = dict(next(e for t, n, e in p.recipe.evidence if (t, n) == (task, examples)))
    extra.pop("num_trials", None)  # the curve's own --seeds applies to every row
    settings = demo.row_settings(p.recipe, task, examples, extra)
    return ["-m", "finetune.run", "--task", task, "--model", model, "--hub-home", p.path("hub_home"),
            "--output-dir", out, "--do_test", "false",
            *demo.finetune_flags(settings), *(["--random_init", "true"] if random_init else [])]


def stage_finetune_models(p: demo.Pipeline, _, models: dict, rows: list, random_init=False) -> dict:
    """Fine-tune each model in `models` ({name: model dir}) on every row [(task, examples)], two children at a time
    (the same row of two models side by side: they take about as long)."""
    jobs, outs = [], {}
    for task, examples in rows:
        for name, model in models.items():
            out = p.path("curve", name, "finetune", demo.row_name(task, examples))
            outs[(name, demo.row_name(task, examples))] = out
            jobs.append((finetune_args(p, model, out, task, examples, random_init), out + ".log"))
    for i in range(0, len(jobs), 2):
        p.children(jobs[i:i + 2])
    return {f"{name}/{row}": demo.finetune_summary(out) for (name, row), out in outs.items()}


def run_curve(workdir: str, minutes, seeds: int, recipe_name: str = "default", objectives=DEFAULT_OBJECTIVES,
              equal_steps: bool = False, seed: int = 0, all_rows: bool = False) -> dict:
    started = time.time()
    objectives = tuple(objectives)
    recipe = dataclasses.replace(demo.RECIPES[recipe_name], finetune_seeds=seeds, seed=seed)
    p = demo.Pipeline(workdir, recipe)
    p.stage(1, "corpus", recipe.params("corpus_documents", "heldout_documents", "review_text"),
            lambda s: demo.stage_corpus(p, s))
    p.stage(2, "vocab", recipe.params("vocab_size"), lambda s: demo.stage_vocab(p, s))
    p.stage(3, "shards", recipe.params("max_seq_length"), lambda s: demo.stage_shards(p, s))
    data_stats = {}
    for objective in objectives:
        folder = data_folder(objective)
        data_stats[objective] = p.stage(
            3, f"shards-{objective}", {"max_seq_length": recipe.max_seq_length, "flags": data_flags(objective)},
            lambda s, folder=folder, objective=objective: demo.stage_shards(p, s, folder, tuple(data_flags(objective)))
        ) if folder != "data" else None
    row_keys = curve_rows(recipe, all_rows)
    rows = [demo.row_name(t, n) for t, n in row_keys]
    any_model = None
    pretraining, finetuned = {}, {}
    for budget in minutes:
        pretraining[budget] = p.stage(
            4, f"curve-pretrain-{budget:g}min",
            {"minutes": budget, "steps_per_minute": STEPS_PER_MINUTE, "equal_steps": equal_steps,
             "objectives": {o: OBJECTIVES[o] for o in objectives}, "pretrain": demo.pretrain_settings(recipe)},
            lambda s, budget=budget: stage_pretrain_pair(p, s, budget, objectives, equal_steps))
        models = {f"{objective}-{budget:g}min": p.path("curve", f"{objective}-{budget:g}min", "pretrain", "export",
                                                       OBJECTIVES[objective]["model"]) for objective in objectives}
        any_model = any_model or next(iter(models.values()))
        finetuned.update(p.stage(7, f"curve-finetune-{budget:g}min", {"seeds": seeds, "rows": rows,
                                                                      "finetune": recipe.finetune,
                                                                      "first_seed": recipe.first_finetune_seed},
                                 lambda s, models=models: stage_finetune_models(p, s, models, row_keys)))
    # the control: the same architecture from random initialisation (any of the models' shapes: they are equal)
    control = p.stage(7, "curve-finetune-random-init", {"seeds": seeds, "rows": rows, "finetune": recipe.finetune,
                                                        "first_seed": recipe.first_finetune_seed},
                      lambda s: stage_finetune_models(p, s, {"random-init": any_model}, row_keys,
                                                                      random_init=True))

    points = []
    for budget in minutes:
        for objective in objectives:
            name = f"{objective}-{budget:g}min"
            for row in rows:
                tuned, base = finetuned[f"{name}/{row}"], control[f"random-init/{row}"]
                gain = paired_gain(tuned["dev_per_seed"], base["dev_per_seed"])
                points.append({"objective": objective, "minutes": budget, "row": row, "metric": tuned["metric"],
                               "pretrain_steps": pretraining[budget][objective]["steps"],
                               "pretrain_tokens": pretraining[budget][objective]["tokens"],
                               "pretrained_mean": tuned["dev_mean"], "random_init_mean": base["dev_mean"],
                               "gain_mean": gain["gain_mean"], "gain_ci95": gain["gain_ci95"],
                               "gain_per_seed": gain["gain_per_seed"]})
    # each objective against the first one, paired on the same fine-tuning seeds (e.g. whole-word vs token masking)
    comparisons = []
    for budget in minutes:
        for objective in objectives[1:]:
            for row in rows:
                ours = finetuned[f"{objective}-{budget:g}min/{row}"]
                theirs = finetuned[f"{objectives[0]}-{budget:g}min/{row}"]
                gain = paired_gain(ours["dev_per_seed"], theirs["dev_per_seed"])
                comparisons.append({"objective": objective, "versus": objectives[0], "minutes": budget, "row": row,
                                    "mean": ours["dev_mean"], "versus_mean": theirs["dev_mean"],
                                    "difference_mean": gain["gain_mean"], "difference_ci95": gain["gain_ci95"]})
    result = {"minutes": list(minutes), "seeds": seeds, "rows": rows, "objectives": list(objectives),
              "comparisons": comparisons,
              "equal_steps": equal_steps, "steps_per_minute": STEPS_PER_MINUTE, "points": points, "stages": p.times,
              "data": {o: stats for o, stats in data_stats.items() if stats},
              "wall_seconds": time.time() - started, "finetune": recipe.finetune, "seed": seed,
              "pretrain_seed": recipe.pretrain_seed, "first_finetune_seed": recipe.first_finetune_seed,
              "recipe": recipe.name,
              "evidence_rows": [list(e) for e in recipe.evidence if tuple(e[:2]) in row_keys]}
    write_json(p.path("curve.json"), result)
    write_text(p.path("curve.md"), curve_markdown(result))
    plot_curve(result, p.path("curve.png"))
    print("\n" + curve_markdown(result))
    return result


def curve_markdown(result) -> str:
    lines = [f"# Compute vs gain: {' vs '.join(result['objectives'])} ({result['seeds']} paired seeds per point"
             f"{'; every run the same steps' if result.get('equal_steps') else ''})", "",
             "| objective | pretraining minutes | steps | tokens | row | pretrained | random init | gain [95% CI] |",
             "|---|---|---|---|---|---|---|---|"]
    for pt in result["points"]:
        low, high = pt["gain_ci95"]
        lines.append(f"| {pt['objective']} | {pt['minutes']:g} | {pt['pretrain_steps']:,} | "
                     f"{pt['pretrain_tokens'] / 1e6:.2f}M | {pt['row']} ({pt['metric']}) | {pt['pretrained_mean']:.2f} "
                     f"| {pt['random_init_mean']:.2f} | {pt['gain_mean']:+.2f} [{low:+.2f}, {high:+.2f}] |")
    if result.get("comparisons"):
        lines += ["", "Against the first objective (paired on the same fine-tuning seeds):", "",
                  "| objective | versus | pretraining minutes | row | mean | versus mean | difference [95% CI] |",
                  "|---|---|---|---|---|---|---|"]
        for c in result["comparisons"]:
            low, high = c["difference_ci95"]
            lines.append(f"| {c['objective']} | {c['versus']} | {c['minutes']:g} | {c['row']} | {c['mean']:.2f} | "
                         f"{c['versus_mean']:.2f} | {c['difference_mean']:+.2f} [{low:+.2f}, {high:+.2f}] |")
    return "\n".join(lines) + "\n"


def plot_curve(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(result["rows"]), figsize=(6 * len(result["rows"]), 4.5), squeeze=False)
    for ax, row in zip(axes[0], result["rows"]):
        for objective, style in zip(result["objectives"], ("o-", "s--", "^-.", "d:")):
            pts = sorted((p for p in result["points"] if p["row"] == row and p["objective"] == objective),
                         key=lambda p: p["minutes"])
            xs = [p["minutes"] for p in pts]
            ys = [p["gain_mean"] for p in pts]
            errors = [[p["gain_mean"] - p["gain_ci95"][0] for p in pts], [p["gain_ci95"][1] - p["gain_mean"] for p in pts]]
            ax.errorbar(xs, ys, yerr=errors, fmt=style, capsize=4, label=objective)
        ax.axhline(0.0, color="grey", linestyle=":")
        ax.set_xscale("log", base=2)
        ax.set_xticks(result["minutes"], [f"{m:g}" for m in result["minutes"]])
        ax.set(title=f"{row}: gain over random init", xlabel="pretraining minutes (2-core Xeon, 1 thread)",
               ylabel="points (mean, 95% CI)")
        ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


@command
def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m pretrain.demo.curve", description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=list(DEFAULT_MINUTES),
                        help="pretraining budgets in minutes (default 2.5 5 10)")
    parser.add_argument("--long", action="store_true", help="add the 20 and 40 minute budgets")
    parser.add_argument("--seeds", type=int, default=5, help="paired fine-tuning seeds per point (default 5)")
    parser.add_argument("--workdir", default=os.path.join("runs", "curve"))
    parser.add_argument("--write", action="store_true", help="copy curve.{json,md,png} to pretrain/results/")
    parser.add_argument("--ci", action="store_true", help="the demo's --ci recipe (toy sizes; the test suite's run)")
    parser.add_argument("--objectives", nargs="+", choices=sorted(OBJECTIVES), default=list(DEFAULT_OBJECTIVES),
                        help="what to compare (default: electra mlm)")
    parser.add_argument("--equal-steps", action="store_true",
                        help="every run does the ELECTRA steps of its budget, with no time limit (for variants that "
                             "cost the same per step)")
    parser.add_argument("--all-rows", action="store_true",
                        help="fine-tune on every evidence row of the recipe (default: each task's low-label row)")
    parser.add_argument("--seed", type=int, default=0, help="moves the pretraining seed and the fine-tuning seeds as "
                                                           "the demo's --seed N does (default 0: the demo's default)")
    parser.add_argument("--write-as", default="curve", metavar="NAME",
                        help="with --write: pretrain/results/NAME.{json,md,png} (default curve)")
    args = parser.parse_args(argv)
    minutes = sorted(set(args.minutes) | (set(LONG_MINUTES) if args.long else set()))
    if len(args.objectives) > 2 and not args.equal_steps:
        raise ConfigError(f"{len(args.objectives)} objectives run two at a time, so a wall-time budget would not be "
                          f"the same compute for all: add --equal-steps")
    if any(m <= 0 for m in minutes) or args.seeds < 2:
        raise ConfigError(f"--minutes must be positive and --seeds >= 2 (an interval needs two), got {args.minutes} "
                          f"and {args.seeds}")

    def run():
        run_curve(os.path.abspath(args.workdir), minutes, args.seeds, "ci" if args.ci else "default",
                  dict.fromkeys(args.objectives), args.equal_steps, args.seed, args.all_rows)
        if args.write:
            for suffix in ("json", "md", "png"):
                write_bytes(os.path.join(RESULTS_DIR, f"{args.write_as}.{suffix}"),
                            read_bytes(os.path.join(args.workdir, f"curve.{suffix}")))

    return demo.run_pipeline(run)

if __name__ == "__main__":
    sys.exit(main())
