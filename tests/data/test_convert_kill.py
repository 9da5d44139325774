"""Kill `hepspark convert higgs --overwrite` (a real subprocess: Python driver + its JVM) at
seeded random points and check after every kill that

- whatever sits at the output path and looks complete (has hepspark_dataset.json) is a
  complete dataset: every split has the rows its metadata says;
- the dataset being replaced is never lost: it is at the output path, or (killed between
  the two renames of the swap) in a NAME.old-* sibling that the next run puts back;
- the next run cleans what the killed one left, and a final run succeeds.

Slow (one JVM start per kill): marked ``cluster``; run with ``make test-cluster``.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from hepspark.data.storage import METADATA_FILE

SEED = 8
KILLS = 12
ROWS = 20_000


def write_csv(path, rows: int) -> None:
    rng = np.random.default_rng(SEED)
    data = np.column_stack([(rng.random(rows) < 0.5).astype(float),
                            rng.normal(size=(rows, 28))])
    np.savetxt(path, data, fmt="%.7g", delimiter=",")


def convert_command(src, out) -> list[str]:
    return [sys.executable, "-m", "hepspark.cli", "convert", "higgs", "--input", str(src),
            "--output", str(out), "--overwrite", "--test-rows", "2000", "--no-checksum"]


def check_complete(path) -> int:
    """Rows of a dataset that looks complete; fails if any split disagrees with metadata."""
    meta = json.load(open(os.path.join(path, METADATA_FILE)))
    total = 0
    for split, info in meta["splits"].items():
        if info["rows"]:
            rows = pq.read_table(os.path.join(path, split)).num_rows
            assert rows == info["rows"], (path, split, rows, info["rows"])
            total += rows
    return total


def run_and_kill(src, out, stage: int, extra_s: float, env) -> tuple[str, list[str]]:
    """Start a conversion, kill its process group (driver + JVM) ``extra_s`` after its
    ``stage``-th output line; returns (what happened, the lines it printed)."""
    proc = subprocess.Popen(convert_command(src, out), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip())
            if len([x for x in lines if x.startswith("[convert]")]) >= stage:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while not seen.wait(0.05):
        if proc.poll() is not None:
            break
    time.sleep(extra_s)
    finished = proc.poll() is not None
    if not finished:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this test started: driver and JVM
    proc.wait()
    reader.join(timeout=10)
    deadline = time.monotonic() + 30  # the JVM is in the group too: wait until it is gone
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    return ("finished" if finished and proc.returncode == 0 else "killed"), lines


@pytest.mark.cluster
def test_killed_conversions_never_leave_a_false_complete_dataset_nor_lose_the_old(tmp_path):
    src = tmp_path / "higgs.csv"
    write_csv(src, ROWS)
    out = tmp_path / "ds"
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    first = subprocess.run(convert_command(src, out), capture_output=True, text=True, env=env,
                           timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert check_complete(out) == ROWS
    stages = [line for line in first.stdout.splitlines() if line.startswith("[convert]")]
    rng = random.Random(SEED)
    outcomes = {"killed": 0, "finished": 0}
    restored = cleaned = 0
    for _ in range(KILLS):
        (out / "old-marker").write_text("")  # identifies the dataset being replaced
        stage = rng.randrange(0, len(stages) + 1)  # 0: during startup
        what, lines = run_and_kill(src, out, stage, rng.uniform(0, 2.5), env)
        outcomes[what] += 1
        restored += sum("restored" in line for line in lines)
        cleaned += sum("deleted" in line and "interrupted" in line for line in lines)
        siblings = [p for p in os.listdir(tmp_path) if p.startswith("ds.")]
        if os.path.exists(out / METADATA_FILE):
            assert check_complete(out) == ROWS  # looks complete => is complete
        else:  # only possible between the two renames: the old one is aside, complete
            aside = [p for p in siblings if p.startswith("ds.old-")]
            assert aside and os.path.exists(tmp_path / aside[0] / "old-marker"), siblings
        if what == "finished":
            assert not (out / "old-marker").exists()  # replaced by the new dataset
    final = subprocess.run(convert_command(src, out), capture_output=True, text=True,
                           env=env, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    assert check_complete(out) == ROWS
    assert [p for p in os.listdir(tmp_path) if p.startswith("ds.")] == []  # nothing left
    print(f"\n[kill] {KILLS} conversions started: {outcomes['killed']} killed, "
          f"{outcomes['finished']} finished before the kill; old dataset restored "
          f"{restored} time(s), leftovers cleaned {cleaned} time(s) by the next run; "
          "0 false-complete datasets, 0 datasets lost; final run succeeded")
