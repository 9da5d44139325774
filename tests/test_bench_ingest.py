"""benchmarks/higgs_ingest.py on a small generated sample, so that the ingest benchmark
cannot rot: both formats, pyarrow as it runs and pinned to one core, the ratio columns."""
from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "higgs_ingest.py")


def test_ingest_benchmark_prints_both_references(tmp_path):
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    done = subprocess.run([sys.executable, SCRIPT, "--rows", "3000", "--workdir", str(tmp_path),
                           "--master", "local[2]"], capture_output=True, text=True, timeout=900,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("input"))
    assert header.split() == ["input", "MB", "pyarrow", "s", "1", "core", "s", "ours", "s",
                              "MB/s", "ratio", "per", "core", "pyarrow", "cpu", "s", "our",
                              "cpu", "s", "cpu", "ratio"]
    rows = {line.split()[0]: line.split() for line in lines if line.split()[:1] in
            (["csv.gz"], ["csv"])}
    assert set(rows) == {"csv.gz", "csv"}
    for values in rows.values():
        numbers = [float(v) for v in values[1:]]
        assert len(numbers) == 10 and all(n > 0 for n in numbers), values
    assert (tmp_path / "ingest-hepspark" / "hepspark_dataset.json").exists()
