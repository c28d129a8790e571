"""The session as evidence: a two-class mixture over the peak energies of a session's particles.

A particle's red shift is small against the particle-to-particle spread of peak energies (a
fused dimer sits 25-30 meV to the red of its monomers, which spread by about as much), and both
the monomer peak energy and its spread depend on the sample (synthesis, temperature). So they
are estimated from the session itself: the peak energies E_i (standard errors e_i) of the
particles with a spectrum are a mixture of monomers, N(E0, s^2 + e_i^2), and dimers,
N(E0 - D, s^2 + s_D^2 + e_i^2), where D and s_D (the dimer shift and its extra spread) come
from the calibration's class distributions, and each particle's prior odds of being a dimer are
those its photons give (:meth:`spad.analysis.classify.Classifier.classify` without the
spectrum). Expectation-maximisation (Dempster, Laird & Rubin, J. R. Stat. Soc. B 39, 1 (1977))
gives E0 (the reference every red shift is measured from), s, and the dimer share; each
particle's red shift is then judged against this sample's spread, not a simulated default.
The lifetime scale of each class (photon-weighted geometric mean of the bright-state
lifetimes) is reported with it: it describes the sample but is not evidence (the calibration
spans lifetimes of 10-80 ns in both classes).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from spad.analysis.classify import Classifier, p_from_log_odds
from spad.analysis.schema import SPECTRUM_FEATURES

MIN_REFERENCE = 3
"""Fewest particles with a spectrum for the session to set its own monomer peak energy."""

MIN_SPREAD = 6
"""Fewest particles with a spectrum for the session to set its own spread of peak energies
(below this the calibration's spread is used)."""

SPREAD_RANGE_MEV = (2.0, 80.0)
"""Bounds of the fitted spread of monomer peak energies."""


@dataclass
class Sample:
    """What the mixture reads of one particle."""

    peak_ev: float | None
    peak_err_ev: float | None
    p_dimer_photons: float
    lifetime_ns: float | None = None


@dataclass
class SessionModel:
    """The session's estimates of the sample-dependent parts of the class distributions.

    Attributes
    ----------
    reference_ev, reference_err_ev
        Peak energy of the sample's monomers (the red shifts' reference) and its standard
        error; ``None`` without enough spectra (and no reference given).
    reference_from
        ``"session"`` (the mixture), ``"given"`` (``--reference-ev``) or ``"none"``.
    spread_mev, spread_from
        Particle-to-particle standard deviation of the monomers' peak energies and where it
        came from (``"session"`` or ``"calibration"``).
    dimer_shift_mev, dimer_extra_spread_mev
        The dimers' mean red shift and their extra spread (from the calibration).
    dimer_fraction
        The mixture's share of dimers among the particles with a spectrum.
    n_spectra
        Particles with a spectrum in the session.
    lifetime_scale_ns
        Geometric mean bright-state lifetime of each class, weighted by the class
        probabilities (reported, not evidence).
    """

    reference_ev: float | None = None
    reference_err_ev: float | None = None
    reference_from: str = "none"
    spread_mev: float | None = None
    spread_from: str = "calibration"
    dimer_shift_mev: float | None = None
    dimer_extra_spread_mev: float | None = None
    dimer_fraction: float | None = None
    n_spectra: int = 0
    lifetime_scale_ns: dict[str, float | None] = field(default_factory=dict)

    def classes(self) -> dict[str, tuple[tuple[float, float], tuple[float, float]]]:
        """The red shift's class distributions for :meth:`Classifier.classify` (monomers at 0
        with the session's spread, dimers at the calibrated shift with the extra spread)."""
        if self.reference_ev is None or self.spread_mev is None or self.dimer_shift_mev is None:
            return {}
        s = self.spread_mev
        return {"shift_mev": ((0.0, s), (self.dimer_shift_mev,
                                         math.hypot(s, self.dimer_extra_spread_mev or 0.0)))}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def photon_p_dimer(evidence: Mapping[str, float] | None) -> float:
    """P(dimer) from the photon features' evidence alone (the spectral evidence left out)."""
    return p_from_log_odds(sum(v for k, v in (evidence or {}).items()
                               if k not in SPECTRUM_FEATURES))


def samples_from_records(records: Iterable[Mapping[str, Any]]) -> list[Sample]:
    """Mixture inputs from JSON records / table rows (``peak_ev``, ``peak_ev_err``,
    ``lifetime_ns``, ``classification.evidence``)."""
    out = []
    for r in records:
        c = r.get("classification") or {}
        out.append(Sample(r.get("peak_ev"), r.get("peak_ev_err"),
                          photon_p_dimer(c.get("evidence")), r.get("lifetime_ns")))
    return out


def _calibrated_shift(clf: Classifier) -> tuple[float, float, float] | None:
    """(monomer spread, dimer shift, dimer extra spread) in meV from the classifier."""
    m = clf.model("shift_mev")
    if m is None:
        return None
    (mu_m, sd_m), (mu_d, sd_d) = m.monomer, m.dimer
    return sd_m, mu_d - mu_m, math.sqrt(max(sd_d ** 2 - sd_m ** 2, 0.0))


def session_model(samples: Sequence[Sample], classifier: Classifier,
                  reference_ev: float | None = None) -> SessionModel:
    """Fit the two-class mixture of peak energies over a session (see the module notes).

    Parameters
    ----------
    samples
        One per particle (those without a finite peak energy only count for the lifetimes).
    classifier
        Supplies the calibrated dimer shift, its extra spread and the default spread.
    reference_ev
        Monomer peak energy given by the user: kept fixed (the spread is still estimated).
    """
    cal = _calibrated_shift(classifier)
    out = SessionModel()
    if cal is not None:
        out.spread_mev, out.dimer_shift_mev, out.dimer_extra_spread_mev = cal
    ok = [s for s in samples if s.peak_ev is not None and math.isfinite(s.peak_ev)]
    out.n_spectra = len(ok)
    p_photon = np.clip([s.p_dimer_photons for s in samples], 0.0, 1.0)
    resp_all = p_photon.copy()
    if cal is not None and (reference_ev is not None or len(ok) >= MIN_REFERENCE):
        e_mev = np.array([s.peak_ev for s in ok]) * 1e3
        err = np.array([s.peak_err_ev if s.peak_err_ev is not None
                        and math.isfinite(s.peak_err_ev) else 0.0 for s in ok]) * 1e3
        # a photon verdict is a prior, never a certainty: a wrong one must not pin a particle
        prior = np.clip([s.p_dimer_photons for s in ok], 0.02, 0.98)
        s_mev, shift, extra = cal
        e0 = (reference_ev * 1e3 if reference_ev is not None
              else float(np.median(np.where(prior < 0.5, e_mev, e_mev + shift))))
        fit_spread = len(ok) >= MIN_SPREAD
        if fit_spread:
            from scipy.optimize import minimize_scalar  # a session of particles only
        r = prior
        for _ in range(200):
            var_m, var_d = s_mev ** 2 + err ** 2, s_mev ** 2 + extra ** 2 + err ** 2
            lm = np.exp(-0.5 * (e_mev - e0) ** 2 / var_m) / np.sqrt(var_m)
            ld = np.exp(-0.5 * (e_mev - e0 + shift) ** 2 / var_d) / np.sqrt(var_d)
            r = prior * ld / np.maximum(prior * ld + (1 - prior) * lm, 1e-300)
            w_m, w_d = (1 - r) / var_m, r / var_d
            new = (e0 if reference_ev is not None else
                   float(np.sum(w_m * e_mev + w_d * (e_mev + shift)) / np.sum(w_m + w_d)))
            if fit_spread:
                def nll(s: float, e0: float = new, r: np.ndarray = r) -> float:
                    vm, vd = s ** 2 + err ** 2, s ** 2 + extra ** 2 + err ** 2
                    return float(np.sum((1 - r) * (np.log(vm) + (e_mev - e0) ** 2 / vm)
                                        + r * (np.log(vd) + (e_mev - e0 + shift) ** 2 / vd)))
                s_new = float(minimize_scalar(nll, bounds=SPREAD_RANGE_MEV,
                                              method="bounded").x)
            else:
                s_new = s_mev
            done = abs(new - e0) < 1e-6 and abs(s_new - s_mev) < 1e-6
            e0, s_mev = new, s_new
            if done:
                break
        out.reference_ev = e0 / 1e3
        out.reference_from = "given" if reference_ev is not None else "session"
        out.reference_err_ev = (0.0 if reference_ev is not None
                                else float(1.0 / math.sqrt(np.sum(w_m + w_d))) / 1e3)
        out.spread_mev = s_mev
        out.spread_from = "session" if fit_spread else "calibration"
        out.dimer_fraction = float(np.mean(r))
        idx = [i for i, s in enumerate(samples) if s.peak_ev is not None
               and math.isfinite(s.peak_ev)]
        resp_all[idx] = r
    elif reference_ev is not None:
        out.reference_ev, out.reference_err_ev, out.reference_from = reference_ev, 0.0, "given"
    tau = np.array([s.lifetime_ns if s.lifetime_ns is not None else np.nan for s in samples],
                   float)
    good = np.isfinite(tau) & (tau > 0)
    for name, w in (("monomer", 1 - resp_all), ("dimer", resp_all)):
        ww = w[good]
        out.lifetime_scale_ns[name] = (float(np.exp(np.sum(ww * np.log(tau[good])) / ww.sum()))
                                       if ww.sum() > 0.5 else None)
    return out
