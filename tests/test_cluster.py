"""A real Spark standalone cluster on 127.0.0.1: up, used by spark-submit and training, down."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hepspark.cli import main
from hepspark.cluster import (
    STATE_FILE,
    ClusterError,
    alive_workers,
    cluster_status,
    start_cluster,
    stop_cluster,
)

VENV_BIN = os.path.dirname(sys.executable)
ENV = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
       "SPARK_LOCAL_IP": "127.0.0.1"}


def test_stopping_nothing_is_a_clean_no_op(tmp_path, capsys):
    assert stop_cluster(str(tmp_path)) == []
    assert main(["cluster", "down", "--state-dir", str(tmp_path)]) == 0
    assert "nothing to stop" in capsys.readouterr().out
    assert main(["cluster", "status", "--state-dir", str(tmp_path)]) == 1


def test_a_stale_state_file_is_never_used_to_signal_foreign_processes(tmp_path):
    # PIDs recorded by a cluster long gone, now reused by something else (this test run)
    (tmp_path / STATE_FILE).write_text(json.dumps({
        "master_url": "spark://127.0.0.1:1", "web_ui": "http://127.0.0.1:1",
        "master_pid": os.getpid(), "worker_pids": [os.getppid()], "cores_per_worker": 1,
        "memory": "1g", "state_dir": str(tmp_path), "logs": []}))
    assert cluster_status(str(tmp_path))["master_alive"] is False
    assert stop_cluster(str(tmp_path)) == []  # nothing signalled: we are still alive
    assert not (tmp_path / STATE_FILE).exists()


@pytest.mark.parametrize("action", ["up", "down", "status"])
def test_cluster_commands_have_help(action, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["cluster", action, "--help"])
    assert exit_info.value.code == 0
    assert "--state-dir" in capsys.readouterr().out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = str(tmp_path_factory.mktemp("cluster"))
    info = start_cluster(workers=2, cores_per_worker=1, memory="2g", state_dir=state)
    yield info
    stop_cluster(state)


@pytest.mark.cluster
def test_two_workers_register_and_a_second_up_is_refused(cluster):
    assert alive_workers(cluster.web_ui) == 2
    status = cluster_status(cluster.state_dir)
    assert status["master_alive"] and status["workers_alive"] == [True, True]
    with pytest.raises(ClusterError, match="still running"):
        start_cluster(1, 1, state_dir=cluster.state_dir)


@pytest.mark.cluster
def test_spark_submit_runs_on_both_workers(cluster, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(
        "from pyspark.sql import SparkSession\n"
        "sc = SparkSession.builder.getOrCreate().sparkContext\n"
        "print('SUM', sc.parallelize(range(100), 4).map(lambda x: x * x).sum())\n"
        "print('EXECUTORS', sc._jsc.sc().getExecutorMemoryStatus().size() - 1)\n"
    )
    result = subprocess.run(
        [os.path.join(VENV_BIN, "spark-submit"), "--master", cluster.master_url,
         "--executor-cores", "1", str(script)],
        env=ENV, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SUM 328350" in result.stdout
    assert "EXECUTORS 2" in result.stdout


@pytest.mark.cluster
def test_horovod_trains_with_one_rank_per_worker(cluster, higgs_dataset, tmp_path):
    pytest.importorskip("horovod.spark")
    job = os.path.join(os.path.dirname(__file__), "..", "spark_jobs", "train_higgs.py")
    result = subprocess.run(
        [os.path.join(VENV_BIN, "spark-submit"), "--master", cluster.master_url,
         "--executor-cores", "1", job, "--data", higgs_dataset, "--backend", "horovod",
         "--executors", "2", "--epochs", "2", "--batch-size", "500", "--width", "32",
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
        env=ENV, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "backend horovod" in result.stdout and "test AUC" in result.stdout


def test_up_then_down_leaves_no_daemon(tmp_path):
    info = start_cluster(1, 1, memory="1g", state_dir=str(tmp_path))
    pids = [info.master_pid, *info.worker_pids]
    assert sorted(stop_cluster(str(tmp_path))) == sorted(pids)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in pids)
    assert stop_cluster(str(tmp_path)) == []
