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

from hepspark import stopping
from hepspark.backends.base import Engine, EpochRecord, TrainResult
from hepspark.backends.capabilities import check_supported
from hepspark.backends.epochs import EpochBook
from hepspark.backends.optimizers import keras_optimizer, learning_rate_of
from hepspark.backends.tasks import Task
from hepspark.checkpoint import resume_point
from hepspark.hardware import cpu_count, cpu_model, peak_rss_mb
from hepspark.progress import Progress

if TYPE_CHECKING:
    from hepspark.config import TrainConfig
    from hepspark.data.image_dataset import ImageDataset
    from hepspark.data.readers import HiggsDataset

CHECKPOINT_MODEL = "model.keras"  # Keras' own format keeps the optimizer state too


class KerasBackend(Engine):
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

        check_supported(config)
        keras.utils.set_random_seed(config.seed)
        resumed = resume_point(config)
        task = Task.of(config, dataset)
        if resumed is not None:  # model weights and optimizer state as the epoch left them
            model = keras.models.load_model(resumed.payload(CHECKPOINT_MODEL))
            optimizer = model.optimizer
        else:
            model = task.build(keras)
            optimizer = keras_optimizer(keras, config.optimizer, config.learning_rate)
            # weighted_metrics=[]: sample weights (physical weights) weigh the loss.
            model.compile(optimizer=optimizer, loss=task.loss, weighted_metrics=[],
                          steps_per_execution=config.steps_per_execution)

        def predict(x: np.ndarray) -> np.ndarray:
            return task.predict(model, x)

        tracker = _EpochTracker(config, task, predict, on_epoch_end, lambda: model)
        if resumed is not None:
            tracker.book.restore(resumed.records)
        model.fit(
            task.train_tf_dataset(),
            epochs=config.epochs,
            initial_epoch=resumed.epoch if resumed else 0,
            shuffle=False,  # the reader shuffles (row groups + a buffer of rows)
            verbose=0,  # hepspark's own progress (a bar, or lines in a log): _EpochTracker
            callbacks=[tracker],
        )
        tracker.progress.close()
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


class _EpochTracker(keras.callbacks.Callback):
    """Times each epoch and validates after it, outside the timed pass; the rest of the
    epoch-end bookkeeping is the shared :class:`EpochBook`. Also follows the process's
    peak resident memory (``peak_rss_mb``) and shows the steps of the run as
    :class:`~hepspark.progress.Progress`."""

    def __init__(self, config, task: Task, predict, on_epoch_end, get_model):
        super().__init__()
        self.task = task
        self.val = task.load_val()
        self.predict = predict
        self.get_model = get_model
        self.book = EpochBook(config, on_epoch_end, lambda: get_model().get_weights())
        self.peak_rss_mb = peak_rss_mb()
        self._start = 0.0
        self._steps_before, self._epochs_begun = 0, 0  # steps of the epochs run before
        self.progress = Progress("train", None, "steps")

    def on_train_begin(self, logs=None):
        steps = self.params.get("steps") or 0
        epochs_left = self.book.config.epochs - len(self.book.records)  # after a resume
        self.progress.update(0, steps * epochs_left if steps else None)

    def on_train_batch_end(self, batch, logs=None):
        # With steps_per_execution > 1 Keras calls this once per call, with the index of
        # the call's last step (a partial last call reports where a full one would end):
        # count steps from it, not calls.
        stopping.check()  # a SIGTERM a finaliser dropped (TensorFlow runs many) stops here
        steps = self.params.get("steps") or batch + 1
        self.progress.update(self._steps_before + min(batch + 1, steps))

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._steps_before = self._epochs_begun * (self.params.get("steps") or 0)
        self._epochs_begun += 1

    def on_epoch_end(self, epoch, logs=None):
        wall = time.perf_counter() - self._start
        self.peak_rss_mb = peak_rss_mb()
        train_loss = float((logs or {}).get("loss", np.nan))
        self.book.check_loss(epoch + 1, train_loss)
        scores = self.predict(self.val[0])
        record = self.task.epoch_record(epoch + 1, wall, self.task.n_train, train_loss,
                                        self.val, scores)
        model = self.get_model()
        if self.book.end_epoch(record, lambda d: model.save(os.path.join(d, CHECKPOINT_MODEL))):
            model.stop_training = True
