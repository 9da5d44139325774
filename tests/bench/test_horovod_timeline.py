"""The timeline reader refuses what is not a Horovod timeline with one line, and reads the
unterminated list Horovod leaves when a run does not shut down cleanly. (A real timeline
of a real 2-rank run is summarized in tests/backends/test_horovod_backend.py.)"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hepspark.bench.horovod_timeline import summarize


def _events(steps: int, exchange: bool = True) -> list[dict]:
    events = [{"name": "process_name", "ph": "M", "pid": 1,
               "args": {"name": "x/HorovodGroupedAllreduce_grads_0_1of2"}}]
    for step in range(steps):
        t = 10_000 * step
        events += [{"ph": "B", "name": "NEGOTIATE_ALLREDUCE", "ts": t, "pid": 1},
                   {"ph": "E", "ts": t + 1000, "pid": 1}]
        if exchange:
            events += [{"ph": "B", "name": "ALLREDUCE", "ts": t + 1000, "pid": 1},
                       {"ph": "B", "name": "GLOO_ALLREDUCE", "ts": t + 1100, "pid": 1},
                       {"ph": "E", "ts": t + 3100, "pid": 1},
                       {"ph": "E", "ts": t + 3200, "pid": 1}]
    return events


def test_an_unterminated_timeline_is_read(tmp_path):
    path = tmp_path / "timeline.json"
    # as Horovod leaves it after a killed run: no closing bracket, a trailing comma
    path.write_text("[\n" + ",\n".join(json.dumps(e) for e in _events(9)) + ",")
    summary = summarize(str(path))
    assert summary.steps == 6 and summary.skipped == 3
    assert summary.period.median_ms == pytest.approx(10.0)
    assert summary.phases["NEGOTIATE_ALLREDUCE"].median_ms == pytest.approx(1.0)
    assert summary.phases["GLOO_ALLREDUCE"].median_ms == pytest.approx(2.0)
    assert summary.outside_ms == pytest.approx(10.0 - 1.0 - 2.2)


def test_a_heavy_skip_still_leaves_one_period(tmp_path):
    path = tmp_path / "timeline.json"
    path.write_text(json.dumps(_events(3)))
    summary = summarize(str(path), skip_fraction=0.9)
    assert summary.steps == 2 and summary.period.median_ms == pytest.approx(10.0)


@pytest.mark.parametrize("text, error", [
    ("epoch 1/3  9.6 s", "not a Horovod timeline (no JSON list)"),
    ("[{\"ph\": \"B\", ", "not a Horovod timeline"),
    ("[]", "fewer than 3 all-reduces"),
    # cut off after the negotiations, before any all-reduce span was closed
    (json.dumps(_events(4, exchange=False)), "4 negotiations but no all-reduce"),
])
def test_what_is_not_a_timeline_is_one_line(tmp_path, text, error):
    path = tmp_path / "timeline.json"
    path.write_text(text)
    done = subprocess.run([sys.executable, "-m", "hepspark", "bench", "horovod-timeline",
                           str(path)], capture_output=True, text=True)
    assert done.returncode != 0 and error in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
