"""Epoch checkpoints shared by every backend: write one per epoch end, resume from the last
complete one.

Layout under the checkpoint directory::

    epoch-0003/
        state.json        # epoch, run token, the run config, the epoch records so far,
                          # and the SHA-256 of every payload file
        <payload>         # the backend's model + optimizer state (its own format)

A checkpoint is built in a hidden temporary directory, its files fsynced, and renamed into
place only when complete, so a job killed mid-write leaves the previous epoch as the
latest checkpoint; a newest checkpoint whose payload no longer matches its checksums is
skipped for the one before. ``--resume DIR`` then continues from that epoch up to the
configured final epoch count.

A checkpoint directory belongs to one run (its ``run_token``): a new run in a directory
holding another run's checkpoints is refused (:func:`claim_checkpoint_dir`), and pruning
only ever deletes the run's own epochs.

>>> config = claim_checkpoint_dir(config)            # before any work
>>> ckpt = latest_checkpoint("ckpts", config)       # None if there is none yet
>>> ckpt.epoch, ckpt.payload("model.keras")
(3, 'ckpts/epoch-0003/model.keras')
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from hepspark.records import EpochRecord

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
            "run_token": config.run_token,
            "config": config.to_dict(),
            "records": [asdict(r) for r in records],
            "payload_sha256": _payload_digests(tmp),
        }
        with open(os.path.join(tmp, STATE_FILE), "w") as handle:
            json.dump(state, handle, indent=2)
        _fsync_tree(tmp)
        final = os.path.join(root, f"epoch-{epoch:04d}")
        if os.path.exists(final):  # re-running an epoch after a resume
            owner = _run_token(final)
            if owner not in (None, config.run_token):
                raise FileExistsError(f"{final} belongs to another run ({owner}); it is "
                                      "not replaced: use a new --checkpoint-dir")
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_path(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    own = [name for name in _epoch_dirs(root)
           if _run_token(os.path.join(root, name)) in (None, config.run_token)]
    for old in own[:-keep]:
        shutil.rmtree(os.path.join(root, old), ignore_errors=True)
    return final


def latest_checkpoint(root: str, config: "TrainConfig | None" = None) -> Checkpoint | None:
    """The newest complete, undamaged checkpoint under ``root`` (None when there is none).

    With ``config``, refuses a checkpoint of a different run (other model, optimizer,
    batch size, data, ...) with a message listing what differs; with ``config.run_token``
    set, only that run's checkpoints are considered.
    """
    if not os.path.isdir(root):
        return None
    for name in reversed(_epoch_dirs(root)):
        path = os.path.join(root, name)
        try:
            with open(os.path.join(path, STATE_FILE)) as handle:
                state = json.load(handle)
        except (OSError, ValueError):
            _warn(f"skipping {path}: its {STATE_FILE} is unreadable")
            continue  # damaged: fall back to the one before
        if config is not None and config.run_token and state.get("run_token") not in (
                None, config.run_token):
            continue  # another run's (never mixed in)
        damaged = _damaged_payload(path, state.get("payload_sha256"))
        if damaged:
            _warn(f"skipping {path}: {damaged} does not match its checksum (damaged); "
                  "falling back to the checkpoint before")
            continue
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


def claim_checkpoint_dir(config: "TrainConfig") -> "TrainConfig":
    """Settle, before any work, which run ``config.checkpoint_dir`` belongs to.

    The path is made absolute (Spark tasks write there from other working directories)
    and checked writable. ``resume_if_present`` becomes ``resume`` when the directory holds
    a checkpoint. A resumed run keeps its checkpoint's run token; a new run gets a fresh
    one, and is refused when the directory holds checkpoints of another run.
    """
    if not config.checkpoint_dir:
        return config
    from hepspark.data.storage import check_writable_dir, is_local

    root = config.checkpoint_dir
    if is_local(root):
        flag = "--resume" if config.resume else "--checkpoint-dir"
        if config.resume and not os.path.isdir(root):
            raise FileNotFoundError(f"--resume {root}: no such directory")
        root = check_writable_dir(root, flag)
    config = config.with_(checkpoint_dir=root)
    if config.resume_if_present and not config.resume:
        config = config.with_(resume=latest_checkpoint(root) is not None)
    if config.resume:
        ckpt = resume_point(config)
        token = ckpt.config.get("run_token") or _run_token(ckpt.path) or "pre-token"
        return config.with_(run_token=token)
    existing = _epoch_dirs(root) if os.path.isdir(root) else []
    if existing:
        first, last = existing[0], existing[-1]
        owner = _run_token(os.path.join(root, last))
        raise FileExistsError(
            f"--checkpoint-dir {root} holds checkpoints of another run ({first}"
            + (f" to {last}" if last != first else "")
            + (f", run {owner}" if owner else "")
            + f"): continue that run with --resume {root} (or --resume-if-present), or "
            "give this run a new --checkpoint-dir; checkpoints of two runs are never mixed")
    return config.with_(run_token=uuid.uuid4().hex[:16])


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


def _run_token(path: str) -> str | None:
    try:
        with open(os.path.join(path, STATE_FILE)) as handle:
            return json.load(handle).get("run_token")
    except (OSError, ValueError, AttributeError):
        return None


def _payload_files(directory: str) -> list[str]:
    found = []
    for parent, _, names in os.walk(directory):
        found += [os.path.relpath(os.path.join(parent, n), directory) for n in names]
    return sorted(f for f in found if f != STATE_FILE)


def _sha256(path: str) -> str:
    from hepspark.data.convert import sha256_files

    return sha256_files([path])


def _payload_digests(directory: str) -> dict[str, str]:
    return {rel: _sha256(os.path.join(directory, rel)) for rel in _payload_files(directory)}


def _damaged_payload(path: str, digests: dict[str, str] | None) -> str | None:
    """The first payload file that is missing or differs from its recorded SHA-256
    (checkpoints written before checksums existed are taken as they are)."""
    for rel, expected in (digests or {}).items():
        full = os.path.join(path, rel)
        try:
            if _sha256(full) != expected:
                return rel
        except OSError:
            return rel
    return None


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(directory: str) -> None:
    """Flush every file and directory under ``directory`` to disk (before the rename that
    publishes it, so a crash cannot leave a published checkpoint with empty files)."""
    for parent, _, names in os.walk(directory):
        for name in names:
            _fsync_path(os.path.join(parent, name))
        _fsync_path(parent)


def _warn(message: str) -> None:
    print(f"[checkpoint] {message}", file=sys.stderr, flush=True)


def _epoch_dirs(root: str) -> list[str]:
    names = [n for n in os.listdir(root) if _EPOCH_DIR.match(n)]
    return sorted(names, key=lambda n: int(_EPOCH_DIR.match(n).group(1)))
