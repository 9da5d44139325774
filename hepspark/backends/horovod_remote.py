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

import os
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from hepspark.backends.rank_common import (  # noqa: F401 (the driver imports them from here)
    OPTIMIZER_FILE,
    WEIGHTS_FILE,
    LeadResult,
    RankResult,
    RankSpec,
    act_on_drill_hooks,
    build_rank_model,
    exit_on_error,
    lead_result,
    restore_payload,
    save_payload,
    weights_digest,
)
from hepspark.records import EpochRecord

if TYPE_CHECKING:
    from hepspark.backends.tasks import Task


def run_rank(spec: RankSpec) -> RankResult:
    """Body of one Horovod rank (runs in a Spark task, in its own process).

    Any error ends the process at once with a non-zero status: a rank that raised and then
    ran the normal interpreter shutdown hung there (Horovod's exit hook waits for its
    peers), and the job only failed after about ten minutes. A prompt exit lets Horovod's
    driver see the failure and stop the other ranks within seconds.
    """
    return exit_on_error(_rank_main, spec)


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
    from hepspark.backends.ranks import EpochSender
    from hepspark.hardware import peak_rss_mb

    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    config = spec.config
    built = build_rank_model(tf_keras, spec, size)
    task, model = built.task, built.model
    # num_groups=1: every gradient in one grouped all-reduce, negotiated once per step (not
    # one request per tensor, fused by whatever arrived within a 1 ms cycle): 2 ranks on the
    # HIGGS net at 1M rows ran 129.9k rows/s (6 epochs) against 125.1k (12), and the fusion
    # no longer depends on timing.
    optimizer = hvd.DistributedOptimizer(built.optimizer, num_groups=1)
    # weighted_metrics=[]: the physical weights of image datasets weigh the loss
    model.compile(optimizer=optimizer, loss=task.loss, weighted_metrics=[],
                  steps_per_execution=config.steps_per_execution)
    if spec.checkpoint:
        restore_payload(model, optimizer, spec.checkpoint)

    steps = spec.steps
    train = read_shard(task, rank, size, spec.resumed_epoch,
                       batches=steps * (config.epochs - spec.resumed_epoch))
    # A datagram a second: cheap, and the driver's progress bar follows the steps with it.
    heartbeat_s = min(1.0, config.stall_timeout_s / 4)
    sender = EpochSender(spec.epochs if rank == 0 else None)

    def report(record: EpochRecord) -> None:
        print(f"[horovod rank 0] {record.format(config.epochs)}", flush=True)
        sender.send(record)

    book = EpochBook(config, report, model.get_weights)
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
            act_on_drill_hooks(spec, rank, epoch + 1)
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
                stop = book.end_epoch(record, lambda d: save_payload(model, optimizer, d))
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
    sender.close()
    # Trainable weights only: BatchNorm's moving statistics follow each rank's own batches
    # (no SyncBatchNorm); rank 0's are the ones returned, as in Horovod's own estimators.
    digest = weights_digest(model.trainable_weights)
    return RankResult(rank=rank, digest=digest, peak_rss_mb=peak_rss_mb(),
                      python=sys.executable, diverged=diverged[0] if diverged else None,
                      lead=lead_result(book, built) if rank == 0 else None)


def read_shard(task: "Task", rank: int, size: int, first_pass: int, batches: int) -> Any:
    """Rank ``rank``'s shard of the train split as a ``tf.data`` stream of ``batches`` full
    batches (every epoch's steps), reshuffled at every pass over the shard (seeded by seed +
    pass, passes counted from ``first_pass``).

    tf.data's autotuning is off: its model thread sleeps between optimizations for a period
    that doubles up to a minute, and ``fit`` cannot return before the iterator is destroyed,
    which waits for that thread to wake: up to 18 s more after the last epoch at 1M rows,
    about a minute at 10M (a full-size run: 83 s epoch, 158 s training), before. The fixed
    ``prefetch(2)`` is all a one-core rank gains from. The stream ends with the run's last
    step, so no pass is opened that no step reads."""
    import itertools

    import tensorflow as tf

    data = tf.data.Dataset.from_generator(
        lambda: itertools.islice(task.shard_stream(rank, size, first_pass), batches),
        output_signature=task.tf_signature(tf))
    options = tf.data.Options()
    options.autotune.enabled = False
    return data.prefetch(2).with_options(options)
