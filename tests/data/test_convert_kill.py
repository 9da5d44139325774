"""Kill `hepspark convert higgs --overwrite` (a real subprocess: Python driver + its JVM) at
chosen or seeded random points and check after every kill that

- the kill landed while work remained; a round the conversion finished first is said so
  (its new dataset is checked complete) and not counted: the fixed points must all land,
  most of the random ones must (they are drawn inside the first run's stage timeline);
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
import re
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


# The converter's own stage lines. Not its other "[convert]" lines: Spark's live task
# progress (hepspark/progress.py: a line every interval and one at the end), the CLI's
# closing "done in", and the notes of a run cleaning what a killed one left. Counting those
# moved kill points past the last stage, where a kill could land after the publish.
STAGE_LINE = re.compile(r"^\[convert\] (reading |[\d,]+ lines in |wrote )")
PUBLISHED_LINE = "dataset written:"  # printed once the new dataset is in place


def is_stage_line(line: str) -> bool:
    return STAGE_LINE.match(line) is not None


def run_converter(src, out, env, stage: int | None = None,
                  extra_s: float = 0.0) -> tuple[bool, list[tuple[float, str]]]:
    """Run a conversion; with ``stage``, kill its process group (driver + JVM) ``extra_s``
    after its ``stage``-th stage line (0: its first line of any kind). Returns (whether it
    finished with status 0, the lines it printed with seconds since the start)."""
    start = time.monotonic()
    proc = subprocess.Popen(convert_command(src, out), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    lines: list[tuple[float, str]] = []
    seen = threading.Event()

    def read() -> None:
        stages = 0
        for line in proc.stdout:
            lines.append((time.monotonic() - start, line.rstrip()))
            stages += is_stage_line(line)
            if stage is not None and stages >= stage:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if stage is None:
        proc.wait(timeout=600)
    else:
        while not seen.wait(0.05):
            if proc.poll() is not None:
                break
        time.sleep(extra_s)
        if proc.poll() is None:
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
    return proc.returncode == 0, lines


def random_kill_points(timeline: list[tuple[float, str]], rng: random.Random,
                       count: int) -> list[tuple[int, float]]:
    """``count`` seeded (stage, delay) points that land while work remains: after a random
    stage line of the first (uninterrupted) run, within the first 70% of the time it then
    still took to publish (the kill rounds convert the other, smaller-or-larger input, and
    the machine is shared: the margin keeps most points inside the window)."""
    stage_times = [t for t, line in timeline if is_stage_line(line)]
    published = next((t for t, line in timeline if line.startswith(PUBLISHED_LINE)), None)
    assert len(stage_times) >= 3 and published is not None, (
        "the converter's output no longer has the stage lines this test kills after "
        f"(STAGE_LINE) or the {PUBLISHED_LINE!r} line; update them: "
        + " | ".join(line for _, line in timeline))
    after = [timeline[0][0], *stage_times]  # stage 0: the first line of any kind
    points = []
    for _ in range(count):
        stage = rng.randrange(0, len(after))
        points.append((stage, rng.uniform(0, 0.7) * (published - after[stage])))
    return points


# (stage: kill after the stage-th stage line, delay after it in seconds)
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
    finished, timeline = run_converter(sources["a"], out, env)
    assert finished, "\n".join(line for _, line in timeline[-30:])
    assert check_complete(out) == ROWS["a"]
    current = "a"
    points = FIXED_KILLS if plan == "fixed" else random_kill_points(
        timeline, random.Random(SEED), KILLS)
    outcomes = {"old kept": 0, "new published": 0, "old aside, restored": 0}
    unused = []  # kill points the conversion outran: said, not failed (nothing to check)
    cleaned = 0
    for stage, delay in points:
        new = "b" if current == "a" else "a"
        old_bytes = digest(out)
        finished, timed = run_converter(sources[new], out, env, stage, delay)
        lines = [line for _, line in timed]
        cleaned += sum("deleted" in line and "interrupted" in line for line in lines)
        if finished:  # the kill came too late: the run must then have published in full
            assert check_complete(out) == ROWS[new]
            assert [p for p in os.listdir(tmp_path) if p.startswith("ds.")] == []
            unused.append(f"stage {stage} + {delay:.2f} s")
            print(f"[kill] not used: the conversion finished before the kill at stage "
                  f"{stage} + {delay:.2f} s (its new dataset checked complete)")
            current = new
            continue
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
    killed = len(points) - len(unused)
    # Fixed points sit well inside the work; of the random ones, most must land, or the
    # test would pass without having killed anything.
    needed = len(points) if plan == "fixed" else (len(points) + 1) // 2
    assert killed >= needed, (
        f"only {killed} of {len(points)} kills landed before the conversion ended "
        f"(finished first: {', '.join(unused)}); the kill points need to be earlier")
    new = "b" if current == "a" else "a"
    final = subprocess.run(convert_command(sources[new], out), capture_output=True,
                           text=True, env=env, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    assert check_complete(out) == ROWS[new]
    assert [p for p in os.listdir(tmp_path) if p.startswith("ds.")] == []  # nothing left
    print(f"\n[kill] {killed} conversions killed ({len(unused)} point(s) not used): "
          + ", ".join(f"{k} {v}" for k, v in outcomes.items())
          + f"; leftovers cleaned {cleaned} time(s) by the next run; 0 false-complete "
          "datasets, 0 datasets lost; final run succeeded")
