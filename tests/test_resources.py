"""Peak RSS per process (hepspark.resources): this process, the local Spark JVM and its
Python workers, read from /proc of real processes."""
from __future__ import annotations

import os

import numpy as np

from hepspark.resources import peak_rss_metrics, process_peak_rss_mb, spark_peak_rss_mb


def test_peak_rss_of_a_process_grows_with_what_it_touched():
    before = process_peak_rss_mb(os.getpid())
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    after = process_peak_rss_mb(os.getpid())
    assert before is not None and after is not None and after >= before + 50
    assert block.sum() > 0
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
