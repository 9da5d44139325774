"""Engines declare what they support; a run config is checked against its engine before any
work, without importing TensorFlow, BigDL, Horovod or Spark."""
from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from hepspark.backends import BACKENDS, CAPABILITIES, check_supported
from hepspark.backends.horovod_remote import LeadResult, RankResult, RankSpec
from hepspark.backends.optimizers import OPTIMIZERS
from hepspark.config import OPTIMIZERS as CONFIG_OPTIMIZERS
from hepspark.config import EngineSettings, TrainConfig
from hepspark.models.cnn import FAMILIES, CnnConfig
from hepspark.models.config import ACTIVATIONS, INITIALIZERS, DenseNetConfig
from hepspark.records import EpochRecord


def test_every_engine_declares_its_capabilities():
    assert set(CAPABILITIES) == set(BACKENDS)
    assert set(OPTIMIZERS) == set(CONFIG_OPTIMIZERS)  # one table, every configurable name
    for can in CAPABILITIES.values():
        assert set(can.optimizers) <= set(OPTIMIZERS)
        assert set(can.activations) <= set(ACTIVATIONS)
        assert set(can.initializers) <= set(INITIALIZERS)
        assert set(can.model_families) == {"dense", *FAMILIES}


def test_keras_and_horovod_take_every_config():
    for backend in ("keras", "horovod"):
        for optimizer in CONFIG_OPTIMIZERS:
            check_supported(TrainConfig(data="d", backend=backend, optimizer=optimizer,
                                        learning_rate=0.01))
        for activation in ACTIVATIONS:
            check_supported(TrainConfig(data="d", backend=backend,
                                        model=DenseNetConfig(activation=activation)))
        for init in INITIALIZERS:
            check_supported(TrainConfig(data="d", backend=backend,
                                        model=DenseNetConfig(init=init)))
        for family in FAMILIES:
            check_supported(TrainConfig(data="d", backend=backend, optimizer="nadam",
                                        model=CnnConfig(family)))


def test_bigdl_refuses_what_it_cannot_do_naming_the_allowed_values():
    # `train cnn --backend bigdl` with the CNN default optimizer, Nadam
    cnn = TrainConfig(data="d", backend="bigdl", optimizer="nadam", model=CnnConfig("vgg"))
    with pytest.raises(ValueError, match=r"^backend bigdl has no optimizer 'nadam'; choose one "
                                         r"of adadelta, adagrad, adam, adamax, rmsprop, sgd$"):
        check_supported(cnn)
    check_supported(cnn.with_(optimizer="adam"))
    with pytest.raises(ValueError, match=r"^backend bigdl has no activation 'gelu'; choose "
                                         r"one of elu, relu, sigmoid, tanh$"):
        check_supported(TrainConfig(data="d", backend="bigdl",
                                    model=DenseNetConfig(activation="gelu")))
    with pytest.raises(ValueError, match=r"^backend bigdl has no init 'he_uniform'; choose "
                                         r"one of gaussian, glorot_uniform, he_normal$"):
        check_supported(TrainConfig(data="d", backend="bigdl",
                                    model=DenseNetConfig(init="he_uniform")))
    with pytest.raises(ValueError, match="adadelta optimizer takes no learning rate"):
        check_supported(TrainConfig(data="d", backend="bigdl", optimizer="adadelta",
                                    learning_rate=0.1))
    check_supported(TrainConfig(data="d", backend="bigdl", optimizer="adadelta"))
    assert not CAPABILITIES["bigdl"].sample_weights and CAPABILITIES["keras"].sample_weights


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend must be one of"):
        check_supported(TrainConfig(data="d", backend="mxnet"))


def test_the_torch_engine_is_opt_in_and_batches_per_rank():
    torch = CAPABILITIES["torch"]
    assert torch.requires[0] == "torch" and "make install-torch" in torch.requires[2]
    assert torch.batch_per_rank and CAPABILITIES["horovod"].batch_per_rank
    assert not CAPABILITIES["bigdl"].batch_per_rank and not CAPABILITIES["keras"].requires


def test_the_check_imports_no_engine_and_starts_no_spark():
    code = (
        "import sys\n"
        "from hepspark.backends import check_supported\n"
        "from hepspark.config import TrainConfig\n"
        "from hepspark.models.cnn import CnnConfig\n"
        "try:\n"
        "    check_supported(TrainConfig(data='d', backend='bigdl', optimizer='nadam',\n"
        "                                model=CnnConfig('vgg')))\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
        "for backend in ('keras', 'horovod', 'bigdl'):\n"
        "    check_supported(TrainConfig(data='d', backend=backend))\n"
        "heavy = ('tensorflow', 'keras', 'tf_keras', 'bigdl', 'horovod', 'pyspark', 'py4j',\n"
        "         'petastorm', 'mlflow', 'torch')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0].startswith("backend bigdl has no optimizer 'nadam'")
    assert out[1] == "[]", out


def test_rank_spec_and_result_are_frozen_plain_data_that_pickle():
    record = EpochRecord(epoch=1, epoch_wall_time_s=2.0, rows=10, train_loss=0.5, val_auc=0.7)
    spec = RankSpec(config=TrainConfig(data="d", backend="horovod"), data="file:///d",
                    steps=3, threads=1, heartbeat=("127.0.0.1", 4000),
                    checkpoint={"weights.npz": b"\x00"}, resumed_records=(record,),
                    resumed_epoch=1, fail_rank_at_epoch=(1, 2))
    result = RankResult(rank=0, digest="ab", peak_rss_mb=1.0, python="/py",
                        lead=LeadResult(records=(record,), weights=(), stopped_early=False,
                                        learning_rate=1e-3, parameters=5, selected_epoch=None))
    for value in (spec, result):
        assert pickle.loads(pickle.dumps(value)) == value
    with pytest.raises(AttributeError):
        spec.steps = 4  # frozen


def test_engine_settings_are_read_once_from_the_environment():
    settings = EngineSettings.from_environ({"HEPSPARK_HOROVOD_THREADS": "2",
                                            "HEPSPARK_FAIL_RANK_AT_EPOCH": "1:3",
                                            "OTHER": "x"})
    assert settings == EngineSettings(horovod_threads=2, fail_rank_at_epoch=(1, 3))
    assert settings.to_params() == {"horovod_threads": 2, "fail_rank_at_epoch": "1:3",
                                    "stall_rank_at_epoch": None}
    assert EngineSettings.from_environ({}) == EngineSettings()
    # the driver heap: read here for every Spark session, not in hepspark.session
    assert EngineSettings.from_environ({"HEPSPARK_DRIVER_MEMORY": "512m"}).driver_memory == "512m"
    assert EngineSettings.driver_memory_from_environ({"HEPSPARK_DRIVER_MEMORY": ""}) is None
    with pytest.raises(ValueError, match="HEPSPARK_STALL_RANK_AT_EPOCH must be RANK:EPOCH"):
        EngineSettings.from_environ({"HEPSPARK_STALL_RANK_AT_EPOCH": "2"})
    with pytest.raises(ValueError, match="HEPSPARK_HOROVOD_THREADS must be an integer"):
        EngineSettings.from_environ({"HEPSPARK_HOROVOD_THREADS": "many"})
