"""Column names and feature sets of the UCI HIGGS dataset (Baldi et al. 2014).

The CSV has no header: column 0 is the label (1 signal, 0 background), then 21
low-level (detector) features, then 7 high-level features (invariant masses).
"""
from __future__ import annotations

LOW_LEVEL_FEATURES: tuple[str, ...] = (
    "lepton_pT", "lepton_eta", "lepton_phi",
    "missing_energy_magnitude", "missing_energy_phi",
    "jet1_pt", "jet1_eta", "jet1_phi", "jet1_btag",
    "jet2_pt", "jet2_eta", "jet2_phi", "jet2_btag",
    "jet3_pt", "jet3_eta", "jet3_phi", "jet3_btag",
    "jet4_pt", "jet4_eta", "jet4_phi", "jet4_btag",
)  # fmt: skip
HIGH_LEVEL_FEATURES: tuple[str, ...] = (
    "m_jj", "m_jjj", "m_lv", "m_jlv", "m_bb", "m_wbb", "m_wwbb",
)  # fmt: skip
FEATURES: tuple[str, ...] = LOW_LEVEL_FEATURES + HIGH_LEVEL_FEATURES
LABEL = "label"
COLUMNS: tuple[str, ...] = (LABEL,) + FEATURES

FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "all": FEATURES,
    "low": LOW_LEVEL_FEATURES,
    "high": HIGH_LEVEL_FEATURES,
}

# UCI convention: the last 500,000 of the 11,000,000 rows are the test set.
UCI_TEST_ROWS = 500_000


def feature_set(name: str) -> tuple[str, ...]:
    """Feature names for ``all`` (28), ``low`` (21 low-level) or ``high`` (7 masses).

    >>> len(feature_set("high"))
    7
    """
    try:
        return FEATURE_SETS[name]
    except KeyError:
        raise ValueError(
            f"features must be one of {sorted(FEATURE_SETS)}, got {name!r}"
        ) from None
