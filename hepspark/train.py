"""Training and evaluating the HIGGS DNN: the HIGGS kind of the one pipeline.

>>> outcome = train_higgs(TrainConfig(data="data/higgs", epochs=3), Tracker())
>>> outcome.summary.test_auc
0.81...
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping

from hepspark.config import TrainConfig
from hepspark.data.readers import HiggsDataset, Standardizer
from hepspark.kinds import HIGGS
from hepspark.metrics import PhysicsSummary, physics_summary
from hepspark.models.keras_dense import MODEL_FILE, predict_scores
from hepspark.pipeline import PREPROCESSING_FILE, RunOutcome, run_training
from hepspark.progress import predict_with_progress
from hepspark.tracking import Tracker


def train_higgs(
    config: TrainConfig,
    tracker: Tracker,
    progress: Callable[[str], None] = print,
    model_dir: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> RunOutcome:
    """Train ``config`` on a HIGGS dataset and log everything (:mod:`hepspark.pipeline`);
    ``tags`` are added to the MLflow run's tags (the scaling sweep marks its runs so)."""
    return run_training(config, tracker, HIGGS, progress=progress, model_dir=model_dir,
                        tags=tags)


def evaluate_higgs(model_uri: str, data: str, tracking_uri: str | None = None) -> PhysicsSummary:
    """Score a saved model (``model.keras`` path, its directory, or an MLflow
    ``runs:/<id>/model`` URI) on a dataset's test split."""
    import keras

    local = _resolve_model(model_uri, tracking_uri)
    directory = os.path.dirname(local)
    prep_path = os.path.join(directory, PREPROCESSING_FILE)
    if not os.path.exists(prep_path):
        raise FileNotFoundError(f"{PREPROCESSING_FILE} not found next to the model {local}")
    with open(prep_path) as handle:
        prep = json.load(handle)
    dataset = HiggsDataset(data, features=prep["feature_set"])
    if list(prep["features"]) != dataset.features:
        raise ValueError(f"model features {prep['features']} differ from the dataset's")
    x_test, y_test = dataset.load("test", standardize=False)
    x_test = Standardizer.from_dict(prep)(x_test)  # the training set's transform
    model = keras.saving.load_model(local)
    scores = predict_with_progress(lambda x: predict_scores(model, x), x_test)
    return physics_summary(y_test, scores)


def _resolve_model(model_uri: str, tracking_uri: str | None) -> str:
    from urllib.parse import urlparse

    if urlparse(model_uri).scheme not in ("", "file"):  # runs:/, models:/, s3://, ...
        import mlflow

        from hepspark.tracking import resolve_tracking_uri

        mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri))
        model_uri = mlflow.artifacts.download_artifacts(model_uri)
    path = model_uri.removeprefix("file://")
    if os.path.isdir(path):
        path = os.path.join(path, MODEL_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model {model_uri} not found (expected a model.keras file)")
    return path
