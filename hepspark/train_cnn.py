"""Training a CNN of the zoo on an image dataset (seeds 000, 001): the image kind of the
one pipeline (:mod:`hepspark.pipeline`, :data:`hepspark.kinds.IMAGES`).

* Binary datasets (jets): weighted binary cross-entropy with the physical weights; the
  physics summary of HIGGS (AUC, accuracy, FOM, significance), weighted; ROC, FOM and
  score plots.
* K-class datasets (LArTPC): sparse categorical cross-entropy; per-class accuracy with
  binomial errors, confusion matrix, efficiency-vs-purity curves, and the mu/pi, e/gamma
  and shower/track separations (AUC, accuracy, ROC curves).
* Always: training wall time, the epoch chosen, and the driver's peak memory.

>>> outcome = train_cnn(TrainConfig(data="data/jets", model=CnnConfig("vgg", depth=10)),
...                     Tracker())
"""
from __future__ import annotations

from hepspark.config import TrainConfig
from hepspark.kinds import IMAGES
from hepspark.pipeline import RunOutcome, run_training
from hepspark.tracking import Tracker


def train_cnn(config: TrainConfig, tracker: Tracker, **options) -> RunOutcome:
    """Train ``config`` (a :class:`~hepspark.models.cnn.CnnConfig` model) on an image
    dataset and log everything; ``options`` (progress, model_dir, tags) as for
    :func:`hepspark.pipeline.run_training`."""
    return run_training(config, tracker, IMAGES, **options)
