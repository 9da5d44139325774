"""What each Horovod rank runs: :func:`run_rank`, the one function a Spark task of
``horovod.spark.run`` executes, over a :class:`RankSpec` (small, frozen, plain data: what the
driver decided) and returning a :class:`RankResult`. TensorFlow, tf_keras and Horovod are
imported inside it; the driver's side is :mod:`hepspark.backends.horovod_backend`.

How a rank reads its shard: :func:`read_shard` (row group ``i`` to rank ``i % N``, streamed
endlessly and reshuffled at every pass).

>>> spec = RankSpec(config=config, data=dataset.uri, steps=22, threads=1,
...                 heartbeat=("127.0.0.1", 40000))
>>> horovod.spark.run(run_rank, args=(spec,), num_proc=2, use_gloo=True)
[RankResult(rank=0, ...), RankResult(rank=1, ...)]
"""
from __future__ import annotations

import hashlib
import io
import itertools
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hepspark.records import EpochRecord

if TYPE_CHECKING:
    from hepspark.backends.tasks import Task
    from hepspark.config import TrainConfig

WEIGHTS_FILE = "weights.npz"
OPTIMIZER_FILE = "optimizer.npz"


@dataclass(frozen=True)
class RankSpec:
    """What every rank gets from the driver (the same for all ranks)."""

    config: "TrainConfig"
    data: str  # the dataset's URI, as the executors see it
    steps: int  # steps per epoch, the same on every rank
    threads: int  # compute threads of one rank
    heartbeat: tuple[str, int]  # the driver's StallWatchdog (host, UDP port)
    # resuming: the checkpoint's payload (file name -> bytes, shipped so that executors
    # need not see the driver's filesystem), its epochs and how many there were
    checkpoint: dict[str, bytes] | None = None
    resumed_records: tuple[EpochRecord, ...] = ()
    resumed_epoch: int = 0
    # test and drill hooks (EngineSettings): (rank, epoch) that fails / stalls
    fail_rank_at_epoch: tuple[int, int] | None = None
    stall_rank_at_epoch: tuple[int, int] | None = None
    verbose: bool = False  # the driver's --verbose: TensorFlow's INFO lines in the ranks too


@dataclass(frozen=True)
class LeadResult:
    """What rank 0 alone returns: it validated, checkpointed and chose the weights."""

    records: tuple[EpochRecord, ...]
    weights: tuple[np.ndarray, ...]  # Keras order (the kept epoch's, or the last)
    stopped_early: bool
    learning_rate: float  # before Horovod's wrapping (scaled when asked)
    parameters: int
    selected_epoch: int | None


@dataclass(frozen=True)
class RankResult:
    """What every rank returns to the driver."""

    rank: int
    digest: str  # sha256 of its trainable weights: the driver refuses ranks that disagree
    peak_rss_mb: float
    python: str  # the interpreter it ran (sys.executable)
    diverged: str | None = None  # EpochBook's message when the loss became non-finite
    lead: LeadResult | None = None  # rank 0 only


def _epoch_of(hook: tuple[int, int] | None, rank: int) -> int | None:
    """The epoch at whose start a test hook acts on ``rank`` (None: not this rank)."""
    return hook[1] if hook is not None and hook[0] == rank else None


def run_rank(spec: RankSpec) -> RankResult:
    """Body of one Horovod rank (runs in a Spark task, in its own process).

    Any error ends the process at once with a non-zero status: a rank that raised and then
    ran the normal interpreter shutdown hung there (Horovod's exit hook waits for its
    peers), and the job only failed after about ten minutes. A prompt exit lets Horovod's
    driver see the failure and stop the other ranks within seconds.
    """
    try:
        return _rank_main(spec)
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


def _rank_main(spec: RankSpec) -> RankResult:
    import socket

    from hepspark.logs import configure_logging

    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    configure_logging(verbose=spec.verbose)  # before TensorFlow: its import-time lines
    import tensorflow as tf

    threads = spec.threads
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
    import horovod.tensorflow as hvd_tf
    import horovod.tensorflow.keras as hvd
    import tf_keras

    from hepspark.backends.epochs import EpochBook, TrainingDivergedError
    from hepspark.backends.optimizers import keras_optimizer, learning_rate_of
    from hepspark.backends.tasks import Task
    from hepspark.config import EngineSettings
    from hepspark.hardware import peak_rss_mb

    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    config = spec.config
    task = Task.open(config, spec.data)
    tf_keras.utils.set_random_seed(config.seed)

    model = task.build(tf_keras)
    rate = config.learning_rate
    if config.scale_learning_rate:
        rate = (rate or learning_rate_of(keras_optimizer(tf_keras, config.optimizer))) * size
    optimizer = keras_optimizer(tf_keras, config.optimizer, rate)
    base_rate = learning_rate_of(optimizer)
    optimizer = hvd.DistributedOptimizer(optimizer)
    # weighted_metrics=[]: the physical weights of image datasets weigh the loss
    model.compile(optimizer=optimizer, loss=task.loss, weighted_metrics=[])
    if spec.checkpoint:
        _restore(model, optimizer, spec.checkpoint)

    steps = spec.steps
    train = read_shard(task, rank, size, spec.resumed_epoch)
    fail_at = _epoch_of(spec.fail_rank_at_epoch, rank)
    stall_at = _epoch_of(spec.stall_rank_at_epoch, rank)
    # A datagram a second: cheap, and the driver's progress bar follows the steps with it.
    heartbeat_s = min(1.0, config.stall_timeout_s / 4)
    book = EpochBook(config, lambda record: print(
        f"[horovod rank 0] {record.format(config.epochs)}", flush=True), model.get_weights)
    if rank == 0:  # rank 0 alone validates, checkpoints and decides on early stopping
        val = task.load_val()
        book.restore(list(spec.resumed_records))

    diverged: list[str] = []  # EpochBook's message when the loss became non-finite

    heartbeat = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if rank == 0 else None

    class EpochEnd(tf_keras.callbacks.Callback):
        last_beat = 0.0
        epoch = 0

        def beat(self, steps_done: int) -> None:
            """Rank 0 tells the driver's StallWatchdog that training progresses, and how
            far: "EPOCH STEPS" (steps done in that epoch, 1-based epoch)."""
            if heartbeat is not None and time.monotonic() - self.last_beat >= heartbeat_s:
                self.last_beat = time.monotonic()
                try:
                    heartbeat.sendto(f"{self.epoch + 1} {steps_done}".encode(), spec.heartbeat)
                except OSError:
                    pass  # a lost beat only brings the watchdog closer; it never fails a run

        def on_train_batch_end(self, batch, logs=None):
            self.beat(batch + 1)

        def on_epoch_begin(self, epoch, logs=None):
            if fail_at == epoch + 1:
                raise RuntimeError(f"{EngineSettings.FAIL_RANK_ENV}: rank {rank} fails at "
                                   f"epoch {fail_at}")
            if stall_at == epoch + 1:
                print(f"{EngineSettings.STALL_RANK_ENV}: rank {rank} stalls at epoch "
                      f"{stall_at}", flush=True)
                while True:
                    time.sleep(60)
            self.epoch = epoch
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            # The epoch's train loss averaged over ranks. Not hvd.callbacks.
            # MetricAverageCallback: Horovod 0.28.1 hands it Keras 3's `keras.backend`, which
            # has no `constant` (AttributeError at the first epoch end under tf_keras).
            loss = hvd_tf.allreduce(tf.constant((logs or {}).get("loss", np.nan)),
                                    op=hvd_tf.Average, name=f"loss_{epoch}")
            try:  # every rank has the same averaged loss: all stop here together
                book.check_loss(epoch + 1, float(loss.numpy()))
            except TrainingDivergedError as exc:
                diverged.append(str(exc))
                self.model.stop_training = True
                return
            stop = False
            if rank == 0:
                wall = time.perf_counter() - self.start
                record = task.epoch_record(epoch + 1, wall, steps * config.batch_size * size,
                                           float(loss.numpy()), val,
                                           task.predict(model, val[0]))
                stop = book.end_epoch(record, lambda d: _save(model, optimizer, d))
            if hvd_tf.broadcast_object(stop, root_rank=0, name=f"stop_{epoch}"):
                self.model.stop_training = True
            self.last_beat = 0.0
            self.beat(steps)  # validation and the checkpoint were progress too

    model.fit(
        train,
        epochs=config.epochs,
        initial_epoch=spec.resumed_epoch,
        steps_per_epoch=steps,
        verbose=0,
        callbacks=[
            # rank 0's initial weights (and, after the first batch, optimizer state) to all
            hvd.callbacks.BroadcastGlobalVariablesCallback(0),
            EpochEnd(),
        ],
    )
    # Trainable weights only: BatchNorm's moving statistics follow each rank's own batches
    # (no SyncBatchNorm); rank 0's are the ones returned, as in Horovod's own estimators.
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(v.numpy()).tobytes()
                                     for v in model.trainable_weights))
    lead = None
    if rank == 0:
        weights = book.best_weights if book.best_weights is not None else model.get_weights()
        lead = LeadResult(records=tuple(book.records), weights=tuple(weights),
                          stopped_early=book.stopped_early, learning_rate=base_rate,
                          parameters=model.count_params(), selected_epoch=book.selected_epoch)
    return RankResult(rank=rank, digest=digest.hexdigest(), peak_rss_mb=peak_rss_mb(),
                      python=sys.executable, diverged=diverged[0] if diverged else None,
                      lead=lead)


def read_shard(task: "Task", rank: int, size: int, first_pass: int) -> Any:
    """Rank ``rank``'s shard of the train split as an endless ``tf.data`` stream of full
    batches, reshuffled at every pass (seeded by seed + pass, passes counted from
    ``first_pass``); Keras takes ``steps_per_epoch`` of it."""
    import tensorflow as tf

    def generate():
        for shard_pass in itertools.count(first_pass):
            yield from task.batches(task.config.seed + shard_pass, rank, size, drop_last=True)

    data = tf.data.Dataset.from_generator(generate, output_signature=task.tf_signature(tf))
    return data.prefetch(2)


def _save(model, optimizer, directory: str) -> None:
    """Checkpoint payload: model weights and the optimizer's variables (iteration count and
    slots), as plain arrays in Keras order."""
    np.savez(os.path.join(directory, WEIGHTS_FILE), *model.get_weights())
    np.savez(os.path.join(directory, OPTIMIZER_FILE),
             *[v.numpy() for v in optimizer.variables])


def _restore(model, optimizer, payload: dict[str, bytes]) -> None:
    def arrays(name):
        with np.load(io.BytesIO(payload[name])) as data:
            return [data[f"arr_{i}"] for i in range(len(data.files))]

    model.set_weights(arrays(WEIGHTS_FILE))
    optimizer.build(model.trainable_variables)  # create the slots before assigning them
    values = arrays(OPTIMIZER_FILE)
    if len(values) != len(optimizer.variables):
        raise ValueError(
            f"checkpoint optimizer state has {len(values)} arrays, the optimizer "
            f"{len(optimizer.variables)}: was it written by another optimizer?"
        )
    for variable, value in zip(optimizer.variables, values):
        variable.assign(value)
