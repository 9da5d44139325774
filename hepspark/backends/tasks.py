"""What a training engine needs from a model kind, written once for every engine.

A :class:`Task` pairs a run config with its dataset: the HIGGS DNN on a
:class:`~hepspark.data.readers.HiggsDataset`, or a zoo CNN on an
:class:`~hepspark.data.image_dataset.ImageDataset` (binary with physical weights, or K
classes). Engines ask it for the model (in the Keras module they run: ``keras`` for the
single-process baseline and the driver, ``tf_keras`` on Horovod ranks), the loss, the
train batches (whole split or one rank's shard), the validation split, the validation
metrics of an epoch, and the Keras 3 model that holds weights trained elsewhere, so every
backend predicts, evaluates and saves the same way on the driver.

>>> task = Task.open(config)
>>> model = task.build(tf_keras)
>>> model.compile(optimizer=..., loss=task.loss, weighted_metrics=[])
>>> val = task.load_val()
>>> task.validate(val, task.predict(model, val[0]))
{'val_loss': 0.53, 'val_auc': 0.81}
>>> task.epoch_record(1, 2.5, task.n_train, 0.6, val, task.predict(model, val[0]))
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from hepspark.metrics import binary_cross_entropy, roc_auc
from hepspark.models.keras_dense import PREDICT_BATCH
from hepspark.records import EpochRecord

if TYPE_CHECKING:
    from hepspark.config import TrainConfig


class Task:
    """Base: the HIGGS DNN (``config.model`` a DenseNetConfig) on a HiggsDataset."""

    def __init__(self, config: "TrainConfig", dataset: Any) -> None:
        self.config = config
        self.dataset = dataset

    @staticmethod
    def open(config: "TrainConfig", data: str | None = None) -> "Task":
        """The task of ``config`` on its dataset (``data`` overrides ``config.data``, e.g.
        the dataset URI a rank got from the driver)."""
        path = data or config.data
        if config.is_cnn:
            from hepspark.data.image_dataset import ImageDataset

            return ImageTask(config, ImageDataset(path))
        from hepspark.data.readers import HiggsDataset

        return Task(config, HiggsDataset(path, config.features))

    @staticmethod
    def of(config: "TrainConfig", dataset: Any) -> "Task":
        return ImageTask(config, dataset) if config.is_cnn else Task(config, dataset)

    # ------------------------------------------------------------------ description
    binary = True
    num_outputs = 1
    loss = "binary_crossentropy"
    weighted = False  # batches carry sample weights

    @property
    def train_split(self) -> str:
        return "train"

    @property
    def val_split(self) -> str:
        return "val"

    @property
    def test_split(self) -> str:
        return "test"

    @property
    def n_train(self) -> int:
        return self.dataset.rows(self.train_split)

    def input_spec(self, tf) -> Any:
        return tf.TensorSpec(shape=(None, len(self.dataset.features)), dtype=tf.float32)

    # -------------------------------------------------------------------- the model
    def build(self, keras: ModuleType | None = None) -> Any:
        from hepspark.models.keras_dense import build_dense

        return build_dense(self.config.model, len(self.dataset.features), keras=keras,
                           seed=self.config.seed)

    def keras_model_with_weights(self, weights: list, keras: ModuleType | None = None) -> Any:
        """The Keras build of the config holding ``weights`` (Keras order), refused when
        their shapes do not fit."""
        model = self.build(keras)
        expected = [tuple(w.shape) for w in model.get_weights()]
        got = [tuple(np.shape(w)) for w in weights]
        if got != expected:
            raise ValueError(f"weights of shapes {got} do not fit "
                             f"{self.config.model.describe()}: {expected}")
        model.set_weights(weights)
        return model

    def predict(self, model: Any, x: np.ndarray) -> np.ndarray:
        """Scores: ``[n]`` signal probabilities (binary) or ``[n, K]`` class probabilities."""
        scores = model.predict(x, batch_size=PREDICT_BATCH, verbose=0)
        return scores.reshape(-1) if self.binary else scores

    # --------------------------------------------------------------------- the data
    def load_val(self) -> tuple:
        return self.dataset.load(self.val_split)

    def validate(self, val: tuple, scores: np.ndarray) -> dict[str, float]:
        _, y_val = val[:2]
        return {"val_loss": binary_cross_entropy(y_val, scores),
                "val_auc": roc_auc(y_val, scores)}

    def epoch_record(self, epoch: int, epoch_wall_time_s: float, rows: int, train_loss: float,
                     val: tuple, scores: np.ndarray) -> EpochRecord:
        """The record of an epoch whose model scored ``scores`` on the validation split
        ``val``: what every engine reports when an epoch ends."""
        return EpochRecord(epoch=epoch, epoch_wall_time_s=epoch_wall_time_s, rows=rows,
                           train_loss=train_loss, **self.validate(val, scores))

    def batches(self, seed: int | None, shard: int = 0, num_shards: int = 1,
                drop_last: bool = False, reader: str = "petastorm") -> Iterator[tuple]:
        """One pass over the train split (or one shard of it) as Keras ``fit`` tuples."""
        return self.dataset.iter_batches(self.train_split, self.config.batch_size,
                                         shuffle=True, seed=seed, shard=shard,
                                         num_shards=num_shards, drop_last=drop_last,
                                         reader=reader)

    # ------------------------------------------------------- data-parallel ranks
    def rank_steps(self, size: int, engine: str) -> int:
        """Steps per epoch of each of ``size`` ranks: ``train rows // (batch x size)``, the
        same on every rank, so that an epoch is one pass's worth of rows however the row
        groups fall to the ranks (a rank with one step more would wait forever in its
        all-reduce). Refuses a batch larger than the smallest shard; warns (``engine`` names
        the line) when the shards are unbalanced."""
        batch = self.config.batch_size
        shards = [self.dataset.shard_rows(self.train_split, r, size) for r in range(size)]
        if min(shards) < batch:
            raise ValueError(f"batch_size {batch} is larger than the smallest rank's shard "
                             f"({min(shards)} rows)")
        if max(shards) > 1.2 * min(shards):
            print(f"[{engine}] rank shards are unbalanced ({min(shards):,d} to "
                  f"{max(shards):,d} rows, ranks read whole row groups): smaller shards are "
                  "revisited more often per epoch; convert with a smaller "
                  "--row-group-size-mb to balance them", flush=True)
        return self.n_train // (batch * size)

    def shard_stream(self, rank: int, size: int, first_pass: int,
                     reader: str = "petastorm") -> Iterator[tuple]:
        """Rank ``rank``'s shard of the train split as an endless stream of full batches,
        reshuffled at every pass (seed + pass, passes counted from ``first_pass``). A rank
        takes :meth:`rank_steps` batches of it per epoch: one whose shard is smaller than
        its share goes round it more often within an epoch, a larger one continues its
        pass in the next epoch (the convention of Horovod's own Spark estimators)."""
        for shard_pass in itertools.count(first_pass):
            yield from self.batches(self.config.seed + shard_pass, rank, size,
                                    drop_last=True, reader=reader)

    def tf_signature(self, tf) -> tuple:
        return (self.input_spec(tf), tf.TensorSpec(shape=(None,), dtype=tf.float32))

    def train_tf_dataset(self) -> Any:
        """The whole train split, one shuffled pass per iteration (seed + pass), with a
        known length (a real Keras progress bar)."""
        from hepspark.data.readers import make_tf_dataset

        return make_tf_dataset(self.dataset, self.train_split, self.config.batch_size,
                               shuffle=True, seed=self.config.seed)


class ImageTask(Task):
    """A zoo CNN (``config.model`` a CnnConfig) on an ImageDataset: sigmoid output and
    weighted binary cross-entropy for two classes, softmax and sparse categorical
    cross-entropy for K; the physical weights weigh the loss and the validation metrics."""

    weighted = True

    def __init__(self, config: "TrainConfig", dataset: Any) -> None:
        super().__init__(config, dataset)
        self.binary = dataset.num_classes == 2
        self.num_outputs = 1 if self.binary else dataset.num_classes
        self.loss = "binary_crossentropy" if self.binary else "sparse_categorical_crossentropy"

    @property
    def train_split(self) -> str:
        return self.dataset.train_split

    @property
    def val_split(self) -> str:
        return self.dataset.validation_split

    @property
    def test_split(self) -> str:
        return self.dataset.test_split

    def input_spec(self, tf) -> Any:
        return tf.TensorSpec(shape=(None, *self.dataset.image_shape), dtype=tf.float32)

    def build(self, keras: ModuleType | None = None) -> Any:
        from hepspark.models.cnn import build_cnn

        return build_cnn(self.config.model, self.dataset.image_shape, self.num_outputs,
                         keras=keras)

    def validate(self, val: tuple, scores: np.ndarray) -> dict[str, float]:
        from hepspark.multiclass import categorical_cross_entropy, weighted_accuracy

        _, y_val, w_val = val
        if self.binary:
            return {"val_loss": binary_cross_entropy(y_val, scores, w_val),
                    "val_auc": roc_auc(y_val, scores, sample_weight=w_val)}
        return {"val_loss": categorical_cross_entropy(y_val, scores, w_val),
                "val_accuracy": weighted_accuracy(y_val, scores, w_val)}

    def batches(self, seed, shard=0, num_shards=1, drop_last=False, reader="petastorm"):
        for x, y, w in super().batches(seed, shard, num_shards, drop_last, reader):
            yield x, (y.astype(np.float32) if self.binary else y), w

    def tf_signature(self, tf) -> tuple:
        label = (tf.TensorSpec(shape=(None,), dtype=tf.float32) if self.binary
                 else tf.TensorSpec(shape=(None,), dtype=tf.int32))
        return (self.input_spec(tf), label, tf.TensorSpec(shape=(None,), dtype=tf.float32))

    def train_tf_dataset(self) -> Any:
        from hepspark.data.image_dataset import make_image_tf_dataset

        return make_image_tf_dataset(self.dataset, self.train_split, self.config.batch_size,
                                     shuffle=True, seed=self.config.seed)
