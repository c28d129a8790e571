"""A simulated slide of varied particles under a laser focus that a stage moves.

:class:`Slide` places a set mix of monomers and fused dimers (with their particle-to-particle
spread: peak, lifetime, brightness, neck size) at random positions, at least a minimum distance
apart. :class:`SlideTagger` is the time tagger of a simulated rig with a sample stage: what its
detectors see depends on where the stage has put the focus, through the excitation
point-spread function, a Gaussian of ``psf_sigma_m`` (0.21 lambda/NA for the intensity of a
focused spot: Zhang, Zerubia & Olivo-Marin, Appl. Opt. 46, 1819 (2007); 61 nm at 405 nm and
NA 1.4). A particle at distance r is excited with ``mean_excitations * exp(-r²/2σ²)`` excitons
per pulse, so its count rate (and its spectrum on the camera) falls off as it would, saturation
included.

Two ways a start is served, as a counter or as a recording:

- A start of at most :data:`COUNT_MAX_S` (a scan pixel, an optimiser point) draws Poisson
  photons at the mean detected rate of every particle near the focus (time-averaged over its
  blinking states) plus the dark counts: what a count-rate image needs, at a small cost per
  pixel (the full emission simulation takes ~0.4 s to set up).
- A longer start (a particle's recording) runs the full photon-stream simulation of the
  particle nearest the focus: blinking, antibunching, lifetimes, spectral diffusion; the
  simulated camera's scene shows that particle's emission lines.

Particles can be fragile (``fragile_fraction``): each has a light dose (seconds in the focus
centre) after which it photobleaches; the scan leaves it bright, but it can be gone by the time
it is visited (the survey then skips it with a note). The dose is counted across starts.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from spad.simulators.detection import Detection
from spad.simulators.emitter import Emitter
from spad.simulators.stage import SimulatedStage
from spad.simulators.stream import Simulation
from spad.simulators.tagger import SimulatedTagger

from spad.formats.records import Encoder
from spad.photons import PhotonChunk

COUNT_MAX_S = 0.25
"""Longest start served as a counter (Poisson photons at the mean rate, see the module)."""

PSF_SIGMA_M = 0.21 * 405e-9 / 1.4
"""Gaussian sigma of the excitation spot's intensity, 405 nm through NA 1.4 (61 nm)."""


@dataclass(frozen=True)
class SlideSpec:
    """What is on the slide (the rig file's ``[slide]`` table; lengths in metres).

    Attributes
    ----------
    n_particles
        Particles on the slide.
    dimer_fraction
        Fraction of fused dimers (the rest are monomers).
    neck_nm
        Range of dimer neck diameters, drawn uniformly.
    centre_m
        Centre of the populated square in stage coordinates (x, y).
    size_m
        Side of the populated square.
    min_separation_m
        Smallest distance between two particles.
    fragile_fraction
        Fraction of particles that photobleach after a light dose of ``bleach_dose_s``
        (drawn uniformly in that range).
    psf_sigma_m
        Sigma of the excitation spot (intensity).
    count_rate_hz
        Median detected count rate of a monomer's bright state in the focus centre (both
        detectors; ``None``: the simulator's default, ~30 kcps).
    drift_m_per_s
        Drift of the sample relative to the stage (x, y), per second of light on the slide
        (the sum of the tagger's measurement times: a simulated clock that runs alike in real
        time and fast).
    seed
        Seed of the slide: positions, kinds and each particle's own parameters.
    """

    n_particles: int = 30
    dimer_fraction: float = 0.5
    neck_nm: tuple[float, float] = (4.0, 8.0)
    centre_m: tuple[float, float] = (100e-6, 100e-6)
    size_m: float = 10e-6
    min_separation_m: float = 1.0e-6
    fragile_fraction: float = 0.0
    bleach_dose_s: tuple[float, float] = (0.02, 0.08)
    psf_sigma_m: float = PSF_SIGMA_M
    count_rate_hz: float | None = None
    drift_m_per_s: tuple[float, float] = (0.0, 0.0)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_particles < 0:
            raise ValueError("n_particles must be >= 0")
        for name in ("dimer_fraction", "fragile_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be within 0-1")
        if not (self.size_m > 0 and self.psf_sigma_m > 0 and self.min_separation_m >= 0):
            raise ValueError("size_m and psf_sigma_m must be > 0, min_separation_m >= 0")


@dataclass
class SlideParticle:
    """One particle on the slide (its truth: kind, position, its own parameters)."""

    index: int
    kind: str
    x_m: float
    y_m: float
    seed: int
    neck_nm: float | None = None
    bleach_dose_s: float | None = None
    dose_s: float = 0.0
    emitters: Any = None
    detection: Detection | None = None

    @property
    def bleached(self) -> bool:
        return self.bleach_dose_s is not None and self.dose_s >= self.bleach_dose_s

    def truth(self) -> dict[str, Any]:
        return {"index": self.index, "kind": self.kind, "x_m": self.x_m, "y_m": self.y_m,
                "seed": self.seed, "neck_nm": self.neck_nm,
                "bleach_dose_s": self.bleach_dose_s, "bleached": self.bleached}


def draw_particle(spec: SlideSpec, rng: np.random.Generator, index: int = 0,
                  x_m: float = 0.0, y_m: float = 0.0) -> SlideParticle:
    """One particle of the mix of ``spec`` (kind, neck, own parameters, fragility)."""
    from spad.simulators.recipe import build

    kind = "dimer" if rng.random() < spec.dimer_fraction else "monomer"
    neck = float(rng.uniform(*spec.neck_nm)) if kind == "dimer" else None
    seed = int(rng.integers(0, 2**31 - 1))
    dose = (float(rng.uniform(*spec.bleach_dose_s)) if rng.random() < spec.fragile_fraction
            else None)
    emitters, detection = build(kind, seed, neck, True, "T3", None)
    if spec.count_rate_hz is not None:
        # the same collection for every particle: their brightness spread stays theirs
        ref, _ = build("monomer", 0, None, False, "T3", None)
        scale = spec.count_rate_hz / _bright_rate(ref, detection)
        detection = detection.replace(
            collection_efficiency=min(1.0, detection.collection_efficiency * scale))
    return SlideParticle(index, kind, x_m, y_m, seed, neck, dose, 0.0, emitters, detection)


class Slide:
    """Particles of a :class:`SlideSpec` at random positions (see the module docstring)."""

    def __init__(self, spec: SlideSpec | None = None) -> None:
        self.spec = spec or SlideSpec()
        s = self.spec
        rng = np.random.default_rng(s.seed)
        cx, cy = s.centre_m
        pos: list[tuple[float, float]] = []
        tries = 0
        while len(pos) < s.n_particles:
            tries += 1
            if tries > 1000 * max(1, s.n_particles):
                raise ValueError(f"{s.n_particles} particles {s.min_separation_m * 1e6:g} µm "
                                 f"apart do not fit in {s.size_m * 1e6:g} µm")
            x, y = rng.uniform(-s.size_m / 2, s.size_m / 2, 2)
            if all(math.hypot(x - a, y - b) >= s.min_separation_m for a, b in pos):
                pos.append((float(x), float(y)))
        self.particles = [draw_particle(s, rng, i, cx + x, cy + y)
                          for i, (x, y) in enumerate(pos)]
        self.elapsed_s = 0.0

    def drift(self) -> tuple[float, float]:
        """How far the sample has drifted so far (x, y)."""
        dx, dy = self.spec.drift_m_per_s
        return dx * self.elapsed_s, dy * self.elapsed_s

    def psf(self, p: SlideParticle, x_m: float, y_m: float) -> float:
        """Relative excitation of ``p`` with the focus at (x, y)."""
        r2 = (p.x_m - x_m) ** 2 + (p.y_m - y_m) ** 2
        return math.exp(-r2 / (2 * self.spec.psf_sigma_m ** 2))

    def near(self, x_m: float, y_m: float, cut: float = 1e-4) -> list[tuple[SlideParticle,
                                                                             float]]:
        """Particles excited more than ``cut`` with the focus at (x, y), with their PSF."""
        reach = self.spec.psf_sigma_m * math.sqrt(-2 * math.log(cut))
        out = []
        for p in self.particles:
            if abs(p.x_m - x_m) < reach and abs(p.y_m - y_m) < reach:
                w = self.psf(p, x_m, y_m)
                if w > cut:
                    out.append((p, w))
        return out

    def truth(self) -> list[dict[str, Any]]:
        return [p.truth() for p in self.particles]


def _bright_rate(emitters: Any, detection: Detection) -> float:
    ems = emitters if isinstance(emitters, tuple) else (emitters,)
    return sum(float(e.state_moments(detection.efficiency)[0].max() * e.rep_rate_hz)
               for e in ems)


def _excited(emitters: Any, psf: float, bleach_s: float | None) -> Any:
    """``emitters`` with their excitation scaled by ``psf`` (and bleaching at ``bleach_s``)."""
    def one(e: Emitter) -> Emitter:
        return dataclasses.replace(e, mean_excitations=e.mean_excitations * psf,
                                   bleach_s=bleach_s)
    return tuple(one(e) for e in emitters) if isinstance(emitters, tuple) else one(emitters)


def mean_rate_hz(emitters: Any, detection: Detection) -> float:
    """Mean detected rate (both detectors, dark counts excluded), averaged over the blinking."""
    total = 0.0
    for e in emitters if isinstance(emitters, tuple) else (emitters,):
        frac = e.stationary_fractions()
        if not np.all(np.isfinite(frac)):
            frac = np.full(len(e.states), 1.0 / len(e.states))
        total += float(np.dot(frac, e.state_moments(detection.efficiency)[0])) * e.rep_rate_hz
    return total


@dataclass
class _Focus:
    """What the last start saw (for tests and the survey's truth check)."""

    x_m: float = 0.0
    y_m: float = 0.0
    particle: int | None = None
    psf: float = 0.0
    counted: bool = True
    history: list[int | None] = field(default_factory=list)
    """The particle in focus at each recording (``None``: nothing there)."""


class SlideTagger(SimulatedTagger):
    """The time tagger of a simulated rig with a stage over a :class:`Slide`.

    Parameters
    ----------
    slide
        The slide.
    stage
        Where the focus is (its ``x``, ``y``).
    camera
        A :class:`~spad.simulators.instruments.SimulatedCamera` whose scene follows the
        particle in focus (or ``None``).
    seed
        Seed of the photon draws (each start draws anew).
    realtime
        Deliver photons at the pace of the wall clock.
    clock
        The rig's clock (:class:`~spad.simulators.tagger.SimulatedTagger`); the stage and
        camera should run on the same one.
    """

    name = "Simulated HydraHarp 400 (slide)"

    def __init__(self, slide: Slide, stage: SimulatedStage, camera: Any = None, seed: int = 0,
                 realtime: bool = True, clock: Any = None) -> None:
        first = slide.particles[0] if slide.particles else draw_particle(
            slide.spec, np.random.default_rng(0))
        super().__init__(first.emitters, first.detection, seed=seed, realtime=realtime,
                         clock=clock)
        self.slide, self.stage, self.camera = slide, stage, camera
        self._dark = Detection(mode="T3")
        self._starts = 0
        self.focus = _Focus()

    def start(self, duration_s: float) -> None:
        pos = self.stage.get_position()
        dx, dy = self.slide.drift()
        x, y = pos["x"] - dx, pos["y"] - dy      # the focus in the slide's own frame
        near = self.slide.near(x, y)
        if math.isfinite(duration_s) and duration_s > 0:
            self.slide.elapsed_s += duration_s
        self._starts += 1
        seed = self.seed * 1_000_003 + self._starts
        nearest = max(near, key=lambda pw: pw[1]) if near else None
        self.focus = _Focus(x, y, None if nearest is None else nearest[0].index,
                            0.0 if nearest is None else nearest[1], duration_s <= COUNT_MAX_S,
                            self.focus.history)
        if not self.focus.counted:        # recordings only: a scan makes thousands of starts
            self.focus.history.append(self.focus.particle)
        if duration_s <= COUNT_MAX_S and math.isfinite(duration_s) and duration_s > 0:
            from spad.errors import DeviceError
            if not self._opened:
                raise DeviceError(self.name, "not opened: call open() first")
            if self._running:
                raise DeviceError(self.name, "a measurement is already running")
            rates = [0.0, 0.0]
            for p, w in near:
                # the dose is counted while still bright, so it bleaches within this start
                # only as far as its dose runs out
                if p.bleached:
                    continue
                live = duration_s if p.bleach_dose_s is None else min(
                    duration_s, (p.bleach_dose_s - p.dose_s) / w)
                r = mean_rate_hz(_excited(p.emitters, w, None), p.detection) * live / duration_s
                split = p.detection.split_ratio
                rates[0] += r * split
                rates[1] += r * (1 - split)
                p.dose_s += duration_s * w
            dark = self._det.dark_rate_hz
            rates = [rates[0] + dark[0], rates[1] + dark[1]]
            self._records = self._counts(duration_s, rates, np.random.default_rng(seed))
            self._buffer = np.zeros(0, np.uint32)
            self._pos = 0
            self._sim = None
            self._running = True
            self._last_rates = rates
            return
        # a recording: the full simulation of the particle in focus (or of nothing)
        if nearest is None:
            p = None
            self.emitters = _excited(self.emitters, 1.0, 0.0)     # emits nothing: dark only
        else:
            p, w = nearest
            bleach = None
            if p.bleach_dose_s is not None:
                bleach = max(0.0, (p.bleach_dose_s - p.dose_s) / w)
            self.emitters = _excited(p.emitters, w, bleach)
            self.detection = p.detection
            p.dose_s += duration_s * w
        cfg = self.config
        self.configure(cfg.mode, cfg.sync_divider, cfg.binning, cfg.offsets_s, cfg.sync_offset_s)
        self.seed_now = seed
        old, self.seed = self.seed, seed
        try:
            super().start(duration_s)
        finally:
            self.seed = old
        if self.camera is not None:
            self._show(p)

    def _show(self, p: SlideParticle | None) -> None:
        """Point the simulated camera at what is in focus."""
        _point_camera(self.camera, None if p is None else self._sim)

    def _counts(self, duration_s: float, rates: list[float],
                rng: np.random.Generator) -> Iterator[np.ndarray]:
        """Records of Poisson photons at ``rates`` (per detector) over ``duration_s``."""
        wall0 = time.monotonic()
        timing = self.timing
        enc = Encoder(self.record_type, timing)
        n = [int(rng.poisson(r * duration_s)) for r in rates]
        t = np.concatenate([rng.uniform(0, duration_s, k) for k in n])
        det = np.concatenate([np.full(k, d + 1, np.uint8) for d, k in enumerate(n)])
        order = np.argsort(t, kind="stable")
        ticks = np.floor(t[order] / timing.timestamp_unit).astype(np.int64)
        nano = None
        if timing.is_t3:
            tau = rng.exponential(20e-9, ticks.size) % timing.sync_period
            nano = np.minimum(tau / timing.nanotime_unit, timing.tcspc_num_bins - 1
                              ).astype(np.uint16)
        chunk = PhotonChunk(timing, ticks, det[order], nano)
        if self.realtime:
            time.sleep(max(0.0, duration_s - (time.monotonic() - wall0)))
        self.advance_clock(duration_s)
        yield enc.encode(chunk)


def spec_from_settings(s: Any, seed: int | None = None) -> SlideSpec:
    """The :class:`SlideSpec` of a rig file's :class:`spad.config.SlideSettings` (``seed``
    overrides; a seed of -1 draws a new slide)."""
    seed = s.seed if seed is None else seed
    if seed < 0:
        seed = int(np.random.SeedSequence().entropy % (2**31 - 1))
    return SlideSpec(n_particles=s.n_particles, dimer_fraction=s.dimer_fraction,
                     neck_nm=tuple(s.neck_nm), centre_m=tuple(s.centre_m), size_m=s.size_m,
                     min_separation_m=s.min_separation_m, fragile_fraction=s.fragile_fraction,
                     bleach_dose_s=tuple(s.bleach_dose_s),
                     count_rate_hz=s.count_rate_hz or None,
                     drift_m_per_s=tuple(s.drift_m_per_s), seed=seed)


class MixTagger(SimulatedTagger):
    """A simulated tagger that looks at a new particle of a slide's mix at every recording
    (a rig without a stage: as if the user moved to the next particle by hand).

    Parameters
    ----------
    spec
        The mix (kinds, spread, fragility); positions do not matter.
    camera
        A simulated camera whose scene shows the particle (or ``None``).
    realtime
        Deliver photons at the pace of the wall clock.
    clock
        The rig's clock (:class:`~spad.simulators.tagger.SimulatedTagger`); the camera should
        run on the same one.
    """

    name = "Simulated HydraHarp 400 (particle mix)"

    def __init__(self, spec: SlideSpec, camera: Any = None, realtime: bool = True,
                 clock: Any = None) -> None:
        self.spec = spec
        self._rng = np.random.default_rng(spec.seed)
        self.particle = draw_particle(spec, self._rng)
        super().__init__(self.particle.emitters, self.particle.detection,
                         seed=self.particle.seed, realtime=realtime, clock=clock)
        self.camera = camera
        self.particles: list[SlideParticle] = []
        if camera is not None:
            _point_camera(camera, Simulation(self.emitters, self.detection, 1.0, self.seed))

    def start(self, duration_s: float) -> None:
        if duration_s > COUNT_MAX_S and not self._running:
            if self.particles:            # the first recording gets the particle drawn first
                self.particle = draw_particle(self.spec, self._rng, len(self.particles))
            p = self.particle
            self.particles.append(p)
            self.emitters = p.emitters if p.bleach_dose_s is None else _excited(
                p.emitters, 1.0, p.bleach_dose_s)
            self.detection, self.seed = p.detection, p.seed
            cfg = self.config
            self.configure(cfg.mode, cfg.sync_divider, cfg.binning, cfg.offsets_s,
                           cfg.sync_offset_s)
        super().start(duration_s)
        if self.camera is not None and self._sim is not None:
            _point_camera(self.camera, self._sim)


def _point_camera(camera: Any, sim: Simulation | None) -> None:
    """Show the emission lines of ``sim``'s particle to the simulated ``camera``."""
    from spad.simulators.instruments import Scene
    from spad.simulators.spectrum import particle_lines

    camera.scene = Scene(lines=[] if sim is None else particle_lines(sim.truth))
