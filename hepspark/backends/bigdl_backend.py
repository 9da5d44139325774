"""BigDL on Spark: synchronous data-parallel training over the executors (seed study 004).

The train split is read from Parquet by the executors, standardized there and cached as an
RDD of BigDL ``Sample``s, one partition per executor core (the driver never holds it).
BigDL's ``DistriOptimizer`` then runs one Spark job per iteration: every core computes
gradients on its slice of the batch and the parameters are synchronised through the block
manager. Training runs one epoch per ``optimize()`` call, so the driver can time, validate,
checkpoint and stop between epochs exactly as the other backends do. The driver's
OptimMethod carries the epoch/iteration counters; the per-parameter state (Adam moments,
Adagrad sums) lives on the executors and is kept across calls with ``reserveOptim(true)``
and moved in and out of checkpoints by :mod:`hepspark.backends.bigdl_compat`.

The HIGGS model is BigDL's ``nn`` layers (Linear + activation,
:mod:`hepspark.models.bigdl_dense`), the same DenseNetConfig as every other engine. The zoo
CNNs are translated layer by layer from their Keras build (:mod:`hepspark.models.bigdl_cnn`),
images decoded on the executors. The trained weights go back into the Keras 3 build for
prediction and saving.

This module is the driver's side; what the executors run in Python (rows to Samples) is
:mod:`hepspark.backends.bigdl_remote`. What the engine supports is declared in
:mod:`hepspark.backends.capabilities` and checked before any work.
"""
from __future__ import annotations

import functools
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from hepspark.backends import bigdl_compat as compat
from hepspark.backends.base import Engine, EpochRecord, TrainResult, training_failed
from hepspark.backends.bigdl_compat import bigdl_session, check_batch_size
from hepspark.backends.capabilities import check_supported
from hepspark.backends.optimizers import bigdl_learning_rate, bigdl_optimizer
from hepspark.models.keras_dense import PREDICT_BATCH
from hepspark.progress import Progress

if TYPE_CHECKING:
    from hepspark.config import TrainConfig
    from hepspark.data.readers import HiggsDataset

MODEL_DEF, MODEL_WEIGHTS = "model.bigdl", "model.bin"
OPTIM_FILE = "optimizer_state.npz"  # plain arrays (bigdl_compat.optim_state_arrays)
# What checkpoints before issue #14 held instead: a Java-serialized OptimMethod. Never read.
JAVA_OPTIM_FILE = "optim_method.bigdl"


class BigDLBackend(Engine):
    name = "bigdl"

    def describe_resources(self, config: "TrainConfig") -> dict[str, Any]:
        from hepspark.hardware import cpu_model
        from hepspark.session import executor_python, spark_resources

        spark = bigdl_session(config.master, config.executor_wait_s)
        executors, cores = spark_resources(spark)
        return {
            "num_executors": executors,
            "cores_per_executor": cores,
            "device": f"CPU: {cpu_model()} (BigDL on Spark executors)",
            "spark_master": spark.sparkContext.master,
            "executor_python": executor_python(spark),
        }

    def fit(
        self,
        config: "TrainConfig",
        dataset: "HiggsDataset",
        on_epoch_end: Callable[[EpochRecord], None],
    ) -> TrainResult:
        check_supported(config)  # before BigDL or Spark start
        from bigdl.dllib.nn.layer import Model
        from bigdl.dllib.optim.optimizer import MaxEpoch, Optimizer, TrainSummary

        from hepspark.backends.epochs import EpochBook
        from hepspark.backends.tasks import Task
        from hepspark.checkpoint import resume_point
        from hepspark.session import spark_resources

        task = Task.of(config, dataset)
        parts = _ImageParts(task) if config.is_cnn else _DenseParts(task)
        spark = bigdl_session(config.master, config.executor_wait_s)
        executors, cores = spark_resources(spark)
        check_batch_size(config.batch_size, executors * cores)
        n_parameters = parts.n_parameters
        resumed = resume_point(config)
        optim = bigdl_optimizer(config.optimizer, config.learning_rate)
        if resumed is not None:
            # the checkpoint holds the executors' full optimizer state (moments included) as
            # plain arrays, checked before anything is loaded; the driver's copy gets only
            # the counters, the executors get the rest below
            saved_arrays = _checkpoint_optim_arrays(resumed.path, optim, n_parameters)
            model = Model.loadModel(resumed.payload(MODEL_DEF), resumed.payload(MODEL_WEIGHTS))
            saved = compat.set_optim_state(optim.value.clone(), saved_arrays)
            compat.set_optim_state(optim.value, saved_arrays, tensors=False)
        else:
            model = parts.build()
        train = parts.samples(spark, executors * cores)
        n_train = train.count()  # materialises the cache before the first timed epoch
        val = task.load_val()
        workdir = tempfile.mkdtemp(prefix="hepspark-bigdl-")
        summary = TrainSummary(workdir, "train")
        optimizer = Optimizer.create(
            model=model, training_set=train, criterion=parts.criterion(), optim_method=optim,
            end_trigger=MaxEpoch(1), batch_size=config.batch_size,
        )
        optimizer.set_train_summary(summary)
        compat.keep_optimizer_state(optimizer)
        if resumed is not None:
            from bigdl.dllib.utils.common import get_node_and_core_number

            optimizer.value.prepareInput()  # the restored state is placed next to the data
            compat.restore_executor_optim_state(spark, optimizer, model.name(), saved,
                                                n_parameters, get_node_and_core_number()[0])

        def predict(x: np.ndarray) -> np.ndarray:
            return parts.predict(model, x)

        def write_checkpoint(directory: str) -> None:
            model.saveModel(os.path.join(directory, MODEL_DEF),
                            os.path.join(directory, MODEL_WEIGHTS), over_write=True)
            state = compat.executor_optim_state(optimizer, n_parameters)
            counters = optim.value.state()  # the driver's epoch/iteration counters
            for key in ("epoch", "neval", "recordsProcessedThisEpoch"):
                if counters.contains(key):
                    state.state().update(key, counters.get(key).get())
            np.savez(os.path.join(directory, OPTIM_FILE), **compat.optim_state_arrays(state))

        book = EpochBook(config, on_epoch_end, lambda: parts.state(model))
        first = 1
        if resumed is not None:
            book.restore(resumed.records)
            first = resumed.epoch + 1
        seen = len(summary.read_scalar("Loss"))
        # Epochs only: the iterations inside optimize() are BigDL's (two Spark jobs each).
        progress = Progress("train", config.epochs - first + 1, "epochs")
        try:
            for epoch in range(first, config.epochs + 1):
                # MaxEpoch counts in the optimizer's own epochs, which a loaded optim method
                # carries on from the checkpoint; one more epoch per call.
                optimizer.set_end_when(MaxEpoch(_optimizer_epoch(optim) + 1))
                start = time.perf_counter()
                try:
                    compat.optimize(optimizer)
                except Exception as exc:
                    raise training_failed(f"BigDL training failed in epoch {epoch}", config,
                                          exc) from exc
                wall = time.perf_counter() - start
                losses = summary.read_scalar("Loss")
                epoch_losses = [float(point[1]) for point in losses[seen:]]
                seen = len(losses)
                train_loss = float(np.mean(epoch_losses)) if epoch_losses else float("nan")
                book.check_loss(epoch, train_loss)
                record = task.epoch_record(epoch, wall, n_train, train_loss, val,
                                           predict(val[0]))
                progress.advance()
                if book.end_epoch(record, write_checkpoint):
                    break
            progress.close()
        finally:
            train.unpersist()
            shutil.rmtree(workdir, ignore_errors=True)
        if book.best_weights is not None:
            parts.set_state(model, book.best_weights)
        trained = parts.keras_model(parts.state(model))

        def save(path: str) -> str:
            from hepspark.models.keras_dense import save_keras_model

            return save_keras_model(trained, path)

        return TrainResult(
            epochs=book.records,
            predict=predict,
            save=save,
            stopped_early=book.stopped_early,
            info={
                "learning_rate": bigdl_learning_rate(optim),
                "parameters": int(trained.count_params()),
                "partitions": executors * cores,
                **parts.notes,
            },
        )


# ------------------------------------------------------------------------- model kinds
class _DenseParts:
    """The HIGGS DNN on BigDL: nn layers built from the DenseNetConfig, BCE, standardized
    feature Samples."""

    notes: dict[str, Any] = {}

    def __init__(self, task) -> None:
        self.task = task
        self.n_inputs = len(task.dataset.features)
        self.n_parameters = task.config.model.num_parameters(self.n_inputs)

    def build(self):
        from hepspark.models.bigdl_dense import build_bigdl

        return build_bigdl(self.task.config.model, self.n_inputs, seed=self.task.config.seed)

    def criterion(self):
        from bigdl.dllib.nn.criterion import BCECriterion

        return BCECriterion()

    def samples(self, spark, partitions: int):
        return sample_rdd(spark, self.task.dataset, self.task.train_split, partitions)

    def predict(self, model, x: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_local(x, batch_size=PREDICT_BATCH)).reshape(-1)

    def state(self, model) -> list[np.ndarray]:
        return [w.copy() for w in model.get_weights()]

    def set_state(self, model, state) -> None:
        model.set_weights(state)

    def keras_model(self, bigdl_weights):
        from hepspark.models.bigdl_dense import keras_weights

        return self.task.keras_model_with_weights(keras_weights(bigdl_weights))


class _ImageParts:
    """A zoo CNN on BigDL: translated from its Keras build (:mod:`hepspark.models.bigdl_cnn`),
    BCE (binary) or class NLL over LogSoftMax (K classes, labels 1..K), image Samples.
    BigDL's criteria take no per-sample weights: the physical weights of the dataset are
    used in validation and test metrics only (logged as ``sample_weights``)."""

    def __init__(self, task) -> None:
        import keras

        self.task = task
        self.keras_build = task.build(keras)
        # what BigDL optimizes: BatchNorm's moving statistics are not parameters there
        self.n_parameters = int(sum(np.prod(w.shape) for w in self.keras_build.trainable_weights))
        # CAPABILITIES["bigdl"].sample_weights is False: say so with the run
        self.notes = {"sample_weights": "ignored in training (BigDL criteria take none); "
                                        "used in validation and test metrics"}

    def build(self):
        from hepspark.models.bigdl_cnn import translate

        return translate(self.keras_build, seed=self.task.config.seed)

    def criterion(self):
        from bigdl.dllib.nn.criterion import BCECriterion, ClassNLLCriterion

        return BCECriterion() if self.task.binary else ClassNLLCriterion()

    def samples(self, spark, partitions: int):
        return image_sample_rdd(spark, self.task.dataset, self.task.train_split, partitions)

    def predict(self, model, x: np.ndarray) -> np.ndarray:
        out = np.asarray(model.predict_local(x, batch_size=PREDICT_BATCH))
        return out.reshape(-1) if self.task.binary else np.exp(out)

    def state(self, model) -> list[np.ndarray]:
        """Parameters and BatchNormalization moving statistics."""
        from hepspark.models.bigdl_cnn import get_state

        return get_state(model, self.keras_build)

    def set_state(self, model, state) -> None:
        from hepspark.models.bigdl_cnn import set_state

        set_state(model, state, self.keras_build)

    def keras_model(self, state):
        from hepspark.models.bigdl_cnn import keras_weights as cnn_keras_weights

        return self.task.keras_model_with_weights(cnn_keras_weights(self.keras_build, state))


# ---------------------------------------------------------------------- checkpoints
def _checkpoint_optim_arrays(path: str, optim, n_parameters: int) -> dict[str, Any]:
    """The checkpoint's optimizer state as checked plain arrays; a checkpoint that holds it
    only as a Java-serialized OptimMethod (hepspark before issue #14) is refused, unread."""
    arrays_path = os.path.join(path, OPTIM_FILE)
    if not os.path.exists(arrays_path) and os.path.exists(os.path.join(path, JAVA_OPTIM_FILE)):
        raise ValueError(
            f"checkpoint {path} holds its BigDL optimizer state as a Java-serialized "
            f"{JAVA_OPTIM_FILE}, which hepspark does not read (deserializing a file from a "
            "shared volume can run code); start a new run without --resume"
        )
    return compat.load_optim_arrays(arrays_path, str(optim.value.getClass().getName()),
                                    n_parameters)


def _optimizer_epoch(optim) -> int:
    """Epochs the optim method has completed (its state's ``epoch`` starts at 1)."""
    try:
        state = optim.value.state()
        return int(state.get("epoch").get()) - 1 if state.contains("epoch") else 0
    except Exception:
        return 0


# ---------------------------------------------------------------------------------- data
def sample_rdd(spark, dataset: "HiggsDataset", split: str, partitions: int):
    """The split as a cached RDD of standardized BigDL Samples, read on the executors."""
    from hepspark.backends.bigdl_remote import DenseSampleSpec, dense_samples

    frame = spark.read.parquet(dataset.split_uri(split)).select(*dataset.features, "label")
    to_samples = functools.partial(dense_samples, DenseSampleSpec.of(dataset))
    return frame.rdd.repartition(partitions).mapPartitions(to_samples).cache()


def image_sample_rdd(spark, dataset, split: str, partitions: int):
    """An image split as a cached RDD of BigDL Samples, decoded on the executors."""
    from hepspark.backends.bigdl_remote import ImageSampleSpec, image_samples

    frame = spark.read.parquet(dataset.split_uri(split)).select("image", "label")
    to_samples = functools.partial(image_samples, ImageSampleSpec.of(dataset))
    return frame.rdd.repartition(partitions).mapPartitions(to_samples).cache()
