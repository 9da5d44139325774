"""Horovod-on-Spark trains the HIGGS DNN with real ranks in the shared local[2] session."""
from __future__ import annotations

import os

import numpy as np
import pytest

from hepspark.backends import get_backend
from hepspark.backends.horovod_backend import FAIL_RANK_ENV
from hepspark.config import TrainConfig
from hepspark.data.readers import HiggsDataset
from hepspark.models.config import DenseNetConfig

pytest.importorskip("horovod.spark", reason="Horovod is part of 'make install'")

SMALL = DenseNetConfig(depth=2, width=32)


def fit(higgs_dataset, **overrides):
    config = TrainConfig(data=higgs_dataset, backend="horovod",
                         **{"epochs": 2, "batch_size": 500, "num_executors": 2, **overrides})
    records = []
    result = get_backend("horovod").fit(config, HiggsDataset(higgs_dataset, config.features),
                                        records.append)
    return config, records, result


def test_two_ranks_learn_and_end_with_identical_weights(spark, higgs_dataset, tmp_path,
                                                        monkeypatch):
    # ranks take the driver's HOROVOD_* variables: rank 0 writes a timeline
    monkeypatch.setenv("HOROVOD_TIMELINE", str(tmp_path / "timeline.json"))
    config, records, result = fit(higgs_dataset, epochs=3, optimizer="adam")
    # identical weights on every rank are checked inside fit (it raises otherwise); the
    # digests it compared are what each rank computed from its own final weights
    assert [r.epoch for r in records] == [1, 2, 3]
    assert records[-1].val_auc > 0.6, records  # chance 0.5 (see test_keras_backend)
    assert records[-1].train_loss < records[0].train_loss
    ds = HiggsDataset(higgs_dataset)
    # an epoch is a pass's worth of rows, however the row groups fall to the two ranks
    steps = ds.rows("train") // (500 * 2)
    assert all(r.rows == steps * 500 * 2 > ds.rows("train") - 1000 for r in records)
    x, y = ds.load("test")
    scores = result.predict(x)
    assert scores.shape == y.shape and np.all((scores >= 0) & (scores <= 1))
    assert result.info["parameters"] == config.model.num_parameters(28)
    assert result.info["threads_per_rank"] == 1
    # one grouped gradient all-reduce per step, all of them in the timeline
    from hepspark.bench.horovod_timeline import format_summary, summarize

    summary = summarize(str(tmp_path / "timeline.json"), skip_fraction=0)
    assert summary.steps == 3 * steps and "Grouped" in summary.tensor, summary
    phases = summary.phases
    assert 0 < phases["GLOO_ALLREDUCE"].median_ms <= phases["ALLREDUCE"].median_ms
    assert summary.period.median_ms > phases["ALLREDUCE"].median_ms
    assert "outside the exchange" in format_summary(summary)


@pytest.mark.parametrize("optimizer", ["sgd", "adamax", "adadelta", "adagrad", "nadam",
                                       "rmsprop"])
def test_every_optimizer_runs_distributed(spark, higgs_dataset, optimizer):
    _, records, result = fit(higgs_dataset, epochs=1, optimizer=optimizer, model=SMALL,
                             features="high")
    assert np.isfinite(records[0].train_loss)
    assert result.info["learning_rate"] > 0


def test_learning_rate_scaling_is_a_flag(spark, higgs_dataset):
    _, _, plain = fit(higgs_dataset, epochs=1, optimizer="sgd", model=SMALL)
    _, _, scaled = fit(higgs_dataset, epochs=1, optimizer="sgd", model=SMALL,
                       scale_learning_rate=True)
    assert scaled.info["learning_rate"] == pytest.approx(2 * plain.info["learning_rate"])


def test_more_ranks_than_task_slots_is_a_clear_error(spark, higgs_dataset):
    with pytest.raises(ValueError, match="needs 3 Spark task slots"):
        fit(higgs_dataset, num_executors=3)


# Horovod's Spark thread re-raises the job's failure: its traceback is logged, not printed
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dying_rank_fails_promptly_and_resume_finishes(spark, higgs_dataset, tmp_path,
                                                         monkeypatch):
    ckpt = str(tmp_path / "ckpt")
    monkeypatch.setenv(FAIL_RANK_ENV, "1:2")  # rank 1 exits abruptly as epoch 2 starts
    with pytest.raises(RuntimeError, match=f"--resume {ckpt}"):
        fit(higgs_dataset, epochs=3, model=SMALL, checkpoint_dir=ckpt)
    assert sorted(os.listdir(ckpt)) == ["epoch-0001"]
    monkeypatch.delenv(FAIL_RANK_ENV)
    _, records, _ = fit(higgs_dataset, epochs=3, model=SMALL, checkpoint_dir=ckpt, resume=True)
    assert [r.epoch for r in records] == [1, 2, 3]
    assert records[2].train_loss < records[0].train_loss
    assert sorted(os.listdir(ckpt)) == ["epoch-0002", "epoch-0003"]


# Horovod's Spark thread re-raises the job's failure: its traceback is logged, not printed
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_stalled_rank_ends_the_job_after_the_stall_timeout(spark, higgs_dataset, tmp_path,
                                                             monkeypatch):
    """A rank that stalls (alive, not progressing) used to hold the job for ever: its peers
    waited in the all-reduce and horovod.spark.run waited for it. Now Horovod's stall
    shutdown and the driver's watchdog end it after --stall-timeout-s, exit 4 with --resume."""
    import time

    from hepspark.backends.base import TrainingFailedError
    from hepspark.backends.horovod_backend import STALL_RANK_ENV

    ckpt = str(tmp_path / "ckpt")
    monkeypatch.setenv(STALL_RANK_ENV, "1:2")  # rank 1 sleeps as epoch 2 starts
    start = time.monotonic()
    with pytest.raises(TrainingFailedError, match=r"Horovod training stalled: no progress "
                                                  r"for 20 s \(--stall-timeout-s\)") as info:
        fit(higgs_dataset, epochs=3, model=SMALL, features="high", checkpoint_dir=ckpt,
            stall_timeout_s=20)
    elapsed = time.monotonic() - start
    assert f"--resume {ckpt}" in str(info.value)
    assert elapsed < 150, elapsed  # epoch 1, then 20 s without progress, then the stop
    assert sorted(os.listdir(ckpt)) == ["epoch-0001"]
    # the Spark session is still usable for the next job
    assert spark.sparkContext.parallelize(range(4), 2).sum() == 6


def test_a_ranks_stream_ends_with_the_runs_last_step_and_is_not_autotuned(higgs_dataset):
    # An endless, autotuned stream kept fit() from returning until tf.data's model thread
    # woke (up to a minute after the last epoch at 10M rows): the stream must end with the
    # run's steps, cross shard passes in between, and carry autotune off.
    from hepspark.backends.horovod_remote import read_shard
    from hepspark.backends.tasks import Task

    config = TrainConfig(data=higgs_dataset, batch_size=500)
    task = Task.open(config)
    per_pass = task.dataset.shard_rows("train", 0, 2) // 500
    stream = read_shard(task, rank=0, size=2, first_pass=0, batches=2 * per_pass + 3)
    assert stream.options().autotune.enabled is False
    batches = list(stream.as_numpy_iterator())
    assert len(batches) == 2 * per_pass + 3
    assert all(x.shape == (500, 28) and y.shape == (500,) for x, y in batches)
    # the second pass is the shard reshuffled, not the first pass again
    assert not np.array_equal(batches[0][1], batches[per_pass][1])
