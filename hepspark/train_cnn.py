"""Driver-side orchestration of one CNN training run on an image dataset (seeds 000, 001).

open the ImageDataset → start the MLflow run → backend.fit (epochs reported as they end;
weights chosen by the epoch-selection rule) → score the test split → metrics, plots,
model → MLflow → a summary a person reads. The same shape as
:func:`hepspark.train.train_higgs`, and the same machinery (backends, EpochBook,
checkpoints, Tracker).

* Binary datasets (jets): weighted binary cross-entropy with the physical weights; the
  physics summary of HIGGS (AUC, accuracy, FOM, significance), weighted; ROC, FOM and
  score plots.
* K-class datasets (LArTPC): sparse categorical cross-entropy; per-class accuracy with
  binomial errors, confusion matrix, efficiency-vs-purity curves, and the mu/pi, e/gamma
  and shower/track separations (AUC, accuracy, ROC curves).
* Always: training wall time, the epoch chosen, and the driver's peak memory.

>>> outcome = train_cnn(TrainConfig(data="data/jets", model=CnnConfig("vgg", depth=10)),
...                     Tracker())
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from hepspark.backends import EpochRecord, get_backend
from hepspark.config import TrainConfig
from hepspark.data.image_dataset import ImageDataset
from hepspark.hardware import peak_rss_mb
from hepspark.models.keras_dense import MODEL_FILE
from hepspark.tracking import Tracker
from hepspark.train import claim_paths, record_run, recorded_run, save_model_files

PREPROCESSING_FILE = "preprocessing.json"
CNN_BACKENDS = ("keras", "horovod", "bigdl")


@dataclass
class CnnOutcome:
    config: TrainConfig
    dataset: ImageDataset
    epochs: list[EpochRecord]
    test_metrics: dict[str, float]
    report: str
    run_id: str | None
    resources: dict
    info: dict
    model_path: str | None = None
    stopped_early: bool = False

    def format(self) -> str:
        cfg = self.config
        times = [e.epoch_wall_time_s for e in self.epochs]
        rates = [e.rows_per_s for e in self.epochs]
        lines = [
            "",
            f"{self.dataset.kind} {cfg.model.describe()} | backend {cfg.backend} | "
            f"optimizer {cfg.optimizer} | batch {cfg.batch_size}",
            f"  device                     {self.resources.get('device')}",
            f"  parameters                 {self.info.get('parameters', 0):,d}",
            f"  epochs run                 {len(self.epochs)}/{cfg.epochs}"
            + ("  (stopped by the selection rule)" if self.stopped_early else ""),
            f"  epoch kept                 {self.info.get('kept_epoch')} "
            f"({cfg.epoch_selection})",
            f"  epoch wall time (s)        mean {np.mean(times):.2f}  min {np.min(times):.2f}",
            f"  training rate (images/s)   mean {np.mean(rates):,.0f}  max {np.max(rates):,.0f}",
            f"  training wall time (s)     {self.info.get('train_wall_time_s', 0):.1f}",
            f"  peak memory (MB)           {self.info.get('peak_rss_mb', 0):,.0f}",
            self.report,
        ]
        if self.run_id:
            lines.append(f"  MLflow run                 {self.run_id}")
        return "\n".join(lines)


def train_cnn(
    config: TrainConfig,
    tracker: Tracker,
    progress: Callable[[str], None] = print,
    model_dir: str | None = None,
) -> CnnOutcome:
    """Train ``config`` (a :class:`~hepspark.models.cnn.CnnConfig` model) on an image
    dataset and log everything; see the module docstring."""
    if not config.is_cnn:
        raise ValueError("train_cnn needs a CNN model config (CnnConfig)")
    if config.backend not in CNN_BACKENDS:
        raise ValueError(
            f"backend {config.backend!r} cannot train CNNs; use one of {CNN_BACKENDS}")
    config, model_dir = claim_paths(config, model_dir)
    dataset = ImageDataset(config.data)
    tracker.check()
    if tracker.experiment is None:
        tracker.experiment = f"cnn-{dataset.name}"
    backend = get_backend(config.backend)
    resources = backend.describe_resources(config)
    splits = (dataset.train_split, dataset.validation_split, dataset.test_split)
    params = {
        **{k: v for k, v in config.to_params().items() if k not in ("learning_rate", "features")},
        **resources,
        "dataset": dataset.uri,
        "dataset_kind": dataset.kind,
        "image_shape": "x".join(map(str, dataset.image_shape)),
        "num_classes": dataset.num_classes,
        **{f"{s}_rows": dataset.rows(s) for s in splits},
    }
    run_name = f"{config.backend}-{config.model.family}-{dataset.kind}"
    progress(f"[train] {dataset!r}\n[train] {config.model.describe()} with {config.optimizer}, "
             f"up to {config.epochs} epoch(s), batch {config.batch_size}, "
             f"selection {config.epoch_selection}, on {resources['device']}")
    if tracker.pending_dir is None:  # records an unreachable server missed go here
        tracker.pending_dir = config.checkpoint_dir or model_dir
    # a --resume continues the MLflow run its checkpoint directory records (as for HIGGS)
    with tracker.run(run_name, params, tags={"hepspark.task": "train-cnn"},
                     resume_run_id=recorded_run(config, tracker)):
        if tracker.resumed:
            progress(f"[train] continuing MLflow run {tracker.run_id} of the checkpoint")
        record_run(config, tracker)
        start = time.perf_counter()
        result = backend.fit(
            config, dataset,
            on_epoch_end=lambda rec: (tracker.log_epoch(rec), progress(rec.format(config.epochs))),
        )
        info = dict(result.info)
        info["train_wall_time_s"] = time.perf_counter() - start
        info["kept_epoch"] = _kept_epoch(config, result)
        info.setdefault("peak_rss_mb", peak_rss_mb())  # engines without their own measure
        tracker.log_params({k: info[k] for k in ("learning_rate", "parameters", "kept_epoch",
                                                 "sample_weights", "ranks", "partitions",
                                                 "threads_per_rank", "steps_per_epoch", "rank_python")
                            if k in info})
        x_test, y_test, w_test = dataset.load(dataset.test_split)
        scores = result.predict(x_test)
        if not np.all(np.isfinite(scores)):
            raise FloatingPointError(
                "the trained model predicts NaN/inf on the test split (training diverged); "
                "try a smaller --learning-rate"
            )
        with tempfile.TemporaryDirectory(prefix="hepspark-cnn-") as tmp:
            if dataset.num_classes == 2:
                metrics, report = _binary_report(tmp, config, y_test, scores, w_test)
            else:
                metrics, report = _multiclass_report(tmp, dataset, y_test, scores, w_test)
            metrics.update(train_wall_time_s=info["train_wall_time_s"],
                           peak_rss_mb=info["peak_rss_mb"])
            _write_common(tmp, config, dataset, result, report, metrics, info)
            # the model is on disk before the results are uploaded (may fail or hang)
            model_path = save_model_files(tmp, model_dir, (MODEL_FILE, PREPROCESSING_FILE))
            tracker.log_metrics(metrics)
            for name in sorted(os.listdir(tmp)):
                tracker.log_artifact(os.path.join(tmp, name), _artifact_dir(name))
    return CnnOutcome(config=config, dataset=dataset, epochs=result.epochs,
                      test_metrics=metrics, report=report, run_id=tracker.run_id,
                      resources=resources, info=info, model_path=model_path,
                      stopped_early=result.stopped_early)


def _kept_epoch(config: TrainConfig, result) -> int:
    """The epoch whose weights the model holds after training."""
    if result.info.get("selected_epoch") is not None:
        return int(result.info["selected_epoch"])
    aucs = [(r.val_auc, -r.epoch) for r in result.epochs if r.val_auc is not None]
    if config.early_stopping_patience is not None and aucs:
        return -max(aucs)[1]  # best validation AUC, first of equals
    return result.epochs[-1].epoch


def _artifact_dir(name: str) -> str | None:
    if name.endswith(".png"):
        return "plots"
    if name in (MODEL_FILE, PREPROCESSING_FILE):
        return "model"
    return None


def _binary_report(directory, config, y, scores, weights) -> tuple[dict, str]:
    from hepspark.metrics import (
        discovery_significance,
        fom_curve,
        physics_summary,
        roc_curve,
        score_histograms,
    )
    from hepspark.report import plots

    summary = physics_summary(y, scores, sample_weight=weights)
    plots.plot_roc(roc_curve(y, scores, weights), os.path.join(directory, "roc.png"),
                   label=f"{config.model.family} (weighted)")
    plots.plot_fom(fom_curve(y, scores, sample_weight=weights),
                   os.path.join(directory, "fom_vs_cut.png"),
                   significance=discovery_significance(y, scores, sample_weight=weights))
    plots.plot_score_histograms(score_histograms(y, scores, sample_weight=weights),
                                os.path.join(directory, "score_histograms.png"))
    metrics = {k: v for k, v in asdict(summary).items() if k not in ("n_signal", "n_background")}
    metrics["test_auc_unweighted"] = physics_summary(y, scores).test_auc
    report = "\n".join([
        f"  test AUC (weighted)        {summary.test_auc:.4f}   "
        f"(unweighted {metrics['test_auc_unweighted']:.4f})",
        f"  test accuracy (cut 0.5)    {summary.test_accuracy:.4f}",
        f"  best FOM S/sqrt(B)         {summary.best_fom:.2f} at cut {summary.best_cut:.3f}",
        f"  test images                {summary.n_signal:,d} label 1, "
        f"{summary.n_background:,d} label 0",
    ])
    return metrics, report


def _multiclass_report(directory, dataset, y, probs, weights) -> tuple[dict, str]:
    from hepspark.metrics import roc_curve
    from hepspark.multiclass import (
        LARTPC_SEPARATIONS,
        efficiency_purity,
        multiclass_summary,
        separation_scores,
    )
    from hepspark.report import plots

    names = dataset.class_names
    summary = multiclass_summary(y, probs, names, weights)
    plots.plot_confusion_matrix(summary.confusion, names,
                                os.path.join(directory, "confusion_matrix.png"))
    plots.plot_efficiency_purity(efficiency_purity(y, probs, names),
                                 os.path.join(directory, "efficiency_vs_purity.png"))
    rocs = {}
    for s in summary.separations:
        group_a, group_b = LARTPC_SEPARATIONS[s.name]
        truth, score = separation_scores(y, probs, names, group_a, group_b)
        rocs[f"{'/'.join(group_a)} vs {'/'.join(group_b)}"] = roc_curve(truth, score)
    if rocs:
        plots.plot_rocs(rocs, os.path.join(directory, "separations_roc.png"))
    lines = [f"  test accuracy ({dataset.test_split})   {summary.accuracy:.4f}",
             "  per-class accuracy (binomial errors):"]
    lines += [f"    {c.format()}" for c in summary.per_class]
    lines += [f"  separation {s.name:<13} AUC {s.auc:.4f}  accuracy {s.accuracy:.4f} "
              f"(n={s.n})" for s in summary.separations]
    lines.append("  confusion matrix (rows: true, columns: predicted): "
                 + " | ".join(f"{n}: {row.tolist()}" for n, row in zip(names,
                                                                        summary.confusion)))
    return summary.metrics(), "\n".join(lines)


def _write_common(directory, config, dataset, result, report, metrics, info) -> None:
    from hepspark.report import plots

    metric = "auc" if dataset.num_classes == 2 else "accuracy"
    plots.plot_training_curves([asdict(e) for e in result.epochs],
                               os.path.join(directory, "training_curves.png"), metric=metric)
    with open(os.path.join(directory, "run_config.json"), "w") as handle:
        handle.write(config.to_json())
    with open(os.path.join(directory, "epochs.json"), "w") as handle:
        json.dump([{**asdict(e), "rows_per_s": e.rows_per_s} for e in result.epochs], handle,
                  indent=2)
    with open(os.path.join(directory, "summary.md"), "w") as handle:
        handle.write(f"# {dataset.kind}: {config.model.describe()}\n\n```\n{report}\n```\n\n"
                     + "\n".join(f"- {k}: {v}" for k, v in sorted(metrics.items())) + "\n"
                     + "\n".join(f"- {k}: {v}" for k, v in sorted(info.items())) + "\n")
    result.save(os.path.join(directory, MODEL_FILE))
    with open(os.path.join(directory, PREPROCESSING_FILE), "w") as handle:
        json.dump({"dataset": dataset.uri, "kind": dataset.kind,
                   "image_shape": list(dataset.image_shape), "class_names": dataset.class_names,
                   "pixel_scale": dataset.pixel_scale.tolist()}, handle, indent=2)
