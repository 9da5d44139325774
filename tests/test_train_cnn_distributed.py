"""The zoo CNNs on the distributed engines, for real, in the shared local[2] session:
BigDL (translated from the Keras build, trained over the executors) and Horovod (2 ranks
in Spark tasks), on the binary jets protocol and the 5-class LArTPC protocol.

Each run's model is saved as ``model.keras`` from the engine's trained weights; the test
re-scores the test split with that file and gets the run's own test metrics back, which
checks that the weights came back from the engine whole and in the right order.
"""
from __future__ import annotations

import os

import keras
import numpy as np
import pytest
from conftest import make_image_dataset

from hepspark.config import TrainConfig
from hepspark.data.image_dataset import ImageDataset
from hepspark.metrics import roc_auc
from hepspark.models.bigdl_cnn import (
    BigDLUnsupportedError,
    get_state,
    keras_weights,
    translate,
)
from hepspark.models.cnn import CnnConfig, build_cnn
from hepspark.multiclass import weighted_accuracy
from hepspark.tracking import Tracker
from hepspark.train_cnn import train_cnn

QUIET = {"progress": lambda _: None}


@pytest.fixture(scope="module")
def jets(spark, tmp_path_factory):
    # 1 MB row groups: several per split, so each of 2 Horovod ranks gets a shard
    return make_image_dataset(spark, tmp_path_factory.mktemp("jets-dist"), "jets", 1_200,
                              seed=5, row_group_size_mb=1)


@pytest.fixture(scope="module")
def lartpc(spark, tmp_path_factory):
    return make_image_dataset(spark, tmp_path_factory.mktemp("lartpc-dist"), "lartpc", 500,
                              seed=5, image_size=40, row_group_size_mb=1)


def rescore_saved_model(outcome, model_dir):
    """The saved model.keras scored on the test split, in the run's own metric."""
    dataset = ImageDataset(outcome.config.data)
    x, y, w = dataset.load(dataset.test_split)
    model = keras.models.load_model(os.path.join(model_dir, "model.keras"))
    scores = model.predict(x, verbose=0)
    if dataset.num_classes == 2:
        return roc_auc(y, scores.reshape(-1), sample_weight=w), outcome.test_metrics["test_auc"]
    return weighted_accuracy(y, scores, w), outcome.test_metrics["test_accuracy"]


def check_run(outcome, model_dir, epochs):
    assert [e.epoch for e in outcome.epochs] == list(range(1, epochs + 1))
    assert all(e.rows > 0 and e.epoch_wall_time_s > 0 for e in outcome.epochs)
    assert all(np.isfinite(e.train_loss) and np.isfinite(e.val_loss) for e in outcome.epochs)
    assert outcome.info["peak_rss_mb"] > 0 and outcome.info["train_wall_time_s"] > 0
    saved, logged = rescore_saved_model(outcome, model_dir)
    assert saved == pytest.approx(logged, abs=1e-4)


# ------------------------------------------------------------------ translation (fast)
@pytest.mark.parametrize("config", [CnnConfig("basic_cnn", filters=4, kernel_size=5),
                                    CnnConfig("basic_cnn_bn_pool", filters=4),
                                    CnnConfig("alexnet_like", filters=4, dense_units=16),
                                    CnnConfig("vgg", depth=10, filters=4, dense_units=16),
                                    CnnConfig("resnet", depth=14, filters=4),
                                    CnnConfig("resnet", depth=11, bottleneck=True, version=2,
                                              filters=4),
                                    CnnConfig("inception", modules=2, towers=4, filters=4),
                                    CnnConfig("xception", filters=4)],
                         ids=lambda c: c.describe())
@pytest.mark.parametrize("outputs", [1, 5])
def test_bigdl_translation_computes_what_keras_computes(spark, config, outputs):
    from hepspark.backends.bigdl_compat import bigdl_session

    bigdl_session(spark.sparkContext.master)
    model = build_cnn(config, (17, 17, 2), outputs, keras=keras)
    rng = np.random.default_rng(2)
    for layer in model.layers:  # moving statistics that are not the initial 0 and 1
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, _, _ = layer.get_weights()
            layer.set_weights([gamma, beta, rng.normal(size=gamma.shape) * 0.1,
                               rng.uniform(0.5, 2.0, size=gamma.shape)])
    x = np.abs(np.random.default_rng(1).normal(size=(4, 17, 17, 2))).astype(np.float32)
    bigdl = translate(model)
    out = np.asarray(bigdl.predict_local(x))
    expected = model.predict(x, verbose=0)
    got = out.reshape(-1, 1) if outputs == 1 else np.exp(out)  # LogSoftMax -> softmax
    np.testing.assert_allclose(got, expected, atol=1e-5)
    back = keras_weights(model, get_state(bigdl, model))
    assert all(np.array_equal(a, b) for a, b in zip(back, model.get_weights()))


def test_bigdl_translation_refuses_what_it_cannot_express(spark):
    from hepspark.backends.bigdl_compat import bigdl_session

    bigdl_session(spark.sparkContext.master)
    inputs = keras.Input((9, 9, 1))
    dilated = keras.layers.Conv2D(2, 3, dilation_rate=2, name="dilated")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(dilated)))
    with pytest.raises(BigDLUnsupportedError, match="dilated"):
        translate(model)
    pooled = keras.layers.AveragePooling2D(2, name="avg")(inputs)
    with pytest.raises(BigDLUnsupportedError, match="avg .AveragePooling2D. has no BigDL"):
        translate(keras.Model(inputs, pooled))


# ------------------------------------------------------------------------ training
def test_bigdl_trains_basic_cnn_on_jets(jets, sqlite_tracking_uri, tmp_path):
    import mlflow

    config = TrainConfig(data=jets, backend="bigdl", optimizer="adam", batch_size=32,
                         epochs=2, early_stopping_patience=10,
                         model=CnnConfig("basic_cnn", filters=8))
    model_dir = str(tmp_path / "model")
    outcome = train_cnn(config, Tracker(sqlite_tracking_uri, "cnn-bigdl"), model_dir=model_dir,
                        **QUIET)
    check_run(outcome, model_dir, 2)
    # chance is 0.5; a few hundred jets and two epochs already give ~0.8
    assert outcome.test_metrics["test_auc"] > 0.6, outcome.report
    run = mlflow.MlflowClient(sqlite_tracking_uri).get_run(outcome.run_id)
    assert run.data.params["backend"] == "bigdl"
    assert "ignored in training" in run.data.params["sample_weights"]


def test_bigdl_trains_vgg_on_lartpc(lartpc, tmp_path):
    config = TrainConfig(data=lartpc, backend="bigdl", optimizer="adam", batch_size=20,
                         epochs=1, epoch_selection="loss_window",
                         model=CnnConfig("vgg", depth=10, filters=4, dense_units=32))
    model_dir = str(tmp_path / "model")
    outcome = train_cnn(config, Tracker(enabled=False), model_dir=model_dir, **QUIET)
    check_run(outcome, model_dir, 1)
    assert outcome.epochs[0].val_accuracy is not None
    assert "separation_shower_track_auc" in outcome.test_metrics


def test_bigdl_batch_norm_statistics_come_back_from_the_executors(jets, tmp_path):
    config = TrainConfig(data=jets, backend="bigdl", optimizer="adam", batch_size=32,
                         epochs=1, model=CnnConfig("basic_cnn_bn_pool", filters=4))
    model_dir = str(tmp_path / "model")
    outcome = train_cnn(config, Tracker(enabled=False), model_dir=model_dir, **QUIET)
    check_run(outcome, model_dir, 1)
    saved = keras.models.load_model(os.path.join(model_dir, "model.keras"))
    means = [layer.get_weights()[2] for layer in saved.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(means) == 3 and all(np.abs(m).max() > 0 for m in means)  # moved from 0


def test_bigdl_trains_a_resnet_graph_on_lartpc(lartpc, tmp_path):
    config = TrainConfig(data=lartpc, backend="bigdl", optimizer="adam", batch_size=20,
                         epochs=1, epoch_selection="loss_window",
                         model=CnnConfig("resnet", depth=14, filters=4))
    model_dir = str(tmp_path / "model")
    outcome = train_cnn(config, Tracker(enabled=False), model_dir=model_dir, **QUIET)
    check_run(outcome, model_dir, 1)


def test_horovod_trains_basic_cnn_on_jets_with_two_ranks(jets, tmp_path):
    config = TrainConfig(data=jets, backend="horovod", optimizer="nadam", batch_size=32,
                         epochs=2, early_stopping_patience=10, num_executors=2,
                         model=CnnConfig("basic_cnn", filters=8))
    model_dir = str(tmp_path / "model")
    outcome = train_cnn(config, Tracker(enabled=False), model_dir=model_dir, **QUIET)
    check_run(outcome, model_dir, 2)
    assert outcome.info["ranks"] == 2
    assert outcome.test_metrics["test_auc"] > 0.6, outcome.report


def test_horovod_trains_vgg_on_lartpc_with_two_ranks(lartpc, tmp_path):
    config = TrainConfig(data=lartpc, backend="horovod", optimizer="nadam", batch_size=20,
                         epochs=1, epoch_selection="loss_window", num_executors=2,
                         model=CnnConfig("vgg", depth=10, filters=4, dense_units=32))
    model_dir = str(tmp_path / "model")
    outcome = train_cnn(config, Tracker(enabled=False), model_dir=model_dir, **QUIET)
    check_run(outcome, model_dir, 1)
    assert outcome.info["kept_epoch"] == 1


def test_torch_trains_basic_cnn_on_jets_with_two_ranks(jets, tmp_path):
    pytest.importorskip("torch", reason="PyTorch is opt-in: 'make install-torch'")
    config = TrainConfig(data=jets, backend="torch", optimizer="nadam", batch_size=32,
                         epochs=2, early_stopping_patience=10, num_executors=2,
                         model=CnnConfig("basic_cnn", filters=8))
    model_dir = str(tmp_path / "model")
    outcome = train_cnn(config, Tracker(enabled=False), model_dir=model_dir, **QUIET)
    check_run(outcome, model_dir, 2)  # the saved model re-scores to the logged test AUC
    assert outcome.info["ranks"] == 2  # and identical weights on both (checked in fit)
    assert outcome.test_metrics["test_auc"] > 0.6, outcome.report
