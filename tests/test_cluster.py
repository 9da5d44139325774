"""A real Spark standalone cluster on 127.0.0.1: up, used by spark-submit and training, down.

The unmarked tests start no Spark daemon (fast, in ``make test``); the ``cluster`` tests
share one 2-worker x 1-core cluster started once for this module.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict

import pytest

from hepspark import cluster as cluster_module
from hepspark.cli import main
from hepspark.cluster import (
    MASTER_CLASS,
    STATE_FILE,
    ClusterError,
    ClusterInfo,
    alive_workers,
    cluster_status,
    running_cluster,
    spark_submit_command,
    standalone_cluster,
    start_cluster,
    stop_cluster,
    submit_env,
)

VENV_BIN = os.path.dirname(sys.executable)
ENV = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
       "SPARK_LOCAL_IP": "127.0.0.1"}


def write_state(state_dir, master_pid: int, worker_pids: list[int]) -> str:
    info = ClusterInfo(
        master_url="spark://127.0.0.1:1", web_ui="http://127.0.0.1:1", master_port=1,
        web_ui_port=1, master_pid=master_pid, worker_pids=worker_pids,
        workers=len(worker_pids), cores_per_worker=1, memory="1g", state_dir=str(state_dir),
        master_log="master.log", worker_logs=["worker-1.log"],
    )
    path = state_dir / STATE_FILE
    path.write_text(json.dumps(asdict(info)))
    return str(path)


def wait_for_command_line(pid: int, word: str, timeout_s: float = 10) -> None:
    # Popen returns once exec starts; /proc/PID/cmdline reads empty for a moment after.
    deadline = time.monotonic() + timeout_s
    while word.encode() not in open(f"/proc/{pid}/cmdline", "rb").read():
        assert time.monotonic() < deadline, f"pid {pid} never showed {word}"
        time.sleep(0.05)


# ------------------------------------------------------------------ no daemons (fast)
def test_stopping_nothing_is_a_clean_no_op(tmp_path, capsys):
    assert stop_cluster(str(tmp_path)) == []
    assert main(["cluster", "down", "--state-dir", str(tmp_path)]) == 0
    assert "nothing to stop" in capsys.readouterr().out
    assert main(["cluster", "status", "--state-dir", str(tmp_path)]) == 1
    assert "none recorded" in capsys.readouterr().out


def test_a_stale_state_file_is_replaced_and_never_used_to_signal_other_processes(tmp_path):
    # PIDs recorded by a cluster long gone, now reused by other programs (this test run)
    path = write_state(tmp_path, master_pid=os.getpid(), worker_pids=[os.getppid()])
    status = cluster_status(str(tmp_path))
    assert status["master_alive"] is False and status["workers_alive"] == [False]
    assert running_cluster(str(tmp_path)) is None  # what start_cluster checks first
    assert not os.path.exists(path)  # stale: deleted, so a new cluster may be recorded
    write_state(tmp_path, master_pid=os.getpid(), worker_pids=[os.getppid()])
    assert stop_cluster(str(tmp_path)) == []  # nothing signalled: we are still here
    assert not os.path.exists(path)


def test_a_running_cluster_is_refused_and_down_stops_exactly_its_pids(
    tmp_path, capsys, monkeypatch
):
    # Should the refusal ever break, fail here instead of starting real daemons.
    monkeypatch.setattr(cluster_module, "spark_home", lambda: pytest.fail("daemons started"))
    # A stand-in whose command line names the master class, as a real master's does.
    fake_master = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", MASTER_CLASS]
    )
    try:
        wait_for_command_line(fake_master.pid, MASTER_CLASS)
        path = write_state(tmp_path, master_pid=fake_master.pid, worker_pids=[os.getpid()])
        with pytest.raises(ClusterError, match="still runs.*hepspark cluster down"):
            start_cluster(1, 1, state_dir=str(tmp_path))
        assert os.path.exists(path)
        assert main(["cluster", "down", "--state-dir", str(tmp_path)]) == 0
        assert f"stopped pids {fake_master.pid}\n" in capsys.readouterr().out
        assert not os.path.exists(f"/proc/{fake_master.pid}")  # terminated and reaped
        assert not os.path.exists(path)
        assert stop_cluster(str(tmp_path)) == []
    finally:
        if os.path.exists(f"/proc/{fake_master.pid}"):
            fake_master.kill()
            fake_master.wait()


def test_an_unreadable_state_file_is_a_clear_error(tmp_path):
    (tmp_path / STATE_FILE).write_text("{not json")
    with pytest.raises(ClusterError, match="delete it"):
        stop_cluster(str(tmp_path))


@pytest.mark.parametrize(("args", "message"), [
    ({"workers": 0, "cores_per_worker": 1}, "workers must be >= 1"),
    ({"workers": 1, "cores_per_worker": 0}, "cores_per_worker must be >= 1"),
    ({"workers": 1, "cores_per_worker": 1, "memory": "2 GB"}, "memory must look like"),
])
def test_bad_sizes_are_refused_before_anything_starts(args, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        start_cluster(**args, state_dir=str(tmp_path))
    assert not os.path.exists(tmp_path / "logs")


@pytest.mark.parametrize("action", ["up", "down", "status"])
def test_cluster_commands_have_help(action, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["cluster", action, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: hepspark cluster {action}" in out and "--state-dir" in out


# ------------------------------------------------------------- a real 2-worker cluster
@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state_dir = str(tmp_path_factory.mktemp("cluster"))
    with standalone_cluster(workers=2, cores_per_worker=1, memory="1g",
                            state_dir=state_dir) as info:
        yield info


@pytest.mark.cluster
def test_two_workers_register_and_a_second_up_is_refused(cluster, capsys):
    assert alive_workers(cluster.web_ui) == 2
    status = cluster_status(cluster.state_dir)
    assert status["master_alive"] and status["workers_alive"] == [True, True]
    assert status["registered_workers"] == 2
    assert main(["cluster", "status", "--state-dir", cluster.state_dir]) == 0
    assert "registered with the master: 2 of 2" in capsys.readouterr().out
    with pytest.raises(ClusterError, match="still runs"):
        start_cluster(1, 1, state_dir=cluster.state_dir)
    text = cluster.format()
    assert cluster.master_url in text and cluster.web_ui in text
    assert f"--master {cluster.master_url}" in text and "spark_jobs/train_higgs.py" in text
    assert "hepspark cluster down" in text


@pytest.mark.cluster
def test_spark_submit_runs_on_both_workers(cluster, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(
        "from pyspark.sql import SparkSession\n"
        "sc = SparkSession.builder.getOrCreate().sparkContext\n"
        "print('SUM', sc.parallelize(range(100), 4).map(lambda x: x * x).sum())\n"
        "print('EXECUTORS', sc._jsc.sc().getExecutorMemoryStatus().size() - 1)  # - driver\n"
        "print('KILL_ENABLED', sc.getConf().get('spark.ui.killEnabled'))\n"
        "import os, psutil\n"  # the driver JVM (spark-submit) runs this script
        "jvm = psutil.Process(os.getppid())\n"
        "print('LISTEN', sorted({c.laddr.ip.removeprefix('::ffff:')\n"
        "                        for c in jvm.net_connections('inet')\n"
        "                        if c.status == psutil.CONN_LISTEN}))\n"
    )
    # Exactly the command `hepspark cluster up` prints, in an environment without our vars.
    env, argv = spark_submit_command(cluster, str(script))
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("PYSPARK_") and k != "SPARK_LOCAL_IP"}
    result = subprocess.run(argv, env={**clean, **env}, capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SUM 328350" in result.stdout
    assert "EXECUTORS 2" in result.stdout
    # the driver's UI: on 127.0.0.1, without kill links
    assert "KILL_ENABLED false" in result.stdout
    assert "LISTEN ['127.0.0.1']" in result.stdout  # RPC, block manager and the UI


def listening_addresses(pid: int) -> set[str]:
    import psutil

    # a JVM's IPv6 socket shows 127.0.0.1 as ::ffff:127.0.0.1
    return {c.laddr.ip.removeprefix("::ffff:")
            for c in psutil.Process(pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN}


@pytest.mark.cluster
def test_the_master_refuses_a_submit_without_the_secret(cluster, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(
        "from pyspark.sql import SparkSession\n"
        "sc = SparkSession.builder.getOrCreate().sparkContext\n"
        "print('SUM', sc.parallelize(range(10), 2).sum())\n"
    )
    wrong = tmp_path / "wrong-conf"
    wrong.mkdir()
    (wrong / "spark-defaults.conf").write_text(
        "spark.authenticate true\nspark.authenticate.secret not-the-cluster-secret\n")
    env, argv = spark_submit_command(cluster, str(script))
    base = {**ENV, **env}
    base.pop("SPARK_CONF_DIR")
    jobs = {name: subprocess.Popen(argv, env=job_env, cwd=tmp_path, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
            for name, job_env in (("no secret", base),
                                  ("wrong secret", {**base, "SPARK_CONF_DIR": str(wrong)}))}
    for name, job in jobs.items():
        try:
            out = job.communicate(timeout=400)[0]
        finally:
            if job.poll() is None:
                job.kill()
                job.wait()
        assert job.returncode != 0 and "SUM 45" not in out, (name, out[-2000:])
    assert alive_workers(cluster.web_ui) == 2  # the cluster itself is unharmed
    # the secret: owner-only files, on no daemon's command line
    conf = os.path.join(cluster.conf_dir, "spark-defaults.conf")
    secret = cluster_module.cluster_conf(cluster)["spark.authenticate.secret"]
    assert len(secret) >= 32
    assert os.stat(conf).st_mode & 0o777 == 0o600
    assert os.stat(cluster.conf_dir).st_mode & 0o777 == 0o700
    assert os.stat(os.path.join(cluster.state_dir, STATE_FILE)).st_mode & 0o777 == 0o600
    for pid in (cluster.master_pid, *cluster.worker_pids):
        assert secret.encode() not in open(f"/proc/{pid}/cmdline", "rb").read()
    # the master's and the workers' sockets (RPC and web UI) listen on 127.0.0.1 only
    for pid in (cluster.master_pid, *cluster.worker_pids):
        assert listening_addresses(pid) == {"127.0.0.1"}, pid


@pytest.mark.cluster
def test_horovod_trains_with_one_rank_per_worker(cluster, higgs_dataset, tmp_path):
    pytest.importorskip("horovod.spark")
    job = os.path.join(os.path.dirname(__file__), "..", "spark_jobs", "train_higgs.py")
    result = subprocess.run(
        [os.path.join(VENV_BIN, "spark-submit"), "--master", cluster.master_url,
         "--executor-cores", "1", job, "--data", higgs_dataset, "--backend", "horovod",
         "--executors", "2", "--epochs", "2", "--batch-size", "500", "--width", "32",
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
        env={**ENV, **submit_env(cluster)}, capture_output=True, text=True, timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "backend horovod" in result.stdout and "test AUC" in result.stdout


@pytest.mark.cluster
def test_bigdl_trains_over_both_workers_with_a_plain_spark_submit(cluster, higgs_dataset,
                                                                    tmp_path):
    # no --jars: the job puts BigDL's jars on the driver's class loader itself
    job = os.path.join(os.path.dirname(__file__), "..", "spark_jobs", "train_higgs.py")
    result = subprocess.run(
        [os.path.join(VENV_BIN, "spark-submit"), "--master", cluster.master_url,
         "--executor-cores", "1", job, "--data", higgs_dataset, "--backend", "bigdl",
         "--epochs", "2", "--batch-size", "500", "--width", "32",
         "--checkpoint-dir", str(tmp_path / "ckpt"),
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
        env={**ENV, **submit_env(cluster)}, capture_output=True, text=True, timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "backend bigdl" in result.stdout and "test AUC" in result.stdout
    assert "epoch 2/2" in result.stdout
    # (mlflow_run.json beside them: the run a --resume continues)
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["epoch-0001", "epoch-0002",
                                                      "mlflow_run.json"]
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.search_runs([e.experiment_id for e in client.search_experiments()])[0]
    assert run.data.params["num_executors"] == "2"
    assert run.data.params["spark_master"] == cluster.master_url


@pytest.fixture(scope="module")
def jets(spark, tmp_path_factory):
    from conftest import make_image_dataset

    return make_image_dataset(spark, tmp_path_factory.mktemp("jets-cluster"), "jets", 1_200,
                              seed=3, row_group_size_mb=1)


@pytest.mark.cluster
@pytest.mark.parametrize("backend", ["bigdl", "horovod", "torch"])
def test_train_cnn_job_on_both_workers(cluster, jets, tmp_path, backend):
    if backend == "horovod":
        pytest.importorskip("horovod.spark")
    if backend == "torch":
        pytest.importorskip("torch", reason="PyTorch is opt-in: 'make install-torch'")
    job = os.path.join(os.path.dirname(__file__), "..", "spark_jobs", "train_cnn.py")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = subprocess.run(
        [os.path.join(VENV_BIN, "spark-submit"), "--master", cluster.master_url,
         "--executor-cores", "1", job, "--data", jets, "--model", "basic_cnn",
         "--filters", "8", "--backend", backend, "--executors", "2", "--optimizer", "adam",
         "--epochs", "2", "--batch-size", "32", "--experiment", "cnn-cluster",
         "--tracking-uri", uri, "--model-dir", str(tmp_path / "model")],
        env={**ENV, **submit_env(cluster)}, capture_output=True, text=True, timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    import mlflow

    client = mlflow.MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("cnn-cluster").experiment_id])[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["spark_master"] == cluster.master_url
    assert run.data.params["backend"] == backend
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_auc"))
    assert steps == [1, 2]
    assert run.data.metrics["test_auc"] > 0.55  # chance 0.5; ~0.8 seen in local mode
    assert os.path.exists(tmp_path / "model" / "model.keras")


@pytest.mark.cluster
def test_sigterm_while_up_waits_for_workers_leaves_no_daemon(tmp_path):
    import psutil

    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hepspark.cli", "cluster", "up", "--workers", "2",
         "--memory", "1g", "--state-dir", str(state)],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        # each daemon's PID is in the state file as soon as it starts: the master's, then
        # both workers' while they are still registering
        deadline, recorded = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                recorded = json.loads((state / STATE_FILE).read_text())
                if len(recorded["worker_pids"]) == 2:
                    break
            time.sleep(0.02)
        assert recorded and len(recorded["worker_pids"]) == 2, proc.poll()
        pids = [recorded["master_pid"], *recorded["worker_pids"]]
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stop_cluster(str(state))
    assert proc.returncode == 143, out
    assert "all workers registered" not in out and "Traceback" not in out
    assert not [pid for pid in pids if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert not (state / STATE_FILE).exists()


@pytest.mark.cluster
def test_down_stops_exactly_the_recorded_daemons(cluster, capsys):
    # Last in this module: the fixture's own stop at teardown is then a no-op.
    pids = [cluster.master_pid, *cluster.worker_pids]
    assert all(os.path.exists(f"/proc/{pid}") for pid in pids)
    assert main(["cluster", "down", "--state-dir", cluster.state_dir]) == 0
    assert "stopped pids" in capsys.readouterr().out
    assert not any(os.path.exists(f"/proc/{pid}") for pid in pids)
    assert not os.path.exists(os.path.join(cluster.state_dir, STATE_FILE))
    assert stop_cluster(cluster.state_dir) == []
    assert main(["cluster", "down", "--state-dir", cluster.state_dir]) == 0
    assert "nothing to stop" in capsys.readouterr().out


def test_pinned_workers_need_cpus_of_their_own(tmp_path, capsys):
    # refused before any daemon starts, naming the CPUs there are
    code = main(["cluster", "up", "--workers", "2", "--cpus-per-worker", "100000",
                 "--state-dir", str(tmp_path)])
    assert code == 2 and "needs 200000 CPUs; this process may use" in capsys.readouterr().err
    code = main(["cluster", "up", "--workers", "2", "--worker-cpus", "0", "0",
                 "--state-dir", str(tmp_path)])
    assert code == 2 and "CPU 0 is in the sets of workers 1 and 2" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / STATE_FILE)


@pytest.mark.cluster
def test_pinned_workers_run_everything_they_start_on_their_own_cpus(higgs_dataset, tmp_path):
    """Isolated nodes: during a real Horovod run on a 2-worker cluster with one CPU per
    worker, every process of each worker's tree (worker JVM, executor JVM, Python workers,
    Horovod's rank processes) is allowed its worker's CPU only, with thread pools of 1."""
    pytest.importorskip("horovod.spark")
    import psutil

    from hepspark.cpusets import allowed_cpus, available_cpus, format_cpus

    cpus = [(cpu,) for cpu in available_cpus()[:2]]
    if len(cpus) < 2:
        pytest.skip("needs 2 CPUs")
    job = os.path.join(os.path.dirname(__file__), "..", "spark_jobs", "train_higgs.py")
    with standalone_cluster(2, 1, "1g", str(tmp_path / "state"), worker_cpus=cpus) as info:
        assert info.worker_cpus == [format_cpus(c) for c in cpus]
        assert "pinned   worker CPUs" in info.format()
        proc = subprocess.Popen(
            [os.path.join(VENV_BIN, "spark-submit"), "--master", info.master_url,
             "--executor-cores", "1", job, "--data", higgs_dataset, "--backend", "horovod",
             "--executors", "2", "--epochs", "3", "--batch-size", "500", "--width", "16",
             "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
            env={**ENV, **submit_env(info)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, cwd=tmp_path)
        seen: dict[int, dict[int, tuple[str, str]]] = {pid: {} for pid in info.worker_pids}
        try:
            while proc.poll() is None:
                for worker in info.worker_pids:
                    with contextlib.suppress(psutil.Error):
                        tree = [psutil.Process(worker)]
                        tree += tree[0].children(recursive=True)
                    for p in tree:
                        with contextlib.suppress(psutil.Error, OSError):
                            seen[worker][p.pid] = (p.name(), allowed_cpus(p.pid),
                                                   p.environ().get("OMP_NUM_THREADS"))
                time.sleep(0.5)
            out = proc.stdout.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, out[-3000:]
    for worker, cpu in zip(info.worker_pids, cpus):
        names = [name for name, _, _ in seen[worker].values()]
        # the worker JVM, its executor JVM and the Python workers running the rank
        assert names.count("java") >= 2 and any(n.startswith("python") for n in names), names
        assert {allowed for _, allowed, _ in seen[worker].values()} == {format_cpus(cpu)}, seen
        assert {omp for _, _, omp in seen[worker].values()} == {"1"}, seen
