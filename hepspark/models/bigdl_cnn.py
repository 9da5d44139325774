"""The zoo CNNs as BigDL ``nn`` layers, translated from their Keras build.

The Keras model of a :class:`~hepspark.models.cnn.CnnConfig` is the single definition of
each architecture; this module walks its layers and emits the BigDL equivalent, in
channels-last layout (``NHWC``: the same flatten order as Keras, so Dense weights carry
over unchanged), starting from the Keras model's own initial weights. After training,
:func:`keras_weights` gives the weights back in Keras order, so the driver predicts and
saves the same ``model.keras`` as every other backend.

The Keras functional graph becomes a BigDL graph (``nn.Model`` of nodes), layer by layer,
each BigDL module named after its Keras layer. Translated: ``Conv2D`` (any kernel and
stride, ``same``/``valid`` padding, L2 kernel regularizer), ``SeparableConv2D``,
``BatchNormalization`` (BigDL momentum = 1 - Keras momentum; the moving statistics are
read back through the JVM's ``getRunningMean``/``getRunningStd``, which the Python API does
not wrap), ``MaxPooling2D``, ``GlobalAveragePooling2D``, ``Flatten``, ``Dense``,
``Dropout``, ``Add`` (``CAddTable``), ``Concatenate`` on channels (``JoinTable``),
``Activation`` and the ReLU/sigmoid/tanh/softmax activations: every zoo family.

The *state* of a translated model (:func:`get_state`) is, per Keras layer with weights and
in Keras order, the named BigDL module's parameters (plus the moving mean and variance of a
BatchNormalization): what epoch selection keeps, what :func:`set_state` restores (also
into a model reloaded from a checkpoint, by name) and what :func:`keras_weights` turns into
Keras weights.

Binary models end in Linear + Sigmoid (``BCECriterion``); K-class models in Linear +
LogSoftMax (``ClassNLLCriterion``, labels 1..K): ``exp`` of the output is the softmax.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from hepspark.models.bigdl_dense import ACTIVATIONS


class BigDLUnsupportedError(ValueError):
    """The model (family or layer) has no BigDL translation here."""


def _activation_name(activation: Any) -> str:
    return getattr(activation, "__name__", str(activation))


def _activation(nn, activation: Any, where: str):
    name = _activation_name(activation)
    if name == "linear":
        return None
    if name not in ACTIVATIONS:
        raise BigDLUnsupportedError(f"{where}: activation {name!r} has no BigDL translation")
    return getattr(nn, ACTIVATIONS[name])()


def _l2(nn_optim, layer, attribute: str = "kernel_regularizer") -> Any:
    """Keras ``l2(a)`` adds a·Σw² to the loss; BigDL's ``L2Regularizer(b)`` adds the
    gradient b·w, so b = 2a."""
    reg = getattr(layer, attribute, None)
    if reg is None:
        return None
    factor = float(reg.get_config().get("l2", 0.0))
    return nn_optim.L2Regularizer(2.0 * factor) if factor else None


def _pad(padding: str, where: str) -> int:
    if padding == "same":
        return -1  # BigDL's SAME padding (TensorFlow's rule)
    if padding == "valid":
        return 0
    raise BigDLUnsupportedError(f"{where}: padding {padding!r} has no BigDL translation")


def _inputs(layer) -> list[str]:
    """Names of the layers whose outputs ``layer`` takes (each zoo layer is called once)."""
    node = layer._inbound_nodes[0]
    return [t._keras_history[0].name for t in node.input_tensors]


def _modules(nn, nn_optim, layer, where: str, final: bool) -> list:
    """The BigDL modules (a chain) computing ``layer``; the first carries its weights."""
    kind = type(layer).__name__
    cfg = layer.get_config()
    if kind in ("Conv2D", "SeparableConv2D"):
        if cfg.get("groups", 1) != 1 or tuple(cfg.get("dilation_rate", (1, 1))) != (1, 1):
            raise BigDLUnsupportedError(f"{where}: grouped/dilated convolution")
        kh, kw = cfg["kernel_size"]
        sh, sw = cfg["strides"]
        pad = _pad(cfg["padding"], where)
        c_in = layer.input.shape[-1]
        if kind == "Conv2D":
            main = nn.SpatialConvolution(c_in, cfg["filters"], kw, kh, sw, sh, pad, pad,
                                         wRegularizer=_l2(nn_optim, layer),
                                         with_bias=cfg["use_bias"], data_format="NHWC")
        else:
            if cfg.get("depthwise_regularizer") or cfg.get("pointwise_regularizer"):
                raise BigDLUnsupportedError(f"{where}: regularized separable convolution")
            main = nn.SpatialSeparableConvolution(c_in, cfg["filters"],
                                                  cfg["depth_multiplier"], kw, kh, sw, sh,
                                                  pad, pad, with_bias=cfg["use_bias"],
                                                  data_format="NHWC")
        return [main, _activation(nn, layer.activation, where)]
    if kind == "BatchNormalization":
        axis = cfg["axis"][0] if isinstance(cfg["axis"], list | tuple) else cfg["axis"]
        if axis not in (-1, 3) or not (cfg["center"] and cfg["scale"]):
            raise BigDLUnsupportedError(f"{where}: only channels-last BatchNormalization "
                                        "with center and scale")
        return [nn.SpatialBatchNormalization(layer.input.shape[-1], float(cfg["epsilon"]),
                                             1.0 - float(cfg["momentum"]), data_format="NHWC")]
    if kind == "MaxPooling2D":
        ph, pw = cfg["pool_size"]
        sh, sw = cfg["strides"] or cfg["pool_size"]
        pad = _pad(cfg["padding"], where)
        return [nn.SpatialMaxPooling(pw, ph, sw, sh, pad, pad, format="NHWC")]
    if kind == "GlobalAveragePooling2D":
        if cfg.get("keepdims"):
            raise BigDLUnsupportedError(f"{where}: keepdims")
        _, h, w, c = layer.input.shape
        return [nn.SpatialAveragePooling(w, h, global_pooling=True, format="NHWC"),
                nn.Reshape([c], batch_mode=True)]
    if kind == "Flatten":
        return [nn.Reshape([int(np.prod(layer.output.shape[1:]))], batch_mode=True)]
    if kind == "Dense":
        kernel = layer.get_weights()[0]
        main = nn.Linear(kernel.shape[0], kernel.shape[1], wRegularizer=_l2(nn_optim, layer),
                         with_bias=cfg["use_bias"])
        if _activation_name(layer.activation) == "softmax":
            if not final:
                raise BigDLUnsupportedError(f"{where}: softmax before the output layer")
            return [main, nn.LogSoftMax()]  # K classes: ClassNLLCriterion on log-probabilities
        return [main, _activation(nn, layer.activation, where)]
    if kind == "Dropout":
        return [nn.Dropout(float(layer.rate))]  # BigDL's p is the drop probability
    if kind == "Activation":
        if _activation_name(layer.activation) == "softmax":
            raise BigDLUnsupportedError(f"{where}: softmax activation layer")
        return [_activation(nn, layer.activation, where)]
    if kind == "Add":
        return [nn.CAddTable()]
    if kind == "Concatenate":
        if cfg["axis"] not in (-1, 3):
            raise BigDLUnsupportedError(f"{where}: concatenation on axis {cfg['axis']}")
        return [nn.JoinTable(3, 3)]  # channels: the 3rd of (H, W, C), batch mode
    raise BigDLUnsupportedError(f"{where} has no BigDL translation")


def translate(keras_model: Any, seed: int | None = None) -> Any:
    """A BigDL graph computing what ``keras_model`` (a zoo model, channels-last input)
    computes, holding its current weights; K-class softmax outputs become LogSoftMax."""
    from bigdl.dllib.nn import layer as nn
    from bigdl.dllib.optim import optimizer as nn_optim

    nodes: dict[str, Any] = {}
    inputs, output = [], None
    last = keras_model.layers[-1]
    for layer in keras_model.layers:
        where = f"{keras_model.name}: layer {layer.name} ({type(layer).__name__})"
        if type(layer).__name__ == "InputLayer":
            nodes[layer.name] = nn.Input()
            inputs.append(nodes[layer.name])
            continue
        upstream = [nodes[name] for name in _inputs(layer)]
        node = upstream if len(upstream) > 1 else upstream[0]
        modules = [m for m in _modules(nn, nn_optim, layer, where, layer is last) if m]
        for i, module in enumerate(modules):
            module.set_name(layer.name if i == 0 else f"{layer.name}__{i}")
            node = module(node)
        nodes[layer.name] = output = node
    model = nn.Model(inputs, [output])
    if seed is not None:
        model.set_seed(seed)
    set_state(model, _keras_state(keras_model), keras_model)
    return model


def _weighted_layers(keras_model) -> list:
    return [layer for layer in keras_model.layers if layer.get_weights()]


def _keras_state(keras_model) -> list[np.ndarray]:
    """Keras weights in the layout of :func:`get_state`."""
    state = []
    for layer in _weighted_layers(keras_model):
        for w in layer.get_weights():
            state.append(_to_bigdl(type(layer).__name__, w))
    return state


def _to_bigdl(kind: str, w: np.ndarray) -> np.ndarray:
    if kind == "Conv2D" and w.ndim == 4:
        return w[np.newaxis]  # BigDL NHWC: (groups, kh, kw, in, out)
    if kind == "Dense" and w.ndim == 2:
        return w.T.copy()  # BigDL Linear: (out, in)
    return w


def _from_bigdl(kind: str, w: np.ndarray, target_shape) -> np.ndarray:
    w = np.asarray(w)
    if kind == "Conv2D" and w.ndim == 5:
        w = w[0]
    elif kind == "Dense" and w.ndim == 2:
        w = w.T
    if w.shape != tuple(target_shape):
        raise ValueError(f"BigDL {kind} weight of shape {w.shape} where Keras has "
                         f"{tuple(target_shape)}")
    return np.ascontiguousarray(w)


def _module(model, name: str):
    return model.node(name).element()


def get_state(model, keras_model) -> list[np.ndarray]:
    """Per weighted Keras layer, in order: the BigDL module's parameters, and for a
    BatchNormalization its moving mean and variance after gamma and beta."""
    from bigdl.dllib.utils.common import callBigDlFunc

    state = []
    for layer in _weighted_layers(keras_model):
        module = _module(model, layer.name)
        n = len(layer.get_weights())
        state += [np.asarray(w).copy() for w in module.get_weights()[:n]]
        if type(layer).__name__ == "BatchNormalization":
            for getter in ("getRunningMean", "getRunningStd"):  # "Std" is the variance
                tensor = callBigDlFunc("float", getter, module.value)
                state.append(np.asarray(tensor.to_ndarray(), np.float32).copy())
    return state


def set_state(model, state: list[np.ndarray], keras_model) -> None:
    values = iter(state)
    for layer in _weighted_layers(keras_model):
        module = _module(model, layer.name)
        n = len(layer.get_weights())
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = (next(values) for _ in range(4))
            module.set_weights([gamma, beta])
            module.set_running_mean(np.asarray(mean, np.float32))
            module.set_running_std(np.asarray(var, np.float32))
        else:
            given = [next(values) for _ in range(n)]
            # BigDL's separable convolution holds a bias even with_bias=False (unused)
            given += [np.zeros_like(w) for w in module.get_weights()[n:]]
            module.set_weights(given)


def keras_weights(keras_model: Any, state: list[np.ndarray]) -> list[np.ndarray]:
    """The :func:`get_state` of a translated model as ``keras_model``'s weights."""
    values = iter(state)
    out = []
    for layer in keras_model.layers:
        for target in layer.get_weights():
            w = _from_bigdl(type(layer).__name__, next(values), target.shape)
            out.append(w)
    return out
