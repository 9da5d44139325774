"""Driver-side orchestration of one HIGGS training run.

open dataset → start the MLflow run (after checking the store) → backend.fit (epochs
reported as they end) → score the test split → physics metrics, plots, model, config →
MLflow → a summary a person reads.

>>> outcome = train_higgs(TrainConfig(data="data/higgs", epochs=3), Tracker())
>>> outcome.summary.test_auc
0.81...
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

from hepspark.backends import EpochRecord, get_backend
from hepspark.checkpoint import claim_checkpoint_dir
from hepspark.config import TrainConfig
from hepspark.data.readers import HiggsDataset
from hepspark.data.storage import check_writable_dir
from hepspark.hardware import cpu_count, cpu_model
from hepspark.metrics import (
    PhysicsSummary,
    discovery_significance,
    fom_curve,
    physics_summary,
    roc_curve,
    score_histograms,
)
from hepspark.models.keras_dense import MODEL_FILE, predict_scores
from hepspark.tracking import RUN_RECORD_FILE, Tracker, TrackingSpooledError

# Reference test AUCs of the deep network on the full 10.5M-row training set
# (Baldi, Sadowski, Whiteson 2014); shown next to our results, never used as targets.
PAPER_DNN_AUC = {"low": 0.880, "high": 0.800, "all": 0.885}
PREPROCESSING_FILE = "preprocessing.json"
TASK_TAG = "train-higgs"  # tag hepspark.task of every training run (the scaling report reads it)


@dataclass
class TrainOutcome:
    config: TrainConfig
    epochs: list[EpochRecord]
    summary: PhysicsSummary
    run_id: str | None
    resources: dict
    model_path: str | None = None
    stopped_early: bool = False

    def format(self) -> str:
        cfg = self.config
        times = [e.epoch_wall_time_s for e in self.epochs]
        rates = [e.rows_per_s for e in self.epochs]
        s = self.summary
        lines = [
            "",
            f"HIGGS {cfg.model.describe()} | backend {cfg.backend} | optimizer {cfg.optimizer} "
            f"| features {cfg.features} | batch {cfg.batch_size}",
            f"  device                     {self.resources.get('device')}",
            f"  epochs run                 {len(self.epochs)}/{cfg.epochs}"
            + ("  (early stop)" if self.stopped_early else ""),
            f"  epoch wall time (s)        mean {np.mean(times):.2f}  min {np.min(times):.2f}",
            f"  training rate (rows/s)     mean {np.mean(rates):,.0f}  max {np.max(rates):,.0f}",
            f"  final val AUC              {self.epochs[-1].val_auc:.4f}",
            f"  test AUC                   {s.test_auc:.4f}   "
            f"(paper DNN, 10.5M rows: {PAPER_DNN_AUC[cfg.features]:.3f})",
            f"  test accuracy (cut 0.5)    {s.test_accuracy:.4f}",
            f"  best FOM S/sqrt(B)         {s.best_fom:.2f} at cut {s.best_cut:.3f}",
            f"  significance 100s/1000b    {s.significance_100s_1000b:.2f} sigma "
            f"at cut {s.significance_cut:.3f}",
            f"  test events                {s.n_signal:,d} signal, {s.n_background:,d} background",
        ]
        if self.run_id:
            lines.append(f"  MLflow run                 {self.run_id}")
        return "\n".join(lines)


def default_experiment(dataset: HiggsDataset) -> str:
    """One experiment per dataset, named after its directory."""
    return dataset.name if dataset.name.startswith("higgs") else f"higgs-{dataset.name}"


def train_higgs(
    config: TrainConfig,
    tracker: Tracker,
    progress: Callable[[str], None] = print,
    model_dir: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> TrainOutcome:
    """Train ``config`` and log everything; returns the outcome (see module docstring).

    ``tags`` are added to the MLflow run's tags (the scaling sweep marks its runs so).
    """
    config, model_dir = claim_paths(config, model_dir)
    dataset = HiggsDataset(config.data, features=config.features)
    tracker.check()  # before any training: an unreachable server must fail fast
    if tracker.experiment is None:
        tracker.experiment = default_experiment(dataset)
    backend = get_backend(config.backend)
    resources = backend.describe_resources(config)
    params = {
        # learning_rate is logged after fit, as the value actually used (None = default)
        **{k: v for k, v in config.to_params().items() if k != "learning_rate"},
        **resources,  # num_executors here is what the backend actually used
        # the driver's machine; executors' hardware is in "device"
        "host_cpu_model": cpu_model(),
        "host_cores": cpu_count(),
        "dataset": dataset.uri,
        "train_rows": dataset.rows("train"),
        "val_rows": dataset.rows("val"),
        "test_rows": dataset.rows("test"),
        "n_features": len(dataset.features),
    }
    run_name = f"{config.backend}-{config.optimizer}-{config.features}-x{resources['num_executors']}"
    progress(
        f"[train] {dataset!r}\n[train] {config.model.describe()} with {config.optimizer}, "
        f"{config.epochs} epoch(s), batch {config.batch_size}, on {resources['device']}"
    )
    if tracker.pending_dir is None:  # records an unreachable server missed go here
        tracker.pending_dir = config.checkpoint_dir or model_dir
    outcome = None
    try:
        with tracker.run(run_name, params, tags={**(tags or {}), "hepspark.task": TASK_TAG},
                         resume_run_id=recorded_run(config, tracker)):
            if tracker.resumed:
                progress(f"[train] continuing MLflow run {tracker.run_id} of the checkpoint")
            record_run(config, tracker)
            outcome = _fit_and_log(config, tracker, progress, model_dir, dataset, backend,
                                   resources)
    except TrackingSpooledError as exc:  # trained, but the server stayed away
        exc.outcome = outcome
        raise
    return outcome


def _fit_and_log(config: TrainConfig, tracker: Tracker, progress, model_dir, dataset,
                 backend, resources) -> TrainOutcome:
    """Inside the MLflow run: fit, score the test split, log metrics and artifacts."""
    result = backend.fit(
        config,
        dataset,
        on_epoch_end=lambda rec: (tracker.log_epoch(rec), progress(rec.format(config.epochs))),
    )
    tracker.log_params(
        {k: v for k, v in result.info.items() if k in ("learning_rate", "parameters", "rank_python")}
    )
    x_test, y_test = dataset.load("test")
    scores = result.predict(x_test)
    if not np.all(np.isfinite(scores)):
        raise FloatingPointError(
            "the trained model predicts NaN/inf on the test split (training diverged); "
            "try a smaller --learning-rate"
        )
    summary = physics_summary(y_test, scores)
    with tempfile.TemporaryDirectory(prefix="hepspark-run-") as tmp:
        _write_artifacts(tmp, config, dataset, result, y_test, scores)
        # the model is on disk before the results are uploaded (an upload may fail or hang)
        model_path = save_model_files(tmp, model_dir, (MODEL_FILE, PREPROCESSING_FILE))
        tracker.log_metrics(
            {k: v for k, v in asdict(summary).items() if k not in ("n_signal", "n_background")}
        )
        for name in sorted(os.listdir(tmp)):
            tracker.log_artifact(os.path.join(tmp, name), _artifact_dir(name))
    return TrainOutcome(
        config=config,
        epochs=result.epochs,
        summary=summary,
        run_id=tracker.run_id,
        resources=resources,
        model_path=model_path,
        stopped_early=result.stopped_early,
    )


def claim_paths(config: TrainConfig, model_dir: str | None) -> tuple[TrainConfig, str | None]:
    """Before any work: the checkpoint directory is this run's (absolute, writable, not
    another run's), and ``model_dir`` can be written."""
    config = claim_checkpoint_dir(config)
    if model_dir:
        model_dir = check_writable_dir(model_dir, "--model-dir")
    return config, model_dir


def save_model_files(source: str, model_dir: str | None, names: tuple[str, ...]) -> str | None:
    """Copy the model's files from ``source`` into ``model_dir`` (each written under a
    temporary name, then renamed); returns the model's path there."""
    if not model_dir:
        return None
    os.makedirs(model_dir, exist_ok=True)
    for name in names:
        target = os.path.join(model_dir, name)
        shutil.copy2(os.path.join(source, name), target + ".tmp")
        os.replace(target + ".tmp", target)
    return os.path.join(model_dir, names[0])


def recorded_run(config: TrainConfig, tracker: Tracker) -> str | None:
    """The MLflow run a ``--resume`` continues: the one recorded in the checkpoint
    directory by the interrupted run, if it used the same tracking store."""
    if not (config.resume and tracker.enabled):
        return None
    try:
        with open(os.path.join(config.checkpoint_dir, RUN_RECORD_FILE)) as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    return record.get("run_id") if record.get("tracking_uri") == tracker.tracking_uri else None


def record_run(config: TrainConfig, tracker: Tracker) -> None:
    if not (config.checkpoint_dir and tracker.enabled):
        return
    os.makedirs(config.checkpoint_dir, exist_ok=True)
    path = os.path.join(config.checkpoint_dir, RUN_RECORD_FILE)
    with open(path + ".tmp", "w") as handle:
        json.dump({"tracking_uri": tracker.tracking_uri, "experiment": tracker.experiment,
                   "run_id": tracker.run_id}, handle, indent=2)
    os.replace(path + ".tmp", path)


def _artifact_dir(name: str) -> str | None:
    if name.endswith(".png"):
        return "plots"
    if name in (MODEL_FILE, PREPROCESSING_FILE):
        return "model"
    return None


def _write_preprocessing(path: str, config: TrainConfig, dataset: HiggsDataset) -> None:
    data = {
        "dataset": dataset.uri,
        "feature_set": config.features,
        **dataset.standardizer.to_dict(dataset.features),
    }
    with open(path, "w") as handle:
        json.dump(data, handle, indent=2)


def _write_artifacts(directory, config, dataset, result, y_test, scores) -> None:
    from hepspark.report import plots

    roc = roc_curve(y_test, scores)
    label = f"{config.backend} {config.optimizer} ({config.features})"
    plots.plot_roc(roc, os.path.join(directory, "roc.png"), label=label,
                   reference_auc=PAPER_DNN_AUC[config.features])
    plots.plot_fom(
        fom_curve(y_test, scores),
        os.path.join(directory, "fom_vs_cut.png"),
        significance=discovery_significance(y_test, scores),
    )
    plots.plot_score_histograms(
        score_histograms(y_test, scores), os.path.join(directory, "score_histograms.png")
    )
    plots.plot_training_curves(
        [asdict(e) for e in result.epochs], os.path.join(directory, "training_curves.png")
    )
    with open(os.path.join(directory, "run_config.json"), "w") as handle:
        handle.write(config.to_json())
    with open(os.path.join(directory, "epochs.json"), "w") as handle:
        json.dump([{**asdict(e), "rows_per_s": e.rows_per_s} for e in result.epochs], handle,
                  indent=2)
    result.save(os.path.join(directory, MODEL_FILE))
    _write_preprocessing(os.path.join(directory, PREPROCESSING_FILE), config, dataset)


def evaluate_higgs(model_uri: str, data: str, tracking_uri: str | None = None) -> PhysicsSummary:
    """Score a saved model (``model.keras`` path, its directory, or an MLflow
    ``runs:/<id>/model`` URI) on a dataset's test split."""
    import keras

    local = _resolve_model(model_uri, tracking_uri)
    directory = os.path.dirname(local)
    prep_path = os.path.join(directory, PREPROCESSING_FILE)
    if not os.path.exists(prep_path):
        raise FileNotFoundError(f"{PREPROCESSING_FILE} not found next to the model {local}")
    with open(prep_path) as handle:
        prep = json.load(handle)
    dataset = HiggsDataset(data, features=prep["feature_set"])
    if list(prep["features"]) != dataset.features:
        raise ValueError(f"model features {prep['features']} differ from the dataset's")
    x_test, y_test = dataset.load("test", standardize=False)
    from hepspark.data.readers import Standardizer

    x_test = Standardizer.from_dict(prep)(x_test)  # the training set's transform
    model = keras.saving.load_model(local)
    scores = predict_scores(model, x_test)
    return physics_summary(y_test, scores)


def _resolve_model(model_uri: str, tracking_uri: str | None) -> str:
    from urllib.parse import urlparse

    if urlparse(model_uri).scheme not in ("", "file"):  # runs:/, models:/, s3://, ...
        import mlflow

        from hepspark.tracking import resolve_tracking_uri

        mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri))
        model_uri = mlflow.artifacts.download_artifacts(model_uri)
    path = model_uri.removeprefix("file://")
    if os.path.isdir(path):
        path = os.path.join(path, MODEL_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model {model_uri} not found (expected a model.keras file)")
    return path
