"""Physics tests of the toy LArTPC single-particle images (MicroBooNE classes)."""
from __future__ import annotations

import numpy as np
import pytest

from hepspark.data.lartpc_images import (
    CLASS_NAMES,
    ELECTRON,
    GAMMA,
    MASS_MEV,
    MUON,
    PION,
    PROTON,
    csda_range_cm,
    generate_lartpc,
    generate_lartpc_with_truth,
    stopping_power,
)

PIXEL_CM = 0.5


def kinetic(p, kind):
    m = MASS_MEV[kind]
    return np.sqrt(p**2 + m**2) - m


def sample(kind, n=150, momentum=None, seed=1):
    images, labels, truth = generate_lartpc_with_truth(n, seed=seed, classes=(kind,))
    assert (labels == kind).all()
    return images[..., 0], truth


def test_bethe_bloch_minimum_and_ranges():
    # PDG: minimum ionization in liquid argon 2.105 MeV/cm.
    dedx = stopping_power(np.geomspace(10, 5000, 400), MASS_MEV[MUON])
    assert dedx.min() == pytest.approx(2.105, abs=0.1)
    # At equal momentum a proton stops much sooner than a muon (heavier: slower, more dE/dx).
    for p in (300.0, 500.0):
        assert csda_range_cm(kinetic(p, PROTON), MASS_MEV[PROTON]) < 0.2 * csda_range_cm(
            kinetic(p, MUON), MASS_MEV[MUON])
    # NIST PSTAR: a 125 MeV proton has a CSDA range of ~14.6 g/cm^2 in argon (~10.5 cm).
    assert 9.0 < csda_range_cm(125.0, MASS_MEV[PROTON]) < 12.5
    # dE/dx rises as the particle slows: the Bragg peak.
    assert stopping_power(5.0, MASS_MEV[PROTON]) > 5 * stopping_power(100.0, MASS_MEV[PROTON])


def test_layout_determinism_and_classes():
    images, labels, weights = generate_lartpc(60, seed=4)
    again = generate_lartpc(60, seed=4)
    np.testing.assert_array_equal(images, again[0])
    assert images.shape == (60, 64, 64, 1) and images.dtype == np.float32
    assert set(labels) <= set(range(5)) and len(set(labels)) >= 4
    assert (weights == 1).all()
    assert ((images > 0).mean(axis=(1, 2, 3)) < 0.2).all(), "wire-plane images are sparse"
    assert len(CLASS_NAMES) == 5
    small, _, _ = generate_lartpc(3, seed=1, image_size=32)
    assert small.shape == (3, 32, 32, 1)
    with pytest.raises(ValueError, match="classes"):
        generate_lartpc(3, seed=1, classes=(7,))


def test_protons_are_short_with_a_bragg_peak_at_the_far_end():
    protons, p_truth = sample(PROTON, n=300)
    muons, m_truth = sample(MUON, n=300)
    fast = p_truth["momentum"] > 350  # long enough protons (range > 4 cm = 8 pixels)
    lit_p = (protons > 0).sum(axis=(1, 2))
    lit_m = (muons > 0).sum(axis=(1, 2))
    assert lit_p.mean() < 0.5 * lit_m.mean()
    # The brightest pixel of a stopping proton is at its far end, away from the vertex.
    far = []
    for image, vertex in zip(protons[fast], p_truth["vertex_px"][fast]):
        rows, cols = np.nonzero(image)
        dist = np.hypot(rows + 0.5 - vertex[0], cols + 0.5 - vertex[1])
        brightest = np.argmax(image[rows, cols])
        far.append(dist[brightest] >= 0.6 * dist.max())
    assert np.mean(far) > 0.7, np.mean(far)
    # Protons deposit far more per lit pixel than minimum-ionizing muons.
    per_pixel = lambda im: im.sum(axis=(1, 2)) / np.maximum((im > 0).sum(axis=(1, 2)), 1)  # noqa: E731
    assert per_pixel(protons[fast]).mean() > 2 * per_pixel(muons).mean()


def test_photon_showers_start_after_a_gap_electron_showers_at_the_vertex():
    def gap_cm(images, truth):
        gaps = []
        for image, vertex in zip(images, truth["vertex_px"]):
            rows, cols = np.nonzero(image)
            gaps.append(np.hypot(rows + 0.5 - vertex[0], cols + 0.5 - vertex[1]).min())
        return np.array(gaps) * PIXEL_CM

    gammas, g_truth = sample(GAMMA, n=200)
    electrons, e_truth = sample(ELECTRON, n=200)
    assert np.median(gap_cm(gammas, g_truth)) > 2.0
    assert np.median(gap_cm(electrons, e_truth)) < 0.6
    assert np.median(gap_cm(gammas, g_truth)) > 5 * np.median(gap_cm(electrons, e_truth))


def test_showers_are_wider_than_tracks_and_pions_interact():
    def transverse_spread(images):
        spreads = []
        for image in images:
            rows, cols = np.nonzero(image)
            if len(rows) < 3:
                continue
            cov = np.cov(np.vstack([rows, cols]), aweights=image[rows, cols])
            spreads.append(np.sqrt(max(np.linalg.eigvalsh(cov)[0], 0.0)))
        return np.array(spreads)

    electrons, _ = sample(ELECTRON, n=200, seed=3)
    muons, _ = sample(MUON, n=200, seed=3)
    pions, _ = sample(PION, n=200, seed=3)
    assert np.median(transverse_spread(electrons)) > 1.5 * np.median(transverse_spread(muons))
    # Kinks and interaction stars make pion images less line-like than muon images.
    assert np.mean(transverse_spread(pions)) > np.mean(transverse_spread(muons))
