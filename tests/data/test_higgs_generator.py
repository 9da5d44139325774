"""Physics tests of the toy HIGGS Monte Carlo: layout, determinism, selection, mass peaks
and the paper's claim that a classifier gains from the low-level features."""

from __future__ import annotations

import numpy as np
import pytest

from hepspark.data.higgs_generator import (
    COLUMNS,
    FEATURES,
    HIGH_LEVEL_FEATURES,
    LOW_LEVEL_FEATURES,
    generate_events,
)

N_EVENTS = 100_000
SEED = 20140215


@pytest.fixture(scope="module")
def events() -> np.ndarray:
    return generate_events(N_EVENTS, seed=SEED)


def col(events: np.ndarray, name: str) -> np.ndarray:
    return events[:, COLUMNS.index(name)]


def mode(values: np.ndarray, width: float = 5.0) -> float:
    """Centre of the most populated bin of a histogram with ``width`` GeV bins."""
    counts, edges = np.histogram(values, bins=np.arange(0.0, 1000.0 + width, width))
    return float(edges[counts.argmax()] + width / 2)


def test_column_names_follow_the_uci_file() -> None:
    assert len(LOW_LEVEL_FEATURES) == 21 and len(HIGH_LEVEL_FEATURES) == 7
    assert FEATURES == LOW_LEVEL_FEATURES + HIGH_LEVEL_FEATURES
    assert COLUMNS[0] == "label" and COLUMNS[1:] == FEATURES and len(COLUMNS) == 29
    assert LOW_LEVEL_FEATURES[:5] == (
        "lepton_pT", "lepton_eta", "lepton_phi", "missing_energy_magnitude", "missing_energy_phi"
    )  # fmt: skip
    assert LOW_LEVEL_FEATURES[17:] == ("jet4_pt", "jet4_eta", "jet4_phi", "jet4_btag")
    assert HIGH_LEVEL_FEATURES == ("m_jj", "m_jjj", "m_lv", "m_jlv", "m_bb", "m_wbb", "m_wwbb")


def test_shape_dtype_and_labels(events: np.ndarray) -> None:
    assert events.shape == (N_EVENTS, 29)
    assert events.dtype == np.float32
    assert set(np.unique(events[:, 0])) == {0.0, 1.0}
    # Binomial: 5 sigma is 0.008 at 100k events.
    assert abs(events[:, 0].mean() - 0.53) < 0.008


def test_signal_fraction_and_exact_row_counts() -> None:
    few = generate_events(20_000, seed=3, signal_fraction=0.2)
    assert abs(few[:, 0].mean() - 0.2) < 0.015
    assert generate_events(0, seed=3).shape == (0, 29)
    assert generate_events(1, seed=3).shape == (1, 29)
    assert generate_events(777, seed=3).shape == (777, 29)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_rows": -1}, "n_rows"),
        ({"signal_fraction": 0.0}, "signal_fraction"),
        ({"signal_fraction": 1.0}, "signal_fraction"),
        ({"signal_fraction": float("nan")}, "signal_fraction"),
    ],
)
def test_invalid_arguments_name_the_parameter(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        generate_events(**{"n_rows": 10, "seed": 0, **kwargs})


def test_deterministic_for_int_seedsequence_and_generator() -> None:
    reference = generate_events(3000, seed=123)
    for seed in (123, np.random.SeedSequence(123), np.random.default_rng(123)):
        again = generate_events(3000, seed=seed)
        assert again.tobytes() == reference.tobytes()
    assert not np.array_equal(generate_events(3000, seed=124), reference)


def test_all_values_finite(events: np.ndarray) -> None:
    assert np.isfinite(events).all()


def test_selection_cuts_hold(events: np.ndarray) -> None:
    assert (col(events, "lepton_pT") > 20).all()
    assert (np.abs(col(events, "lepton_eta")) < 2.5).all()
    pt = np.stack([col(events, f"jet{i}_pt") for i in range(1, 5)], axis=1)
    eta = np.stack([col(events, f"jet{i}_eta") for i in range(1, 5)], axis=1)
    btag = np.stack([col(events, f"jet{i}_btag") for i in range(1, 5)], axis=1)
    assert (pt > 20).all() and (np.abs(eta) < 2.5).all()
    assert (np.diff(pt, axis=1) <= 0).all(), "jets must be ordered by decreasing pT"
    assert set(np.unique(btag)) == {0.0, 1.0, 2.0}
    assert ((btag >= 1).sum(axis=1) >= 2).all()
    assert (col(events, "missing_energy_magnitude") >= 0).all()
    for name in ("lepton_phi", "missing_energy_phi", "jet1_phi", "jet4_phi"):
        assert (np.abs(col(events, name)) <= np.float32(np.pi)).all()


def test_b_tag_rates_are_physical(events: np.ndarray) -> None:
    btag = np.stack([col(events, f"jet{i}_btag") for i in range(1, 5)], axis=1)
    # Two true b jets and a 20-30% mistag chance among the others: most events have
    # exactly 2 tags, a few have 3 (mistagged c or light jet); 4 tags are rare.
    n_tags = (btag >= 1).sum(axis=1)
    assert 0.75 < (n_tags == 2).mean() < 0.95
    assert (n_tags == 4).mean() < 0.01
    assert 0.3 < (btag == 2).sum() / (btag >= 1).sum() < 0.8


def test_high_level_masses_are_consistent(events: np.ndarray) -> None:
    # The W-mass constraint gives m_lv = m_W, or more where it has no real solution.
    m_lv = col(events, "m_lv")
    assert (m_lv > 80.4 * (1 - 1e-4)).all()
    assert 0.5 < (np.abs(m_lv - 80.4) < 0.01).mean() < 0.95
    # Adding a system of massless, forward-in-time momenta never lowers the mass.
    tol = 1 + 1e-4
    assert (col(events, "m_jjj") * tol >= col(events, "m_jj")).all()
    assert (col(events, "m_wbb") * tol >= col(events, "m_bb")).all()
    assert (col(events, "m_wwbb") * tol >= col(events, "m_wbb")).all()
    assert (col(events, "m_wwbb") * tol >= col(events, "m_jlv")).all()


@pytest.mark.parametrize(
    ("feature", "label", "expected", "tolerance"),
    [
        ("m_bb", 1, 125.0, 15.0),  # h0 -> b b
        ("m_jj", 1, 80.4, 10.0),  # hadronic W
        ("m_jj", 0, 80.4, 10.0),
        ("m_wbb", 1, 325.0, 30.0),  # H+- -> W h0
        ("m_wwbb", 1, 425.0, 40.0),  # H0
        ("m_jjj", 0, 172.5, 25.0),  # hadronic top
        ("m_jlv", 0, 172.5, 25.0),  # leptonic top
    ],
)
def test_mass_peaks(
    events: np.ndarray, feature: str, label: int, expected: float, tolerance: float
) -> None:
    values = col(events, feature)[events[:, 0] == label]
    assert abs(mode(values) - expected) <= tolerance


def test_background_has_no_higgs_peaks(events: np.ndarray) -> None:
    background = events[events[:, 0] == 0]
    signal = events[events[:, 0] == 1]
    # The window around m_h holds most of the signal but a minority of the background.
    assert (np.abs(col(signal, "m_bb") - 125) < 25).mean() > 0.6
    assert (np.abs(col(background, "m_bb") - 125) < 25).mean() < 0.35
    # t t has no 425 GeV resonance: its m_wwbb is broad and reaches much further up.
    assert (
        np.percentile(col(background, "m_wwbb"), 90) > np.percentile(col(signal, "m_wwbb"), 90) + 50
    )


def test_classifier_gains_from_all_features_over_high_level(events: np.ndarray) -> None:
    """The paper's claim: the high-level features separate well, all 28 do better."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    labels, features = events[:, 0], events[:, 1:]
    n_train = int(0.7 * len(events))

    def auc(columns: slice) -> float:
        model = HistGradientBoostingClassifier(random_state=0)
        # One thread: on a small shared machine OpenMP threads fight and run ~10x slower.
        with threadpool_limits(1):
            model.fit(features[:n_train, columns], labels[:n_train])
        scores = model.predict_proba(features[n_train:, columns])[:, 1]
        return roc_auc_score(labels[n_train:], scores)

    auc_high = auc(slice(21, 28))
    auc_all = auc(slice(0, 28))
    assert auc_high > 0.7
    # AUC errors at 30k test events are ~0.002; the gain is a few times that.
    assert auc_all > auc_high + 0.004
