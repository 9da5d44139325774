"""Horovod-on-Spark: synchronous data-parallel Keras training, one rank per Spark task.

``horovod.spark.run`` starts ``num_executors`` ranks as Spark tasks that talk to each other
over Gloo. Each rank reads its own shard of the Petastorm train split on its executor (row
group ``i`` goes to rank ``i % N``; the driver never touches the training data), builds the
same model config, wraps the optimizer with Horovod and starts from rank 0's weights.

Engine choice: **tf_keras** (legacy Keras 2) with ``horovod.tensorflow.keras``. Keras 3's
optimizers are not averaged by ``hvd.DistributedOptimizer`` (ranks silently drift apart,
STACK.md), and the Keras 3 + ``DistributedGradientTape`` route needs a custom loop that was
slower. Ranks therefore run with ``TF_USE_LEGACY_KERAS=1``; the driver gets the final weights
back and puts them into the Keras 3 build of the same config, so evaluation, saving and
plots are the same as for every other backend.

Every rank runs the same number of steps per epoch, ``train rows // (batch x N)``, so an
epoch is one pass's worth of rows however the row groups fall to the ranks (a rank with one
step more would wait forever in its all-reduce). Each rank streams its shard endlessly,
reshuffled at every pass: a rank whose shard is smaller than its share goes round it more
often within an epoch, a larger one continues its pass in the next epoch (the convention of
Horovod's own Spark estimators). The first version ran the smallest shard's batches only,
which trained 42 % of the rows per "epoch" on a dataset whose two files each held a large
and a small row group; the scaling report showed it. Rank 0 times each epoch
(global rows/s), validates outside the timed pass, writes checkpoints and decides on early
stopping, which it broadcasts. After training every rank returns a digest of its trainable
weights; the driver refuses a result whose ranks disagree (the failure mode STACK.md warns
about).

The same code trains the HIGGS DNN and the zoo CNNs on image datasets (with their
physical weights as sample weights): :class:`~hepspark.backends.tasks.Task` says what
differs.

This module is the driver's side (checks, the rank environment, the watchdog, the result);
what each rank runs is :func:`hepspark.backends.horovod_remote.run_rank` over a frozen
:class:`~hepspark.backends.horovod_remote.RankSpec`. The ``HEPSPARK_*`` settings are read
once, on the driver (:class:`hepspark.config.EngineSettings`), and reach the ranks in the
spec.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hepspark.backends.base import (
    Engine,
    EpochRecord,
    TrainResult,
    check_shared_directory,
    training_failed,
)
from hepspark.backends.capabilities import check_supported
from hepspark.backends.horovod_remote import (
    OPTIMIZER_FILE,
    WEIGHTS_FILE,
    RankResult,
    RankSpec,
    run_rank,
)
from hepspark.config import EngineSettings
from hepspark.logs import is_verbose
from hepspark.progress import Progress

if TYPE_CHECKING:
    from hepspark.config import TrainConfig
    from hepspark.data.readers import HiggsDataset

START_TIMEOUT_S = 120  # ranks must all have started by then (Horovod's start_timeout)
# Fault injection for tests and drills (EngineSettings): "RANK:EPOCH" makes that rank fail
# as that epoch starts (and exit at once, see run_rank), as a crashed or killed executor
# would; the STALL variable makes it stall (sleep, alive), as a rank stuck on a hung
# filesystem or a frozen executor would. THREADS pins the compute threads per rank.
FAIL_RANK_ENV = EngineSettings.FAIL_RANK_ENV
STALL_RANK_ENV = EngineSettings.STALL_RANK_ENV
THREADS_ENV = EngineSettings.HOROVOD_THREADS_ENV


class HorovodUnavailableError(RuntimeError):
    pass


def require_horovod() -> None:
    """Fail with the install step to run when Horovod is not importable."""
    try:
        import horovod.spark  # noqa: F401
        import horovod.tensorflow.keras  # noqa: F401
    except Exception as exc:  # ImportError, or a broken build's undefined symbol
        raise HorovodUnavailableError(
            f"--backend horovod needs Horovod with TensorFlow and Gloo, which failed to "
            f"import ({type(exc).__name__}: {exc}). Run 'make install' (scripts/install.sh "
            "builds Horovod 0.28.1 from source, see STACK.md) and check with "
            "'.venv/bin/horovodrun --check-build'. The keras and bigdl backends still work."
        ) from exc


class HorovodBackend(Engine):
    """``settings``: the engine settings; None reads them from the driver's environment
    when ``fit`` or ``describe_resources`` is called."""

    name = "horovod"

    def _spark(self, config: "TrainConfig"):
        from hepspark.session import get_spark

        return get_spark("hepspark-train-higgs", master=config.master)

    def describe_resources(self, config: "TrainConfig") -> dict[str, Any]:
        from hepspark.hardware import cpu_model

        spark = self._spark(config)
        return {
            "num_executors": config.num_executors,
            "cores_per_executor": threads_per_rank(spark, config.num_executors,
                                                   self._settings().horovod_threads),
            "device": f"CPU: {cpu_model()} (Horovod ranks in Spark tasks, Gloo)",
            "spark_master": spark.sparkContext.master,
        }

    def fit(
        self,
        config: "TrainConfig",
        dataset: "HiggsDataset",
        on_epoch_end: Callable[[EpochRecord], None],
    ) -> TrainResult:
        check_supported(config)
        settings = self._settings()
        require_horovod()
        import horovod.spark

        from hepspark.backends.tasks import Task
        from hepspark.checkpoint import resume_point

        task = Task.of(config, dataset)
        spark = self._spark(config)
        size = config.num_executors
        slots = spark.sparkContext.defaultParallelism
        if size > slots:
            raise ValueError(
                f"--executors {size} needs {size} Spark task slots running at once, but the "
                f"session has {slots} ({spark.sparkContext.master}); use --executors <= "
                f"{slots} or a bigger cluster"
            )
        shards = [dataset.shard_rows(task.train_split, r, size) for r in range(size)]
        if min(shards) < config.batch_size:
            raise ValueError(
                f"batch_size {config.batch_size} is larger than the smallest rank's shard "
                f"({min(shards)} rows)"
            )
        steps = task.n_train // (config.batch_size * size)
        if max(shards) > 1.2 * min(shards):
            print(f"[horovod] rank shards are unbalanced ({min(shards):,d} to {max(shards):,d} "
                  "rows, Petastorm deals whole row groups): smaller shards are revisited more "
                  "often per epoch; convert with a smaller --row-group-size-mb to balance them",
                  flush=True)
        resumed = resume_point(config)
        if config.checkpoint_dir:  # rank 0 writes there, the driver resumes from there
            check_shared_directory(spark, config.checkpoint_dir, size)
        watchdog = StallWatchdog(spark, config.stall_timeout_s, START_TIMEOUT_S,
                                 Progress("train", steps * (config.epochs - (
                                     resumed.epoch if resumed else 0)), "steps"),
                                 steps, resumed.epoch if resumed else 0)
        spec = RankSpec(
            config=config,
            data=dataset.uri,
            steps=steps,
            threads=threads_per_rank(spark, size, settings.horovod_threads),
            heartbeat=watchdog.address,
            checkpoint=_read_checkpoint(resumed.path) if resumed else None,
            resumed_records=tuple(resumed.records) if resumed else (),
            resumed_epoch=resumed.epoch if resumed else 0,
            fail_rank_at_epoch=settings.fail_rank_at_epoch,
            stall_rank_at_epoch=settings.stall_rank_at_epoch,
            verbose=is_verbose(),
        )
        try:
            with watchdog:
                results: list[RankResult] = horovod.spark.run(
                    run_rank, args=(spec,), num_proc=size, use_gloo=True,
                    env=rank_environment(spec.threads, config.stall_timeout_s),
                    executable=rank_python(spark), start_timeout=START_TIMEOUT_S, verbose=0,
                )
        except Exception as exc:
            if watchdog.fired:
                raise training_failed(
                    f"Horovod training stalled: no progress for {config.stall_timeout_s:g} s "
                    "(--stall-timeout-s), the job was stopped", config, exc) from exc
            raise training_failed("Horovod training failed: a rank died or could not start",
                                  config, exc) from exc
        diverged = next((r.diverged for r in results if r.diverged), None)
        if diverged:  # every rank stopped at that epoch's end; its message is EpochBook's
            from hepspark.backends.epochs import TrainingDivergedError

            raise TrainingDivergedError(diverged)
        digests = {r.rank: r.digest for r in results}
        if len(set(digests.values())) != 1:
            raise RuntimeError(
                f"Horovod ranks ended with different weights {digests}: gradients were not "
                "averaged (STACK.md: Keras 3 optimizers under hvd.DistributedOptimizer)"
            )
        lead = next(r.lead for r in results if r.rank == 0)
        for record in lead.records:  # the ranks have printed them live; now MLflow gets them
            on_epoch_end(record)
        return _result(task, spec, results, lead)


# What a rank's environment takes from the driver's (besides Horovod's own variables):
# settings, not paths. Ranks take hepspark's own settings from the RankSpec (EngineSettings,
# read on the driver); HEPSPARK_* still passes so that a rank's environment shows them. The driver's PATH, VIRTUAL_ENV, PYTHONHOME (BigDL's trap) or
# PYTHONPATH name *its* venv, which executors running a shipped ``--archives`` env lack.
RANK_ENV_PREFIXES = ("HEPSPARK_", "TF_", "OMP_", "KMP_", "HOROVOD_", "GLOO_")  # no MLFLOW_: ranks log nothing


def rank_python(spark) -> str:
    """The interpreter the ranks are started with: the one the executors' Python workers
    run, i.e. the context's ``pythonExec`` (``PYSPARK_PYTHON``, which spark-submit sets from
    ``spark.pyspark.python``), e.g. ``./env/bin/python`` of an ``--archives`` env.
    Horovod's default, the driver's ``sys.executable``, is a path on the driver's machine
    (the bug: ranks ran the driver's venv, not the shipped one)."""
    return getattr(spark.sparkContext, "pythonExec", None) or sys.executable


def rank_environment(threads: int, stall_timeout_s: float = 600.0) -> dict[str, str]:
    """Variables the ranks get from the driver: our and the libraries' settings only, and
    Horovod's stall inspector set to shut Horovod down after ``stall_timeout_s`` (ranks
    waiting in a collective for a stalled peer then fail instead of waiting forever)."""
    env = {k: v for k, v in os.environ.items() if k.startswith(RANK_ENV_PREFIXES)}
    env.update(TF_USE_LEGACY_KERAS="1", OMP_NUM_THREADS=str(threads))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # --verbose (or the user) may have set 0
    env.setdefault("HOROVOD_STALL_CHECK_TIME_SECONDS", str(max(1, int(min(60, stall_timeout_s / 2)))))
    env.setdefault("HOROVOD_STALL_SHUTDOWN_TIME_SECONDS", str(max(2, int(stall_timeout_s))))
    return env


class StallWatchdog:
    """The driver's bound on a stalled Horovod job. Horovod's own stall shutdown ends the
    ranks that wait in a collective, but not a rank stuck outside one (it never exits, and
    ``horovod.spark.run`` waits for it for ever). Rank 0 sends a UDP datagram to
    ``address`` every few seconds while training progresses (a batch needs every rank's
    gradients, so rank 0's progress is every rank's); when none came for ``timeout_s`` (the
    first may take ``start_s`` longer: ranks start, import TensorFlow, build), the watchdog
    cancels the Spark jobs, which kills the rank tasks and ends ``horovod.spark.run``.
    (Horovod's forwarded stdout cannot carry the heartbeat: it arrives in 64 KB chunks.)
    Each datagram says "EPOCH STEPS"; ``progress`` shows the steps of the run so far
    (``steps`` per epoch, counted from ``first_epoch``, the resumed one)."""

    POLL_S = 2.0

    def __init__(self, spark, timeout_s: float, start_s: float,
                 progress: "Progress | None" = None, steps: int = 0,
                 first_epoch: int = 0) -> None:
        import socket
        import threading

        self.spark, self.timeout_s = spark, timeout_s
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
                print(f"[horovod] no progress for {self.timeout_s:g} s: stopping the ranks",
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


def _read_checkpoint(path: str) -> dict[str, bytes]:
    """The checkpoint's payload as bytes: shipped to the ranks with the task, so resuming
    works even where executors do not see the driver's filesystem."""
    out = {}
    for name in (WEIGHTS_FILE, OPTIMIZER_FILE):
        with open(os.path.join(path, name), "rb") as handle:
            out[name] = handle.read()
    return out


def _result(task, spec: RankSpec, results: list[RankResult], lead) -> TrainResult:
    from hepspark.models.keras_dense import save_keras_model

    model = task.keras_model_with_weights(list(lead.weights))
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
            "peak_rss_mb": max(r.peak_rss_mb for r in results),  # the largest rank process
            "rank_python": ",".join(sorted({r.python for r in results})),
        },
    )
