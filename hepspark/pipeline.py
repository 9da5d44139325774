"""The one driver-side training pipeline every task kind runs through.

claim the paths → open the dataset → check the tracking store → start (or continue) the
MLflow run → ``backend.fit`` (epochs reported live) → score the test split → the kind's
metrics, plots and preprocessing → the model into ``--model-dir`` → MLflow → a summary a
person reads.

What differs between HIGGS, binary images (jets) and K-class images (LArTPC) is a
:class:`~hepspark.kinds.TaskKind`; everything else is written once here.

>>> outcome = run_training(TrainConfig(data="data/higgs", epochs=3), Tracker(), HIGGS)
>>> outcome.test_metrics["test_auc"]
0.81...
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hepspark.checkpoint import claim_checkpoint_dir
from hepspark.config import EngineSettings, TrainConfig
from hepspark.data.storage import check_writable_dir
from hepspark.hardware import cpu_count, cpu_model, peak_rss_mb
from hepspark.models.keras_dense import MODEL_FILE
from hepspark.progress import predict_with_progress
from hepspark.quality import TimeToTarget, time_to_target
from hepspark.records import EpochRecord
from hepspark.tags import TASK_TAG
from hepspark.tracking import RUN_RECORD_FILE, Tracker, TrackingSpooledError

if TYPE_CHECKING:
    from hepspark.kinds import TaskKind

PREPROCESSING_FILE = "preprocessing.json"
# result facts an engine reports that become MLflow params (when it reports them)
RESULT_PARAMS = ("learning_rate", "parameters", "kept_epoch", "sample_weights", "ranks",
                 "partitions", "threads_per_rank", "steps_per_epoch", "rank_python",
                 "bigdl_cache", "bigdl_cache_mb_needed", "bigdl_cache_mb_available")
# engine measurements logged as metrics when an engine reports them
RESULT_METRICS = ("cache_wall_time_s", "cache_rows_per_s")


@dataclass
class RunOutcome:
    """What a training run produced; ``summary`` is the binary kinds' PhysicsSummary."""

    config: TrainConfig
    kind: "TaskKind"
    dataset: Any
    epochs: list[EpochRecord]
    test_metrics: dict[str, float]
    report: str
    run_id: str | None
    resources: dict
    info: dict
    summary: Any = None
    model_path: str | None = None
    stopped_early: bool = False
    to_target: TimeToTarget | None = None

    def format(self) -> str:
        cfg, info = self.config, self.info
        times = [e.epoch_wall_time_s for e in self.epochs]
        rates = [e.rows_per_s for e in self.epochs]
        last = self.epochs[-1]
        lines = [
            "",
            self.kind.headline(cfg, self.dataset),
            f"  device                     {self.resources.get('device')}",
        ]
        if info.get("parameters"):
            lines.append(f"  parameters                 {info['parameters']:,d}")
        lines += [
            f"  epochs run                 {len(self.epochs)}/{cfg.epochs}"
            + ("  (early stop)" if self.stopped_early else ""),
            f"  epoch kept                 {info.get('kept_epoch')} ({cfg.epoch_selection})",
            f"  epoch wall time (s)        mean {np.mean(times):.2f}  min {np.min(times):.2f}",
            f"  training rate ({self.kind.unit}/s)".ljust(29)
            + f"mean {np.mean(rates):,.0f}  max {np.max(rates):,.0f}",
            f"  training wall time (s)     {info.get('train_wall_time_s', 0):.1f}",
            f"  peak memory (MB)           {info.get('peak_rss_mb', 0):,.0f}",
        ]
        if last.val_auc is not None:
            lines.append(f"  final val AUC              {last.val_auc:.4f}")
        elif last.val_accuracy is not None:
            lines.append(f"  final val accuracy         {last.val_accuracy:.4f}")
        if self.to_target is not None:
            lines.append(f"  time to {self.to_target.target.describe()}".ljust(29)
                         + self.to_target.format())
        lines.append(self.report)
        if self.run_id:
            lines.append(f"  MLflow run                 {self.run_id}")
        return "\n".join(lines)


def run_training(
    config: TrainConfig,
    tracker: Tracker,
    kind: "TaskKind",
    progress: Callable[[str], None] = print,
    model_dir: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> RunOutcome:
    """Train ``config`` as a run of ``kind`` and log everything; see the module docstring.

    ``tags`` are added to the MLflow run's tags (the scaling sweep marks its runs so). When
    the tracking server stays away, :class:`TrackingSpooledError` carries the outcome.
    """
    from hepspark.backends import check_supported, get_backend

    kind.check(config)
    check_supported(config)  # before Spark, the engine or MLflow start
    settings = EngineSettings.from_environ()  # the HEPSPARK_* variables, read once here
    config, model_dir = claim_paths(config, model_dir)
    dataset = kind.open(config)
    tracker.check()  # before any training: an unreachable server must fail fast
    if tracker.experiment is None:
        tracker.experiment = kind.default_experiment(dataset)
    backend = get_backend(config.backend, settings)
    resources = backend.describe_resources(config)
    params = {
        # learning_rate is logged after fit, as the value actually used (None = default)
        **{k: v for k, v in config.to_params().items()
           if k != "learning_rate" and k not in kind.skipped_params},
        **resources,  # num_executors here is what the backend actually used
        # the driver's machine; executors' hardware is in "device"
        "host_cpu_model": cpu_model(),
        "host_cores": cpu_count(),
        "dataset": dataset.uri,
        **kind.dataset_params(config, dataset),
        **{f"engine_{k}": v for k, v in settings.to_params().items() if v is not None},
    }
    progress(f"[train] {dataset!r}\n[train] {config.model.describe()} with {config.optimizer}, "
             f"{config.epochs} epoch(s), batch {config.batch_size}, "
             f"selection {config.epoch_selection}, on {resources['device']}")
    if tracker.pending_dir is None:  # records an unreachable server missed go here
        tracker.pending_dir = config.checkpoint_dir or model_dir
    outcome = None
    try:
        with tracker.run(kind.run_name(config, dataset, resources), params,
                         tags={**(tags or {}), TASK_TAG: kind.task_tag},
                         resume_run_id=recorded_run(config, tracker)):
            if tracker.resumed:
                progress(f"[train] continuing MLflow run {tracker.run_id} of the checkpoint")
            record_run(config, tracker)
            outcome = _fit_and_log(config, tracker, kind, progress, model_dir, dataset,
                                   backend, resources)
    except TrackingSpooledError as exc:  # trained, but the server stayed away
        exc.outcome = outcome
        raise
    return outcome


def _fit_and_log(config, tracker, kind, progress, model_dir, dataset, backend,
                 resources) -> RunOutcome:
    """Inside the MLflow run: fit, score the test split, write and log the results."""
    start = time.perf_counter()
    result = backend.fit(
        config, dataset,
        on_epoch_end=lambda rec: (tracker.log_epoch(rec), progress(rec.format(config.epochs))),
    )
    info = dict(result.info)
    info["train_wall_time_s"] = time.perf_counter() - start
    info["kept_epoch"] = kept_epoch(config, result)
    info.setdefault("peak_rss_mb", peak_rss_mb())  # engines without their own measure
    # MLPerf's rule: the time until the validation quality first reached the target
    to_target = time_to_target([asdict(e) for e in result.epochs],
                               kind.quality_target(config, dataset))
    tracker.log_params({**{k: info[k] for k in RESULT_PARAMS if k in info},
                        **to_target.target.params()})
    x_test, y_test, w_test = kind.load_test(dataset)
    scores = predict_with_progress(result.predict, x_test)
    if not np.all(np.isfinite(scores)):
        raise FloatingPointError(
            "the trained model predicts NaN/inf on the test split (training diverged); "
            "try a smaller --learning-rate"
        )
    with tempfile.TemporaryDirectory(prefix="hepspark-run-") as tmp:
        evaluation = kind.evaluate(tmp, config, dataset, y_test, scores, w_test)
        metrics = {**evaluation.metrics, "train_wall_time_s": info["train_wall_time_s"],
                   "peak_rss_mb": info["peak_rss_mb"],
                   **{k: info[k] for k in RESULT_METRICS if k in info},
                   # per process (hepspark.resources.peak_rss_metrics)
                   **info.get("peak_rss_mb_by_process", {}), **to_target.metrics()}
        _write_common(tmp, config, kind, dataset, result, evaluation.report, metrics, info)
        # the model is on disk before the results are uploaded (an upload may fail or hang)
        model_path = save_model_files(tmp, model_dir, (MODEL_FILE, PREPROCESSING_FILE))
        tracker.log_metrics(metrics)
        for name in sorted(os.listdir(tmp)):
            tracker.log_artifact(os.path.join(tmp, name), _artifact_dir(name))
    return RunOutcome(config=config, kind=kind, dataset=dataset, epochs=result.epochs,
                      test_metrics=metrics, report=evaluation.report, run_id=tracker.run_id,
                      resources=resources, info=info, summary=evaluation.summary,
                      model_path=model_path, stopped_early=result.stopped_early,
                      to_target=to_target)


def kept_epoch(config: TrainConfig, result) -> int:
    """The epoch whose weights the model holds after training."""
    if result.info.get("selected_epoch") is not None:
        return int(result.info["selected_epoch"])
    aucs = [(r.val_auc, -r.epoch) for r in result.epochs if r.val_auc is not None]
    if config.early_stopping_patience is not None and aucs:
        return -max(aucs)[1]  # best validation AUC, first of equals
    return result.epochs[-1].epoch


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


def _write_common(directory, config, kind, dataset, result, report, metrics, info) -> None:
    """What every run writes besides the kind's plots: training curves, the config, the
    epochs, a Markdown summary, the model and its preprocessing."""
    from hepspark.report import plots

    plots.plot_training_curves([asdict(e) for e in result.epochs],
                               os.path.join(directory, "training_curves.png"),
                               metric=kind.curve_metric(dataset))
    with open(os.path.join(directory, "run_config.json"), "w") as handle:
        handle.write(config.to_json())
    with open(os.path.join(directory, "epochs.json"), "w") as handle:
        json.dump([{**asdict(e), "rows_per_s": e.rows_per_s} for e in result.epochs], handle,
                  indent=2)
    with open(os.path.join(directory, "summary.md"), "w") as handle:
        handle.write(f"# {kind.name}: {config.model.describe()}\n\n```\n{report}\n```\n\n"
                     + "\n".join(f"- {k}: {v}" for k, v in sorted(metrics.items())) + "\n"
                     + "\n".join(f"- {k}: {v}" for k, v in sorted(info.items())) + "\n")
    result.save(os.path.join(directory, MODEL_FILE))
    with open(os.path.join(directory, PREPROCESSING_FILE), "w") as handle:
        json.dump(kind.preprocessing(config, dataset), handle, indent=2)
