"""Fault injection: pretraining and fine-tuning SIGKILLed again and again (at random moments and while a checkpoint
is being written), resumed each time, then run to the end. The killed run must end exactly where an uninterrupted
run with the same seed ends: the final checkpoint verifies and loads, no step before the last completed checkpoint
is lost, and every per-step loss (pretraining) / every epoch's weights and dev metrics (fine-tuning) are identical.

Two kinds of kill:
- external: SIGKILL from this process at a random moment (after the run has made progress, so the loop ends) or as
  soon as a checkpoint's temp directory appears (the kill then lands while the checkpoint is being written);
- injected: a launcher patches one function of the run so that the process SIGKILLs itself at an exact point
  (a half-written file inside a checkpoint, just before the rename, right after a log is truncated). These windows
  last microseconds, too short for an external kill to hit on purpose.

The default suite does 3 external kills per trainer; the `slow` variants do 10. Kill moments come from
random.Random(FAULT_SEED) (env, default 20240601), printed so a failure can be replayed.
"""
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

import paddle_electra  # noqa: F401  (environment before paddle)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAULT_SEED = int(os.environ.get("FAULT_SEED", "20240601"))
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "embedding_size": 16}
SAVE_EVERY = 2
MAX_STEPS = 90  # enough for 10 kills that each wait for >= 2 steps of progress (at most ~8 per kill)
POLL = 0.002

# The launcher runs a script as __main__ after patching the kill point named by FI_KILL_AT (and, for fine-tuning,
# FI_HEAD_DROPOUT: the hub module's classifier dropout, which finetune/run.py does not expose as a flag).
LAUNCHER = r'''
import os, re, runpy, signal, sys
repo, script = sys.argv[1], sys.argv[2]
sys.argv = [script] + sys.argv[3:]
sys.path.insert(0, repo)
point, after = os.environ.get("FI_KILL_AT", ""), int(os.environ.get("FI_AFTER", "0"))

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def step_of(path):
    match = re.search(r"\.tmp-step-(\d+)-", str(path))
    return int(match.group(1)) if match else -1

if point == "losses-rewrite":
    real_replace = os.replace
    def patched_replace(src, dst, *args, **kwargs):
        if str(dst).endswith("losses.jsonl"):
            die()  # the cut-back log is fully written to its temp file, not renamed over the old one yet
        return real_replace(src, dst, *args, **kwargs)
    os.replace = patched_replace
elif point == "checkpoint-half-written":
    import pretrain.checkpoint as ckpt
    real_save = ckpt.save_safetensors
    def patched_save(tensors, path, metadata=None):
        real_save(tensors, path, metadata)
        if step_of(path) > after and str(path).endswith("model.safetensors"):
            os.truncate(path, os.path.getsize(path) // 2)
            die()
    ckpt.save_safetensors = patched_save
elif point == "checkpoint-before-rename":
    from paddle_electra import fileio
    real_fsync = fileio.fsync_dir
    def patched_fsync(path):
        if step_of(path) > after:
            die()  # manifest written, directory complete, not yet renamed into place
        real_fsync(path)
    fileio.fsync_dir = patched_fsync
elif point == "epoch-checkpoint-half-written":
    import paddle
    real_paddle_save = paddle.save
    def patched_paddle_save(obj, path, *args, **kwargs):
        real_paddle_save(obj, path, *args, **kwargs)
        match = re.search(r"epoch_(\d+)", str(path))
        if match and int(match.group(1)) > after and str(path).endswith(".pdopt"):
            os.truncate(path, os.path.getsize(path) // 2)
            die()
    paddle.save = patched_paddle_save
if os.environ.get("FI_HEAD_DROPOUT") is not None:
    import inspect
    from paddle_electra.hub.home import prepare_hub_home
    # hub reads its home once, at import: set it as finetune/run.py will before hub_module imports paddlehub
    prepare_hub_home(sys.argv[sys.argv.index("--hub-home") + 1] if "--hub-home" in sys.argv else None)
    from paddle_electra.hub import module as hub_module
    init = hub_module.ElectraHubModule.__init__
    names = [n for n, p in inspect.signature(init).parameters.items() if p.default is not inspect.Parameter.empty]
    defaults = list(init.__defaults__)
    defaults[names.index("dropout")] = float(os.environ["FI_HEAD_DROPOUT"])
    init.__defaults__ = tuple(defaults)
runpy.run_path(os.path.join(repo, script), run_name="__main__")
'''


def env(**extra):
    out = dict(os.environ, OMP_NUM_THREADS="1", GLOG_minloglevel="2",
               PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for key in ("FI_KILL_AT", "FI_AFTER", "FI_HEAD_DROPOUT"):
        out.pop(key, None)
    out.update({k: str(v) for k, v in extra.items()})
    return out


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    path = tmp_path_factory.mktemp("launcher") / "launch.py"
    path.write_text(LAUNCHER, encoding="utf-8")
    return str(path)


def start(launcher, script, args, log_path, **extra_env):
    log = open(log_path, "w", encoding="utf-8")
    try:
        return subprocess.Popen([sys.executable, launcher, REPO, script, *map(str, args)], cwd=REPO,
                                env=env(**extra_env), stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


def finish(process, log_path, timeout=300):
    process.wait(timeout=timeout)
    text = open(log_path, encoding="utf-8", errors="replace").read()
    return process.returncode, text


def kill(process):
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)


# ======================================================================================================================
# Pretraining
# ======================================================================================================================

@pytest.fixture(scope="module")
def pretrain_data(tmp_path_factory):
    """A packed dataset built from synthetic text (200 CJK characters, a character vocab), 32-token examples."""
    from paddle_electra.tokenizer import SPECIAL_TOKENS
    from pretrain.data import BuildOptions, build_dataset
    root = tmp_path_factory.mktemp("fi-pretrain-data")
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 200)]
    rng = random.Random(0)
    docs = ["\n".join("".join(rng.choice(chars) for _ in range(rng.randint(5, 30))) + "。"
                      for _ in range(rng.randint(2, 8))) for _ in range(60)]
    (root / "text.txt").write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    (root / "vocab.txt").write_text("\n".join(list(SPECIAL_TOKENS) + chars + ["。"]) + "\n", encoding="utf-8")
    build_dataset([str(root / "text.txt")], root / "data", vocab=str(root / "vocab.txt"),
                  options=BuildOptions(max_seq_length=32), num_workers=0, progress=False)
    return root / "data"


def pretrain_args(data_dir, out_dir, *extra):
    # dropout stays at the preset's 0.1: the resumed run has to reproduce its masks too
    return ["--data", data_dir, "--output-dir", out_dir, "--size", "tiny", "--discriminator", json.dumps(TINY),
            "--train-batch-size", "8", "--warmup-steps", "3", "--num-train-steps", "200", "--learning-rate", "2e-3",
            "--save-every", SAVE_EVERY, "--keep-checkpoints", "3", "--max-steps", MAX_STEPS, "--progress", "false",
            "--visualdl", "false", "--export", "false", "--seed", "7", *extra]


def read_losses(out_dir):
    path = os.path.join(out_dir, "losses.jsonl")
    if not os.path.exists(path):
        return []
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line being written right now
    return records


def comparable(record):
    # tokens_per_s is a wall-clock rate, the one field that may legitimately differ
    return {k: v for k, v in record.items() if k != "tokens_per_s"}


def completed_checkpoints(root):
    from pretrain.checkpoint import list_checkpoints
    return [step for step, _ in list_checkpoints(str(root))]


def latest_verified_step(root):
    from pretrain.checkpoint import latest_checkpoint
    path = latest_checkpoint(str(root), log=lambda message: None)
    return int(os.path.basename(path).split("-")[1]) if path else 0


def temp_checkpoints(root):
    """{step: [names]} of temp checkpoint directories (.tmp-step-N-PID) under root."""
    found = {}
    if os.path.isdir(root):
        for name in os.listdir(root):
            match = re.match(r"^\.tmp-step-(\d+)-\d+", name)
            if match:
                found.setdefault(int(match.group(1)), []).append(name)
    return found


@pytest.fixture(scope="module")
def pretrain_reference(pretrain_data, launcher, tmp_path_factory):
    """The uninterrupted run: its per-step losses and final checkpoint are what every killed run must reproduce."""
    out = tmp_path_factory.mktemp("fi-pretrain-reference") / "out"
    log = str(out) + ".log"
    rc, text = finish(start(launcher, "pretrain/run.py", pretrain_args(pretrain_data, out), log), log)
    assert rc == 0, text[-3000:]
    records = read_losses(out)
    assert [r["step"] for r in records] == list(range(1, MAX_STEPS + 1))
    return out, records


def assert_same_as_reference(out, reference):
    """Every step's losses identical to the uninterrupted run's; the final checkpoint verifies, loads and holds
    bit-identical weights."""
    from paddle_electra.config import ElectraConfig
    from paddle_electra.pretraining import ElectraForPretraining
    from paddle_electra.tokenizer import ElectraTokenizer
    from paddle_electra.weights import load_safetensors
    from pretrain.checkpoint import load_checkpoint, verify_checkpoint
    ref_out, ref_records = reference
    records = read_losses(out)
    steps = [r["step"] for r in records]
    assert steps == list(range(1, MAX_STEPS + 1)), f"losses.jsonl steps: {steps}"
    for mine, theirs in zip(records, ref_records):
        assert comparable(mine) == comparable(theirs), (mine, theirs)
    final = os.path.join(out, "checkpoints", f"step-{MAX_STEPS:08d}")
    manifest = verify_checkpoint(final)  # every file's size and sha256 against manifest.json
    assert set(manifest["files"]) >= {"model.safetensors", "optimizer.safetensors", "trainer_state.json"}
    state = json.load(open(os.path.join(final, "trainer_state.json"), encoding="utf-8"))
    tokenizer = ElectraTokenizer.from_pretrained(final)
    model = ElectraForPretraining(ElectraConfig.from_dict(state["discriminator_config"]),
                                  ElectraConfig.from_dict(state["generator_config"]), tokenizer.special_token_ids,
                                  tokenizer.mask_token_id)
    assert load_checkpoint(final, model)["step"] == MAX_STEPS  # strict: every parameter, right shapes
    ours = load_safetensors(os.path.join(final, "model.safetensors"))
    theirs = load_safetensors(os.path.join(ref_out, "checkpoints", f"step-{MAX_STEPS:08d}", "model.safetensors"))
    assert sorted(ours) == sorted(theirs)
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def kill_pretraining_repeatedly(launcher, data_dir, out, kills, rng):
    """SIGKILL `kills` runs in a row (alternately: while a checkpoint is written, at a random moment), each
    started with --resume; check after each kill that no completed checkpoint was lost. Returns statistics."""
    ckpt_root = os.path.join(out, "checkpoints")
    stats = {"kills": 0, "during_checkpoint_write": 0, "random_moment": 0, "resume_steps": [], "temp_left": 0}
    os.makedirs(out, exist_ok=True)
    for k in range(kills):
        mode = "checkpoint" if k % 2 == 0 else "random"
        resume_step = latest_verified_step(ckpt_root)
        log = os.path.join(out, f"run-{k}.log")
        process = start(launcher, "pretrain/run.py", pretrain_args(data_dir, out, "--resume"), log)
        deadline = time.time() + 240
        landed_in_write = False
        try:
            while process.poll() is None and time.time() < deadline:
                if mode == "checkpoint":
                    # the 2nd checkpoint after the resume point: the 1st one is then complete (progress is made)
                    writing = [s for s in temp_checkpoints(ckpt_root) if s >= resume_step + 2 * SAVE_EVERY]
                    if writing:
                        done_before = completed_checkpoints(ckpt_root)
                        process.send_signal(signal.SIGKILL)
                        landed_in_write = True
                        break
                else:
                    if any(r["step"] > resume_step + SAVE_EVERY for r in read_losses(out)):
                        time.sleep(rng.uniform(0.0, 0.3))
                        done_before = completed_checkpoints(ckpt_root)
                        process.send_signal(signal.SIGKILL)
                        break
                time.sleep(POLL)
        finally:
            kill(process)
        text = open(log, encoding="utf-8", errors="replace").read()
        assert process.returncode == -signal.SIGKILL, \
            f"run {k} ended on its own ({process.returncode}):\n{text[-3000:]}"
        assert time.time() < deadline, f"run {k}: no progress within 240 s:\n{text[-3000:]}"
        stats["kills"] += 1
        if resume_step:
            match = re.search(r"resumed from \S+ at step (\d+)", text)
            assert match and int(match.group(1)) == resume_step, text[-3000:]
            stats["resume_steps"].append(resume_step)
        leftovers = temp_checkpoints(ckpt_root)
        if landed_in_write and any(s >= resume_step + 2 * SAVE_EVERY for s in leftovers):
            stats["during_checkpoint_write"] += 1  # the temp directory was still there: the write was cut short
        elif mode == "random":
            stats["random_moment"] += 1
        # no completed checkpoint is lost: the newest one that verifies is at least the newest seen before the kill
        assert latest_verified_step(ckpt_root) >= max(done_before, default=0), (done_before, k)
    stats["temp_left"] = sum(len(v) for v in temp_checkpoints(ckpt_root).values())
    return stats


def run_pretraining_fault_test(launcher, pretrain_data, pretrain_reference, out, kills, capsys=None):
    rng = random.Random(FAULT_SEED + kills)
    stats = kill_pretraining_repeatedly(launcher, pretrain_data, out, kills, rng)
    log = os.path.join(out, "final.log")
    rc, text = finish(start(launcher, "pretrain/run.py", pretrain_args(pretrain_data, out, "--resume"), log), log)
    assert rc == 0, text[-3000:]
    assert_same_as_reference(out, pretrain_reference)
    print(f"\npretraining fault injection (seed {FAULT_SEED}): {stats['kills']} SIGKILLs survived "
          f"({stats['during_checkpoint_write']} while a checkpoint was being written, {stats['random_moment']} at "
          f"random moments), resumed at steps {stats['resume_steps']}; losses of all {MAX_STEPS} steps and the "
          f"final weights identical to the uninterrupted run; {stats['temp_left']} abandoned temp checkpoint "
          f"dir(s) left behind")
    return stats


def test_pretraining_survives_3_sigkills(launcher, pretrain_data, pretrain_reference, tmp_path):
    stats = run_pretraining_fault_test(launcher, pretrain_data, pretrain_reference, tmp_path / "out", 3)
    assert stats["kills"] == 3 and stats["during_checkpoint_write"] + stats["random_moment"] >= 2


@pytest.mark.slow
def test_pretraining_survives_10_sigkills(launcher, pretrain_data, pretrain_reference, tmp_path):
    stats = run_pretraining_fault_test(launcher, pretrain_data, pretrain_reference, tmp_path / "out", 10)
    assert stats["kills"] == 10 and stats["during_checkpoint_write"] >= 3


@pytest.mark.parametrize("point", ["checkpoint-half-written", "checkpoint-before-rename"])
def test_pretraining_killed_inside_a_checkpoint_write_resumes_exactly(launcher, pretrain_data, pretrain_reference,
                                                                      tmp_path, point):
    """The process dies with a half-written model.safetensors in the temp dir, or with a complete temp dir not yet
    renamed: the checkpoint is invisible, the previous one is used, and the run still ends identical."""
    out = tmp_path / "out"
    log = str(tmp_path / "killed.log")
    process = start(launcher, "pretrain/run.py", pretrain_args(pretrain_data, out), log, FI_KILL_AT=point,
                    FI_AFTER=2 * SAVE_EVERY)
    rc, text = finish(process, log)
    assert rc == -signal.SIGKILL, text[-3000:]
    root = out / "checkpoints"
    assert completed_checkpoints(root) == [SAVE_EVERY, 2 * SAVE_EVERY]
    assert list(temp_checkpoints(root)) == [3 * SAVE_EVERY]  # the cut-short write, hidden from list_checkpoints
    rc, text = finish(start(launcher, "pretrain/run.py", pretrain_args(pretrain_data, out, "--resume"), log), log)
    assert rc == 0, text[-3000:]
    assert f"at step {2 * SAVE_EVERY}" in text
    assert_same_as_reference(out, pretrain_reference)


def test_pretraining_killed_while_rewriting_the_loss_log_keeps_earlier_steps(launcher, pretrain_data,
                                                                             pretrain_reference, tmp_path):
    out = tmp_path / "out"
    log = str(tmp_path / "run.log")
    first = pretrain_args(pretrain_data, out)
    first[first.index("--max-steps") + 1] = str(3 * SAVE_EVERY)
    rc, text = finish(start(launcher, "pretrain/run.py", first, log), log)
    assert rc == 0, text[-3000:]
    process = start(launcher, "pretrain/run.py", pretrain_args(pretrain_data, out, "--resume"), log,
                    FI_KILL_AT="losses-rewrite")
    assert finish(process, log)[0] == -signal.SIGKILL
    rc, text = finish(start(launcher, "pretrain/run.py", pretrain_args(pretrain_data, out, "--resume"), log), log)
    assert rc == 0, text[-3000:]
    assert [r["step"] for r in read_losses(out)] == list(range(1, MAX_STEPS + 1))


# ======================================================================================================================
# Fine-tuning (finetune/run.py: hub.Trainer, one checkpoint per epoch)
# ======================================================================================================================

POSITIVE = ["房间很好服务很好", "早餐很好环境不错", "很好很满意", "位置好很方便", "干净舒服很好", "服务热情很好"]
NEGATIVE = ["房间很差服务很差", "早餐太差环境吵", "很差不满意", "位置差不方便", "脏乱很差", "服务冷漠很差"]


def make_model_dir(path, dropout):
    import paddle
    from paddle_electra import preset
    from paddle_electra.modeling import ElectraDiscriminator
    from paddle_electra.tokenizer import SPECIAL_TOKENS, ElectraTokenizer
    os.makedirs(path, exist_ok=True)
    chars = sorted({c for text in POSITIVE + NEGATIVE for c in text})
    with open(os.path.join(path, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(list(SPECIAL_TOKENS) + chars) + "\n")
    tokenizer = ElectraTokenizer(os.path.join(path, "vocab.txt"))
    config = preset("tiny").replace(vocab_size=tokenizer.vocab_size, hidden_size=32, embedding_size=16,
                                    intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                    hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    paddle.seed(7)
    ElectraDiscriminator(config).save_pretrained(path, tokenizer=tokenizer)
    return path


@pytest.fixture(scope="module")
def finetune_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fi-finetune")
    data = root / "data"
    data.mkdir()
    rows = [("1", t) for t in POSITIVE] + [("0", t) for t in NEGATIVE]
    (data / "train.tsv").write_text("label\ttext_a\n" + "".join(f"{l}\t{t}\n" for l, t in rows * 20), encoding="utf-8")
    (data / "dev.tsv").write_text("label\ttext_a\n" + "".join(f"{l}\t{t}\n" for l, t in rows[::2]), encoding="utf-8")
    return {"data": str(data), "model": make_model_dir(str(root / "model-no-dropout"), 0.0),
            "hub_home": str(root / "hub"), "root": root}


def finetune_args(inputs, out, epochs):
    return ["--task", "chnsenticorp", "--model", inputs["model"], "--data-dir", inputs["data"], "--output-dir", out,
            "--num_train_epochs", epochs, "--train_batch_size", 4, "--max_seq_length", 16, "--log_every", 1,
            "--hub-home", inputs["hub_home"]]


def finetune_outcome(out, epochs):
    """What a finished run produced: metrics.json's per-seed results, the last epoch's weights and optimizer state,
    and the best model's tensors."""
    import paddle
    from paddle_electra.weights import load_safetensors
    seed_dir = os.path.join(out, "seed_1")
    metrics = json.load(open(os.path.join(out, "metrics.json"), encoding="utf-8"))
    # our own files, written by this test's runs: paddle.load (pickle) is acceptable here
    state = paddle.load(os.path.join(seed_dir, f"epoch_{epochs}", "model.pdparams"))
    weights = {k: v.numpy() for k, v in state.items()}
    optimizer = paddle.load(os.path.join(seed_dir, f"epoch_{epochs}", "model.pdopt"))
    best = load_safetensors(os.path.join(seed_dir, "best_model", "model.safetensors"))
    return metrics["runs"], weights, optimizer, best


def assert_same_outcome(a, b):
    runs_a, weights_a, opt_a, best_a = a
    runs_b, weights_b, opt_b, best_b = b
    assert runs_a == runs_b  # history (dev metrics after every epoch, global steps), best epoch, final dev metrics
    assert sorted(weights_a) == sorted(weights_b)
    for name in weights_a:
        np.testing.assert_array_equal(weights_a[name], weights_b[name], err_msg=name)
    assert sorted(opt_a) == sorted(opt_b)
    for name in opt_a:
        if hasattr(opt_a[name], "numpy"):
            np.testing.assert_array_equal(opt_a[name].numpy(), opt_b[name].numpy(), err_msg=name)
        else:
            assert opt_a[name] == opt_b[name], name
    for name in best_a:
        np.testing.assert_array_equal(best_a[name], best_b[name], err_msg=name)


def epochs_in_history(out):
    path = os.path.join(out, "seed_1", "history.json")
    try:
        return [h["epoch"] for h in json.load(open(path, encoding="utf-8"))]
    except (OSError, ValueError):
        return []


def last_epoch_dir(out):
    folder = os.path.join(out, "seed_1")
    if not os.path.isdir(folder):
        return 0
    return max([int(n[6:]) for n in os.listdir(folder) if n.startswith("epoch_") and n[6:].isdigit()], default=0)


_finetune_references = {}


def head_dropout_env(dropout):
    """The classifier head's dropout for a child run: 0 through FI_HEAD_DROPOUT, else the module's default (0.1)."""
    return {"FI_HEAD_DROPOUT": 0.0} if dropout == 0 else {}


def finetune_reference(launcher, inputs, epochs, dropout=0.0):
    key = (epochs, inputs["model"], dropout)
    if key not in _finetune_references:
        out = os.path.join(inputs["root"], f"reference-{epochs}-dropout-{dropout}")
        log = out + ".log"
        rc, text = finish(start(launcher, "finetune/run.py", finetune_args(inputs, out, epochs), log,
                                **head_dropout_env(dropout)), log)
        assert rc == 0, text[-3000:]
        _finetune_references[key] = finetune_outcome(out, epochs)
    return _finetune_references[key]


def run_finetune_fault_test(launcher, inputs, out, kills, dropout=0.0):
    """`kills` SIGKILLs, each at a random moment of the epoch after the one the run resumed from (~1 s: training,
    evaluation or checkpointing), then a final run; the outcome must equal an uninterrupted run's. `dropout` is the
    backbone's (inputs["model"]) and the head's: with dropout on, the resumed runs must reproduce its masks too."""
    epochs = 2 * kills + 1  # a kill lands within 2 epochs of the resume point: the run never ends before the last
    reference = finetune_reference(launcher, inputs, epochs, dropout)
    rng = random.Random(FAULT_SEED + 1000 + kills)
    resumed, landed = [], 0
    for k in range(kills):
        resume_epoch = last_epoch_dir(out)
        log = os.path.join(os.path.dirname(out), f"run-{k}.log")
        process = start(launcher, "finetune/run.py", finetune_args(inputs, out, epochs), log,
                        **head_dropout_env(dropout))
        deadline = time.time() + 240
        try:
            while process.poll() is None and time.time() < deadline:
                if any(e > resume_epoch for e in epochs_in_history(out)):
                    # somewhere in the next epoch: up to 1 s, but never past its end (on a fast idle machine an
                    # epoch takes under a second, and runs that each finished several epochs once completed all of
                    # them before the last kill)
                    kill_at = time.time() + rng.uniform(0.0, 1.0)
                    while time.time() < kill_at and not any(e > resume_epoch + 1 for e in epochs_in_history(out)):
                        time.sleep(0.01)
                    break
                time.sleep(0.01)
        finally:
            kill(process)
        text = open(log, encoding="utf-8", errors="replace").read()
        assert process.returncode == -signal.SIGKILL, f"run {k} ended on its own:\n{text[-3000:]}"
        assert time.time() < deadline, text[-3000:]
        landed += 1
        if resume_epoch:
            assert f"seed 1: resumed after epoch {resume_epoch}" in text, text[-3000:]
            resumed.append(resume_epoch)
    log = os.path.join(os.path.dirname(out), "final.log")
    rc, text = finish(start(launcher, "finetune/run.py", finetune_args(inputs, out, epochs), log,
                            **head_dropout_env(dropout)), log)
    assert rc == 0, text[-3000:]
    assert_same_outcome(finetune_outcome(out, epochs), reference)
    print(f"\nfine-tuning fault injection (seed {FAULT_SEED}, dropout {dropout}): {landed} SIGKILLs survived, "
          f"resumed after epochs "
          f"{resumed}; {epochs} epochs: dev metrics, last-epoch weights and optimizer state, best model identical to "
          f"the uninterrupted run")
    return landed


def test_finetuning_survives_3_sigkills(launcher, finetune_inputs, tmp_path):
    assert run_finetune_fault_test(launcher, finetune_inputs, str(tmp_path / "out"), 3) == 3


@pytest.mark.slow
def test_finetuning_survives_10_sigkills_with_dropout(launcher, finetune_inputs, tmp_path):
    """The long kill loop with dropout 0.1 in the backbone and the head, as real fine-tuning runs."""
    inputs = dict(finetune_inputs, model=make_model_dir(str(tmp_path / "model-dropout"), 0.1))
    assert run_finetune_fault_test(launcher, inputs, str(tmp_path / "out"), 10, dropout=0.1) == 10


def test_finetuning_killed_while_writing_an_epoch_checkpoint_resumes(launcher, finetune_inputs, tmp_path):
    out = str(tmp_path / "out")
    log = str(tmp_path / "run.log")
    process = start(launcher, "finetune/run.py", finetune_args(finetune_inputs, out, 3), log,
                    FI_HEAD_DROPOUT=0.0, FI_KILL_AT="epoch-checkpoint-half-written", FI_AFTER=1)
    rc, text = finish(process, log)
    assert rc == -signal.SIGKILL, text[-3000:]
    rc, text = finish(start(launcher, "finetune/run.py", finetune_args(finetune_inputs, out, 3), log,
                            FI_HEAD_DROPOUT=0.0), log)
    assert rc == 0, text[-3000:]
    assert_same_outcome(finetune_outcome(out, 3), finetune_reference(launcher, finetune_inputs, 3))


@pytest.mark.slow
def test_finetuning_resume_with_dropout_is_identical(launcher, finetune_inputs, tmp_path):
    inputs = dict(finetune_inputs, model=make_model_dir(str(tmp_path / "model-dropout"), 0.1))
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    log = str(tmp_path / "run.log")
    rc, text = finish(start(launcher, "finetune/run.py", finetune_args(inputs, straight, 3), log), log)
    assert rc == 0, text[-3000:]
    process = start(launcher, "finetune/run.py", finetune_args(inputs, resumed, 3), log)
    try:
        while process.poll() is None and 1 not in epochs_in_history(resumed):
            time.sleep(0.01)
    finally:
        kill(process)
    rc, text = finish(start(launcher, "finetune/run.py", finetune_args(inputs, resumed, 3), log), log)
    assert rc == 0 and "resumed after epoch" in text, text[-3000:]
    assert_same_outcome(finetune_outcome(resumed, 3), finetune_outcome(straight, 3))
