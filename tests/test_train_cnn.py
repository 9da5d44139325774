"""CNN training end to end on tiny generated image datasets: Keras backend, MLflow, the
binary (jets) and 5-class (LArTPC) protocols, and the command line."""
from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import make_image_dataset

from hepspark.cli import main
from hepspark.config import TrainConfig
from hepspark.models.cnn import CnnConfig
from hepspark.tracking import Tracker
from hepspark.train_cnn import train_cnn

QUIET = {"progress": lambda _: None}


@pytest.fixture(scope="module")
def jets_dataset(spark, tmp_path_factory):
    return make_image_dataset(spark, tmp_path_factory.mktemp("jets"), "jets", 2_000, seed=11)


@pytest.fixture(scope="module")
def lartpc_dataset(spark, tmp_path_factory):
    return make_image_dataset(spark, tmp_path_factory.mktemp("lartpc"), "lartpc", 600,
                              seed=11, image_size=24)


def test_jets_basic_cnn_learns_and_logs_to_mlflow(jets_dataset, sqlite_tracking_uri, tmp_path):
    import mlflow

    config = TrainConfig(data=jets_dataset, optimizer="nadam", batch_size=64, epochs=3,
                         early_stopping_patience=10, model=CnnConfig("basic_cnn", filters=16))
    tracker = Tracker(sqlite_tracking_uri, "jets-test")
    outcome = train_cnn(config, tracker, model_dir=str(tmp_path / "model"), **QUIET)
    assert [e.epoch for e in outcome.epochs] == [1, 2, 3]
    # Chance is 0.5; the summary-feature baseline reaches ~0.78 (weighted).
    assert outcome.test_metrics["test_auc"] > 0.65, outcome.report
    assert max(e.val_auc for e in outcome.epochs) > 0.65
    assert outcome.info["kept_epoch"] in (1, 2, 3)
    assert os.path.exists(tmp_path / "model" / "model.keras")

    client = mlflow.MlflowClient(sqlite_tracking_uri)
    run = client.get_run(outcome.run_id)
    assert run.data.params["model_family"] == "basic_cnn"
    assert run.data.params["dataset_kind"] == "jets" and run.data.params["image_shape"] == "33x33x2"
    assert {"test_auc", "best_fom", "train_wall_time_s", "peak_rss_mb"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id, "plots")}
    assert {"plots/roc.png", "plots/training_curves.png"} <= artifacts


def test_lartpc_resnet_follows_the_loss_window_protocol(lartpc_dataset):
    config = TrainConfig(data=lartpc_dataset, optimizer="nadam", batch_size=20, epochs=2,
                         epoch_selection="loss_window",
                         model=CnnConfig("resnet", depth=14, bottleneck=True, filters=8))
    outcome = train_cnn(config, Tracker(enabled=False), **QUIET)
    assert all(e.val_accuracy is not None and e.val_auc is None for e in outcome.epochs)
    # 2 epochs cannot satisfy "minimum <= 85% of the epochs and 5 epochs old": no early stop,
    # and the kept epoch is the best validation accuracy within the window.
    assert not outcome.stopped_early
    best = max(outcome.epochs, key=lambda e: e.val_accuracy)
    assert outcome.info["kept_epoch"] == best.epoch
    metrics = outcome.test_metrics
    for name in ("electron", "gamma", "muon", "pion", "proton"):
        assert 0 <= metrics[f"test_accuracy_{name}"] <= 1
        assert metrics[f"test_accuracy_{name}_err"] >= 0
    assert {"separation_mu_pi_auc", "separation_e_gamma_auc",
            "separation_shower_track_auc"} <= set(metrics)
    assert "per-class accuracy" in outcome.report


def test_cli_models_list_help_and_clear_errors(jets_dataset, capsys, tmp_path):
    for command in (["generate", "jets"], ["generate", "lartpc"], ["convert", "images"],
                    ["train", "cnn"], ["models", "list"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--help"])
        assert exit_info.value.code == 0
    capsys.readouterr()
    assert main(["models", "list", "--input-shape", "64,64,1", "--classes", "5"]) == 0
    out = capsys.readouterr().out
    for name in ("basic_cnn_f32_k3", "vgg16", "resnet29b_w4_v1", "inception_m2_t4", "xception"):
        assert name in out
    assert main(["train", "cnn", "--data", jets_dataset, "--model", "resnet", "--depth", "29",
                 "--no-tracking"]) == 2
    assert "need --bottleneck" in capsys.readouterr().err
    assert main(["train", "cnn", "--data", str(tmp_path / "none"), "--no-tracking"]) == 2


def test_cli_generate_convert_train(spark, tmp_path, capsys):
    source = str(tmp_path / "lar.h5")
    assert main(["generate", "lartpc", "--rows", "300", "--output", source, "--image-size",
                 "16", "--seed", "2"]) == 0
    data = str(tmp_path / "ds")
    with pytest.raises(SystemExit):  # mutually exclusive flags
        main(["convert", "images", "--input", source, "--output", data, "--no-weights",
              "--weights-key", "x"])
    capsys.readouterr()
    assert main(["convert", "images", "--input", source, "--output", data, "--kind",
                 "lartpc"]) == 0
    assert main(["train", "cnn", "--data", data, "--model", "basic_cnn", "--filters", "4",
                 "--epochs", "1", "--no-tracking"]) == 0
    out = capsys.readouterr().out
    assert "loss_window" in out and "per-class accuracy" in out
    assert np.isfinite(float(out.split("test accuracy (test_b)")[1].split()[0]))


def test_a_killed_cnn_run_resumes_into_the_same_mlflow_run(jets_dataset, sqlite_tracking_uri,
                                                           tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import mlflow

    checkpoints = tmp_path / "ck"
    command = [sys.executable, "-m", "hepspark.cli", "train", "cnn", "--data", jets_dataset,
               "--filters", "4", "--epochs", "3", "--batch-size", "64",
               "--tracking-uri", sqlite_tracking_uri]
    job = subprocess.Popen([*command, "--checkpoint-dir", str(checkpoints)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not (checkpoints / "epoch-0001").is_dir():  # mid-run: epoch 1 is written
            assert job.poll() is None, "the job ended before its first checkpoint"
            time.sleep(0.1)
    finally:
        job.send_signal(signal.SIGKILL)  # the process this test started, by its PID
        job.wait()
    done = subprocess.run([*command, "--resume", str(checkpoints)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "continuing MLflow run" in done.stdout
    client = mlflow.MlflowClient(sqlite_tracking_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id,
                                                        "epoch_wall_time_s")]
    assert sorted(steps) == [1, 2, 3]  # every epoch once: none lost, none logged twice


def test_an_engine_without_the_optimizer_is_refused_before_spark_starts(tmp_path):
    """`train cnn --backend bigdl` takes the image default Nadam, which BigDL lacks: one
    line naming it and the optimizers BigDL has, before Spark, TensorFlow or MLflow start."""
    import json
    import subprocess
    import sys

    data = tmp_path / "jets"
    data.mkdir()  # only the metadata is read before the refusal
    (data / "hepspark_dataset.json").write_text(json.dumps(
        {"format": "hepspark-images", "kind": "jets", "num_classes": 2}))
    probe = ("import sys\nfrom hepspark.cli import main\n"
             f"code = main(['train', 'cnn', '--data', {str(data)!r}, '--backend', 'bigdl',\n"
             f"             '--tracking-uri', 'sqlite:///{tmp_path}/m.db'])\n"
             "print('EXIT', code, sorted(m for m in ('pyspark.sql', 'tensorflow', 'mlflow',\n"
             "      'bigdl') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert "EXIT 2 []" in done.stdout, done.stdout + done.stderr[-3000:]
    [line] = [x for x in done.stderr.splitlines() if x.startswith("hepspark: error:")]
    assert "nadam" in line and "adam" in line.split("nadam", 1)[1], line
    assert not (tmp_path / "m.db").exists()
