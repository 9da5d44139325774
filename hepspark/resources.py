"""Peak resident memory (RSS) of the processes a run uses, for MLflow: the driver's Python,
its JVM, each executor JVM and the Python workers under it. Every engine reports through
:func:`peak_rss_metrics`, so the metric names are the same everywhere:
``peak_rss_mb_<process>`` (``driver_python``, ``driver_jvm``, ``executor_<host>_<pid>``,
``python_workers``, ``rank<N>`` for a rank's own process).

Linux only (``/proc/<pid>/status`` ``VmHWM``); elsewhere the values are left out, never
guessed.

>>> metrics = peak_rss_metrics({"driver_python": peak_rss_mb()})
>>> sorted(metrics)
['peak_rss_mb_driver_python']
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

from hepspark.hardware import peak_rss_mb

__all__ = ["peak_rss_mb", "peak_rss_metrics", "process_peak_rss_mb", "spark_peak_rss_mb"]

METRIC_PREFIX = "peak_rss_mb_"


def process_peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory of process ``pid`` so far (``VmHWM``), in MB; None where the
    process or ``/proc`` cannot be read (gone, another OS)."""
    try:
        with open(f"/proc/{int(pid)}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_metrics(values: Mapping[str, float | None]) -> dict[str, float]:
    """``{process: MB}`` as MLflow metric names; unknown values (None) are left out."""
    return {METRIC_PREFIX + _metric_safe(name): round(float(mb), 1)
            for name, mb in values.items() if mb is not None}


def _metric_safe(name: str) -> str:
    # MLflow metric names allow letters, digits, _ - . / and spaces; hosts carry ':' etc.
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def spark_peak_rss_mb(spark: "SparkSession") -> dict[str, float | None]:
    """Peak RSS of the driver's Python and JVM and of every executor JVM and its Python
    workers, read at the end of a run.

    The driver's JVM is the gateway's process; executors are reached with one small task
    per core (a task's Python worker is a grandchild of its executor JVM: JVM -> pyspark
    daemon -> worker). In local mode the executor is the driver's JVM and is not repeated.
    A Python worker's own peak is the largest of the workers that ran those tasks.
    """
    sc = spark.sparkContext
    driver_jvm_pid = int(sc._jvm.java.lang.ProcessHandle.current().pid())
    values: dict[str, float | None] = {
        "driver_python": peak_rss_mb(),
        "driver_jvm": process_peak_rss_mb(driver_jvm_pid),
    }
    tasks = max(sc.defaultParallelism, 1)
    reports = (sc.parallelize(range(tasks), tasks)
               .mapPartitions(lambda _: [_executor_report()]).collect())
    workers = [r["worker_mb"] for r in reports if r["worker_mb"] is not None]
    if workers:
        values["python_workers"] = max(workers)
    for report in reports:
        if report["jvm_pid"] is None or (report["jvm_pid"] == driver_jvm_pid
                                         and report["host"] == os.uname().nodename):
            continue
        values[f"executor_{report['host']}_{report['jvm_pid']}"] = report["jvm_mb"]
    return values


def _executor_report() -> dict:
    """Run in a Spark task: this worker's peak and its executor JVM's (the daemon's
    parent)."""
    daemon = os.getppid()
    jvm_pid = _parent_pid(daemon)
    return {"host": os.uname().nodename, "jvm_pid": jvm_pid,
            "jvm_mb": process_peak_rss_mb(jvm_pid) if jvm_pid else None,
            "worker_mb": peak_rss_mb()}


def _parent_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # the command name may hold spaces or ')': the fields after the last ')' count
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
