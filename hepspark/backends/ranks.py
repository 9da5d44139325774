"""What the driver of every rank-based engine (Horovod, torch) shares: the task-slot check,
the threads of a rank, the checkpoint payload shipped to the ranks, the stall watchdog, and
the live epoch stream by which rank 0 reports each epoch as it ends.

The epoch stream: the driver opens a TCP listener (:class:`EpochListener`) before launching
the ranks; rank 0 connects (:class:`EpochSender`, given the listener's address and a random
token in its spec), proves the token and sends one JSON line per finished epoch (an
:class:`~hepspark.records.EpochRecord`). The driver's main thread hands each record to the
pipeline (:func:`run_reporting`), so MLflow credentials
stay on the driver, a sqlite store works, and a run shows its epochs while it trains
(before, Horovod's epochs reached MLflow only when the job returned). Records the stream
missed (a lost connection) are reported from rank 0's returned list at the end.

>>> with EpochListener(spark) as listener:                 # driver
...     result = run_reporting(lambda: launch(spec), listener, on_epoch_end, records_of)
>>> sender = EpochSender(spec.epochs)                      # rank 0
>>> sender.send(record)
"""
from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import TYPE_CHECKING, TypeVar

from hepspark.backends.base import TrainResult, check_shared_directory, training_failed
from hepspark.backends.rank_common import OPTIMIZER_FILE, WEIGHTS_FILE, RankResult, RankSpec
from hepspark.records import EpochRecord

if TYPE_CHECKING:
    from hepspark.config import EngineSettings, TrainConfig
    from hepspark.progress import Progress

T = TypeVar("T")


def run_ranks(
    engine: str,
    config: "TrainConfig",
    dataset,
    spark,
    settings: "EngineSettings",
    on_epoch_end: Callable[[EpochRecord], None],
    launch: Callable[[RankSpec], list[RankResult]],
    start_timeout_s: float,
    use_gpu: bool = False,
    drift_hint: str = "gradients were not averaged",
) -> TrainResult:
    """The driver's side of a rank-based engine, written once: check the task slots and
    the shards, find the checkpoint to resume from, build the :class:`RankSpec`, run
    ``launch(spec)`` (the engine's blocking start of the ranks, returning every rank's
    result) under the stall watchdog while rank 0's epochs stream to ``on_epoch_end``,
    then refuse ranks that diverged or disagree and return rank 0's model. ``engine``
    names the engine in messages ("Horovod", "torch")."""
    from hepspark.backends.tasks import Task
    from hepspark.checkpoint import resume_point
    from hepspark.logs import is_verbose
    from hepspark.progress import Progress

    task = Task.of(config, dataset)
    size = config.num_executors
    check_task_slots(spark, size)
    steps = task.rank_steps(size, engine.lower())
    resumed = resume_point(config)
    if config.checkpoint_dir:  # rank 0 writes there, the driver resumes from there
        check_shared_directory(spark, config.checkpoint_dir, size)
    first_epoch = resumed.epoch if resumed else 0
    watchdog = StallWatchdog(spark, config.stall_timeout_s, start_timeout_s, engine.lower(),
                             Progress("train", steps * (config.epochs - first_epoch), "steps"),
                             steps, first_epoch)
    listener = EpochListener(spark)
    spec = RankSpec(
        config=config,
        data=dataset.uri,
        steps=steps,
        threads=threads_per_rank(spark, size, settings.horovod_threads),
        heartbeat=watchdog.address,
        use_gpu=use_gpu,
        epochs=listener.address,
        checkpoint=(read_checkpoint_payload(resumed.path, (WEIGHTS_FILE, OPTIMIZER_FILE))
                    if resumed else None),
        resumed_records=tuple(resumed.records) if resumed else (),
        resumed_epoch=resumed.epoch if resumed else 0,
        fail_rank_at_epoch=settings.fail_rank_at_epoch,
        stall_rank_at_epoch=settings.stall_rank_at_epoch,
        verbose=is_verbose(),
    )
    try:
        with watchdog, listener:  # rank 0's epochs reach on_epoch_end as they end
            results = run_reporting(lambda: launch(spec), listener, on_epoch_end,
                                    lambda results: _lead(results).records)
    except Exception as exc:
        if watchdog.fired:
            raise training_failed(
                f"{engine} training stalled: no progress for {config.stall_timeout_s:g} s "
                "(--stall-timeout-s), the job was stopped", config, exc) from exc
        raise training_failed(f"{engine} training failed: a rank died or could not start",
                              config, exc) from exc
    diverged = next((r.diverged for r in results if r.diverged), None)
    if diverged:  # every rank stopped at that epoch's end; its message is EpochBook's
        from hepspark.backends.epochs import TrainingDivergedError

        raise TrainingDivergedError(diverged)
    digests = {r.rank: r.digest for r in results}
    if len(set(digests.values())) != 1:
        raise RuntimeError(f"{engine} ranks ended with different weights {digests}: "
                           f"{drift_hint}")
    return _result(task, spec, results)


def _lead(results: list[RankResult]):
    return next(r.lead for r in results if r.rank == 0)


def _result(task, spec: RankSpec, results: list[RankResult]) -> TrainResult:
    from hepspark.models.keras_dense import save_keras_model
    from hepspark.resources import peak_rss_metrics

    lead = _lead(results)
    model = task.keras_model_with_weights(list(lead.weights))
    ranks = sorted(results, key=lambda r: r.rank)
    return TrainResult(
        epochs=list(lead.records),
        predict=lambda x: task.predict(model, x),
        save=lambda path: save_keras_model(model, path),
        stopped_early=lead.stopped_early,
        info={
            "learning_rate": lead.learning_rate,
            "parameters": lead.parameters,
            "ranks": len(results),
            "steps_per_epoch": spec.steps,
            "threads_per_rank": spec.threads,
            "selected_epoch": lead.selected_epoch,
            "peak_rss_mb": max(r.peak_rss_mb for r in ranks),  # the largest rank process
            # each rank's own (resource.getrusage in the rank), as MLflow metrics
            "peak_rss_mb_by_process": peak_rss_metrics({f"rank{r.rank}": r.peak_rss_mb
                                                        for r in ranks}),
            "rank_python": ",".join(sorted({r.python for r in ranks})),
        },
    )


def check_task_slots(spark, size: int) -> None:
    """Refuse ``size`` ranks where Spark cannot run ``size`` tasks at once (they would
    wait for each other forever)."""
    slots = spark.sparkContext.defaultParallelism
    if size > slots:
        raise ValueError(
            f"--executors {size} needs {size} Spark task slots running at once, but the "
            f"session has {slots} ({spark.sparkContext.master}); use --executors <= "
            f"{slots} or a bigger cluster"
        )


class EpochListener:
    """The driver's end of the epoch stream: accepts rank 0's connection (one at a time;
    a rank restarted by Spark connects again), checks its token and queues the records.
    ``address`` (host, port, token) goes into the rank spec."""

    def __init__(self, spark) -> None:
        import secrets
        import socket

        self.records: queue.Queue[EpochRecord] = queue.Queue()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("", 0))
        self._socket.listen(4)
        self._socket.settimeout(1.0)
        host = spark.sparkContext.getConf().get("spark.driver.host", "127.0.0.1")
        self.address = (host, self._socket.getsockname()[1], secrets.token_hex(16))
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="hepspark-epoch-listener",
                                        daemon=True)

    def _accept(self) -> None:
        while not self._done.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:  # the accept timeout, or the socket closed on exit
                continue
            threading.Thread(target=self._read, args=(connection,), daemon=True).start()

    def _read(self, connection) -> None:
        with connection, connection.makefile("r", encoding="utf-8") as lines:
            if lines.readline().strip() != self.address[2]:
                return  # not our rank 0: ignored
            for line in lines:
                try:
                    self.records.put(EpochRecord(**json.loads(line)))
                except (ValueError, TypeError):
                    print(f"[epochs] ignored a malformed epoch line: {line[:200]!r}",
                          file=sys.stderr, flush=True)

    def __enter__(self) -> "EpochListener":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        self._socket.close()
        self._thread.join()


class EpochSender:
    """Rank 0's end of the epoch stream. A send that fails is reported once and dropped:
    the driver reports the missed epochs from rank 0's result at the end."""

    def __init__(self, address: tuple[str, int, str] | None) -> None:
        self.address = address
        self._socket = None
        self._broken = address is None

    def send(self, record: EpochRecord) -> None:
        if self._broken:
            return
        import socket

        try:
            if self._socket is None:
                self._socket = socket.create_connection(self.address[:2], timeout=30)
                self._socket.sendall((self.address[2] + "\n").encode())
            self._socket.sendall((json.dumps(asdict(record)) + "\n").encode())
        except OSError as exc:
            self._broken = True
            print(f"[epochs] cannot reach the driver's epoch listener ({exc}); the epochs "
                  "reach MLflow when training ends", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()


def run_reporting(job: Callable[[], T], listener: EpochListener,
                  on_epoch_end: Callable[[EpochRecord], None],
                  final_records: Callable[[T], Iterable[EpochRecord]]) -> T:
    """Run ``job`` (the blocking launch of the ranks) in this thread while a helper thread
    hands each epoch that arrives to ``on_epoch_end``; then the epochs of
    ``final_records(result)`` the stream did not bring. The launch stays in the calling
    (main) thread: ``horovod.spark.run`` installs signal handlers, which only the main
    thread may, and Ctrl-C/SIGTERM interrupt it as before. ``on_epoch_end`` runs in the
    helper thread, one call at a time, while this thread waits in ``job``; its first error
    is re-raised once the job has returned (the ranks' own error first)."""
    seen: set[int] = set()
    errors: list[BaseException] = []
    done = threading.Event()

    def report(record: EpochRecord) -> None:
        if record.epoch in seen or errors:
            return
        seen.add(record.epoch)
        try:
            on_epoch_end(record)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    def pump() -> None:
        while not done.is_set() or not listener.records.empty():
            try:
                report(listener.records.get(timeout=0.5))
            except queue.Empty:
                pass

    thread = threading.Thread(target=pump, name="hepspark-epochs", daemon=True)
    thread.start()
    try:
        result = job()
    finally:
        done.set()
        thread.join()
    for record in final_records(result):
        report(record)
    if errors:
        raise errors[0]
    return result


class StallWatchdog:
    """The driver's bound on a stalled rank job. Horovod's own stall shutdown (and Gloo's
    timeout under torch) ends the ranks that wait in a collective, but not a rank stuck
    outside one (it never exits, and ``horovod.spark.run`` or ``TorchDistributor.run``
    waits for it for ever). Rank 0 sends a UDP datagram to
    ``address`` every few seconds while training progresses (a batch needs every rank's
    gradients, so rank 0's progress is every rank's); when none came for ``timeout_s`` (the
    first may take ``start_s`` longer: ranks start, import TensorFlow, build), the watchdog
    cancels the Spark jobs, which kills the rank tasks and ends the engine's run call.
    (Horovod's forwarded stdout cannot carry the heartbeat: it arrives in 64 KB chunks.)
    Each datagram says "EPOCH STEPS"; ``progress`` shows the steps of the run so far
    (``steps`` per epoch, counted from ``first_epoch``, the resumed one)."""

    POLL_S = 2.0

    def __init__(self, spark, timeout_s: float, start_s: float, engine: str = "horovod",
                 progress: "Progress | None" = None, steps: int = 0,
                 first_epoch: int = 0) -> None:
        import socket
        import threading

        self.spark, self.timeout_s, self.engine = spark, timeout_s, engine
        self.progress, self.steps, self.first_epoch = progress, steps, first_epoch
        self.deadline = time.monotonic() + start_s + timeout_s
        self.fired = False
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("", 0))
        self._socket.settimeout(self.POLL_S)
        host = spark.sparkContext.getConf().get("spark.driver.host", "127.0.0.1")
        self.address = (host, self._socket.getsockname()[1])
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="hepspark-stall-watchdog",
                                        daemon=True)

    def _watch(self) -> None:
        while not self._done.is_set():
            try:
                beat = self._socket.recv(64)
                self.deadline = time.monotonic() + self.timeout_s
                self._show(beat)
            except OSError:  # the poll's timeout (TimeoutError is an OSError)
                pass
            if not self._done.is_set() and time.monotonic() > self.deadline:
                self.fired = True
                print(f"[{self.engine}] no progress for {self.timeout_s:g} s: stopping the ranks",
                      file=sys.stderr, flush=True)
                self.spark.sparkContext.cancelAllJobs()  # interrupts the rank tasks
                return

    def _show(self, beat: bytes) -> None:
        try:
            epoch, steps_done = (int(part) for part in beat.split())
        except ValueError:
            return  # not a progress beat; it still counted as one for the watchdog
        if self.progress is not None:
            self.progress.update((epoch - 1 - self.first_epoch) * self.steps + steps_done)

    def __enter__(self) -> "StallWatchdog":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        self._thread.join()
        self._socket.close()
        if self.progress is not None:
            self.progress.__exit__(*exc_info)


def threads_per_rank(spark, size: int, pinned: int | None = None) -> int:
    """Compute threads of one rank: ``pinned`` (``$HEPSPARK_HOROVOD_THREADS``, e.g. 1 thread
    per rank in scaling studies), else the cores Spark offers, shared among the ranks."""
    if pinned is not None:
        return pinned
    sc = spark.sparkContext
    if sc.master.startswith("local"):
        return max(1, sc.defaultParallelism // size)
    # On a cluster defaultParallelism is at least 2 even for one 1-core executor, which
    # gave a lone rank 2 threads on 1 core; take the cores Spark was told to use.
    conf = sc.getConf()
    total = int(conf.get("spark.cores.max", "0")) or sc.defaultParallelism
    per_executor = int(conf.get("spark.executor.cores", "0")) or total
    return max(1, min(per_executor, total // size))


def read_checkpoint_payload(path: str, names: tuple[str, ...]) -> dict[str, bytes]:
    """The checkpoint's payload as bytes: shipped to the ranks with the task, so resuming
    works even where executors do not see the driver's filesystem."""
    out = {}
    for name in names:
        with open(os.path.join(path, name), "rb") as handle:
            out[name] = handle.read()
    return out
