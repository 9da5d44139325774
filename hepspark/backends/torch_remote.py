"""What each process of the torch engine runs: :func:`run_rank`, the function
``TorchDistributor`` starts once per Spark task (under ``torchrun``, which sets ``RANK``,
``WORLD_SIZE`` and the rendezvous), over the shared frozen
:class:`~hepspark.backends.rank_common.RankSpec`. torch and Keras are imported inside it,
Keras on its torch backend (``KERAS_BACKEND=torch`` is set before the import); the driver's
side is :mod:`hepspark.backends.torch_backend`.

A rank builds the same model config as every engine, wraps it in
``DistributedDataParallel`` (Gloo on CPU, NCCL on GPU; DDP starts every rank from rank 0's
weights and averages the gradients in the backward pass) and trains it with
:class:`~hepspark.backends.torch_step.TorchStep`, the step the single-GPU baseline runs. It
reads its own shard of the train split with pyarrow (no Petastorm here):
:meth:`~hepspark.backends.tasks.Task.shard_stream`, the Horovod engine's sharding and
equal-steps rule. Rank 0 validates, checkpoints, decides on early stopping (broadcast to
all) and streams each epoch to the driver as it ends. At the end rank 0 gathers every
rank's weight digest and peak RSS: ``TorchDistributor.run`` returns rank 0's value only.

>>> TorchDistributor(num_processes=2, local_mode=False, use_gpu=False).run(run_rank, spec)
TorchRunResult(ranks=[RankResult(rank=0, ...), RankResult(rank=1, ...)])
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from hepspark.backends.rank_common import (
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


@dataclass(frozen=True)
class TorchRunResult:
    """What rank 0 returns for the whole job: every rank's result (gathered)."""

    ranks: tuple[RankResult, ...]

    @property
    def lead(self) -> LeadResult:
        return next(r.lead for r in self.ranks if r.rank == 0)


def run_rank(spec: RankSpec) -> TorchRunResult | None:
    """Body of one torch rank (a ``torchrun`` worker process under a Spark task).

    Any error ends the process at once with a non-zero status (as Horovod's ranks do): the
    other ranks then fail in their next collective and ``TorchDistributor`` reports the
    failed task, instead of a rank lingering in the interpreter's shutdown.
    """
    return exit_on_error(_rank_main, spec)


def _rank_main(spec: RankSpec) -> TorchRunResult | None:
    import datetime
    import gc
    import socket

    from hepspark.logs import configure_logging

    os.environ["KERAS_BACKEND"] = "torch"  # before the first import of keras
    configure_logging(verbose=spec.verbose)
    import torch
    import torch.distributed as dist

    torch.set_num_threads(spec.threads)
    config = spec.config
    dist.init_process_group("nccl" if spec.use_gpu else "gloo",
                            timeout=datetime.timedelta(seconds=config.stall_timeout_s))
    rank, size = dist.get_rank(), dist.get_world_size()
    import keras

    from hepspark.backends.epochs import EpochBook, TrainingDivergedError
    from hepspark.backends.ranks import EpochSender
    from hepspark.backends.torch_step import TorchStep
    from hepspark.hardware import peak_rss_mb

    built = build_rank_model(keras, spec, size)
    task, model, optimizer = built.task, built.model, built.optimizer
    optimizer.build(model.trainable_variables)
    if spec.checkpoint:  # every rank restores the same payload
        restore_payload(model, optimizer, spec.checkpoint)
    # DDP broadcasts rank 0's parameters here and all-reduces gradients in backward().
    # Keras registers no torch buffers: BatchNorm's moving statistics are non-trainable
    # parameters, which DDP syncs once here and which then follow each rank's own batches
    # (as in the Horovod engine).
    module = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[0] if spec.use_gpu else None)
    step = TorchStep(keras, model, optimizer, task.loss, module=module)

    sender = EpochSender(spec.epochs if rank == 0 else None)

    def report(record: EpochRecord) -> None:
        print(f"[torch rank 0] {record.format(config.epochs)}", flush=True)
        sender.send(record)

    book = EpochBook(config, report, model.get_weights)
    val = None
    if rank == 0:  # rank 0 alone validates, checkpoints and decides on early stopping
        val = task.load_val()
        book.restore(list(spec.resumed_records))
    heartbeat = Heartbeat(spec.heartbeat if rank == 0 else None, config.stall_timeout_s,
                          socket)
    stream = task.shard_stream(rank, size, spec.resumed_epoch, reader="pyarrow")
    diverged = None
    for epoch in range(spec.resumed_epoch + 1, config.epochs + 1):
        act_on_drill_hooks(spec, rank, epoch)
        start = time.perf_counter()
        total = torch.zeros((), dtype=torch.float64)
        for done in range(1, spec.steps + 1):
            total += step(*next(stream)).double().cpu()
            heartbeat.beat(epoch, done)
        wall = time.perf_counter() - start
        dist.all_reduce(total)  # the epoch's train loss averaged over ranks and steps
        loss = float(total) / (spec.steps * size)
        try:  # every rank has the same averaged loss: all stop here together
            book.check_loss(epoch, loss)
        except TrainingDivergedError as exc:
            diverged = str(exc)
            break
        stop = [False]
        if rank == 0:
            record = task.epoch_record(epoch, wall, spec.steps * config.batch_size * size, loss,
                                       val, task.predict(model, val[0]))
            stop = [book.end_epoch(record, lambda d: save_payload(model, optimizer, d))]
        dist.broadcast_object_list(stop, src=0)
        heartbeat.beat(epoch, spec.steps, force=True)  # validation, checkpoint: progress too
        if stop[0]:
            break
    sender.close()
    lead = lead_result(book, built) if rank == 0 else None
    # Trainable weights only (BatchNorm's statistics are each rank's own, see above).
    mine = RankResult(rank=rank, digest=weights_digest(model.trainable_weights),
                      peak_rss_mb=peak_rss_mb(), python=sys.executable, diverged=diverged,
                      lead=lead)
    gathered: list = [None] * size
    dist.all_gather_object(gathered, mine)
    # DDP's reducer holds the Gloo process group: drop it first, so destroy_process_group
    # really ends Gloo's threads now. Left to interpreter shutdown, a Gloo thread holding a
    # tensor can abort the process ("terminate called without an active exception",
    # SIGABRT; torch 2.13, once in a 2-rank sweep run, after its last epoch).
    # But pybind frees the reducer with the GIL held, and ~ProcessGroupGloo joins Gloo's
    # worker thread, which needs the GIL to free its last work item: a deadlock if that
    # item is still alive (torch 2.13, pytorch/pytorch#56297; hung 1 in 4 runs of
    # benchmarks/colocation.py --torch). Sleeping gives the worker the GIL to finish first.
    time.sleep(0.2)
    del step, module
    gc.collect()
    dist.destroy_process_group()
    return TorchRunResult(ranks=tuple(gathered)) if rank == 0 else None


class Heartbeat:
    """Rank 0 tells the driver's StallWatchdog (UDP) that training progresses and how far,
    "EPOCH STEPS" (the driver's progress bar follows it), at most once a second; a lost
    beat only brings the watchdog closer, it never fails a run."""

    def __init__(self, address: tuple[str, int] | None, stall_timeout_s: float,
                 socket_module) -> None:
        self.address = address
        self.every_s = min(1.0, stall_timeout_s / 4)
        self.last = 0.0
        self.socket = (socket_module.socket(socket_module.AF_INET, socket_module.SOCK_DGRAM)
                       if address is not None else None)

    def beat(self, epoch: int, steps_done: int, force: bool = False) -> None:
        if self.socket is None or (not force and time.monotonic() - self.last < self.every_s):
            return
        self.last = time.monotonic()
        try:
            self.socket.sendto(f"{epoch} {steps_done}".encode(), self.address)
        except OSError:
            pass
