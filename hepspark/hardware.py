"""What machine a measurement ran on (logged next to every timing)."""
from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``), or the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    """Cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# Dense-network training costs about 6 flops per weight per row: 2 in the forward pass
# (multiply-add), 4 in the backward pass (gradients of the inputs and of the weights).
FLOPS_PER_WEIGHT_PER_ROW = 6.0

_MATMUL_PROBE = """
import time, numpy as np
a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32); b = a.copy(); a @ b
n, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < {seconds}:
    a @ b; n += 1
print(2 * 1024**3 * n / (time.perf_counter() - t0) / 1e9)
"""


def matmul_gflops(threads: int = 1, seconds: float = 2.0) -> float:
    """Measured fp32 matmul rate (GFLOP/s) of numpy's BLAS on ``threads`` cores.

    Run in a fresh interpreter, because BLAS fixes its thread count at import. One thread
    gives the per-core rate the scaling report multiplies by the cores a run used: the
    machine's FLOP ceiling for that run (2 cores here: about 90 per core, 175 on both).

    >>> matmul_gflops(threads=1)  # doctest: +SKIP
    90.6
    """
    import subprocess
    import sys

    env = {**os.environ, **{name: str(threads) for name in (
        "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
    out = subprocess.run(
        [sys.executable, "-c", _MATMUL_PROBE.format(seconds=seconds)],
        env=env, capture_output=True, text=True, check=True, timeout=120,
    )
    return float(out.stdout.strip().splitlines()[-1])


def training_ceiling_rows_per_s(n_parameters: int, gflops: float) -> float:
    """Rows/s a dense network of ``n_parameters`` weights could train at ``gflops``."""
    return gflops * 1e9 / (FLOPS_PER_WEIGHT_PER_ROW * n_parameters)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
