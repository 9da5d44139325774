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
"""
from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from hepspark.backends.base import EpochRecord

DEFAULT_DB = "mlflow.db"


class TrackingUnavailableError(RuntimeError):
    """The MLflow tracking store cannot be reached or written."""


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    if tracking_uri:
        return tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return "sqlite:///" + os.path.abspath(DEFAULT_DB)


def check_tracking_uri(uri: str, timeout_s: float = 10.0) -> None:
    """Raise :class:`TrackingUnavailableError` with a fix if ``uri`` cannot be used."""
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
    elif scheme == "sqlite":
        path = uri[len("sqlite:///") :]
        directory = os.path.dirname(os.path.abspath(path)) or "."
        if not os.access(directory, os.W_OK):
            raise TrackingUnavailableError(
                f"cannot write the MLflow sqlite store {path}: directory {directory} does not exist or is "
                "not writable; pass --tracking-uri or run from a writable directory"
            )


class Tracker:
    """A thin, explicit wrapper around the MLflow fluent API for one run at a time.

    >>> tracker = Tracker(experiment="higgs-demo")
    >>> with tracker.run("keras-adam", params={"optimizer": "adam"}):
    ...     tracker.log_epoch(record)
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str | None = None,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self.tracking_uri = resolve_tracking_uri(tracking_uri) if enabled else None
        self.experiment = experiment
        self.run_id: str | None = None

    def check(self) -> None:
        if self.enabled:
            check_tracking_uri(self.tracking_uri)

    def run(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str] | None = None):
        return _RunContext(self, run_name, params, tags or {})

    def log_epoch(self, record: EpochRecord) -> None:
        if self.enabled:
            import mlflow

            mlflow.log_metrics(record.metrics(), step=record.epoch)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        if self.enabled:
            import mlflow

            mlflow.log_metrics({k: float(v) for k, v in metrics.items()})

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self.enabled:
            import mlflow

            mlflow.log_params({k: _param(v) for k, v in params.items()})

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        if self.enabled:
            import mlflow

            mlflow.log_artifact(path, artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        if self.enabled:
            import mlflow

            mlflow.log_text(text, artifact_file)


def _param(value: Any) -> str:
    return "None" if value is None else str(value)


class _RunContext:
    def __init__(self, tracker: Tracker, run_name: str, params, tags) -> None:
        self.tracker = tracker
        self.run_name = run_name
        self.params = params
        self.tags = tags

    def __enter__(self) -> Tracker:
        if not self.tracker.enabled:
            return self.tracker
        import mlflow

        mlflow.set_tracking_uri(self.tracker.tracking_uri)
        if self.tracker.experiment:
            mlflow.set_experiment(self.tracker.experiment)
        run = mlflow.start_run(run_name=self.run_name, tags=dict(self.tags))
        self.tracker.run_id = run.info.run_id
        self.tracker.log_params(self.params)
        return self.tracker

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tracker.enabled:
            import mlflow

            mlflow.end_run(status="FAILED" if exc_type else "FINISHED")
