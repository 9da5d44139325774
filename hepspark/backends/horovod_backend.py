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

This module is the driver's side of what is Horovod's own (the install check, the rank
environment and interpreter, the launch); the driver flow, stall watchdog and live epoch
stream it shares with the torch engine are :func:`hepspark.backends.ranks.run_ranks`. What
each rank runs is :func:`hepspark.backends.horovod_remote.run_rank` over a frozen
:class:`~hepspark.backends.rank_common.RankSpec`. The ``HEPSPARK_*`` settings are read
once, on the driver (:class:`hepspark.config.EngineSettings`), and reach the ranks in the
spec.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from hepspark.backends.base import (
    Engine,
    EngineUnavailableError,
    EpochRecord,
    TrainResult,
)
from hepspark.backends.capabilities import check_supported
from hepspark.backends.horovod_remote import run_rank
from hepspark.backends.ranks import run_ranks, threads_per_rank
from hepspark.config import EngineSettings

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


class HorovodUnavailableError(EngineUnavailableError):
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
            "'.venv/bin/horovodrun --check-build'. The keras, bigdl and torch backends still work."
        ) from exc


class HorovodBackend(Engine):
    """``settings``: the engine settings; None reads them from the driver's environment
    when ``fit`` or ``describe_resources`` is called."""

    name = "horovod"

    def _spark(self, config: "TrainConfig"):
        from hepspark.session import get_spark

        return get_spark("hepspark-train-higgs", master=config.master,
                         driver_memory=self._settings().driver_memory)

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

        spark = self._spark(config)
        with spark_thread_errors_logged():
            return run_ranks(
                "Horovod", config, dataset, spark, settings, on_epoch_end,
                lambda spec: horovod.spark.run(
                    run_rank, args=(spec,), num_proc=config.num_executors, use_gloo=True,
                    env=rank_environment(spec.threads, config.stall_timeout_s),
                    executable=rank_python(spark), start_timeout=START_TIMEOUT_S, verbose=0),
                START_TIMEOUT_S,
                drift_hint="gradients were not averaged (STACK.md: Keras 3 optimizers under "
                           "hvd.DistributedOptimizer)")


@contextlib.contextmanager
def spark_thread_errors_logged() -> Iterator[None]:
    """Within it, the exception that ends Horovod's Spark thread is logged, not printed.

    When the ranks' Spark job fails or is cancelled (a rank died, the stall watchdog), that
    thread tells Horovod's driver and then re-raises (horovod 0.28.1,
    ``horovod/spark/runner.py::run_spark``): Python printed its traceback, a page of py4j
    Java stack, before ``horovod.spark.run`` itself raised the failure that hepspark reports
    in one line. The thread's exception goes to this module's logger at DEBUG level instead.
    """
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.thread is not None and args.thread.name.endswith("(run_spark)"):
            logging.getLogger(__name__).debug(
                "Horovod's Spark thread ended with an error",
                exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
            return
        previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


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
    # HOROVOD_CYCLE_TIME stays at Horovod's 1 ms. 0.1 ms cut the negotiation per step from
    # 1.0 to 0.1-0.3 ms (median, Horovod timeline of 2 pinned one-core ranks) but the
    # background thread then coordinates every 0.1 ms on the rank's only core: a pinned
    # single rank ran 87-91k rows/s instead of 104-110k, two ranks gained nothing (two
    # alternating A/B pairs, HIGGS net, batch 1000).
    env.setdefault("HOROVOD_STALL_CHECK_TIME_SECONDS", str(max(1, int(min(60, stall_timeout_s / 2)))))
    env.setdefault("HOROVOD_STALL_SHUTDOWN_TIME_SECONDS", str(max(2, int(stall_timeout_s))))
    return env
