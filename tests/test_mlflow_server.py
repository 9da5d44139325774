"""A real `mlflow server` (hepspark mlflow-server): start, train against it, query the run
back, stop it, and a server that goes away in the middle of training.

One server per module (it takes 30-75 s to answer /health on a busy 2-core machine); the
outage tests stop it and start it again on the same store and port.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from hepspark.cli import EXIT_TRACKING_PENDING, main
from hepspark.cluster import free_port
from hepspark.config import TrainConfig
from hepspark.mlflow_server import (
    STATE_FILE,
    ServerError,
    ServerInfo,
    running_server,
    start_server,
    stop_server,
)
from hepspark.models.config import DenseNetConfig
from hepspark.tracking import (
    PENDING_RECORDS,
    Tracker,
    TrackingCallError,
    TrackingSpooledError,
    check_tracking_uri,
    server_healthy,
)
from hepspark.train import train_higgs

SERVICE_HOST = "mlflow.hepspark.svc:5000"  # how a pod reaches the server of deploy/k8s
API_PATH = "/api/2.0/mlflow/experiments/search?max_results=1"
EPOCH_METRICS = ("epoch_wall_time_s", "rows_per_s", "train_loss", "val_loss", "val_auc")


def tiny_config(data: str, epochs: int, **extra) -> TrainConfig:
    return TrainConfig(data=data, epochs=epochs, batch_size=500,
                       model=DenseNetConfig(depth=1, width=16), **extra)


def epoch_steps(client, run_id: str) -> dict[str, list[int]]:
    return {name: sorted(m.step for m in client.get_metric_history(run_id, name))
            for name in EPOCH_METRICS}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    store = str(tmp_path_factory.mktemp("mlflow-store"))
    port = free_port()
    assert main(["mlflow-server", "--detach", "--store", store, "--port", str(port)]) == 0
    info = running_server(store)
    assert info is not None and info.port == port
    yield info
    stop_server(store)


def restart(info: ServerInfo) -> None:
    """The same store and port again, as an operator would after an outage."""
    if not server_healthy(info.tracking_uri):
        start_server(info.store, info.port)


# --------------------------------------------------------------------- no server needed
def test_stop_never_signals_a_process_that_is_not_the_recorded_server(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             start_new_session=True)
    try:
        info = ServerInfo(pid=other.pid, host="127.0.0.1", port=1, store=str(tmp_path),
                          backend_store_uri="sqlite:///x", artifacts="a", log="l")
        (tmp_path / STATE_FILE).write_text(json.dumps(info.__dict__))
        assert running_server(str(tmp_path)) is None  # stale: not an mlflow process
        (tmp_path / STATE_FILE).write_text(json.dumps(info.__dict__))
        assert stop_server(str(tmp_path)) == []
        assert other.poll() is None  # still running
        assert not (tmp_path / STATE_FILE).exists()
    finally:
        other.kill()
        other.wait()


def test_bad_port_is_refused(tmp_path):
    with pytest.raises(ValueError, match="port must be"):
        start_server(str(tmp_path), port=70000)


# ---------------------------------------------------------------------- a real server
def test_server_cli_train_and_query_back(server, higgs_dataset, tmp_path, capsys):
    import mlflow

    with pytest.raises(ServerError, match="still runs"):
        start_server(server.store, free_port())
    assert main(["mlflow-server", "status", "--store", server.store]) == 0
    assert "/health    ok" in capsys.readouterr().out
    code = main(["train", "higgs", "--data", higgs_dataset, "--tracking-uri",
                 server.tracking_uri, "--experiment", "server-cli", "--epochs", "2",
                 "--batch-size", "500", "--depth", "1", "--width", "16"])
    assert code == 0
    client = mlflow.MlflowClient(server.tracking_uri)
    [run] = client.search_runs([client.get_experiment_by_name("server-cli").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["backend"] == "keras" and "test_auc" in run.data.metrics
    assert epoch_steps(client, run.info.run_id)["val_auc"] == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model", "plots", "epochs.json"} <= artifacts
    # the artifacts were uploaded to the server's store, not written by the client
    assert any(files for _, _, files in os.walk(os.path.join(server.store, "artifacts")))


def api_status(port: int, host_header: str, path: str = API_PATH) -> int:
    """HTTP status of a GET to the server on 127.0.0.1 as a client that reached it by the
    name ``host_header`` would send it (a Kubernetes Service name, say)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     headers={"Host": host_header})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_api_refuses_a_host_it_does_not_allow_and_the_check_says_how(
    server, higgs_dataset, capsys
):
    restart(server)
    # MLflow 3.5+: /health answers any Host, the API only localhost and private addresses
    assert api_status(server.port, SERVICE_HOST, "/health") == 200
    assert api_status(server.port, SERVICE_HOST) == 403
    assert api_status(server.port, f"127.0.0.1:{server.port}") == 200
    # 127.1 is 127.0.0.1 to the resolver, but a Host header MLflow does not allow
    uri = f"http://127.1:{server.port}"
    assert server_healthy(uri)  # what the old pre-flight check looked at
    with pytest.raises(TrackingCallError) as refused:
        check_tracking_uri(uri)
    message = str(refused.value)
    assert f"refuses host 127.1:{server.port}" in message
    assert f"--allowed-hosts 127.1:{server.port}" in message and "\n" not in message
    capsys.readouterr()
    code = main(["train", "higgs", "--data", higgs_dataset, "--tracking-uri", uri,
                 "--epochs", "1", "--depth", "1", "--width", "8"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("hepspark: error: the MLflow server")
    assert len(err.splitlines()) == 1 and "--allowed-hosts" in err
    # A log call the server refuses (#14.12): one line too, not an MlflowException trace.
    tracker = Tracker(uri, experiment="refused")
    with pytest.raises(TrackingCallError, match=r"HTTP 403 on starting the run.*--allowed-hosts"):
        with tracker.run("refused", params={}):
            pass


def test_a_foreground_server_allows_the_given_hosts_and_stops_on_sigterm(tmp_path):
    import psutil

    store, port = str(tmp_path / "store"), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hepspark.cli", "mlflow-server", "--store", store, "--port",
         str(port), "--allowed-hosts", SERVICE_HOST],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("TRACKING_URI="):
                break
        assert lines and lines[-1].startswith("TRACKING_URI="), "".join(lines)
        assert api_status(port, SERVICE_HOST) == 200  # allowed by --allowed-hosts
        assert api_status(port, f"localhost:{port}") == 200  # the UI via port-forward
        assert api_status(port, "evil.example:80") == 403
        info = running_server(store)
        assert info is not None and info.allowed_hosts == SERVICE_HOST
        server_pids = {info.pid, *(p.pid for p in psutil.Process(info.pid).children(True))}
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=120)[0]
        assert proc.returncode == 0, "".join(lines) + rest
        assert "stopped pids" in rest
        assert not [pid for pid in server_pids if psutil.pid_exists(pid)
                    and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        assert not os.path.exists(os.path.join(store, STATE_FILE))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stop_server(store)


def test_training_continues_while_the_server_is_down_and_flushes_when_it_returns(
    server, higgs_dataset, tmp_path
):
    import mlflow

    warnings: list[str] = []
    events: list[str] = []

    def progress(line: str) -> None:
        if line.startswith("epoch 2/"):
            events.append(f"stopped {stop_server(server.store)}")
            assert not server_healthy(server.tracking_uri)
        elif line.startswith("epoch 4/"):
            start_server(server.store, server.port)  # epochs 3 and 4 are buffered
            events.append("restarted")

    tracker = Tracker(server.tracking_uri, experiment="outage", warn=warnings.append)
    outcome = train_higgs(tiny_config(higgs_dataset, epochs=6), tracker, progress=progress)
    assert events[0].startswith("stopped [") and events[1] == "restarted"
    assert len(outcome.epochs) == 6
    assert any("unreachable; training continues" in w for w in warnings)
    assert any("answers again" in w for w in warnings)
    client = mlflow.MlflowClient(server.tracking_uri)
    run = client.get_run(outcome.run_id)
    assert run.info.status == "FINISHED"
    assert all(steps == [1, 2, 3, 4, 5, 6] for steps in epoch_steps(client, run.info.run_id)
               .values())  # every epoch once, none lost, none twice
    assert run.data.metrics["test_auc"] == pytest.approx(outcome.summary.test_auc)


def test_a_server_that_never_returns_leaves_an_importable_record(
    server, higgs_dataset, tmp_path, capsys
):
    import mlflow

    restart(server)
    warnings: list[str] = []

    def progress(line: str) -> None:
        if line.startswith("epoch 1/"):
            stop_server(server.store)

    tracker = Tracker(server.tracking_uri, experiment="never-returns", grace_s=1,
                      pending_dir=str(tmp_path), warn=warnings.append)
    with pytest.raises(TrackingSpooledError, match="hepspark mlflow-import") as failure:
        train_higgs(tiny_config(higgs_dataset, epochs=3), tracker, progress=progress)
    exc = failure.value
    assert exc.outcome is not None and len(exc.outcome.epochs) == 3
    pending = exc.pending_dir
    assert pending == str(tmp_path / f"mlflow-pending-{tracker.run_id}")
    records = json.load(open(os.path.join(pending, PENDING_RECORDS)))["records"]
    assert [r["step"] for r in records if r["op"] == "metrics" and r["step"]] == [2, 3]
    assert records[-1] == {"op": "end", "status": "FINISHED"}
    assert any(r["op"] == "artifact" for r in records)

    start_server(server.store, server.port)
    assert main(["mlflow-import", pending, "--tracking-uri", server.tracking_uri]) == 0
    assert not os.path.exists(pending)
    client = mlflow.MlflowClient(server.tracking_uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert all(steps == [1, 2, 3] for steps in epoch_steps(client, tracker.run_id).values())
    assert "test_auc" in run.data.metrics
    assert {"model", "plots"} <= {a.path for a in client.list_artifacts(tracker.run_id)}


def test_the_cli_exits_non_zero_naming_the_import_command(server, higgs_dataset, tmp_path):
    # the whole command as a user runs it; the test stops the server after epoch 1
    restart(server)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hepspark.cli", "train", "higgs", "--data", higgs_dataset,
         "--tracking-uri", server.tracking_uri, "--experiment", "cli-pending",
         "--epochs", "2", "--batch-size", "500", "--depth", "1", "--width", "16",
         "--tracking-grace-s", "0"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    out = []
    for line in proc.stdout:
        out.append(line)
        if line.startswith("epoch 1/2"):
            stop_server(server.store)
    err = proc.stderr.read()
    assert proc.wait(timeout=600) == EXIT_TRACKING_PENDING, err[-3000:]
    assert any("test AUC" in line for line in out)  # the training outcome is still shown
    assert "hepspark mlflow-import" in err and "Traceback" not in err
    assert [p for p in os.listdir(tmp_path) if p.startswith("mlflow-pending-")]


def test_sigterm_during_an_outage_saves_the_buffered_records(server, higgs_dataset, tmp_path):
    """A job stopped with SIGTERM while the server is away: its buffered records (the
    epochs since the outage and the KILLED status) go to the pending directory."""
    restart(server)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hepspark.cli", "train", "higgs", "--data", higgs_dataset,
         "--tracking-uri", server.tracking_uri, "--experiment", "sigterm-pending",
         "--epochs", "200", "--batch-size", "500", "--depth", "1", "--width", "16",
         "--checkpoint-dir", str(tmp_path / "ckpt"), "--tracking-grace-s", "0"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        for line in proc.stdout:
            if line.startswith("epoch 1/"):
                stop_server(server.store)
            if line.startswith("epoch 3/"):
                proc.send_signal(signal.SIGTERM)
                break
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err[-3000:]
    assert "SIGTERM" in err and "Traceback" not in err
    [pending] = [p for p in os.listdir(tmp_path / "ckpt") if p.startswith("mlflow-pending-")]
    records = json.load(open(tmp_path / "ckpt" / pending / PENDING_RECORDS))["records"]
    steps = [r["step"] for r in records if r["op"] == "metrics" and r.get("step")]
    assert steps[:2] == [2, 3]
    assert records[-1] == {"op": "end", "status": "KILLED"}
    restart(server)
    assert main(["mlflow-import", str(tmp_path / "ckpt" / pending), "--tracking-uri",
                 server.tracking_uri]) == 0


def test_stop_command_stops_the_server(server, capsys):
    restart(server)
    assert main(["mlflow-server", "stop", "--store", server.store]) == 0
    assert "stopped pids" in capsys.readouterr().out
    deadline = time.monotonic() + 30
    while server_healthy(server.tracking_uri) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not server_healthy(server.tracking_uri)
    assert not os.path.exists(os.path.join(server.store, STATE_FILE))
    assert main(["mlflow-server", "stop", "--store", server.store]) == 0
    assert "no running server" in capsys.readouterr().out
