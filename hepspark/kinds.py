"""Task kinds: what a training run of one kind of data adds to the one pipeline
(:mod:`hepspark.pipeline`): how its dataset opens, what its test split scores into
(metrics, plots, the lines of the summary), its preprocessing record and its names.

* :data:`HIGGS` — the HIGGS DNN: binary physics metrics (AUC, FOM, significance) beside
  the paper's reference AUCs.
* :data:`IMAGES` — the CNN zoo on image datasets: 2 classes (jets) get the same binary
  metrics weighted with the physical weights; K classes (LArTPC) get per-class accuracy,
  the confusion matrix and the separations of the seed's test-A/B protocol.

>>> HIGGS.open(TrainConfig(data="data/higgs")).features[:2]
['lepton_pT', 'lepton_eta']
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hepspark.config import TrainConfig
from hepspark.quality import (
    HIGGS_TARGET_AUC,
    JETS_TARGET_AUC,
    LARTPC_TARGET_ACCURACY,
    QualityTarget,
)
from hepspark.tags import TRAIN_CNN_TASK, TRAIN_HIGGS_TASK

# Reference test AUCs of the deep network on the full 10.5M-row training set
# (Baldi, Sadowski, Whiteson 2014); shown next to our results, never used as targets.
PAPER_DNN_AUC = {"low": 0.880, "high": 0.800, "all": 0.885}


@dataclass(frozen=True)
class Evaluation:
    """The test split scored: MLflow metrics, the summary's lines, the binary summary."""

    metrics: dict[str, float]
    report: str
    summary: Any = None


class TaskKind:
    """The pieces of a run that depend on the kind of data (see the module docstring)."""

    name = ""
    task_tag = ""  # MLflow tag hepspark.task (the scaling report selects runs by it)
    unit = "rows"  # what an epoch counts
    skipped_params: tuple[str, ...] = ()  # TrainConfig params that mean nothing here

    def check(self, config: TrainConfig) -> None: ...
    def open(self, config: TrainConfig): ...
    def default_experiment(self, dataset) -> str: ...
    def run_name(self, config: TrainConfig, dataset, resources: dict) -> str: ...
    def dataset_params(self, config: TrainConfig, dataset) -> dict[str, Any]: ...
    def load_test(self, dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]: ...
    def evaluate(self, directory: str, config: TrainConfig, dataset, y, scores,
                 weights) -> Evaluation: ...
    def headline(self, config: TrainConfig, dataset) -> str: ...
    def curve_metric(self, dataset) -> str: ...
    def preprocessing(self, config: TrainConfig, dataset) -> dict[str, Any]: ...
    def default_target(self, dataset) -> QualityTarget: ...

    def quality_target(self, config: TrainConfig, dataset) -> QualityTarget:
        """The validation quality whose time to reach a run logs: the kind's default, or
        ``config.target_quality`` (``--target-auc``) on the same metric."""
        default = self.default_target(dataset)
        if config.target_quality is None:
            return default
        return QualityTarget(default.metric, config.target_quality)


class HiggsKind(TaskKind):
    name = "HIGGS"
    task_tag = TRAIN_HIGGS_TASK

    def check(self, config: TrainConfig) -> None:
        if config.is_cnn:
            raise ValueError("HIGGS runs train the dense network; CNNs train on image "
                             "datasets ('hepspark train cnn')")

    def open(self, config: TrainConfig):
        from hepspark.data.readers import HiggsDataset

        return HiggsDataset(config.data, features=config.features)

    def default_experiment(self, dataset) -> str:
        """One experiment per dataset, named after its directory."""
        return dataset.name if dataset.name.startswith("higgs") else f"higgs-{dataset.name}"

    def run_name(self, config, dataset, resources) -> str:
        return (f"{config.backend}-{config.optimizer}-{config.features}"
                f"-x{resources['num_executors']}")

    def dataset_params(self, config, dataset) -> dict[str, Any]:
        return {**{f"{s}_rows": dataset.rows(s) for s in ("train", "val", "test")},
                "n_features": len(dataset.features)}

    def load_test(self, dataset):
        x, y = dataset.load("test")
        return x, y, None

    def evaluate(self, directory, config, dataset, y, scores, weights) -> Evaluation:
        return binary_evaluation(directory, y, scores, None, "events",
                                 label=f"{config.backend} {config.optimizer} ({config.features})",
                                 reference_auc=PAPER_DNN_AUC[config.features])

    def headline(self, config, dataset) -> str:
        return (f"HIGGS {config.model.describe()} | backend {config.backend} | optimizer "
                f"{config.optimizer} | features {config.features} | batch {config.batch_size}")

    def curve_metric(self, dataset) -> str:
        return "auc"

    def preprocessing(self, config, dataset) -> dict[str, Any]:
        return {"dataset": dataset.uri, "feature_set": config.features,
                **dataset.standardizer.to_dict(dataset.features)}

    def default_target(self, dataset) -> QualityTarget:
        return QualityTarget("val_auc", HIGGS_TARGET_AUC)


class ImageKind(TaskKind):
    name = "images"
    task_tag = TRAIN_CNN_TASK
    unit = "images"
    skipped_params = ("features",)

    def check(self, config: TrainConfig) -> None:
        if not config.is_cnn:
            raise ValueError("image runs train a CNN model config (CnnConfig)")

    def open(self, config: TrainConfig):
        from hepspark.data.image_dataset import ImageDataset

        return ImageDataset(config.data)

    def default_experiment(self, dataset) -> str:
        return f"cnn-{dataset.name}"

    def run_name(self, config, dataset, resources) -> str:
        return f"{config.backend}-{config.model.family}-{dataset.kind}"

    def dataset_params(self, config, dataset) -> dict[str, Any]:
        splits = (dataset.train_split, dataset.validation_split, dataset.test_split)
        return {"dataset_kind": dataset.kind,
                "image_shape": "x".join(map(str, dataset.image_shape)),
                "num_classes": dataset.num_classes,
                **{f"{s}_rows": dataset.rows(s) for s in splits}}

    def load_test(self, dataset):
        return dataset.load(dataset.test_split)

    def evaluate(self, directory, config, dataset, y, scores, weights) -> Evaluation:
        if dataset.num_classes == 2:
            return binary_evaluation(directory, y, scores, weights, "images",
                                     label=f"{config.model.family} (weighted)")
        return multiclass_evaluation(directory, dataset, y, scores, weights)

    def headline(self, config, dataset) -> str:
        return (f"{dataset.kind} {config.model.describe()} | backend {config.backend} | "
                f"optimizer {config.optimizer} | batch {config.batch_size}")

    def curve_metric(self, dataset) -> str:
        return "auc" if dataset.num_classes == 2 else "accuracy"

    def preprocessing(self, config, dataset) -> dict[str, Any]:
        return {"dataset": dataset.uri, "kind": dataset.kind,
                "image_shape": list(dataset.image_shape), "class_names": dataset.class_names,
                "pixel_scale": dataset.pixel_scale.tolist()}

    def default_target(self, dataset) -> QualityTarget:
        if dataset.num_classes == 2:
            return QualityTarget("val_auc", JETS_TARGET_AUC)
        return QualityTarget("val_accuracy", LARTPC_TARGET_ACCURACY)


HIGGS = HiggsKind()
IMAGES = ImageKind()


def binary_evaluation(directory: str, y, scores, weights, unit: str, label: str,
                      reference_auc: float | None = None) -> Evaluation:
    """Signal vs background: ROC, FOM vs cut, score histograms and the physics summary
    (weighted with the physical ``weights`` when there are any)."""
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
                   label=label, reference_auc=reference_auc)
    plots.plot_fom(fom_curve(y, scores, sample_weight=weights),
                   os.path.join(directory, "fom_vs_cut.png"),
                   significance=discovery_significance(y, scores, sample_weight=weights))
    plots.plot_score_histograms(score_histograms(y, scores, sample_weight=weights),
                                os.path.join(directory, "score_histograms.png"))
    metrics = {k: v for k, v in asdict(summary).items() if k not in ("n_signal", "n_background")}
    auc_line = f"  test AUC                   {summary.test_auc:.4f}"
    if weights is not None:
        metrics["test_auc_unweighted"] = physics_summary(y, scores).test_auc
        auc_line = (f"  test AUC (weighted)        {summary.test_auc:.4f}   "
                    f"(unweighted {metrics['test_auc_unweighted']:.4f})")
    if reference_auc is not None:
        auc_line += f"   (paper DNN, 10.5M rows: {reference_auc:.3f})"
    report = "\n".join([
        auc_line,
        f"  test accuracy (cut 0.5)    {summary.test_accuracy:.4f}",
        f"  best FOM S/sqrt(B)         {summary.best_fom:.2f} at cut {summary.best_cut:.3f}",
        f"  significance 100s/1000b    {summary.significance_100s_1000b:.2f} sigma "
        f"at cut {summary.significance_cut:.3f}",
        f"  test {unit:<22}{summary.n_signal:,d} signal, {summary.n_background:,d} background",
    ])
    return Evaluation(metrics, report, summary)


def multiclass_evaluation(directory: str, dataset, y, probs, weights) -> Evaluation:
    """K classes: per-class accuracy with binomial errors, the confusion matrix,
    efficiency vs purity, and the seed's separations (AUC, accuracy, ROC curves)."""
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
    return Evaluation(summary.metrics(), "\n".join(lines))
