"""Kill `hepspark convert higgs --overwrite` (a real subprocess: Python driver + its JVM) at
chosen or seeded random points and check after every kill that

- a kill happened in the round (the conversion did not finish first);
- whatever sits at the output path and looks complete (has hepspark_dataset.json) is a
  complete dataset: every split has the rows its metadata says;
- the dataset being replaced is never lost: it is at the output path byte for byte, or
  (killed between the two renames of the swap) in a NAME.old-* sibling that the next run
  puts back byte for byte; each round converts the *other* of two different inputs, so
  a mix of the old and the new dataset cannot pass;
- the next run cleans what the killed one left, and a final run succeeds.

Three kills at fixed points (startup, mid-write, at the publish) run in ``make test``;
twelve at seeded random points are marked ``cluster`` (``make test-cluster``).
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

from hepspark.data import storage
from hepspark.data.storage import METADATA_FILE

SEED = 8
KILLS = 12
ROWS = {"a": 20_000, "b": 16_000}  # two different inputs: old and new always differ


def write_csv(path, rows: int, seed: int = SEED) -> None:
    rng = np.random.default_rng(seed)
    data = np.column_stack([(rng.random(rows) < 0.5).astype(float),
                            rng.normal(size=(rows, 28))])
    np.savetxt(path, data, fmt="%.7g", delimiter=",")


def digest(path) -> dict[str, str]:
    """SHA-256 of every file under ``path`` (relative names): byte-for-byte identity."""
    import hashlib

    found = {}
    for parent, _, names in os.walk(path):
        for name in names:
            full = os.path.join(parent, name)
            found[os.path.relpath(full, path)] = hashlib.sha256(open(full, "rb").read()).hexdigest()
    return found


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


# (stage: kill after the stage-th "[convert]" line, delay after it in seconds)
FIXED_KILLS = [(0, 2.0), (2, 0.3), (5, 0.0)]  # startup, mid-write, at the publish


@pytest.mark.parametrize("plan", [
    pytest.param("fixed", id="3-fixed-kills"),
    pytest.param("random", id="12-random-kills", marks=pytest.mark.cluster),
])
def test_killed_conversions_never_leave_a_false_complete_dataset_nor_lose_the_old(
        tmp_path, plan):
    sources = {}
    for index, (name, rows) in enumerate(ROWS.items()):
        sources[name] = tmp_path / f"{name}.csv"
        write_csv(sources[name], rows, seed=SEED + index)
    out = tmp_path / "ds"
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    first = subprocess.run(convert_command(sources["a"], out), capture_output=True, text=True,
                           env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert check_complete(out) == ROWS["a"]
    current = "a"
    stages = [line for line in first.stdout.splitlines() if line.startswith("[convert]")]
    rng = random.Random(SEED)
    points = FIXED_KILLS if plan == "fixed" else [
        (rng.randrange(0, len(stages) - 1), rng.uniform(0, 1.0)) for _ in range(KILLS)]
    outcomes = {"old kept": 0, "new published": 0, "old aside, restored": 0}
    cleaned = 0
    for stage, delay in points:
        new = "b" if current == "a" else "a"
        old_bytes = digest(out)
        what, lines = run_and_kill(sources[new], out, stage, delay, env)
        assert what == "killed", f"round {stage}/{delay:.2f}: finished before the kill"
        cleaned += sum("deleted" in line and "interrupted" in line for line in lines)
        if os.path.exists(out / METADATA_FILE):
            rows = check_complete(out)  # looks complete => is complete
            if rows == ROWS[new]:
                outcomes["new published"] += 1
                current = new
            else:
                assert digest(out) == old_bytes  # the old dataset, untouched
                outcomes["old kept"] += 1
        else:  # only possible between the two renames: the old one is aside, complete
            aside = [p for p in os.listdir(tmp_path) if p.startswith("ds.old-")]
            assert len(aside) == 1 and digest(tmp_path / aside[0]) == old_bytes, aside
            storage.AtomicOutput(storage.LocalFileSystem(), storage.to_uri(str(out)),
                                 overwrite=True, progress=lines.append).recover()
            assert digest(out) == old_bytes  # put back byte for byte
            outcomes["old aside, restored"] += 1
    new = "b" if current == "a" else "a"
    final = subprocess.run(convert_command(sources[new], out), capture_output=True,
                           text=True, env=env, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    assert check_complete(out) == ROWS[new]
    assert [p for p in os.listdir(tmp_path) if p.startswith("ds.")] == []  # nothing left
    print(f"\n[kill] {len(points)} conversions killed: "
          + ", ".join(f"{k} {v}" for k, v in outcomes.items())
          + f"; leftovers cleaned {cleaned} time(s) by the next run; 0 false-complete "
          "datasets, 0 datasets lost; final run succeeded")
