"""benchmarks/step_curve.py on a tiny sample, so that the measurement cannot rot: each
engine's step is timed pinned at every batch size, and the model reads the file as is."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hepspark.bench.perfmodel import load_step_curve

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "step_curve.py")


@pytest.mark.parametrize("engine", ["horovod", "torch"])
def test_step_curve_benchmark_runs(tmp_path, engine):
    out = tmp_path / "curve.json"
    done = subprocess.run([sys.executable, SCRIPT, f"--{engine}", "--rows", "2000",
                           "--epochs", "1", "--batch-sizes", "250,1000", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["engine"] == engine and result["cpu"] in os.sched_getaffinity(0)
    assert [p["batch_size"] for p in result["points"]] == [250, 1000]
    assert [p["steps"] for p in result["points"]] == [8, 2]  # every step of the epoch timed
    assert "per row vs 1000" in done.stdout
    curve = load_step_curve(str(out))
    assert curve.engine == engine and curve.row_weight(1000) == pytest.approx(1.0)
    assert all(t > 0 for t in curve.step_s)


@pytest.mark.parametrize("argv, message", [
    (["--horovod", "--batch-sizes", "1000"], "need two or more batch sizes"),
    (["--torch", "--batch-sizes", "500,x"], "not a comma-separated list"),
    (["--horovod", "--rows", "100", "--batch-sizes", "50,500"], "500 is more than --rows"),
    (["--batch-sizes", "500,1000"], "one of the arguments --horovod --torch is required"),
])
def test_bad_arguments_get_one_line(argv, message):
    done = subprocess.run([sys.executable, SCRIPT, *argv], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0 and message in done.stderr
    assert "Traceback" not in done.stderr
