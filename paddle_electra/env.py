"""CPU performance settings that must be in the environment before Paddle is imported.

Paddle sets OMP_NUM_THREADS=1 when it is unset (dygraph then uses one core), and the Intel MKL it ships takes a slow
generic path on AMD CPUs unless MKL_DEBUG_CPU_TYPE=5 (measured here: 2048^2 matmul ~87 -> ~250 GFLOP/s). We set
both, never overriding a value the user has set; PADDLE_ELECTRA_NO_ENV=1 turns this off.

Paddle 3's strided ("view") kernels are turned off (FLAGS_use_stride_kernel=0): with them a transpose is a view, and
the reshape after it, plus the backward of both, run Paddle's generic strided copy, which on this CPU made the
training step 1.30x slower at the demo's shape and 1.50x at the official small shape
(`python -m bench.profile_step`, bench/results/profile_step*.md). Without them every op sees contiguous tensors, as
in Paddle 2.5 and earlier; the results are the same numbers. Set through the environment before Paddle is imported,
and with paddle.set_flags when Paddle came first (`apply_paddle_flags`, called where paddle_electra imports Paddle).

glibc's malloc hands every block over 128 KiB (later: over the size of the last such block freed) straight to mmap
and gives it back on free, so each new activation or gradient tensor of a training step starts as fresh pages, and
on this VM the page faults cost more than the arithmetic: a same-shape add of 4,096 x 1,024 floats took 5.6 ms
instead of 0.26, a 4,096 x 256 x 1,024 matmul with its backward 55 ms instead of 35 (`python -m bench.profile_ops`).
`tune_malloc` keeps blocks up to 32 MiB (glibc's ceiling) on the heap and freed memory in the process
(mallopt; the same as MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ / MALLOC_TOP_PAD_, which a user's own
settings of win over), at the price of a resident size that stays at its peak.
"""
import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc malloc.h
MALLOC_SETTINGS = {M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 1 << 30, M_TOP_PAD: 256 << 20}
_MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")


def tune_malloc() -> bool:
    """glibc malloc settings for a training process (see the module docstring); False where not applied (not glibc,
    the user set malloc options, or PADDLE_ELECTRA_NO_ENV=1)."""
    if os.environ.get("PADDLE_ELECTRA_NO_ENV") == "1" or not sys.platform.startswith("linux") or \
            any(name in os.environ for name in _MALLOC_ENV):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return all(libc.mallopt(option, value) == 1 for option, value in MALLOC_SETTINGS.items())
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False


def _is_amd_cpu() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            head = f.read(4096)
    except OSError:
        return False
    return "AuthenticAMD" in head


PADDLE_FLAGS = {"FLAGS_use_stride_kernel": False}


def apply_paddle_flags() -> dict:
    """PADDLE_FLAGS through paddle.set_flags, for a process that imported Paddle before paddle_electra; a flag the user
    set in the environment is left alone. Returns what was set."""
    if os.environ.get("PADDLE_ELECTRA_NO_ENV") == "1":
        return {}
    import paddle
    wanted = {flag: value for flag, value in PADDLE_FLAGS.items() if flag not in os.environ}
    current = paddle.get_flags(list(wanted)) if wanted else {}
    changed = {flag: value for flag, value in wanted.items() if current.get(flag) != value}
    if changed:
        paddle.set_flags(changed)
    return changed


def configure(num_threads=None) -> dict:
    """Set the thread count and the MKL CPU type; returns what was set. No effect once Paddle is imported."""
    changed = {}
    if os.environ.get("PADDLE_ELECTRA_NO_ENV") == "1":
        return changed
    if "OMP_NUM_THREADS" not in os.environ:
        available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        n = num_threads or available
        changed["OMP_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(n or 1)
    if "MKL_DEBUG_CPU_TYPE" not in os.environ and _is_amd_cpu():
        changed["MKL_DEBUG_CPU_TYPE"] = os.environ["MKL_DEBUG_CPU_TYPE"] = "5"
    for flag, value in PADDLE_FLAGS.items():
        if flag not in os.environ:
            changed[flag] = os.environ[flag] = "1" if value else "0"
    # quiet, offline defaults for the libraries we drive
    os.environ.setdefault("GLOG_minloglevel", "2")
    return changed


def paddle_already_imported() -> bool:
    return "paddle" in sys.modules
