"""The CNN zoo of the seed studies (jet quenching, seed 000; LArTPC, seed 001), in Keras.

One plain builder per family, readable like ``keras.applications``, each taking the input
shape, the number of outputs (1: sigmoid for a binary label; K: softmax over K classes)
and the Keras module (``keras``, or ``tf_keras`` for Horovod ranks: STACK.md), and
returning an uncompiled functional model:

* :func:`basic_cnn` - 3 convolutions (32 or 64 filters, kernel 3 or 5), seed 000 table 1;
* :func:`basic_cnn_bn_pool` - the same with BatchNorm and a MaxPooling before the
  classifier (seed 000 table 2);
* :func:`alexnet_like` - the seed's tweaked AlexNet: 4 convolutions of growing width,
  pooling, a dense classifier with dropout and L2;
* :func:`vgg` - depth 10, 16 or 21: 3x3 convolutions in blocks of 2-3 (more for 21),
  2x2 pooling, doubling width, 3 dense layers;
* :func:`resnet` - v1 (post-activation) or v2 (pre-activation), basic or bottleneck
  blocks, depth 14, 29, 50 or any depth the block type allows, width multiplier
  (MicroBooNE's ResNet14b/29b/50b and the 4x wider ResNet29b_w4);
* :func:`inception` - 1 or 2 inception modules of 3 or 4 towers with 1x1 bottlenecks;
* :func:`xception` - depthwise-separable convolutions with residual connections.

Widths default to CPU-friendly sizes (``filters``); ``filters=64, dense_units=4096``
gives the classic VGG sizes (the seed's VGG21 had 53M parameters).
:class:`CnnConfig` is the engine-neutral description that training runs log and
:func:`build_cnn` turns into a model.

>>> import keras
>>> model = build_cnn(CnnConfig("resnet", depth=14, bottleneck=True), (64, 64, 1), 5, keras)
>>> model.name, model.output_shape
('resnet14b_v1', (None, 5))
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

FAMILIES = ("basic_cnn", "basic_cnn_bn_pool", "alexnet_like", "vgg", "resnet", "inception",
            "xception")
VGG_BLOCKS = {10: (2, 2, 3), 16: (2, 2, 3, 3, 3), 21: (2, 2, 4, 5, 5)}
RESNET50_STAGES = (3, 4, 6, 3)


def _keras(keras: ModuleType | None) -> ModuleType:
    if keras is None:
        import keras  # noqa: PLC0415 - the heavy import happens only when building
    return keras


def _head(keras, x, num_outputs: int, name: str = "output"):
    activation = "sigmoid" if num_outputs == 1 else "softmax"
    return keras.layers.Dense(num_outputs, activation=activation, name=name)(x)


def _check_common(input_shape, num_outputs) -> None:
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape}")
    if num_outputs < 1 or num_outputs == 2:
        raise ValueError(
            f"num_outputs must be 1 (sigmoid, binary) or K >= 3 (softmax), got {num_outputs}"
        )


# ------------------------------------------------------------------------- basic CNNs
def basic_cnn(input_shape, num_outputs: int = 1, filters: int = 32, kernel_size: int = 3,
              keras: ModuleType | None = None) -> Any:
    """Three ReLU convolutions of ``filters`` (32 or 64) with ``kernel_size`` (3 or 5),
    flattened into the output layer (seed 000, section 3.1)."""
    keras = _keras(keras)
    _check_common(input_shape, num_outputs)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for i in range(3):
        x = keras.layers.Conv2D(filters, kernel_size, padding="same", activation="relu",
                                name=f"conv{i + 1}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, _head(keras, x, num_outputs),
                       name=f"basic_cnn_f{filters}_k{kernel_size}")


def basic_cnn_bn_pool(input_shape, num_outputs: int = 1, filters: int = 32,
                      kernel_size: int = 3, keras: ModuleType | None = None) -> Any:
    """:func:`basic_cnn` with BatchNorm after each convolution and a 2x2 MaxPooling before
    the classifier (seed 000, table 2)."""
    keras = _keras(keras)
    _check_common(input_shape, num_outputs)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for i in range(3):
        x = keras.layers.Conv2D(filters, kernel_size, padding="same", use_bias=False,
                                name=f"conv{i + 1}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i + 1}")(x)
        x = keras.layers.Activation("relu", name=f"relu{i + 1}")(x)
    x = keras.layers.MaxPooling2D(2, padding="same", name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, _head(keras, x, num_outputs),
                       name=f"basic_cnn_bn_pool_f{filters}_k{kernel_size}")


def alexnet_like(input_shape, num_outputs: int = 1, filters: int = 32, dense_units: int = 256,
                 dropout: float = 0.5, l2: float = 1e-4, keras: ModuleType | None = None) -> Any:
    """The seed's tweaked AlexNet: convolutions of ``filters`` x (1, 2, 4, 4) (5x5 first,
    then 3x3), 2x2 pooling after the 1st, 2nd and 4th, then Dense(``dense_units``) twice
    with dropout, L2 on every kernel."""
    keras = _keras(keras)
    _check_common(input_shape, num_outputs)
    reg = keras.regularizers.l2(l2) if l2 else None
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for i, (mult, kernel, pool) in enumerate(((1, 5, True), (2, 3, True), (4, 3, False),
                                              (4, 3, True))):
        x = keras.layers.Conv2D(filters * mult, kernel, padding="same", activation="relu",
                                kernel_regularizer=reg, name=f"conv{i + 1}")(x)
        if pool:
            x = keras.layers.MaxPooling2D(2, padding="same", name=f"pool{i + 1}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i in range(2):
        x = keras.layers.Dense(dense_units, activation="relu", kernel_regularizer=reg,
                               name=f"fc{i + 1}")(x)
        x = keras.layers.Dropout(dropout, name=f"dropout{i + 1}")(x)
    return keras.Model(inputs, _head(keras, x, num_outputs), name="alexnet_like")


# -------------------------------------------------------------------------------- VGG
def vgg(input_shape, num_outputs: int = 1, depth: int = 16, filters: int = 16,
        dense_units: int = 256, dropout: float = 0.5, keras: ModuleType | None = None) -> Any:
    """VGG-``depth`` (10, 16 or 21 weight layers): blocks of 3x3 ReLU convolutions
    (``VGG_BLOCKS``), each block followed by 2x2 max pooling and doubling the width (from
    ``filters``, capped at 8x), then two Dense(``dense_units``) layers with dropout and the
    output (3 dense layers, as in VGG16's 13 + 3)."""
    keras = _keras(keras)
    _check_common(input_shape, num_outputs)
    if depth not in VGG_BLOCKS:
        raise ValueError(f"vgg depth must be one of {sorted(VGG_BLOCKS)}, got {depth}")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for b, convs in enumerate(VGG_BLOCKS[depth]):
        width = filters * min(2**b, 8)
        for c in range(convs):
            x = keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                                    name=f"block{b + 1}_conv{c + 1}")(x)
        # "same" pooling: a 33x33 image survives five halvings (33, 17, 9, 5, 3, 2).
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"block{b + 1}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i in range(2):
        x = keras.layers.Dense(dense_units, activation="relu", name=f"fc{i + 1}")(x)
        x = keras.layers.Dropout(dropout, name=f"dropout{i + 1}")(x)
    return keras.Model(inputs, _head(keras, x, num_outputs), name=f"vgg{depth}")


# ----------------------------------------------------------------------------- ResNet
def resnet_stages(depth: int, bottleneck: bool) -> tuple[int, ...]:
    """Residual blocks per stage for a ResNet of ``depth`` weight layers: depth =
    (2 or 3 convolutions per block) x blocks + stem + output. 50 with bottlenecks is the
    ImageNet ResNet-50 layout (3, 4, 6, 3); otherwise 3 stages, blocks spread evenly."""
    per_block = 3 if bottleneck else 2
    blocks, rest = divmod(depth - 2, per_block)
    if rest or blocks < 3:
        valid = [per_block * b + 2 for b in range(3, 9)]
        kind = "bottleneck" if bottleneck else "basic"
        raise ValueError(
            f"resnet depth {depth} does not fit {kind} blocks ({per_block} layers each + 2); "
            f"valid depths include {valid}" + ("" if bottleneck else "; 29 and 50 need "
                                                                    "--bottleneck")
        )
    if bottleneck and blocks == sum(RESNET50_STAGES):
        return RESNET50_STAGES
    return tuple(blocks // 3 + (1 if i < blocks % 3 else 0) for i in range(3))


def resnet(input_shape, num_outputs: int = 1, depth: int = 14, version: int = 1,
           bottleneck: bool = False, width: int = 1, filters: int = 16,
           keras: ModuleType | None = None) -> Any:
    """ResNet v1 (conv-BN-ReLU, ReLU after the addition) or v2 (BN-ReLU-conv, identity
    after the addition), with basic (two 3x3) or bottleneck (1x1, 3x3, 1x1 x4) blocks.
    Stage ``i`` has ``filters * width * 2**i`` channels and starts with stride 2 (after the
    first); global average pooling feeds the output."""
    keras = _keras(keras)
    _check_common(input_shape, num_outputs)
    if version not in (1, 2):
        raise ValueError(f"resnet version must be 1 or 2, got {version}")
    if width < 1:
        raise ValueError(f"resnet width must be >= 1, got {width}")
    stages = resnet_stages(depth, bottleneck)
    layers = keras.layers
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Conv2D(filters * width, 3, padding="same", use_bias=False, name="stem_conv")(
        inputs)
    if version == 1:
        x = layers.Activation("relu", name="stem_relu")(
            layers.BatchNormalization(name="stem_bn")(x))

    def conv_bn(y, channels, kernel, strides, name, relu=True):
        """v1 order: conv, BN, (ReLU). v2 order: BN, ReLU, conv."""
        if version == 2:
            y = layers.BatchNormalization(name=f"{name}_bn")(y)
            y = layers.Activation("relu", name=f"{name}_relu")(y)
            return layers.Conv2D(channels, kernel, strides=strides, padding="same",
                                 use_bias=False, name=f"{name}_conv")(y)
        y = layers.Conv2D(channels, kernel, strides=strides, padding="same", use_bias=False,
                          name=f"{name}_conv")(y)
        y = layers.BatchNormalization(name=f"{name}_bn")(y)
        return layers.Activation("relu", name=f"{name}_relu")(y) if relu else y

    for s, blocks in enumerate(stages):
        channels = filters * width * 2**s
        out_channels = channels * 4 if bottleneck else channels
        for b in range(blocks):
            name = f"stage{s + 1}_block{b + 1}"
            strides = 2 if (b == 0 and s > 0) else 1
            if bottleneck:
                y = conv_bn(x, channels, 1, strides, f"{name}_1")
                y = conv_bn(y, channels, 3, 1, f"{name}_2")
                y = conv_bn(y, out_channels, 1, 1, f"{name}_3", relu=False)
            else:
                y = conv_bn(x, channels, 3, strides, f"{name}_1")
                y = conv_bn(y, channels, 3, 1, f"{name}_2", relu=False)
            shortcut = x
            if strides != 1 or x.shape[-1] != out_channels:
                shortcut = layers.Conv2D(out_channels, 1, strides=strides, use_bias=False,
                                         name=f"{name}_shortcut")(x)
                if version == 1:
                    shortcut = layers.BatchNormalization(name=f"{name}_shortcut_bn")(shortcut)
            x = layers.Add(name=f"{name}_add")([shortcut, y])
            if version == 1:
                x = layers.Activation("relu", name=f"{name}_out")(x)
    if version == 2:
        x = layers.Activation("relu", name="final_relu")(
            layers.BatchNormalization(name="final_bn")(x))
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    suffix = ("b" if bottleneck else "") + (f"_w{width}" if width > 1 else "")
    return keras.Model(inputs, _head(keras, x, num_outputs),
                       name=f"resnet{depth}{suffix}_v{version}")


# -------------------------------------------------------------------------- Inception
def inception(input_shape, num_outputs: int = 1, modules: int = 2, towers: int = 4,
              filters: int = 32, dropout: float = 0.3, keras: ModuleType | None = None) -> Any:
    """A 3x3 convolution stem, then ``modules`` inception modules (2x2 pooling between
    them) of ``towers`` parallel towers: 1x1; 1x1 -> 3x3; 1x1 -> 5x5 (the 1x1 bottleneck
    halves the width); and with 4 towers 3x3 max pooling -> 1x1. Towers are concatenated;
    global average pooling and dropout feed the output."""
    keras = _keras(keras)
    _check_common(input_shape, num_outputs)
    if modules not in (1, 2):
        raise ValueError(f"inception modules must be 1 or 2, got {modules}")
    if towers not in (3, 4):
        raise ValueError(f"inception towers must be 3 or 4, got {towers}")
    layers = keras.layers

    def conv(y, channels, kernel, name):
        return layers.Conv2D(channels, kernel, padding="same", activation="relu", name=name)(y)

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = conv(inputs, filters, 3, "stem_conv")
    for m in range(modules):
        width = filters * 2**m
        name = f"inception{m + 1}"
        branches = [
            conv(x, width, 1, f"{name}_1x1"),
            conv(conv(x, width // 2, 1, f"{name}_3x3_reduce"), width, 3, f"{name}_3x3"),
            conv(conv(x, width // 2, 1, f"{name}_5x5_reduce"), width // 2, 5, f"{name}_5x5"),
        ]
        if towers == 4:
            pooled = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
            branches.append(conv(pooled, width // 2, 1, f"{name}_pool_proj"))
        x = layers.Concatenate(name=f"{name}_concat")(branches)
        if m + 1 < modules:
            x = layers.MaxPooling2D(2, padding="same", name=f"{name}_downsample")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, _head(keras, x, num_outputs),
                       name=f"inception_m{modules}_t{towers}")


# --------------------------------------------------------------------------- Xception
def xception(input_shape, num_outputs: int = 1, filters: int = 32, middle_blocks: int = 2,
             dropout: float = 0.3, keras: ModuleType | None = None) -> Any:
    """A small Xception: a two-convolution entry, two downsampling blocks of separable
    convolutions with 1x1 strided shortcuts, ``middle_blocks`` identity-residual blocks of
    three separable convolutions, and a separable exit convolution."""
    keras = _keras(keras)
    _check_common(input_shape, num_outputs)
    layers = keras.layers

    def sep_bn(y, channels, name, relu_first=True):
        if relu_first:
            y = layers.Activation("relu", name=f"{name}_relu")(y)
        y = layers.SeparableConv2D(channels, 3, padding="same", use_bias=False,
                                   name=f"{name}_sepconv")(y)
        return layers.BatchNormalization(name=f"{name}_bn")(y)

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name="entry_conv1")(inputs)
    x = layers.Activation("relu", name="entry_relu1")(
        layers.BatchNormalization(name="entry_bn1")(x))
    x = layers.Conv2D(filters * 2, 3, padding="same", use_bias=False, name="entry_conv2")(x)
    x = layers.Activation("relu", name="entry_relu2")(
        layers.BatchNormalization(name="entry_bn2")(x))
    for b, channels in enumerate((filters * 4, filters * 8)):
        name = f"entry_block{b + 1}"
        shortcut = layers.Conv2D(channels, 1, strides=2, padding="same", use_bias=False,
                                 name=f"{name}_shortcut")(x)
        shortcut = layers.BatchNormalization(name=f"{name}_shortcut_bn")(shortcut)
        y = sep_bn(x, channels, f"{name}_1", relu_first=b > 0)
        y = sep_bn(y, channels, f"{name}_2")
        y = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool")(y)
        x = layers.Add(name=f"{name}_add")([shortcut, y])
    for b in range(middle_blocks):
        name = f"middle_block{b + 1}"
        y = x
        for c in range(3):
            y = sep_bn(y, filters * 8, f"{name}_{c + 1}")
        x = layers.Add(name=f"{name}_add")([x, y])
    x = sep_bn(x, filters * 16, "exit_1")
    x = layers.Activation("relu", name="exit_relu")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, _head(keras, x, num_outputs), name="xception")


# ------------------------------------------------------------------ the config object
@dataclass(frozen=True)
class CnnConfig:
    """Engine-neutral description of a zoo model; fields a family does not use are
    ignored by it (and shown as such by :meth:`describe`)."""

    family: str = "basic_cnn"
    filters: int | None = None  # None: the family's default
    kernel_size: int = 3  # basic CNNs
    depth: int | None = None  # vgg: 10/16/21 (16); resnet: 14/29/50/... (14)
    version: int = 1  # resnet
    bottleneck: bool = False  # resnet
    width: int = 1  # resnet width multiplier
    modules: int = 2  # inception
    towers: int = 4  # inception
    dense_units: int | None = None  # alexnet_like, vgg
    num_outputs: int = 1

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"model family must be one of {FAMILIES}, got {self.family!r}")
        if self.filters is not None and self.filters < 1:
            raise ValueError(f"filters must be >= 1, got {self.filters}")
        if self.kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {self.kernel_size}")
        if self.family == "vgg" and self.depth is not None and self.depth not in VGG_BLOCKS:
            raise ValueError(f"vgg depth must be one of {sorted(VGG_BLOCKS)}, got {self.depth}")
        if self.family == "resnet":
            resnet_stages(self.depth or 14, self.bottleneck)
            if self.version not in (1, 2):
                raise ValueError(f"resnet version must be 1 or 2, got {self.version}")
        if self.family == "inception" and (self.modules not in (1, 2) or
                                           self.towers not in (3, 4)):
            raise ValueError("inception needs modules in (1, 2) and towers in (3, 4), got "
                             f"{self.modules} and {self.towers}")

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the family's builder (defaults where None)."""
        f = self.family
        args: dict[str, Any] = {}
        if self.filters is not None:
            args["filters"] = self.filters
        if f in ("basic_cnn", "basic_cnn_bn_pool"):
            args["kernel_size"] = self.kernel_size
        if f in ("alexnet_like", "vgg") and self.dense_units is not None:
            args["dense_units"] = self.dense_units
        if f == "vgg":
            args["depth"] = self.depth or 16
        if f == "resnet":
            args.update(depth=self.depth or 14, version=self.version,
                        bottleneck=self.bottleneck, width=self.width)
        if f == "inception":
            args.update(modules=self.modules, towers=self.towers)
        return args

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.kwargs().items()]
        return f"{self.family}({', '.join(parts)})"

    def to_dict(self) -> dict:
        return asdict(self)


BUILDERS = {
    "basic_cnn": basic_cnn,
    "basic_cnn_bn_pool": basic_cnn_bn_pool,
    "alexnet_like": alexnet_like,
    "vgg": vgg,
    "resnet": resnet,
    "inception": inception,
    "xception": xception,
}


def build_cnn(config: CnnConfig, input_shape, num_outputs: int | None = None,
              keras: ModuleType | None = None) -> Any:
    """The uncompiled Keras model of ``config`` for images of ``input_shape``;
    ``num_outputs`` (default ``config.num_outputs``): 1 = sigmoid, K >= 3 = softmax."""
    outputs = config.num_outputs if num_outputs is None else num_outputs
    return BUILDERS[config.family](tuple(input_shape), outputs, keras=keras, **config.kwargs())


def zoo_table(input_shape, num_outputs: int = 1,
              configs: list[CnnConfig] | None = None) -> list[tuple[str, str, int]]:
    """(family, model name, parameters) for the standard zoo members (every family, VGG at
    each depth, ResNet 14/29b/50b and the 4x wide 29b, Inception 1-2 x 3-4)."""
    import keras

    if configs is None:
        configs = [
            CnnConfig("basic_cnn", filters=32, kernel_size=3),
            CnnConfig("basic_cnn", filters=64, kernel_size=5),
            CnnConfig("basic_cnn_bn_pool", filters=64, kernel_size=3),
            CnnConfig("alexnet_like"),
            *(CnnConfig("vgg", depth=d) for d in sorted(VGG_BLOCKS)),
            CnnConfig("resnet", depth=14),
            CnnConfig("resnet", depth=14, bottleneck=True),
            CnnConfig("resnet", depth=29, bottleneck=True),
            CnnConfig("resnet", depth=29, bottleneck=True, width=4),
            CnnConfig("resnet", depth=50, bottleneck=True),
            CnnConfig("resnet", depth=29, bottleneck=True, version=2),
            *(CnnConfig("inception", modules=m, towers=t) for m in (1, 2) for t in (3, 4)),
            CnnConfig("xception"),
        ]
    rows = []
    for config in configs:
        model = build_cnn(config, input_shape, num_outputs, keras=keras)
        rows.append((config.family, model.name, int(model.count_params())))
        del model
    keras.backend.clear_session()
    return rows
