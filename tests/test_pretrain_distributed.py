"""Data parallel pretraining: 2 CPU processes under `paddle.distributed.launch` (fleet collective, gloo) log the same
per-step losses as 1 process with the same global batch.

Why they can match: every random draw of the objective (masked positions, [MASK]/keep choice, generator samples) is
seeded by the example's position in the global stream (per_sample_rng), not by rank or micro-batch, and the losses
are normalised by the global batch's counts, so it does not matter which process an example is on. Dropout masks are
seeded per (step, rank, micro-batch) and cannot follow an example across ranks, so the test sets dropout to 0.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pretrain.data import BuildOptions, build_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = '{"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, ' \
        '"embedding_size": 16}'


def env():
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PADDLE_", "FLAGS_selected", "POD_"))}
    return dict(clean, OMP_NUM_THREADS="1", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from pretrain.corpus import write_corpus
    root = tmp_path_factory.mktemp("dist")
    write_corpus(str(root), heldout_fraction=0.0)
    small = root / "small.txt"
    small.write_text("\n\n".join((root / "train.txt").read_text(encoding="utf-8").split("\n\n")[:300]) + "\n",
                     encoding="utf-8")
    build_dataset([str(small)], root / "data", vocab_size=3000, options=BuildOptions(max_seq_length=32),
                  num_workers=0, progress=False)
    return root / "data"


def run_args(data_dir, out_dir, *extra):
    return ["pretrain/run.py", "--data", str(data_dir), "--output-dir", str(out_dir), "--size", "tiny",
            "--discriminator", MODEL, "--dropout", "0", "--train-batch-size", "8", "--warmup-steps", "2",
            "--num-train-steps", "50", "--learning-rate", "2e-3", "--max-steps", "6", "--save-every", "3",
            "--progress", "false", "--visualdl", "false", "--export", "false", *extra]


def losses(out_dir):
    with open(os.path.join(out_dir, "losses.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_two_processes_match_one_process_with_the_same_global_batch(data_dir, tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    done = subprocess.run([sys.executable, *run_args(data_dir, single, "--gradient-accumulation-steps", "2")],
                          cwd=REPO, env=env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    done = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
                           str(tmp_path / "launch_logs"), *run_args(data_dir, multi)],
                          cwd=REPO, env=env(), capture_output=True, text=True, timeout=600)
    logs = "".join(p.read_text(errors="replace")[-2000:] for p in sorted((tmp_path / "launch_logs").glob("workerlog*")))
    assert done.returncode == 0, done.stdout[-2000:] + logs
    assert "world 2 x micro-batch 4 x accumulation 1 = global batch 8" in logs
    one, two = losses(single), losses(multi)
    assert [r["step"] for r in two] == list(range(1, 7))
    for a, b in zip(one, two):
        for key in ("loss", "gen_loss", "disc_loss", "gen_acc", "disc_acc", "grad_norm"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), (a["step"], key)
        assert a["tokens"] == b["tokens"] and a["lr"] == b["lr"]
    # rank 0 wrote the checkpoints; they hold the same weights a 1-process run would have
    assert (multi / "checkpoints" / "step-00000006" / "manifest.json").exists()
    state = json.loads((multi / "checkpoints" / "step-00000006" / "trainer_state.json").read_text())
    assert state["world_size"] == 2 and state["data"]["next_position"] == 6 * 8
    # ... and the same weights: float rounding differs between the two reductions, and Adam's first steps move a
    # weight by about lr x sign(gradient), so the tolerance is a tenth of one step (lr 2e-3); a wrong loss
    # normalisation or gradient average moves weights by whole steps
    from paddle_electra.weights import load_safetensors
    one_w = load_safetensors(single / "checkpoints" / "step-00000006" / "model.safetensors")
    two_w = load_safetensors(multi / "checkpoints" / "step-00000006" / "model.safetensors")
    assert sorted(one_w) == sorted(two_w)
    for name in one_w:
        np.testing.assert_allclose(two_w[name], one_w[name], rtol=0, atol=2e-4, err_msg=name)
