"""The one optimizer table: each optimizer name with its Keras class and its BigDL class.

Every optimizer starts at its engine's own default learning rate unless one is given (the
seed study compared optimizers "at the default value of the optimizer"). Plain data at
import time: the capability check (:mod:`hepspark.backends.capabilities`) reads it without
importing an engine.

>>> keras_optimizer(keras, "adamax")           # Keras 3 or tf_keras
>>> bigdl_optimizer("adamax", learning_rate=1e-3)
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class OptimizerNames:
    keras: str  # class in keras.optimizers (Keras 3 and tf_keras)
    bigdl: str | None = None  # class in bigdl.dllib.optim.optimizer; None: BigDL has none
    # BigDL's own default learning rate (bigdl.dllib.optim.optimizer); None: its method
    # takes no learning rate (Adadelta: decayrate 0.9, epsilon 1e-10)
    bigdl_default_rate: float | None = None


OPTIMIZERS: dict[str, OptimizerNames] = {
    "sgd": OptimizerNames("SGD", "SGD", 1e-3),
    "adam": OptimizerNames("Adam", "Adam", 1e-3),
    "adamax": OptimizerNames("Adamax", "Adamax", 2e-3),
    "adadelta": OptimizerNames("Adadelta", "Adadelta"),
    "adagrad": OptimizerNames("Adagrad", "Adagrad", 1e-3),
    "nadam": OptimizerNames("Nadam"),  # BigDL 2.4.0 has no Nadam
    "rmsprop": OptimizerNames("RMSprop", "RMSprop", 1e-2),
}


def keras_optimizer(keras: ModuleType, name: str, learning_rate: float | None = None) -> Any:
    """Instantiate optimizer ``name`` from ``keras`` (Keras 3 or tf_keras)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    cls = getattr(keras.optimizers, OPTIMIZERS[name].keras)
    return cls() if learning_rate is None else cls(learning_rate=learning_rate)


def rank_optimizer(keras: ModuleType, name: str, learning_rate: float | None, ranks: int,
                   scale: bool) -> Any:
    """Optimizer ``name`` for one of ``ranks`` data-parallel ranks: its rate (given, else
    the default) times ``ranks`` when ``scale`` (``--scale-learning-rate``)."""
    if scale:
        default = learning_rate_of(keras_optimizer(keras, name))
        learning_rate = (learning_rate or default) * ranks
    return keras_optimizer(keras, name, learning_rate)


def learning_rate_of(optimizer: Any) -> float:
    return float(optimizer.learning_rate.numpy())


def bigdl_optimizer(name: str, learning_rate: float | None = None) -> Any:
    """BigDL's OptimMethod for ``name``; the config was checked against the bigdl engine's
    capabilities (:func:`hepspark.backends.check_supported`) before."""
    from bigdl.dllib.optim import optimizer as optim

    names = OPTIMIZERS[name]
    cls = getattr(optim, names.bigdl)
    if names.bigdl_default_rate is None:
        return cls()
    return cls(learningrate=learning_rate if learning_rate is not None
               else names.bigdl_default_rate)


def bigdl_learning_rate(optim: Any) -> float:
    """The learning rate an OptimMethod was made with (1.0 for Adadelta, whose step has no
    rate: the same convention as Keras' Adadelta default)."""
    try:
        return float(optim.value.learningRate())
    except Exception:
        return 1.0
