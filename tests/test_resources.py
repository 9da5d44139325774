"""Peak RSS per process (hepspark.resources): this process, the local Spark JVM and its
Python workers, read from /proc of real processes."""
from __future__ import annotations

import os
import subprocess
import sys

from hepspark.resources import peak_rss_metrics, process_peak_rss_mb, spark_peak_rss_mb

TOUCH_64_MIB = """
import sys
import numpy as np
print("ready", flush=True)
sys.stdin.readline()
block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
print("touched", flush=True)
sys.stdin.readline()
"""


def test_peak_rss_of_a_process_grows_with_what_it_touched():
    # A fresh child: the high-water mark only grows past its old peak, and this pytest
    # process's earlier tests may have freed far more than 64 MiB (CI once had it at 1.7 GB).
    child = subprocess.Popen([sys.executable, "-c", TOUCH_64_MIB], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        before = process_peak_rss_mb(child.pid)
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "touched"
        after = process_peak_rss_mb(child.pid)
        assert before is not None and after is not None and after >= before + 50, (before, after)
    finally:
        child.kill()
        child.wait()
    assert process_peak_rss_mb(os.getpid()) > 0
    assert process_peak_rss_mb(2**22 + 12345) is None  # no such process


def test_spark_peak_rss_names_driver_python_jvm_and_workers(spark):
    values = spark_peak_rss_mb(spark)
    assert values["driver_python"] > 10 and values["driver_jvm"] > 100
    assert values["python_workers"] > 5
    # local mode: the executor is the driver's JVM, not listed twice
    assert not any(name.startswith("executor_") for name in values)
    metrics = peak_rss_metrics({**values, "rank0": 12.34, "host:1": 1.0, "gone": None})
    assert metrics["peak_rss_mb_rank0"] == 12.3 and "peak_rss_mb_host_1" in metrics
    assert "peak_rss_mb_gone" not in metrics
