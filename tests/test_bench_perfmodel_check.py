"""benchmarks/perfmodel_check.py on a kept report: the runs it rebuilds from the "Runs" table
keep each run's global batch (Horovod's and torch's batch is per rank; session 11 read
torch's as global and doubled its N=2 batches), and the whole check runs with one
co-location file and one step curve per engine."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

BENCH = os.path.join(os.path.dirname(__file__), "..", "benchmarks")
RESULTS = os.path.join(BENCH, "results", "scaling-2core-same-session")
REPORT = os.path.join(RESULTS, "report.md")
CURVES = os.path.join(BENCH, "results", "scaling-2core-batch")


def load_script():
    spec = importlib.util.spec_from_file_location("perfmodel_check",
                                                  os.path.join(BENCH, "perfmodel_check.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_global_batches(path: str) -> dict[str, int]:
    with open(path) as handle:
        lines = handle.read().split("## Runs", 1)[1].split("\n## ", 1)[0].splitlines()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines
            if line.startswith("| ") and not line.startswith("| run |")]
    return {cells[0]: int(cells[5]) for cells in rows}


def test_the_runs_table_keeps_every_engines_global_batch():
    runs = load_script().read_runs_table(REPORT)
    assert {"bigdl", "horovod", "torch", "keras"} <= {r.backend for r in runs}
    assert {r.run_id: r.global_batch for r in runs} == table_global_batches(REPORT)
    assert any(r.backend == "torch" and r.nodes == 2 for r in runs)


def test_the_check_runs_with_a_group_cost_per_engine(tmp_path):
    done = subprocess.run(
        [sys.executable, os.path.join(BENCH, "perfmodel_check.py"), "--report", REPORT,
         "--exchange", os.path.join(BENCH, "results", "exchange_2core.json"),
         "--colocation", os.path.join(RESULTS, "colocation_horovod.json"),
         "--colocation", os.path.join(RESULTS, "colocation_torch.json"),
         "--step-curve", os.path.join(CURVES, "step_curve_horovod.json"),
         "--step-curve", os.path.join(CURVES, "step_curve_torch.json"),
         "--output", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for engine in ("bigdl", "horovod", "torch"):
        assert f"- {engine}: largest held-out error" in done.stdout
    # each engine's model took its own file's group cost; BigDL, measured by neither, none
    assert "colocation_horovod.json)" in done.stdout and "colocation_torch.json)" in done.stdout
    # and its own step curve (session 13's), scaling its time per row by batch size
    assert "step_curve_horovod.json)" in done.stdout and "step_curve_torch.json)" in done.stdout
    assert (tmp_path / "report.md").stat().st_size > 1000
