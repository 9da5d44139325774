"""What every backend does when an epoch ends, written once: keep the record, report it,
write the epoch checkpoint, and decide on early stopping and on the weights to keep:

* ``epoch_selection="val_auc"`` (HIGGS, jets): the best validation AUC, as Keras'
  ``restore_best_weights`` would; stop after ``early_stopping_patience`` epochs without gain.
* ``epoch_selection="loss_window"`` (LArTPC, seed 001): find the validation-loss minimum
  (epoch m); keep the weights of the epochs m-5 .. m+5 and choose the one with the best
  validation accuracy ("test A"); stop once the minimum is at most 85% of the epochs run
  and 5 epochs old (learning has plateaued and the window is complete).

A training loss that became NaN or infinite ends the run at that epoch's end, in every
engine, before validation and before its checkpoint (:meth:`EpochBook.check_loss`).

>>> book = EpochBook(config, on_epoch_end=print, get_weights=model.get_weights)
>>> book.check_loss(record.epoch, record.train_loss)  # before validating the epoch
>>> stop = book.end_epoch(record, write_checkpoint=lambda d: model.save(d + "/m.keras"))
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from hepspark import stopping
from hepspark.backends.base import EpochRecord
from hepspark.checkpoint import save_checkpoint

if TYPE_CHECKING:
    from hepspark.config import TrainConfig


class TrainingDivergedError(ValueError):
    """The training loss became NaN or infinite; the message names the epoch and says to
    lower the learning rate. The CLI prints it as one line (exit status 2)."""


class EpochBook:
    def __init__(
        self,
        config: "TrainConfig",
        on_epoch_end: Callable[[EpochRecord], None],
        get_weights: Callable[[], Any],
    ) -> None:
        self.config = config
        self.report = on_epoch_end
        self.get_weights = get_weights
        self.records: list[EpochRecord] = []
        self.best_auc = -np.inf
        self.best_weights: Any = None
        self.epochs_without_gain = 0
        self.stopped_early = False
        self.window_weights: dict[int, Any] = {}  # loss_window: epoch -> weights
        self.selected_epoch: int | None = None

    def restore(self, records: list[EpochRecord]) -> None:
        """Continue after a checkpoint: its epochs are reported again (the tracker skips
        those the continued MLflow run already holds; a new run gets them all) and early-stopping state is rebuilt from them. Checkpoints do not
        keep the best weights of those epochs: if no later epoch beats them, the final
        weights are used."""
        for record in records:
            self.records.append(record)
            self.report(record)
            if self.config.epoch_selection == "loss_window":
                self._loss_window(record, keep_weights=False)
            else:
                self._early_stopping(record, keep_weights=False)

    def check_loss(self, epoch: int, train_loss: float) -> None:
        """Raise :class:`TrainingDivergedError` when the epoch's training loss is not
        finite. Engines call it before validating the epoch: a diverged model's scores are
        NaN as well, and used to fail later as "y_score contains non-finite values"."""
        if np.isfinite(train_loss):
            return
        rate = self.config.learning_rate
        lower = (f"lower --learning-rate (it is {rate:g})" if rate is not None else
                 f"set a --learning-rate below {self.config.optimizer}'s default")
        raise TrainingDivergedError(
            f"training diverged: the training loss is {train_loss} in epoch {epoch}; {lower} "
            "and start again (the checkpoints hold only the epochs before it)"
        )

    def end_epoch(
        self, record: EpochRecord, write_checkpoint: Callable[[str], None] | None = None
    ) -> bool:
        """Book ``record``; True when training should stop (early stopping). A non-finite
        training loss raises :class:`TrainingDivergedError` (nothing is booked). A SIGTERM
        that a finaliser dropped during the epoch stops the run here, before the booking."""
        stopping.check()
        self.check_loss(record.epoch, record.train_loss)
        self.records.append(record)
        # Checkpoint first, then report: an epoch MLflow holds is then always in a
        # checkpoint, so a --resume never re-runs (and re-logs) an epoch already logged.
        if self.config.checkpoint_dir and write_checkpoint is not None:
            save_checkpoint(self.config.checkpoint_dir, self.config, self.records,
                            write_checkpoint)
        self.report(record)
        if self.config.epoch_selection == "loss_window":
            return self._loss_window(record)
        return self._early_stopping(record)

    def _early_stopping(self, record: EpochRecord, keep_weights: bool = True) -> bool:
        patience = self.config.early_stopping_patience
        if patience is None or record.val_auc is None:
            return False
        if record.val_auc > self.best_auc:
            self.best_auc = record.val_auc
            self.best_weights = self.get_weights() if keep_weights else None
            self.epochs_without_gain = 0
        else:
            self.epochs_without_gain += 1
            if self.epochs_without_gain >= patience:
                self.stopped_early = True
        return self.stopped_early

    # ------------------------------------------------------------ the LArTPC protocol
    WINDOW = 5
    MINIMUM_AT_MOST = 0.85

    def loss_minimum_epoch(self) -> int | None:
        losses = [(r.val_loss, r.epoch) for r in self.records if r.val_loss is not None]
        return min(losses)[1] if losses else None

    def _loss_window(self, record: EpochRecord, keep_weights: bool = True) -> bool:
        if keep_weights:
            self.window_weights[record.epoch] = self.get_weights()
        minimum = self.loss_minimum_epoch()
        if minimum is None:
            return False
        # Epochs before minimum - 5 can never be chosen again (a later minimum only
        # moves the window forward): free their weights.
        for epoch in [e for e in self.window_weights if e < minimum - self.WINDOW]:
            del self.window_weights[epoch]
        self._select(minimum)
        n = record.epoch
        if n >= minimum + self.WINDOW and minimum <= self.MINIMUM_AT_MOST * n:
            self.stopped_early = True
        return self.stopped_early

    def _select(self, minimum: int) -> None:
        """Best validation accuracy (ties: the lower loss) among the window's epochs whose
        weights are kept."""
        candidates = [r for r in self.records
                      if abs(r.epoch - minimum) <= self.WINDOW and r.epoch in self.window_weights]
        if not candidates:
            self.selected_epoch, self.best_weights = None, None
            return
        best = max(candidates, key=lambda r: (r.val_accuracy if r.val_accuracy is not None
                                              else -np.inf, -(r.val_loss or 0.0)))
        self.selected_epoch = best.epoch
        self.best_weights = self.window_weights[best.epoch]
