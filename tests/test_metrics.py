"""hepspark.metrics against scikit-learn (ROC) and against hand-computed small cases."""
import dataclasses
import math

import numpy as np
import pytest
from sklearn import metrics as sk

from hepspark import metrics


def _toy_sample(seed, n=400, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.2 * y)))
    if ties:  # a coarse output, as a saturated float32 sigmoid gives
        score = np.round(score * 8) / 8
    return y, score


# ------------------------------------------------------------------------------ ROC


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_roc_curve_matches_sklearn(seed, weighted, ties):
    y, score = _toy_sample(seed, ties=ties)
    weight = None
    if weighted:
        rng = np.random.default_rng(seed + 100)
        weight = rng.exponential(size=y.size) * (rng.random(y.size) > 0.1)  # some zero weights
    fpr, tpr, thresholds = sk.roc_curve(y, score, sample_weight=weight)

    roc = metrics.roc_curve(y, score, weight)

    np.testing.assert_allclose(roc.fpr, fpr, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(roc.tpr, tpr, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(roc.thresholds, thresholds)
    assert roc.auc == pytest.approx(sk.roc_auc_score(y, score, sample_weight=weight), abs=1e-12)
    assert metrics.roc_auc(y, score, weight) == roc.auc


def test_roc_curve_by_hand():
    roc = metrics.roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert roc.fpr.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert roc.tpr.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert roc.thresholds.tolist() == [math.inf, 0.8, 0.4, 0.35, 0.1]
    assert roc.auc == 0.75


def test_roc_auc_extremes_and_all_tied():
    y = [0, 0, 1, 1]
    assert metrics.roc_auc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert metrics.roc_auc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert metrics.roc_auc(y, [0.5, 0.5, 0.5, 0.5]) == 0.5


def test_roc_accepts_keras_column_and_bool_labels():
    y, score = _toy_sample(3, n=50)
    roc = metrics.roc_curve(y.astype(bool), score.astype(np.float32).reshape(-1, 1))
    assert roc.auc == pytest.approx(sk.roc_auc_score(y, score.astype(np.float32)))


def test_results_are_frozen():
    roc = metrics.roc_curve([0, 1], [0.2, 0.7])
    with pytest.raises(ValueError, match="read-only"):
        roc.tpr[0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        roc.auc = 0.0


# ------------------------------------------------------------------------- accuracy


def test_binary_accuracy_by_hand():
    y = [0, 0, 1, 1]
    # 0.5 itself is background (Keras uses score > threshold): events 0 and 2 are right
    assert metrics.binary_accuracy(y, [0.1, 0.6, 0.7, 0.5]) == 0.5
    assert metrics.binary_accuracy(y, [0.1, 0.6, 0.7, 0.5], threshold=0.4) == 0.75
    assert metrics.binary_accuracy(y, [0.1, 0.6, 0.7, 0.5], sample_weight=[1, 1, 1, 3]) == 1 / 3


# ---------------------------------------------------------------------- FOM = S/√B

# Two signal (0.9, 0.6) and two background (0.7, 0.2) events.
FOUR_Y = [1, 1, 0, 0]
FOUR_SCORE = [0.9, 0.6, 0.7, 0.2]


def test_fom_curve_by_hand():
    f = metrics.fom_curve(FOUR_Y, FOUR_SCORE, cuts=[0.0, 0.6, 0.8])
    # cut 0: S=2, B=2; cut 0.6 keeps the 0.6 event (score >= cut): S=2, B=1; cut 0.8: B=0
    assert f.signal.tolist() == [2.0, 2.0, 1.0]
    assert f.background.tolist() == [2.0, 1.0, 0.0]
    np.testing.assert_allclose(f.fom, [2 / math.sqrt(2), 2.0, np.nan])
    assert (f.best_cut, f.best_fom) == (0.6, 2.0)


def test_fom_curve_weights_and_scales():
    f = metrics.fom_curve(
        FOUR_Y, FOUR_SCORE, cuts=[0.0, 0.6], sample_weight=[1.0, 3.0, 2.0, 2.0],
        signal_scale=10.0, background_scale=0.5,
    )
    assert f.signal.tolist() == [40.0, 40.0]
    assert f.background.tolist() == [2.0, 1.0]
    np.testing.assert_allclose(f.fom, [40 / math.sqrt(2), 40.0])


def test_fom_curve_min_background_hides_low_background_cuts():
    cuts = [0.0, 0.6]
    # scaled by 0.5, the cut at 0.6 keeps B = 0.5 < 1 event: undefined, so the cut at 0 wins
    f = metrics.fom_curve(FOUR_Y, FOUR_SCORE, cuts=cuts, background_scale=0.5)
    np.testing.assert_allclose(f.fom, [2.0, np.nan])
    assert (f.best_cut, f.best_fom) == (0.0, 2.0)
    f = metrics.fom_curve(FOUR_Y, FOUR_SCORE, cuts=cuts, background_scale=0.5, min_background=0)
    np.testing.assert_allclose(f.fom, [2.0, 2 / math.sqrt(0.5)])
    assert f.best_cut == 0.6
    f = metrics.fom_curve(FOUR_Y, FOUR_SCORE, cuts=cuts, min_background=10)
    assert np.isnan(f.fom).all() and np.isnan(f.best_cut) and np.isnan(f.best_fom)


def test_fom_curve_default_cuts():
    f = metrics.fom_curve(FOUR_Y, FOUR_SCORE)
    np.testing.assert_allclose(f.cuts, np.arange(200) * 0.005)
    assert f.best_cut == pytest.approx(0.205)  # just above the 0.2 background event
    assert f.best_fom == pytest.approx(2.0)
    logits = metrics.fom_curve(FOUR_Y, [3.0, 1.0, 2.0, -1.0])  # scores outside [0, 1]
    assert logits.cuts[0] == -1.0 and logits.cuts.size == 200 and logits.cuts[-1] < 3.0


def test_fom_curve_matches_brute_force():
    y, score = _toy_sample(4, n=300)
    f = metrics.fom_curve(y, score, cuts=np.linspace(0, 1, 21))
    for cut, s, b in zip(f.cuts, f.signal, f.background):
        assert s == np.sum((score >= cut) & (y == 1))
        assert b == np.sum((score >= cut) & (y == 0))


def test_discovery_significance_by_hand():
    # 4 signal, 5 background: renormalized, each signal event is 25 events, each background 200
    y = [1, 1, 1, 1, 0, 0, 0, 0, 0]
    score = [0.9, 0.8, 0.3, 0.2, 0.85, 0.4, 0.35, 0.1, 0.05]
    z = metrics.discovery_significance(y, score, cuts=[0.0, 0.5, 0.88])
    # cut 0: 100/sqrt(1000) = 3.16; cut 0.5: 50/sqrt(200) = 3.54; cut 0.88: B = 0, undefined
    assert z == metrics.DiscoverySignificance(
        significance=pytest.approx(50 / math.sqrt(200)), best_cut=0.5,
        signal_kept=50.0, background_kept=200.0,
    )
    # weights: N_s = 5, so a signal weight w counts 20 w events
    weighted = metrics.discovery_significance(
        y, score, cuts=[0.0, 0.5, 0.88], sample_weight=[3, 1, 0.5, 0.5, 1, 1, 1, 1, 1]
    )
    assert (weighted.signal_kept, weighted.background_kept) == (80.0, 200.0)
    assert weighted.significance == pytest.approx(80 / math.sqrt(200))
    other = metrics.discovery_significance(y, score, n_signal=10, n_background=400, cuts=[0.0])
    assert other.significance == pytest.approx(10 / math.sqrt(400))


def test_discovery_significance_without_valid_cut_is_nan():
    z = metrics.discovery_significance(FOUR_Y, FOUR_SCORE, cuts=[0.8])
    assert all(math.isnan(v) for v in dataclasses.astuple(z))


# ----------------------------------------------------------------------- histograms


def test_score_histograms_by_hand():
    h = metrics.score_histograms([0, 0, 1, 1, 1], [0.1, 0.2, 0.7, 1.0, 1.5], bins=2)
    assert h.edges.tolist() == [0.0, 0.5, 1.0]
    assert h.signal_counts.tolist() == [0.0, 2.0]  # 1.0 is in the last bin, 1.5 left out
    assert h.background_counts.tolist() == [2.0, 0.0]
    assert h.signal.tolist() == [0.0, 2.0] and h.background.tolist() == [2.0, 0.0]


def test_score_histograms_unit_area_and_weights():
    y, score = _toy_sample(5, n=300)
    weight = np.random.default_rng(6).exponential(size=y.size)
    h = metrics.score_histograms(y, score, bins=7, range=(0.0, 1.0), sample_weight=weight)
    widths = np.diff(h.edges)
    assert np.sum(h.signal * widths) == pytest.approx(1.0)
    assert np.sum(h.background * widths) == pytest.approx(1.0)
    assert h.signal_counts.sum() == pytest.approx(weight[y == 1].sum())


def test_score_histograms_class_without_entries_is_zero():
    h = metrics.score_histograms([1, 1], [0.2, 0.4], bins=4)
    assert h.background.tolist() == [0.0] * 4
    assert h.signal.sum() * 0.25 == pytest.approx(1.0)


# -------------------------------------------------------------------------- summary


def test_physics_summary_agrees_with_the_single_metrics():
    y, score = _toy_sample(7, n=500)
    s = metrics.physics_summary(y, score)
    fom = metrics.fom_curve(y, score)
    z = metrics.discovery_significance(y, score)
    assert s.test_auc == pytest.approx(sk.roc_auc_score(y, score))
    assert s.test_accuracy == metrics.binary_accuracy(y, score)
    assert (s.best_fom, s.best_cut) == (fom.best_fom, fom.best_cut)
    assert (s.significance_100s_1000b, s.significance_cut) == (z.significance, z.best_cut)
    assert (s.n_signal, s.n_background) == (int(np.sum(y == 1)), int(np.sum(y == 0)))
    assert all(type(v) is float for v in dataclasses.astuple(s)[:6])


# ------------------------------------------------------------------------ validation

Y = [0, 1, 0, 1]
SCORE = [0.1, 0.8, 0.3, 0.6]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: metrics.roc_auc(Y, SCORE[:3]), "y_score has 3 entries but y_true has 4"),
        (lambda: metrics.roc_auc([], []), "y_true is empty"),
        (lambda: metrics.binary_accuracy(Y, []), "y_score is empty"),
        (lambda: metrics.roc_auc([0, 2, 1, 3], SCORE), r"0/1 labels.*found \[2, 3\]"),
        (lambda: metrics.roc_auc([0, 1, np.nan, 1], SCORE), "y_true must hold only 0/1"),
        (lambda: metrics.fom_curve(Y, [0.1, np.nan, 0.3, 0.6]), "y_score contains 1 non-finite"),
        (lambda: metrics.score_histograms(Y, [np.inf, 0.8, 0.3, 0.6]), "y_score contains 1 non"),
        (lambda: metrics.roc_auc(Y, np.ones((4, 2))), r"y_score must be 1-D.*\(4, 2\)"),
        (lambda: metrics.roc_auc(Y, ["a", "b", "c", "d"]), "y_score must be numeric"),
        (lambda: metrics.roc_auc([1, 1, 1, 1], SCORE), r"roc_curve needs both classes.*background"),
        (lambda: metrics.roc_curve([0, 0, 0, 0], SCORE), r"needs both classes.*signal \(label 1\)"),
        (lambda: metrics.fom_curve([1, 1, 1, 1], SCORE), "fom_curve needs both classes"),
        (lambda: metrics.discovery_significance([0] * 4, SCORE), "discovery_significance needs"),
        (
            lambda: metrics.roc_auc(Y, SCORE, sample_weight=[1, 0, 1, 0]),
            "no signal.*with non-zero sample_weight",
        ),
        (lambda: metrics.roc_auc(Y, SCORE, [1, -1, 1, 1]), "sample_weight must be non-negative"),
        (lambda: metrics.roc_auc(Y, SCORE, [1, 1]), "sample_weight has 2 entries but y_true has 4"),
        (lambda: metrics.roc_auc(Y, SCORE, [1, np.nan, 1, 1]), "sample_weight contains 1 non"),
        (lambda: metrics.binary_accuracy(Y, SCORE, sample_weight=[0] * 4), "sample_weight sums"),
        (lambda: metrics.binary_accuracy(Y, SCORE, threshold=np.nan), "threshold must be finite"),
        (lambda: metrics.fom_curve(Y, SCORE, cuts=[0.5, 0.2]), "cuts must be sorted"),
        (lambda: metrics.fom_curve(Y, SCORE, cuts=[]), "cuts is empty"),
        (lambda: metrics.fom_curve(Y, SCORE, cuts=[0.1, np.inf]), "cuts contains 1 non-finite"),
        (lambda: metrics.fom_curve(Y, SCORE, signal_scale=0), "signal_scale must be"),
        (lambda: metrics.fom_curve(Y, SCORE, background_scale=-1), "background_scale must be"),
        (lambda: metrics.fom_curve(Y, SCORE, min_background=-1), "min_background must be"),
        (lambda: metrics.discovery_significance(Y, SCORE, n_signal=0), "n_signal must be"),
        (lambda: metrics.discovery_significance(Y, SCORE, n_background=np.inf), "n_background"),
        (lambda: metrics.score_histograms(Y, SCORE, bins=0), "bins must be an integer >= 1"),
        (lambda: metrics.score_histograms(Y, SCORE, bins=2.5), "bins must be an integer"),
        (lambda: metrics.score_histograms(Y, SCORE, range=(1, 0)), "range must be two finite"),
    ],
)
def test_invalid_input_raises_a_value_error_naming_it(call, message):
    with pytest.raises(ValueError, match=message):
        call()
