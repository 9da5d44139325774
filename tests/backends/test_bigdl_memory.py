"""BigDL's training cache: the plan made before any data is read (real arithmetic, no
Spark), and a really provoked out-of-memory stop through the CLI (a real JVM with a small
heap), reported as such and not as a resumable failure."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hepspark.backends.bigdl_memory import MAX_SLICES, plan_cache, sample_bytes

# Spark storage memory of a 4g driver JVM (Spark reports it as the block manager's max)
STORAGE_4G = 2_388_236_697


def test_a_split_that_fits_is_cached_in_memory():
    plan = plan_cache(1_000_000, 29, STORAGE_4G)
    assert (plan.level, plan.slices) == ("DRAM", 1)
    assert plan.bytes_needed == 1_000_000 * sample_bytes(29)
    assert plan.params()["bigdl_cache"] == "DRAM"


def test_the_full_higgs_split_at_the_default_memory_goes_to_disk_slices():
    # 10.5M rows x 29 floats: ~3 GB of samples, more than a 4g driver's storage memory
    plan = plan_cache(10_500_000, 29, STORAGE_4G)
    assert plan.level == "DISK_AND_DRAM" and 2 <= plan.slices <= MAX_SLICES
    assert plan.bytes_needed / plan.slices <= plan.bytes_available
    assert plan.params()["bigdl_cache"] == f"DISK_AND_DRAM/{plan.slices}"


def test_a_split_too_large_even_in_slices_is_refused_naming_memory_and_flag():
    with pytest.raises(ValueError) as info:
        plan_cache(100_000_000, 29, 200_000_000, memory_flag="--executor-memory")
    text = str(info.value)
    assert "\n" not in text
    assert "100,000,000 training rows" in text and "--executor-memory" in text
    # the memory it asks for does fit the split in MAX_SLICES slices
    asked = int(text.split("give it at least ")[1].split("g")[0]) * 2**30
    storage = (asked - 300 * 2**20) * 0.6
    plan_cache(100_000_000, 29, int(storage))  # no longer refused


def test_out_of_memory_is_one_line_naming_the_process_and_setting(higgs_dataset, tmp_path):
    """A really exhausted heap: a 512m driver JVM (local mode: the executors run in it)
    training a 3 x 4096 network (50M parameters, 200 MB per copy; BigDL keeps several per
    core). Exit 2 with one line, not the resumable exit 4."""
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable,
           "HEPSPARK_DRIVER_MEMORY": "512m"}
    cmd = [sys.executable, "-m", "hepspark.cli", "train", "higgs", "--data", higgs_dataset,
           "--backend", "bigdl", "--master", "local[2]", "--width", "4096", "--depth", "3",
           "--batch-size", "200", "--epochs", "1", "--checkpoint-dir", str(tmp_path / "ckpt"),
           "--experiment", "oom", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("hepspark:")]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert "out of memory in the driver's JVM" in lines[0], lines[0]
    assert "HEPSPARK_DRIVER_MEMORY" in lines[0] and "--resume" not in lines[0].split(";")[0]


def test_a_lost_executor_is_told_apart_from_other_failures():
    # the driver's view of an executor killed by its OutOfMemoryError (BigDL CNN on 1g
    # executors): only the lost shuffle output reaches the exception
    from hepspark.backends.bigdl_compat import executor_lost

    lost = RuntimeError("Job aborted due to stage failure: org.apache.spark.shuffle."
                        "MetadataFetchFailedException: Missing an output location for "
                        "shuffle 1 partition 0")
    try:
        raise ValueError("BigDL training failed") from lost
    except ValueError as wrapped:
        assert executor_lost(wrapped)
    assert not executor_lost(RuntimeError("Py4JJavaError: division by zero"))
