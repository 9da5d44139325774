"""What each training engine supports, declared as data, and the check of a run config
against it before any work (no TensorFlow, BigDL, Horovod or Spark is imported here).

>>> from hepspark.config import TrainConfig
>>> check_supported(TrainConfig(data="d", backend="bigdl", optimizer="nadam"))
Traceback (most recent call last):
ValueError: backend bigdl has no optimizer 'nadam'; choose one of adadelta, adagrad, adam, adamax, rmsprop, sgd
>>> CAPABILITIES["horovod"].sample_weights
True
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from hepspark.backends.base import BACKENDS, EngineUnavailableError
from hepspark.backends.optimizers import OPTIMIZERS
from hepspark.models import bigdl_dense
from hepspark.models.cnn import FAMILIES
from hepspark.models.config import ACTIVATIONS, INITIALIZERS

if TYPE_CHECKING:
    from hepspark.config import TrainConfig


@dataclass(frozen=True)
class Capabilities:
    """What one engine can train. ``activations`` and ``initializers`` are those of the
    dense (HIGGS) model; a zoo CNN's layers are checked as its family is translated."""

    optimizers: tuple[str, ...]
    activations: tuple[str, ...]
    initializers: tuple[str, ...]
    model_families: tuple[str, ...]  # "dense" and the zoo CNN families
    # the physical weights of image datasets weigh the training loss (else: validation and
    # test metrics only, noted with the run)
    sample_weights: bool
    # optimizers that take no learning rate (a given --learning-rate is refused)
    optimizers_without_rate: tuple[str, ...] = ()
    # --batch-size is per rank (data-parallel ranks: Horovod, torch), else global
    batch_per_rank: bool = False
    # an opt-in framework: (module that must be importable, what it is, how to install it)
    requires: tuple[str, str, str] | None = None


_KERAS = Capabilities(
    optimizers=tuple(OPTIMIZERS),
    activations=ACTIVATIONS,
    initializers=INITIALIZERS,
    model_families=("dense", *FAMILIES),
    sample_weights=True,
)

CAPABILITIES: dict[str, Capabilities] = {
    "keras": _KERAS,
    "horovod": replace(_KERAS, batch_per_rank=True),  # Keras (tf_keras) in every rank
    # Keras 3 (torch backend) in every rank, Keras' own optimizers
    "torch": replace(_KERAS, batch_per_rank=True, requires=(
        "torch", "PyTorch", "install it with 'make install-torch' (scripts/install_torch.sh: "
        "pip install torch==2.13.0, the CPU build, into .venv); the keras, horovod and "
        "bigdl backends work without it")),
    "bigdl": Capabilities(
        optimizers=tuple(name for name, o in OPTIMIZERS.items() if o.bigdl),
        activations=tuple(bigdl_dense.ACTIVATIONS),
        initializers=bigdl_dense.INITIALIZERS,
        model_families=("dense", *FAMILIES),  # CNNs translated from their Keras build
        sample_weights=False,  # BigDL's criteria take no per-sample weights
        optimizers_without_rate=tuple(name for name, o in OPTIMIZERS.items()
                                      if o.bigdl and o.bigdl_default_rate is None),
    ),
}


def batch_is_per_rank(backend: str) -> bool:
    """Whether ``backend``'s ``--batch-size`` is per rank (Horovod, torch) rather than global;
    False for names that are not engines (a baseline such as ``keras-gpu``)."""
    return backend in CAPABILITIES and CAPABILITIES[backend].batch_per_rank


def check_installed(backend: str) -> None:
    """Raise :class:`~hepspark.backends.base.EngineUnavailableError` (one line: what is
    missing and how to install it) when ``backend`` needs an opt-in framework that is not
    installed. Cheap: looks the module up, imports nothing."""
    import importlib.util

    requires = CAPABILITIES[backend].requires if backend in CAPABILITIES else None
    if requires is None:
        return
    module, what, how = requires
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise EngineUnavailableError(f"--backend {backend} needs {what}, which is not "
                                     f"installed: {how}")


def check_supported(config: "TrainConfig") -> None:
    """Raise ValueError when ``config`` asks its backend for something the engine does not
    support, naming the value and the allowed ones, and EngineUnavailableError when the
    engine's opt-in framework is not installed. Cheap: imports no engine."""
    if config.backend not in BACKENDS:
        raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {config.backend!r}")
    check_installed(config.backend)
    can = CAPABILITIES[config.backend]
    model = config.model

    def refuse(what: str, value: str, allowed: tuple[str, ...]) -> ValueError:
        return ValueError(f"backend {config.backend} has no {what} {value!r}; choose one of "
                          f"{', '.join(sorted(allowed))}")

    if config.optimizer not in can.optimizers:
        raise refuse("optimizer", config.optimizer, can.optimizers)
    if config.learning_rate is not None and config.optimizer in can.optimizers_without_rate:
        raise ValueError(f"backend {config.backend}'s {config.optimizer} optimizer takes no "
                         "learning rate; drop --learning-rate")
    if model.family not in can.model_families:
        raise refuse("model family", model.family, can.model_families)
    if not config.is_cnn:
        if model.activation not in can.activations:
            raise refuse("activation", model.activation, can.activations)
        if model.init not in can.initializers:
            raise refuse("init", model.init, can.initializers)
