"""The scaling sweep: its plan, and a real sweep of spark-submit jobs into a sqlite MLflow."""
import os
from dataclasses import replace

import mlflow
import pytest

from hepspark.bench.sweep import (
    CEILING_TAG,
    KEY_TAG,
    NODES_TAG,
    Combination,
    SweepConfig,
    job_command,
    plan,
    run_sweep,
)
from hepspark.cli import main
from hepspark.cpusets import format_cpus
from hepspark.tags import DRIVER_CPUS_TAG, LINK_TAG, WORKER_CPUS_TAG


def config(**overrides) -> SweepConfig:
    values = dict(data="/data/higgs", backends=("bigdl", "horovod"), executors=(2, 1),
                  optimizers=("adam", "sgd"), local=True)
    return SweepConfig(**{**values, **overrides})


def test_plan_runs_baselines_first_then_node_count_by_node_count():
    labels = [c.label.removesuffix("-b1000") for c in plan(config())]
    assert labels == ["keras-adam-x1", "keras-sgd-x1",
                      "bigdl-adam-x1", "bigdl-sgd-x1", "horovod-adam-x1", "horovod-sgd-x1",
                      "bigdl-adam-x2", "bigdl-sgd-x2", "horovod-adam-x2", "horovod-sgd-x2"]
    assert [c.label for c in plan(config(baseline=False, backends=("horovod",),
                                         optimizers=("sgd",), batch_sizes=(2000, 500)))] == [
        "horovod-sgd-x1-b500", "horovod-sgd-x1-b2000", "horovod-sgd-x2-b500",
        "horovod-sgd-x2-b2000"]


@pytest.mark.parametrize("scaling, horovod, bigdl", [("per-executor", 1000, 4000),
                                                     ("global", 250, 1000)])
def test_batch_per_backend_follows_the_batch_scaling(scaling, horovod, bigdl):
    cfg = config(batch_scaling=scaling)
    assert Combination("horovod", "adam", 4, 1000).batch_size(cfg) == horovod  # per rank
    assert Combination("torch", "adam", 4, 1000).batch_size(cfg) == horovod  # per rank too
    assert Combination("bigdl", "adam", 4, 1000).batch_size(cfg) == bigdl  # global


def test_the_torch_engine_is_swept_with_one_rank_per_executor():
    argv = job_command(config(local=False, backends=("torch",)),
                       Combination("torch", "adam", 2), "spark://127.0.0.1:7077", {},
                       "sqlite:///x.db")
    assert argv[argv.index("--backend") + 1] == "torch"
    assert argv[argv.index("--executors") + 1] == "2"


def test_key_tells_measurements_apart():
    combo = Combination("bigdl", "adam", 2)
    keys = {combo.key(cfg) for cfg in (config(), config(epochs=5), config(data="/other"),
                                       config(local=False), config(batch_scaling="global"),
                                       config(link="loopback-1gbit"))}
    keys.add(Combination("bigdl", "adam", 2, 700).key(config()))
    assert len(keys) == 7


def test_standalone_jobs_ask_for_exactly_their_cores():
    cfg = config(local=False, cores_per_executor=2)
    argv = job_command(cfg, Combination("horovod", "adam", 3), "spark://127.0.0.1:7077",
                       {"k": "v"}, "sqlite:///x.db")
    assert argv[argv.index("--total-executor-cores") + 1] == "6"
    assert argv[argv.index("--executor-cores") + 1] == "2"
    assert argv[argv.index("--executors") + 1] == "3"
    assert "k=v" in argv and argv[argv.index("--master") + 1] == "spark://127.0.0.1:7077"


@pytest.mark.parametrize("bad, match", [
    (dict(backends=("tensorflow",)), "backends"),
    (dict(optimizers=("lbfgs",)), "optimizers"),
    (dict(executors=(0, 2)), "node counts"),
    (dict(batch_scaling="weak"), "batch_scaling"),
    (dict(batch_sizes=(0,)), "batch sizes"),
    (dict(master="spark://h:7077"), "not both"),
    (dict(link="veth-1gbit"), "--link 'veth-1gbit': a sweep trains over this machine's loopback"),
    (dict(link="eth0"), "unknown link 'eth0'"),
    (dict(local=False, master="spark://h:7077", link="loopback-1gbit"),
     "shapes this machine's loopback, which the nodes of --master do not use"),
])
def test_bad_sweep_settings_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        config(**bad)


def test_sweep_measures_every_combination_once(scaling_sweep):
    outcome = scaling_sweep.outcome
    assert [r.status for r in outcome.results] == ["measured"] * 6, outcome.format()
    client = mlflow.MlflowClient(scaling_sweep.uri)
    exp = client.get_experiment_by_name("scaling-test")
    runs = {r.data.tags[KEY_TAG].split("|")[0]: r for r in client.search_runs([exp.experiment_id])}
    logs = sorted(os.listdir(scaling_sweep.root / "logs"))
    assert sorted(runs) == ["bigdl-sgd-x1", "bigdl-sgd-x2", "horovod-sgd-x1", "horovod-sgd-x2",
                            "keras-sgd-x1", "keras-sgd-x2"]
    for label, run in runs.items():
        assert run.info.status == "FINISHED"
        assert run.data.tags[NODES_TAG] == label[-1]
        assert float(run.data.tags[CEILING_TAG]) > 0
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "epoch_wall_time_s")]
        assert steps == [1, 2]
    assert runs["horovod-sgd-x2"].data.params["num_executors"] == "2"
    assert runs["horovod-sgd-x2"].data.params["batch_size"] == "500"  # per rank
    assert runs["bigdl-sgd-x2"].data.params["batch_size"] == "1000"  # global
    assert runs["bigdl-sgd-x2"].data.params["spark_master"] == "local[2]"
    assert runs["keras-sgd-x1"].data.params["model_width"] == "16"
    # pinned nodes: each job ran on its nodes' CPUs only (the backends count the cores
    # they may use from the affinity mask), its driver's CPU set and CPU time are logged
    cpus = scaling_sweep.config.worker_cpus
    for label, run in runs.items():
        nodes = int(label[-1])
        assert run.data.params["host_cores"] == str(nodes), label
        assert run.data.tags[DRIVER_CPUS_TAG] == format_cpus([c for s in cpus[:nodes] for c in s])
        assert run.data.tags[WORKER_CPUS_TAG] == "; ".join(map(format_cpus, cpus[:nodes]))
        assert 0 < run.data.metrics["driver_cpu_time_s"]
        assert 0 < run.data.metrics["driver_cpu_fraction"] <= nodes + 0.5  # CPU s per s
    assert runs["keras-sgd-x1"].data.params["cores_per_executor"] == "1"
    assert any("pinned nodes: node 1 on CPU(s)" in line for line in scaling_sweep.lines)
    # the jobs' epochs were shown as they ended, and their output kept
    assert any("[horovod-sgd-x2-b500] epoch 2/2" in line for line in scaling_sweep.lines)
    assert logs == sorted(f"{k}-b500.log" for k in runs)


def test_a_second_sweep_skips_what_is_measured(scaling_sweep):
    lines: list[str] = []
    again = run_sweep(scaling_sweep.config, progress=lines.append)
    assert [r.status for r in again.results] == ["skipped"] * 6
    assert "6 already measured" in lines[0]
    client = mlflow.MlflowClient(scaling_sweep.uri)
    exp = client.get_experiment_by_name("scaling-test")
    assert len(client.search_runs([exp.experiment_id])) == 6


def test_a_sweep_over_a_shaped_loopback_tags_its_runs_and_restores_lo(higgs_dataset, tmp_path):
    """--link loopback-200mbit: Horovod's two ranks all-reduce over lo held to 200 Mbit/s
    for the sweep (root: tc), the run carries the link, and lo is as it was afterwards."""
    import subprocess

    from hepspark.bench.netns import NetnsUnavailable, shaped_loopback

    try:
        with shaped_loopback(0.2):
            pass
    except NetnsUnavailable as error:
        pytest.skip(f"cannot shape lo here: {error}")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    lines: list[str] = []
    cfg = config(data=higgs_dataset, backends=("horovod",), executors=(2,), optimizers=("sgd",),
                 epochs=1, batch_sizes=(500,), baseline=False, experiment="link-test",
                 tracking_uri=uri, log_dir=str(tmp_path / "logs"), link="loopback-200mbit",
                 train_args=("--width", "16"))
    outcome = run_sweep(cfg, progress=lines.append)
    assert [r.status for r in outcome.results] == ["measured"], outcome.format()
    assert any("lo shaped to 0.2 Gbit/s" in line for line in lines)
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("link-test").experiment_id])
    assert run.data.tags[LINK_TAG] == "loopback-200mbit"
    assert run.data.tags[KEY_TAG].endswith("|link-loopback-200mbit|--width 16")
    assert subprocess.run(["tc", "qdisc", "show", "dev", "lo"], capture_output=True,
                          text=True).stdout.startswith("qdisc noqueue")


def test_a_failing_job_is_reported_and_the_sweep_fails(higgs_dataset, tmp_path, capsys):
    # a job that fails (width 0) is reported with its log; BigDL has no Nadam: that pair is
    # skipped before any job, with the reason
    code = main(["bench", "scaling", "--data", higgs_dataset, "--backends", "bigdl",
                 "--executors", "1", "--optimizers", "sgd,nadam", "--no-baseline", "--local",
                 "--epochs", "1", "--experiment", "scaling-failures",
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                 "--log-dir", str(tmp_path / "failure-logs"),
                 "--train-arg=--width", "--train-arg=0"])
    out = capsys.readouterr().out
    assert code == 1
    assert "0 measured, 0 already in MLflow (skipped), 1 failed" in out
    label = "bigdl-sgd-x1-b1000"
    assert f"FAILED {label}" in out and "width" in out.split(f"FAILED {label}")[1]
    assert "not run as asked: bigdl has no optimizer 'nadam': skipped" in out
    assert os.path.exists(tmp_path / "failure-logs" / f"{label}.log")


def test_pinned_nodes_plan_pinned_baselines_and_keep_their_own_keys():
    pinned = config(worker_cpus=((0,), (1,)), backends=("horovod",), optimizers=("adam",))
    assert [c.label for c in plan(pinned)] == ["keras-adam-x1-b1000", "keras-adam-x2-b1000",
                                               "horovod-adam-x1-b1000", "horovod-adam-x2-b1000"]
    keras1, keras2, _, horovod2 = plan(pinned)
    assert (keras1.cpus(pinned), keras2.cpus(pinned)) == ((0,), (0, 1))
    assert horovod2.cpus(pinned) == (0, 1)  # local[2] on the CPUs of its 2 nodes
    standalone = config(worker_cpus=((0,), (1,)), local=False, driver_cpus=(1,))
    assert Combination("horovod", "adam", 2).cpus(standalone) == (1,)  # the driver's
    assert horovod2.key(pinned) != horovod2.key(config())  # pinned: another measurement
    # a driver placed by hand (here on node 0's core) is another measurement too; the
    # default placement keeps the keys experiments already hold
    on_node = config(worker_cpus=((0,), (1,)), local=False, driver_cpus=(0,))
    apart = replace(on_node, driver_cpus=())
    horovod1 = Combination("horovod", "adam", 1)
    assert horovod1.key(on_node) == horovod1.key(apart) + "|driver0"
    assert "|driver" not in horovod1.key(apart) and "|driver" not in keras1.key(on_node)
    with pytest.raises(ValueError, match="not --master"):
        config(worker_cpus=((0,), (1,)), local=False, master="spark://h:7077")
    with pytest.raises(ValueError, match="cores_per_executor=2"):
        config(worker_cpus=((0,), (1,)), cores_per_executor=2)
    with pytest.raises(ValueError, match="one set per worker"):
        config(worker_cpus=((0,),))  # executors go up to 2


def test_missing_dataset_fails_before_any_job(tmp_path):
    with pytest.raises(FileNotFoundError):
        run_sweep(config(data=str(tmp_path / "nope"), tracking_uri=f"sqlite:///{tmp_path}/m.db"),
                  progress=lambda _: None)


@pytest.mark.cluster
def test_sweep_starts_a_standalone_cluster_per_node_count(higgs_dataset, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    lines: list[str] = []
    outcome = run_sweep(SweepConfig(
        data=higgs_dataset, backends=("horovod", "bigdl"), executors=(1, 2), optimizers=("sgd",),
        epochs=1, batch_sizes=(500,), baseline=False, worker_memory="1g",
        experiment="standalone", tracking_uri=uri, log_dir=str(tmp_path / "logs"),
        train_args=("--width", "16")), progress=lines.append)
    assert [r.status for r in outcome.results] == ["measured"] * 4, outcome.format()
    assert sum("cluster up: spark://127.0.0.1:" in line for line in lines) == 2
    assert sum("stopped" in line for line in lines) == 2
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("standalone")
    for run in client.search_runs([exp.experiment_id]):
        nodes = run.data.tags[NODES_TAG]
        assert run.data.params["spark_master"].startswith("spark://127.0.0.1:")
        assert run.data.params["num_executors"] == nodes  # one executor per worker


def test_a_stopped_sweep_stops_its_running_job(tmp_path):
    """SIGTERM to the sweep (how a batch system stops it) ends the spark-submit job it is
    running too: the job runs in its own process group, which no signal to the sweep reaches
    by itself."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    job = ("import os, time; print('epoch of job pid', os.getpid(), flush=True); "
           "time.sleep(600)")
    sweep = (
        "import sys\n"
        "from hepspark import stopping\n"
        "from hepspark.bench.sweep import _run_job\n"
        "stopping.install()\n"
        f"_run_job([sys.executable, '-c', {job!r}], {str(tmp_path / 'job.log')!r}, 600,\n"
        "         lambda m: print(m, flush=True), 'job', {})\n")
    proc = subprocess.Popen([sys.executable, "-c", sweep], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        job_pid = int(line.split()[-1])
        assert psutil.pid_exists(job_pid), line
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if psutil.Process(job_pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"job {job_pid} still runs after the sweep was stopped")
