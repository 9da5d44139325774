"""MLflow tracking: one experiment per dataset, one run per configuration.

Store: ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else a sqlite file
``mlflow.db`` in the working directory (MLflow 3 refuses plain file stores). A remote
server is checked before any training starts, so an unreachable one fails in seconds,
not after an hour of training. ``Tracker(enabled=False)`` (``--no-tracking``) keeps the
same interface and records nothing.

Names other tools rely on (the scaling report reads them back):
params ``backend``, ``optimizer``, ``num_executors``, ``cores_per_executor``,
``batch_size``; per-epoch metrics (step = epoch) ``epoch_wall_time_s``, ``rows_per_s``,
``train_loss``, ``val_loss``, ``val_auc``; final metrics ``test_auc``,
``test_accuracy``, ``best_fom``, ``best_cut``, ``significance_100s_1000b``.

A tracking server that goes away in the middle of a run does not stop training: what cannot
be written is kept in memory (metrics with their original step and time, params, copies of
the artifacts) and written, in order, as soon as the server answers ``/health`` again, with a
warning when the outage starts and a line when it ends. At the end of the run the tracker
waits up to ``grace_s`` for the server; if it is still away, everything it could not write
is saved to ``DIR/mlflow-pending-<run_id>/`` (``records.json`` + ``artifacts/``) and
:class:`TrackingSpooledError` says how to import it later
(``hepspark mlflow-import DIR/mlflow-pending-<run_id> --tracking-uri URI``). A server that
answers but refuses a call (403, 413, ...) or whose API hangs while ``/health`` answers ends
the command with one :class:`TrackingCallError` line naming the status and the fix.

Every MLflow HTTP call is bounded (:data:`MLFLOW_HTTP_LIMITS`: 15 s per request, one retry,
instead of MLflow's 120 s and seven retries, about 4 minutes per hanging call); the
variables themselves, set in the environment, override ours.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlparse

from hepspark.records import EpochRecord

DEFAULT_DB = "mlflow.db"
# How long the end of a run waits for an MLflow server that went away (``--tracking-grace-s``).
DEFAULT_GRACE_S = 120.0
PENDING_PREFIX = "mlflow-pending-"
PENDING_RECORDS = "records.json"
PENDING_FORMAT = "hepspark-mlflow-pending"
RUN_RECORD_FILE = "mlflow_run.json"  # in --checkpoint-dir: the run a --resume continues
_RETRY_EVERY_S = 2.0
# MLflow 3.17.2 reads its HTTP limits from these variables at every call (defaults 120 s
# and 7 retries with backoff: minutes per call to an API that hangs while /health answers).
# Ours bound one call to about 35 s; a value already in the environment wins.
MLFLOW_HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "15", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}
# The pre-flight check's real API call (any read works; MLflow guards every /api/ path).
_PROBE_PATH = "/api/2.0/mlflow/experiments/search?max_results=1"
_INVALID_HOST = "Invalid Host header"  # MLflow 3.5+'s 403 body for a host it does not allow


class TrackingUnavailableError(RuntimeError):
    """The MLflow tracking store cannot be reached or written."""


class TrackingCallError(TrackingUnavailableError):
    """The MLflow server answers ``/health`` but refused or did not answer an API call."""


class TrackingSpooledError(TrackingUnavailableError):
    """Training finished, but the MLflow server stayed away: the records that could not be
    written are in ``pending_dir``; ``outcome`` is the training outcome when known."""

    def __init__(self, message: str, pending_dir: str) -> None:
        super().__init__(message)
        self.pending_dir = pending_dir
        self.outcome: Any = None


def is_remote(uri: str | None) -> bool:
    return bool(uri) and urlparse(uri).scheme in ("http", "https")


def server_healthy(uri: str, timeout_s: float = 2.0) -> bool:
    """True when the MLflow server at ``uri`` answers 200 on ``/health``."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    if tracking_uri:
        return tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return "sqlite:///" + os.path.abspath(DEFAULT_DB)


def limit_mlflow_http() -> None:
    """Bound MLflow's HTTP calls (:data:`MLFLOW_HTTP_LIMITS`) unless the user set them."""
    for name, value in MLFLOW_HTTP_LIMITS.items():
        os.environ.setdefault(name, value)


def check_tracking_uri(uri: str, timeout_s: float = 10.0) -> None:
    """Raise :class:`TrackingUnavailableError` with a fix if ``uri`` cannot be used: a
    server must answer ``/health`` and a real API call (MLflow 3.5+ answers ``/health`` to
    any Host but refuses the API to hosts it does not allow)."""
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        health = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(health, timeout=timeout_s) as response:
                if response.status != 200:
                    raise TrackingUnavailableError(
                        f"MLflow server {uri} answered {response.status} on /health"
                    )
        except (urllib.error.URLError, OSError) as exc:
            raise TrackingUnavailableError(
                f"MLflow tracking server {uri} is unreachable ({exc}). Start it (e.g. "
                "'mlflow server --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 "
                "--port 5000'), point --tracking-uri at a running one, or pass --no-tracking."
            ) from exc
        _probe_api(uri, timeout_s)
    elif scheme == "sqlite":
        path = uri[len("sqlite:///") :]
        directory = os.path.dirname(os.path.abspath(path)) or "."
        if not os.access(directory, os.W_OK):
            raise TrackingUnavailableError(
                f"cannot write the MLflow sqlite store {path}: directory {directory} does not exist or is "
                "not writable; pass --tracking-uri or run from a writable directory"
            )


def _probe_api(uri: str, timeout_s: float) -> None:
    """One real API call, as the MLflow client would make it (basic-auth credentials from
    MLflow's own MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)."""
    import base64

    request = urllib.request.Request(uri.rstrip("/") + _PROBE_PATH)
    user, password = (os.environ.get("MLFLOW_TRACKING_USERNAME"),
                      os.environ.get("MLFLOW_TRACKING_PASSWORD"))
    if user and password:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            return
    except urllib.error.HTTPError as exc:
        body = exc.read(2000).decode(errors="replace")
        raise TrackingCallError(_refusal(uri, "a search of experiments", exc.code, body)) from exc
    except (urllib.error.URLError, OSError) as exc:  # a timeout: /health answered
        raise TrackingCallError(_hang(uri, "a search of experiments", f"{timeout_s:.0f} s")) from exc


def _host(uri: str) -> str:
    return urlparse(uri).netloc.rsplit("@", 1)[-1]


def _refusal(uri: str, what: str, status: int, body: str) -> str:
    """One line for an HTTP refusal of ``what`` by the server at ``uri``."""
    host = _host(uri)
    if status == 403 and _INVALID_HOST in body:
        return (f"the MLflow server {uri} refuses host {host} (HTTP 403 on {what}; "
                f"/health answers any host): start it with --allowed-hosts {host} "
                f"(hepspark mlflow-server --allowed-hosts {host}, or mlflow server "
                f"--allowed-hosts {host}), or reach it as localhost")
    if status in (401, 403):
        return (f"the MLflow server {uri} refused {what} (HTTP {status}): set the "
                "credentials it expects (MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD for MLflow's basic-auth app) or ask its "
                "operator for permission on this experiment")
    if status == 413:
        return (f"the MLflow server {uri} refused {what} as too large (HTTP 413): raise the "
                "request size limit of the server or of the proxy in front of it (e.g. the "
                "ingress's proxy-body-size), or log smaller artifacts")
    detail = " ".join(body.split())[:200]
    return f"the MLflow server {uri} refused {what} (HTTP {status}): {detail}"


def _hang(uri: str, what: str, limit: str) -> str:
    return (f"the MLflow server {uri} answers /health but did not answer {what} within "
            f"{limit}: check the server's log and its database; for a server that is just "
            "slow raise MLFLOW_HTTP_REQUEST_TIMEOUT, or pass --no-tracking")


def _call_failed(uri: str, what: str, exc: BaseException) -> TrackingCallError:
    """The one-line error for an MLflow client call that the server refused or let hang
    (``requests.HTTPError`` from artifact uploads, ``MlflowException`` otherwise)."""
    import re

    from mlflow.exceptions import RestException

    text = str(exc)
    if "timed out" in text or "Timeout" in text:
        limits = (f"{os.environ.get('MLFLOW_HTTP_REQUEST_TIMEOUT', '120')} s x "
                  f"{1 + int(os.environ.get('MLFLOW_HTTP_REQUEST_MAX_RETRIES', '7'))} tries")
        return TrackingCallError(_hang(uri, what, limits))
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is None:
        found = (re.search(r"error code (\d{3})", text)
                 or re.search(r"\b(\d{3}) (?:Client|Server) Error", text))
        status = int(found.group(1)) if found else None
    if status is None and isinstance(exc, RestException):  # an error the server sent as JSON
        status = exc.get_http_status_code()
    if status is None:
        first = text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
        return TrackingCallError(f"the MLflow call {what} to {uri} failed: {first}")
    return TrackingCallError(_refusal(uri, what, status, text))


class Tracker:
    """One MLflow run at a time, through ``MlflowClient`` (no global active run), with the
    outage buffering described in the module docstring.

    >>> tracker = Tracker(experiment="higgs-demo")
    >>> with tracker.run("keras-adam", params={"optimizer": "adam"}):
    ...     tracker.log_epoch(record)
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str | None = None,
        enabled: bool = True,
        grace_s: float = DEFAULT_GRACE_S,
        pending_dir: str | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.enabled = enabled
        self.tracking_uri = resolve_tracking_uri(tracking_uri) if enabled else None
        if enabled:
            limit_mlflow_http()
        self.experiment = experiment
        self.grace_s = grace_s
        self.pending_dir = pending_dir  # where unwritten records go (default: cwd)
        self.warn = warn or (lambda message: print(message, file=sys.stderr, flush=True))
        self.run_id: str | None = None
        self.run_name: str | None = None
        self.resumed = False  # True when run() reopened an existing run
        self._client = None
        self._pending: list[dict[str, Any]] = []
        self._staging: str | None = None
        self._logged_epochs: set[int] = set()
        self._outage_since: float | None = None
        self._call_error: TrackingCallError | None = None

    # -------------------------------------------------------------------------- public
    def check(self) -> None:
        if self.enabled:
            check_tracking_uri(self.tracking_uri)

    def run(self, run_name: str, params: Mapping[str, Any],
            tags: Mapping[str, str] | None = None, resume_run_id: str | None = None):
        """Context manager of one run; ``resume_run_id`` reopens that run instead of
        creating one when it exists and has not finished."""
        return _RunContext(self, run_name, params, tags or {}, resume_run_id)

    @property
    def pending(self) -> int:
        """Records waiting for an unreachable server."""
        return len(self._pending)

    def log_epoch(self, record: EpochRecord) -> None:
        """Per-epoch metrics at step = epoch; an epoch the (reopened) run already holds is
        not logged twice."""
        if self.enabled and record.epoch not in self._logged_epochs:
            self._logged_epochs.add(record.epoch)
            self._submit({"op": "metrics", "metrics": record.metrics(), "step": record.epoch,
                          "timestamp": _now_ms()})

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        if self.enabled:
            self._submit({"op": "metrics", "metrics": {k: float(v) for k, v in metrics.items()},
                          "step": 0, "timestamp": _now_ms()})

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self.enabled:
            self._submit({"op": "params", "params": {k: _param(v) for k, v in params.items()}})

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        if self.enabled:
            self._submit({"op": "artifact", "path": path, "artifact_path": artifact_path})

    def log_text(self, text: str, artifact_file: str) -> None:
        if self.enabled:
            self._submit({"op": "text", "text": text, "artifact_file": artifact_file})

    # ----------------------------------------------------------------- run start / end
    def _client_for_run(self):
        from mlflow import MlflowClient

        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def _start(self, run_name: str, params, tags, resume_run_id: str | None) -> None:
        try:
            self._start_run(run_name, params, tags, resume_run_id)
        except TrackingUnavailableError:
            raise
        except Exception as exc:  # noqa: BLE001 - MLflow and requests errors: one line
            if is_remote(self.tracking_uri):
                raise _call_failed(self.tracking_uri, "starting the run", exc) from exc
            raise

    def _start_run(self, run_name: str, params, tags, resume_run_id: str | None) -> None:
        client = self._client_for_run()
        self.run_name = run_name
        if resume_run_id and self._reopen(resume_run_id):
            # MLflow refuses to change a param: settings a resume may change (epochs,
            # resume, executors, ...) go to tags hepspark.resumed.<name> instead.
            logged = client.get_run(self.run_id).data.params
            params = {k: _param(v) for k, v in params.items()}
            self.log_params({k: v for k, v in params.items() if k not in logged})
            for k, v in params.items():
                if k in logged and logged[k] != v:
                    client.set_tag(self.run_id, f"hepspark.resumed.{k}", v)
            return
        from mlflow.tracking.context.registry import resolve_tags

        experiment_id = _experiment_id(client, self.experiment or "Default")
        all_tags = dict(tags)
        if resume_run_id:
            all_tags["hepspark.resumed_from_run"] = resume_run_id
        run = client.create_run(experiment_id, run_name=run_name, tags=resolve_tags(all_tags))
        self.run_id = run.info.run_id
        self.log_params(params)

    def _reopen(self, run_id: str) -> bool:
        """Continue ``run_id`` (a run interrupted before it finished): True if reopened."""
        from mlflow.exceptions import MlflowException

        client = self._client_for_run()
        try:
            run = client.get_run(run_id)
        except MlflowException:
            self.warn(f"[tracking] run {run_id} of the checkpoint is not in "
                      f"{self.tracking_uri}: starting a new run")
            return False
        if run.info.status == "FINISHED" or run.info.lifecycle_stage == "deleted":
            return False  # extending a finished run: a new run that holds every epoch
        client.update_run(run_id, status="RUNNING")
        self.run_id = run_id
        self.resumed = True
        self._logged_epochs = {m.step for m in client.get_metric_history(run_id,
                                                                         "epoch_wall_time_s")}
        return True

    def _finish(self, status: str, failing: bool) -> None:
        """End the run; wait for a server that went away, else save what is unwritten."""
        self._submit({"op": "end", "status": status})
        if self._pending and is_remote(self.tracking_uri) and self.grace_s > 0:
            self.warn(f"[tracking] waiting up to {self.grace_s:.0f} s for the MLflow server "
                      f"{self.tracking_uri} to write {len(self._pending)} buffered record(s)")
            deadline = time.monotonic() + self.grace_s
            while self._pending and time.monotonic() < deadline:
                time.sleep(min(_RETRY_EVERY_S, max(0.0, deadline - time.monotonic())))
                self._flush()
        if not self._pending:
            self._drop_staging()
            return
        path = self._save_pending()
        message = (
            f"the MLflow server {self.tracking_uri} was unreachable until the end of the run "
            f"(waited {self.grace_s:.0f} s): {len(self._pending)} record(s) of run "
            f"{self.run_id} were not written; they are saved in {path}. Import them when "
            f"the server is back: hepspark mlflow-import {path} --tracking-uri "
            f"{self.tracking_uri}"
        )
        if failing:  # do not hide the error that ended the run
            self.warn(f"[tracking] {message}")
            return
        raise TrackingSpooledError(message, path)

    # ------------------------------------------------------------------ the write path
    def _submit(self, op: dict[str, Any]) -> None:
        if self._call_error is not None:  # refused or hung once: do not wait again
            raise self._call_error
        # /health first: a call to a dead server blocks in MLflow's own retries (7, with
        # backoff: about 4 minutes) before it fails.
        if not self._pending and not self._unreachable():
            try:
                _apply(self._client_for_run(), self.run_id, op)
                return
            except Exception as exc:  # noqa: BLE001 - classified just below
                if not self._unreachable():
                    self._refused(op, exc)
        if not self._pending:
            self._outage_since = time.monotonic()
            self.warn(
                f"[tracking] warning: MLflow server {self.tracking_uri} is unreachable; "
                "training continues, records are kept and written when it answers again"
            )
        self._buffer(op)  # keep the order: write when the outage ends
        self._flush()

    def _refused(self, op: dict[str, Any], exc: Exception) -> None:
        """The server answers /health but refused (or let hang) ``op``: one line."""
        if not is_remote(self.tracking_uri):
            raise exc
        what = {"metrics": "logging metrics", "params": "logging params",
                "artifact": "uploading an artifact", "text": "uploading an artifact",
                "end": "ending the run"}.get(op["op"], op["op"])
        self._call_error = _call_failed(self.tracking_uri, what, exc)
        raise self._call_error from exc

    def _unreachable(self) -> bool:
        return is_remote(self.tracking_uri) and not server_healthy(self.tracking_uri)

    def _flush(self) -> None:
        """Write buffered records in order while the server answers."""
        if not self._pending or self._unreachable():
            return
        written = 0
        while self._pending:
            try:
                _apply(self._client_for_run(), self.run_id, self._pending[0])
            except Exception as exc:  # noqa: BLE001
                if not self._unreachable():
                    self._refused(self._pending[0], exc)
                return
            self._pending.pop(0)
            written += 1
        away = time.monotonic() - (self._outage_since or time.monotonic())
        self.warn(f"[tracking] MLflow server {self.tracking_uri} answers again after "
                  f"{away:.0f} s: wrote {written} buffered record(s)")
        self._outage_since = None

    def _buffer(self, op: dict[str, Any]) -> None:
        if op["op"] == "artifact":  # the caller may delete the file once we return
            if self._staging is None:
                self._staging = tempfile.mkdtemp(prefix="hepspark-mlflow-buffer-")
            target = os.path.join(self._staging, f"{len(os.listdir(self._staging)):04d}",
                                  os.path.basename(op["path"].rstrip("/")))
            os.makedirs(os.path.dirname(target))
            if os.path.isdir(op["path"]):
                shutil.copytree(op["path"], target)
            else:
                shutil.copy2(op["path"], target)
            op = {**op, "path": target}
        self._pending.append(op)

    def _save_pending(self) -> str:
        root = os.path.abspath(self.pending_dir or os.getcwd())
        final = os.path.join(root, f"{PENDING_PREFIX}{self.run_id}")
        tmp = tempfile.mkdtemp(prefix=f".{PENDING_PREFIX}", dir=root)
        records = []
        for i, op in enumerate(self._pending):
            if op["op"] == "artifact":
                rel = os.path.join("artifacts", f"{i:04d}", os.path.basename(op["path"]))
                os.makedirs(os.path.dirname(os.path.join(tmp, rel)))
                shutil.move(op["path"], os.path.join(tmp, rel))
                op = {**op, "path": rel}
            records.append(op)
        _write_records(tmp, {
            "format": PENDING_FORMAT, "version": 1, "tracking_uri": self.tracking_uri,
            "experiment": self.experiment, "run_id": self.run_id, "run_name": self.run_name,
            "records": records,
        })
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
        self._drop_staging()
        return final

    def _drop_staging(self) -> None:
        if self._staging:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None


def _now_ms() -> int:
    return int(time.time() * 1000)


def _param(value: Any) -> str:
    return "None" if value is None else str(value)


def _experiment_id(client, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(name)
    if experiment.lifecycle_stage == "deleted":
        raise TrackingUnavailableError(
            f"MLflow experiment {name!r} is deleted; restore it or choose another --experiment"
        )
    return experiment.experiment_id


def _apply(client, run_id: str, op: dict[str, Any]) -> None:
    """Write one record to ``run_id``."""
    from mlflow.entities import Metric, Param

    kind = op["op"]
    if kind == "metrics":
        metrics = [Metric(k, v, op["timestamp"], op["step"]) for k, v in op["metrics"].items()]
        client.log_batch(run_id, metrics=metrics)
    elif kind == "params":
        items = [Param(k, v) for k, v in op["params"].items()]
        for i in range(0, len(items), 100):  # MLflow's limit per batch
            client.log_batch(run_id, params=items[i : i + 100])
    elif kind == "artifact":
        path = op["path"]
        if os.path.isdir(path):
            client.log_artifacts(run_id, path, op["artifact_path"])
        else:
            client.log_artifact(run_id, path, op["artifact_path"])
    elif kind == "text":
        client.log_text(run_id, op["text"], op["artifact_file"])
    elif kind == "end":
        client.set_terminated(run_id, op["status"])
    else:
        raise ValueError(f"unknown tracking record {kind!r}")


def _write_records(directory: str, data: dict[str, Any]) -> None:
    path = os.path.join(directory, PENDING_RECORDS)
    with open(path + ".tmp", "w") as handle:
        json.dump(data, handle, indent=1)
    os.replace(path + ".tmp", path)


def _inside(directory: str, relative: str, records_path: str) -> str:
    """``relative`` resolved in ``directory`` (symlinks too); refused when it leaves it."""
    root = os.path.realpath(directory)
    target = os.path.realpath(os.path.join(root, relative))
    if os.path.isabs(relative) or os.path.commonpath([root, target]) != root:
        raise ValueError(
            f"{records_path} names the artifact {relative!r}, which is outside "
            f"{directory}; refusing to upload it (an import only uploads what the run "
            "saved in its pending directory)"
        )
    return target


def import_pending(
    directory: str, tracking_uri: str | None = None, progress: Callable[[str], None] = print
) -> str:
    """Write the records a run saved in ``directory`` (``mlflow-pending-<run_id>``) to its
    run, in order; each written record is removed from the file as it goes, so an import
    that is interrupted can be repeated. Returns the run id; the directory is deleted at
    the end."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    path = os.path.join(directory, PENDING_RECORDS)
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(
            f"{path} cannot be read ({exc}): give a {PENDING_PREFIX}<run_id> directory "
            "written by a run whose MLflow server was unreachable"
        ) from exc
    if data.get("format") != PENDING_FORMAT:
        raise ValueError(f"{path} is not a hepspark {PENDING_FORMAT} file")
    # records.json is data from disk, not an instruction: it neither chooses the server
    # (the user does, as for every other command) nor names files outside DIR to upload.
    recorded = data.get("tracking_uri")
    limit_mlflow_http()
    uri = tracking_uri or resolve_tracking_uri()
    if tracking_uri is None and uri != recorded:
        raise ValueError(
            f"{path} was recorded for the MLflow server {recorded}, but this import would "
            f"write to {uri}; pass --tracking-uri {recorded} (or the server that holds the "
            "run) to choose the destination"
        )
    for record in data["records"]:
        if record.get("op") == "artifact":
            _inside(directory, record["path"], path)
    check_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    run_id = data["run_id"]
    try:
        client.get_run(run_id)
    except MlflowException as exc:
        raise ValueError(
            f"run {run_id} is not in {uri}; import into the tracking server that holds it "
            f"({data['tracking_uri']})"
        ) from exc
    total = len(data["records"])
    while data["records"]:
        record = data["records"][0]
        if record["op"] == "artifact":  # checked again as it is read: symlinks may change
            record = {**record, "path": _inside(directory, record["path"], path)}
        try:
            _apply(client, run_id, record)
        except Exception as exc:  # noqa: BLE001 - MLflow and requests errors: one line
            if not is_remote(uri):
                raise
            raise _call_failed(uri, f"importing record {total - len(data['records']) + 1} "
                               f"of {total} (the import can be repeated)", exc) from exc
        data["records"].pop(0)
        _write_records(directory, data)
    progress(f"[mlflow-import] wrote {total} record(s) to run {run_id} at {uri}")
    shutil.rmtree(directory)
    return run_id


class _RunContext:
    def __init__(self, tracker: Tracker, run_name: str, params, tags, resume_run_id) -> None:
        self.tracker = tracker
        self.run_name = run_name
        self.params = params
        self.tags = tags
        self.resume_run_id = resume_run_id

    def __enter__(self) -> Tracker:
        if self.tracker.enabled:
            self.tracker._start(self.run_name, self.params, self.tags, self.resume_run_id)
        return self.tracker

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tracker.enabled:
            with contextlib.suppress(Exception) if exc_type else contextlib.nullcontext():
                status = ("FINISHED" if exc_type is None else "KILLED"
                          if issubclass(exc_type, KeyboardInterrupt) else "FAILED")
                self.tracker._finish(status, failing=exc_type is not None)
