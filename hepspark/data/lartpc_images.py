"""Toy single-particle images of a liquid-argon TPC wire plane (seed 001, MicroBooNE).

Five classes, as in the seed: 0 e-, 1 gamma, 2 mu-, 3 pi-, 4 proton, with momentum drawn
uniformly in 50-500 MeV/c and an isotropic 3D direction. Each particle starts at the
vertex, placed at the image centre (within +-3 pixels): images are crops around the
interaction, as a reconstruction would make them. Image = one collection plane: the
deposited energy (MeV) per pixel of ``pixel_cm`` in (drift x, wire z), the y coordinate
along the wires is projected out. Default 64 x 64 pixels of 0.5 cm (a 32 cm field).

Transport, vectorized over all particles of a kind in a chunk, in steps of at most 3 mm
(shorter where the particle is about to stop):

* Ionization: Bethe-Bloch for liquid argon (Z/A = 0.4506, I = 188 eV, 1.396 g/cm^3),
  whose log term is capped at beta*gamma = 10 as a stand-in for the density effect
  (minimum ~2.1 MeV/cm, as in PDG tables). Stopping particles therefore deposit more
  and more per cm: **Bragg peaks** of protons and of muons and pions that stop.
* Multiple Coulomb scattering: Highland's width per step.
* mu-: 25% of stopped muons decay to a Michel electron (Michel spectrum up to 52.8 MeV;
  the rest are captured by argon nuclei, invisible here).
* pi-: inelastic interactions with an interaction length of 80 cm above 20 MeV: half are
  quasi-elastic scatters (a **kink**: 20-80 degrees, 5-40% energy loss, a small nuclear
  recoil blob), half absorptions (the pion ends in a **star** of 1-3 protons); a pion that
  stops is absorbed at rest with 1-2 short protons.
* Electromagnetic showers (X0 = 14 cm): electrons radiate bremsstrahlung photons
  (dN/dy ~ (4/3 - 4/3 y + y^2)/y per X0); photons above 10 MeV convert to e+ e- after an
  exponential distance of 9/7 X0 = 18 cm, softer ones Compton-scatter (one electron, same
  mean free path). So an **e- shower starts at the vertex** with a single-track trunk,
  while a **gamma shower starts after a gap** (and with a two-track trunk). The primary
  photon's conversion distance is cut at 70% of the image half-width (an image selection:
  a photon converting outside the crop would leave an empty image).
* Readout: Gaussian noise of 0.1 MeV per pixel and a 0.5 MeV threshold (sparse images).

>>> images, labels, weights = generate_lartpc(10, seed=1)
>>> images.shape, sorted(set(labels)) <= [0, 1, 2, 3, 4]
((10, 64, 64, 1), True)
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np

CLASS_NAMES = ("electron", "gamma", "muon", "pion", "proton")
ELECTRON, GAMMA, MUON, PION, PROTON = range(5)
MASS_MEV = {ELECTRON: 0.511, GAMMA: 0.0, MUON: 105.658, PION: 139.570, PROTON: 938.272}
MOMENTUM_RANGE = (50.0, 500.0)  # MeV/c

# Liquid argon
DENSITY = 1.396  # g/cm^3
Z_OVER_A = 18 / 39.948
MEAN_EXCITATION = 188e-6  # MeV
K_BETHE = 0.307075  # MeV cm^2 / mol
RADIATION_LENGTH = 14.0  # cm
PAIR_LENGTH = 9 / 7 * RADIATION_LENGTH
ELECTRON_MASS = 0.511
BETA_GAMMA_CAP = 10.0  # the density effect stops the relativistic rise (approximation)

MAX_STEP = 0.3  # cm
STOP_KE = 0.5  # MeV: below this the rest is deposited on the spot
PION_INTERACTION_LENGTH, PION_INTERACTION_MIN_KE = 80.0, 20.0
MICHEL_FRACTION, MICHEL_MAX = 0.25, 52.8
BREM_Y_MIN, PHOTON_MIN = 0.02, 1.0  # photons below 1 MeV are not followed
PAIR_THRESHOLD = 10.0  # MeV: pair production above, Compton below
NOISE, THRESHOLD = 0.1, 0.5  # MeV per pixel
VERTEX_JITTER = 3.0  # pixels
MAX_GENERATIONS = 16

_CHUNK = 1000


@dataclass
class _Tracks:
    """Charged particles (or photons) of one kind, one row each."""

    event: np.ndarray
    pos: np.ndarray  # (n, 3) cm
    dir: np.ndarray  # (n, 3) unit
    ke: np.ndarray  # MeV (photons: energy)

    def __len__(self) -> int:
        return len(self.event)

    @classmethod
    def empty(cls) -> "_Tracks":
        return cls(np.empty(0, np.int64), np.empty((0, 3)), np.empty((0, 3)), np.empty(0))

    @classmethod
    def concat(cls, parts: list["_Tracks"]) -> "_Tracks":
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts])
                     for f in ("event", "pos", "dir", "ke")))

    def take(self, mask: np.ndarray) -> "_Tracks":
        return _Tracks(self.event[mask], self.pos[mask], self.dir[mask], self.ke[mask])


@dataclass
class _Deposits:
    """Energy deposits (event, x, z, MeV) collected during transport."""

    half_extent_cm: float
    parts: list = field(default_factory=list)

    def add(self, event: np.ndarray, pos: np.ndarray, energy: np.ndarray) -> None:
        if len(event):
            self.parts.append((event, pos[:, 0], pos[:, 2], energy))


def stopping_power(ke: np.ndarray, mass: float) -> np.ndarray:
    """Mean ionization loss in liquid argon, MeV/cm, for charge-1 particles of ``mass``."""
    ke = np.asarray(ke, np.float64)
    gamma = 1.0 + ke / mass
    beta2 = 1.0 - 1.0 / gamma**2
    bg2 = np.minimum(beta2 * gamma**2, BETA_GAMMA_CAP**2)
    ratio = ELECTRON_MASS / mass
    t_max = 2 * ELECTRON_MASS * bg2 / (1 + 2 * gamma * ratio + ratio**2)
    log_term = 0.5 * np.log(2 * ELECTRON_MASS * bg2 * t_max / MEAN_EXCITATION**2)
    dedx = K_BETHE * Z_OVER_A / beta2 * (log_term - beta2) * DENSITY
    return np.maximum(dedx, 0.0)


def csda_range_cm(ke: float, mass: float, n_steps: int = 4000) -> float:
    """Continuous-slowing-down range (cm) of a particle of kinetic energy ``ke`` (MeV)."""
    energies = np.linspace(STOP_KE, ke, n_steps)
    return float(np.trapz(1.0 / stopping_power(energies, mass), energies))


def generate_lartpc(
    n_events: int,
    seed: int | np.random.SeedSequence | np.random.Generator,
    image_size: int = 64,
    pixel_cm: float = 0.5,
    classes: tuple[int, ...] = tuple(range(5)),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_events`` images ``float32 [n, size, size, 1]`` (MeV per pixel), labels ``int32``
    (``CLASS_NAMES`` order, uniform over ``classes``) and weights (all 1); the same seed
    gives bit-identical output."""
    images, labels, _ = generate_lartpc_with_truth(n_events, seed, image_size, pixel_cm, classes)
    return images, labels, np.ones(len(labels), np.float32)


def generate_lartpc_with_truth(
    n_events: int,
    seed: int | np.random.SeedSequence | np.random.Generator,
    image_size: int = 64,
    pixel_cm: float = 0.5,
    classes: tuple[int, ...] = tuple(range(5)),
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """As :func:`generate_lartpc`, with the truth: ``momentum`` (MeV/c), ``vertex_px``
    (row, col of the start point in the image) and ``direction`` (3D unit vector)."""
    n_events = operator.index(n_events)
    if n_events < 0:
        raise ValueError(f"n_events must be >= 0, got {n_events}")
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    if not pixel_cm > 0:
        raise ValueError(f"pixel_cm must be > 0, got {pixel_cm}")
    bad = [c for c in classes if c not in range(5)]
    if bad or not classes:
        raise ValueError(f"classes must be a non-empty subset of 0..4, got {classes}")
    rng = np.random.default_rng(seed)
    images = np.empty((n_events, image_size, image_size, 1), np.float32)
    labels = np.empty(n_events, np.int32)
    truth = {"momentum": np.empty(n_events, np.float32),
             "vertex_px": np.empty((n_events, 2), np.float32),
             "direction": np.empty((n_events, 3), np.float32)}
    for start in range(0, n_events, _CHUNK):
        stop = min(start + _CHUNK, n_events)
        chunk_labels = np.asarray(classes)[rng.integers(0, len(classes), stop - start)]
        labels[start:stop] = chunk_labels
        chunk = _simulate(rng, chunk_labels, image_size, pixel_cm)
        images[start:stop, ..., 0] = chunk[0]
        for key, value in chunk[1].items():
            truth[key][start:stop] = value
    return images, labels, truth


def _isotropic(rng: np.random.Generator, n: int) -> np.ndarray:
    cos_t = 2 * rng.random(n) - 1
    sin_t = np.sqrt(1 - cos_t**2)
    phi = 2 * np.pi * rng.random(n)
    return np.column_stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t])


def _simulate(rng, labels, image_size, pixel_cm):
    n = len(labels)
    momentum = rng.uniform(*MOMENTUM_RANGE, n)
    direction = _isotropic(rng, n)
    vertex_px = image_size / 2 + rng.uniform(-VERTEX_JITTER, VERTEX_JITTER, (n, 2))
    # Transport runs in cm around the vertex; tracks are followed until they leave the
    # image (plus a margin for the vertex jitter).
    deposits = _Deposits(half_extent_cm=(image_size / 2 + VERTEX_JITTER + 2) * pixel_cm)
    events = np.arange(n)
    origin = np.zeros((n, 3))
    for kind in range(5):
        sel = labels == kind
        if not sel.any():
            continue
        p = momentum[sel]
        mass = MASS_MEV[kind]
        start = _Tracks(events[sel], origin[sel], direction[sel], np.sqrt(p**2 + mass**2) - mass)
        if kind == ELECTRON:
            _shower(rng, start, _Tracks.empty(), deposits)
        elif kind == GAMMA:
            max_gap = 0.7 * image_size / 2 * pixel_cm
            _shower(rng, _Tracks.empty(), start, deposits, first_gap_max=max_gap)
        elif kind == MUON:
            _muon(rng, start, deposits)
        elif kind == PION:
            _pion(rng, start, deposits)
        else:
            _transport(rng, start, MASS_MEV[PROTON], deposits)

    image = np.zeros(n * image_size * image_size)
    if deposits.parts:
        event = np.concatenate([d[0] for d in deposits.parts])
        x = np.concatenate([d[1] for d in deposits.parts])
        z = np.concatenate([d[2] for d in deposits.parts])
        energy = np.concatenate([d[3] for d in deposits.parts])
        row = np.floor(vertex_px[event, 0] + x / pixel_cm).astype(np.int64)
        col = np.floor(vertex_px[event, 1] + z / pixel_cm).astype(np.int64)
        inside = (row >= 0) & (row < image_size) & (col >= 0) & (col < image_size)
        flat = (event * image_size + row) * image_size + col
        image += np.bincount(flat[inside], weights=energy[inside], minlength=image.size)
    image += NOISE * rng.standard_normal(image.size)
    image[image < THRESHOLD] = 0.0
    truth = {"momentum": momentum, "vertex_px": vertex_px, "direction": direction}
    return image.reshape(n, image_size, image_size), truth


@dataclass
class _Transported:
    end: _Tracks  # state where each track ended (ke ~ 0 if it stopped)
    stopped: np.ndarray  # ranged out inside the volume
    photons: _Tracks
    secondaries: _Tracks  # protons from pion interactions


def _transport(
    rng: np.random.Generator,
    tracks: _Tracks,
    mass: float,
    deposits: _Deposits,
    radiate: bool = False,
    interact: bool = False,
) -> _Transported:
    """Step charged ``tracks`` of one ``mass`` until they stop or leave the volume."""
    t = _Tracks(tracks.event.copy(), tracks.pos.copy(), tracks.dir.copy(), tracks.ke.copy())
    n = len(t)
    active = np.ones(n, bool)
    stopped = np.zeros(n, bool)
    photons: list[_Tracks] = []
    secondaries: list[_Tracks] = []
    limit = deposits.half_extent_cm
    while active.any():
        idx = np.flatnonzero(active)
        ke, pos, d = t.ke[idx], t.pos[idx], t.dir[idx]
        dedx = stopping_power(ke, mass)
        ds = np.clip(0.2 * ke / np.maximum(dedx, 1e-6), 0.02, MAX_STEP)
        loss = np.minimum(dedx * ds, ke)
        mid = pos + 0.5 * ds[:, None] * d
        deposits.add(t.event[idx], mid, loss)
        ke = ke - loss
        pos = pos + ds[:, None] * d
        # Multiple scattering (Highland, without the log term for small steps).
        p = np.sqrt(ke * (ke + 2 * mass))
        beta = p / np.maximum(ke + mass, 1e-9)
        theta0 = 13.6 / np.maximum(beta * p, 1e-3) * np.sqrt(ds / RADIATION_LENGTH)
        d = _deflect(rng, d, np.minimum(theta0, 1.0) * rng.standard_normal(len(idx)),
                     np.minimum(theta0, 1.0) * rng.standard_normal(len(idx)))
        if radiate:
            ke = _bremsstrahlung(rng, t.event[idx], pos, d, ke, ds, photons)
        if interact:
            ke, d, absorbed = _pion_interactions(rng, t.event[idx], pos, d, ke, ds, deposits,
                                                 secondaries)
        else:
            absorbed = np.zeros(len(idx), bool)
        t.ke[idx], t.pos[idx], t.dir[idx] = ke, pos, d
        done = ke < STOP_KE
        deposits.add(t.event[idx[done]], pos[done], ke[done])
        t.ke[idx[done]] = 0.0
        stopped[idx[done]] = True
        out = (np.abs(pos[:, 0]) > limit) | (np.abs(pos[:, 2]) > limit)
        active[idx[done | out | absorbed]] = False
    return _Transported(t, stopped, _Tracks.concat(photons), _Tracks.concat(secondaries))


def _deflect(rng, d, theta_x, theta_y) -> np.ndarray:
    """Tilt unit vectors ``d`` by small angles in two perpendicular planes."""
    helper = np.where(np.abs(d[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    u = np.cross(d, helper)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(d, u)
    out = d + theta_x[:, None] * u + theta_y[:, None] * v
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _rotate(rng, d, angle) -> np.ndarray:
    """Turn unit vectors ``d`` by ``angle`` (rad) around a random azimuth."""
    helper = np.where(np.abs(d[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    u = np.cross(d, helper)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(d, u)
    phi = 2 * np.pi * rng.random(len(d))
    perp = np.cos(phi)[:, None] * u + np.sin(phi)[:, None] * v
    return np.cos(angle)[:, None] * d + np.sin(angle)[:, None] * perp


def _bremsstrahlung(rng, event, pos, d, ke, ds, photons) -> np.ndarray:
    """Radiate photons with fraction y of the electron energy (1/y proposal, rejection to
    the (4/3 - 4/3 y + y^2)/y spectrum); returns the electrons' remaining energy."""
    rate = 4 / 3 * np.log(1 / BREM_Y_MIN) / RADIATION_LENGTH
    propose = rng.random(len(ke)) < rate * ds
    y = BREM_Y_MIN ** rng.random(len(ke))
    accept = propose & (rng.random(len(ke)) < 1 - y + 0.75 * y**2)
    energy = y * ke
    emit = accept & (energy > PHOTON_MIN)
    if emit.any():
        photons.append(_Tracks(event[emit], pos[emit].copy(), d[emit].copy(), energy[emit]))
    return np.where(emit, ke - energy, ke)


def _pion_interactions(rng, event, pos, d, ke, ds, deposits, secondaries):
    can = ke > PION_INTERACTION_MIN_KE
    hit = can & (rng.random(len(ke)) < ds / PION_INTERACTION_LENGTH)
    kink = hit & (rng.random(len(ke)) < 0.5)
    absorb = hit & ~kink
    if kink.any():
        angle = np.radians(rng.uniform(20, 80, int(kink.sum())))
        d = d.copy()
        d[kink] = _rotate(rng, d[kink], angle)
        recoil = rng.uniform(2.0, 10.0, int(kink.sum()))
        deposits.add(event[kink], pos[kink], recoil)
        ke = ke.copy()
        ke[kink] = np.maximum(ke[kink] * rng.uniform(0.6, 0.95, int(kink.sum())) - recoil, 0.0)
    if absorb.any():
        secondaries.append(_nuclear_protons(rng, event[absorb], pos[absorb], ke[absorb],
                                            max_protons=3, mean_ke=40.0))
    return ke, d, absorb


def _nuclear_protons(rng, event, pos, available, max_protons, mean_ke) -> _Tracks:
    """1..max_protons isotropic protons per interaction point, sharing at most half of
    the ``available`` energy (the rest: neutrons and binding, invisible here)."""
    count = rng.integers(1, max_protons + 1, len(event))
    owner = np.repeat(np.arange(len(event)), count)
    ke = rng.exponential(mean_ke, owner.size)
    budget = 0.5 * available + 10.0
    total = np.bincount(owner, weights=ke, minlength=len(event))
    scale = np.minimum(1.0, budget / np.maximum(total, 1e-9))
    return _Tracks(event[owner], pos[owner].copy(), _isotropic(rng, owner.size),
                   ke * scale[owner])


def _muon(rng, muons: _Tracks, deposits: _Deposits) -> None:
    result = _transport(rng, muons, MASS_MEV[MUON], deposits)
    decays = result.stopped & (rng.random(len(muons)) < MICHEL_FRACTION)
    if decays.any():
        ends = result.end.take(decays)
        # Michel spectrum dN/dx ~ x^2 (3 - 2x), x = E / 52.8 MeV, by rejection.
        x = np.empty(0)
        while x.size < len(ends):
            trial = rng.random(2 * len(ends) + 16)
            keep = rng.random(trial.size) < trial**2 * (3 - 2 * trial)
            x = np.concatenate([x, trial[keep]])
        michel = _Tracks(ends.event, ends.pos, _isotropic(rng, len(ends)),
                         MICHEL_MAX * x[: len(ends)])
        _shower(rng, michel, _Tracks.empty(), deposits)


def _pion(rng, pions: _Tracks, deposits: _Deposits) -> None:
    result = _transport(rng, pions, MASS_MEV[PION], deposits, interact=True)
    at_rest = result.end.take(result.stopped)
    protons = [result.secondaries]
    if len(at_rest):
        protons.append(_nuclear_protons(rng, at_rest.event, at_rest.pos,
                                        np.full(len(at_rest), 60.0), max_protons=2,
                                        mean_ke=15.0))
    _transport(rng, _Tracks.concat(protons), MASS_MEV[PROTON], deposits)


def _shower(
    rng, electrons: _Tracks, photons: _Tracks, deposits: _Deposits,
    first_gap_max: float | None = None,
) -> None:
    """Electromagnetic cascade: electrons radiate photons, photons convert (pairs above
    10 MeV, Compton below) into electrons, generation by generation. ``first_gap_max``
    truncates the conversion distance of the initial ``photons`` (cm)."""
    gap_max = first_gap_max
    for _ in range(MAX_GENERATIONS):
        if not len(electrons) and not len(photons):
            return
        new_photons = _transport(rng, electrons, ELECTRON_MASS, deposits, radiate=True).photons
        electrons = _convert(rng, photons, gap_max)
        photons, gap_max = new_photons, None


def _convert(rng, photons: _Tracks, max_distance: float | None = None) -> _Tracks:
    photons = photons.take(photons.ke > PHOTON_MIN)
    if not len(photons):
        return _Tracks.empty()
    u = rng.random(len(photons))
    if max_distance is not None:  # exponential truncated at max_distance
        u = u * -np.expm1(-max_distance / PAIR_LENGTH)
    distance = -PAIR_LENGTH * np.log1p(-u)
    where = photons.pos + distance[:, None] * photons.dir
    pair = photons.ke > PAIR_THRESHOLD
    out = []
    if pair.any():
        energy = photons.ke[pair] - 2 * ELECTRON_MASS
        share = rng.random(int(pair.sum()))
        opening = ELECTRON_MASS / np.maximum(photons.ke[pair], 1.0) * 2
        for fraction in (share, 1 - share):
            out.append(_Tracks(photons.event[pair], where[pair].copy(),
                               _rotate(rng, photons.dir[pair], opening), fraction * energy))
    compton = ~pair
    if compton.any():
        fraction = rng.uniform(0.2, 1.0, int(compton.sum()))
        angle = np.arccos(np.clip(1 - 2 * rng.random(int(compton.sum())) * (1 - fraction), -1, 1))
        out.append(_Tracks(photons.event[compton], where[compton].copy(),
                           _rotate(rng, photons.dir[compton], angle * 0.5),
                           fraction * photons.ke[compton]))
    return _Tracks.concat(out)
