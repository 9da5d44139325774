"""Physics tests of the toy jet-quenching images: layout, determinism, weights, the three
quenching effects, and that the classes are hard but separable."""
from __future__ import annotations

import numpy as np
import pytest

from hepspark.data.jet_images import (
    IMAGE_SIZE,
    PT_RANGE,
    generate_jets,
    physical_weight,
    summary_features,
)
from hepspark.metrics import roc_auc

N_JETS = 12_000


@pytest.fixture(scope="module")
def jets():
    return generate_jets(N_JETS, seed=2020)


def test_layout_sparsity_and_labels(jets):
    images, labels, weights = jets
    assert images.shape == (N_JETS, IMAGE_SIZE, IMAGE_SIZE, 2) and images.dtype == np.float32
    assert set(np.unique(labels)) == {0, 1}
    assert abs(labels.mean() - 0.5) < 0.03
    assert (images >= 0).all() and np.isfinite(images).all()
    lit = (images.sum(axis=3) > 0).mean()
    assert 0.005 < lit < 0.1, "calorimeter images must be sparse"
    # Hard deposits (channel 1) are collimated: most of their pT is near the axis.
    centre = images[:, 12:21, 12:21, 1].sum()
    assert centre > 0.6 * images[..., 1].sum()


def test_same_seed_same_jets_and_other_seed_other_jets():
    a = generate_jets(50, seed=5)
    b = generate_jets(50, seed=5)
    c = generate_jets(50, seed=6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    assert generate_jets(0, seed=1)[0].shape == (0, IMAGE_SIZE, IMAGE_SIZE, 2)
    with pytest.raises(ValueError, match="n_jets"):
        generate_jets(-1, seed=1)


def test_physical_weights_follow_the_steep_spectrum(jets):
    _, _, weights = jets
    assert (weights > 0).all()
    assert abs(weights.mean() - 1.0) < 0.1  # normalized to mean 1 under the sampling
    lo, hi = PT_RANGE
    # pT^-5 physical over 1/pT sampled: a jet at the low edge weighs (hi/lo)^4 more.
    ratio = physical_weight(np.array([lo]))[0] / physical_weight(np.array([hi]))[0]
    assert ratio == pytest.approx((hi / lo) ** 4, rel=1e-5)


def test_quenched_jets_lose_energy_broaden_and_fragment_softer(jets):
    images, labels, weights = jets
    total, lit, radius, hard_fraction = summary_features(images).T
    q, v = labels == 1, labels == 0
    # Energy loss: lower total pT on average (weighted and not).
    assert total[q].mean() < 0.97 * total[v].mean()
    assert np.average(total[q], weights=weights[q]) < np.average(total[v], weights=weights[v])
    # Broadening: the pT-weighted mean radius grows.
    assert radius[q].mean() > 1.2 * radius[v].mean()
    # Softer fragmentation: more lit cells, less of the pT in the hard channel.
    assert lit[q].mean() > lit[v].mean()
    assert hard_fraction[q].mean() < hard_fraction[v].mean()


def test_classes_are_hard_but_separable(jets):
    from sklearn.linear_model import LogisticRegression

    images, labels, weights = jets
    f = summary_features(images)
    x = np.column_stack([np.log(f[:, 0]), f[:, 1:]])
    x = (x - x.mean(0)) / x.std(0)
    half = N_JETS // 2
    model = LogisticRegression(max_iter=1000).fit(x[:half], labels[:half])
    scores = model.predict_proba(x[half:])[:, 1]
    auc = roc_auc(labels[half:], scores, sample_weight=weights[half:])
    # Measured 0.78-0.79: far from chance, far from a trivial separation.
    assert 0.65 < auc < 0.95, auc
