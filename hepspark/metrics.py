"""Physics metrics for a binary signal-vs-background classifier (numpy only).

These are the numbers the HIGGS study reports for a trained network (Baldi, Sadowski,
Whiteson 2014, and its Spark reproduction): the ROC curve and its AUC, the binary
accuracy at 0.5, the figure of merit FOM = S/sqrt(B) as a function of the cut on the
classifier score, the score histograms of signal and background, and the discovery
significance after renormalizing the test sample to 100 signal per 1000 background events.

Conventions, used everywhere in this module:

- ``y_true`` holds labels 1 (signal) and 0 (background); ``y_score`` the classifier output,
  larger meaning more signal-like. An ``(n, 1)`` column, as Keras ``predict`` returns, is
  accepted wherever a 1-D array is.
- A selection "at cut c" keeps the events with ``score >= c`` (as ``sklearn`` thresholds).
- ``sample_weight`` (non-negative) turns every count into a sum of weights.

Example:
    >>> s = physics_summary([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> s.test_auc
    0.75
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

#: Number of cuts in the default FOM grid (see :func:`fom_curve`).
DEFAULT_N_CUTS = 200


# --------------------------------------------------------------------------- results


def binary_cross_entropy(
    y: np.ndarray, p: np.ndarray, sample_weight: np.ndarray | None = None
) -> float:
    """Mean (weighted) log loss of scores ``p`` for labels ``y`` (scores clipped like Keras
    does)."""
    p = np.clip(np.asarray(p, np.float64).reshape(-1), 1e-7, 1 - 1e-7)
    y = np.asarray(y, np.float64).reshape(-1)
    return float(-np.average(y * np.log(p) + (1 - y) * np.log(1 - p), weights=sample_weight))


def _read_only(values: ArrayLike) -> np.ndarray:
    """A read-only float64 copy, so that the frozen results below are frozen in fact."""
    array = np.array(values, dtype=np.float64)
    array.setflags(write=False)
    return array


# eq=False on the array-holding results: the generated __eq__ would compare numpy arrays
# and fail with "truth value of an array is ambiguous"; identity is the honest equality.
@dataclass(frozen=True, eq=False)
class RocCurve:
    """Receiver operating characteristic of a classifier.

    ``fpr[i]`` (background efficiency) and ``tpr[i]`` (signal efficiency) are the fractions
    of background and signal with ``score >= thresholds[i]``; ``thresholds[0]`` is ``inf``
    so that the curve starts at (0, 0), as in ``sklearn.metrics.roc_curve``.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auc: float


@dataclass(frozen=True, eq=False)
class FomCurve:
    """Figure of merit ``S/sqrt(B)`` for the selections ``score >= cut``.

    ``signal`` and ``background`` are the (weighted, scaled) event counts kept by each cut;
    ``fom`` is NaN where it is undefined (too little background, see :func:`fom_curve`).
    ``best_cut``/``best_fom`` locate the largest finite FOM (NaN when there is none).
    """

    cuts: np.ndarray
    signal: np.ndarray
    background: np.ndarray
    fom: np.ndarray
    best_cut: float
    best_fom: float


@dataclass(frozen=True)
class DiscoverySignificance:
    """Best ``S/sqrt(B)`` after renormalizing the sample (see :func:`discovery_significance`).

    ``signal_kept`` and ``background_kept`` are the renormalized event counts passing
    ``score >= best_cut``; all four are NaN when no cut keeps enough background.
    """

    significance: float
    best_cut: float
    signal_kept: float
    background_kept: float


@dataclass(frozen=True, eq=False)
class ScoreHistograms:
    """Score distributions of signal and background on common bin ``edges``.

    ``signal``/``background`` are densities with unit area over the histogram range (all
    zeros for a class with no entries in range); ``signal_counts``/``background_counts`` the
    (weighted) entries per bin.
    """

    edges: np.ndarray
    signal: np.ndarray
    background: np.ndarray
    signal_counts: np.ndarray
    background_counts: np.ndarray


@dataclass(frozen=True)
class PhysicsSummary:
    """Everything a training run reports about its test sample, as plain numbers.

    ``best_fom``/``best_cut`` are for the test sample as it is; ``significance_100s_1000b``
    and ``significance_cut`` after renormalizing it to 100 signal and 1000 background events.
    ``n_signal``/``n_background`` count the events (unweighted) of each class.
    """

    test_auc: float
    test_accuracy: float
    best_fom: float
    best_cut: float
    significance_100s_1000b: float
    significance_cut: float
    n_signal: int
    n_background: int


# ------------------------------------------------------------------------ validation


def _as_1d(name: str, values: ArrayLike) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:  # Keras predict() returns an (n, 1) column
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (or an (n, 1) column), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {array.dtype}")
    return array


def _check_finite(name: str, array: np.ndarray) -> None:
    n_bad = int(np.count_nonzero(~np.isfinite(array)))
    if n_bad:
        raise ValueError(f"{name} contains {n_bad} non-finite values (NaN or inf)")


def _check_inputs(
    y_true: ArrayLike, y_score: ArrayLike, sample_weight: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate the common inputs; return (is_signal bool, scores float64, weights or None)."""
    labels = _as_1d("y_true", y_true)
    scores = _as_1d("y_score", y_score).astype(np.float64)
    if scores.shape != labels.shape:
        raise ValueError(
            f"y_score has {scores.size} entries but y_true has {labels.size}; they must match"
        )
    not_binary = ~np.isin(labels, (0, 1))
    if not_binary.any():
        found = np.unique(labels[not_binary])[:5].tolist()
        raise ValueError(
            f"y_true must hold only 0/1 labels (0 background, 1 signal); found {found}"
        )
    _check_finite("y_score", scores)
    weights = None
    if sample_weight is not None:
        weights = _as_1d("sample_weight", sample_weight).astype(np.float64)
        if weights.shape != labels.shape:
            raise ValueError(
                f"sample_weight has {weights.size} entries but y_true has {labels.size}; "
                "they must match"
            )
        _check_finite("sample_weight", weights)
        if (weights < 0).any():
            raise ValueError("sample_weight must be non-negative")
    return labels == 1, scores, weights


def _class_totals(is_signal: np.ndarray, weights: np.ndarray | None) -> tuple[float, float]:
    """(Weighted) number of signal and background events."""
    if weights is None:
        n_signal = int(np.count_nonzero(is_signal))
        return float(n_signal), float(is_signal.size - n_signal)
    return float(weights[is_signal].sum()), float(weights[~is_signal].sum())


def _require_both_classes(what: str, is_signal: np.ndarray, weights: np.ndarray | None) -> None:
    total_signal, total_background = _class_totals(is_signal, weights)
    weighted = "" if weights is None else " with non-zero sample_weight"
    for total, missing in (
        (total_signal, "signal (label 1)"),
        (total_background, "background (label 0)"),
    ):
        if total <= 0:
            raise ValueError(
                f"{what} needs both classes, but y_true holds no {missing} events{weighted}"
            )


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


# ------------------------------------------------------------------------------ ROC


def roc_curve(
    y_true: ArrayLike, y_score: ArrayLike, sample_weight: ArrayLike | None = None
) -> RocCurve:
    """ROC curve and AUC; the same points as ``sklearn.metrics.roc_curve`` (default options).

    Tied scores form one point; points collinear with their neighbours are dropped (they do
    not change the curve or its area); zero-weight events are ignored.

    Example:
        >>> roc = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        >>> roc.tpr.tolist(), roc.fpr.tolist(), roc.auc
        ([0.0, 0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 0.5, 0.5, 1.0], 0.75)
    """
    is_signal, scores, weights = _check_inputs(y_true, y_score, sample_weight)
    _require_both_classes("roc_curve", is_signal, weights)
    if weights is not None:
        keep = weights != 0
        is_signal, scores, weights = is_signal[keep], scores[keep], weights[keep]

    # Walk the events from the highest score down; a threshold sits at the last event of
    # each group of equal scores, so that ties enter the counts together.
    order = np.argsort(-scores, kind="stable")
    scores, is_signal = scores[order], is_signal[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    event_weight = np.ones(scores.size) if weights is None else weights[order]
    tps = np.cumsum(np.where(is_signal, event_weight, 0.0))[last_of_group]
    fps = np.cumsum(np.where(is_signal, 0.0, event_weight))[last_of_group]
    thresholds = scores[last_of_group]

    # Drop a point where neither count bends (zero second difference), as sklearn does.
    if fps.size > 2:
        corner = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        fps, tps, thresholds = fps[corner], tps[corner], thresholds[corner]

    fpr = np.r_[0.0, fps] / fps[-1]
    tpr = np.r_[0.0, tps] / tps[-1]
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))  # trapezoidal rule
    return RocCurve(
        fpr=_read_only(fpr),
        tpr=_read_only(tpr),
        thresholds=_read_only(np.r_[np.inf, thresholds]),
        auc=auc,
    )


def roc_auc(y_true: ArrayLike, y_score: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
    """Area under the ROC curve; equals ``sklearn.metrics.roc_auc_score``.

    Example:
        >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.75
    """
    return roc_curve(y_true, y_score, sample_weight).auc


# ------------------------------------------------------------------------- accuracy


def binary_accuracy(
    y_true: ArrayLike,
    y_score: ArrayLike,
    threshold: float = 0.5,
    sample_weight: ArrayLike | None = None,
) -> float:
    """Fraction of events classified correctly when ``score > threshold`` means signal.

    The strict ``>`` is Keras' ``binary_accuracy``, so that the test accuracy is comparable
    with the accuracy Keras logs during training.

    Example:
        >>> binary_accuracy([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.5])
        0.5
    """
    is_signal, scores, weights = _check_inputs(y_true, y_score, sample_weight)
    threshold = float(threshold)
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    correct = (scores > threshold) == is_signal
    if weights is None:
        return float(np.mean(correct))
    total = weights.sum()
    if total <= 0:
        raise ValueError("sample_weight sums to zero; the accuracy is undefined")
    return float(weights[correct].sum() / total)


# ---------------------------------------------------------------------- FOM = S/√B


def _default_cuts(scores: np.ndarray) -> np.ndarray:
    # Sigmoid outputs: the fixed grid 0, 0.005, ..., 0.995 is comparable between runs.
    # Any other score range (logits, BDT outputs) gets the same number of cuts across it.
    if scores.min() >= 0.0 and scores.max() <= 1.0:
        low, high = 0.0, 1.0
    else:
        low, high = float(scores.min()), float(scores.max())
    return low + (high - low) * np.arange(DEFAULT_N_CUTS) / DEFAULT_N_CUTS


def _kept_above(
    scores: np.ndarray, cuts: np.ndarray, *weights: np.ndarray
) -> list[np.ndarray]:
    """For each of ``weights``: its sum over the events with ``score >= cut``, for every cut."""
    order = np.argsort(scores)
    first_kept = np.searchsorted(scores[order], cuts, side="left")
    # Suffix sums (not total minus prefix) so that a cut keeping nothing gives exactly 0.
    return [np.r_[np.cumsum(w[order][::-1])[::-1], 0.0][first_kept] for w in weights]


def _fom(
    is_signal: np.ndarray,
    scores: np.ndarray,
    weights: np.ndarray | None,
    cuts: ArrayLike | None,
    signal_scale: float,
    background_scale: float,
    min_background: float,
) -> FomCurve:
    """:func:`fom_curve` on inputs that :func:`_check_inputs` has validated."""
    _require_both_classes("fom_curve", is_signal, weights)
    signal_scale = _check_positive("signal_scale", signal_scale)
    background_scale = _check_positive("background_scale", background_scale)
    min_background = float(min_background)
    if not (np.isfinite(min_background) and min_background >= 0):
        raise ValueError(f"min_background must be a finite number >= 0, got {min_background}")
    if cuts is None:
        cuts = _default_cuts(scores)
    else:
        cuts = _as_1d("cuts", cuts).astype(np.float64)
        _check_finite("cuts", cuts)
        if (np.diff(cuts) < 0).any():
            raise ValueError("cuts must be sorted in increasing order")

    event_weight = np.ones(scores.size) if weights is None else weights
    signal, background = _kept_above(
        scores, cuts, np.where(is_signal, event_weight, 0.0), np.where(is_signal, 0.0, event_weight)
    )
    signal, background = signal_scale * signal, background_scale * background
    defined = (background >= min_background) & (background > 0)
    fom = np.full(cuts.size, np.nan)
    fom[defined] = signal[defined] / np.sqrt(background[defined])

    if defined.any():
        best = int(np.nanargmax(fom))  # the lowest cut among equal maxima
        best_cut, best_fom = float(cuts[best]), float(fom[best])
    else:
        best_cut = best_fom = float("nan")
    return FomCurve(
        cuts=_read_only(cuts),
        signal=_read_only(signal),
        background=_read_only(background),
        fom=_read_only(fom),
        best_cut=best_cut,
        best_fom=best_fom,
    )


def fom_curve(
    y_true: ArrayLike,
    y_score: ArrayLike,
    cuts: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
    signal_scale: float = 1.0,
    background_scale: float = 1.0,
    min_background: float = 1.0,
) -> FomCurve:
    """Figure of merit ``S/sqrt(B)`` of the selections ``score >= cut``.

    ``S`` and ``B`` are the (weighted) signal and background counts passing the cut, times
    ``signal_scale`` and ``background_scale``. Where ``B < min_background`` (or ``B == 0``)
    the FOM is NaN: a cut that keeps a single background event would otherwise win on a
    statistical fluctuation. ``cuts`` must be increasing; by default they are the 200 cuts
    0, 0.005, ..., 0.995 when all scores lie in [0, 1], else 200 evenly spaced cuts from the
    lowest score up to (not including) the highest.

    Example:
        >>> f = fom_curve([1, 1, 0, 0], [0.9, 0.6, 0.7, 0.2], cuts=[0.0, 0.5, 0.8])
        >>> f.fom.round(3).tolist(), f.best_cut
        ([1.414, 2.0, nan], 0.5)
    """
    is_signal, scores, weights = _check_inputs(y_true, y_score, sample_weight)
    return _fom(is_signal, scores, weights, cuts, signal_scale, background_scale, min_background)


def discovery_significance(
    y_true: ArrayLike,
    y_score: ArrayLike,
    n_signal: float = 100.0,
    n_background: float = 1000.0,
    cuts: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
    min_background: float = 1.0,
) -> DiscoverySignificance:
    """Best ``S/sqrt(B)`` once the sample is renormalized to ``n_signal`` and ``n_background``.

    The HIGGS sample is half signal, while a real search expects few signal events over a
    large background; as in the HIGGS study (100 signal per 1000 background events) every
    signal event counts ``n_signal / N_s`` and every background event ``n_background / N_b``
    (``N_s``, ``N_b``: the sample's own class totals). The FOM curve over ``cuts`` (see
    :func:`fom_curve`, with the same ``min_background``) then gives the significance. The
    renormalized curve itself, for a plot, is ``fom_curve(y_true, y_score,
    signal_scale=n_signal / N_s, background_scale=n_background / N_b)``.

    Example:
        >>> z = discovery_significance([1, 1, 0, 0], [0.9, 0.6, 0.7, 0.2], cuts=[0.0, 0.5])
        >>> round(z.significance, 3), z.best_cut, z.signal_kept, z.background_kept
        (4.472, 0.5, 100.0, 500.0)
    """
    is_signal, scores, weights = _check_inputs(y_true, y_score, sample_weight)
    _require_both_classes("discovery_significance", is_signal, weights)
    total_signal, total_background = _class_totals(is_signal, weights)
    curve = _fom(
        is_signal,
        scores,
        weights,
        cuts,
        signal_scale=_check_positive("n_signal", n_signal) / total_signal,
        background_scale=_check_positive("n_background", n_background) / total_background,
        min_background=min_background,
    )
    if not np.isfinite(curve.best_fom):
        nan = float("nan")
        return DiscoverySignificance(nan, nan, nan, nan)
    best = int(np.nanargmax(curve.fom))
    return DiscoverySignificance(
        significance=curve.best_fom,
        best_cut=curve.best_cut,
        signal_kept=float(curve.signal[best]),
        background_kept=float(curve.background[best]),
    )


# ----------------------------------------------------------------------- histograms


def score_histograms(
    y_true: ArrayLike,
    y_score: ArrayLike,
    bins: int = 50,
    range: tuple[float, float] = (0.0, 1.0),
    sample_weight: ArrayLike | None = None,
) -> ScoreHistograms:
    """Histograms of the score for signal and for background, on ``bins`` equal bins.

    Scores outside ``range`` are left out (as in ``numpy.histogram``; the upper edge is
    included). Each density is normalized to unit area over the range.

    Example:
        >>> h = score_histograms([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9], bins=2)
        >>> h.signal.tolist(), h.background_counts.tolist()
        ([0.0, 2.0], [2.0, 0.0])
    """
    is_signal, scores, weights = _check_inputs(y_true, y_score, sample_weight)
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    low, high = (float(edge) for edge in range)
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(
            f"range must be two finite numbers (low, high) with low < high, got {range}"
        )

    event_weight = np.ones(scores.size) if weights is None else weights
    counts = {}
    densities = {}
    for name, selected in (("signal", is_signal), ("background", ~is_signal)):
        # bins as a number (not edges) takes numpy's fast path for equal-width bins
        counts[name], edges = np.histogram(
            scores[selected], bins=bins, range=(low, high), weights=event_weight[selected]
        )
        area = counts[name].sum() * np.diff(edges)
        densities[name] = np.divide(counts[name], area, out=np.zeros(bins), where=area > 0)
    return ScoreHistograms(
        edges=_read_only(edges),
        signal=_read_only(densities["signal"]),
        background=_read_only(densities["background"]),
        signal_counts=_read_only(counts["signal"]),
        background_counts=_read_only(counts["background"]),
    )


# -------------------------------------------------------------------------- summary


def physics_summary(
    y_true: ArrayLike, y_score: ArrayLike, sample_weight: ArrayLike | None = None
) -> PhysicsSummary:
    """AUC, accuracy at 0.5, best FOM and the 100 s / 1000 b significance, in one call.

    Example:
        >>> s = physics_summary([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        >>> s.test_auc, s.test_accuracy, s.n_signal, s.n_background
        (0.75, 0.75, 2, 2)
    """
    is_signal, _, _ = _check_inputs(y_true, y_score, sample_weight)
    fom = fom_curve(y_true, y_score, sample_weight=sample_weight)
    significance = discovery_significance(y_true, y_score, sample_weight=sample_weight)
    n_signal = int(np.count_nonzero(is_signal))
    return PhysicsSummary(
        test_auc=roc_auc(y_true, y_score, sample_weight),
        test_accuracy=binary_accuracy(y_true, y_score, sample_weight=sample_weight),
        best_fom=fom.best_fom,
        best_cut=fom.best_cut,
        significance_100s_1000b=significance.significance,
        significance_cut=significance.best_cut,
        n_signal=n_signal,
        n_background=int(is_signal.size - n_signal),
    )
