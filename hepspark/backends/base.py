"""The interface every training engine implements, and the registry of engines.

A backend fits a model config on a :class:`~hepspark.data.readers.HiggsDataset` and
returns per-epoch records plus a trained model that predicts. It reports each epoch as it
ends (for progress output and MLflow) through ``on_epoch_end``.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from hepspark.config import TrainConfig
    from hepspark.data.readers import HiggsDataset

# name -> "module:Class"; engines are imported only when chosen (TensorFlow, BigDL and
# Horovod each cost seconds to import).
BACKENDS: dict[str, str] = {
    "keras": "hepspark.backends.keras_backend:KerasBackend",
    "horovod": "hepspark.backends.horovod_backend:HorovodBackend",
    "bigdl": "hepspark.backends.bigdl_backend:BigDLBackend",
}


@dataclass(frozen=True)
class EpochRecord:
    """What one training epoch measured; names are the MLflow metric names."""

    epoch: int
    epoch_wall_time_s: float
    rows: int
    train_loss: float
    val_loss: float | None = None
    val_auc: float | None = None
    val_accuracy: float | None = None  # K-class image models

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.epoch_wall_time_s if self.epoch_wall_time_s > 0 else float("nan")

    def metrics(self) -> dict[str, float]:
        values = {k: v for k, v in asdict(self).items() if k not in ("epoch", "rows")}
        values["rows_per_s"] = self.rows_per_s
        return {k: float(v) for k, v in values.items() if v is not None}

    def format(self, total_epochs: int) -> str:
        text = (
            f"epoch {self.epoch}/{total_epochs}  {self.epoch_wall_time_s:7.2f} s  "
            f"{self.rows_per_s:>9,.0f} rows/s  loss {self.train_loss:.4f}"
        )
        if self.val_loss is not None:
            text += f"  val_loss {self.val_loss:.4f}"
        if self.val_auc is not None:
            text += f"  val_auc {self.val_auc:.4f}"
        if self.val_accuracy is not None:
            text += f"  val_acc {self.val_accuracy:.4f}"
        return text


class TrainingFailedError(RuntimeError):
    """Distributed training stopped part-way (a rank died, Spark gave up on an executor's
    tasks). The message says whether and how the run continues with ``--resume``; the CLI
    prints it as one line and exits with ``EXIT_TRAINING_FAILED``."""


def training_failed(what: str, config: "TrainConfig", exc: BaseException) -> TrainingFailedError:
    """The error for distributed training that stopped part-way: ``what`` failed (e.g.
    "BigDL training failed in epoch 3"), the cause's type and first line, and how the run
    continues (``--resume`` from its checkpoints, or how to have checkpoints next time)."""
    text = str(exc).strip()
    first = text.splitlines()[0][:300] if text else ""
    if config.checkpoint_dir:
        way = (f"Epoch checkpoints are in {config.checkpoint_dir}: continue with --resume "
               f"{config.checkpoint_dir} (the MLflow run is continued, no epoch is logged "
               "twice).")
    else:
        way = "Run with --checkpoint-dir DIR to be able to --resume after such a failure."
    return TrainingFailedError(f"{what} ({type(exc).__name__}: {first}); see the executor "
                               f"logs. {way}")


@dataclass
class TrainResult:
    """A trained model: ``predict(x)`` gives signal scores in [0, 1] for standardized x."""

    epochs: list[EpochRecord]
    predict: Callable[[np.ndarray], np.ndarray]
    save: Callable[[str], str]
    stopped_early: bool = False
    info: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    name: str

    def fit(
        self,
        config: "TrainConfig",
        dataset: "HiggsDataset",
        on_epoch_end: Callable[[EpochRecord], None],
    ) -> TrainResult: ...

    def describe_resources(self, config: "TrainConfig") -> dict[str, Any]:
        """num_executors, cores_per_executor, device (and spark_master where Spark runs
        the training): logged next to the timings."""
        ...


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {name!r}")
    module_name, class_name = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)()


def check_shared_directory(spark, directory: str, tasks: int,
                           flag: str = "--checkpoint-dir") -> None:
    """Prove that what Spark tasks write into ``directory`` is seen by the driver: each of
    ``tasks`` tasks writes a probe file there, the driver looks for them (and removes
    them). On a cluster without a shared filesystem the checkpoints a rank writes would
    land on the executor's machine, where ``--resume`` never finds them: refused here,
    before any training."""
    import uuid

    token = uuid.uuid4().hex[:12]

    def write_probe(index, _rows):
        import os as _os
        import socket

        path = _os.path.join(directory, f".hepspark-probe-{token}-{index}")
        try:
            _os.makedirs(directory, exist_ok=True)
            with open(path, "w") as handle:
                handle.write(socket.gethostname())
            yield index, socket.gethostname(), None
        except OSError as exc:
            yield index, socket.gethostname(), f"{exc.strerror or exc}"

    written = spark.sparkContext.parallelize(range(tasks), tasks).mapPartitionsWithIndex(
        write_probe).collect()
    unseen = []
    for index, host, error in written:
        path = os.path.join(directory, f".hepspark-probe-{token}-{index}")
        if error is not None:
            unseen.append(f"{host}: cannot write there ({error})")
        elif not os.path.exists(path):
            unseen.append(f"{host}: wrote it, but the driver does not see the file")
        else:
            os.remove(path)
    if unseen:
        raise ValueError(
            f"{flag} {directory}: the executors' files there do not reach the driver ("
            + "; ".join(sorted(set(unseen)))
            + "). Use a directory on a filesystem the driver and every executor share "
            "(NFS, a shared volume), at the same path on all of them.")
