"""BigDL on Spark: synchronous data-parallel training over the executors (seed study 004).

The HIGGS train split is read from Parquet by the executors, standardized in Spark SQL and
made into BigDL ``Sample``s by BigDL's Scala preprocessing, all in the JVM (issue #17: one
Python object per row ran at 4-8k rows/s and held a second, pickled copy). BigDL caches the
samples per executor in memory or, where the split does not fit, on local disk in slices
(:mod:`hepspark.backends.bigdl_memory` decides, before any data is read; a split that
cannot fit is refused with the memory it needs).
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

This module is the driver's side; what the executors run in Python (image rows to Samples)
is :mod:`hepspark.backends.bigdl_remote`. An out-of-memory stop is reported as such (the
process, the setting to raise), never as a resumable failure. What the engine supports is declared in
:mod:`hepspark.backends.capabilities` and checked before any work.
"""
from __future__ import annotations

import functools
import math
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
from hepspark.backends.bigdl_memory import CachePlan
from hepspark.backends.capabilities import check_supported
from hepspark.backends.optimizers import bigdl_learning_rate, bigdl_optimizer
from hepspark.config import EngineSettings
from hepspark.models.keras_dense import PREDICT_BATCH
from hepspark.progress import Progress
from hepspark.records import out_of_memory

IMAGE_PREDICT_BATCH = 256  # images per driver-side prediction call (see _ImageParts.predict)

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

        spark = bigdl_session(config.master, config.executor_wait_s,
                              self._settings().driver_memory)
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
        from bigdl.dllib.optim.optimizer import MaxEpoch, TrainSummary

        from hepspark.backends.epochs import EpochBook
        from hepspark.backends.tasks import Task
        from hepspark.checkpoint import resume_point
        from hepspark.resources import peak_rss_metrics, spark_peak_rss_mb
        from hepspark.session import spark_resources

        task = Task.of(config, dataset)
        parts = _ImageParts(task) if config.is_cnn else _DenseParts(task)
        spark = bigdl_session(config.master, config.executor_wait_s,
                              self._settings().driver_memory)
        executors, cores = spark_resources(spark)
        check_batch_size(config.batch_size, executors * cores)
        plan = parts.plan_cache(spark, executors)  # refuses a split that cannot fit, unread
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
        oom = _OutOfMemory(spark)
        start = time.perf_counter()
        try:
            train = parts.training_data(spark, executors * cores, plan)
            n_train = train.size()  # materialises the cache before the first timed epoch
            cache_s = time.perf_counter() - start
            optimizer = parts.optimizer(spark, model, train, optim, MaxEpoch(1),
                                        config.batch_size)
        except Exception as exc:
            # only an out-of-memory stop is re-worded here; anything else is not a failure
            # of training part-way and propagates as it is
            stop = oom.or_failure("BigDL could not set up training", config, exc)
            if isinstance(stop, MemoryError):
                raise stop from exc
            raise
        val = task.load_val()
        workdir = tempfile.mkdtemp(prefix="hepspark-bigdl-")
        summary = TrainSummary(workdir, "train")
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
        seen = 0  # a fresh summary directory: nothing was trained into it yet
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
                    raise oom.or_failure(f"BigDL training failed in epoch {epoch}", config,
                                         exc) from exc
                wall = time.perf_counter() - start
                losses = _read_losses(summary)
                epoch_losses = [float(point[1]) for point in losses[seen:]]
                seen = len(losses)
                train_loss = float(np.mean(epoch_losses)) if epoch_losses else float("nan")
                book.check_loss(epoch, train_loss)
                record = task.epoch_record(epoch, wall, n_train, train_loss, val,
                                           predict(val[0]))
                progress.advance()
                if book.end_epoch(record, write_checkpoint):
                    break
            peak_rss = spark_peak_rss_mb(spark)
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
                "cache_wall_time_s": cache_s,
                "cache_rows_per_s": n_train / cache_s if cache_s > 0 else float("nan"),
                "peak_rss_mb": max(v for v in peak_rss.values() if v is not None),
                "peak_rss_mb_by_process": peak_rss_metrics(peak_rss),
                **(plan.params() if plan is not None else {}),
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

    def plan_cache(self, spark, executors: int) -> CachePlan:
        """Where the split's samples fit (:mod:`hepspark.backends.bigdl_memory`)."""
        from hepspark.backends.bigdl_memory import plan_cache

        rows = self.task.dataset.rows(self.task.train_split)
        local = spark.sparkContext.master.startswith("local")
        flag = (f"{EngineSettings.DRIVER_MEMORY_ENV}=<size> or --driver-memory (local mode: "
                "the tasks run in the driver's JVM)") if local else "--executor-memory"
        return plan_cache(math.ceil(rows / executors), self.n_inputs + 1,
                          compat.storage_memory_per_executor(spark), memory_flag=flag)

    def training_data(self, spark, partitions: int, plan: CachePlan):
        return dense_minibatches(spark, self.task.dataset, self.task.train_split,
                                 self.task.config.batch_size, plan)

    def optimizer(self, spark, model, data, optim, end_trigger, batch_size: int):
        return compat.distri_optimizer(spark, model, data, self.criterion(), optim, end_trigger)

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

    def plan_cache(self, spark, executors: int) -> None:
        return None  # images still go through Python Samples (below), not planned

    def training_data(self, spark, partitions: int, plan: None):
        return _CachedRDD(image_sample_rdd(spark, self.task.dataset, self.task.train_split,
                                           partitions))

    def optimizer(self, spark, model, data, optim, end_trigger, batch_size: int):
        from bigdl.dllib.optim.optimizer import Optimizer

        return Optimizer.create(model=model, training_set=data.rdd,
                                criterion=self.criterion(), optim_method=optim,
                                end_trigger=end_trigger, batch_size=batch_size)

    def predict(self, model, x: np.ndarray) -> np.ndarray:
        # Image batches in slices: predict_local holds a whole batch's activations in the
        # driver JVM (a 10,000-image batch of basic_cnn's 32x33x33 maps is 1.4 GB: out of
        # heap with spark-submit's default 1g driver)
        out = np.concatenate([np.asarray(model.predict_local(x[i:i + IMAGE_PREDICT_BATCH],
                                                             batch_size=IMAGE_PREDICT_BATCH))
                              for i in range(0, len(x), IMAGE_PREDICT_BATCH)])
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
def dense_minibatches(spark, dataset: "HiggsDataset", split: str, batch_size: int,
                      plan: CachePlan):
    """The split as BigDL's cached MiniBatch DataSet, standardized and made into Samples in
    the JVM (Spark SQL, then BigDL's Scala preprocessing): no Python object per row, no
    Python worker at all. ``plan`` says whether the samples stay in memory or on disk."""
    from pyspark.sql import functions as F

    frame = spark.read.parquet(dataset.split_uri(split))
    mean, std = dataset.standardizer.mean, dataset.standardizer.std
    features = F.array(*[((F.col(name) - float(m)) / float(s)).cast("float")
                         for name, m, s in zip(dataset.features, mean, std)])
    frame = frame.select(features.alias("features"), F.col("label").cast("float").alias("label"))
    return compat.dataframe_minibatches(frame, len(dataset.features), batch_size, plan.level,
                                        plan.slices)


class _CachedRDD:
    """A cached RDD of Python Samples with the two calls the training loop makes of BigDL's
    DataSet (``size``, ``unpersist``)."""

    def __init__(self, rdd) -> None:
        self.rdd = rdd

    def size(self) -> int:
        return self.rdd.count()

    def unpersist(self) -> None:
        self.rdd.unpersist()


class _OutOfMemory:
    """Tells an out-of-memory stop from other training failures: the former is one line
    naming the process and the setting to raise, never a resumable failure."""

    def __init__(self, spark) -> None:
        self.local = spark.sparkContext.master.startswith("local")

    def or_failure(self, what: str, config: "TrainConfig", exc: BaseException) -> Exception:
        cause = compat.out_of_memory_cause(exc)
        if cause is None and not self.local and compat.executor_lost(exc):
            return training_failed(
                what, config, exc, hint="An executor was lost: most often it ran out of "
                "memory (its stderr under the worker's work directory says); give executors "
                "more with --executor-memory (a worker must offer at least that: "
                "--worker-memory).")
        if cause is None:
            return training_failed(what, config, exc)
        if isinstance(exc, MemoryError):
            return out_of_memory(what, "the driver's Python process", "a larger machine or a "
                                 "smaller split", cause)
        if self.local:
            return out_of_memory(what, "the driver's JVM (local mode: the executors run in "
                                 "it)", f"{EngineSettings.DRIVER_MEMORY_ENV}=<size> or "
                                 "--driver-memory", cause)
        return out_of_memory(what, "an executor JVM or its Python workers",
                             "--executor-memory (and spark.executor.memoryOverhead for the "
                             "Python workers)", cause)


def image_sample_rdd(spark, dataset, split: str, partitions: int):
    """An image split as a cached RDD of BigDL Samples, decoded on the executors."""
    from hepspark.backends.bigdl_remote import ImageSampleSpec, image_samples

    frame = spark.read.parquet(dataset.split_uri(split)).select("image", "label")
    to_samples = functools.partial(image_samples, ImageSampleSpec.of(dataset))
    return frame.rdd.repartition(partitions).mapPartitions(to_samples).cache()


def _read_losses(summary, attempts: int = 5) -> list:
    """The per-iteration losses BigDL's TrainSummary wrote so far. Its event writer flushes
    on a thread of its own (bigdl-dllib 2.4.0), so a read can meet a record half written
    ("InvalidProtocolBufferException: invalid tag (zero)"): wait and read again."""
    for attempt in range(attempts - 1):
        try:
            return summary.read_scalar("Loss")
        except Exception as exc:  # Py4JJavaError wrapping the protobuf error
            if "InvalidProtocolBuffer" not in str(exc):
                raise
            time.sleep(0.2 * (attempt + 1))
    return summary.read_scalar("Loss")  # the last attempt: its error is the error
