"""Optimizer names → Keras optimizers, each at Keras' own default learning rate unless one
is given (the seed study compared optimizers "at the default value of the optimizer")."""
from __future__ import annotations

from types import ModuleType
from typing import Any

KERAS_OPTIMIZERS = {
    "sgd": "SGD",
    "adam": "Adam",
    "adamax": "Adamax",
    "adadelta": "Adadelta",
    "adagrad": "Adagrad",
    "nadam": "Nadam",
    "rmsprop": "RMSprop",
}


def keras_optimizer(keras: ModuleType, name: str, learning_rate: float | None = None) -> Any:
    """Instantiate optimizer ``name`` from ``keras`` (Keras 3 or tf_keras)."""
    if name not in KERAS_OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(KERAS_OPTIMIZERS)}, got {name!r}")
    cls = getattr(keras.optimizers, KERAS_OPTIMIZERS[name])
    return cls() if learning_rate is None else cls(learning_rate=learning_rate)


def learning_rate_of(optimizer: Any) -> float:
    return float(optimizer.learning_rate.numpy())
