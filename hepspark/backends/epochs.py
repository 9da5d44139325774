"""What every backend does when an epoch ends, written once: keep the record, report it,
write the epoch checkpoint, and decide on early stopping (on validation AUC, keeping the
best weights as Keras' ``restore_best_weights`` would).

>>> book = EpochBook(config, on_epoch_end=print, get_weights=model.get_weights)
>>> stop = book.end_epoch(record, write_checkpoint=lambda d: model.save(d + "/m.keras"))
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from hepspark.backends.base import EpochRecord
from hepspark.checkpoint import save_checkpoint

if TYPE_CHECKING:
    from hepspark.config import TrainConfig


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

    def restore(self, records: list[EpochRecord]) -> None:
        """Continue after a checkpoint: its epochs are reported again (the tracker skips
        those the continued MLflow run already holds; a new run gets them all) and early-stopping state is rebuilt from them. Checkpoints do not
        keep the best weights of those epochs: if no later epoch beats them, the final
        weights are used."""
        for record in records:
            self.records.append(record)
            self.report(record)
            self._early_stopping(record, keep_weights=False)

    def end_epoch(
        self, record: EpochRecord, write_checkpoint: Callable[[str], None] | None = None
    ) -> bool:
        """Book ``record``; True when training should stop (early stopping)."""
        self.records.append(record)
        # Checkpoint first, then report: an epoch MLflow holds is then always in a
        # checkpoint, so a --resume never re-runs (and re-logs) an epoch already logged.
        if self.config.checkpoint_dir and write_checkpoint is not None:
            save_checkpoint(self.config.checkpoint_dir, self.config, self.records,
                            write_checkpoint)
        self.report(record)
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
