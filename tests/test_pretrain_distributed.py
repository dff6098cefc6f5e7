"""Data parallel pretraining: 2 CPU processes under `paddle.distributed.launch` (fleet collective, gloo) log the same
per-step losses as 1 process with the same global batch.

Why they can match: every random draw of the objective (masked positions, [MASK]/keep choice, generator samples) is
seeded by the example's position in the global stream (per_sample_rng), not by rank or micro-batch, and the losses
are normalised by the global batch's counts, so it does not matter which process an example is on. Dropout masks are
seeded per (step, rank, micro-batch) and cannot follow an example across ranks, so the test sets dropout to 0.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import small_pd_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = '{"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, ' \
        '"embedding_size": 16}'


def env():
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PADDLE_", "FLAGS_selected", "POD_"))}
    return dict(clean, OMP_NUM_THREADS="1", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return small_pd_dataset(tmp_path_factory.mktemp("dist"), articles=300, vocab_size=3000)


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


# ---- multi-node on loopback: two launchers (`--nnodes 2`) on 127.0.0.1 act as two nodes of one worker each ----------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_nodes(tmp_path, name, data_dir, out_dir, *extra, nodes=2):
    """Start `nodes` launchers for one job, each in its own session (a node), all traffic on 127.0.0.1."""
    master = f"127.0.0.1:{free_port()}"
    procs = []
    for rank in range(nodes):
        log_dir = tmp_path / name / f"node{rank}"
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "paddle.distributed.launch", "--nnodes", str(nodes), "--master", master,
             "--rank", str(rank), "--host", "127.0.0.1", "--nproc_per_node", "1", "--log_dir", str(log_dir),
             *run_args(data_dir, out_dir, *extra)],
            cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True))
    return procs


def descendants(pid) -> list:
    """pid and every process below it (a 'node': its launcher and the workers the launcher started)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry))
    todo, found = [pid], []
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def kill_node(proc, sig=signal.SIGKILL):
    for pid in descendants(proc.pid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def finish(procs, timeout):
    """Wait for every launcher; whatever is still running at the deadline is killed (the test then fails)."""
    deadline, outputs = time.time() + timeout, []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            kill_node(p)
            out, _ = p.communicate()
            out += "\n[killed by the test: still running at the deadline]"
        outputs.append(out)
    return outputs


def worker_logs(tmp_path, name):
    return "".join(p.read_text(errors="replace")[-3000:] for p in sorted((tmp_path / name).glob("node*/workerlog*")))


def weights(out_dir, step):
    from paddle_electra.weights import load_safetensors
    return load_safetensors(out_dir / "checkpoints" / f"step-{step:08d}" / "model.safetensors")


def same_records(a, b):
    """Per-step records equal in every logged value except the wall-clock throughput."""
    drop = ("tokens_per_s",)
    return [{k: v for k, v in r.items() if k not in drop} for r in a] == \
           [{k: v for k, v in r.items() if k not in drop} for r in b]


@pytest.mark.slow
def test_two_nodes_match_one_node_and_one_process(data_dir, tmp_path):
    """2 nodes x 1 process == 1 node x 2 processes bit for bit (the same two-rank gloo sums), and == 1 process with
    the same global batch within the tolerance of the test above (a different summation order)."""
    nodes, local, single = tmp_path / "nodes", tmp_path / "local", tmp_path / "single"
    outputs = finish(launch_nodes(tmp_path, "nodes_logs", data_dir, nodes), timeout=300)
    logs = worker_logs(tmp_path, "nodes_logs")
    assert all("Exit code 0" in out for out in outputs), "\n".join(o[-1500:] for o in outputs) + logs
    assert logs.count("world 2 x micro-batch 4 x accumulation 1 = global batch 8") == 1  # rank 0 says it
    for env_log in (tmp_path / "nodes_logs").glob("node*/envlog*"):  # every endpoint on loopback
        endpoints = next(line for line in env_log.read_text().splitlines()
                         if line.startswith("PADDLE_TRAINER_ENDPOINTS="))
        assert all(e.startswith("127.0.0.1:") for e in endpoints.split("=", 1)[1].split(",")), endpoints
    done = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
                           str(tmp_path / "local_logs"), *run_args(data_dir, local)],
                          cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:]
    done = subprocess.run([sys.executable, *run_args(data_dir, single, "--gradient-accumulation-steps", "2")],
                          cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [r["step"] for r in losses(nodes)] == list(range(1, 7))
    assert same_records(losses(nodes), losses(local))
    for a, b in zip(losses(single), losses(nodes)):
        for key in ("loss", "gen_loss", "disc_loss", "gen_acc", "disc_acc", "grad_norm"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), (a["step"], key)
    w_nodes, w_local, w_single = weights(nodes, 6), weights(local, 6), weights(single, 6)
    assert sorted(w_nodes) == sorted(w_local) == sorted(w_single)
    for name in w_nodes:
        np.testing.assert_array_equal(w_nodes[name], w_local[name], err_msg=name)
        np.testing.assert_allclose(w_nodes[name], w_single[name], rtol=0, atol=2e-4, err_msg=name)


LONG = ("--max-steps", "300", "--num-train-steps", "300", "--save-every", "20")


def wait_for_steps(out_dir, steps, procs, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        path = out_dir / "losses.jsonl"
        if path.exists() and len(path.read_text().splitlines()) >= steps and list_checkpoints(out_dir):
            return
        if any(p.poll() is not None for p in procs):
            raise AssertionError("a node ended before the test could stop it: " + procs[0].communicate()[0][-2000:])
        time.sleep(0.2)
    finish(procs, timeout=1)
    raise AssertionError(f"no {steps} steps logged in {timeout} s")


def list_checkpoints(out_dir):
    return sorted((out_dir / "checkpoints").glob("step-*/manifest.json")) if (out_dir / "checkpoints").exists() \
        else []


@pytest.mark.slow
def test_killed_node_stops_the_other_and_both_resume_exactly(data_dir, tmp_path):
    """SIGKILL one node mid-run: the other stops within seconds with one clear line (no hang); `--resume` on both
    nodes then logs the same losses and ends with the same weights as an uninterrupted 2-node run."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    outputs = finish(launch_nodes(tmp_path, "whole_logs", data_dir, whole, *LONG), timeout=400)
    assert all("Exit code 0" in out for out in outputs), "\n".join(o[-1500:] for o in outputs)

    procs = launch_nodes(tmp_path, "cut_logs", data_dir, cut, *LONG)
    wait_for_steps(cut, 50, procs)
    killed_at = time.time()
    kill_node(procs[1])
    outputs = finish(procs, timeout=60)
    stopped_after = time.time() - killed_at
    logs = worker_logs(tmp_path, "cut_logs")
    assert "still running at the deadline" not in outputs[0], outputs[0][-2000:] + logs
    assert procs[0].returncode != 0 and stopped_after < 60
    assert "error: rank 0 of 2: " in logs and "another process or node of this run stopped" in logs, logs
    assert "Start every node again with --resume" in logs
    done_before = len(losses(cut))
    assert 50 <= done_before < 300
    print(f"node 1 killed after {done_before} logged steps; node 0 stopped {stopped_after:.1f} s later")

    outputs = finish(launch_nodes(tmp_path, "resume_logs", data_dir, cut, *LONG, "--resume", "latest"), timeout=400)
    logs = worker_logs(tmp_path, "resume_logs")
    assert all("Exit code 0" in out for out in outputs), "\n".join(o[-1500:] for o in outputs) + logs
    assert "resumed from" in logs
    assert same_records(losses(cut), losses(whole))
    a, b = weights(cut, 300), weights(whole, 300)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.slow
def test_hung_node_stops_the_other_within_the_peer_timeout(data_dir, tmp_path):
    """SIGSTOP one node's worker (a frozen machine: its connections stay open, nothing answers): the other node stops
    by its watchdog after --peer-timeout-s with one clear line, before gloo's own 30-s abort."""
    out = tmp_path / "hung"
    procs = launch_nodes(tmp_path, "hung_logs", data_dir, out, *LONG, "--peer-timeout-s", "8")
    try:
        wait_for_steps(out, 30, procs)
        stopped_at = time.time()
        kill_node(procs[1], signal.SIGSTOP)
        outputs = finish(procs[:1], timeout=60)
        waited = time.time() - stopped_at
    finally:
        kill_node(procs[1])
        procs[1].communicate()
    logs = worker_logs(tmp_path, "hung_logs")
    assert "still running at the deadline" not in outputs[0], outputs[0][-2000:] + logs
    assert "no answer from the other ranks" in logs and "peer timeout 8 s" in logs, logs
    assert 8 <= waited < 28, waited
    print(f"node 1 frozen; node 0 stopped {waited:.1f} s later (peer timeout 8 s)")
