"""Shared fixtures: one real local[2] Spark session and one generated, converted HIGGS
dataset per test run (small, made by the project's own generator)."""
from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TEST_ROWS = 30_000


@pytest.fixture(scope="session")
def spark():
    from hepspark.backends.bigdl_compat import BIGDL_SPARK_CONF, prepare_python_home
    from hepspark.session import get_spark

    # One JVM per process: the session has BigDL's jars from the start, so the BigDL
    # backend's tests can use it as they find it (as under spark-submit --jars).
    prepare_python_home()
    session = get_spark(
        "hepspark-tests",
        master="local[2]",
        conf={"spark.sql.shuffle.partitions": "4", "spark.driver.memory": "2g",
              **BIGDL_SPARK_CONF},
        bigdl=True,
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def higgs_csv(tmp_path_factory) -> str:
    from hepspark.data.higgs_csv import write_higgs_csv

    path = str(tmp_path_factory.mktemp("higgs_csv") / "higgs.csv.gz")
    write_higgs_csv(path, TEST_ROWS, seed=7, progress=lambda _: None)
    return path


@pytest.fixture(scope="session")
def higgs_dataset(spark, higgs_csv, tmp_path_factory) -> str:
    from hepspark.data.higgs_convert import ConvertConfig, convert_higgs

    out = str(tmp_path_factory.mktemp("higgs_ds") / "dataset")
    convert_higgs(
        spark,
        ConvertConfig(input=higgs_csv, output=out, test_fraction=0.2, val_fraction=0.1,
                      row_group_size_mb=1),
        progress=lambda _: None,
    )
    return out


@pytest.fixture()
def sqlite_tracking_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(scope="session")
def scaling_sweep(higgs_dataset, tmp_path_factory):
    """A real scaling sweep in local mode on pinned nodes: Keras baselines on 1 and 2 CPUs,
    BigDL and Horovod on 1 and 2 executors, one optimizer, 2 epochs of a small network;
    each job its own process."""
    from types import SimpleNamespace

    import mlflow

    from hepspark.bench.sweep import SweepConfig, run_sweep
    from hepspark.cpusets import available_cpus

    root = tmp_path_factory.mktemp("scaling")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.MlflowClient(uri).create_experiment("scaling-test", str(root / "artifacts"))
    config = SweepConfig(
        data=higgs_dataset, backends=("bigdl", "horovod"), executors=(1, 2),
        optimizers=("sgd",), epochs=2, batch_sizes=(500,), local=True, experiment="scaling-test",
        tracking_uri=uri, log_dir=str(root / "logs"), train_args=("--width", "16"),
        # isolated nodes: node i on CPU i; the local[N] jobs and Keras baselines pinned so
        worker_cpus=tuple((cpu,) for cpu in available_cpus()[:2]),
    )
    lines: list[str] = []
    outcome = run_sweep(config, progress=lines.append)
    return SimpleNamespace(config=config, outcome=outcome, uri=uri, root=root, lines=lines)


@pytest.fixture(scope="session")
def cnn_scaling_sweep(tmp_path_factory):
    """A real CNN scaling sweep, tiny: the sweep generates 400 jet images itself (no
    --data), basic_cnn with 8 filters, 1 epoch, batch 32 per executor, local mode: the Keras
    baseline and Horovod on 1 and 2 executors (Nadam, the seed protocol), then BigDL on 1
    executor through the CLI (no Nadam there: Adam, the stated fallback)."""
    from types import SimpleNamespace

    import mlflow

    from hepspark.bench.sweep import SweepConfig, run_sweep
    from hepspark.cli import main

    root = tmp_path_factory.mktemp("cnn_scaling")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.MlflowClient(uri).create_experiment("cnn-test", str(root / "artifacts"))
    config = SweepConfig(
        data=None, task="cnn", models=("basic_cnn",), demo_rows=400,
        cache_dir=str(root / "cache"), backends=("horovod",), executors=(1, 2), epochs=1,
        batch_sizes=(32,), local=True, experiment="cnn-test", tracking_uri=uri,
        log_dir=str(root / "logs"), train_args=("--filters", "8"))
    lines: list[str] = []
    outcome = run_sweep(config, progress=lines.append)
    data = str(root / "cache" / "jets-sweep-400")
    code = main(["bench", "scaling", "--task", "cnn", "--data", data, "--models", "basic_cnn",
                 "--backends", "bigdl", "--executors", "1", "--no-baseline", "--local",
                 "--epochs", "1", "--batch-size", "32", "--experiment", "cnn-test",
                 "--tracking-uri", uri, "--log-dir", str(root / "logs"),
                 "--train-arg=--filters", "--train-arg=8"])
    return SimpleNamespace(config=config, outcome=outcome, uri=uri, root=root, lines=lines,
                           data=data, bigdl_code=code)


def make_image_dataset(spark, root, kind: str, rows: int, seed: int,
                       image_size: int | None = None, **convert) -> str:
    """A generated image sample (``kind`` jets or lartpc) converted under ``root/ds``;
    ``convert`` sets ImageConvertConfig fields (LArTPC: val/test fractions 0.2 here)."""
    from hepspark.data.image_files import write_generated
    from hepspark.data.images_convert import ImageConvertConfig, convert_images

    quiet = {"progress": lambda _: None}
    source = str(root / ("jets.h5" if kind == "jets" else "lartpc.npz"))
    size = {} if image_size is None else {"image_size": image_size}
    write_generated(kind, source, rows, seed=seed, **size, **quiet)
    if kind == "lartpc":
        convert = {"val_fraction": 0.2, "test_fraction": 0.2, **convert}
    out = str(root / "ds")
    convert_images(spark, ImageConvertConfig(source, out, kind, **convert), **quiet)
    return out
