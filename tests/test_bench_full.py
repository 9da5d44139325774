"""benchmarks/higgs_full.py on a small sample, so that the full-size benchmark cannot rot:
every step runs through the CLI, the table is written as JSON and Markdown, and a step
that fails is one row with its own error line."""
from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "higgs_full.py")


def bench(tmp_path, *flags):
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    env.pop("MLFLOW_TRACKING_URI", None)  # the script's own sqlite store under --out
    return subprocess.run([sys.executable, SCRIPT, "--workdir", str(tmp_path / "work"),
                           "--out", str(tmp_path / "out"), *flags], env=env,
                          capture_output=True, text=True, timeout=900)


def test_small_sample_end_to_end(tmp_path):
    result = bench(tmp_path, "--rows", "20000", "--epochs", "1",
                   "--engines", "keras,horovod,bigdl,torch")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    steps = {s["step"]: s for s in json.load(open(tmp_path / "out" / "higgs_full.json"))["steps"]}
    assert list(steps) == ["generate", "convert", "train keras", "train horovod", "train bigdl",
                           "train torch"]
    for name in ("generate", "convert", "train keras", "train horovod", "train bigdl"):
        step = steps[name]
        assert step["status"] == "ok" and step["wall_s"] > 0 and step["rows_per_s"] > 0, step
        assert step["peak_rss_mb"] > 50, step  # at least the driver's interpreter
    for name in ("convert", "train keras", "train horovod", "train bigdl"):
        assert steps[name]["fraction"] > 0, steps[name]  # of pyarrow / the FLOP ceiling
    assert steps["train torch"]["status"].startswith("skipped") or \
        steps["train torch"]["status"] == "ok"
    markdown = (tmp_path / "out" / "higgs_full.md").read_text()
    assert "| train horovod |" in markdown and "| step | wall time (s) |" in result.stdout


def test_a_failing_step_is_one_row_with_its_error(tmp_path):
    bad = tmp_path / "bad.csv"
    good = ",".join(["1"] + ["0.5"] * 28) + "\n"
    bad.write_text(good * 40 + good.replace("0.5", "x", 1) + good * 40)  # line 41, field 2
    result = bench(tmp_path, "--input", str(bad), "--engines", "keras", "--no-pyarrow")
    assert result.returncode == 1
    steps = json.load(open(tmp_path / "out" / "higgs_full.json"))["steps"]
    assert steps[0]["step"] == "convert" and steps[0]["status"].startswith(
        "FAILED (exit 2): hepspark: error:"), steps[0]
    assert "bad.csv" in steps[0]["status"]
    assert steps[1] == {**steps[1], "step": "train keras",
                        "status": "skipped: no dataset (convert failed)"}
