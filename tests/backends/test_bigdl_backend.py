"""BigDL trains the HIGGS DNN over the executors of the shared local[2] session, for real."""
from __future__ import annotations

import io
import os

import keras
import numpy as np
import pytest

from hepspark.backends import get_backend
from hepspark.backends.bigdl_backend import OPTIM_FILE
from hepspark.config import TrainConfig
from hepspark.data.readers import HiggsDataset
from hepspark.models.bigdl_dense import build_bigdl, keras_weights
from hepspark.models.config import DenseNetConfig, higgs_dnn
from hepspark.models.keras_dense import build_dense

SMALL = DenseNetConfig(depth=2, width=32)


def fit(higgs_dataset, **overrides):
    config = TrainConfig(data=higgs_dataset, backend="bigdl",
                         **{"epochs": 2, "batch_size": 500, **overrides})
    records = []
    result = get_backend("bigdl").fit(config, HiggsDataset(higgs_dataset, config.features),
                                      records.append)
    return config, records, result


@pytest.mark.parametrize("config", [higgs_dnn(), DenseNetConfig(depth=1, width=8),
                                    DenseNetConfig(depth=2, width=16, dropout=0.2)])
def test_bigdl_and_keras_builds_have_the_same_parameters(spark, config):
    bigdl = build_bigdl(config, 28, seed=1)
    shapes = [w.shape for w in keras_weights(bigdl.get_weights())]
    assert shapes == [tuple(w.shape) for w in build_dense(config, 28, keras=keras).weights]
    assert sum(int(np.prod(s)) for s in shapes) == config.num_parameters(28)


def test_training_over_executors_learns_and_exports_to_keras(spark, higgs_dataset, tmp_path):
    config, records, result = fit(higgs_dataset, epochs=3, optimizer="adam", model=SMALL)
    assert [r.epoch for r in records] == [1, 2, 3]
    assert records[-1].val_auc > 0.6, records  # chance 0.5 (see test_keras_backend)
    assert records[-1].train_loss < records[0].train_loss
    assert all(r.rows == HiggsDataset(higgs_dataset).rows("train") and r.rows_per_s > 0
               for r in records)
    assert result.info["parameters"] == SMALL.num_parameters(28)
    assert result.info["learning_rate"] == pytest.approx(1e-3)
    x, _ = HiggsDataset(higgs_dataset).load("test")
    scores = result.predict(x)
    exported = keras.models.load_model(result.save(str(tmp_path)))
    np.testing.assert_allclose(exported.predict(x, verbose=0).reshape(-1), scores, atol=1e-5)


@pytest.mark.parametrize("optimizer", ["sgd", "adamax", "adadelta", "adagrad", "rmsprop"])
def test_every_bigdl_optimizer_trains(spark, higgs_dataset, optimizer):
    _, records, result = fit(higgs_dataset, epochs=1, optimizer=optimizer,
                             model=DenseNetConfig(depth=1, width=16), features="high")
    assert np.isfinite(records[0].train_loss) and result.info["learning_rate"] > 0


def test_clear_errors_for_what_bigdl_cannot_do(spark, higgs_dataset):
    with pytest.raises(ValueError, match="backend bigdl has no optimizer 'nadam'; choose one of adadelta, adagrad, "
                                         "adam, adamax, rmsprop, sgd"):
        fit(higgs_dataset, optimizer="nadam", model=SMALL)
    with pytest.raises(ValueError, match="use --batch-size 500 or 502"):
        fit(higgs_dataset, batch_size=501, model=SMALL)
    with pytest.raises(ValueError, match="backend bigdl has no activation 'gelu'; choose one of elu, relu, "
                                         "sigmoid, tanh"):
        fit(higgs_dataset, model=DenseNetConfig(depth=1, width=8, activation="gelu"))


def test_checkpoint_and_resume(spark, higgs_dataset, tmp_path):
    ckpt = str(tmp_path / "ckpt")
    _, first, _ = fit(higgs_dataset, epochs=2, model=SMALL, checkpoint_dir=ckpt)
    assert sorted(os.listdir(ckpt)) == ["epoch-0001", "epoch-0002"]
    _, resumed, _ = fit(higgs_dataset, epochs=3, model=SMALL, checkpoint_dir=ckpt,
                        resume=True)
    assert [r.epoch for r in resumed] == [1, 2, 3] and resumed[:2] == first
    # epoch 3 really trained, from the restored state (not from scratch, not skipped)
    assert resumed[2].epoch_wall_time_s > 0.2 * first[1].epoch_wall_time_s
    assert resumed[2].train_loss < first[0].train_loss
    assert sorted(os.listdir(ckpt)) == ["epoch-0002", "epoch-0003"]
    # ...and with the optimizer's own state: Adam's step counter and moments go on from
    # epoch 2 (each optimize() call and each resume used to restart them from zero). The
    # state is plain arrays (no Java serialization in checkpoints).
    steps = -(-HiggsDataset(higgs_dataset).rows("train") // 500)
    moments = {}
    for epoch in (2, 3):
        with np.load(os.path.join(ckpt, f"epoch-{epoch:04d}", OPTIM_FILE)) as state:
            assert state["counter.evalCounter"] == epoch * steps
            assert state["tensor.s"].size == SMALL.num_parameters(28)
            moments[epoch] = state["tensor.s"]
    assert np.abs(moments[2]).sum() > 0 and not np.array_equal(moments[2], moments[3])
    with pytest.raises(ValueError, match="optimizer: checkpoint has 'adam'"):
        fit(higgs_dataset, epochs=4, model=SMALL, checkpoint_dir=ckpt, resume=True,
            optimizer="sgd")


def test_resume_never_deserializes_a_foreign_optimizer_file(spark, higgs_dataset, tmp_path,
                                                            monkeypatch):
    """Issue #14 item 7: BigDL's OptimMethod.load is Java deserialization (ObjectInputStream)
    of a file that may come from a shared volume. A Java-serialized optimizer file, an .npz
    carrying pickled objects and one of another shape are refused before anything loads."""
    from bigdl.dllib.optim import optimizer as bigdl_optim

    small = DenseNetConfig(depth=1, width=8)
    ckpt = tmp_path / "ckpt"
    fit(higgs_dataset, epochs=1, model=small, features="high", checkpoint_dir=str(ckpt))
    epoch_dir = ckpt / "epoch-0001"
    good = (epoch_dir / OPTIM_FILE).read_bytes()

    def resume():
        return fit(higgs_dataset, epochs=2, model=small, features="high",
                   checkpoint_dir=str(ckpt), resume=True)

    def reseal() -> None:
        """Record the tampered payload's checksums in state.json, as whoever can write the
        volume can: the checksums catch damage, not an attacker, so BigDL's own refusal
        must hold on its own."""
        import hashlib
        import json

        state_path = epoch_dir / "state.json"
        state = json.loads(state_path.read_text())
        state["payload_sha256"] = {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in epoch_dir.iterdir() if p.name != "state.json"}
        state_path.write_text(json.dumps(state))

    def no_deserialization(*args, **kwargs):
        raise AssertionError("OptimMethod.load (ObjectInputStream) was called")

    monkeypatch.setattr(bigdl_optim.OptimMethod, "load", staticmethod(no_deserialization))
    # 1. a foreign Java-serialized optimizer file in place of the arrays (the old layout)
    (epoch_dir / OPTIM_FILE).unlink()
    (epoch_dir / "optim_method.bigdl").write_bytes(b"\xac\xed\x00\x05sr\x00\x05Evil!")
    reseal()
    with pytest.raises(ValueError, match="Java-serialized optim_method.bigdl, which hepspark "
                                         "does not read"):
        resume()
    (epoch_dir / "optim_method.bigdl").unlink()
    # 2. an .npz whose entry is a pickle that would run code when loaded
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    np.savez(epoch_dir / OPTIM_FILE, **{"tensor.s": np.array([Payload()], dtype=object)})
    reseal()
    with pytest.raises(ValueError, match="refusing the BigDL optimizer state .*not a "
                                         "plain-array"):
        resume()
    assert not marker.exists()
    # 3. plain arrays, but not this run's optimizer state
    with np.load(io.BytesIO(good)) as data:
        arrays = dict(data)
    np.savez(epoch_dir / OPTIM_FILE, **{**arrays, "tensor.s": np.zeros(3, np.float32)})
    reseal()
    with pytest.raises(ValueError, match="unexpected entry 'tensor.s'"):
        resume()
    # the real state still resumes (and continues Adam's step counter)
    (epoch_dir / OPTIM_FILE).write_bytes(good)
    reseal()
    monkeypatch.undo()
    _, records, _ = resume()
    assert [r.epoch for r in records] == [1, 2]
    with np.load(ckpt / "epoch-0002" / OPTIM_FILE) as state:
        assert state["counter.evalCounter"] == 2 * arrays["counter.evalCounter"]


def test_a_training_run_prints_no_creating_lines_unless_verbose(spark, higgs_dataset, capsys):
    """BigDL 2.4.0 prints "creating: createXxx" for every JVM-backed object it makes;
    bigdl_compat.quiet_creating_lines drops them (``--verbose`` keeps them)."""
    from hepspark.backends import bigdl_compat

    capsys.readouterr()
    fit(higgs_dataset, epochs=1, model=DenseNetConfig(depth=1, width=8), features="high")
    printed = capsys.readouterr().out
    assert [line for line in printed.splitlines() if "creating:" in line] == []
    bigdl_compat.quiet_creating_lines(verbose=True)  # what bigdl_session does under --verbose
    try:
        build_bigdl(DenseNetConfig(depth=1, width=8), 7, seed=1)
    finally:
        bigdl_compat.quiet_creating_lines(verbose=False)
    assert "creating: createLinear" in capsys.readouterr().out
