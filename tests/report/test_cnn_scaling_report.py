"""The scaling report's CNN sections, rendered from the runs of a real tiny CNN sweep and an
imported benchmarks/cnn_zoo.py baseline."""
import json
import os
import shutil

import pytest

from hepspark.bench.baseline import ZOO_KIND, import_baselines, read_baseline
from hepspark.report.runs import MeasuredRun, load_runs
from hepspark.report.scaling import ReportConfig, build_report, write_scaling_report

ZOO_JSON = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "results",
                        "cnn_zoo_cpu_2core.json")
CNN_PLOTS = [f"cnn_basic_cnn_jets_{name}.png"
             for name in ("efficiency", "epoch_time", "images_per_s", "time_to_target")]


@pytest.fixture()
def store(cnn_scaling_sweep, tmp_path):
    """A copy of the CNN sweep's store, so each test may add runs of its own."""
    shutil.copy(cnn_scaling_sweep.root / "mlflow.db", tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_cnn_report_has_sections_per_family_with_the_baselines(store, tmp_path):
    ids = import_baselines(ZOO_JSON, "cnn-test", store)
    assert len(ids) == len(read_baseline(ZOO_JSON, ZOO_KIND)["models"])  # one run per zoo model
    # a target every run reaches, so the time-to-target plot has points
    path = write_scaling_report("cnn-test", str(tmp_path / "report"), store, target_auc=0.01)
    out = tmp_path / "report"
    assert sorted(os.listdir(out / "plots")) == CNN_PLOTS
    md = open(path).read()
    html = open(out / "report.html").read()
    for title in ("## CNN runs", "## CNN basic_cnn on jets images", "### Images/s vs executors",
                  "### Epoch wall time vs executors", "### Parallel efficiency",
                  "### Time to target quality (val AUC 0.01)"):
        assert title in md and title.lstrip("# ") in html
    # HIGGS sections are not drawn for an experiment without HIGGS runs
    assert "\n## Epoch wall time vs executors" not in md and "Performance model" not in md

    runs = [r for r in load_runs("cnn-test", store) if r.task == "cnn"]
    trained = {(r.backend, r.nodes): r for r in runs if r.dataset_kind == "jets"}
    assert sorted(trained) == [("bigdl", 1), ("horovod", 1), ("horovod", 2), ("keras", 1)]
    assert {r.family for r in runs} >= {"basic_cnn", "vgg", "resnet"}  # imported zoo models
    h1, h2 = trained[("horovod", 1)], trained[("horovod", 2)]
    # the numbers are the runs' own: images/s and epoch time per N, efficiency from them
    assert f"| horovod basic_cnn nadam | {h1.rows_per_s:,.0f} | {h2.rows_per_s:,.0f} |" in md
    assert f"| horovod basic_cnn nadam | {h1.epoch_time_s:.2f} | {h2.epoch_time_s:.2f} |" in md
    efficiency = h1.epoch_time_s / (2 * h2.epoch_time_s)
    assert f"| horovod basic_cnn nadam | 1.00 | {efficiency:.2f} |" in md
    keras = trained[("keras", 1)]
    assert f"Keras CPU basic_cnn nadam, 1 process ({keras.cores_per_executor} cores)" in md
    assert f"| bigdl basic_cnn adam | {trained[('bigdl', 1)].rows_per_s:,.0f} |" in md
    assert "- bigdl: only N=1 measured" in md
    # the imported in-memory zoo measurement of the family is a baseline line; no GPU one
    zoo = next(m for m in json.load(open(ZOO_JSON))["models"] if m["family"] == "basic_cnn")
    assert f"Keras in memory CPU: x86_64 (2 cores) {zoo['model']}, batch 64 | " \
           f"{zoo['images_per_s']:,.0f}" in md
    assert "single-GPU baseline: not measured (run benchmarks/cnn_zoo.py --families basic_cnn" in md
    # time to target: the first epoch reached AUC 0.01, its time is the epoch's
    assert f"{h2.epochs[0]['epoch_wall_time_s']:.1f} s (epoch 1)" in md


def test_runs_read_back_carry_their_model(store):
    import_baselines(ZOO_JSON, "cnn-test", store)
    runs = load_runs("cnn-test", store)
    vgg = [r for r in runs if r.family == "vgg"]
    assert sorted(r.model for r in vgg) == ["vgg16", "vgg21"] and vgg[0].backend == "keras-memory"
    assert all(r.task == "cnn" for r in runs)


def test_a_zoo_file_that_is_not_one_is_refused_naming_the_file(tmp_path):
    bad = tmp_path / "zoo.json"
    bad.write_text(json.dumps({"kind": "hepspark-cnn-zoo", "device": "CPU", "batch_size": 8,
                               "steps": 2, "models": [{"model": "vgg16"}]}))
    with pytest.raises(ValueError, match=r"zoo.json: model record 'vgg16' lacks \['family'"):
        read_baseline(str(bad), ZOO_KIND)


def _run(backend, nodes, seconds, task="higgs", **more):
    epochs = [{"epoch": e, "epoch_wall_time_s": seconds * (1.5 if e == 1 else 1.0),
               "rows_per_s": 9000 / seconds, "val_auc": 0.6 + 0.1 * e} for e in (1, 2, 3)]
    cnn = dict(model="vgg16", family="vgg", dataset_kind="jets") if task == "cnn" else {}
    return MeasuredRun(run_id=f"{backend}{nodes}{task}".ljust(32, "0"), name=backend,
                       backend=backend, optimizer="adam", nodes=nodes, cores_per_executor=1,
                       batch_size=100, train_rows=9000, parameters=1000, device="CPU",
                       mode="local", epochs=epochs, task=task, **{**cnn, **more})


def test_higgs_sections_are_the_same_with_cnn_runs_beside_them(tmp_path):
    higgs = [_run("keras", 1, 4.0), _run("horovod", 1, 5.0), _run("horovod", 2, 3.0),
             _run("bigdl", 1, 6.0), _run("bigdl", 2, 4.0)]
    cnn = [_run("keras", 1, 8.0, "cnn"), _run("horovod", 1, 9.0, "cnn"),
           _run("horovod", 2, 5.0, "cnn")]
    config = ReportConfig("mixed", str(tmp_path / "out"), log_to_mlflow=False)
    alone = build_report(higgs, config, str(tmp_path / "a"), tracking_uri="sqlite://")
    mixed = build_report(higgs + cnn, config, str(tmp_path / "b"), tracking_uri="sqlite://")
    n = len(alone.sections)
    assert [(s.title, s.paragraphs, s.table) for s in mixed.sections[:n]] == \
        [(s.title, s.paragraphs, s.table) for s in alone.sections]
    assert [s.title for s in mixed.sections[n:n + 2]] == ["CNN runs", "CNN vgg on jets images"]
    assert sorted(os.listdir(tmp_path / "b")) == sorted(
        os.listdir(tmp_path / "a") + [f"cnn_vgg_jets_{p}.png" for p in
                                      ("efficiency", "epoch_time", "images_per_s",
                                       "time_to_target")])
