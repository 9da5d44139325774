"""Toy calorimeter images of jets in heavy-ion collisions, quenched or not (seed 000).

Each jet is a ``33 x 33 x 2`` image on an (eta, phi) grid of 0.04 x 0.04 cells centred on
the jet axis (so it spans +-0.66 around it, beyond the R = 0.4 jet cone). The two
channels are the two orders of magnitude of the deposits, as in the seed study: channel 0
holds the transverse momentum (GeV) of soft particles (pT < ``HARD_PT`` = 4 GeV) summed
per cell, channel 1 that of the hard ones. Label 1 = quenched, 0 = not quenched.

Physics of a jet, vectorized over a chunk of jets:

* Initial parton pT is sampled log-uniform in [100, 400] GeV; the physical spectrum falls
  like pT^-5, so every jet carries the **physical weight** ``(pT/100)^-4 / E[...]`` (the
  ratio of the two densities, normalized to mean 1 under the sampling), which is how
  pT-hat-binned Monte Carlo samples are weighted. Half of the jets are gluon jets (more,
  wider constituents: colour factor C_A/C_F), in both classes.
* Fragmentation: the number of constituents is Poisson with a mean growing like
  ln(pT); momentum fractions z are Dirichlet(alpha) (small alpha = hard fragmentation,
  a few constituents carry most of the pT). Each constituent sits at an angle
  ``theta = kT / (z pT)`` from the axis, kT exponential (mean 0.5 GeV, x1.3 for gluons):
  soft constituents are wide, hard ones collinear.
* Quenching (label 1), driven by a path length L ~ U(0, 1) through the medium:
  - **energy loss**: the jet loses a fraction eps = 0.3 L u^0.5 (u ~ U(0,1)) of its pT;
    70% of the lost pT leaves the image, 30% is re-emitted as soft medium-induced
    particles (exponential pT, mean 2 GeV) at wide angles (0.15-0.66);
  - **softer fragmentation**: alpha rises from 0.6 to 0.6 + 0.3 L and the multiplicity by
    up to 20%;
  - **broadening**: each constituent's kT gets a medium kick, kT^2 += qhat L x Exp(1),
    qhat = 0.4 GeV^2.
  Many quenched jets have a short path and look unquenched; a gluon jet looks like a
  quenched quark jet: the classes overlap, as they do in the seed study.
* Detector: the heavy-ion underlying event adds soft deposits to random cells (Poisson,
  0.04 per cell, exponential pT with mean 0.6 GeV), cells get a 50%/sqrt(pT) resolution and a 0.25 GeV
  threshold: images stay sparse (a few % of cells lit).

>>> images, labels, weights = generate_jets(100, seed=1)
>>> images.shape, labels.dtype, weights.dtype
((100, 33, 33, 2), dtype('int32'), dtype('float32'))
"""
from __future__ import annotations

import operator

import numpy as np

IMAGE_SIZE = 33
CELL = 0.04  # eta/phi cell size; the image spans +-0.66
HARD_PT = 4.0  # GeV: channel 0 below, channel 1 above
CLASS_NAMES = ("not_quenched", "quenched")

PT_RANGE = (100.0, 400.0)  # sampled log-uniform
SPECTRUM_INDEX = 5.0  # physical dN/dpT ~ pT^-n
GLUON_FRACTION = 0.5
MULTIPLICITY = (2.0, 3.5, 5.0)  # mean n = a + b ln(pT / c), quarks
GLUON_MULTIPLICITY = 1.5
ALPHA_VACUUM = 0.6
KT_MEAN, GLUON_KT = 0.5, 1.3  # GeV
MAX_LOSS = 0.3
LOST_OUT_OF_IMAGE = 0.7
MEDIUM_PT_MEAN = 2.0  # GeV, medium-induced soft particles
MEDIUM_ANGLE = (0.15, 0.66)
ALPHA_QUENCH, MULTIPLICITY_QUENCH = 0.3, 0.2
QHAT = 0.4  # GeV^2 (times L in units of the medium length)
UE_PER_CELL, UE_PT_MEAN = 0.04, 0.6  # underlying event
RESOLUTION, THRESHOLD = 0.5, 0.25

_CHUNK = 2048  # jets per vectorized step: keeps the temporaries at a few tens of MB


def physical_weight(pt: np.ndarray) -> np.ndarray:
    """Ratio of the physical pT^-n spectrum to the log-uniform sampling, mean 1."""
    lo, hi = PT_RANGE
    x_hi = hi / lo
    k = SPECTRUM_INDEX - 1.0
    # E[(pT/lo)^-k] under dpT/pT on [lo, hi] = (1 - x_hi^-k) / (k ln x_hi)
    norm = (1.0 - x_hi**-k) / (k * np.log(x_hi))
    return ((pt / lo) ** -k / norm).astype(np.float32)


def generate_jets(
    n_jets: int,
    seed: int | np.random.SeedSequence | np.random.Generator,
    quenched_fraction: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_jets`` jet images ``float32 [n, 33, 33, 2]``, labels ``int32 [n]`` (1 quenched)
    and physical weights ``float32 [n]``; the same seed gives bit-identical output."""
    n_jets = operator.index(n_jets)
    if n_jets < 0:
        raise ValueError(f"n_jets must be >= 0, got {n_jets}")
    if not 0.0 <= quenched_fraction <= 1.0:
        raise ValueError(f"quenched_fraction must be in [0, 1], got {quenched_fraction}")
    rng = np.random.default_rng(seed)
    images = np.empty((n_jets, IMAGE_SIZE, IMAGE_SIZE, 2), np.float32)
    labels = np.empty(n_jets, np.int32)
    weights = np.empty(n_jets, np.float32)
    for start in range(0, n_jets, _CHUNK):
        stop = min(start + _CHUNK, n_jets)
        quenched = rng.random(stop - start) < quenched_fraction
        images[start:stop], weights[start:stop] = _simulate(rng, quenched)
        labels[start:stop] = quenched
    return images, labels, weights


def _simulate(rng: np.random.Generator, quenched: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(quenched)
    lo, hi = PT_RANGE
    pt = lo * np.exp(np.log(hi / lo) * rng.random(n))
    gluon = rng.random(n) < GLUON_FRACTION
    path = np.where(quenched, rng.random(n), 0.0)  # path length in the medium, 0..1
    loss = MAX_LOSS * path * np.sqrt(rng.random(n))
    pt_jet = pt * (1.0 - loss)
    pt_medium = pt * loss * (1.0 - LOST_OUT_OF_IMAGE)

    # Constituents of the jet proper: multiplicity, Dirichlet momentum fractions, angles.
    a, b, c = MULTIPLICITY
    mean_n = (a + b * np.log(pt / c)) * np.where(gluon, GLUON_MULTIPLICITY, 1.0)
    mean_n *= 1.0 + MULTIPLICITY_QUENCH * path
    n_const = np.maximum(rng.poisson(mean_n), 1)
    jet = np.repeat(np.arange(n), n_const)
    alpha = ALPHA_VACUUM + ALPHA_QUENCH * path
    share = rng.standard_gamma(alpha[jet])
    share_sum = np.bincount(jet, weights=share, minlength=n)
    z = share / share_sum[jet]
    z = np.where(np.isfinite(z), z, 1.0 / n_const[jet])
    const_pt = z * pt_jet[jet]
    kt = rng.exponential(KT_MEAN, jet.size) * np.where(gluon[jet], GLUON_KT, 1.0)
    kt = np.sqrt(kt**2 + QHAT * path[jet] * rng.exponential(1.0, jet.size))
    theta = kt / np.maximum(const_pt, 1e-3)

    # Medium-induced soft particles carrying the re-emitted part of the lost pT.
    n_medium = rng.poisson(pt_medium / MEDIUM_PT_MEAN)
    medium = np.repeat(np.arange(n), n_medium)
    medium_pt = rng.exponential(MEDIUM_PT_MEAN, medium.size)
    # Rescale so that each jet's medium particles carry exactly its re-emitted pT.
    medium_sum = np.bincount(medium, weights=medium_pt, minlength=n)
    medium_pt *= (pt_medium / np.where(medium_sum > 0, medium_sum, 1.0))[medium]
    lo_angle, hi_angle = MEDIUM_ANGLE
    medium_theta = lo_angle + (hi_angle - lo_angle) * np.sqrt(rng.random(medium.size))

    owner = np.concatenate([jet, medium])
    p_t = np.concatenate([const_pt, medium_pt])
    angle = np.concatenate([theta, medium_theta])
    azimuth = 2 * np.pi * rng.random(owner.size)
    d_eta, d_phi = angle * np.cos(azimuth), angle * np.sin(azimuth)

    half = IMAGE_SIZE * CELL / 2
    inside = (np.abs(d_eta) < half) & (np.abs(d_phi) < half)
    row = np.floor((d_eta[inside] + half) / CELL).astype(np.int64)
    col = np.floor((d_phi[inside] + half) / CELL).astype(np.int64)
    channel = (p_t[inside] >= HARD_PT).astype(np.int64)
    cells = IMAGE_SIZE * IMAGE_SIZE * 2
    flat = owner[inside] * cells + (row * IMAGE_SIZE + col) * 2 + channel
    image = np.bincount(flat, weights=p_t[inside], minlength=n * cells)

    # Underlying event: soft deposits in random cells of channel 0, both classes.
    n_ue = rng.poisson(UE_PER_CELL * IMAGE_SIZE * IMAGE_SIZE, n)
    ue_jet = np.repeat(np.arange(n), n_ue)
    ue_cell = rng.integers(0, IMAGE_SIZE * IMAGE_SIZE, ue_jet.size)
    image += np.bincount(ue_jet * cells + ue_cell * 2, weights=rng.exponential(UE_PT_MEAN,
                         ue_jet.size), minlength=n * cells)

    # Calorimeter: stochastic resolution on lit cells, then the readout threshold.
    lit = image > 0
    image[lit] *= 1.0 + RESOLUTION / np.sqrt(image[lit]) * rng.standard_normal(int(lit.sum()))
    image[image < THRESHOLD] = 0.0
    return image.reshape(n, IMAGE_SIZE, IMAGE_SIZE, 2).astype(np.float32), physical_weight(pt)


def summary_features(images: np.ndarray) -> np.ndarray:
    """Per-jet ``[total pT, lit cells, pT-weighted mean radius, hard-channel fraction]``:
    the few numbers a physicist would cut on (used by tests and as a baseline)."""
    n = len(images)
    centres = (np.arange(IMAGE_SIZE) - (IMAGE_SIZE - 1) / 2) * CELL
    radius = np.hypot(centres[:, None], centres[None, :])
    per_cell = images.sum(axis=3)
    total = per_cell.reshape(n, -1).sum(axis=1)
    safe = np.where(total > 0, total, 1.0)
    mean_r = (per_cell * radius).reshape(n, -1).sum(axis=1) / safe
    hard = images[..., 1].reshape(n, -1).sum(axis=1) / safe
    lit = (per_cell > 0).reshape(n, -1).sum(axis=1)
    return np.column_stack([total, lit, mean_r, hard]).astype(np.float64)
