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


def test_a_damaged_newest_payload_falls_back_to_the_epoch_before(tmp_path, capsys):
    config = TrainConfig(data="d", checkpoint_dir=str(tmp_path), run_token="a")
    for epoch in (1, 2):
        save_checkpoint(str(tmp_path), config, [record(e) for e in range(1, epoch + 1)],
                        write(str(epoch) * 100))
    with open(tmp_path / "epoch-0002" / "model.bin", "r+") as handle:
        handle.write("X")  # one flipped byte: the state file still reads fine
    ckpt = latest_checkpoint(str(tmp_path), config)
    assert ckpt.epoch == 1 and open(ckpt.payload("model.bin")).read() == "1" * 100
    assert "epoch-0002: model.bin does not match its checksum" in capsys.readouterr().err
    os.remove(tmp_path / "epoch-0001" / "model.bin")  # a missing payload file is damage too
    assert latest_checkpoint(str(tmp_path), config) is None


def test_every_state_file_names_its_run_and_pruning_keeps_other_runs(tmp_path):
    import json

    mine, theirs = (TrainConfig(data="d", run_token=t) for t in ("mine", "theirs"))
    save_checkpoint(str(tmp_path), theirs, [record(e) for e in range(1, 6)], write("t"))
    for epoch in (1, 2, 3):
        save_checkpoint(str(tmp_path), mine, [record(e) for e in range(1, epoch + 1)],
                        write("m"))
    assert sorted(os.listdir(tmp_path)) == ["epoch-0002", "epoch-0003", "epoch-0005"]
    tokens = {n: json.load(open(tmp_path / n / "state.json"))["run_token"]
              for n in os.listdir(tmp_path)}
    assert tokens == {"epoch-0002": "mine", "epoch-0003": "mine", "epoch-0005": "theirs"}
    assert latest_checkpoint(str(tmp_path), mine).epoch == 3
    assert latest_checkpoint(str(tmp_path), theirs).epoch == 5
    with pytest.raises(FileExistsError, match="epoch-0005 belongs to another run"):
        save_checkpoint(str(tmp_path), mine, [record(e) for e in range(1, 6)], write("m"))
    assert json.load(open(tmp_path / "epoch-0005" / "state.json"))["run_token"] == "theirs"


def test_a_new_run_never_starts_in_another_runs_checkpoints(tmp_path):
    from hepspark.checkpoint import claim_checkpoint_dir

    root = tmp_path / "ckpt"
    first = claim_checkpoint_dir(TrainConfig(data="d", checkpoint_dir=str(root)))
    assert first.run_token and first.checkpoint_dir == str(root)
    save_checkpoint(str(root), first, [record(1)], write("1"))
    with pytest.raises(FileExistsError, match=r"holds checkpoints of another run \(epoch-0001"
                       r", run [0-9a-f]+\): continue that run with --resume"):
        claim_checkpoint_dir(TrainConfig(data="d", checkpoint_dir=str(root)))
    # a restart launcher's flags: resume when there is a checkpoint, start when there is none
    again = claim_checkpoint_dir(TrainConfig(data="d", checkpoint_dir=str(root),
                                             resume_if_present=True, epochs=3))
    assert again.resume and again.run_token == first.run_token
    fresh = claim_checkpoint_dir(TrainConfig(data="d", checkpoint_dir=str(tmp_path / "new"),
                                             resume_if_present=True))
    assert not fresh.resume and fresh.run_token not in (None, first.run_token)


def test_relative_checkpoint_dirs_become_absolute_and_unwritable_ones_are_refused(
        tmp_path, monkeypatch):
    from hepspark.checkpoint import claim_checkpoint_dir

    monkeypatch.chdir(tmp_path)
    claimed = claim_checkpoint_dir(TrainConfig(data="d", checkpoint_dir="ckpt"))
    assert claimed.checkpoint_dir == str(tmp_path / "ckpt")
    (tmp_path / "a-file").write_text("x")  # a path under a file cannot be created (even as root)
    with pytest.raises(ValueError, match="--checkpoint-dir .*a-file/ckpt is not writable"):
        claim_checkpoint_dir(TrainConfig(data="d", checkpoint_dir=str(tmp_path / "a-file" / "ckpt")))
