"""The scaling sweep over the CNN zoo: its plan (models, protocol optimizers, engines
without Nadam), and a real tiny sweep over generated jets into a sqlite MLflow."""
import os

import mlflow
import pytest

from hepspark.bench.sweep import (
    Combination,
    SweepConfig,
    job_command,
    plan,
    skipped_pairs,
)
from hepspark.bench.sweep_tasks import cnn_train_flags
from hepspark.models.names import parse_model_name
from hepspark.tags import FAMILY_TAG, KEY_TAG, MODEL_TAG, NODES_TAG, TASK_TAG, TRAIN_CNN_TASK


def cnn(**overrides) -> SweepConfig:
    values = dict(data="/data/jets", task="cnn", models=("basic_cnn", "vgg16"),
                  backends=("bigdl", "horovod"), executors=(1, 2), local=True)
    return SweepConfig(**{**values, **overrides})


def test_cnn_plan_runs_every_model_with_the_protocol_optimizer_per_engine():
    labels = [c.label for c in plan(cnn())]
    assert labels == [
        "keras-basic_cnn-nadam-x1-b128", "keras-vgg16-nadam-x1-b128",
        "bigdl-basic_cnn-adam-x1-b128", "horovod-basic_cnn-nadam-x1-b128",
        "bigdl-vgg16-adam-x1-b128", "horovod-vgg16-nadam-x1-b128",
        "bigdl-basic_cnn-adam-x2-b128", "horovod-basic_cnn-nadam-x2-b128",
        "bigdl-vgg16-adam-x2-b128", "horovod-vgg16-nadam-x2-b128"]
    # BigDL has no Nadam: the fallback is stated, never silent
    assert skipped_pairs(cnn()) == [
        "bigdl has no nadam (the seed protocol of the CNN studies): runs adam, Nadam "
        "without Nesterov momentum, instead"]


def test_an_optimizer_asked_for_that_an_engine_lacks_is_skipped_with_the_reason():
    config = cnn(optimizers=("nadam", "sgd"), models=("resnet",))
    assert [c.label for c in plan(config) if c.backend == "bigdl"] == [
        "bigdl-resnet-sgd-x1-b128", "bigdl-resnet-sgd-x2-b128"]
    assert skipped_pairs(config) == [
        "bigdl has no optimizer 'nadam': skipped (it has adadelta, adagrad, adam, adamax, "
        "rmsprop, sgd)"]
    # HIGGS: the same rule (the job used to start and fail)
    higgs = SweepConfig(data="/data/higgs", backends=("bigdl",), optimizers=("nadam",),
                        executors=(1,), baseline=False, local=True)
    assert plan(higgs) == [] and "bigdl has no optimizer 'nadam'" in skipped_pairs(higgs)[0]


def test_cnn_jobs_run_train_cnn_with_the_model_flags():
    config = cnn(local=False)
    combo = Combination("horovod", "nadam", 2, 128, "resnet29b_v2")
    argv = job_command(config, combo, "spark://127.0.0.1:7077", {"k": "v"}, "sqlite:///x.db")
    assert argv[argv.index("--executors") + 1] == "2"
    assert any(a.endswith("spark_jobs/train_cnn.py") for a in argv)
    i = argv.index("--model")
    assert argv[i:i + 6] == ["--model", "resnet", "--depth", "29", "--bottleneck", "--version"]
    assert "--features" not in argv
    keras = job_command(config, Combination("keras", "nadam", 1, 128, "vgg16"), None, {},
                        "sqlite:///x.db")
    assert keras[3:5] == ["train", "cnn"] and ["--depth", "16"] == keras[
        keras.index("--depth"):keras.index("--depth") + 2]
    # a model is part of the measurement's key; HIGGS keys keep their form
    assert combo.key(config).startswith("horovod-resnet29b_v2-nadam-x2|")
    assert Combination("bigdl", "adam", 2).key(SweepConfig(data="/d")).startswith(
        "bigdl-adam-x2|cores1|batch2000|epochs3|all|/d|")


@pytest.mark.parametrize("name, family, extra", [
    ("basic_cnn", "basic_cnn", {}),
    ("basic_cnn_bn_pool", "basic_cnn_bn_pool", {}),
    ("VGG10", "vgg", {"depth": 10}),
    ("resnet", "resnet", {"depth": None}),
    ("resnet50b", "resnet", {"depth": 50, "bottleneck": True}),
    ("xception", "xception", {}),
])
def test_model_names(name, family, extra):
    config = parse_model_name(name)
    assert config.family == family
    for key, value in extra.items():
        assert getattr(config, key) == value


@pytest.mark.parametrize("bad", ["vgg17", "vggnet", "alexnet", "xception2", "vgg16b",
                                 "resnet29"])
def test_bad_model_names_are_refused_naming_them(bad):
    with pytest.raises(ValueError, match=bad):
        cnn(models=(bad,))


@pytest.mark.parametrize("bad, match", [
    (dict(models=()), "needs models"),
    (dict(dataset="mnist"), "jets"),
    (dict(task="higgs", dataset="jets"), "--task cnn"),
    (dict(task="bert"), "task"),
    (dict(demo_rows=10), "demo_rows"),
])
def test_bad_cnn_sweep_settings_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        cnn(**bad)


def test_cnn_train_flags_of_plain_families():
    assert cnn_train_flags("inception") == ["--model", "inception"]
    assert cnn_train_flags("vgg") == ["--model", "vgg"]


def test_cnn_sweep_generates_jets_and_tags_runs_with_the_model_family(cnn_scaling_sweep):
    sweep = cnn_scaling_sweep
    assert [r.status for r in sweep.outcome.results] == ["measured"] * 3, sweep.outcome.format()
    assert sweep.bigdl_code == 0
    assert os.path.exists(os.path.join(sweep.data, "hepspark_dataset.json"))
    assert any("generating 400 jets images" in line for line in sweep.lines)
    client = mlflow.MlflowClient(sweep.uri)
    exp = client.get_experiment_by_name("cnn-test")
    runs = {r.data.tags[KEY_TAG].split("|")[0]: r for r in client.search_runs([exp.experiment_id])}
    assert sorted(runs) == ["bigdl-basic_cnn-adam-x1", "horovod-basic_cnn-nadam-x1",
                            "horovod-basic_cnn-nadam-x2", "keras-basic_cnn-nadam-x1"]
    for label, run in runs.items():
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        assert run.info.status == "FINISHED"
        assert tags[TASK_TAG] == TRAIN_CNN_TASK
        assert (tags[MODEL_TAG], tags[FAMILY_TAG]) == ("basic_cnn", "basic_cnn")
        assert tags[NODES_TAG] == label[-1]
        assert params["model_family"] == "basic_cnn" and params["model_filters"] == "8"
        assert params["dataset_kind"] == "jets"
        assert metrics["rows_per_s"] > 0 and metrics["epoch_wall_time_s"] > 0
        assert "target_reached" in metrics and params["target_metric"] == "val_auc"
    assert runs["horovod-basic_cnn-nadam-x2"].data.params["num_executors"] == "2"
    assert runs["horovod-basic_cnn-nadam-x2"].data.params["batch_size"] == "32"  # per rank
    assert runs["bigdl-basic_cnn-adam-x1"].data.params["optimizer"] == "adam"


def test_a_given_dataset_sets_the_protocol_batch_and_must_be_the_kind_asked_for(
        spark, tmp_path):
    from conftest import make_image_dataset

    from hepspark.bench.sweep import with_dataset

    lartpc = make_image_dataset(spark, tmp_path, "lartpc", 150, seed=3, image_size=16)
    config = with_dataset(cnn(data=lartpc), progress=lambda _: None)
    assert config.batch_sizes == (20,)  # seed 001's batch, from the training defaults
    assert with_dataset(cnn(data=lartpc, batch_sizes=(8,))).batch_sizes == (8,)
    with pytest.raises(ValueError, match="holds lartpc images, not jets"):
        with_dataset(cnn(data=lartpc, dataset="jets"))
    with pytest.raises(FileNotFoundError, match="does not exist: convert images"):
        with_dataset(cnn(data=str(tmp_path / "nothing")))
