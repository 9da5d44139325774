"""BigDL builder of :class:`~hepspark.models.config.DenseNetConfig`, and the BigDL names
of what every BigDL build here uses (also the CNN translator, :mod:`.bigdl_cnn`).

Plain data at import time (BigDL is imported inside the builders), so the capability check
reads :data:`ACTIVATIONS` and :data:`INITIALIZERS` without starting BigDL.

>>> model = build_bigdl(higgs_dnn(), n_inputs=28, seed=1)
>>> [w.shape for w in keras_weights(model.get_weights())][:2]
[(28, 300), (300,)]
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from hepspark.models.config import DenseNetConfig

# activation name (Keras' name) -> module in bigdl.dllib.nn.layer
ACTIVATIONS = {"tanh": "Tanh", "relu": "ReLU", "sigmoid": "Sigmoid", "elu": "ELU"}
# DenseNetConfig.init values with a BigDL equivalent (see _linear)
INITIALIZERS = ("gaussian", "glorot_uniform", "he_normal")


def build_bigdl(config: "DenseNetConfig", n_inputs: int, seed: int | None = None) -> Any:
    """``config`` as BigDL ``nn`` layers: Linear + activation (+ Dropout) per hidden layer,
    Linear + sigmoid output. Its activation and init are among :data:`ACTIVATIONS` and
    :data:`INITIALIZERS` (``hepspark.backends.check_supported`` says so before training)."""
    from bigdl.dllib.nn import layer as nn

    model = nn.Sequential()
    if seed is not None:
        model.set_seed(seed)
    width_in = n_inputs
    for _ in range(config.depth):
        model.add(_linear(config, width_in, config.width))
        model.add(getattr(nn, ACTIVATIONS[config.activation])())
        if config.dropout:
            model.add(nn.Dropout(config.dropout))  # BigDL's p is the drop probability
        width_in = config.width
    model.add(_linear(config, width_in, config.num_outputs))
    model.add(nn.Sigmoid())
    return model


def _linear(config: "DenseNetConfig", n_in: int, n_out: int) -> Any:
    from bigdl.dllib.nn import initialization_method as init
    from bigdl.dllib.nn.layer import Linear

    weight = {
        "gaussian": lambda: init.RandomNormal(0.0, config.init_stddev),
        "glorot_uniform": init.Xavier,
        # std = sqrt(2 / fan_in): He normal (varianceNormAverage=False uses fan_in only)
        "he_normal": lambda: init.MsraFiller(False),
    }[config.init]
    return Linear(n_in, n_out).set_init_method(weight(), init.Zeros())


def keras_weights(bigdl_weights: list[np.ndarray]) -> list[np.ndarray]:
    """BigDL Linear weights are [out, in]; Keras Dense kernels are [in, out]."""
    return [w.T.copy() if w.ndim == 2 else w.copy() for w in bigdl_weights]
