"""The torch engine: Spark's own ``TorchDistributor`` running the same model configs on
Keras 3's torch backend, one ``torchrun`` process per Spark task (barrier mode),
``DistributedDataParallel`` over Gloo on CPU or NCCL on GPU. The engine a new user should
reach for: BigDL and Horovod are unmaintained upstream (SPEC.md), pyspark and PyTorch are
not.

PyTorch is an opt-in install (``make install-torch``): without it ``--backend torch``
stops with the install step (:func:`require_torch`) and every other engine works.

This module is the driver's side (checks, the distributor, the live epoch stream, the
result); each process runs :func:`hepspark.backends.torch_remote.run_rank` over the same
frozen :class:`~hepspark.backends.rank_common.RankSpec` as the Horovod engine, and the
driver pieces (task slots, threads per rank, stall watchdog, epoch stream) are shared with
it (:mod:`hepspark.backends.ranks`). Ranks read their shards with pyarrow; the same
equal-steps rule as Horovod (:meth:`~hepspark.backends.tasks.Task.rank_steps`). The
driver gets rank 0's chosen weights back and puts them into the Keras 3 build of the config
(TensorFlow backend on the driver), so evaluation, saving and plots are every backend's.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hepspark.backends.base import Engine, EngineUnavailableError, EpochRecord, TrainResult
from hepspark.backends.capabilities import CAPABILITIES, check_installed, check_supported
from hepspark.backends.ranks import run_ranks, threads_per_rank
from hepspark.backends.torch_remote import run_rank

if TYPE_CHECKING:
    from hepspark.config import TrainConfig
    from hepspark.data.readers import HiggsDataset

START_TIMEOUT_S = 180  # torchrun's rendezvous, importing torch and Keras, building the model


class TorchUnavailableError(EngineUnavailableError):
    pass


def require_torch() -> None:
    """Fail with the install step (the engine's capabilities say it) when PyTorch, or
    pyspark's TorchDistributor, does not import."""
    check_installed("torch")
    try:
        import torch  # noqa: F401
        from pyspark.ml.torch.distributor import TorchDistributor  # noqa: F401
    except ImportError as exc:
        _, what, how = CAPABILITIES["torch"].requires
        raise TorchUnavailableError(f"--backend torch needs {what}, which failed to import "
                                    f"({exc}): {how}") from exc


class TorchBackend(Engine):
    """``settings``: the engine settings; None reads them from the driver's environment."""

    name = "torch"

    def _spark(self, config: "TrainConfig"):
        from hepspark.session import get_spark

        return get_spark("hepspark-train-higgs", master=config.master,
                         driver_memory=self._settings().driver_memory)

    @staticmethod
    def use_gpu(spark) -> bool:
        """GPUs when torch sees one and Spark schedules them per task
        (``spark.task.resource.gpu.amount``, which TorchDistributor needs for GPUs)."""
        import torch

        amount = spark.sparkContext.getConf().get("spark.task.resource.gpu.amount", "0")
        return torch.cuda.is_available() and float(amount) >= 1

    def describe_resources(self, config: "TrainConfig") -> dict[str, Any]:
        require_torch()  # before MLflow starts a run
        from hepspark.hardware import cpu_model

        spark = self._spark(config)
        device = ("GPU: one per rank (TorchDistributor, NCCL)" if self.use_gpu(spark) else
                  f"CPU: {cpu_model()} (torch ranks in Spark tasks, Gloo)")
        return {
            "num_executors": config.num_executors,
            "cores_per_executor": threads_per_rank(spark, config.num_executors,
                                                   self._settings().horovod_threads),
            "device": device,
            "spark_master": spark.sparkContext.master,
        }

    def fit(
        self,
        config: "TrainConfig",
        dataset: "HiggsDataset",
        on_epoch_end: Callable[[EpochRecord], None],
    ) -> TrainResult:
        check_supported(config)
        require_torch()
        from pyspark.ml.torch.distributor import TorchDistributor

        spark = self._spark(config)
        use_gpu = self.use_gpu(spark)
        distributor = TorchDistributor(num_processes=config.num_executors, local_mode=False,
                                       use_gpu=use_gpu)
        # TorchDistributor.run returns rank 0's value: every rank's result, gathered there
        return run_ranks("torch", config, dataset, spark, self._settings(), on_epoch_end,
                         lambda spec: list(distributor.run(run_rank, spec).ranks),
                         START_TIMEOUT_S, use_gpu=use_gpu)
