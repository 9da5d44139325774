"""Bring a baseline measured elsewhere (``benchmarks/gpu_baseline.py`` on a GPU machine)
into a scaling experiment, as one MLflow run the report reads like any other.

The GPU machine has no Spark, no Java and often no route to the tracking server, so the
benchmark writes a JSON file and this module logs it: params as a training run has them
(backend ``keras-gpu``, optimizer, batch size, rows, device), per-epoch metrics with
``step = epoch`` and the GPU's measured fp32 matmul rate as the FLOP ceiling.

>>> run_id = import_baseline("benchmarks/results/gpu_baseline_adam_b1000.json",
...                          experiment="higgs-scaling")
"""
from __future__ import annotations

import json
import os

from hepspark.tags import BASELINE_TASK, CEILING_TAG, MODE_TAG, NODES_TAG, TASK_TAG

KIND = "hepspark-gpu-baseline"
_REQUIRED = ("backend", "device", "optimizer", "batch_size", "train_rows", "parameters", "epochs")


def read_baseline(path: str) -> dict:
    """The benchmark's JSON, checked; errors name the file and what is wrong."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such baseline file (made by "
                                "benchmarks/gpu_baseline.py --output FILE)")
    try:
        with open(path) as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise ValueError(f"{path}: not a result of benchmarks/gpu_baseline.py (kind != {KIND!r})")
    missing = [k for k in _REQUIRED if k not in data]
    if missing or not data["epochs"]:
        raise ValueError(f"{path}: missing {missing or ['epochs']}")
    for record in data["epochs"]:
        if not {"epoch", "epoch_wall_time_s", "rows_per_s"} <= set(record):
            raise ValueError(f"{path}: epoch record {record} lacks epoch/epoch_wall_time_s/rows_per_s")
    return data


def import_baseline(path: str, experiment: str, tracking_uri: str | None = None) -> str:
    """Log the baseline in ``path`` as a run of ``experiment``; returns the run id."""
    import mlflow

    from hepspark.tracking import check_tracking_uri, resolve_tracking_uri

    data = read_baseline(path)
    uri = resolve_tracking_uri(tracking_uri)
    check_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    tags = {TASK_TAG: BASELINE_TASK, NODES_TAG: "1", MODE_TAG: "gpu",
            "hepspark.baseline.source": os.path.abspath(path)}
    if data.get("matmul_tflops_fp32"):
        tags[CEILING_TAG] = f"{data['matmul_tflops_fp32'] * 1000:.1f}"
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
