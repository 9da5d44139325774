"""benchmarks/colocation.py on a tiny sample, so that the measurement cannot rot: every
phase runs pinned (with each engine's group), every step is timed and the summary is
consistent."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "colocation.py")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
@pytest.mark.parametrize("group", [None, "horovod", "torch"])
def test_colocation_benchmark_runs(tmp_path, group):
    cpus = sorted(os.sched_getaffinity(0))[:2]
    out = tmp_path / "colocation.json"
    done = subprocess.run([sys.executable, SCRIPT, "--rows", "3000", "--epochs", "1",
                           "--cpus", *map(str, cpus), "--out", str(out),
                           *([f"--{group}"] if group else [])],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["steps"] == 3 and result["cpus"] == cpus
    phases = ["alone", "side_by_side"]
    if group:  # real Horovod ranks / a torch DDP group over Gloo: idle, then all-reducing
        phases += [f"{group}_idle", f"{group}_allreduce"]
        assert result[f"{group}_idle_slowdown_mean"] > 0
        assert "the all-reduce adds" in done.stdout
        from hepspark.bench.perfmodel import load_group_cost  # the model reads it as is

        cost = load_group_cost(str(out))
        assert cost.engine == group and cost.compute_factor > 0
    else:
        assert not any(key.endswith("_idle") for key in result)
    for phase in phases:
        stats = result[phase]
        assert 0 < stats["median_ms"] <= stats["p90_ms"], stats
    assert result["slowdown_mean"] > 0 and result["straggler_wait_ms"] >= 0
    assert "co-location slowdown" in done.stdout


def test_one_cpu_is_refused_with_one_line():
    done = subprocess.run([sys.executable, SCRIPT, "--cpus", "0"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0 and "--cpus needs at least two" in done.stderr
    assert "Traceback" not in done.stderr
