"""Keras builder of :class:`~hepspark.models.config.DenseNetConfig`.

Takes the Keras module as an argument: ``keras`` (Keras 3, any backend — TensorFlow here,
torch on a GPU box) or ``tf_keras`` (legacy Keras 2, which Horovod needs: with Keras 3
``hvd.DistributedOptimizer`` silently skips gradient averaging, STACK.md). The layer API
used here is common to both.

>>> import keras
>>> model = build_dense(higgs_dnn(), n_inputs=28, keras=keras, seed=1)
>>> model.count_params()
189601
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

from hepspark.models.config import DenseNetConfig

PREDICT_BATCH = 8192  # rows per predict call, for every engine
MODEL_FILE = "model.keras"


def _initializer(keras: ModuleType, config: DenseNetConfig, seed: int | None) -> Any:
    inits = keras.initializers
    if config.init == "gaussian":
        return inits.RandomNormal(mean=0.0, stddev=config.init_stddev, seed=seed)
    factory = {
        "glorot_uniform": inits.GlorotUniform,
        "glorot_normal": inits.GlorotNormal,
        "he_normal": inits.HeNormal,
        "he_uniform": inits.HeUniform,
    }[config.init]
    return factory(seed=seed)


def build_dense(
    config: DenseNetConfig, n_inputs: int, keras: ModuleType | None = None, seed: int | None = None
) -> Any:
    """Return an uncompiled ``keras.Sequential`` for ``config`` with ``n_inputs`` features."""
    if keras is None:
        import keras  # noqa: PLC0415 - the heavy import happens only when building

    layers = [keras.Input(shape=(n_inputs,), name="features")]
    for i in range(config.depth):
        layer_seed = None if seed is None else seed + i
        layers.append(
            keras.layers.Dense(
                config.width,
                activation=config.activation,
                kernel_initializer=_initializer(keras, config, layer_seed),
                bias_initializer="zeros",
                name=f"hidden_{i + 1}",
            )
        )
        if config.dropout:
            layers.append(keras.layers.Dropout(config.dropout, name=f"dropout_{i + 1}"))
    layers.append(
        keras.layers.Dense(
            config.num_outputs,
            activation=config.output_activation,
            kernel_initializer=_initializer(
                keras, config, None if seed is None else seed + config.depth
            ),
            name="output",
        )
    )
    return keras.Sequential(layers, name=f"dense_{config.depth}x{config.width}")


def predict_scores(model: Any, x: Any) -> Any:
    """Signal scores [N] of a sigmoid-output model (Keras 3 or tf_keras)."""
    return model.predict(x, batch_size=PREDICT_BATCH, verbose=0).reshape(-1)


def save_keras_model(model: Any, path: str) -> str:
    """Save to ``path`` if it names a ``.keras`` file, else to ``path/model.keras``; returns
    the file written (what every backend's ``TrainResult.save`` does)."""
    import os

    target = path if path.endswith(".keras") else os.path.join(path, MODEL_FILE)
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    model.save(target)
    return target
