"""Checkpoints and resume: a run SIGKILLed after a checkpoint and resumed logs the same per-step losses as an
uninterrupted run; SIGTERM stops cleanly with a checkpoint; corrupt or half-written checkpoints are never used."""
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import paddle_electra  # noqa: F401
import paddle

from paddle_electra.errors import WeightsError
from pretrain.data import BuildOptions, build_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = '{"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, ' \
        '"embedding_size": 16}'


def env():
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from pretrain.corpus import write_corpus
    root = tmp_path_factory.mktemp("resume")
    write_corpus(str(root), heldout_fraction=0.0)
    small = root / "small.txt"  # the first ~400 articles are plenty for 12 steps of 8 examples
    small.write_text("\n\n".join((root / "train.txt").read_text(encoding="utf-8").split("\n\n")[:400]) + "\n",
                     encoding="utf-8")
    build_dataset([str(small)], root / "data", vocab_size=3000, options=BuildOptions(max_seq_length=32),
                  num_workers=0, progress=False)
    return root / "data"


def command(data_dir, out_dir, *extra):
    # dropout stays on (0.1): its masks are reseeded per step, so the resumed run must reproduce them too
    return [sys.executable, "pretrain/run.py", "--data", str(data_dir), "--output-dir", str(out_dir), "--size", "tiny",
            "--discriminator", MODEL, "--train-batch-size", "8", "--warmup-steps", "3", "--num-train-steps", "100",
            "--learning-rate", "2e-3", "--save-every", "4", "--progress", "false", "--visualdl", "false",
            "--export", "false", *extra]


def losses(out_dir):
    with open(os.path.join(out_dir, "losses.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def wait_for(path, process, timeout=300):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        assert process.poll() is None, "training exited before writing the checkpoint"
        assert time.time() < deadline, f"no {path} after {timeout}s"
        time.sleep(0.05)


def test_sigkill_then_resume_gives_identical_losses(data_dir, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    done = subprocess.run(command(data_dir, straight, "--max-steps", "12"), cwd=REPO, env=env(), capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    # the same run, SIGKILLed as soon as the step-4 checkpoint exists (it keeps training until the kill lands)
    process = subprocess.Popen(command(data_dir, killed, "--max-steps", "1000"), cwd=REPO, env=env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(killed / "checkpoints" / "step-00000004" / "manifest.json", process)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    done = subprocess.run(command(data_dir, killed, "--max-steps", "12", "--resume"), cwd=REPO, env=env(),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    resumed_at = int(re.search(r"resumed from \S+ at step (\d+)", done.stdout).group(1))
    assert resumed_at in (4, 8)  # the kill lands right after step 4's checkpoint (step 8's at the latest)
    a, b = losses(straight), losses(killed)
    assert [r["step"] for r in b] == list(range(1, 13))  # lines past the checkpoint were dropped, then rewritten
    for x, y in zip(a, b):
        for key in ("loss", "gen_loss", "disc_loss", "gen_acc", "disc_acc", "grad_norm", "lr"):
            assert abs(x[key] - y[key]) <= 1e-6, (x["step"], key, x[key], y[key])
    bitwise = all(x == y for x, y in zip(a, b))
    print(f"resumed losses bitwise identical: {bitwise}")


def test_sigterm_stops_with_a_checkpoint_and_resumes(data_dir, tmp_path):
    out = tmp_path / "term"
    process = subprocess.Popen(command(data_dir, out, "--max-steps", "1000", "--save-every", "0", "--export",
                                       "true"), cwd=REPO, env=env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not (out / "losses.jsonl").exists() or len(losses(out)) < 3:
            assert process.poll() is None and time.time() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] == "SIGTERM"
    step = summary["steps"]
    assert (out / "checkpoints" / f"step-{step:08d}" / "manifest.json").exists()
    assert (out / "export" / "discriminator" / "model.safetensors").exists()
    done = subprocess.run(command(data_dir, out, "--max-steps", str(step + 2), "--resume"), cwd=REPO, env=env(),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [r["step"] for r in losses(out)] == list(range(1, step + 3))


def _tiny_model_and_optimizer():
    from paddle_electra import preset
    from paddle_electra.optim import build_optimizer, linear_warmup_decay
    from paddle_electra.pretraining import ElectraForPretraining
    disc = preset("tiny").replace(vocab_size=50, hidden_size=16, intermediate_size=32, embedding_size=8,
                                  num_hidden_layers=1)
    gen = preset("tiny", "generator").replace(vocab_size=50, hidden_size=8, intermediate_size=16, embedding_size=8,
                                              num_hidden_layers=1)
    model = ElectraForPretraining(disc, gen, [0, 1, 2, 3, 4], 4)
    schedule = linear_warmup_decay(1e-3, 2, 10)
    return model, build_optimizer(model, schedule), schedule


def _one_step(model, optimizer, schedule):
    paddle.seed(5)  # the same masks, samples and dropout for both models
    ids = paddle.to_tensor(np.random.RandomState(0).randint(5, 50, (2, 12)))
    out = model(ids, paddle.zeros_like(ids), paddle.ones_like(ids))
    out.loss.backward()
    optimizer.step()
    optimizer.clear_grad()
    schedule.step()


def test_checkpoint_round_trip_and_corruption(tmp_path):
    from pretrain.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint, \
        verify_checkpoint
    paddle.seed(1)
    model, optimizer, schedule = _tiny_model_and_optimizer()
    for _ in range(3):
        _one_step(model, optimizer, schedule)
    root = str(tmp_path / "ckpt")
    save_checkpoint(root, 2, model, optimizer, schedule, {"note": "older"})
    path = save_checkpoint(root, 3, model, optimizer, schedule, {"note": "newer"})
    os.makedirs(os.path.join(root, ".tmp-step-00000009-123"))  # a half-written one: invisible
    assert [s for s, _ in list_checkpoints(root)] == [2, 3]
    # a fresh model (other internal parameter names) gets exactly the same weights and optimizer state
    other, other_opt, other_schedule = _tiny_model_and_optimizer()
    state = load_checkpoint(path, other, other_opt, other_schedule)
    assert state["note"] == "newer" and state["step"] == 3 and other_schedule.last_epoch == schedule.last_epoch
    for (name, p), (_, q) in zip(model.named_parameters(), other.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)
    _one_step(model, optimizer, schedule)
    _one_step(other, other_opt, other_schedule)
    for (name, p), (_, q) in zip(model.named_parameters(), other.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)  # Adam moments were restored too
    # flip one byte: verification fails by name, and the newest valid checkpoint is the older one
    weights = os.path.join(path, "model.safetensors")
    data = bytearray(open(weights, "rb").read())
    data[-5] ^= 0xFF
    open(weights, "wb").write(bytes(data))
    with pytest.raises(WeightsError, match="model.safetensors"):
        verify_checkpoint(path)
    messages = []
    assert latest_checkpoint(root, log=messages.append).endswith("step-00000002")
    assert "step-00000003" in messages[0]


def test_rng_state_round_trip():
    from pretrain.rng import capture_rng_state, restore_rng_state
    state = json.loads(json.dumps(capture_rng_state()))  # survives JSON
    expected = (random.random(), np.random.rand(), paddle.rand([3]).numpy())
    restore_rng_state(state)
    again = (random.random(), np.random.rand(), paddle.rand([3]).numpy())
    assert expected[0] == again[0] and expected[1] == again[1]
    np.testing.assert_array_equal(expected[2], again[2])
