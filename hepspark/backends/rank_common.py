"""What the ranks of every rank-based engine (Horovod, torch) share: the frozen spec the
driver sends (:class:`RankSpec`), how a rank builds its model and optimizer
(:func:`build_rank_model`, in the Keras module its engine runs), the drill hooks
(:func:`act_on_drill_hooks`), what ranks return (:class:`RankResult`, rank 0's
:class:`LeadResult`, :func:`lead_result`), the checkpoint payload (model weights and
optimizer variables as plain arrays in Keras order, the same for tf_keras and Keras 3) and
the weights digest. numpy only at import: the frameworks are the engines' own.

>>> built = build_rank_model(tf_keras, spec, size=hvd.size())
>>> optimizer = hvd.DistributedOptimizer(built.optimizer)  # what is engine-specific
"""
from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from hepspark.records import EpochRecord

if TYPE_CHECKING:
    from hepspark.backends.epochs import EpochBook
    from hepspark.backends.tasks import Task
    from hepspark.config import TrainConfig

T = TypeVar("T")

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
    use_gpu: bool = False  # torch engine: one GPU per rank, NCCL (else CPU, Gloo)
    # the driver's EpochListener (host, TCP port, token): rank 0 streams its epochs there
    epochs: tuple[str, int, str] | None = None
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


@dataclass(frozen=True)
class RankModel:
    """A rank's model, before its engine makes it distributed."""

    task: "Task"
    model: Any  # in the engine's Keras module (tf_keras under Horovod, Keras 3 on torch)
    optimizer: Any  # not yet wrapped (Horovod) nor built (torch): that is the engine's
    base_rate: float  # its learning rate (scaled by the ranks when asked), for the run's params


def build_rank_model(keras: ModuleType, spec: RankSpec, size: int) -> RankModel:
    """The model and optimizer of one of ``size`` ranks, the same on every rank: the
    config's model in ``keras`` (seeded, so every rank starts alike before the engine
    broadcasts rank 0's weights anyway) and its optimizer for ``size`` ranks."""
    from hepspark.backends.optimizers import learning_rate_of, rank_optimizer
    from hepspark.backends.tasks import Task

    config = spec.config
    task = Task.open(config, spec.data)
    keras.utils.set_random_seed(config.seed)
    model = task.build(keras)
    optimizer = rank_optimizer(keras, config.optimizer, config.learning_rate, size,
                               config.scale_learning_rate)
    return RankModel(task=task, model=model, optimizer=optimizer,
                     base_rate=learning_rate_of(optimizer))


def epoch_of(hook: tuple[int, int] | None, rank: int) -> int | None:
    """The epoch at whose start a test hook acts on ``rank`` (None: not this rank)."""
    return hook[1] if hook is not None and hook[0] == rank else None


def act_on_drill_hooks(spec: RankSpec, rank: int, epoch: int) -> None:
    """At the start of ``epoch`` (1-based): fail or stall this rank when the test and drill
    hooks (EngineSettings) name it, as a crashed or hung rank would."""
    import time

    from hepspark.config import EngineSettings

    fail_at = epoch_of(spec.fail_rank_at_epoch, rank)
    if fail_at == epoch:
        raise RuntimeError(f"{EngineSettings.FAIL_RANK_ENV}: rank {rank} fails at "
                           f"epoch {fail_at}")
    stall_at = epoch_of(spec.stall_rank_at_epoch, rank)
    if stall_at == epoch:
        print(f"{EngineSettings.STALL_RANK_ENV}: rank {rank} stalls at epoch {stall_at}",
              flush=True)
        while True:
            time.sleep(60)


def lead_result(book: "EpochBook", built: RankModel) -> LeadResult:
    """Rank 0's result: the kept epoch's weights (else the last) and its epochs."""
    model = built.model
    weights = book.best_weights if book.best_weights is not None else model.get_weights()
    return LeadResult(records=tuple(book.records), weights=tuple(weights),
                      stopped_early=book.stopped_early, learning_rate=built.base_rate,
                      parameters=model.count_params(), selected_epoch=book.selected_epoch)


def exit_on_error(main: Callable[[RankSpec], T], spec: RankSpec) -> T:
    """``main(spec)``, the body of one rank; any error ends the process at once with a
    non-zero status. A Horovod rank that raised and then ran the normal interpreter
    shutdown hung there (Horovod's exit hook waits for its peers) and the job failed only
    after about ten minutes; a prompt exit lets the engine's driver see the failure and
    stop the other ranks within seconds (under torch their next collective fails)."""
    try:
        return main(spec)
    except BaseException:
        import sys
        import traceback

        traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


def weights_digest(variables) -> str:
    """sha256 of ``variables`` (Keras variables, any backend): the driver refuses ranks
    whose digests differ."""
    return hashlib.sha256(b"".join(np.ascontiguousarray(v.numpy()).tobytes()
                                   for v in variables)).hexdigest()


def save_payload(model, optimizer, directory: str) -> None:
    """Checkpoint payload: model weights and the optimizer's variables (iteration count and
    slots), as plain arrays in Keras order."""
    np.savez(os.path.join(directory, WEIGHTS_FILE), *model.get_weights())
    np.savez(os.path.join(directory, OPTIMIZER_FILE),
             *[v.numpy() for v in optimizer.variables])


def restore_payload(model, optimizer, payload: dict[str, bytes]) -> None:
    """Put a checkpoint's payload (file name -> bytes) back into ``model`` and
    ``optimizer`` (tf_keras or Keras 3 on any backend)."""
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
