"""Metrics of a K-class classifier, as the LArTPC study reports them (seed 001, numpy only).

- per-class accuracy with its binomial error sqrt(p (1 - p) / n) (the seed's table 1);
- the confusion matrix (rows: true class, columns: predicted class, the arg-max);
- efficiency vs purity curves per class, cutting on that class's probability;
- two-group separations on the events of those groups (the seed's figure 6): mu/pi,
  e/gamma and shower (e, gamma) / track (mu, pi, p), each as the ROC AUC and accuracy of
  the score ``P(group A) / (P(group A) + P(group B))``.

``probs`` is ``[n, K]`` (softmax outputs), ``y`` holds integer labels 0..K-1.

>>> s = multiclass_summary([0, 1, 2], np.eye(3), ["a", "b", "c"])
>>> s.accuracy, s.per_class[0].accuracy
(1.0, 1.0)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from hepspark.metrics import roc_auc

LARTPC_SEPARATIONS = {
    "mu_pi": (("muon",), ("pion",)),
    "e_gamma": (("electron",), ("gamma",)),
    "shower_track": (("electron", "gamma"), ("muon", "pion", "proton")),
}


def _check(y: ArrayLike, probs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).reshape(-1).astype(np.int64)
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or probs.shape[0] != y.size:
        raise ValueError(f"probs must be [n, K] with n = {y.size}, got shape {probs.shape}")
    if y.size and (y.min() < 0 or y.max() >= probs.shape[1]):
        raise ValueError(f"labels must be in 0..{probs.shape[1] - 1}")
    return y, probs


def categorical_cross_entropy(y: ArrayLike, probs: ArrayLike,
                              sample_weight: ArrayLike | None = None) -> float:
    """Mean (weighted) -log P(true class), probabilities clipped like Keras does."""
    y, probs = _check(y, probs)
    p_true = np.clip(probs[np.arange(y.size), y], 1e-7, 1.0)
    return float(-np.average(np.log(p_true), weights=sample_weight))


def weighted_accuracy(y: ArrayLike, probs: ArrayLike,
                      sample_weight: ArrayLike | None = None) -> float:
    """(Weighted) fraction of events whose arg-max class is the true one."""
    y, probs = _check(y, probs)
    return float(np.average(probs.argmax(axis=1) == y, weights=sample_weight))


@dataclass(frozen=True)
class ClassAccuracy:
    name: str
    n: int
    accuracy: float  # fraction of this class's events predicted as this class
    error: float  # binomial: sqrt(p (1 - p) / n)

    def format(self) -> str:
        return f"{self.name:<10} {100 * self.accuracy:5.1f} +- {100 * self.error:.1f} % (n={self.n})"


def per_class_accuracy(y: ArrayLike, probs: ArrayLike, class_names) -> list[ClassAccuracy]:
    y, probs = _check(y, probs)
    predicted = probs.argmax(axis=1)
    out = []
    for k, name in enumerate(class_names):
        mask = y == k
        n = int(mask.sum())
        p = float(np.mean(predicted[mask] == k)) if n else float("nan")
        error = float(np.sqrt(p * (1 - p) / n)) if n else float("nan")
        out.append(ClassAccuracy(str(name), n, p, error))
    return out


def confusion_matrix(y: ArrayLike, probs: ArrayLike) -> np.ndarray:
    """Counts ``[K, K]``: row = true class, column = predicted (arg-max) class."""
    y, probs = _check(y, probs)
    k = probs.shape[1]
    return np.bincount(y * k + probs.argmax(axis=1), minlength=k * k).reshape(k, k)


@dataclass(frozen=True, eq=False)
class EfficiencyPurity:
    """Selecting ``P(class) >= cut``: the fraction of the class kept (efficiency) and the
    fraction of the kept events that belong to it (purity), per cut."""

    name: str
    cuts: np.ndarray
    efficiency: np.ndarray
    purity: np.ndarray


def efficiency_purity(y: ArrayLike, probs: ArrayLike, class_names,
                      n_cuts: int = 101) -> list[EfficiencyPurity]:
    y, probs = _check(y, probs)
    cuts = np.linspace(0.0, 1.0, n_cuts)
    curves = []
    for k, name in enumerate(class_names):
        score = probs[:, k]
        is_k = y == k
        order = np.sort(score)
        order_k = np.sort(score[is_k])
        kept = score.size - np.searchsorted(order, cuts, side="left")
        kept_k = order_k.size - np.searchsorted(order_k, cuts, side="left")
        efficiency = kept_k / max(order_k.size, 1)
        purity = np.divide(kept_k, kept, out=np.full(cuts.size, np.nan), where=kept > 0)
        curves.append(EfficiencyPurity(str(name), cuts, efficiency, purity))
    return curves


@dataclass(frozen=True)
class Separation:
    name: str
    auc: float
    accuracy: float
    n: int


def separation_scores(y: ArrayLike, probs: ArrayLike, class_names, group_a,
                      group_b) -> tuple[np.ndarray, np.ndarray]:
    """On the events of group A or B: (1 for A / 0 for B, ``P(A) / (P(A) + P(B))``)."""
    y, probs = _check(y, probs)
    names = [str(n) for n in class_names]
    a = [names.index(n) for n in group_a]
    b = [names.index(n) for n in group_b]
    mask = np.isin(y, a + b)
    p_a = probs[mask][:, a].sum(axis=1)
    p_b = probs[mask][:, b].sum(axis=1)
    return np.isin(y[mask], a).astype(np.int64), p_a / np.maximum(p_a + p_b, 1e-12)


def separation(y: ArrayLike, probs: ArrayLike, class_names, group_a, group_b,
               name: str = "") -> Separation:
    """Group A vs group B (A positive) with :func:`separation_scores`: ROC AUC and the
    accuracy of ``score > 0.5``."""
    truth, score = separation_scores(y, probs, class_names, group_a, group_b)
    if truth.size == 0 or truth.min() == truth.max():
        return Separation(name, float("nan"), float("nan"), int(truth.size))
    return Separation(name, roc_auc(truth, score), float(np.mean((score > 0.5) == truth)),
                      int(truth.size))


@dataclass(frozen=True, eq=False)
class MulticlassSummary:
    accuracy: float
    per_class: list[ClassAccuracy]
    confusion: np.ndarray
    separations: list[Separation]

    def metrics(self) -> dict[str, float]:
        """Flat MLflow metrics: ``test_accuracy``, ``test_accuracy_<class>`` (+ ``_err``),
        ``separation_<name>_auc`` / ``_accuracy``."""
        values = {"test_accuracy": self.accuracy}
        for c in self.per_class:
            values[f"test_accuracy_{c.name}"] = c.accuracy
            values[f"test_accuracy_{c.name}_err"] = c.error
        for s in self.separations:
            values[f"separation_{s.name}_auc"] = s.auc
            values[f"separation_{s.name}_accuracy"] = s.accuracy
        return {k: float(v) for k, v in values.items()}


def multiclass_summary(y: ArrayLike, probs: ArrayLike, class_names,
                       sample_weight: ArrayLike | None = None) -> MulticlassSummary:
    """Everything above in one call; the LArTPC separations when the class names are the
    LArTPC ones."""
    names = [str(n) for n in class_names]
    separations = [
        separation(y, probs, names, a, b, name)
        for name, (a, b) in LARTPC_SEPARATIONS.items()
        if set(a) | set(b) <= set(names)
    ]
    return MulticlassSummary(
        accuracy=weighted_accuracy(y, probs, sample_weight),
        per_class=per_class_accuracy(y, probs, names),
        confusion=confusion_matrix(y, probs),
        separations=separations,
    )
