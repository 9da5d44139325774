"""The scaling report, rendered from real runs of a real sweep (and from a lone run)."""
import dataclasses
import os
import shutil

import mlflow
import numpy as np
import pytest

from hepspark.bench.baseline import import_baseline, read_baseline
from hepspark.cli import main
from hepspark.report.runs import load_runs
from hepspark.report.scaling import write_scaling_report

GPU_JSON = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "results",
                        "gpu_baseline_adam_b1000.json")
PLOTS = ["auc.png", "efficiency.png", "epoch_time.png", "flop_fraction.png", "model_fit.png",
         "prediction.png", "relative_time.png", "time_to_target.png"]


def assert_png(path):
    with open(path, "rb") as handle:
        head = handle.read(8)
    assert head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(path) > 5000, path


@pytest.fixture()
def store(scaling_sweep, tmp_path):
    """A copy of the sweep's store, so each test may add runs of its own."""
    shutil.copy(scaling_sweep.root / "mlflow.db", tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_report_of_a_sweep_with_a_gpu_baseline(store, scaling_sweep, tmp_path):
    import_baseline(GPU_JSON, "scaling-test", store)
    # a target every run reaches, so that the time-to-target plot has points
    path = write_scaling_report("scaling-test", str(tmp_path / "report"), store, target_auc=0.5)
    out = tmp_path / "report"
    assert sorted(os.listdir(out / "plots")) == PLOTS
    for name in PLOTS:
        assert_png(out / "plots" / name)
    md = open(path).read()
    html = open(out / "report.html").read()
    for title in ("Epoch wall time vs executors", "Epoch time relative to one executor",
                  "Parallel efficiency", "Fraction of the FLOP ceiling", "Quality of every run",
                  "Performance model", "Prediction: the 10,500,000-row epoch",
                  "Time to target quality (val AUC 0.5)"):
        assert f"## {title}" in md and title in html
    assert "not measured" not in md  # both baselines and both backends at N=1,2 are there
    assert "Keras NVIDIA H100 80GB HBM3, batch 1000" in md
    assert '<img src="plots/prediction.png"' in html and html.startswith("<!DOCTYPE html>")

    # the numbers are the runs' own: the epoch time is the median after the first epoch
    client = mlflow.MlflowClient(store)
    runs = load_runs("scaling-test", store)
    assert {(r.backend, r.nodes) for r in runs} == {
        ("keras", 1), ("keras", 2), ("keras-gpu", 1), ("bigdl", 1), ("bigdl", 2), ("horovod", 1),
        ("horovod", 2)}
    for run in runs:
        history = client.get_metric_history(run.run_id, "epoch_wall_time_s")
        expected = np.median([m.value for m in sorted(history, key=lambda m: m.step)][1:])
        assert run.epoch_time_s == pytest.approx(expected)
        assert run.run_id[:8] in md
    horovod2 = next(r for r in runs if (r.backend, r.nodes) == ("horovod", 2))
    assert f"| {horovod2.run_id[:8]} | horovod | sgd | 2 | " in md
    # isolated nodes: where each run ran, and the pinned Keras baselines on 1 and 2 CPUs
    cpus = "; ".join(map(str, range(2)))
    assert horovod2.worker_cpus == cpus and horovod2.driver_cpus == "0-1"
    assert f"| {cpus} | 0-1 | {horovod2.driver_cpu_time_s:.1f} |" in md
    assert "Keras CPU, 1 process (1 cores, pinned to CPUs 0)" in md
    assert "Keras CPU, 1 process (2 cores, pinned to CPUs 0-1)" in md
    assert "2 pinned node(s), CPUs 0; 1; driver on CPUs 0-1; the driver shares CPU(s) 0,1" in md
    # time to target from the runs' own epochs: training time up to the first epoch at or
    # above AUC 0.5 (on the harder toy sample a 2-epoch SGD run may need both, or miss it)
    walls = sorted(client.get_metric_history(horovod2.run_id, "epoch_wall_time_s"),
                   key=lambda m: m.step)
    aucs = {m.step: m.value for m in client.get_metric_history(horovod2.run_id, "val_auc")}
    elapsed, expected = 0.0, f"not reached in {len(walls)} epoch(s)"
    for epoch, wall in enumerate(walls, start=1):
        elapsed += wall.value
        if aucs.get(wall.step, 0.0) >= 0.5:
            expected = f"{elapsed:.1f} s (epoch {epoch})"
            break
    assert expected in md
    assert "under 95 % of the rows" not in md  # every backend's epoch is a full pass
    assert all(0.95 < r.epoch_fraction < 1.0 + 1e-9 for r in runs), [r.epoch_fraction for r in runs]
    assert f"{horovod2.epoch_time_s:.2f}" in md
    assert horovod2.global_batch == 1000  # 2 ranks x 500

    # logged back to MLflow as the experiment's scaling-report run
    exp = client.get_experiment_by_name("scaling-test")
    reports = client.search_runs([exp.experiment_id], "tags.`hepspark.task` = 'scaling-report'")
    assert len(reports) == 1
    logged = {a.path for a in client.list_artifacts(reports[0].info.run_id, "scaling-report")}
    assert {"scaling-report/report.md", "scaling-report/report.html",
            "scaling-report/plots"} <= logged

    # a second report replaces the first whole, and reuses the same MLflow run
    write_scaling_report("scaling-test", str(out), store, max_nodes=16)
    assert "up to 16 nodes" in open(path).read()
    assert "Time to target quality (val AUC 0.78)" in open(path).read()  # the runs' target
    assert len(client.search_runs([exp.experiment_id],
                                  "tags.`hepspark.task` = 'scaling-report'")) == 1


def test_report_of_a_single_run_says_what_is_missing(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.MlflowClient(uri).create_experiment("gpu-only", str(tmp_path / "artifacts"))
    import_baseline(GPU_JSON, "gpu-only", uri)
    code = main(["report", "scaling", "--experiment", "gpu-only", "--output",
                 str(tmp_path / "report"), "--tracking-uri", uri,
                 "--context", "H100 of a lent machine, nothing else running"])
    assert code == 0
    md = open(tmp_path / "report" / "report.md").read()
    # the conditions come first, verbatim
    assert md.startswith("# Scaling report: gpu-only\n\n## Measurement conditions\n\n"
                         "H100 of a lent machine, nothing else running\n")
    assert "1 run(s)" in md
    for missing in ("bigdl: not measured", "horovod: not measured",
                    "Keras CPU baseline: not measured",
                    "Not measured: no BigDL or Horovod run in this experiment.",
                    "Not fitted: no BigDL or Horovod runs."):
        assert missing in md
    assert sorted(os.listdir(tmp_path / "report" / "plots")) == ["auc.png", "flop_fraction.png"]
    assert "single-GPU baseline: not measured" not in md


def test_an_empty_experiment_renders_too(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.MlflowClient(uri).create_experiment("empty", str(tmp_path / "artifacts"))
    md = open(write_scaling_report("empty", str(tmp_path / "r"), uri)).read()
    assert "no finished training run" in md and "single-GPU baseline: not measured" in md


def test_report_never_overwrites_a_directory_that_is_not_a_report(store, tmp_path):
    precious = tmp_path / "results"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match="hepspark did not write.*thesis.tex"):
        write_scaling_report("scaling-test", str(precious), store, log_to_mlflow=False)
    assert os.listdir(precious) == ["thesis.tex"]
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_unknown_experiment_names_the_ones_there(store, tmp_path):
    with pytest.raises(ValueError, match="no MLflow experiment 'nope'.*scaling-test"):
        write_scaling_report("nope", str(tmp_path / "r"), store)


def test_baseline_file_is_checked(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "something-else"}')
    with pytest.raises(ValueError, match="not a result of benchmarks/gpu_baseline.py"):
        read_baseline(str(bad))
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_baseline(str(bad))
    with pytest.raises(FileNotFoundError, match="no such baseline file"):
        read_baseline(str(tmp_path / "missing.json"))


def test_full_passes_of_unequal_length_count_as_one_pass():
    from hepspark.report.runs import MeasuredRun

    # A shared machine: the same 100k rows in 2.6 s and in 7.0 s. Median rows/s times
    # median time would say 127 % of the rows.
    epochs = [{"epoch_wall_time_s": t, "rows_per_s": 100_000 / t} for t in (9.0, 2.6, 7.0)]
    run = MeasuredRun("r", "n", "keras", "adam", 1, 2, 1000, 100_000, 10, "CPU", "local",
                      epochs=epochs)
    assert run.epoch_fraction == pytest.approx(1.0)
    half = [{"epoch_wall_time_s": t, "rows_per_s": 50_000 / t} for t in (9.0, 2.6, 7.0)]
    assert MeasuredRun("r", "n", "horovod", "adam", 2, 1, 1000, 100_000, 10, "CPU", "local",
                       epochs=half).epoch_fraction == pytest.approx(0.5)


def test_time_to_target_compares_weak_and_strong_scaling(tmp_path):
    from hepspark.report.runs import MeasuredRun
    from hepspark.report.scaling import ReportConfig, build_report

    def run(backend, nodes, batch, aucs, times, cores=1):
        epochs = [{"epoch": i, "epoch_wall_time_s": t, "rows_per_s": 1e5 / t, "val_auc": a}
                  for i, (a, t) in enumerate(zip(aucs, times), 1)]
        return MeasuredRun(f"{backend}{nodes}{batch}", "n", backend, "adam", nodes, cores, batch,
                           100_000, 1000, "CPU", "local", epochs=epochs, target_value=0.85,
                           worker_cpus="0" if nodes == 1 else "0; 1", driver_cpus="0-1")

    runs = [run("horovod", 1, 1000, [0.80, 0.86, 0.87], [10, 9, 9]),
            # weak: 2 x 1000 per rank, shorter epochs but one more epoch to the target
            run("horovod", 2, 1000, [0.78, 0.84, 0.86], [6, 5, 5]),
            # strong: 2 x 500 = the global 1000 of N=1
            run("horovod", 2, 500, [0.81, 0.85, 0.87], [7, 6, 6]),
            run("keras", 1, 1000, [0.82, 0.83, 0.84], [8, 8, 8])]
    # a second baseline optimizer that reaches the target: each is listed on its own
    runs.append(dataclasses.replace(run("keras", 1, 1000, [0.84, 0.86, 0.87], [8, 8, 8]),
                                    optimizer="sgd"))
    doc = build_report(runs, ReportConfig("t", str(tmp_path)), str(tmp_path))
    md = doc.to_markdown()
    assert "## Time to target quality (val AUC 0.85)" in md
    assert "| horovod adam b1000/node (weak) | 19.0 s (epoch 2) | 16.0 s (epoch 3) |" in md
    assert "| horovod adam b1000 global (strong) | 19.0 s (epoch 2) | 13.0 s (epoch 2) |" in md
    assert ("Keras CPU, 1 process (1 cores, pinned to CPUs 0-1), adam, batch 1000: not reached "
            "in 3 epoch(s)") in md
    assert "Keras CPU, 1 process (1 cores, pinned to CPUs 0-1), sgd, batch 1000: 16.0 s (epoch 2)" in md
    assert os.path.getsize(tmp_path / "time_to_target.png") > 5000
