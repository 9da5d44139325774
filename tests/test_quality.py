"""Time to a target quality: computed from epoch records, logged by a real training run."""
from dataclasses import asdict

import mlflow
import pytest

from hepspark.cli import main
from hepspark.config import TrainConfig
from hepspark.kinds import HIGGS
from hepspark.quality import HIGGS_TARGET_AUC, QualityTarget, time_to_target
from hepspark.records import EpochRecord

EPOCHS = [EpochRecord(1, 4.0, 100, 0.6, val_auc=0.80), EpochRecord(2, 3.0, 100, 0.5, val_auc=0.86),
          EpochRecord(3, 2.5, 100, 0.4, val_auc=0.84)]


def test_the_first_epoch_at_or_above_the_target_counts_with_every_epoch_before_it():
    reached = time_to_target([asdict(e) for e in reversed(EPOCHS)], QualityTarget("val_auc", 0.85))
    assert (reached.reached, reached.time_s, reached.epoch, reached.epochs_run) == (True, 7.0, 2, 3)
    assert reached.metrics() == {"target_reached": 1.0, "time_to_target_s": 7.0,
                                 "epochs_to_target": 2.0}
    assert reached.format() == "7.0 s (epoch 2)"
    exact = time_to_target([asdict(e) for e in EPOCHS], QualityTarget("val_auc", 0.80))
    assert (exact.time_s, exact.epoch) == (4.0, 1)  # "reached" includes equality


def test_a_target_never_reached_is_said_so_and_has_no_time():
    missed = time_to_target([asdict(e) for e in EPOCHS], QualityTarget("val_auc", 0.9))
    assert not missed.reached and missed.time_s is None and missed.epochs_run == 3
    assert missed.metrics() == {"target_reached": 0.0}
    assert missed.format() == "not reached in 3 epoch(s)"
    # accuracy targets read val_accuracy; epochs without it never reach
    assert not time_to_target([asdict(e) for e in EPOCHS],
                              QualityTarget("val_accuracy", 0.5)).reached


def test_targets_are_checked_and_the_flag_overrides_the_kinds_default():
    with pytest.raises(ValueError, match=r"must be in \(0, 1\].*--target-auc"):
        QualityTarget("val_auc", 85)
    with pytest.raises(ValueError, match="target_quality"):
        TrainConfig(data="x", target_quality=0.0)
    assert HIGGS.quality_target(TrainConfig(data="x"), None) == QualityTarget("val_auc",
                                                                             HIGGS_TARGET_AUC)
    assert HIGGS.quality_target(TrainConfig(data="x", target_quality=0.7), None).value == 0.7
    # changing the target never makes a checkpoint unusable
    assert TrainConfig(data="x").mismatches(TrainConfig(data="x", target_quality=0.6)) == []


def test_a_real_training_logs_its_time_to_target(higgs_dataset, sqlite_tracking_uri, capsys):
    common = ["train", "higgs", "--data", higgs_dataset, "--epochs", "2", "--width", "16",
              "--depth", "1", "--tracking-uri", sqlite_tracking_uri, "--experiment", "ttt"]
    assert main([*common, "--target-auc", "0.5"]) == 0
    assert "time to val AUC 0.5" in capsys.readouterr().out
    assert main([*common, "--target-auc", "0.999"]) == 0
    out = capsys.readouterr().out
    assert "time to val AUC 0.999" in out and "not reached in 2 epoch(s)" in out
    client = mlflow.MlflowClient(sqlite_tracking_uri)
    exp = client.get_experiment_by_name("ttt")
    easy, hard = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    assert easy.data.params["target_metric"] == "val_auc"
    assert float(easy.data.params["target_value"]) == 0.5
    assert easy.data.metrics["target_reached"] == 1.0
    times = sorted(client.get_metric_history(easy.info.run_id, "epoch_wall_time_s"),
                   key=lambda m: m.step)
    # a random start is not below AUC 0.5 after a full epoch: reached in epoch 1
    assert easy.data.metrics["epochs_to_target"] == 1.0
    assert easy.data.metrics["time_to_target_s"] == pytest.approx(times[0].value)
    assert hard.data.metrics["target_reached"] == 0.0
    assert "time_to_target_s" not in hard.data.metrics
