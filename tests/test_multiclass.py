"""K-class metrics of the LArTPC protocol, checked against hand-made cases and sklearn."""
from __future__ import annotations

import numpy as np
import pytest

from hepspark.multiclass import (
    categorical_cross_entropy,
    confusion_matrix,
    efficiency_purity,
    multiclass_summary,
    per_class_accuracy,
    separation,
)

NAMES = ["electron", "gamma", "muon", "pion", "proton"]


def test_per_class_accuracy_has_binomial_errors_and_confusion_counts():
    y = np.array([0] * 100 + [1] * 50)
    probs = np.zeros((150, 5))
    probs[np.arange(150), y] = 1.0
    probs[:20] = np.eye(5)[1]  # 20 electrons called gamma
    acc = per_class_accuracy(y, probs, NAMES)
    assert acc[0].accuracy == pytest.approx(0.8) and acc[0].n == 100
    assert acc[0].error == pytest.approx(np.sqrt(0.8 * 0.2 / 100))
    assert acc[1].accuracy == 1.0 and acc[1].error == 0.0
    assert np.isnan(acc[2].accuracy) and acc[2].n == 0
    cm = confusion_matrix(y, probs)
    assert cm[0, 0] == 80 and cm[0, 1] == 20 and cm[1, 1] == 50 and cm.sum() == 150


def test_cross_entropy_matches_sklearn_and_efficiency_purity_ends():
    from sklearn.metrics import log_loss

    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 500)
    logits = rng.normal(size=(500, 5)) + 2 * np.eye(5)[y]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert categorical_cross_entropy(y, probs) == pytest.approx(log_loss(y, probs), rel=1e-6)
    for curve in efficiency_purity(y, probs, NAMES):
        assert curve.efficiency[0] == 1.0  # cut 0 keeps everything
        k = NAMES.index(curve.name)
        assert curve.purity[0] == pytest.approx(np.mean(y == k))
        assert np.all(np.diff(curve.efficiency) <= 0)


def test_separations_use_only_their_groups():
    y = np.array([2, 2, 3, 3, 0, 0])
    probs = np.array([
        [0, 0, 0.9, 0.1, 0], [0, 0, 0.6, 0.4, 0],  # muons, muon-like
        [0, 0, 0.3, 0.7, 0], [0, 0, 0.45, 0.55, 0],  # pions, pion-like
        [1, 0, 0, 0, 0], [0, 0, 0.5, 0.5, 0],  # electrons: not in mu/pi
    ])
    mu_pi = separation(y, probs, NAMES, ["muon"], ["pion"], "mu_pi")
    assert mu_pi.n == 4 and mu_pi.auc == 1.0 and mu_pi.accuracy == 1.0
    summary = multiclass_summary(y, probs, NAMES)
    assert [s.name for s in summary.separations] == ["mu_pi", "e_gamma", "shower_track"]
    assert np.isnan(summary.separations[1].auc)  # no photons here
    metrics = summary.metrics()
    assert metrics["separation_mu_pi_auc"] == 1.0 and "test_accuracy_muon_err" in metrics
    with pytest.raises(ValueError, match="labels must be in"):
        per_class_accuracy([7], np.ones((1, 5)) / 5, NAMES)
