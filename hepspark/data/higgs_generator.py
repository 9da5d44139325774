"""Vectorized toy Monte Carlo for the UCI HIGGS benchmark (Baldi, Sadowski, Whiteson 2014).

Events come out in the exact column layout of the UCI ``HIGGS.csv`` file (label, 21
low-level, 7 high-level features; GeV and radians, not the UCI file's normalisation).

Physics, for an 8 TeV LHC-like collider:

* Signal: ``gg -> H0 (425) -> W H+- (325)``, ``H+- -> W h0 (125)``, ``h0 -> b b``.
  Background: ``t t -> W b W b``. Exactly one W decays to a massless lepton and a
  neutrino, the other to two light quarks; for the signal the leptonic W is picked 50/50.
* The parent (H0, or the t t system with ``m_tt = m_t1 + m_t2 + Gamma(1.5, 90 GeV)``) gets
  a falling pT spectrum (Gamma(2, 15 GeV), mean 30 GeV), a Gaussian rapidity (sigma 1.2)
  and an ISR jet balancing its pT. Every decay is an isotropic two-body decay in the
  parent rest frame with truncated Breit-Wigner masses, boosted to the lab.
* Detector: jets with sigma_E/E = 50%/sqrt(E) + 4% (in quadrature), an out-of-cone loss
  ``exp(-x)``, ``x ~ Exp(4%)``, and 0.025 smearing in eta and phi; lepton pT resolution
  1.5%; MET = neutrino pT + Gaussian noise of 0.5 sqrt(sum ET) per component. b-tag is a
  3-level discriminant (0 none, 1 loose, 2 tight): 70% (45% tight) of b jets and 3%
  (0.5% tight) of light jets have level >= 1.
* Selection: the lepton with pT > 20 GeV, |eta| < 2.5; at least 4 jets with pT > 20 GeV,
  |eta| < 2.5, of which the 4 leading are kept (ordered by pT); >= 2 of those with b-tag >= 1.
  The cuts are applied to the float32 values that are written out.
* High-level features use the detector-level (output) objects only, all massless: the two
  jets with the highest b-tag (ties: higher pT) are the b candidates, the other two the
  hadronic W (``m_jj``); the neutrino pz comes from the W-mass constraint (smaller |pz|;
  real part if there is no real solution). ``m_jjj`` uses the b candidate that brings it
  closer to m_top, ``m_jlv`` the other one. ``m_wbb`` is the larger of m(jj b b) and
  m(lv b b): for the signal the W from the H+- always gives the larger value (the H0
  leaves only ~20 GeV for W H+-, so the wrong W with h0 is at most ~280 GeV < 325 GeV),
  hence the right pairing is picked without truth information.
"""
from __future__ import annotations

import operator

import numpy as np

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
COLUMNS: tuple[str, ...] = ("label",) + FEATURES

# Masses and widths in GeV. Each Breit-Wigner is truncated to mass +- WINDOW; where that
# could close a decay (H0 -> W H+- has only ~20 GeV to spare) the W is also truncated to
# the available phase space.
# (mass, width, window) per resonance.
W_BOSON = (80.4, 2.1, 15.0)
TOP = (172.5, 1.4, 10.0)
HEAVY_HIGGS = (425.0, 3.0, 15.0)
CHARGED_HIGGS = (325.0, 2.0, 10.0)
LIGHT_HIGGS = (125.0, 0.1, 1.0)
M_W, M_TOP = W_BOSON[0], TOP[0]
M_B = 4.7

# Production and detector parameters (see the module docstring).
PT_SHAPE, PT_SCALE = 2.0, 15.0
RAPIDITY_SIGMA, ISR_ETA_SIGMA = 1.2, 2.0
MTT_SHAPE, MTT_SCALE = 1.5, 90.0
JET_STOCHASTIC, JET_CONSTANT, JET_ANGLE = 0.5, 0.04, 0.025
FSR_PROBABILITY, FSR_Z, FSR_DR = 0.3, (0.05, 0.5), (0.4, 1.6)
B_SEMILEPTONIC, B_NU_FRACTION_MAX = 0.4, 0.4
LEPTON_RESOLUTION = 0.015
MET_STOCHASTIC = 0.5
BTAG_B = (0.70, 0.45)  # P(level >= 1), P(level == 2)
BTAG_LIGHT = (0.03, 0.005)
BTAG_C = (0.2, 0.05)
W_TO_CHARM = 0.5
PT_CUT, ETA_CUT = 20.0, 2.5

_CHUNK = 1 << 16  # raw events per simulation step: keeps the temporaries cache-sized
_N_JETS = 9  # 2 b quarks, 2 light quarks from the hadronic W, 1 ISR and 4 FSR gluons


def generate_events(
    n_rows: int,
    seed: int | np.random.SeedSequence | np.random.Generator,
    signal_fraction: float = 0.53,
) -> np.ndarray:
    """Return ``n_rows`` selected events as float32 ``(n_rows, 29)`` in ``COLUMNS`` order.

    Column 0 is the label (1.0 signal, 0.0 background, drawn per event with
    P(signal) = ``signal_fraction``); the same seed gives bit-identical output.

    >>> events = generate_events(1000, seed=7)
    >>> events.shape, events.dtype
    ((1000, 29), dtype('float32'))
    """
    n_rows = operator.index(n_rows)
    if n_rows < 0:
        raise ValueError(f"n_rows must be >= 0, got {n_rows}")
    if not 0.0 < signal_fraction < 1.0:
        raise ValueError(f"signal_fraction must be in (0, 1), got {signal_fraction}")
    rng = np.random.default_rng(seed)
    is_signal = rng.random(n_rows) < signal_fraction
    out = np.empty((n_rows, len(COLUMNS)), dtype=np.float32)
    out[:, 0] = is_signal
    out[is_signal, 1:] = _generate_class(rng, int(is_signal.sum()), signal=True)
    out[~is_signal, 1:] = _generate_class(rng, int((~is_signal).sum()), signal=False)
    return out


def _generate_class(rng: np.random.Generator, n: int, signal: bool) -> np.ndarray:
    """Simulate chunks until ``n`` events pass the selection; return their 28 features."""
    parts = []
    accepted, simulated = 0, 0
    while accepted < n:
        # Oversample by the acceptance seen so far (a pessimistic 5% before any chunk),
        # so that a small request costs one small chunk and a large one few extra events.
        acceptance = max(accepted / simulated, 0.01) if simulated else 0.05
        size = min(int((n - accepted) / acceptance * 1.1) + 64, _CHUNK)
        rows = _simulate(rng, size, signal)
        parts.append(rows)
        accepted += len(rows)
        simulated += size
    return np.concatenate(parts)[:n]


def _simulate(rng: np.random.Generator, n: int, signal: bool) -> np.ndarray:
    """Generate ``n`` raw events of one class; return features of those passing the cuts."""
    # Jets are (b, b, q1, q2, ISR, 4 FSR gluons). Drawing the b-tags first and dropping
    # events with fewer than two tagged jets (necessary for the final requirement) halves
    # the kinematics. Half of the hadronic W decays are c s: q1 is then a charm jet.
    p_any = np.repeat([[BTAG_B[0]], [BTAG_B[0]]] + [[BTAG_LIGHT[0]]] * 7, n, axis=1)
    p_tight = np.repeat([[BTAG_B[1]], [BTAG_B[1]]] + [[BTAG_LIGHT[1]]] * 7, n, axis=1)
    is_charm = rng.random(n) < W_TO_CHARM
    p_any[2, is_charm], p_tight[2, is_charm] = BTAG_C
    u = rng.random((_N_JETS, n))
    tag = (u < p_any).astype(np.int8) + (u < p_tight)
    tag = tag[:, (tag > 0).sum(axis=0) >= 2]
    n = tag.shape[1]

    chain = _signal_chain if signal else _background_chain
    lep, nu, quarks, isr_pt, isr_phi = chain(rng, n)
    pt, eta, phi = _pt_eta_phi(quarks)

    # Semileptonic b (and cascade c) decays: a neutrino takes part of the b-jet momentum.
    nu_fraction = np.where(
        rng.random((2, n)) < B_SEMILEPTONIC, rng.uniform(0.0, B_NU_FRACTION_MAX, (2, n)), 0.0
    )
    nu_x = nu[1] + (nu_fraction * pt[:2] * np.cos(phi[:2])).sum(axis=0)
    nu_y = nu[2] + (nu_fraction * pt[:2] * np.sin(phi[:2])).sum(axis=0)
    pt[:2] *= 1.0 - nu_fraction

    # Final-state radiation outside the jet cone: a gluon takes a fraction z of the quark
    # pT at a distance dR in (eta, phi); z and dR log-uniform (soft and collinear
    # enhancement). It is the physical out-of-cone loss and an extra jet to confuse the
    # jet assignment. Without emission the gluon has pT 0 and fails the cuts.
    emits = rng.random((4, n)) < FSR_PROBABILITY
    z = np.where(emits, FSR_Z[0] * (FSR_Z[1] / FSR_Z[0]) ** rng.random((4, n)), 0.0)
    d_r = FSR_DR[0] * (FSR_DR[1] / FSR_DR[0]) ** rng.random((4, n))
    angle = rng.uniform(-np.pi, np.pi, (4, n))
    isr_eta = rng.normal(0.0, ISR_ETA_SIGMA, (1, n))
    pt = np.concatenate([pt * (1.0 - z), isr_pt[None], pt * z])
    eta = np.concatenate([eta, isr_eta, eta + d_r * np.cos(angle)])
    phi = np.concatenate([phi, isr_phi[None], phi + d_r * np.sin(angle)])

    # Calorimeter: stochastic and constant terms in quadrature, applied to the energy
    # (floored at 1 GeV so that the pT-0 gluons of non-emitting quarks stay finite).
    energy = np.maximum(pt * np.cosh(eta), 1.0)
    sigma = np.sqrt(JET_STOCHASTIC**2 / energy + JET_CONSTANT**2)
    response = 1.0 + sigma * rng.standard_normal((_N_JETS, n))
    # A 50%/sqrt(E) Gaussian can go negative for very soft jets; those fail the cut anyway.
    jet_pt = np.maximum(pt * response, 0.0).astype(np.float32)
    jet_eta = (eta + rng.normal(0.0, JET_ANGLE, (_N_JETS, n))).astype(np.float32)
    jet_phi = _wrap(phi + rng.normal(0.0, JET_ANGLE, (_N_JETS, n))).astype(np.float32)

    lep_pt, lep_eta, lep_phi = _pt_eta_phi(lep)
    lep_pt = lep_pt * (1.0 + LEPTON_RESOLUTION * rng.standard_normal(n))
    sum_et = jet_pt.sum(axis=0, dtype=np.float64) + lep_pt
    met_sigma = MET_STOCHASTIC * np.sqrt(sum_et)
    met_x = nu_x + met_sigma * rng.standard_normal(n)
    met_y = nu_y + met_sigma * rng.standard_normal(n)
    lep_pt, lep_eta, lep_phi = (x.astype(np.float32) for x in (lep_pt, lep_eta, lep_phi))

    # Selection on the float32 values that are written out, so the cuts hold exactly.
    good = (jet_pt > PT_CUT) & (np.abs(jet_eta) < ETA_CUT)
    order = np.argsort(np.where(good, -jet_pt, np.inf), axis=0, kind="stable")[:4]
    jet_pt, jet_eta, jet_phi, tag, good = (
        np.take_along_axis(x, order, axis=0) for x in (jet_pt, jet_eta, jet_phi, tag, good)
    )
    keep = (
        good[3]
        & ((tag > 0).sum(axis=0) >= 2)
        & (lep_pt > PT_CUT)
        & (np.abs(lep_eta) < ETA_CUT)
    )

    low = np.empty((int(keep.sum()), len(LOW_LEVEL_FEATURES)), dtype=np.float32)
    low[:, 0], low[:, 1], low[:, 2] = lep_pt[keep], lep_eta[keep], lep_phi[keep]
    low[:, 3] = np.hypot(met_x[keep], met_y[keep])
    low[:, 4] = np.arctan2(met_y[keep], met_x[keep])
    for i in range(4):
        low[:, 5 + 4 * i] = jet_pt[i, keep]
        low[:, 6 + 4 * i] = jet_eta[i, keep]
        low[:, 7 + 4 * i] = jet_phi[i, keep]
        low[:, 8 + 4 * i] = tag[i, keep]
    return np.concatenate([low, _high_level(low)], axis=1)


def _signal_chain(rng: np.random.Generator, n: int):
    """H0 -> W H+-, H+- -> W h0, h0 -> b b; one W (chosen 50/50) to l nu, the other to q q."""
    m_h0 = _breit_wigner(rng, n, *HEAVY_HIGGS)
    m_hpm = _breit_wigner(rng, n, *CHARGED_HIGGS)
    m_h = _breit_wigner(rng, n, *LIGHT_HIGGS)
    m_wa = _breit_wigner(rng, n, *W_BOSON, upper=m_h0 - m_hpm)
    m_wb = _breit_wigner(rng, n, *W_BOSON)
    h0, pt, phi = _produce(rng, m_h0)
    w_a, hpm = _decay(rng, h0, m_h0, m_wa, m_hpm)
    w_b, h = _decay(rng, hpm, m_hpm, m_wb, m_h)
    b1, b2 = _decay(rng, h, m_h, M_B, M_B)
    a_is_leptonic = rng.random(n) < 0.5
    w_lep, w_had = np.where(a_is_leptonic, w_a, w_b), np.where(a_is_leptonic, w_b, w_a)
    m_lep, m_had = np.where(a_is_leptonic, m_wa, m_wb), np.where(a_is_leptonic, m_wb, m_wa)
    lep, nu = _decay(rng, w_lep, m_lep, 0.0, 0.0)
    q1, q2 = _decay(rng, w_had, m_had, 0.0, 0.0)
    return lep, nu, np.stack([b1, b2, q1, q2], axis=1), pt, phi + np.pi


def _background_chain(rng: np.random.Generator, n: int):
    """t t -> (W b)(W b) with the first W to l nu and the second to q q."""
    m_t1 = _breit_wigner(rng, n, *TOP)
    m_t2 = _breit_wigner(rng, n, *TOP)
    m_w1 = _breit_wigner(rng, n, *W_BOSON)
    m_w2 = _breit_wigner(rng, n, *W_BOSON)
    # Falling m_tt spectrum above threshold: peaks ~45 GeV above it, mean ~480 GeV.
    m_tt = m_t1 + m_t2 + rng.gamma(MTT_SHAPE, MTT_SCALE, n)
    tt, pt, phi = _produce(rng, m_tt)
    t1, t2 = _decay(rng, tt, m_tt, m_t1, m_t2)
    w1, b1 = _decay(rng, t1, m_t1, m_w1, M_B)
    w2, b2 = _decay(rng, t2, m_t2, m_w2, M_B)
    lep, nu = _decay(rng, w1, m_w1, 0.0, 0.0)
    q1, q2 = _decay(rng, w2, m_w2, 0.0, 0.0)
    return lep, nu, np.stack([b1, b2, q1, q2], axis=1), pt, phi + np.pi


def _high_level(low: np.ndarray) -> np.ndarray:
    """The 7 high-level features (``HIGH_LEVEL_FEATURES`` order) from the 21 low-level ones.

    Uses the detector-level (written-out) objects only, as the paper does.
    """
    low = np.asarray(low, dtype=np.float64)
    lep = _four_vector(low[:, 0], low[:, 1], low[:, 2])
    jets = low[:, 5:21].reshape(-1, 4, 4)  # (event, jet, [pt, eta, phi, btag])
    # b candidates: highest b-tag, ties to the higher pT (jets are pT ordered, sort stable).
    order = np.argsort(-jets[:, :, 3], axis=1, kind="stable")
    jets = np.take_along_axis(jets, order[:, :, None], axis=1)
    b1, b2, j1, j2 = (_four_vector(jets[:, i, 0], jets[:, i, 1], jets[:, i, 2]) for i in range(4))
    nu = _neutrino(lep, low[:, 3], low[:, 4])

    w_had = j1 + j2
    w_lep = lep + nu
    bb = b1 + b2
    m_jjj_1, m_jjj_2 = _mass(w_had + b1), _mass(w_had + b2)
    first = np.abs(m_jjj_1 - M_TOP) <= np.abs(m_jjj_2 - M_TOP)
    return np.stack(
        [
            _mass(w_had),
            np.where(first, m_jjj_1, m_jjj_2),
            _mass(w_lep),
            np.where(first, _mass(w_lep + b2), _mass(w_lep + b1)),
            _mass(bb),
            np.maximum(_mass(w_had + bb), _mass(w_lep + bb)),
            _mass(w_had + w_lep + bb),
        ],
        axis=1,
    ).astype(np.float32)


def _neutrino(lep: np.ndarray, met: np.ndarray, met_phi: np.ndarray) -> np.ndarray:
    """Neutrino four-vector from MET and m(l nu) = m_W: the smaller-|pz| solution."""
    px, py = met * np.cos(met_phi), met * np.sin(met_phi)
    lep_pt2 = lep[1] ** 2 + lep[2] ** 2
    mu = 0.5 * M_W**2 + lep[1] * px + lep[2] * py
    a = mu * lep[3] / lep_pt2
    disc = a**2 - (lep[0] ** 2 * met**2 - mu**2) / lep_pt2
    # No real solution (MET mismeasured): take the real part, a.
    pz = a - np.sign(a) * np.sqrt(np.maximum(disc, 0.0))
    return np.stack([np.sqrt(met**2 + pz**2), px, py, pz])


def _btag_level(u: np.ndarray, p_any: float, p_tight: float) -> np.ndarray:
    """Discrete discriminant 0/1/2 from uniforms: P(>= 1) = p_any, P(2) = p_tight."""
    return (u < p_any).astype(np.int8) + (u < p_tight)


def _breit_wigner(
    rng: np.random.Generator,
    n: int,
    mass: float,
    width: float,
    window: float,
    upper: np.ndarray | float = np.inf,
) -> np.ndarray:
    """Cauchy (non-relativistic Breit-Wigner) masses in [mass - window, min(mass + window, upper)].

    Sampled by inverting the truncated CDF, so no event is rejected.
    """
    lo = np.arctan(-2.0 * window / width)
    hi = np.arctan(2.0 * (np.minimum(mass + window, upper) - mass) / width)
    return mass + 0.5 * width * np.tan(lo + (hi - lo) * rng.random(n))


def _produce(rng: np.random.Generator, mass: np.ndarray):
    """Parent four-vector with a falling pT spectrum and Gaussian rapidity; also pT, phi."""
    n = len(mass)
    pt = rng.gamma(PT_SHAPE, PT_SCALE, n)
    y = rng.normal(0.0, RAPIDITY_SIGMA, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    mt = np.sqrt(mass**2 + pt**2)
    return np.stack([mt * np.cosh(y), pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(y)]), pt, phi


def _decay(
    rng: np.random.Generator,
    parent: np.ndarray,
    m: np.ndarray,
    m1: np.ndarray | float,
    m2: np.ndarray | float,
) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic two-body decay of ``parent`` (4, n) with mass ``m`` into masses m1, m2."""
    n = parent.shape[1]
    # Clipped: a W truncated to the H0 -> W H+- threshold can round to just below it.
    p = np.sqrt(np.maximum((m**2 - (m1 + m2) ** 2) * (m**2 - (m1 - m2) ** 2), 0.0)) / (2.0 * m)
    cos_t = rng.uniform(-1.0, 1.0, n)
    sin_t = np.sqrt(1.0 - cos_t**2)
    phi = rng.uniform(-np.pi, np.pi, n)
    px, py = p * sin_t * np.cos(phi), p * sin_t * np.sin(phi)
    d1 = np.stack([np.sqrt(p**2 + m1**2), px, py, p * cos_t])
    d1 = _boost(d1, parent, m)
    return d1, parent - d1  # momentum conservation is cheaper than a second boost


def _boost(p: np.ndarray, parent: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Boost ``p`` from the rest frame of ``parent`` (mass ``m``) to the frame of ``parent``."""
    energy = (parent[0] * p[0] + (parent[1:] * p[1:]).sum(axis=0)) / m
    k = (p[0] + energy) / (parent[0] + m)
    return np.concatenate([energy[None], p[1:] + k * parent[1:]])


def _four_vector(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Massless (E, px, py, pz) of shape (4, n)."""
    return np.stack([pt * np.cosh(eta), pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)])


def _pt_eta_phi(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transverse momentum, pseudorapidity and azimuth of (4, ...) four-vectors."""
    pt = np.hypot(p[1], p[2])
    return pt, np.arcsinh(p[3] / pt), np.arctan2(p[2], p[1])


def _mass(p: np.ndarray) -> np.ndarray:
    """Invariant mass of (4, n) four-vectors (0 where rounding makes m^2 slightly negative)."""
    return np.sqrt(np.maximum(p[0] ** 2 - (p[1:] ** 2).sum(axis=0), 0.0))


def _wrap(phi: np.ndarray) -> np.ndarray:
    """Azimuth wrapped to [-pi, pi)."""
    return (phi + np.pi) % (2.0 * np.pi) - np.pi
