"""Every zoo family builds for the jet and the LArTPC image shapes and trains for real."""
from __future__ import annotations

import numpy as np
import pytest

from hepspark.models.cnn import FAMILIES, CnnConfig, build_cnn, resnet_stages, zoo_table

keras = pytest.importorskip("keras")

# Small widths keep the 2-step training fast; the architecture (layers, skips, towers) is
# the full one.
SMALL = {
    "basic_cnn": CnnConfig("basic_cnn", filters=8),
    "basic_cnn_bn_pool": CnnConfig("basic_cnn_bn_pool", filters=8, kernel_size=5),
    "alexnet_like": CnnConfig("alexnet_like", filters=4, dense_units=16),
    "vgg": CnnConfig("vgg", depth=16, filters=4, dense_units=16),
    "resnet": CnnConfig("resnet", depth=29, bottleneck=True, filters=4, version=2),
    "inception": CnnConfig("inception", modules=2, towers=4, filters=8),
    # filters=4 on 64x64 inputs segfaults in TF 2.21's oneDNN CPU kernels while training
    # (fine with TF_ENABLE_ONEDNN_OPTS=0 or filters >= 8): see README, known limitations.
    "xception": CnnConfig("xception", filters=8),
}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("shape,classes", [((33, 33, 2), 1), ((64, 64, 1), 5)])
def test_family_builds_and_trains_two_steps(family, shape, classes):
    keras.utils.set_random_seed(0)
    model = build_cnn(SMALL[family], shape, classes, keras=keras)
    assert model.input_shape == (None, *shape)
    assert model.output_shape == (None, classes)
    rng = np.random.default_rng(0)
    x = rng.exponential(1.0, (8, *shape)).astype(np.float32) * (rng.random((8, *shape)) < 0.05)
    if classes == 1:
        y, loss = rng.integers(0, 2, 8).astype(np.float32), "binary_crossentropy"
    else:
        y, loss = rng.integers(0, classes, 8), "sparse_categorical_crossentropy"
    # Eager: two steps do not repay tracing a graph (20+ s for the deep ResNets).
    model.compile(optimizer=keras.optimizers.Nadam(), loss=loss, run_eagerly=True)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0,
                        sample_weight=np.linspace(0.5, 1.5, 8).astype(np.float32))
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    probs = model.predict(x, verbose=0)
    if classes > 1:
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_seed_architectures_and_parameter_counts():
    # basic CNN: 3 conv layers (2*9*32+32, 32*9*32+32 twice) + flatten(33*33*32) -> 1
    basic = build_cnn(CnnConfig("basic_cnn", filters=32, kernel_size=3), (33, 33, 2), keras=keras)
    expected = (2 * 9 * 32 + 32) + 2 * (32 * 9 * 32 + 32) + (33 * 33 * 32 + 1)
    assert basic.count_params() == expected
    names = {c.name for c in
             [build_cnn(CnnConfig("vgg", depth=d), (33, 33, 2), keras=keras) for d in (10, 16, 21)]}
    assert names == {"vgg10", "vgg16", "vgg21"}
    conv_layers = lambda m: sum(isinstance(layer, keras.layers.Conv2D) for layer in m.layers)  # noqa: E731
    dense_layers = lambda m: sum(isinstance(layer, keras.layers.Dense) for layer in m.layers)  # noqa: E731
    for depth in (10, 16, 21):
        model = build_cnn(CnnConfig("vgg", depth=depth), (33, 33, 2), keras=keras)
        assert conv_layers(model) + dense_layers(model) == depth
    # ResNets: weight layers on the main path = depth (shortcut projections excluded).
    for depth, bottleneck in ((14, False), (14, True), (29, True), (50, True)):
        model = build_cnn(CnnConfig("resnet", depth=depth, bottleneck=bottleneck),
                          (64, 64, 1), 5, keras=keras)
        main = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
                and "shortcut" not in layer.name]
        assert len(main) + dense_layers(model) == depth, (depth, bottleneck)
    assert resnet_stages(50, True) == (3, 4, 6, 3)
    wide = build_cnn(CnnConfig("resnet", depth=29, bottleneck=True, width=4), (64, 64, 1), 5,
                     keras=keras)
    narrow = build_cnn(CnnConfig("resnet", depth=29, bottleneck=True), (64, 64, 1), 5, keras=keras)
    assert wide.name == "resnet29b_w4_v1" and wide.count_params() > 10 * narrow.count_params()
    xception = build_cnn(CnnConfig("xception"), (33, 33, 2), keras=keras)
    assert any(isinstance(layer, keras.layers.SeparableConv2D) for layer in xception.layers)


def test_invalid_configs_are_clear_errors():
    with pytest.raises(ValueError, match="family must be one of"):
        CnnConfig("lenet")
    with pytest.raises(ValueError, match="vgg depth must be one of"):
        CnnConfig("vgg", depth=19)
    with pytest.raises(ValueError, match="29 and 50 need --bottleneck"):
        CnnConfig("resnet", depth=29)
    with pytest.raises(ValueError, match="inception needs"):
        CnnConfig("inception", towers=5)
    with pytest.raises(ValueError, match="num_outputs must be 1"):
        build_cnn(CnnConfig(), (33, 33, 2), 2, keras=keras)


def test_tf_keras_builds_the_same_model():
    tf_keras = pytest.importorskip("tf_keras")
    for config in (CnnConfig("basic_cnn"), CnnConfig("resnet", depth=14, bottleneck=True),
                   CnnConfig("xception", filters=8)):
        ours = build_cnn(config, (33, 33, 2), keras=keras).count_params()
        legacy = build_cnn(config, (33, 33, 2), keras=tf_keras).count_params()
        assert ours == legacy, config


def test_zoo_table_lists_every_family():
    rows = zoo_table((33, 33, 2), 1, [CnnConfig(f) for f in FAMILIES])
    assert [r[0] for r in rows] == list(FAMILIES)
    assert all(params > 0 for _, _, params in rows)
