"""MLflow round trip with a real sqlite store, and fast failure on a dead server."""
from __future__ import annotations

import os
import socket
import time

import pytest

from hepspark.config import TrainConfig
from hepspark.models.config import DenseNetConfig
from hepspark.tracking import Tracker, TrackingUnavailableError, check_tracking_uri
from hepspark.train import evaluate_higgs, train_higgs


def test_train_run_round_trip(higgs_dataset, sqlite_tracking_uri, tmp_path):
    import mlflow

    config = TrainConfig(data=higgs_dataset, epochs=2, batch_size=500,
                         model=DenseNetConfig(depth=2, width=64))
    tracker = Tracker(sqlite_tracking_uri, experiment="test-roundtrip")
    outcome = train_higgs(config, tracker, progress=lambda _: None,
                          model_dir=str(tmp_path / "model"))
    client = mlflow.MlflowClient(tracking_uri=sqlite_tracking_uri)
    run = client.get_run(outcome.run_id)
    params, metrics = run.data.params, run.data.metrics
    for name in ("backend", "optimizer", "num_executors", "cores_per_executor", "batch_size",
                 "device", "dataset", "features", "model_width", "learning_rate", "seed"):
        assert name in params, name
    assert params["backend"] == "keras" and params["batch_size"] == "500"
    assert params["model_width"] == "64"
    for name in ("epoch_wall_time_s", "rows_per_s", "train_loss", "val_loss", "val_auc"):
        history = client.get_metric_history(outcome.run_id, name)
        assert [m.step for m in history] == [1, 2], name
    for name in ("test_auc", "test_accuracy", "best_fom", "best_cut", "significance_100s_1000b"):
        assert name in metrics, name
    assert metrics["test_auc"] == pytest.approx(outcome.summary.test_auc)
    assert metrics["test_auc"] > 0.6
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id)}
    assert {"plots", "model", "run_config.json", "epochs.json"} <= artifacts
    plots = {a.path for a in client.list_artifacts(outcome.run_id, "plots")}
    assert plots == {f"plots/{n}.png" for n in
                     ("roc", "fom_vs_cut", "score_histograms", "training_curves")}
    assert run.info.status == "FINISHED"
    # The logged model evaluates to the same test AUC, from MLflow and from --model-dir.
    for uri in (f"runs:/{outcome.run_id}/model", str(tmp_path / "model")):
        summary = evaluate_higgs(uri, higgs_dataset, tracking_uri=sqlite_tracking_uri)
        assert summary.test_auc == pytest.approx(outcome.summary.test_auc, abs=1e-6)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_fails_before_training(higgs_dataset):
    uri = f"http://127.0.0.1:{_closed_port()}"
    start = time.perf_counter()
    with pytest.raises(TrackingUnavailableError, match="unreachable.*--no-tracking"):
        train_higgs(TrainConfig(data=higgs_dataset), Tracker(uri), progress=lambda _: None)
    assert time.perf_counter() - start < 60  # bounded by the check, not by training


def test_unusable_sqlite_store_is_reported(tmp_path):
    with pytest.raises(TrackingUnavailableError, match="not writable"):
        check_tracking_uri(f"sqlite:///{tmp_path}/no/such/dir/mlflow.db")
    check_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")


def test_disabled_tracker_records_nothing(higgs_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = TrainConfig(data=higgs_dataset, epochs=1, model=DenseNetConfig(depth=1, width=8))
    outcome = train_higgs(config, Tracker(enabled=False), progress=lambda _: None)
    assert outcome.run_id is None
    assert not os.path.exists(tmp_path / "mlflow.db")


def test_resume_continues_the_interrupted_mlflow_run_without_repeating_epochs(
    higgs_dataset, sqlite_tracking_uri, tmp_path
):
    import mlflow

    ckpt = str(tmp_path / "ckpt")
    config = TrainConfig(data=higgs_dataset, epochs=4, batch_size=500, checkpoint_dir=ckpt,
                         model=DenseNetConfig(depth=1, width=16))

    def interrupt_after_epoch_2(line: str) -> None:
        if line.startswith("epoch 2/"):
            raise KeyboardInterrupt  # the user stops the job after epoch 2 was logged

    tracker = Tracker(sqlite_tracking_uri, experiment="resume")
    with pytest.raises(KeyboardInterrupt):
        train_higgs(config, tracker, progress=interrupt_after_epoch_2)
    first_run = tracker.run_id
    client = mlflow.MlflowClient(sqlite_tracking_uri)
    assert client.get_run(first_run).info.status == "KILLED"  # stopped by the user

    resumed = Tracker(sqlite_tracking_uri, experiment="resume")
    lines: list[str] = []
    outcome = train_higgs(config.with_(resume=True), resumed, progress=lines.append)
    assert outcome.run_id == first_run and resumed.resumed
    assert any("continuing MLflow run" in line for line in lines)
    run = client.get_run(first_run)
    assert run.info.status == "FINISHED"
    for name in ("epoch_wall_time_s", "train_loss", "val_auc"):
        assert sorted(m.step for m in client.get_metric_history(first_run, name)) == [1, 2, 3, 4]
    assert run.data.params["resume"] == "False"  # params never change ...
    assert run.data.tags["hepspark.resumed.resume"] == "True"  # ... what a resume changed
    assert len(client.search_runs([run.info.experiment_id])) == 1

    # Extending a finished run starts a new one that holds every epoch and names the first.
    extended = Tracker(sqlite_tracking_uri, experiment="resume")
    outcome = train_higgs(config.with_(resume=True, epochs=5), extended, progress=print)
    assert outcome.run_id != first_run
    assert client.get_run(outcome.run_id).data.tags["hepspark.resumed_from_run"] == first_run
    steps = [m.step for m in client.get_metric_history(outcome.run_id, "train_loss")]
    assert sorted(steps) == [1, 2, 3, 4, 5]


# ---------------------------------------------------------------- mlflow-import (#14.8)
def _pending_dir(tmp_path, uri: str, artifact_path: str, recorded_uri: str | None = None):
    """A run in ``uri`` and an mlflow-pending-<run_id> directory whose records.json names
    ``artifact_path`` (as a tampered or hostile file would)."""
    import json

    import mlflow

    client = mlflow.MlflowClient(uri)
    run_id = client.create_run(client.create_experiment(f"import-{tmp_path.name}")).info.run_id
    pending = tmp_path / f"mlflow-pending-{run_id}"
    (pending / "artifacts" / "0000").mkdir(parents=True)
    (pending / "artifacts" / "0000" / "ok.txt").write_text("mine")
    (pending / "records.json").write_text(json.dumps({
        "format": "hepspark-mlflow-pending", "version": 1,
        "tracking_uri": recorded_uri or uri, "experiment": "x", "run_id": run_id,
        "run_name": "x", "records": [
            {"op": "metrics", "metrics": {"a": 1.0}, "step": 1, "timestamp": 1},
            {"op": "artifact", "path": artifact_path, "artifact_path": None},
        ],
    }))
    return client, run_id, pending


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink"])
def test_import_uploads_nothing_from_outside_the_pending_directory(
    tmp_path, sqlite_tracking_uri, kind
):
    from hepspark.cli import main

    secret = tmp_path / "secret.txt"
    secret.write_text("private key")
    path = {"absolute": str(secret), "dotdot": "../secret.txt",
            "symlink": "artifacts/0000/link.txt"}[kind]
    client, run_id, pending = _pending_dir(tmp_path, sqlite_tracking_uri, path)
    if kind == "symlink":
        os.symlink(secret, pending / "artifacts" / "0000" / "link.txt")
    from hepspark.tracking import import_pending

    with pytest.raises(ValueError, match="outside .*refusing to upload"):
        import_pending(str(pending), sqlite_tracking_uri)
    assert main(["mlflow-import", str(pending), "--tracking-uri", sqlite_tracking_uri]) == 2
    assert client.list_artifacts(run_id) == []
    assert client.get_metric_history(run_id, "a") == []  # refused before any record
    assert pending.exists()


def test_import_inside_the_pending_directory_still_works(tmp_path, sqlite_tracking_uri):
    from hepspark.tracking import import_pending

    client, run_id, pending = _pending_dir(tmp_path, sqlite_tracking_uri,
                                           "artifacts/0000/ok.txt")
    assert import_pending(str(pending), sqlite_tracking_uri, progress=lambda _: None) == run_id
    assert [a.path for a in client.list_artifacts(run_id)] == ["ok.txt"]
    assert not pending.exists()


def test_import_does_not_take_its_destination_from_records_json(
    tmp_path, sqlite_tracking_uri, monkeypatch, capsys
):
    from hepspark.cli import main

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    recorded = "http://127.0.0.1:9"  # another server than the one the user works with
    client, run_id, pending = _pending_dir(tmp_path, sqlite_tracking_uri,
                                           "artifacts/0000/ok.txt", recorded_uri=recorded)
    capsys.readouterr()
    assert main(["mlflow-import", str(pending)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert recorded in err and f"sqlite:///{tmp_path / 'mlflow.db'}" in err
    assert "--tracking-uri" in err
    # The user names the destination: the import goes there.
    assert main(["mlflow-import", str(pending), "--tracking-uri", sqlite_tracking_uri]) == 0
    assert [a.path for a in client.list_artifacts(run_id)] == ["ok.txt"]


# ------------------------------------- a server whose API hangs or refuses (#14.13, #14.12)
@pytest.fixture()
def fake_server():
    """A real HTTP server on 127.0.0.1 that answers /health and, on every API path, hangs
    (``mode = "hang"``, until the test ends) or answers an HTTP error (``mode = 413``)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    release = threading.Event()
    state = {"mode": "hang"}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            if self.path == "/health":
                body, status = b"OK", 200
            elif state["mode"] == "hang":
                release.wait(600)
                return
            else:
                body, status = b"<html>Request Entity Too Large</html>", state["mode"]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{httpd.server_address[1]}"
    release.set()
    httpd.shutdown()
    httpd.server_close()


def test_a_hanging_api_behind_a_healthy_health_fails_the_check_in_bounded_time(fake_server):
    _, uri = fake_server
    start = time.monotonic()
    with pytest.raises(TrackingUnavailableError) as hung:
        check_tracking_uri(uri)
    assert time.monotonic() - start < 60  # a hang bound, not a performance target
    assert "answers /health but did not answer" in str(hung.value)
    assert "\n" not in str(hung.value)


def test_a_hanging_api_does_not_block_a_log_call_for_minutes(fake_server, monkeypatch):
    # MLflow's defaults (120 s x 8 tries with backoff) would block here for ~17 minutes.
    for name in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"):
        monkeypatch.delenv(name, raising=False)
    _, uri = fake_server
    tracker = Tracker(uri, experiment="hang")
    start = time.monotonic()
    with pytest.raises(TrackingUnavailableError) as hung:
        with tracker.run("hang", params={"a": 1}):
            pass
    assert time.monotonic() - start < 60
    message = str(hung.value)
    assert "answers /health but did not answer starting the run" in message
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" in message and "\n" not in message


def test_a_413_from_a_log_call_is_one_line_saying_what_to_do(fake_server, higgs_dataset,
                                                             capsys):
    from hepspark.cli import main

    state, uri = fake_server
    state["mode"] = 413
    tracker = Tracker(uri, experiment="big")
    with pytest.raises(TrackingUnavailableError, match="too large .HTTP 413.*size limit"):
        with tracker.run("big", params={"a": 1}):
            pass
    capsys.readouterr()
    assert main(["train", "higgs", "--data", higgs_dataset, "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hepspark: error:") and len(err.splitlines()) == 1
    assert "HTTP 413" in err


def test_horovod_ranks_get_no_mlflow_credentials(monkeypatch):
    # the driver logs to MLflow; a rank's environment needs none of its tokens (#14.10)
    from hepspark.backends.horovod_backend import rank_environment

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "t0ken")
    env = rank_environment(threads=1)
    assert not [name for name in env if name.startswith("MLFLOW_")]
