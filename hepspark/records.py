"""Records every layer shares: what an epoch measured, what training returned, and the
error for training that stopped part-way. Below the engines, the checkpoints and the
tracker, so that each of them can import these without importing the others.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from hepspark.config import TrainConfig


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


class OutOfMemoryStop(MemoryError):
    """Training ran out of memory (a JVM OutOfMemoryError, a Python MemoryError, a process
    the OS killed for memory). Not resumable as it is: the message names the process and
    the setting to raise; the CLI prints it as one line and exits with status 2."""


def out_of_memory(what: str, process: str, setting: str, cause: str) -> OutOfMemoryStop:
    """``what`` ran out of memory in ``process``: raise ``setting`` (``cause``: the line
    that said so)."""
    return OutOfMemoryStop(f"{what}: out of memory in {process} ({cause}); give it more "
                           f"memory with {setting} and start again (a --resume would run "
                           "out of memory the same way)")


def training_failed(what: str, config: "TrainConfig", exc: BaseException,
                    hint: str = "") -> TrainingFailedError:
    """The error for distributed training that stopped part-way: ``what`` failed (e.g.
    "BigDL training failed in epoch 3"), the cause's type and first line, how the run
    continues (``--resume`` from its checkpoints, or how to have checkpoints next time),
    then ``hint`` (what else the cause suggests), if any."""
    text = str(exc).strip()
    first = text.splitlines()[0][:300] if text else ""
    if config.checkpoint_dir:
        way = (f"Epoch checkpoints are in {config.checkpoint_dir}: continue with --resume "
               f"{config.checkpoint_dir} (the MLflow run is continued, no epoch is logged "
               "twice).")
    else:
        way = "Run with --checkpoint-dir DIR to be able to --resume after such a failure."
    return TrainingFailedError(f"{what} ({type(exc).__name__}: {first}); see the executor "
                               f"logs. {way}" + (f" {hint}" if hint else ""))


@dataclass
class TrainResult:
    """A trained model: ``predict(x)`` gives signal scores in [0, 1] for standardized x."""

    epochs: list[EpochRecord]
    predict: Callable[[np.ndarray], np.ndarray]
    save: Callable[[str], str]
    stopped_early: bool = False
    info: dict[str, Any] = field(default_factory=dict)
