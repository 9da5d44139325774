"""Vectorized toy Monte Carlo for the UCI HIGGS benchmark (Baldi, Sadowski, Whiteson 2014).

Events come out in the exact column layout of the UCI ``HIGGS.csv`` file (label, 21
low-level, 7 high-level features) but in GeV and radians, without the UCI normalisation.

Physics, for an 8 TeV LHC-like collider:

* Signal ``gg -> H0 (425) -> W H+- (325)``, ``H+- -> W h0 (125)``, ``h0 -> b b``;
  background ``t t -> W b W b``. Exactly one W decays to a massless lepton and a neutrino,
  the other to two light quarks (``c s`` half of the time); for the signal the leptonic
  W is picked 50/50.
* The parent (H0, or the t t system with ``m_tt = m_t1 + m_t2 + Gamma(1.5, 90 GeV)``, a
  falling spectrum that peaks ~45 GeV above threshold) gets a pT from Gamma(1.5, 40 GeV)
  (mean 60 GeV: the broad recoil of gluon-fusion production at the LHC), a Gaussian
  rapidity (sigma 1.2) and an ISR jet balancing its pT. Every
  decay is a two-body decay in the parent rest frame with truncated Breit-Wigner masses,
  boosted to the lab; isotropic, except the W decays, which carry the W polarization:
  longitudinal in the signal (a scalar decaying to a W and a scalar), 70% longitudinal and
  30% left-handed from top quarks (Standard Model helicity fractions), the helicity angle
  measured to the W's lab direction. These angular distributions are low-level
  information that none of the 7 masses holds.
* Partons to jets: 40% of b jets lose U(0, 40%) of their momentum to a semileptonic-decay
  neutrino (which adds to the true MET); each quark radiates, with probability 50%, a
  gluon outside the jet cone (momentum fraction in [0.05, 0.5] and distance dR in
  [0.4, 1.6], both log-uniform): the out-of-cone loss tail, and an extra jet that can
  take a place among the 4 leading ones.
* Detector: jet energy resolution 8 GeV / E (noise, pile-up) + 80% / sqrt(E) + 5% (in
  quadrature; a hadron calorimeter with in-situ calibration, as in 2012 LHC data), 0.04
  smearing of the quark jets in eta and phi, and a b-jet energy correction on b-tagged
  jets that restores the average neutrino loss (x 1.087); lepton pT resolution 1.5%;
  MET = true invisible pT + Gaussian noise of 0.7 sqrt(sum ET) per component. The b-tag
  is a 3-level discriminant (0 none, 1 loose, 2 tight) with P(>= 1) = 60% for b, 25%
  for c and 5% for light jets (P(2) = 35%, 5%, 1%): a mistagged W jet is often among
  the b candidates.
* Selection: the lepton with pT > 20 GeV, |eta| < 2.5; at least 4 jets with pT > 20 GeV,
  |eta| < 2.5, of which the 4 leading are kept (ordered by pT); >= 2 of those with
  b-tag >= 1. The cuts are applied to the float32 values that are written out.
* High-level features use the written-out (detector-level, massless) objects only: the two
  leading b-tagged jets (b-tag >= 1: one working point, as a cut-based analysis uses; the
  tight level is left to the low-level column) are the b candidates, the other two the
  hadronic W (``m_jj``); the neutrino pz comes from the W-mass constraint (smaller |pz|,
  real part if there is no real solution), so ``m_lv`` is m_W or, without a real
  solution, above it. ``m_jjj`` uses the b candidate that brings it closer to m_top,
  ``m_jlv`` the other one. ``m_wbb`` is m(jj b b), the hadronic W with the b candidates,
  as an analysis that cannot tell the two Ws apart builds it: in the signal that is the
  W from the H+- only half of the time. With the jet resolution, the extra (ISR, FSR)
  jets among the 4 leading ones, the mistags and the neutrino ambiguity, this makes the
  masses about as weak as on the real sample: boosted trees reach AUC ~0.71 / 0.79 /
  0.81 on low-level / high-level / all features (the paper: 0.73 / 0.78 / 0.81).
"""

from __future__ import annotations

import operator

import numpy as np

from hepspark.data.higgs_schema import (
    COLUMNS,
    FEATURES,
    HIGH_LEVEL_FEATURES,
    LOW_LEVEL_FEATURES,
)

__all__ = [
    "COLUMNS", "FEATURES", "HIGH_LEVEL_FEATURES", "LOW_LEVEL_FEATURES", "four_vector",
    "generate_events", "invariant_mass", "neutrino_from_met",
]


# (mass, width, half window) per resonance, in GeV; Breit-Wigners are truncated to the window.
W_BOSON = (80.4, 2.1, 15.0)
TOP = (172.5, 1.4, 10.0)
HEAVY_HIGGS = (425.0, 3.0, 15.0)
CHARGED_HIGGS = (325.0, 2.0, 10.0)
LIGHT_HIGGS = (125.0, 0.1, 1.0)
M_W, M_TOP, M_B = W_BOSON[0], TOP[0], 4.7

# Production, parton-to-jet and detector parameters (see the module docstring).
PT_SHAPE, PT_SCALE = 1.5, 40.0
RAPIDITY_SIGMA, ISR_ETA_SIGMA = 1.2, 2.0
MTT_SHAPE, MTT_SCALE = 1.5, 90.0
W_TO_CHARM = 0.5
W_LONGITUDINAL_IN_TOP = 0.7
B_SEMILEPTONIC, B_NU_FRACTION_MAX = 0.4, 0.4
B_JET_CORRECTION = 1 / (1 - B_SEMILEPTONIC * B_NU_FRACTION_MAX / 2)
FSR_PROBABILITY, FSR_Z, FSR_DR = 0.5, (0.05, 0.5), (0.4, 1.6)
JET_NOISE, JET_STOCHASTIC, JET_CONSTANT, JET_ANGLE = 8.0, 0.8, 0.05, 0.04
LEPTON_RESOLUTION, MET_STOCHASTIC = 0.015, 0.7
BTAG_B, BTAG_C, BTAG_LIGHT = (0.6, 0.35), (0.25, 0.05), (0.05, 0.01)  # P(>= 1), P(2)
PT_CUT, ETA_CUT = 20.0, 2.5

_CHUNK = 1 << 16  # raw events per simulation step: keeps the temporaries cache-sized
_N_JETS = 9  # b, b, the two W quarks, ISR gluon, one FSR gluon per quark
_F32 = np.float32


def generate_events(
    n_rows: int,
    seed: int | np.random.SeedSequence | np.random.Generator,
    signal_fraction: float = 0.53,
) -> np.ndarray:
    """Return ``n_rows`` selected events as float32 ``(n_rows, 29)`` in ``COLUMNS`` order.

    Column 0 is the label (1.0 signal, 0.0 background), drawn per event with
    P(signal) = ``signal_fraction``; the same seed gives bit-identical output.

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
    parts = [np.empty((0, len(FEATURES)), dtype=np.float32)]
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
    """Generate ``n`` raw events of one class; return features of those passing the cuts.

    The simulation runs in float32: its 1e-7 relative precision is far below every
    resolution, and numpy's float32 arithmetic (trigonometry above all, ~20x) is much
    faster. Only the high-level masses are computed in float64.
    """
    # Draw the b-tags first and drop events with fewer than two tagged jets (necessary
    # for the final requirement): that halves the kinematics to simulate.
    p_any = np.array([BTAG_B[0]] * 2 + [BTAG_LIGHT[0]] * 7, dtype=_F32)[:, None]
    p_tight = np.array([BTAG_B[1]] * 2 + [BTAG_LIGHT[1]] * 7, dtype=_F32)[:, None]
    u = rng.random((_N_JETS, n), dtype=_F32)
    tag = (u < p_any).astype(np.int8) + (u < p_tight)
    is_charm = rng.random(n, dtype=_F32) < W_TO_CHARM  # W -> c s: the first W quark
    tag[2] = np.where(is_charm, (u[2] < BTAG_C[0]).astype(np.int8) + (u[2] < BTAG_C[1]), tag[2])
    tag = tag[:, (tag > 0).sum(axis=0) >= 2]
    n = tag.shape[1]

    chain = _signal_chain if signal else _background_chain
    lep, nu, quarks, isr_pt, isr_phi = chain(rng, n)
    # The lepton is measured first so that events failing its cuts skip the jet stage.
    lep_pt, lep_eta, lep_phi = _pt_eta_phi(lep)
    lep_pt *= 1 + _F32(LEPTON_RESOLUTION) * rng.standard_normal(n, dtype=_F32)
    ok = (lep_pt > PT_CUT) & (np.abs(lep_eta) < ETA_CUT)
    lep_pt, lep_eta, lep_phi, nu, quarks, isr_pt, isr_phi, tag = (
        x[..., ok] for x in (lep_pt, lep_eta, lep_phi, nu, quarks, isr_pt, isr_phi, tag)
    )
    n = len(lep_pt)
    pt, eta, phi = _pt_eta_phi(quarks)

    # Semileptonic b (and cascade c) decays: a neutrino takes part of the b-jet momentum.
    nu_fraction = np.where(
        rng.random((2, n), dtype=_F32) < B_SEMILEPTONIC,
        _F32(B_NU_FRACTION_MAX) * rng.random((2, n), dtype=_F32),
        _F32(0.0),
    )
    nu_pt = nu_fraction * pt[:2]
    nu_x = nu[1] + (nu_pt * np.cos(phi[:2])).sum(axis=0, dtype=np.float64)
    nu_y = nu[2] + (nu_pt * np.sin(phi[:2])).sum(axis=0, dtype=np.float64)
    pt[:2] -= nu_pt

    # Final-state radiation outside the jet cone: a gluon takes a fraction z of the quark
    # pT at a distance dR in (eta, phi), z and dR log-uniform (soft and collinear
    # enhancement). It is the physical out-of-cone loss and an extra jet that confuses
    # the jet assignment. Without an emission the gluon has pT 0 and fails the cuts.
    emits = rng.random((4, n), dtype=_F32) < FSR_PROBABILITY
    z = np.where(emits, _log_uniform(rng, FSR_Z, (4, n)), _F32(0.0))
    d_r = _log_uniform(rng, FSR_DR, (4, n))
    angle = _F32(2 * np.pi) * rng.random((4, n), dtype=_F32)
    isr_eta = _F32(ISR_ETA_SIGMA) * rng.standard_normal((1, n), dtype=_F32)
    pt = np.concatenate([pt * (1 - z), isr_pt[None], pt * z])
    # Angular resolution: only the quark jets are smeared, the gluon directions are
    # random already (a 0.025 smear on top would change nothing but the cost).
    eta_q = eta + _F32(JET_ANGLE) * rng.standard_normal((4, n), dtype=_F32)
    phi_q = phi + _F32(JET_ANGLE) * rng.standard_normal((4, n), dtype=_F32)
    jet_eta = np.concatenate([eta_q, isr_eta, eta + d_r * np.cos(angle)])
    jet_phi = _wrap(np.concatenate([phi_q, isr_phi[None], phi + d_r * np.sin(angle)]))

    # Calorimeter: noise (pile-up), stochastic and constant terms in quadrature, applied
    # to the energy (floored at 1 GeV so that the pT-0 gluons of non-emitting quarks stay
    # finite).
    energy = np.maximum(pt * np.cosh(jet_eta), _F32(1.0))
    sigma = np.sqrt(
        (_F32(JET_NOISE**2) / energy + _F32(JET_STOCHASTIC**2)) / energy + _F32(JET_CONSTANT**2)
    )
    response = 1 + sigma * rng.standard_normal((_N_JETS, n), dtype=_F32)
    # b-jet energy correction, applied (as in experiments) to b-tagged jets: it restores
    # the average loss to semileptonic-decay neutrinos.
    response[tag > 0] *= _F32(B_JET_CORRECTION)
    # A 50%/sqrt(E) Gaussian can go negative for very soft jets; those fail the cut anyway.
    jet_pt = np.maximum(pt * response, _F32(0.0))

    met_sigma = MET_STOCHASTIC * np.sqrt(jet_pt.sum(axis=0, dtype=np.float64) + lep_pt)
    met_x = nu_x + met_sigma * rng.standard_normal(n)
    met_y = nu_y + met_sigma * rng.standard_normal(n)

    # Jet selection, on the float32 values that are written out so that the cuts hold
    # exactly: the 4 leading good jets, >= 2 of them b-tagged.
    good = (jet_pt > PT_CUT) & (np.abs(jet_eta) < ETA_CUT)
    order = np.argsort(np.where(good, -jet_pt, np.inf).T, axis=1)[:, :4].T
    # Flat indices into the C-ordered (9, n) jet arrays: one cheap gather per array.
    flat = order * n + np.arange(n)
    keep = (good.sum(axis=0) >= 4) & ((tag.ravel()[flat] > 0).sum(axis=0) >= 2)
    flat = flat[:, keep]

    low = np.empty((flat.shape[1], len(LOW_LEVEL_FEATURES)), dtype=np.float32)
    low[:, 0], low[:, 1], low[:, 2] = lep_pt[keep], lep_eta[keep], lep_phi[keep]
    low[:, 3] = np.hypot(met_x[keep], met_y[keep])
    low[:, 4] = np.arctan2(met_y[keep], met_x[keep])
    for j, x in enumerate((jet_pt, jet_eta, jet_phi, tag)):
        low[:, 5 + j :: 4] = x.ravel()[flat].T
    return np.concatenate([low, _high_level(low)], axis=1)


def _signal_chain(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """H0 -> W H+-, H+- -> W h0, h0 -> b b; one W (chosen 50/50) to l nu, the other to q q.

    Returns the lepton and neutrino (4, n), the quarks (4, [b, b, q, q], n) and the ISR
    jet's pT and phi.
    """
    m_h0 = _breit_wigner(rng, n, *HEAVY_HIGGS)
    m_hpm = _breit_wigner(rng, n, *CHARGED_HIGGS)
    m_h = _breit_wigner(rng, n, *LIGHT_HIGGS)
    # The H0 -> W H+- decay is only ~20 GeV above threshold: keep it open.
    m_wa = _breit_wigner(rng, n, *W_BOSON, upper=m_h0 - m_hpm)
    m_wb = _breit_wigner(rng, n, *W_BOSON)
    h0, isr_pt, isr_phi = _produce(rng, m_h0)
    w_a, hpm = _decay(rng, h0, m_h0, m_wa, m_hpm)
    w_b, h = _decay(rng, hpm, m_hpm, m_wb, m_h)
    b1, b2 = _decay(rng, h, m_h, M_B, M_B)
    a_is_leptonic = rng.random(n, dtype=_F32) < 0.5
    w_lep, w_had = np.where(a_is_leptonic, w_a, w_b), np.where(a_is_leptonic, w_b, w_a)
    m_lep, m_had = np.where(a_is_leptonic, m_wa, m_wb), np.where(a_is_leptonic, m_wb, m_wa)
    # A scalar decaying to a W and a scalar gives a longitudinal W: both Ws here.
    lep, nu = _decay(rng, w_lep, m_lep, 0.0, 0.0, _cos_longitudinal(rng, n))
    q1, q2 = _decay(rng, w_had, m_had, 0.0, 0.0, _cos_longitudinal(rng, n))
    return lep, nu, np.stack([b1, b2, q1, q2], axis=1), isr_pt, isr_phi


def _background_chain(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """t t -> (W b)(W b), the first W to l nu and the second to q q; as ``_signal_chain``."""
    m_t1 = _breit_wigner(rng, n, *TOP)
    m_t2 = _breit_wigner(rng, n, *TOP)
    m_w1 = _breit_wigner(rng, n, *W_BOSON)
    m_w2 = _breit_wigner(rng, n, *W_BOSON)
    m_tt = m_t1 + m_t2 + MTT_SCALE * rng.standard_gamma(MTT_SHAPE, n, dtype=_F32)
    tt, isr_pt, isr_phi = _produce(rng, m_tt)
    t1, t2 = _decay(rng, tt, m_tt, m_t1, m_t2)
    w1, b1 = _decay(rng, t1, m_t1, m_w1, M_B)
    w2, b2 = _decay(rng, t2, m_t2, m_w2, M_B)
    lep, nu = _decay(rng, w1, m_w1, 0.0, 0.0, _cos_top_w(rng, n))
    q1, q2 = _decay(rng, w2, m_w2, 0.0, 0.0, _cos_top_w(rng, n))
    return lep, nu, np.stack([b1, b2, q1, q2], axis=1), isr_pt, isr_phi


def _high_level(low: np.ndarray) -> np.ndarray:
    """The 7 high-level features (``HIGH_LEVEL_FEATURES`` order) from the 21 low-level ones.

    Uses the written-out (detector-level) objects only, as the paper does.
    """
    lep = four_vector(low[:, 0], low[:, 1], low[:, 2])
    jets = low[:, 5:21].reshape(-1, 4, 4)  # (event, jet, [pt, eta, phi, btag])
    # b candidates: the two leading b-tagged jets (tag >= 1, one working point: the tight
    # level is not used), then the untagged ones; jets are pT ordered and the sort stable.
    order = np.argsort(jets[:, :, 3] < 1, axis=1, kind="stable")
    jets = np.take_along_axis(jets, order[:, :, None], axis=1)
    b1, b2, j1, j2 = (four_vector(jets[:, i, 0], jets[:, i, 1], jets[:, i, 2]) for i in range(4))
    nu = neutrino_from_met(lep, low[:, 3], low[:, 4])

    w_had = j1 + j2
    w_lep = lep + nu
    bb = b1 + b2
    m_jjj_1, m_jjj_2 = invariant_mass(w_had + b1), invariant_mass(w_had + b2)
    first = np.abs(m_jjj_1 - M_TOP) <= np.abs(m_jjj_2 - M_TOP)
    return np.stack(
        [
            invariant_mass(w_had),
            np.where(first, m_jjj_1, m_jjj_2),
            invariant_mass(w_lep),
            np.where(first, invariant_mass(w_lep + b2), invariant_mass(w_lep + b1)),
            invariant_mass(bb),
            invariant_mass(w_had + bb),
            invariant_mass(w_had + w_lep + bb),
        ],
        axis=1,
    ).astype(np.float32)


def neutrino_from_met(lep: np.ndarray, met: np.ndarray, met_phi: np.ndarray) -> np.ndarray:
    """Neutrino four-vector from MET and m(l nu) = m_W: the smaller-|pz| solution."""
    met = met.astype(np.float64)
    met_phi = _contiguous(met_phi)
    px, py = met * np.cos(met_phi), met * np.sin(met_phi)
    lep_pt2 = lep[1] ** 2 + lep[2] ** 2
    mu = 0.5 * M_W**2 + lep[1] * px + lep[2] * py
    a = mu * lep[3] / lep_pt2
    disc = a**2 - (lep[0] ** 2 * met**2 - mu**2) / lep_pt2
    # No real solution (mismeasured MET): take the real part, a.
    pz = a - np.sign(a) * np.sqrt(np.maximum(disc, 0.0))
    return np.stack([np.sqrt(met**2 + pz**2), px, py, pz])


def _breit_wigner(
    rng: np.random.Generator,
    n: int,
    mass: float,
    width: float,
    window: float,
    upper: np.ndarray | float = np.inf,
) -> np.ndarray:
    """Cauchy (non-relativistic Breit-Wigner) masses in [mass - window, min(mass + window, upper)].

    Sampled by inverting the truncated CDF, so nothing is rejected.
    """
    lo = _F32(np.arctan(-2 * window / width))
    hi = np.arctan(np.asarray(2 * (np.minimum(mass + window, upper) - mass) / width, _F32))
    return mass + 0.5 * width * np.tan(lo + (hi - lo) * rng.random(n, dtype=_F32))


def _produce(
    rng: np.random.Generator, mass: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parent four-vectors with a falling pT and Gaussian rapidity; the recoil's pT, phi."""
    n = len(mass)
    pt = PT_SCALE * rng.standard_gamma(PT_SHAPE, n, dtype=_F32)
    y = RAPIDITY_SIGMA * rng.standard_normal(n, dtype=_F32)
    cos_phi, sin_phi, phi = _azimuth(rng, n)
    mt = np.sqrt(mass**2 + pt**2)
    parent = np.stack([mt * np.cosh(y), pt * cos_phi, pt * sin_phi, mt * np.sinh(y)])
    # The ISR jet balances the parent's pT: opposite azimuth (wrapped later).
    return parent, pt, phi + _F32(np.pi)


def _decay(
    rng: np.random.Generator,
    parent: np.ndarray,
    m: np.ndarray,
    m1: np.ndarray | float,
    m2: np.ndarray | float,
    cos_helicity: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Two-body decay of ``parent`` (4, n), of mass ``m``, into masses m1, m2.

    Isotropic, or with the first daughter at ``cos_helicity`` to the parent's flight
    direction (the helicity angle: a polarized W).
    """
    n = parent.shape[1]
    # Clipped: a W truncated at the H0 -> W H+- threshold can round to just below it.
    p = np.sqrt(np.maximum((m**2 - (m1 + m2) ** 2) * (m**2 - (m1 - m2) ** 2), 0.0)) / (2 * m)
    polarized = cos_helicity is not None
    cos_t = cos_helicity if polarized else 2 * rng.random(n, dtype=_F32) - 1
    p_t = p * np.sqrt(np.maximum(1 - cos_t**2, 0))
    cos_phi, sin_phi, _ = _azimuth(rng, n)
    rest = np.stack([np.sqrt(p**2 + m1**2), p_t * cos_phi, p_t * sin_phi, p * cos_t])
    if polarized:
        rest[1:] = _to_helicity_frame(rest[1:], parent[1:])
    d1 = _boost(rest, parent, m)
    return d1, parent - d1  # momentum conservation is cheaper than a second boost


def _to_helicity_frame(v: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Rotate (3, n) vectors given in axes whose z is ``direction`` back to the lab axes.

    The pure boost along the parent's momentum keeps that axis, so an angle to it in the
    rest frame is the helicity angle (the Wigner rotation of a two-step boost is ignored).
    """
    z = direction / np.sqrt((direction**2).sum(axis=0))
    # x: perpendicular to z in the transverse plane (parents always have pT > 0 here).
    x = np.stack([-z[1], z[0], np.zeros_like(z[0])])
    x /= np.sqrt(x[0] ** 2 + x[1] ** 2)
    y = np.stack([z[1] * x[2] - z[2] * x[1], z[2] * x[0] - z[0] * x[2], z[0] * x[1] - z[1] * x[0]])
    return v[0] * x + v[1] * y + v[2] * z


def _cos_longitudinal(rng: np.random.Generator, n: int) -> np.ndarray:
    """Helicity angle of a longitudinal W's decay, density 3/4 (1 - cos^2).

    The median of three uniforms on [-1, 1] has exactly that density.
    """
    a, b, c = 2 * rng.random((3, n), dtype=_F32) - 1
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def _cos_top_w(rng: np.random.Generator, n: int) -> np.ndarray:
    """Helicity angle of the lepton (or down-type quark) from a top's W: fractions
    F0 = 0.7 longitudinal (1 - cos^2) and FL = 0.3 left-handed ((1 - cos)^2), as in the
    Standard Model; the charge conjugate (anti-top) has the same distribution."""
    left = 1 - 2 * np.cbrt(rng.random(n, dtype=_F32))  # density 3/8 (1 - cos)^2
    return np.where(rng.random(n, dtype=_F32) < W_LONGITUDINAL_IN_TOP, _cos_longitudinal(rng, n), left)


def _boost(p: np.ndarray, parent: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Boost ``p`` from the rest frame of ``parent`` (mass ``m``) to the frame of ``parent``."""
    energy = (parent[0] * p[0] + (parent[1:] * p[1:]).sum(axis=0)) / m
    k = (p[0] + energy) / (parent[0] + m)
    return np.concatenate([energy[None], p[1:] + k * parent[1:]])


def _azimuth(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cos, sin and the angle of uniform azimuths."""
    phi = _F32(2 * np.pi) * rng.random(n, dtype=_F32) - _F32(np.pi)
    return np.cos(phi), np.sin(phi), phi


def four_vector(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Massless (E, px, py, pz) of shape (4, n) in float64 from float32 pt, eta, phi."""
    pt = pt.astype(np.float64)
    eta, phi = _contiguous(eta), _contiguous(phi)
    return np.stack([pt * np.cosh(eta), pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)])


def _pt_eta_phi(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transverse momentum, pseudorapidity and azimuth of (4, ...) four-vectors."""
    pt = np.sqrt(p[1] ** 2 + p[2] ** 2)
    return pt, np.arcsinh(p[3] / pt), np.arctan2(p[2], p[1])


def _contiguous(x: np.ndarray) -> np.ndarray:
    """``x`` as a contiguous array, so that numpy's SIMD transcendentals always compute it.

    numpy 1.26 (AVX512 SVML loops) treats a strided input as spanning ``stride * n`` bytes,
    up to one stride past its array's end; when a fresh output lands there (heap layout,
    e.g. right after ``low``), it takes the scalar libm loop instead, which differs in the
    last bit: the same seed then gave different masses (1 in ~100 calls in a long process).
    """
    return np.ascontiguousarray(x)


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float], shape: tuple) -> np.ndarray:
    """Float32 samples with density ~ 1/x on [bounds[0], bounds[1]]."""
    lo, hi = bounds
    return _F32(lo) * np.exp(_F32(np.log(hi / lo)) * rng.random(shape, dtype=_F32))


def invariant_mass(p: np.ndarray) -> np.ndarray:
    """Invariant mass of (4, n) four-vectors (0 where rounding makes m^2 slightly negative)."""
    return np.sqrt(np.maximum(p[0] ** 2 - (p[1:] ** 2).sum(axis=0), 0.0))


def _wrap(phi: np.ndarray) -> np.ndarray:
    """Azimuth brought back to [-pi, pi] (inputs are at most one turn off)."""
    return phi - _F32(2 * np.pi) * np.rint(phi / _F32(2 * np.pi))
