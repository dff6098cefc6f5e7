"""CPU performance settings that must be in the environment before Paddle is imported.

Paddle sets OMP_NUM_THREADS=1 when it is unset (dygraph then uses one core), and the Intel MKL it ships takes a slow
generic path on AMD CPUs unless MKL_DEBUG_CPU_TYPE=5 (measured here: 2048^2 matmul ~87 -> ~250 GFLOP/s). We set
both, never overriding a value the user has set; PADDLE_ELECTRA_NO_ENV=1 turns this off.
"""
import os
import sys


def _is_amd_cpu() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            head = f.read(4096)
    except OSError:
        return False
    return "AuthenticAMD" in head


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
    # quiet, offline defaults for the libraries we drive
    os.environ.setdefault("GLOG_minloglevel", "2")
    return changed


def paddle_already_imported() -> bool:
    return "paddle" in sys.modules
