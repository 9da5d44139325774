"""Training runs read back from MLflow as plain records the scaling report works on.

A run is read from the names :mod:`hepspark.tracking` documents (params ``backend``,
``optimizer``, ``num_executors``, ``cores_per_executor``, ``batch_size``, ``train_rows``,
``parameters``, ``device``; per-epoch ``epoch_wall_time_s``, ``rows_per_s``, ``val_auc``,
``train_loss``; final ``test_auc``) and the sweep's tags (node count, FLOP ceiling).

CNN runs (``hepspark train cnn``, a CNN sweep's, an imported ``benchmarks/cnn_zoo.py``
baseline) are read too, with ``task == "cnn"``, their zoo model, family and dataset kind:
the report gives them sections of their own and keeps the HIGGS ones as they were.

The epoch time of a run is the median over its epochs after the first, which carries the
one-off costs (graph tracing, JVM warm-up, BigDL's sample caching); with one epoch it is
that epoch, marked as including warm-up.

>>> runs = load_runs("higgs-scaling", tracking_uri="sqlite:///mlflow.db")
>>> [(r.backend, r.nodes, round(r.epoch_time_s, 1)) for r in runs]  # doctest: +SKIP
[('keras', 1, 3.1), ('horovod', 2, 2.4)]
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hepspark.backends.capabilities import batch_is_per_rank
from hepspark.cpusets import parse_cpus, parse_node_cpus
from hepspark.hardware import FLOPS_PER_WEIGHT_PER_ROW
from hepspark.quality import QualityTarget, TimeToTarget, time_to_target
from hepspark.tags import (
    BASELINE_TASK,
    CEILING_TAG,
    DRIVER_CPUS_TAG,
    FAMILY_TAG,
    KEY_TAG,
    LINK_TAG,
    MODE_TAG,
    MODEL_TAG,
    NODES_TAG,
    TASK_TAG,
    TRAIN_CNN_TASK,
    TRAIN_HIGGS_TASK,
    WORKER_CPUS_TAG,
)

EPOCH_METRICS = ("epoch_wall_time_s", "rows_per_s", "val_auc", "val_accuracy", "train_loss",
                 "val_loss")
TRAINING_TASKS = (TRAIN_HIGGS_TASK, TRAIN_CNN_TASK, BASELINE_TASK)


@dataclass
class MeasuredRun:
    run_id: str
    name: str
    backend: str
    optimizer: str
    nodes: int
    cores_per_executor: int
    batch_size: int
    train_rows: int
    parameters: int
    device: str
    mode: str
    epochs: list[dict] = field(default_factory=list)
    test_auc: float | None = None
    flop_ceiling_gflops: float | None = None
    start_time_ms: int = 0
    sweep_key: str | None = None  # the sweep's combination, when a sweep made the run
    # where it ran (issue #16): the nodes' pinned CPU sets ("0; 1"; "" unpinned), the
    # driver's CPUs and its CPU time during the job; None when not recorded
    worker_cpus: str | None = None
    driver_cpus: str | None = None
    driver_cpu_time_s: float | None = None
    target_value: float | None = None  # the quality target the run logged
    target_metric: str | None = None  # val_auc | val_accuracy
    # CNN runs: task "cnn", the zoo model (a sweep's name, e.g. vgg16; else family+depth),
    # its family and the dataset kind (jets, lartpc; "" when unknown)
    task: str = "higgs"
    model: str = ""
    family: str = ""
    dataset_kind: str = ""
    link: str = "loopback"  # what the nodes exchanged over (a sweep's --link)

    def to_target(self, target: QualityTarget) -> TimeToTarget:
        """Training time until ``target``, from the run's own epochs."""
        return time_to_target(self.epochs, target)

    @property
    def global_batch(self) -> int:
        """Rows per optimizer step over all nodes (Horovod's and torch's --batch-size is
        per rank)."""
        per_rank = batch_is_per_rank(self.backend)
        return self.batch_size * self.nodes if per_rank else self.batch_size

    @property
    def batch_per_node(self) -> int:
        return round(self.global_batch / max(1, self.nodes))

    @property
    def steady_epochs(self) -> list[dict]:
        timed = [e for e in self.epochs if e.get("epoch_wall_time_s") is not None]
        return timed[1:] if len(timed) > 1 else timed

    @property
    def includes_warmup(self) -> bool:
        return len([e for e in self.epochs if e.get("epoch_wall_time_s") is not None]) <= 1

    @property
    def epoch_time_s(self) -> float:
        times = [e["epoch_wall_time_s"] for e in self.steady_epochs]
        return float(np.median(times)) if times else math.nan

    @property
    def driver_on_nodes(self) -> bool:
        """Whether the job's driver had no CPU of its own: every CPU it could use belonged to
        the run's pinned nodes (False when either is not known; a pinned Keras baseline, whose
        own process is the training, always True)."""
        if not self.worker_cpus or not self.driver_cpus:
            return False
        nodes = {cpu for node in parse_node_cpus(self.worker_cpus) for cpu in node}
        return set(parse_cpus(self.driver_cpus)) <= nodes

    @property
    def epoch_spread(self) -> float | None:
        """The interquartile range of the steady epochs' wall times over their median: the
        run's own noise around the epoch time it reports (None with fewer than two steady
        epochs; with two, half their difference)."""
        times = [e["epoch_wall_time_s"] for e in self.steady_epochs]
        if len(times) < 2:
            return None
        low, high = np.percentile(times, [25, 75])
        return float(high - low) / float(np.median(times))

    @property
    def rows_per_s(self) -> float:
        """Rows trained per second as the run logged it (steady epochs), which counts the
        rows an epoch really trained; else training rows over the epoch time."""
        rates = [e["rows_per_s"] for e in self.steady_epochs if e.get("rows_per_s")]
        if rates:
            return float(np.median(rates))
        return self.train_rows / self.epoch_time_s if self.epoch_time_s > 0 else math.nan

    @property
    def epoch_fraction(self) -> float:
        """Rows trained per epoch over the training rows (1: a full pass), per steady epoch
        (its rows/s x its wall time), then the median. Not median rows/s x median time: with
        epochs of unequal length (a shared machine) that product overstates the rows (the
        old report showed Keras full passes as 108-114 %)."""
        if not self.train_rows or not math.isfinite(self.epoch_time_s):
            return math.nan
        trained = [e["rows_per_s"] * e["epoch_wall_time_s"] for e in self.steady_epochs
                   if e.get("rows_per_s")]
        if not trained:
            return self.rows_per_s * self.epoch_time_s / self.train_rows
        return float(np.median(trained)) / self.train_rows

    @property
    def val_auc(self) -> float | None:
        aucs = [e["val_auc"] for e in self.epochs if e.get("val_auc") is not None]
        return aucs[-1] if aucs else None

    @property
    def flop_fraction(self) -> float | None:
        """Training FLOP rate (6 flops per weight per row) over the run's FLOP ceiling."""
        if not self.flop_ceiling_gflops or not self.parameters:
            return None
        return self.rows_per_s * FLOPS_PER_WEIGHT_PER_ROW * self.parameters / (
            self.flop_ceiling_gflops * 1e9)

    @property
    def over_shaped_link(self) -> bool:
        """The nodes exchanged over a shaped link (a sweep's --link), not plain loopback:
        such a run measures the exchange term and stays off the curves."""
        return self.link != "loopback"

    @property
    def label(self) -> str:
        over = f" over {self.link}" if self.over_shaped_link else ""
        return f"{self.backend} {self.optimizer} x{self.nodes} b{self.global_batch}{over}"


def _int(params: dict, key: str, default: int = 0) -> int:
    try:
        return int(float(params.get(key, default)))
    except (TypeError, ValueError):
        return default


def _model_name(params: dict) -> str:
    """A user's CNN run (no sweep tag): its family and, where it has one, its depth."""
    family, depth = params.get("model_family", ""), params.get("model_depth", "None")
    if family in ("vgg", "resnet") and depth not in ("None", ""):
        return f"{family}{depth}" + ("b" if params.get("model_bottleneck") == "True" else "")
    return family


def load_runs(experiment: str, tracking_uri: str | None = None) -> list[MeasuredRun]:
    """Every finished training run of ``experiment``, oldest first.

    Raises ``ValueError`` naming the experiments that exist when ``experiment`` does not.
    """
    import mlflow

    from hepspark.tracking import check_tracking_uri, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    check_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ValueError(f"no MLflow experiment {experiment!r} in {uri}; it has: "
                         f"{', '.join(names) or 'none'}")
    runs = client.search_runs([found.experiment_id], "attributes.status = 'FINISHED'",
                              max_results=50_000, order_by=["attributes.start_time ASC"])
    measured = []
    for run in runs:
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        if tags.get(TASK_TAG) not in TRAINING_TASKS or "backend" not in params:
            continue
        histories = {key: client.get_metric_history(run.info.run_id, key)
                     for key in EPOCH_METRICS if key in metrics}
        steps = sorted({m.step for history in histories.values() for m in history})
        epochs = [{"epoch": step, **{key: next((m.value for m in h if m.step == step), None)
                                    for key, h in histories.items()}} for step in steps]
        ceiling = tags.get(CEILING_TAG)
        cnn = tags.get(TASK_TAG) == TRAIN_CNN_TASK or FAMILY_TAG in tags
        measured.append(MeasuredRun(
            run_id=run.info.run_id,
            name=run.info.run_name or run.info.run_id[:8],
            backend=params["backend"],
            optimizer=params.get("optimizer", "?"),
            nodes=_int(tags, NODES_TAG) or _int(params, "num_executors", 1),
            cores_per_executor=_int(params, "cores_per_executor"),
            batch_size=_int(params, "batch_size"),
            train_rows=_int(params, "train_rows"),
            parameters=_int(params, "parameters"),
            device=params.get("device", "?"),
            mode=tags.get(MODE_TAG, "run"),
            epochs=epochs,
            test_auc=metrics.get("test_auc"),
            flop_ceiling_gflops=float(ceiling) if ceiling else None,
            start_time_ms=run.info.start_time or 0,
            sweep_key=tags.get(KEY_TAG),
            worker_cpus=tags.get(WORKER_CPUS_TAG),
            driver_cpus=tags.get(DRIVER_CPUS_TAG),
            driver_cpu_time_s=metrics.get("driver_cpu_time_s"),
            target_value=float(params["target_value"]) if "target_value" in params else None,
            target_metric=params.get("target_metric"),
            task="cnn" if cnn else "higgs",
            model=(tags.get(MODEL_TAG) or _model_name(params)) if cnn else "",
            family=(tags.get(FAMILY_TAG) or params.get("model_family", "")) if cnn else "",
            dataset_kind=params.get("dataset_kind", "") if cnn else "",
            link=tags.get(LINK_TAG, "loopback"),
        ))
    return measured
