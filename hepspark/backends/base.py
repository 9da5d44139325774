"""The interface every training engine implements, and the registry of engines.

A backend fits a model config on a :class:`~hepspark.data.readers.HiggsDataset` and
returns per-epoch records plus a trained model that predicts. It reports each epoch as it
ends (for progress output and MLflow) through ``on_epoch_end``.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from hepspark.records import EpochRecord, TrainingFailedError, TrainResult, training_failed

if TYPE_CHECKING:
    from hepspark.config import EngineSettings, TrainConfig
    from hepspark.data.readers import HiggsDataset

# name -> "module:Class"; engines are imported only when chosen (TensorFlow, BigDL and
# Horovod each cost seconds to import).
__all__ = ["BACKENDS", "Backend", "EngineUnavailableError", "EpochRecord", "TrainResult",
           "TrainingFailedError", "check_shared_directory", "get_backend", "training_failed"]

BACKENDS: dict[str, str] = {
    "keras": "hepspark.backends.keras_backend:KerasBackend",
    "horovod": "hepspark.backends.horovod_backend:HorovodBackend",
    "bigdl": "hepspark.backends.bigdl_backend:BigDLBackend",
    "torch": "hepspark.backends.torch_backend:TorchBackend",
}


class EngineUnavailableError(RuntimeError):
    """An engine's framework is not installed (or does not import); the message says the
    install step. The CLI prints it as one line (exit status 2)."""


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


class Engine:
    """What every engine class shares: the ``HEPSPARK_*`` settings it runs with, read once
    on the driver by the pipeline (None: read from the environment when needed)."""

    def __init__(self, settings: "EngineSettings | None" = None) -> None:
        self.settings = settings

    def _settings(self) -> "EngineSettings":
        from hepspark.config import EngineSettings

        return self.settings if self.settings is not None else EngineSettings.from_environ()


def get_backend(name: str, settings: "EngineSettings | None" = None) -> Backend:
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {name!r}")
    module_name, class_name = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)(settings)


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
