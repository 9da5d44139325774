"""Epoch checkpoints: complete or absent, never half-written; the newest readable wins."""
from __future__ import annotations

import os

import pytest

from hepspark.backends.base import EpochRecord
from hepspark.checkpoint import latest_checkpoint, save_checkpoint
from hepspark.config import TrainConfig


def record(epoch):
    return EpochRecord(epoch=epoch, epoch_wall_time_s=1.0, rows=10, train_loss=0.5,
                       val_loss=0.5, val_auc=0.6)


def write(text):
    def payload(directory):
        with open(os.path.join(directory, "model.bin"), "w") as handle:
            handle.write(text)
    return payload


def test_a_failed_write_leaves_the_previous_checkpoint_as_latest(tmp_path):
    config = TrainConfig(data="d", checkpoint_dir=str(tmp_path))
    save_checkpoint(str(tmp_path), config, [record(1)], write("one"))

    def crash(directory):
        write("half")(directory)
        raise KeyboardInterrupt  # e.g. the job is killed while the model is written

    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(str(tmp_path), config, [record(1), record(2)], crash)
    assert os.listdir(tmp_path) == ["epoch-0001"]  # no temporary directory left behind
    ckpt = latest_checkpoint(str(tmp_path), config)
    assert ckpt.epoch == 1 and open(ckpt.payload("model.bin")).read() == "one"
    assert ckpt.records == [record(1)]


def test_a_damaged_state_file_falls_back_to_the_epoch_before(tmp_path):
    config = TrainConfig(data="d")
    for epoch in (1, 2):
        save_checkpoint(str(tmp_path), config, [record(e) for e in range(1, epoch + 1)],
                        write(str(epoch)))
    with open(tmp_path / "epoch-0002" / "state.json", "w") as handle:
        handle.write("{truncated")
    assert latest_checkpoint(str(tmp_path)).epoch == 1
    assert latest_checkpoint(str(tmp_path / "missing")) is None


def test_epochs_and_placement_may_change_but_not_the_model(tmp_path):
    config = TrainConfig(data="d", batch_size=500)
    save_checkpoint(str(tmp_path), config, [record(1)], write("x"))
    moved = config.with_(epochs=9, num_executors=4, master="spark://h:7077")
    assert latest_checkpoint(str(tmp_path), moved).epoch == 1
    with pytest.raises(ValueError, match="batch_size: checkpoint has 500, this run 1000"):
        latest_checkpoint(str(tmp_path), config.with_(batch_size=1000))
