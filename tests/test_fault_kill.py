"""Executors killed mid-epoch on a real standalone cluster, for BigDL and Horovod jobs.

The ``cluster`` tests spark-submit ``train_higgs.py`` to a 2-worker cluster this module
starts, wait for the first epoch checkpoint, then SIGKILL one executor JVM and everything
under it (its Python workers, Horovod's rank process): what a machine lost in the middle of
an epoch leaves behind. The job must either recover by itself (BigDL: Spark reschedules the
tasks on a new executor and BigDL retries the iteration) or stop with a message naming
``--resume``, after which ``--resume`` must finish the run. Either way the MLflow run ends
up with every epoch logged exactly once, in a single run.

One kill per engine (after the first checkpoint) runs in ``make test``; the kills after
the second checkpoint are cluster-marked. The executor-kill runs are not compared with an
uninterrupted run's weights: neither engine is deterministic across a kill (BigDL retries
the iteration with other partitions' timing and order; Horovod ranks read their shards
through Petastorm, whose reader pool delivers row groups in a timing-dependent order, and
all-reduce sums in the order ranks arrive), so the test
checks what is deterministic: one run, every epoch logged once, the last epoch checkpointed.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from hepspark.cluster import executor_pids, process_tree, standalone_cluster, submit_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOB = os.path.join(ROOT, "spark_jobs", "train_higgs.py")
SPARK_SUBMIT = os.path.join(os.path.dirname(sys.executable), "spark-submit")
ENV = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
       "SPARK_LOCAL_IP": "127.0.0.1"}
EPOCH_METRICS = ("epoch_wall_time_s", "rows_per_s", "train_loss", "val_loss", "val_auc")


# ------------------------------------------------------------------ no daemons (fast)
def test_process_tree_finds_grandchildren_and_stops_at_the_leaves():
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True); time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert process_tree(parent.pid) == [child]
        assert process_tree(child) == []
    finally:
        for pid in process_tree(parent.pid):
            os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()


def test_ranks_get_settings_but_not_the_drivers_paths(monkeypatch, spark):
    from hepspark.backends.horovod_backend import rank_environment, rank_python

    monkeypatch.setenv("PYTHONHOME", "/driver/base")
    monkeypatch.setenv("VIRTUAL_ENV", "/driver/venv")
    monkeypatch.setenv("PYTHONPATH", "/driver/src")
    monkeypatch.setenv("HEPSPARK_FAIL_RANK_AT_EPOCH", "1:2")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "secret")
    env = rank_environment(3)
    # The executor's own environment stays underneath (Horovod's task service adds these).
    assert not {"PATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONPATH"} & set(env)
    assert env["HEPSPARK_FAIL_RANK_AT_EPOCH"] == "1:2"
    assert not {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_PASSWORD"} & set(env)  # no MLflow
    assert env["OMP_NUM_THREADS"] == "3" and env["TF_USE_LEGACY_KERAS"] == "1"
    monkeypatch.setenv("HOROVOD_CYCLE_TIME", "2.5")  # Horovod's own settings pass through
    assert rank_environment(3)["HOROVOD_CYCLE_TIME"] == "2.5"
    # Ranks run the interpreter the executors' Python workers run (with --archives, the
    # shipped env's), which here is this venv's; tests/test_archives.py covers the other.
    from hepspark.session import executor_python

    assert rank_python(spark) == spark.sparkContext.pythonExec == executor_python(spark)
    # ... and not the driver's sys.executable (equal to it here, so make them differ)
    monkeypatch.setattr(spark.sparkContext, "pythonExec", "./env/bin/python")
    assert rank_python(spark) == "./env/bin/python"


def test_a_failed_epoch_says_how_to_continue():
    from hepspark.backends.base import TrainingFailedError, training_failed
    from hepspark.config import TrainConfig

    error = RuntimeError("Job aborted due to stage failure: ExecutorLostFailure\n at ...")
    what = "BigDL training failed in epoch 2"
    with_ckpt = training_failed(what, TrainConfig(data="d", checkpoint_dir="/ck"), error)
    assert isinstance(with_ckpt, TrainingFailedError)
    assert "epoch 2" in str(with_ckpt) and "--resume /ck" in str(with_ckpt)
    assert "ExecutorLostFailure" in str(with_ckpt) and "at ..." not in str(with_ckpt)
    without = str(training_failed(what, TrainConfig(data="d"), error))
    assert "--checkpoint-dir" in without and "--resume /" not in without


# ------------------------------------------------------------- a real 2-worker cluster
@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with standalone_cluster(workers=2, cores_per_worker=1, memory="1g",
                            state_dir=str(tmp_path_factory.mktemp("cluster"))) as info:
        yield info


def submit(cluster, data, tmp_path, backend, extra, log):
    argv = [SPARK_SUBMIT, "--master", cluster.master_url, "--executor-cores", "1", JOB,
            "--data", data, "--backend", backend, "--executors", "2", "--width", "32",
            "--checkpoint-dir", str(tmp_path / "ckpt"), "--experiment", "faults",
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", *extra]
    return subprocess.Popen(argv, env={**ENV, **submit_env(cluster)}, cwd=tmp_path, stdout=log,
                            stderr=subprocess.STDOUT,
                            text=True)


def kill_an_executor(cluster, proc, ckpt, after_epoch: int, victim: int,
                     timeout_s: float = 420) -> int:
    """Wait until ``after_epoch`` is checkpointed, then SIGKILL executor JVM number
    ``victim`` (of the workers' executors, in PID order) and its process tree. Returns the
    epochs checkpointed at the kill (it must be mid-run)."""
    deadline = time.monotonic() + timeout_s
    while not os.path.isdir(ckpt / f"epoch-{after_epoch:04d}"):
        assert proc.poll() is None, "the job ended before its first checkpoint"
        assert time.monotonic() < deadline, "no first checkpoint in time"
        time.sleep(0.2)
    victims = executor_pids(cluster)
    assert len(victims) == 2, f"expected one executor per worker, found {victims}"
    tree = [victims[victim], *process_tree(victims[victim])]
    done = sorted(os.listdir(ckpt))
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len([d for d in done if d.startswith("epoch-")])


def one_run_every_epoch_once(tmp_path, epochs: int):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("faults")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    run = runs[0]
    assert run.info.status == "FINISHED"
    for name in EPOCH_METRICS:
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, name))
        assert steps == list(range(1, epochs + 1)), (name, steps)
    assert "test_auc" in run.data.metrics
    return run


# One kill per engine (after the first checkpoint) runs in `make test`; the second kill
# point is cluster-marked.
@pytest.mark.parametrize("after_epoch", [1, pytest.param(2, marks=pytest.mark.cluster)])
@pytest.mark.parametrize(("backend", "epochs", "batch"), [("bigdl", 4, 500),
                                                          ("horovod", 6, 100)])
def test_a_killed_executor_is_recovered_or_resumed_with_every_epoch_logged_once(
    cluster, higgs_dataset, tmp_path, backend, epochs, batch, after_epoch
):
    if backend == "horovod":
        pytest.importorskip("horovod.spark")
    extra = ["--epochs", str(epochs), "--batch-size", str(batch)]
    log_path = tmp_path / "first.log"
    with open(log_path, "w") as log:
        proc = submit(cluster, higgs_dataset, tmp_path, backend, extra, log)
        try:
            # a different executor each time (whichever holds Horovod's rank 0 or not)
            at_kill = kill_an_executor(cluster, proc, tmp_path / "ckpt", after_epoch,
                                       victim=after_epoch - 1)
            code = proc.wait(timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    first = log_path.read_text()
    assert at_kill < epochs, "the kill came after the last epoch: not mid-run"
    if code == 0:
        outcome = "recovered"
    else:
        # Stopped: one clear line naming the way on, exit 4, a checkpoint to resume from.
        assert code == 4, first[-4000:]
        assert f"--resume {tmp_path / 'ckpt'}" in first, first[-4000:]
        assert "Traceback" not in first.split("hepspark: error:")[-1]
        with open(tmp_path / "resume.log", "w") as log:
            again = submit(cluster, higgs_dataset, tmp_path, backend,
                           [*extra, "--resume", str(tmp_path / "ckpt")], log)
            code = again.wait(timeout=900)
        resumed = (tmp_path / "resume.log").read_text()
        assert code == 0, resumed[-4000:]
        assert "continuing MLflow run" in resumed
        outcome = "resumed"
    print(f"\n[fault] {backend}: executor {after_epoch - 1} killed after {at_kill} "
          f"checkpointed epoch(s) of {epochs}: {outcome}", flush=True)
    one_run_every_epoch_once(tmp_path, epochs)
    assert sorted(d for d in os.listdir(tmp_path / "ckpt") if d.startswith("epoch-"))[-1] \
        == f"epoch-{epochs:04d}"
