"""Single-process Keras baseline: the reference every distributed engine is compared with.

Streams the train split from Petastorm through ``tf.data`` (never all in memory), runs on
the GPU when TensorFlow sees one, else on all the process's CPU cores. Validation loss and
AUC are computed after each epoch on the in-memory validation split, outside the timed
epoch, so ``epoch_wall_time_s`` is the pure training pass that scaling studies compare.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported
import keras  # noqa: E402 - this module is only imported when the keras backend is chosen

from hepspark.backends.base import EpochRecord, TrainResult
from hepspark.backends.epochs import EpochBook
from hepspark.backends.optimizers import keras_optimizer, learning_rate_of
from hepspark.checkpoint import resume_point
from hepspark.hardware import cpu_count, cpu_model, peak_rss_mb
from hepspark.metrics import binary_cross_entropy, roc_auc
from hepspark.models.keras_dense import PREDICT_BATCH

if TYPE_CHECKING:
    from hepspark.config import TrainConfig
    from hepspark.data.image_dataset import ImageDataset
    from hepspark.data.readers import HiggsDataset

CHECKPOINT_MODEL = "model.keras"  # Keras' own format keeps the optimizer state too


class KerasBackend:
    name = "keras"

    def describe_resources(self, config: "TrainConfig") -> dict[str, Any]:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            device = f"GPU: {details.get('device_name', gpus[0].name)}"
        else:
            device = f"CPU: {cpu_model()}"
        return {"num_executors": 1, "cores_per_executor": cpu_count(), "device": device}

    def fit(
        self,
        config: "TrainConfig",
        dataset: "HiggsDataset | ImageDataset",
        on_epoch_end: Callable[[EpochRecord], None],
    ) -> TrainResult:
        from hepspark.models.keras_dense import save_keras_model

        keras.utils.set_random_seed(config.seed)
        resumed = resume_point(config)
        data = _cnn_inputs(config, dataset) if config.is_cnn else _dense_inputs(config, dataset)
        if resumed is not None:  # model weights and optimizer state as the epoch left them
            model = keras.models.load_model(resumed.payload(CHECKPOINT_MODEL))
            optimizer = model.optimizer
        else:
            model = data.build()
            optimizer = keras_optimizer(keras, config.optimizer, config.learning_rate)
            # weighted_metrics=[]: sample weights (physical weights) weigh the loss.
            model.compile(optimizer=optimizer, loss=data.loss, weighted_metrics=[])

        def predict(x: np.ndarray) -> np.ndarray:
            return data.predict(model, x)

        tracker = _EpochTracker(config, data, predict, on_epoch_end, lambda: model)
        if resumed is not None:
            tracker.book.restore(resumed.records)
        model.fit(
            data.train,
            epochs=config.epochs,
            initial_epoch=resumed.epoch if resumed else 0,
            shuffle=False,  # the reader shuffles (row groups + a buffer of rows)
            verbose=1 if _interactive() else 0,
            callbacks=[tracker],
        )
        book = tracker.book
        if book.best_weights is not None:
            model.set_weights(book.best_weights)

        return TrainResult(
            epochs=book.records,
            predict=predict,
            save=lambda path: save_keras_model(model, path),
            stopped_early=book.stopped_early,
            info={"learning_rate": learning_rate_of(optimizer), "parameters": model.count_params(),
                  "selected_epoch": book.selected_epoch,
                  "peak_rss_mb": tracker.peak_rss_mb},
        )


class _Inputs:
    """What a model family needs from its dataset: the model, its loss, the streamed train
    split, the in-memory validation split and how scores come out of ``predict``."""

    def __init__(self, build, loss, train, val, n_train, predict, validate):
        self.build, self.loss, self.train, self.val = build, loss, train, val
        self.n_train, self.predict, self.validate = n_train, predict, validate


def _dense_inputs(config: "TrainConfig", dataset: "HiggsDataset") -> _Inputs:
    from hepspark.data.readers import make_tf_dataset
    from hepspark.models.keras_dense import build_dense, predict_scores

    def validate(val, scores):
        x_val, y_val = val
        return {"val_loss": binary_cross_entropy(y_val, scores), "val_auc": roc_auc(y_val, scores)}

    return _Inputs(
        build=lambda: build_dense(config.model, len(dataset.features), keras=keras,
                                  seed=config.seed),
        loss="binary_crossentropy",
        train=make_tf_dataset(dataset, "train", config.batch_size, shuffle=True,
                              seed=config.seed),
        val=dataset.load("val"),
        n_train=dataset.rows("train"),
        predict=predict_scores,
        validate=validate,
    )


def _cnn_inputs(config: "TrainConfig", dataset: "ImageDataset") -> _Inputs:
    from hepspark.data.image_dataset import make_image_tf_dataset
    from hepspark.models.cnn import build_cnn
    from hepspark.multiclass import categorical_cross_entropy, weighted_accuracy

    binary = dataset.num_classes == 2
    outputs = 1 if binary else dataset.num_classes

    def predict(model, x):
        scores = model.predict(x, batch_size=PREDICT_BATCH, verbose=0)
        return scores.reshape(-1) if binary else scores

    def validate(val, scores):
        _, y_val, w_val = val
        if binary:
            return {"val_loss": binary_cross_entropy(y_val, scores, w_val),
                    "val_auc": roc_auc(y_val, scores, sample_weight=w_val)}
        return {"val_loss": categorical_cross_entropy(y_val, scores, w_val),
                "val_accuracy": weighted_accuracy(y_val, scores, w_val)}

    return _Inputs(
        build=lambda: build_cnn(config.model, dataset.image_shape, outputs, keras=keras),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        train=make_image_tf_dataset(dataset, dataset.train_split, config.batch_size,
                                    shuffle=True, seed=config.seed),
        val=dataset.load(dataset.validation_split),
        n_train=dataset.rows(dataset.train_split),
        predict=predict,
        validate=validate,
    )


def _interactive() -> bool:
    import sys

    return sys.stdout.isatty()


class _EpochTracker(keras.callbacks.Callback):
    """Times each epoch and validates after it, outside the timed pass; the rest of the
    epoch-end bookkeeping is the shared :class:`EpochBook`. Also follows the process's
    peak resident memory (``peak_rss_mb``)."""

    def __init__(self, config, data: _Inputs, predict, on_epoch_end, get_model):
        super().__init__()
        self.data = data
        self.predict = predict
        self.get_model = get_model
        self.book = EpochBook(config, on_epoch_end, lambda: get_model().get_weights())
        self.peak_rss_mb = peak_rss_mb()
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        wall = time.perf_counter() - self._start
        self.peak_rss_mb = peak_rss_mb()
        scores = self.predict(self.data.val[0])
        record = EpochRecord(
            epoch=epoch + 1,
            epoch_wall_time_s=wall,
            rows=self.data.n_train,
            train_loss=float((logs or {}).get("loss", np.nan)),
            **self.data.validate(self.data.val, scores),
        )
        model = self.get_model()
        if self.book.end_epoch(record, lambda d: model.save(os.path.join(d, CHECKPOINT_MODEL))):
            model.stop_training = True
