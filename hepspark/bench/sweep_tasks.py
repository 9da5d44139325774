"""What the scaling sweep needs to know per kind of task: the HIGGS DNN or the CNN zoo on
image datasets (seed 000 jets, seed 001 LArTPC). One table, so a new kind is a row, not a
second sweep.

Per task: the training command and ``spark_jobs`` script its jobs run, the seed protocol's
optimizers and batch size, the dataset a sweep without ``--data`` generates (once, into the
cache directory), and how each engine's optimizers are chosen: an optimizer the engine does
not have (:mod:`hepspark.backends.capabilities`) is never run; it is either replaced by the
protocol's stated fallback (only when the optimizers are the protocol's default) or
skipped, both with the reason, which the sweep prints and reports.

>>> TASKS["cnn"].optimizers, TASKS["cnn"].batch_size
(('nadam',), 128)
>>> engine_optimizers("cnn", "bigdl", None)
(('adam',), ['bigdl has no nadam (the seed protocol of the CNN studies): runs adam, Nadam without Nesterov momentum, instead'])
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from hepspark.backends.capabilities import CAPABILITIES
from hepspark.config import EngineSettings, train_defaults
from hepspark.models.names import parse_model_name

IMAGE_DATASETS = ("jets", "lartpc")
IMAGE_SWEEP_ROWS = 10_000  # images a sweep without --data generates
# Nadam is Adam with Nesterov momentum: the nearest optimizer BigDL 2.4.0 has
PROTOCOL_FALLBACK = {"nadam": ("adam", "Nadam without Nesterov momentum")}


@dataclass(frozen=True)
class SweepTask:
    name: str
    command: str  # the subcommand of 'hepspark train'
    script: str  # the spark_jobs/ entry point of the same command
    optimizers: tuple[str, ...]  # the seed study's protocol
    batch_size: int  # per executor, until the dataset says (LArTPC: 20)
    study: str  # how the reasons name the protocol


TASKS = {
    # seed 004 compared these five at their default rates
    "higgs": SweepTask("higgs", "higgs", "train_higgs.py",
                       ("sgd", "adam", "adamax", "adadelta", "adagrad"),
                       train_defaults("higgs")["batch_size"], "the HIGGS study"),
    # seed 000: Nadam, batch 128 (the training defaults of image data)
    "cnn": SweepTask("cnn", "cnn", "train_cnn.py", (train_defaults("jets")["optimizer"],),
                     train_defaults("jets")["batch_size"], "the CNN studies"),
}


def engine_optimizers(task: str, backend: str,
                      chosen: tuple[str, ...] | None) -> tuple[tuple[str, ...], list[str]]:
    """(optimizers ``backend`` runs, reasons for what it does not run as asked).
    ``chosen=None``: the task's protocol, with the stated fallback where the engine lacks
    one; an explicit choice is never replaced, its unsupported optimizers are skipped."""
    have = CAPABILITIES[backend].optimizers
    protocol = chosen is None
    run: list[str] = []
    reasons: list[str] = []
    for name in TASKS[task].optimizers if protocol else chosen:
        if name in have:
            run.append(name)
        elif protocol and name in PROTOCOL_FALLBACK and PROTOCOL_FALLBACK[name][0] in have:
            other, why = PROTOCOL_FALLBACK[name]
            run.append(other)
            reasons.append(f"{backend} has no {name} (the seed protocol of "
                           f"{TASKS[task].study}): runs {other}, {why}, instead")
        else:
            reasons.append(f"{backend} has no optimizer {name!r}: skipped (it has "
                           f"{', '.join(sorted(have))})")
    return tuple(dict.fromkeys(run)), reasons


def cnn_train_flags(model: str) -> list[str]:
    """The ``hepspark train cnn`` model flags of zoo model ``model`` (e.g. ``resnet29b``)."""
    config = parse_model_name(model)
    flags = ["--model", config.family]
    if config.depth is not None:
        flags += ["--depth", str(config.depth)]
    if config.bottleneck:
        flags.append("--bottleneck")
    if config.version != 1:
        flags += ["--version", str(config.version)]
    return flags


def check_dataset(task: str, data: str, dataset: str | None = None,
                  features: str = "all") -> int:
    """Open ``data`` as the task's kind of dataset: a missing or wrong one fails here, before
    any job, naming the path (and the kind asked for, when it differs). Returns the batch
    size of the dataset's seed protocol (``hepspark.config.train_defaults``: LArTPC 20)."""
    if task == "higgs":
        from hepspark.data.readers import HiggsDataset

        HiggsDataset(data, features=features)
        return train_defaults("higgs")["batch_size"]
    from hepspark.data.image_dataset import ImageDataset

    if "://" not in data and not os.path.exists(data):  # storage's message names HIGGS
        raise FileNotFoundError(f"--data {data} does not exist: convert images with "
                                "'hepspark convert images', or drop --data and the sweep "
                                "generates jets (--dataset, --demo-rows)")
    found = ImageDataset(data)
    if dataset is not None and found.kind != dataset:
        raise ValueError(f"--data {data} holds {found.kind} images, not {dataset}: drop "
                         f"--dataset or give a {dataset} dataset")
    return train_defaults(found.kind, found.num_classes)["batch_size"]


def ensure_sweep_data(task: str, dataset: str, rows: int, cache_dir: str,
                      progress: Callable[[str], None] = print) -> str:
    """The generated dataset of a sweep given no ``--data``: made once in ``cache_dir``
    (``higgs-demo-ROWS``, ``jets-sweep-ROWS``, ``lartpc-sweep-ROWS``), then reused. A Spark
    session started here for the conversion is stopped again: the jobs start their own."""
    from pyspark.sql import SparkSession

    from hepspark.data import storage

    name = f"higgs-demo-{rows}" if task == "higgs" else f"{dataset}-sweep-{rows}"
    out = os.path.join(cache_dir, name)
    if os.path.exists(os.path.join(out, storage.METADATA_FILE)):
        progress(f"[scaling] using the generated dataset {out}")
        return out
    os.makedirs(cache_dir, exist_ok=True)
    ours = SparkSession.getActiveSession() is None
    try:
        if task == "higgs":
            from hepspark.data.demo import ensure_demo_dataset

            return ensure_demo_dataset(
                cache_dir, rows, master="local[*]", progress=progress,
                driver_memory=EngineSettings.driver_memory_from_environ())
        return _generate_images(dataset, rows, cache_dir, out, progress)
    finally:
        active = SparkSession.getActiveSession()
        if ours and active is not None:
            active.stop()


def _generate_images(dataset: str, rows: int, cache_dir: str, out: str,
                     progress: Callable[[str], None]) -> str:
    from hepspark.data.image_files import write_generated
    from hepspark.data.images_convert import ImageConvertConfig, convert_images
    from hepspark.session import get_spark

    source = os.path.join(cache_dir, f"{dataset}-sweep-{rows}.h5")
    spark = get_spark("hepspark-bench-data", master="local[*]",
                      driver_memory=EngineSettings.driver_memory_from_environ())
    if not os.path.exists(source):
        progress(f"[scaling] generating {rows:,d} {dataset} images into {source}")
        write_generated(dataset, source, rows, seed=42, progress=progress)
    progress(f"[scaling] converting {source} to a Petastorm dataset {out}")
    # 1 MB row groups (~115 jet images): every Horovod rank gets a shard of a small sample
    convert_images(spark, ImageConvertConfig(source, out, dataset, overwrite=True,
                                             row_group_size_mb=1), progress=progress)
    return out
