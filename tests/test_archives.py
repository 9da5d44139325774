"""The deploy path end to end: ``hepspark pack-env`` packs this venv, a 2-worker standalone
cluster gets it through ``spark-submit --archives env.tar.gz#env`` with
``PYSPARK_PYTHON=./env/bin/python``, BigDL and Horovod jobs log to a real ``mlflow server``,
and the runs are queried back from that server.

The executors must really run the shipped environment: the BigDL run logs the interpreter
of the executors' Python workers (``executor_python``) and the Horovod run the interpreter
of its ranks (``rank_python``); both must be the unpacked archive's, not this venv's.

All ``cluster``-marked: packing the 2.7 GB venv takes a minute or more on 2 cores and
writes a ~1 GB archive (into the test's temporary directory, removed afterwards).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hepspark.cluster import free_port, standalone_cluster, submit_env
from hepspark.mlflow_server import mlflow_server
from hepspark.pack_env import pack_env

pytestmark = pytest.mark.cluster

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOB = os.path.join(ROOT, "spark_jobs", "train_higgs.py")
SPARK_SUBMIT = os.path.join(os.path.dirname(sys.executable), "spark-submit")


@pytest.fixture(scope="module")
def packed_env(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("pack") / "env.tar.gz")
    pack_env(path, progress=lambda _: None)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with mlflow_server(str(tmp_path_factory.mktemp("mlflow-store")), free_port()) as info:
        yield info


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with standalone_cluster(workers=2, cores_per_worker=1, memory="1g",
                            state_dir=str(tmp_path_factory.mktemp("cluster"))) as info:
        yield info


def shipped_env_submit(cluster, archive, argv, cwd):
    """spark-submit as deploy/README.md says, from an environment that names nothing of
    this venv but the driver's interpreter."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("PYSPARK_", "SPARK_", "VIRTUAL_ENV", "PYTHON"))}
    env = {**clean, "PYSPARK_DRIVER_PYTHON": sys.executable,
           "PYSPARK_PYTHON": "./env/bin/python", "SPARK_LOCAL_IP": "127.0.0.1",
           **submit_env(cluster)}  # the cluster's secret
    return subprocess.run(
        [SPARK_SUBMIT, "--master", cluster.master_url, "--executor-cores", "1",
         "--archives", f"{archive}#env", JOB, *argv],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=900,
    )


@pytest.mark.parametrize(("backend", "shipped_param"), [("bigdl", "executor_python"),
                                                        ("horovod", "rank_python")])
def test_a_job_runs_on_the_shipped_env_and_logs_to_the_server(
    cluster, packed_env, server, higgs_dataset, tmp_path, backend, shipped_param
):
    if backend == "horovod":
        pytest.importorskip("horovod.spark")
    import mlflow

    experiment = f"archives-{backend}"
    result = shipped_env_submit(cluster, packed_env, [
        "--data", higgs_dataset, "--backend", backend, "--executors", "2", "--epochs", "2",
        "--batch-size", "500", "--width", "32", "--experiment", experiment,
        "--tracking-uri", server.tracking_uri, "--model-dir", str(tmp_path / "model"),
    ], cwd=tmp_path)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-4000:])
    client = mlflow.MlflowClient(server.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["backend"] == backend
    assert run.data.params["spark_master"] == cluster.master_url
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_auc"))
    assert steps == [1, 2]
    assert run.data.metrics["test_auc"] > 0.5
    # Where the executors' code ran: inside the unpacked archive in a worker's work dir.
    pythons = run.data.params[shipped_param].split(",")
    for python in pythons:
        assert python.endswith("env/bin/python"), pythons
        assert "/app-" in python, pythons  # WORKER_DIR/app-ID/EXECUTOR_ID/env/bin/python
        assert not python.startswith(sys.prefix), pythons
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts, "no artifacts reached the server"
