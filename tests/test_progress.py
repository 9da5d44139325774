"""Live progress (hepspark.progress): the class itself, Spark's task counts, and the real
commands run in subprocesses without a terminal, where progress is a line per interval
with done/total and an ETA."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from hepspark.progress import Progress, SparkProgress, format_duration, predict_with_progress

# "[label] 12,345/100,000 rows   12%  1,234 rows/s  ETA 1m05s"
LINE = re.compile(r"^\[(?P<label>[\w-]+)\] (?P<done>[\d,]+)/(?P<total>[\d,]+) (?P<unit>\w+) "
                  r".*ETA (?P<eta>\?|\d+s|\d+m\d\ds|\d+h\d\dm)$", re.M)
FINAL = re.compile(r"^\[(?P<label>[\w-]+)\] (?P<done>[\d,]+)/(?P<total>[\d,]+) \w+ .*done in ",
                   re.M)


def test_lines_when_not_a_terminal_and_a_bar_on_one():
    log = io.StringIO()
    with Progress("step", 1000, "rows", stream=log, interval_s=0, tty=False) as bar:
        for _ in range(4):
            bar.advance(250)
    lines = log.getvalue().splitlines()
    assert [m["done"] for m in LINE.finditer(log.getvalue())] == ["250", "500", "750", "1,000"]
    assert FINAL.match(lines[-1]) and len(lines) == 5
    assert "ETA 0s" in lines[3]  # all done: nothing left

    terminal = io.StringIO()
    with Progress("step", 10, "rows", stream=terminal, tty=True) as bar:
        bar.advance(5)
    text = terminal.getvalue()
    assert text.startswith("\r\x1b[K[step] [############............] 5/10 rows")
    assert text.endswith("\n") and text.count("\n") == 1  # redrawn in place, one newline


def test_lines_are_throttled_and_can_be_switched_off():
    log = io.StringIO()
    with Progress("step", 100, stream=log, interval_s=3600, tty=False) as bar:
        for _ in range(100):
            bar.advance()
    assert len(log.getvalue().splitlines()) == 1  # only the final line within an hour
    quiet = io.StringIO()
    with Progress("step", 100, stream=quiet, interval_s=0, tty=False, enabled=False) as bar:
        bar.advance(50)
    assert quiet.getvalue() == ""
    assert [format_duration(s) for s in (5, 65, 7320)] == ["5s", "1m05s", "2h02m"]


def test_emit_gets_the_lines_and_predict_in_chunks():
    lines: list[str] = []
    scores = predict_with_progress(lambda x: x * 2, np.arange(10), chunk_rows=3)
    assert scores.tolist() == [2 * i for i in range(10)]
    with Progress("x", 4, "runs", emit=lines.append, interval_s=0, tty=False) as bar:
        bar.advance(3)
    assert lines[0].startswith("[x] 3/4 runs") and "done in" in lines[-1]


def test_spark_progress_counts_the_tasks_of_every_stage(spark):
    log = io.StringIO()
    with SparkProgress(spark, "spark", stream=log, interval_s=0, tty=False) as watch:
        spark.sparkContext.parallelize(range(1000), 7).map(lambda x: x * x).sum()
        spark.sparkContext.parallelize(range(10), 3).count()
    final = log.getvalue().splitlines()[-1]
    assert FINAL.match(final), log.getvalue()
    assert watch.progress.done == watch.progress.total >= 10  # both jobs' tasks, all done


# ----------------------------------------------------------- the real commands, no TTY
def run(args, cwd, timeout=600):
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable,
           "MLFLOW_TRACKING_URI": f"sqlite:///{cwd}/mlflow.db"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run([sys.executable, "-m", "hepspark", *args, "--progress-interval-s",
                           "0"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def progress_lines(result, label):
    found = [m for m in LINE.finditer(result.stdout + result.stderr) if m["label"] == label]
    assert found, f"no [{label}] progress line in:\n{result.stdout}\n{result.stderr[-3000:]}"
    return found


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """`hepspark generate higgs` then `convert higgs` on a small sample: progress lines."""
    tmp = tmp_path_factory.mktemp("progress")
    generated = run(["generate", "higgs", "--rows", "25000", "--output", "h.csv.gz"], tmp)
    assert generated.returncode == 0, generated.stderr[-3000:]
    chunks = progress_lines(generated, "generate")  # one line per 100,000-row chunk
    assert chunks[-1]["done"] == chunks[-1]["total"] == "25,000"
    converted = run(["convert", "higgs", "--input", "h.csv.gz", "--output", "data",
                     "--master", "local[2]"], tmp)
    assert converted.returncode == 0, converted.stderr[-3000:]
    tasks = progress_lines(converted, "convert")
    assert all(m["unit"] == "tasks" for m in tasks)
    return tmp, generated, converted


def test_generate_and_convert_show_progress(converted):
    _, generated, converted_run = converted
    assert any(m["eta"] != "?" for m in progress_lines(generated, "generate"))
    assert FINAL.search(converted_run.stdout + converted_run.stderr)


@pytest.mark.parametrize("backend", ["keras", "horovod", "torch"])
def test_training_shows_steps_and_ranks_are_quiet(converted, backend):
    """Training steps with an ETA, then the evaluation; Horovod's and torch's come from rank
    0's heartbeats, and the ranks print none of TensorFlow's import-time INFO lines."""
    if backend == "torch":
        pytest.importorskip("torch", reason="PyTorch is opt-in: 'make install-torch'")
    tmp = converted[0]
    flags = ["--backend", backend, "--executors", "2", "--master", "local[2]"] \
        if backend != "keras" else []
    result = run(["train", "higgs", "--data", "data", "--epochs", "2", "--batch-size", "500",
                  *flags], tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    steps = progress_lines(result, "train")
    total = int(steps[-1]["total"])
    assert steps[-1]["unit"] == "steps" and total >= 2 * 10 and total % 2 == 0  # 2 epochs
    assert any(m["eta"] != "?" for m in steps)
    assert any(int(m["done"].replace(",", "")) < total for m in steps)  # seen mid-run
    assert progress_lines(result, "evaluate")
    assert "oneDNN custom operations are on" not in result.stderr
    assert "absl::InitializeLog" not in result.stderr
