"""Epoch checkpoints shared by every backend: write one per epoch end, resume from the last
complete one.

Layout under the checkpoint directory::

    epoch-0003/
        state.json        # epoch, the run config, the epoch records so far
        <payload>         # the backend's model + optimizer state (its own format)

A checkpoint is built in a hidden temporary directory and renamed into place only when
complete, so a job killed mid-write leaves the previous epoch as the latest checkpoint.
``--resume DIR`` then continues from that epoch up to the configured final epoch count.

>>> ckpt = latest_checkpoint("ckpts", config)       # None if there is none yet
>>> ckpt.epoch, ckpt.payload("model.keras")
(3, 'ckpts/epoch-0003/model.keras')
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from hepspark.backends.base import EpochRecord

if TYPE_CHECKING:
    from hepspark.config import TrainConfig

STATE_FILE = "state.json"
KEEP = 2  # checkpoints kept: the latest, plus one in case the latest's payload is damaged
_EPOCH_DIR = re.compile(r"^epoch-(\d{4,})$")


@dataclass
class Checkpoint:
    path: str
    epoch: int
    records: list[EpochRecord]
    config: dict

    def payload(self, name: str) -> str:
        return os.path.join(self.path, name)


def save_checkpoint(
    root: str,
    config: "TrainConfig",
    records: list[EpochRecord],
    write_payload: Callable[[str], None],
    keep: int = KEEP,
) -> str:
    """Write the checkpoint of epoch ``records[-1].epoch``; ``write_payload(directory)``
    saves the backend's model and optimizer state into the (temporary) directory."""
    epoch = records[-1].epoch
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".epoch-{epoch:04d}.tmp-", dir=root)
    try:
        write_payload(tmp)
        state = {
            "epoch": epoch,
            "config": config.to_dict(),
            "records": [asdict(r) for r in records],
        }
        with open(os.path.join(tmp, STATE_FILE), "w") as handle:
            json.dump(state, handle, indent=2)
        final = os.path.join(root, f"epoch-{epoch:04d}")
        if os.path.exists(final):  # re-running an epoch after a resume
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in _epoch_dirs(root)[:-keep]:
        shutil.rmtree(os.path.join(root, old), ignore_errors=True)
    return final


def latest_checkpoint(root: str, config: "TrainConfig | None" = None) -> Checkpoint | None:
    """The newest complete checkpoint under ``root`` (None when there is none).

    With ``config``, refuses a checkpoint of a different run (other model, optimizer,
    batch size, data, ...) with a message listing what differs.
    """
    if not os.path.isdir(root):
        return None
    for name in reversed(_epoch_dirs(root)):
        path = os.path.join(root, name)
        try:
            with open(os.path.join(path, STATE_FILE)) as handle:
                state = json.load(handle)
        except (OSError, ValueError):
            continue  # damaged: fall back to the one before
        ckpt = Checkpoint(
            path=path,
            epoch=int(state["epoch"]),
            records=[EpochRecord(**r) for r in state["records"]],
            config=state["config"],
        )
        if config is not None:
            from hepspark.config import TrainConfig

            diff = config.mismatches(TrainConfig.from_dict(ckpt.config))
            if diff:
                raise ValueError(
                    f"checkpoint {path} belongs to a different run; differing settings: "
                    + "; ".join(diff)
                    + ". Resume with the same settings, or use a new --checkpoint-dir."
                )
        return ckpt
    return None


def resume_point(config: "TrainConfig") -> Checkpoint | None:
    """The checkpoint a run continues from: None unless ``config.resume``; an error if
    asked to resume and there is nothing to resume from."""
    if not config.resume:
        return None
    ckpt = latest_checkpoint(config.checkpoint_dir, config)
    if ckpt is None:
        raise FileNotFoundError(
            f"--resume {config.checkpoint_dir}: no complete epoch checkpoint there "
            "(start without --resume, with --checkpoint-dir, to create one)"
        )
    if ckpt.epoch >= config.epochs:
        raise ValueError(
            f"checkpoint {ckpt.path} already has {ckpt.epoch} epoch(s), and --epochs is "
            f"{config.epochs}: raise --epochs to train further"
        )
    return ckpt


def _epoch_dirs(root: str) -> list[str]:
    names = [n for n in os.listdir(root) if _EPOCH_DIR.match(n)]
    return sorted(names, key=lambda n: int(_EPOCH_DIR.match(n).group(1)))
