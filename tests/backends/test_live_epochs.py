"""The rank engines (torch, Horovod) report each epoch as it ends, while the ranks still
train: rank 0 streams it to the driver (hepspark/backends/ranks.py), which logs it."""
from __future__ import annotations

import pytest

from hepspark.backends import get_backend
from hepspark.config import TrainConfig
from hepspark.data.readers import HiggsDataset
from hepspark.models.config import DenseNetConfig

SMALL = DenseNetConfig(depth=2, width=32)


@pytest.mark.parametrize("backend", ["torch", "horovod"])
def test_each_epoch_is_in_mlflow_while_the_job_still_runs(spark, higgs_dataset, tmp_path,
                                                           backend):
    """Rank 0 streams each epoch to the driver as it ends: epoch 1's metrics are in the
    MLflow store (a sqlite file, read by a fresh client) while the ranks still train.
    (Horovod's epochs used to reach MLflow only when the job returned.)"""
    pytest.importorskip({"torch": "torch", "horovod": "horovod.spark"}[backend])
    import mlflow

    from hepspark.tracking import Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, f"{backend}-live")
    seen = []  # (epoch, metric steps in MLflow, Spark jobs running) at each epoch end

    def on_epoch_end(record):
        tracker.log_epoch(record)
        steps = [m.step for m in mlflow.MlflowClient(uri).get_metric_history(
            tracker.run_id, "val_auc")]
        seen.append((record.epoch, steps,
                     len(spark.sparkContext.statusTracker().getActiveJobsIds())))

    # 6 epochs: epoch 1 must reach the driver while the job runs, and on a slow machine the
    # driver's thread took longer than 2 short epochs to log it (CI, once in two runs)
    config = TrainConfig(data=higgs_dataset, backend=backend, epochs=6, batch_size=500,
                         num_executors=2, model=SMALL, features="high")
    with tracker.run("live", {"backend": backend}):
        get_backend(backend).fit(config, HiggsDataset(higgs_dataset, config.features),
                                 on_epoch_end)
    assert seen[0][:2] == (1, [1]), seen
    assert seen[0][2] >= 1, "epoch 1 arrived after the ranks' Spark job had ended"
    assert [s[0] for s in seen] == [1, 2, 3, 4, 5, 6]
