"""Physical parameters of a simulated quantum dot (or dot molecule) and presets.

An :class:`Emitter` is excited by a pulsed laser: each pulse creates a Poisson number of
excitons (mean :attr:`Emitter.mean_excitations`). One exciton (X) emits with the quantum yield
of the current blinking state; two or more relax within picoseconds to the biexciton (BX),
which emits a BX photon with yield ``bx_qy_ratio * qy`` after an exponential delay
(``bx_lifetime_s``) and then leaves an exciton that emits as above (radiative cascade). Per
pulse at most two photons come out, which gives the analytic pulsed g2(0) of
:func:`g2_zero`; in the low-excitation limit it tends to ``bx_qy_ratio`` (Nair, Zhao & Bawendi,
Nano Lett. 2011).

Blinking is a semi-Markov process over :class:`State` objects, each with its own yield,
(multi-exponential) decay and a power-law dwell-time law (:class:`PowerLaw`, optionally with an
exponential cut-off). Presets :func:`monomer`, :func:`dimer` and :func:`pair` follow
docs/physics.md ("Monomer or dimer", "Typical numbers"). All quantities are SI: seconds, Hz, eV.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import integrate

__all__ = ["PowerLaw", "State", "SpectralDiffusion", "Emitter", "pulse_moments", "g2_zero",
           "monomer", "dimer", "pair", "dimer_shift_ev", "dimer_fwhm_ev"]


@dataclass(frozen=True)
class PowerLaw:
    """Dwell-time law p(t) ~ t**-alpha * exp(-t / t_cut_s) for t >= t_min_s.

    Parameters
    ----------
    alpha
        Power-law exponent (> 1); ~1.5 for quantum-dot blinking.
    t_min_s
        Shortest dwell, seconds.
    t_cut_s
        Exponential cut-off (truncation) time in seconds, ``None`` for a pure power law.
    """

    alpha: float = 1.5
    t_min_s: float = 1e-3
    t_cut_s: float | None = None

    def __post_init__(self) -> None:
        if not (self.alpha > 1 and math.isfinite(self.alpha)):
            raise ValueError(f"power-law alpha must be > 1, not {self.alpha!r}")
        if not self.t_min_s > 0:
            raise ValueError(f"t_min_s must be a positive number of seconds, not {self.t_min_s!r}")
        if self.t_cut_s is not None and not self.t_cut_s > 0:
            raise ValueError(f"t_cut_s must be positive seconds or None, not {self.t_cut_s!r}")

    @property
    def cut(self) -> float:
        """Cut-off in seconds, ``inf`` for a pure power law."""
        return math.inf if self.t_cut_s is None else float(self.t_cut_s)

    def mean_s(self) -> float:
        """Mean dwell time in seconds (``inf`` for an untruncated law with alpha <= 2)."""
        a, tm = self.alpha, self.t_min_s
        if self.t_cut_s is None:
            return tm * (a - 1) / (a - 2) if a > 2 else math.inf
        # Substituting t = t_min * x keeps the integrands O(1).
        c = self.t_cut_s / tm
        def f(x: float, k: int) -> float:
            return x ** (k - a) * math.exp(-(x - 1) / c)
        num = integrate.quad(f, 1, np.inf, args=(1,), limit=200)[0]
        den = integrate.quad(f, 1, np.inf, args=(0,), limit=200)[0]
        return tm * num / den


@dataclass(frozen=True)
class State:
    """One blinking state (ON, OFF, grey, or one level of a flickering dimer).

    Parameters
    ----------
    name
        Label, e.g. ``"ON"``.
    qy
        Exciton quantum yield in this state (0-1).
    lifetimes_s
        Decay components of the exciton emission, seconds.
    amplitudes
        Fraction of photons in each component (sums to 1); default: one component.
    dwell
        Dwell-time law of the state.
    bx_qy_ratio
        Biexciton yield relative to ``qy`` in this state; ``None`` uses the emitter's.
    """

    name: str
    qy: float
    lifetimes_s: tuple[float, ...]
    amplitudes: tuple[float, ...] = (1.0,)
    dwell: PowerLaw = field(default_factory=PowerLaw)
    bx_qy_ratio: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "lifetimes_s", tuple(float(x) for x in self.lifetimes_s))
        object.__setattr__(self, "amplitudes", tuple(float(x) for x in self.amplitudes))
        if not 0 <= self.qy <= 1:
            raise ValueError(f"state {self.name!r}: qy must be within 0-1, not {self.qy!r}")
        if not self.lifetimes_s or any(not (t > 0 and math.isfinite(t))
                                       for t in self.lifetimes_s):
            raise ValueError(f"state {self.name!r}: lifetimes_s must be positive seconds")
        if len(self.amplitudes) != len(self.lifetimes_s):
            raise ValueError(f"state {self.name!r}: one amplitude per lifetime component")
        if any(a < 0 for a in self.amplitudes) or abs(sum(self.amplitudes) - 1) > 1e-9:
            raise ValueError(f"state {self.name!r}: amplitudes must be >= 0 and sum to 1")
        if self.bx_qy_ratio is not None and not 0 <= self.bx_qy_ratio * self.qy <= 1:
            raise ValueError(f"state {self.name!r}: bx_qy_ratio * qy must be within 0-1")

    @property
    def mean_lifetime_s(self) -> float:
        """Photon-weighted (intensity-weighted) mean lifetime, seconds."""
        return float(sum(a * t for a, t in zip(self.amplitudes, self.lifetimes_s, strict=True)))


@dataclass(frozen=True)
class SpectralDiffusion:
    """Random wandering of the emission peak energy, recorded in the simulation truth.

    An Ornstein-Uhlenbeck walk (stationary standard deviation ``sd_ev``, correlation time
    ``correlation_s``) sampled every ``step_s``, plus jumps at Poisson rate ``jump_rate_hz``
    with normally distributed size ``jump_sd_ev`` that then relax back with the walk.
    """

    sd_ev: float = 0.004
    correlation_s: float = 2.0
    jump_rate_hz: float = 0.2
    jump_sd_ev: float = 0.010
    step_s: float = 0.01

    def __post_init__(self) -> None:
        for name in ("sd_ev", "jump_rate_hz", "jump_sd_ev"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"spectral diffusion {name} must be >= 0")
        if not (self.correlation_s > 0 and self.step_s > 0):
            raise ValueError("spectral diffusion correlation_s and step_s must be positive")


@dataclass(frozen=True)
class Emitter:
    """A single emitter under pulsed excitation.

    Parameters
    ----------
    name
        Label (``"monomer"``, ``"dimer"``...).
    states
        Blinking states; one state means no blinking.
    transitions
        Row-stochastic matrix: probability of jumping from state i to state j at the end of a
        dwell (diagonal must be 0). ``None``: to any other state with equal probability.
    rep_rate_hz
        Laser repetition rate, Hz.
    mean_excitations
        Mean number of excitons created per pulse (Poisson), <N>.
    bx_qy_ratio
        Biexciton quantum yield relative to the exciton's (sets g2(0)).
    bx_lifetime_s
        Biexciton lifetime, seconds (Auger-limited, sub-ns to a few ns).
    peak_ev, fwhm_ev
        Mean emission peak energy and single-particle line width (eV).
    spectral_diffusion
        Peak-energy wandering, or ``None``.
    initial_state
        Index of the state at t = 0.
    bleach_s
        Time (s) at which the emitter photobleaches: from then on it emits nothing (the
        detectors still see dark counts and afterpulses). ``None``: it never bleaches.
    """

    name: str
    states: tuple[State, ...]
    transitions: tuple[tuple[float, ...], ...] | None = None
    rep_rate_hz: float = 5e6
    mean_excitations: float = 0.1
    bx_qy_ratio: float = 0.08
    bx_lifetime_s: float = 0.6e-9
    peak_ev: float = 2.0
    fwhm_ev: float = 0.070
    spectral_diffusion: SpectralDiffusion | None = None
    initial_state: int = 0
    bleach_s: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "states", tuple(self.states))
        n = len(self.states)
        if n == 0:
            raise ValueError(f"emitter {self.name!r} needs at least one state")
        if not (self.rep_rate_hz > 0 and math.isfinite(self.rep_rate_hz)):
            raise ValueError(f"emitter {self.name!r}: rep_rate_hz must be positive Hz")
        if not (self.mean_excitations >= 0 and math.isfinite(self.mean_excitations)):
            raise ValueError(f"emitter {self.name!r}: mean_excitations must be >= 0")
        if not self.bx_lifetime_s > 0:
            raise ValueError(f"emitter {self.name!r}: bx_lifetime_s must be positive seconds")
        if not 0 <= self.initial_state < n:
            raise ValueError(f"emitter {self.name!r}: initial_state out of range")
        if self.bleach_s is not None and not (self.bleach_s >= 0 and math.isfinite(self.bleach_s)):
            raise ValueError(f"emitter {self.name!r}: bleach_s must be >= 0 seconds or None")
        if not (self.peak_ev > 0 and self.fwhm_ev > 0):
            raise ValueError(f"emitter {self.name!r}: peak_ev and fwhm_ev must be positive eV")
        for s in self.states:
            if not 0 <= self.bx_qy(s) <= 1:
                raise ValueError(f"emitter {self.name!r}: biexciton yield of state {s.name!r} "
                                 "is outside 0-1 (bx_qy_ratio * qy)")
        if self.transitions is not None:
            m = np.asarray(self.transitions, dtype=float)
            if m.shape != (n, n) or np.any(m < 0) or np.any(np.diag(m) != 0) or (
                    n > 1 and not np.allclose(m.sum(axis=1), 1)):
                raise ValueError(f"emitter {self.name!r}: transitions must be an {n}x{n} "
                                 "row-stochastic matrix with zero diagonal")
            object.__setattr__(self, "transitions", tuple(tuple(r) for r in m.tolist()))

    # -- derived quantities ---------------------------------------------------------------

    def bx_qy(self, state: State) -> float:
        """Biexciton quantum yield in ``state``."""
        r = self.bx_qy_ratio if state.bx_qy_ratio is None else state.bx_qy_ratio
        return r * state.qy

    def transition_matrix(self) -> np.ndarray:
        """The (n, n) jump matrix (uniform to other states when not given)."""
        n = len(self.states)
        if self.transitions is not None:
            return np.asarray(self.transitions, dtype=float)
        if n == 1:
            return np.ones((1, 1))
        return (np.ones((n, n)) - np.eye(n)) / (n - 1)

    def stationary_fractions(self) -> np.ndarray:
        """Long-run fraction of time in each state (NaN where mean dwells are infinite)."""
        n = len(self.states)
        if n == 1:
            return np.ones(1)
        m = self.transition_matrix()
        # Stationary distribution of the embedded jump chain, weighted by mean dwell times.
        w, v = np.linalg.eig(m.T)
        pi = np.real(v[:, np.argmin(np.abs(w - 1))])
        pi = pi / pi.sum()
        means = np.array([s.dwell.mean_s() for s in self.states])
        if not np.all(np.isfinite(means)):
            return np.full(n, np.nan)
        f = pi * means
        return f / f.sum()

    def state_moments(self, eta: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Per state: mean photons per pulse and E[k(k-1)], for detection efficiency ``eta``."""
        mu = np.empty(len(self.states))
        m2 = np.empty(len(self.states))
        for i, s in enumerate(self.states):
            mu[i], m2[i] = pulse_moments(self.mean_excitations, s.qy, self.bx_qy(s), eta)
        return mu, m2

    def emission_rate_hz(self) -> np.ndarray:
        """Emitted photons per second in each state."""
        return self.state_moments()[0] * self.rep_rate_hz

    def to_dict(self) -> dict[str, Any]:
        """Plain-data description (for the simulation truth and file metadata)."""
        return dataclasses.asdict(self)


def pulse_moments(mean_excitations: float, qy: float, bx_qy: float,
                  eta: float = 1.0) -> tuple[float, float]:
    """Mean photon number per pulse and its second factorial moment E[k(k-1)].

    One exciton (probability p1) gives an X photon with probability ``qy``; two or more (p2)
    give a BX photon (``bx_qy``) and then an X photon (``qy``). Each photon is detected with
    probability ``eta``.
    """
    n = mean_excitations
    p1 = n * math.exp(-n)
    p2 = -math.expm1(-n) - p1
    mu = eta * (p1 * qy + p2 * (qy + bx_qy))
    m2 = 2 * eta * eta * p2 * qy * bx_qy
    return mu, m2


def g2_zero(emitters: Emitter | Sequence[Emitter],
            fractions: Sequence[np.ndarray] | None = None) -> float:
    """Analytic pulsed g2(0) (centre peak / neighbouring side peaks) of independent emitters.

    Side peaks at a few periods' lag see the same blinking state, so for one emitter
    g2(0) = sum_s f_s E_s[k(k-1)] / sum_s f_s E_s[k]^2; independent emitters add their cross
    terms 2 <mu_i><mu_j> to both. For two equal emitters with g = 0.1 this gives ~0.55.

    This is the ideal value: decays complete within one laser period and no detector dead
    time. A by-sync estimate from simulated (or real) data exceeds it by about twice the
    fraction of photons arriving after the next pulse (0.13 % for 30 ns at 5 MHz), and dead
    time raises it by the fraction of same-pulse photons lost on one detector.

    Parameters
    ----------
    emitters
        One emitter or several in the same focus.
    fractions
        Fraction of time in each state per emitter; default: the stationary fractions.
    """
    ems = [emitters] if isinstance(emitters, Emitter) else list(emitters)
    if fractions is None:
        fractions = [e.stationary_fractions() for e in ems]
    mean_mu, mean_mu2, mean_m2 = [], [], []
    for e, f in zip(ems, fractions, strict=True):
        mu, m2 = e.state_moments()
        f = np.asarray(f, dtype=float)
        mean_mu.append(float(f @ mu))
        mean_mu2.append(float(f @ mu ** 2))
        mean_m2.append(float(f @ m2))
    mm = np.array(mean_mu)
    cross = float(mm.sum() ** 2 - (mm ** 2).sum())  # 2 * sum_{i<j} <mu_i><mu_j>
    den = sum(mean_mu2) + cross
    return (sum(mean_m2) + cross) / den if den > 0 else math.nan


# -- presets ------------------------------------------------------------------------------

def _rng(rng: np.random.Generator | int | None) -> np.random.Generator | None:
    if rng is None or isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _apply(emitter: Emitter, overrides: dict[str, Any]) -> Emitter:
    names = {f.name for f in dataclasses.fields(Emitter)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"unknown emitter parameter(s) {', '.join(unknown)}; "
                        f"known: {', '.join(sorted(names))}")
    return dataclasses.replace(emitter, **overrides)


FWHM_CV = 0.12
"""Particle-to-particle spread (log scale) of the single-particle line width. Room-temperature
line widths of single CdSe-based dots differ from dot to dot by tens of percent at one size
(Cui et al., Nat. Chem. 5, 602 (2013), photon-correlation Fourier spectroscopy), spanning
60-80 meV and more for CdSe/CdS; so a monomer's and a fused dimer's widths (broadened by
~20 meV through a rod-like neck: Cui et al., Nat. Commun. 10, 5401 (2019)) overlap."""


def _vary(e: Emitter, rng: np.random.Generator, peak_sd_ev: float, lifetime_cv: float,
          brightness_cv: float, fwhm_cv: float = FWHM_CV) -> Emitter:
    """Particle-to-particle variation: peak energy, lifetimes, brightness and line width."""
    peak = e.peak_ev + rng.normal(0.0, peak_sd_ev)
    # Log-normal factors keep lifetimes, brightness and width positive with the given spread.
    tau_f = float(np.exp(rng.normal(0.0, lifetime_cv)))
    bright_f = float(np.exp(rng.normal(0.0, brightness_cv)))
    # drawn last, so the draws above are those of earlier versions for the same seed
    fwhm = e.fwhm_ev * float(np.exp(rng.normal(0.0, fwhm_cv)))
    states = tuple(dataclasses.replace(s, lifetimes_s=tuple(t * tau_f for t in s.lifetimes_s))
                   for s in e.states)
    return dataclasses.replace(e, peak_ev=peak, states=states, fwhm_ev=fwhm,
                               mean_excitations=e.mean_excitations * bright_f)


def monomer(*, blinking: bool = True, rng: np.random.Generator | int | None = None,
            **overrides: Any) -> Emitter:
    """CdSe/CdS core/shell dot: bimodal ON/OFF blinking with a high ON fraction.

    ON: QY 0.9, 30 ns; OFF (charged, Auger-quenched): QY 0.05, 2 ns. Dwells: power laws from
    1 ms, ON alpha 1.4 truncated at 5 s, OFF alpha 1.6 truncated at 0.5 s (ON fraction ~0.9).
    BX/X yield 0.08 (g2(0) ~ 0.08), BX lifetime 0.6 ns, peak 2.0 eV (620 nm), FWHM 70 meV,
    <N> = 0.1 at 5 MHz.

    Parameters
    ----------
    blinking
        False keeps the dot ON all the time (one state).
    rng
        Generator or seed: draws this particle's peak energy (sd 25 meV), lifetime (10 %),
        brightness (20 %) and line width (:data:`FWHM_CV`) so that a population is
        realistic. ``None``: the nominal particle.
    **overrides
        Any :class:`Emitter` field, e.g. ``mean_excitations=0.05, rep_rate_hz=2.5e6``.
    """
    on = State("ON", 0.9, (30e-9,), dwell=PowerLaw(1.4, 1e-3, 5.0))
    off = State("OFF", 0.05, (2e-9,), dwell=PowerLaw(1.6, 1e-3, 0.5))
    e = Emitter("monomer", (on, off) if blinking else (on,),
                spectral_diffusion=SpectralDiffusion())
    g = _rng(rng)
    if g is not None:
        e = _vary(e, g, peak_sd_ev=0.025, lifetime_cv=0.10, brightness_cv=0.20)
    return _apply(e, overrides)


def dimer_shift_ev(neck_nm: float) -> float:
    """Red shift of a fused dimer's emission versus the monomer, eV (positive = to the red).

    Linear in neck diameter above 2 nm (no coupling through thinner necks): 7 meV per nm, i.e.
    14 meV at 4 nm, 28 meV at 6 nm (rod-like neck), capped at 30 meV.
    """
    return min(0.030, 0.007 * max(0.0, neck_nm - 2.0))


def dimer_fwhm_ev(neck_nm: float) -> float:
    """Line width of a fused dimer, eV: 70 meV plus 5 meV per nm of neck above 2 nm."""
    return 0.070 + 0.005 * max(0.0, neck_nm - 2.0)


def dimer(neck_nm: float = 6.0, *, n_levels: int = 6,
          rng: np.random.Generator | int | None = None, **overrides: Any) -> Emitter:
    """Fused quantum-dot molecule: red-shifted, broadened, fast multi-exponential, flickering.

    ``n_levels`` intensity levels with QY from 0.25 to 0.85; each decays bi-exponentially
    (30 % at 0.4 tau, 70 % at tau, tau = QY x 25 ns); dwells are short power laws (alpha 1.8
    from 0.1 ms, truncated at 20 ms) with jumps to any other level. Two dots absorb, so
    <N> = 0.2; the biexciton is weakly Auger-quenched (BX/X = 0.6, 3 ns) giving g2(0) ~ 0.55.
    Red shift and width follow :func:`dimer_shift_ev` and :func:`dimer_fwhm_ev`.
    """
    if not neck_nm >= 0:
        raise ValueError(f"neck_nm must be >= 0 nm, not {neck_nm!r}")
    if n_levels < 1:
        raise ValueError("n_levels must be >= 1")
    qys = np.linspace(0.25, 0.85, n_levels) if n_levels > 1 else np.array([0.85])
    states = tuple(State(f"L{i}", float(q), (0.4 * q * 25e-9, q * 25e-9), (0.3, 0.7),
                         dwell=PowerLaw(1.8, 1e-4, 0.02)) for i, q in enumerate(qys))
    e = Emitter("dimer", states, mean_excitations=0.2, bx_qy_ratio=0.6, bx_lifetime_s=3e-9,
                peak_ev=2.0 - dimer_shift_ev(neck_nm), fwhm_ev=dimer_fwhm_ev(neck_nm),
                spectral_diffusion=SpectralDiffusion(), initial_state=n_levels - 1)
    g = _rng(rng)
    if g is not None:
        e = _vary(e, g, peak_sd_ev=0.025, lifetime_cv=0.10, brightness_cv=0.20)
    return _apply(e, overrides)


def pair(*, rng: np.random.Generator | int | None = None,
         **overrides: Any) -> tuple[Emitter, Emitter]:
    """Two independent monomers in one focus (g2(0) ~ 0.5 plus biexciton terms).

    With ``rng`` each dot is drawn independently (so their peaks differ); ``overrides`` apply
    to both.
    """
    g = _rng(rng)
    a = monomer(rng=g, **overrides)
    b = monomer(rng=g, **overrides)
    return dataclasses.replace(a, name="pair[0]"), dataclasses.replace(b, name="pair[1]")
