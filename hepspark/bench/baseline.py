"""Bring a baseline measured elsewhere (``benchmarks/gpu_baseline.py`` on a GPU machine)
into a scaling experiment, as one MLflow run the report reads like any other.

The GPU machine has no Spark, no Java and often no route to the tracking server, so the
benchmark writes a JSON file and this module logs it: params as a training run has them
(backend ``keras-gpu``, optimizer, batch size, rows, device), per-epoch metrics with
``step = epoch`` and the GPU's measured fp32 matmul rate as the FLOP ceiling.

The CNN zoo benchmark's JSON (``benchmarks/cnn_zoo.py --output``: images/s per zoo model
on a lent GPU, or in memory on a CPU) is imported the same way, one run per model, tagged
with the model and its family so the report's CNN sections find their baseline.

>>> run_ids = import_baselines("benchmarks/results/gpu_baseline_adam_b1000.json",
...                            experiment="higgs-scaling")
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

from hepspark.tags import (
    BASELINE_TASK,
    CEILING_TAG,
    FAMILY_TAG,
    MODE_TAG,
    MODEL_TAG,
    NODES_TAG,
    TASK_TAG,
)

KIND = "hepspark-gpu-baseline"
ZOO_KIND = "hepspark-cnn-zoo"  # benchmarks/cnn_zoo.py


@dataclass(frozen=True)
class BaselineFormat:
    """What a baseline file of one kind must hold: top-level keys, a non-empty list of
    records and the keys of each record; ``record_error`` says what a record lacks."""

    benchmark: str  # the script that writes it
    required: tuple[str, ...]
    records: str  # the key of the list of records
    record_keys: tuple[str, ...]
    record_error: Callable[[dict, list[str]], str]


FORMATS = {
    KIND: BaselineFormat(
        benchmark="benchmarks/gpu_baseline.py",
        required=("backend", "device", "optimizer", "batch_size", "train_rows", "parameters",
                  "epochs"),
        records="epochs", record_keys=("epoch", "epoch_wall_time_s", "rows_per_s"),
        record_error=lambda record, _: (f"epoch record {record} lacks "
                                        "epoch/epoch_wall_time_s/rows_per_s")),
    ZOO_KIND: BaselineFormat(
        benchmark="benchmarks/cnn_zoo.py",
        required=("device", "batch_size", "steps", "models"),
        records="models", record_keys=("model", "family", "parameters", "images_per_s"),
        record_error=lambda row, lacking: (f"model record {row.get('model', row)!r} "
                                           f"lacks {lacking}")),
}


def _read_json(path: str) -> dict:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such baseline file (made by "
                                "benchmarks/gpu_baseline.py or cnn_zoo.py --output FILE)")
    try:
        with open(path) as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("kind") not in (KIND, ZOO_KIND):
        raise ValueError(f"{path}: not a result of benchmarks/gpu_baseline.py or "
                         f"cnn_zoo.py (kind is neither {KIND!r} nor {ZOO_KIND!r})")
    return data


def read_baseline(path: str, kind: str = KIND) -> dict:
    """The JSON of the benchmark that writes ``kind`` (:data:`FORMATS`), checked; errors
    name the file and what is wrong.

    >>> read_baseline("zoo.json", ZOO_KIND)["models"][0]["images_per_s"]
    """
    expected = FORMATS[kind]
    data = _read_json(path)
    if data["kind"] != kind:
        raise ValueError(f"{path}: not a result of {expected.benchmark} (kind != {kind!r})")
    missing = [k for k in expected.required if k not in data]
    if missing or not data[expected.records]:
        raise ValueError(f"{path}: missing {missing or [expected.records]}")
    for record in data[expected.records]:
        lacking = [k for k in expected.record_keys if k not in record]
        if lacking:
            raise ValueError(f"{path}: {expected.record_error(record, lacking)}")
    return data


def _client_and_experiment(experiment: str, tracking_uri: str | None):
    import mlflow

    from hepspark.tracking import check_tracking_uri, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    check_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return client, found.experiment_id if found else client.create_experiment(experiment)


def _tags(path: str, mode: str, ceiling_gflops: float | None) -> dict[str, str]:
    tags = {TASK_TAG: BASELINE_TASK, NODES_TAG: "1", MODE_TAG: mode,
            "hepspark.baseline.source": os.path.abspath(path)}
    if ceiling_gflops and math.isfinite(ceiling_gflops):
        tags[CEILING_TAG] = f"{ceiling_gflops:.1f}"
    return tags


def import_baselines(path: str, experiment: str, tracking_uri: str | None = None) -> list[str]:
    """Log the baseline file ``path`` (either benchmark's) into ``experiment``; run ids."""
    if _read_json(path)["kind"] == ZOO_KIND:
        return import_zoo_baseline(path, experiment, tracking_uri)
    return [import_baseline(path, experiment, tracking_uri)]


def import_zoo_baseline(path: str, experiment: str,
                        tracking_uri: str | None = None) -> list[str]:
    """One run per zoo model of ``path`` (benchmarks/cnn_zoo.py): backend ``keras-gpu`` on
    a GPU, else ``keras-memory`` (the CPU, in memory, no I/O); tags name the model and its
    family; one 'epoch' of the benchmark's steps with its images/s. Returns the run ids."""
    data = read_baseline(path, ZOO_KIND)
    client, experiment_id = _client_and_experiment(experiment, tracking_uri)
    gpu = str(data["device"]).startswith("GPU")
    backend = "keras-gpu" if gpu else "keras-memory"
    images = int(data["batch_size"]) * int(data["steps"])
    shape = "x".join(str(v) for v in data.get("shape", ()))
    run_ids = []
    for row in data["models"]:
        tags = {**_tags(path, "gpu" if gpu else "memory", data.get("ceiling_gflops")),
                MODEL_TAG: row["model"], FAMILY_TAG: row["family"]}
        run = client.create_run(experiment_id, run_name=f"{backend}-{row['model']}-x1", tags=tags)
        params = {"backend": backend, "optimizer": "nadam", "batch_size": data["batch_size"],
                  "epochs": 1, "num_executors": 1, "cores_per_executor": 0,
                  "device": data["device"], "train_rows": images,
                  "parameters": row["parameters"], "model": row["model"],
                  "model_family": row["family"], "image_shape": shape,
                  "keras": data.get("keras", ""), "keras_backend": data.get("keras_backend", ""),
                  "dataset": f"random sparse images in memory ({images:,d} per measurement)"}
        for key, value in params.items():
            client.log_param(run.info.run_id, key, str(value))
        rate = float(row["images_per_s"])
        client.log_metric(run.info.run_id, "rows_per_s", rate, step=1)
        client.log_metric(run.info.run_id, "epoch_wall_time_s", images / rate, step=1)
        client.log_artifact(run.info.run_id, path)
        client.set_terminated(run.info.run_id)
        run_ids.append(run.info.run_id)
    return run_ids


def import_baseline(path: str, experiment: str, tracking_uri: str | None = None) -> str:
    """Log the baseline in ``path`` as a run of ``experiment``; returns the run id."""
    data = read_baseline(path)
    client, experiment_id = _client_and_experiment(experiment, tracking_uri)
    tags = _tags(path, "gpu", data["matmul_tflops_fp32"] * 1000
                 if data.get("matmul_tflops_fp32") else None)
    run = client.create_run(experiment_id, run_name=f"{data['backend']}-{data['optimizer']}-x1",
                            tags=tags)
    params = {
        "backend": data["backend"], "optimizer": data["optimizer"],
        "batch_size": data["batch_size"], "epochs": len(data["epochs"]),
        "num_executors": 1, "cores_per_executor": 0, "device": data["device"],
        "train_rows": data["train_rows"], "val_rows": data.get("val_rows", 0),
        "parameters": data["parameters"], "model": data.get("model", ""),
        "keras": data.get("keras", ""), "keras_backend": data.get("keras_backend", ""),
        "dataset": f"generated in memory ({data['train_rows']:,d} rows)",
    }
    for key, value in params.items():
        client.log_param(run.info.run_id, key, str(value))
    for record in data["epochs"]:
        for name in ("epoch_wall_time_s", "rows_per_s", "train_loss", "val_auc"):
            if record.get(name) is not None:
                client.log_metric(run.info.run_id, name, float(record[name]), step=record["epoch"])
    client.log_artifact(run.info.run_id, path)
    client.set_terminated(run.info.run_id)
    return run.info.run_id
