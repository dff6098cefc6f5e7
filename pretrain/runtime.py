"""Process-level plumbing of a pretraining run: device precision, fleet set-up and all-reduce, stop signals, logs."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time

import numpy as np

import paddle_electra  # noqa: F401  (CPU environment before paddle)
import paddle

from paddle_electra.errors import EXIT_ERROR, PeerLostError
from pretrain.evaluate import format_result


def resolve_amp(choice: str):
    """None (fp32), "bfloat16" or "float16" for the current device."""
    on_gpu = paddle.device.get_device().startswith("gpu")
    if choice == "auto":
        return ("bfloat16" if paddle.amp.is_bfloat16_supported() else "float16") if on_gpu else None
    return {"none": None, "bf16": "bfloat16", "fp16": "float16"}[choice]


def init_distributed():
    """(world_size, rank); fleet collective mode when launched by paddle.distributed.launch with > 1 process."""
    if int(os.environ.get("PADDLE_TRAINERS_NUM", "1")) > 1:
        from paddle.distributed import fleet
        fleet.init(is_collective=True)
        return paddle.distributed.get_world_size(), paddle.distributed.get_rank()
    return 1, 0


def all_reduce_sum(values, world_size):
    """Sum a float64 vector over ranks."""
    values = np.asarray(values, dtype=np.float64)
    if world_size == 1:
        return values
    tensor = paddle.to_tensor(values)
    paddle.distributed.all_reduce(tensor)
    return tensor.numpy()


# gloo (CPU) gives up on a receive after a fixed 30 s and aborts the process from C++ with a stack dump; the
# watchdog answers first with one clear line. NCCL's own timeout is 30 minutes (PADDLE_PG_TIMEOUT).
PEER_TIMEOUT_S = {"gloo": 25.0, "nccl": 600.0}
# what a collective raises when the other end went away (gloo: "Connection closed by peer", "TIMEOUT"; NCCL)
PEER_ERROR_WORDS = ("gloo", "nccl", "connection", "timeout", "socket", "peer")


class PeerWatchdog:
    """Ends a distributed run within a bounded time when another rank dies or hangs, with one line naming what this
    rank was waiting for and how to resume, instead of a hang or a C++ abort.

    The training loop calls `beat()` at every step; rank-local work that may take long (evaluation, writing a
    checkpoint, export) runs inside `paused()`. A daemon thread ends the process (exit status 2, the commands'
    error status) when no beat came for `timeout_s` seconds outside a pause; a collective that fails outright (the
    other end closed its connection: a killed process) is turned into PeerLostError by `guard()`."""

    def __init__(self, rank: int, world: int, timeout_s: float, resume_hint: str):
        self.rank, self.world, self.timeout_s, self.resume_hint = rank, world, timeout_s, resume_hint
        self.step = 0
        self._last = time.monotonic()
        self._paused = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = None
        if world > 1 and timeout_s > 0:
            self._thread = threading.Thread(target=self._watch, name="peer-watchdog", daemon=True)
            self._thread.start()

    def message(self, what: str) -> str:
        return (f"rank {self.rank} of {self.world}: {what} at step {self.step}: another process or node of this "
                f"run stopped or stopped answering; the job stops here. {self.resume_hint}")

    def beat(self, step: int):
        with self._lock:
            self.step, self._last = step, time.monotonic()

    @contextlib.contextmanager
    def paused(self):
        with self._lock:
            self._paused += 1
        try:
            yield
        finally:
            with self._lock:
                self._paused -= 1
                self._last = time.monotonic()

    @contextlib.contextmanager
    def guard(self):
        """Collective errors inside become PeerLostError (other RuntimeErrors pass through unchanged)."""
        try:
            yield
        except RuntimeError as err:
            text = str(err).lower()
            if self.world > 1 and any(word in text for word in PEER_ERROR_WORDS):
                first = next((line.strip() for line in str(err).splitlines() if line.strip()), "")
                raise PeerLostError(self.message(f"a collective call failed ({first[:160]})")) from None
            raise

    def stop(self):
        self._stopped.set()

    def _watch(self):
        while not self._stopped.wait(0.5):
            with self._lock:
                idle = time.monotonic() - self._last
                late = self._paused == 0 and idle > self.timeout_s
            if late:
                print("error: " + self.message(f"no answer from the other ranks for {idle:.0f} s "
                                               f"(peer timeout {self.timeout_s:g} s)"), file=sys.stderr, flush=True)
                os._exit(EXIT_ERROR)


def peer_timeout(configured) -> float:
    """Seconds a rank waits for the others (config `peer_timeout_s`; None: by backend, see PEER_TIMEOUT_S)."""
    if configured is not None:
        return float(configured)
    return PEER_TIMEOUT_S["nccl" if paddle.device.get_device().startswith("gpu") else "gloo"]


def all_reduce_gradients(params):
    """Sum every parameter's gradient over the ranks, in one all-reduce of one flat buffer (the same parameters have
    gradients on every rank: one model, one loss). A parameter without a gradient contributes zeros and keeps none."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = paddle.concat([g.reshape([-1]) for g in grads])
    paddle.distributed.all_reduce(flat)
    offset = 0
    for g in grads:
        size = int(np.prod(g.shape))
        g.set_value(flat[offset:offset + size].reshape(g.shape))
        offset += size


class StopFlag:
    """SIGTERM/SIGINT ask for a clean stop (checkpoint, export) at the next step boundary; a 2nd SIGINT aborts."""

    def __init__(self):
        self.reason = None
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.reason = signal.Signals(signum).name


def read_jsonl(path, max_step=None) -> list:
    """Records of a jsonl log (optionally only those up to max_step); stops at a line cut short by a kill."""
    if not os.path.exists(path):
        return []
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut by a kill: everything after it is lost anyway
            if max_step is None or record["step"] <= max_step:
                records.append(record)
    return records


def format_summary(s: dict) -> str:
    """The final summary as printed at the end of a run."""
    last = s["last"] or {}
    lines = [f"\n=== pretraining summary: {s['steps']} steps ({s['stopped']}), world {s['world_size']}, global batch "
             f"{s['global_batch']} x {s['seq_len']}, {s['amp']}, {s['wall_seconds'] / 60:.1f} min, "
             f"{s['tokens_per_s']:.0f} tokens/s, peak RSS {s['peak_rss_mb']:.0f} MB"]
    if last:
        lines.append(f"last step: loss {last['loss']:.4f} (gen {last['gen_loss']:.4f}, disc {last['disc_loss']:.4f}),"
                     f" gen acc {100 * last['gen_acc']:.2f}%, disc acc {100 * last['disc_acc']:.2f}%, lr "
                     f"{last['lr']:.3g}, grad norm {last['grad_norm']:.3f}")
    if s["eval"]:
        lines.append(format_result(s["eval"]))
    if s["export"]:
        lines.append(f"exported: {s['export']['discriminator']}, {s['export']['generator']}")
    return "\n".join(lines)
