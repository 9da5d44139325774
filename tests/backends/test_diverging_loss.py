"""A training loss that becomes NaN/inf stops the run at that epoch's end, in every engine,
with one line naming the epoch and saying to lower --learning-rate (issue #14, item 12).
It used to surface later as "y_score contains non-finite values" (validation AUC), or under
Horovod as "a rank died"."""
from __future__ import annotations

import os

import pytest

from hepspark.cli import EXIT_USAGE, main


@pytest.mark.parametrize("backend", ["keras", "bigdl", "horovod", "torch"])
def test_a_diverging_loss_stops_at_that_epoch_with_one_line(spark, higgs_dataset, tmp_path,
                                                            capsys, backend):
    if backend == "horovod":
        pytest.importorskip("horovod.spark", reason="Horovod is part of 'make install'")
    if backend == "torch":
        pytest.importorskip("torch", reason="PyTorch is opt-in: 'make install-torch'")
    ckpt = tmp_path / "ckpt"
    # a learning rate beyond float32: the first update makes the weights inf/NaN
    code = main(["train", "higgs", "--data", higgs_dataset, "--backend", backend,
                 "--optimizer", "sgd", "--learning-rate", "1e39", "--epochs", "3",
                 "--depth", "1", "--width", "8", "--features", "high", "--no-tracking",
                 "--checkpoint-dir", str(ckpt),
                 *(["--executors", "2"] if backend in ("horovod", "torch") else [])])
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()  # Horovod forwards the ranks' own stderr too
    assert code == EXIT_USAGE == 2, captured.err[-2000:]
    assert "Traceback" not in captured.err
    assert err[-1] == ("hepspark: error: training diverged: the training loss is nan in "
                       "epoch 1; lower --learning-rate (it is 1e+39) and start again (the "
                       "checkpoints hold only the epochs before it)"), err[-1]
    assert "epoch 2/3" not in captured.out  # stopped at the end of epoch 1
    assert not ckpt.exists() or not [d for d in os.listdir(ckpt) if d.startswith("epoch-")]
