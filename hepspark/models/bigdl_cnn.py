"""The zoo CNNs as BigDL ``nn`` layers, translated from their Keras build.

The Keras model of a :class:`~hepspark.models.cnn.CnnConfig` is the single definition of
each architecture; this module walks its layers and emits the BigDL equivalent, in
channels-last layout (``NHWC``: the same flatten order as Keras, so Dense weights carry
over unchanged), starting from the Keras model's own initial weights. After training,
:func:`keras_weights` gives the weights back in Keras order, so the driver predicts and
saves the same ``model.keras`` as every other backend.

Translated: ``Conv2D`` (any kernel and stride, ``same``/``valid`` padding, L2 kernel
regularizer), ``BatchNormalization`` (BigDL momentum = 1 - Keras momentum; the moving
statistics are read back through the JVM's ``getRunningMean``/``getRunningStd``),
``MaxPooling2D``, ``Flatten``, ``Dense``, ``Dropout``, ``Activation`` and the
ReLU/sigmoid/tanh/softmax activations. That covers the sequential families ``basic_cnn``,
``basic_cnn_bn_pool``, ``alexnet_like`` and ``vgg``. Not translated, and refused with the
reason: ``resnet``, ``inception`` and ``xception`` are graphs (residual additions, tower
concatenation; ``xception`` also needs separable convolutions), and this translator emits
``Sequential`` chains only.

The *state* of a translated model (:func:`get_state`) is its parameters followed by the
moving mean and variance of each BatchNormalization layer: what epoch selection keeps and
:func:`keras_weights` turns into Keras weights.

Binary models end in Linear + Sigmoid (``BCECriterion``); K-class models in Linear +
LogSoftMax (``ClassNLLCriterion``, labels 1..K): ``exp`` of the output is the softmax.
"""
from __future__ import annotations

from typing import Any

import numpy as np

BIGDL_FAMILIES = ("basic_cnn", "basic_cnn_bn_pool", "alexnet_like", "vgg")
_ACTIVATIONS = {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh"}
_REASONS = {
    "resnet": "it is a graph (residual additions); the BigDL translation builds sequential "
              "chains only",
    "inception": "it is a graph (tower concatenation); the BigDL translation builds "
                 "sequential chains only",
    "xception": "it is a graph (residual additions) of separable convolutions; the BigDL "
                "translation builds sequential chains only",
}
BN_CLASS = "SpatialBatchNormalization"


class BigDLUnsupportedError(ValueError):
    """The model (family or layer) has no BigDL translation here."""


def check_bigdl_family(family: str) -> None:
    if family not in BIGDL_FAMILIES:
        raise BigDLUnsupportedError(
            f"--backend bigdl cannot train {family!r}: {_REASONS.get(family, 'no translation')}."
            f" BigDL trains {', '.join(BIGDL_FAMILIES)}; use --backend keras or horovod for "
            f"{family}"
        )


def _is_softmax(activation: Any) -> bool:
    return getattr(activation, "__name__", str(activation)) == "softmax"


def _activation(nn, activation: Any, where: str):
    name = getattr(activation, "__name__", str(activation))
    if name == "linear":
        return None
    if name not in _ACTIVATIONS:
        raise BigDLUnsupportedError(f"{where}: activation {name!r} has no BigDL translation")
    return getattr(nn, _ACTIVATIONS[name])()


def _l2(nn_optim, layer) -> Any:
    """Keras ``l2(a)`` adds a·Σw² to the loss; BigDL's ``L2Regularizer(b)`` adds the
    gradient b·w, so b = 2a."""
    reg = getattr(layer, "kernel_regularizer", None)
    if reg is None:
        return None
    factor = float(reg.get_config().get("l2", 0.0))
    return nn_optim.L2Regularizer(2.0 * factor) if factor else None


def _same(padding: str, where: str) -> int:
    if padding == "same":
        return -1  # BigDL's SAME padding (TensorFlow's rule)
    if padding == "valid":
        return 0
    raise BigDLUnsupportedError(f"{where}: padding {padding!r} has no BigDL translation")


def translate(keras_model: Any, seed: int | None = None) -> Any:  # noqa: C901 - one branch per layer
    """A BigDL ``Sequential`` computing what ``keras_model`` (a chain of supported layers,
    channels-last input) computes, holding its current weights; K-class softmax outputs
    become LogSoftMax."""
    from bigdl.dllib.nn import layer as nn
    from bigdl.dllib.optim import optimizer as nn_optim

    model = nn.Sequential()
    if seed is not None:
        model.set_seed(seed)
    weights: list[np.ndarray] = []
    stats: list[np.ndarray] = []  # BatchNormalization moving mean, variance
    for layer in keras_model.layers:
        kind = type(layer).__name__
        where = f"{keras_model.name}: layer {layer.name} ({kind})"
        if kind == "InputLayer":
            continue
        if kind == "Conv2D":
            cfg = layer.get_config()
            if cfg.get("groups", 1) != 1 or tuple(cfg.get("dilation_rate", (1, 1))) != (1, 1):
                raise BigDLUnsupportedError(f"{where}: grouped/dilated convolution")
            kh, kw = cfg["kernel_size"]
            sh, sw = cfg["strides"]
            pad = _same(cfg["padding"], where)
            kernel = layer.get_weights()[0]
            model.add(nn.SpatialConvolution(
                kernel.shape[2], kernel.shape[3], kw, kh, sw, sh, pad, pad,
                wRegularizer=_l2(nn_optim, layer), with_bias=cfg["use_bias"],
                data_format="NHWC"))
            weights.append(kernel[np.newaxis])  # BigDL NHWC: (groups, kh, kw, in, out)
            if cfg["use_bias"]:
                weights.append(layer.get_weights()[1])
            act = _activation(nn, layer.activation, where)
            if act is not None:
                model.add(act)
        elif kind == "MaxPooling2D":
            cfg = layer.get_config()
            ph, pw = cfg["pool_size"]
            sh, sw = cfg["strides"] or cfg["pool_size"]
            pad = _same(cfg["padding"], where)
            model.add(nn.SpatialMaxPooling(pw, ph, sw, sh, pad, pad, format="NHWC"))
        elif kind == "Flatten":
            model.add(nn.Reshape([int(np.prod(layer.output.shape[1:]))], batch_mode=True))
        elif kind == "Dense":
            kernel, bias = layer.get_weights()
            model.add(nn.Linear(kernel.shape[0], kernel.shape[1],
                                wRegularizer=_l2(nn_optim, layer)))
            weights += [kernel.T.copy(), bias]
            if _is_softmax(layer.activation):
                if layer is not keras_model.layers[-1]:
                    raise BigDLUnsupportedError(f"{where}: softmax before the output layer")
                model.add(nn.LogSoftMax())
            else:
                act = _activation(nn, layer.activation, where)
                if act is not None:
                    model.add(act)
        elif kind == "Dropout":
            model.add(nn.Dropout(float(layer.rate)))  # BigDL's p is the drop probability
        elif kind == "Activation":
            if _is_softmax(layer.activation):
                raise BigDLUnsupportedError(f"{where}: softmax activation layer")
            act = _activation(nn, layer.activation, where)
            if act is not None:
                model.add(act)
        elif kind == "BatchNormalization":
            cfg = layer.get_config()
            axis = cfg["axis"][0] if isinstance(cfg["axis"], list | tuple) else cfg["axis"]
            if axis not in (-1, 3) or not (cfg["center"] and cfg["scale"]):
                raise BigDLUnsupportedError(f"{where}: only channels-last BatchNormalization "
                                            "with center and scale")
            gamma, beta, mean, var = layer.get_weights()
            model.add(nn.SpatialBatchNormalization(len(gamma), float(cfg["epsilon"]),
                                                   1.0 - float(cfg["momentum"]),
                                                   data_format="NHWC"))
            weights += [gamma, beta]
            stats += [mean, var]
        else:
            raise BigDLUnsupportedError(f"{where} has no BigDL translation")
    set_state(model, weights + stats)
    return model


def _batch_norms(model) -> list:
    """The BatchNormalization layers of a translated Sequential, in order (also for a
    model loaded from a checkpoint, which comes back as a plain Layer)."""
    from bigdl.dllib.nn.layer import Layer
    from bigdl.dllib.utils.common import callBigDlFunc

    layers = [Layer.of(j) for j in callBigDlFunc("float", "getContainerModules", model)]
    return [m for m in layers if BN_CLASS in str(m.value.getClass().getName())]


def get_state(model) -> list[np.ndarray]:
    """Parameters, then (moving mean, moving variance) of each BatchNormalization."""
    from bigdl.dllib.utils.common import callBigDlFunc

    state = [np.asarray(w).copy() for w in model.get_weights()]
    for bn in _batch_norms(model):
        for getter in ("getRunningMean", "getRunningStd"):  # "Std" is the variance
            state.append(np.asarray(callBigDlFunc("float", getter, bn.value).to_ndarray(),
                                    np.float32).copy())
    return state


def set_state(model, state: list[np.ndarray]) -> None:
    norms = _batch_norms(model)
    n_params = len(state) - 2 * len(norms)
    model.set_weights(list(state[:n_params]))
    for i, bn in enumerate(norms):
        bn.set_running_mean(np.asarray(state[n_params + 2 * i], np.float32))
        bn.set_running_std(np.asarray(state[n_params + 2 * i + 1], np.float32))


def keras_weights(keras_model: Any, state: list[np.ndarray]) -> list[np.ndarray]:
    """The :func:`get_state` of a model made by :func:`translate`, as ``keras_model``'s
    weights (convolution kernels lose the group axis, Linear weights are transposed, the
    moving statistics go back after each BatchNormalization's gamma and beta)."""
    n_norms = sum(type(layer).__name__ == "BatchNormalization" for layer in keras_model.layers)
    n_params = len(state) - 2 * n_norms
    params, stats = iter(state[:n_params]), iter(state[n_params:])
    out = []
    for layer in keras_model.layers:
        is_norm = type(layer).__name__ == "BatchNormalization"
        for i, target in enumerate(layer.get_weights()):
            w = np.asarray(next(stats) if is_norm and i >= 2 else next(params))
            if w.ndim == 5:
                w = w[0]
            elif w.ndim == 2:
                w = w.T
            if w.shape != target.shape:
                raise ValueError(f"BigDL weight of shape {w.shape} where Keras layer "
                                 f"{layer.name} has {target.shape}")
            out.append(np.ascontiguousarray(w))
    return out
