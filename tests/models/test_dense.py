"""One description, many engines: the Keras builds match the config's arithmetic."""
from __future__ import annotations

import pytest

from hepspark.models.config import DenseNetConfig, higgs_dnn


def test_higgs_dnn_is_the_paper_network():
    cfg = higgs_dnn()
    assert (cfg.depth, cfg.width, cfg.activation, cfg.dropout) == (3, 300, "tanh", 0.0)
    assert cfg.output_activation == "sigmoid"
    assert cfg.num_parameters(28) == 28 * 300 + 300 + 2 * (300 * 300 + 300) + 301


@pytest.mark.parametrize("cfg", [higgs_dnn(), DenseNetConfig(depth=2, width=17, dropout=0.2,
                                                             activation="relu", init="he_normal")])
@pytest.mark.parametrize("n_inputs", [7, 28])
def test_keras3_and_tf_keras_builds_match_config(cfg, n_inputs):
    import keras
    import tf_keras

    from hepspark.models.keras_dense import build_dense

    for module in (keras, tf_keras):
        model = build_dense(cfg, n_inputs, keras=module, seed=1)
        assert model.count_params() == cfg.num_parameters(n_inputs)
        assert model.layers[-1].get_config()["activation"] == "sigmoid"


def test_gaussian_init_has_the_configured_spread():
    import keras

    from hepspark.models.keras_dense import build_dense

    model = build_dense(DenseNetConfig(init_stddev=0.05), 28, keras=keras, seed=3)
    kernel = model.get_layer("hidden_2").get_weights()[0]
    assert abs(kernel.std() - 0.05) < 0.002 and abs(kernel.mean()) < 0.002


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"depth": 0}, "depth"), ({"width": 0}, "width"), ({"activation": "cube"}, "activation"),
     ({"dropout": 1.0}, "dropout"), ({"init": "zeros"}, "init")],
)
def test_invalid_configs_name_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DenseNetConfig(**kwargs)
