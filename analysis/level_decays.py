"""Decays of the parts of a blinking trace: each intensity state of the level grouping, and
each single resolved (change-point) level.

Both are cut from the one set of photon arrival times and aligned delays, sorted by time, that
the bright-state decay is made from (:meth:`spad.analysis.windowed.KeptPhotons.sorted_delays`;
photons in memory only), and fitted by the same code (:func:`fit_decays`: 1 or 2 exponentials
with the IRF, the lower AIC kept), so a state and a level are compared on equal terms. A
state's decay is what Full SMS shows per group; a level's decay shows whether the lifetime
follows the intensity level by level (the dimmer, shorter-lived charged state of
fluorescence-lifetime-intensity correlation, Galland et al., Nature 479, 203
(2011)), which a grouping of several levels into one state averages away.

A recording can have hundreds of levels and a fit costs ~0.05 s, so levels are fitted only when
asked (:attr:`spad.analysis.photon_analysis.AnalysisSettings.max_level_fits`, set by the desktop
app), only those with :data:`FIT_MIN_PHOTONS` photons, and at most that many of them (those
with the most photons).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from spad.analysis.lifetimes import LifetimeResult, fit_decay_select, state_decay_histograms

FIT_MIN_PHOTONS = 1000
"""Photons a state's or a level's decay needs to be fitted: below it a 1-2 exponential fit on a
few hundred bins is noise."""

MAX_LEVEL_FITS = 50
"""Most single levels the desktop app fits per particle (the ones with the most photons)."""


@dataclass
class LevelDecays:
    """Decays and fits of single resolved levels.

    Attributes
    ----------
    decays
        Level index (time order, as in :class:`spad.analysis.blinking.BlinkingResult`) -> decay
        counts on the bins of the whole decay, for the levels fitted only.
    fits
        Level index -> its fit, ``None`` where the fit failed.
    photons
        Photons (with a delay) in each level, all levels.
    n_enough
        Levels with at least ``min_photons`` photons; those beyond the cap are not fitted.
    """

    decays: dict[int, np.ndarray] = field(default_factory=dict)
    fits: dict[int, LifetimeResult | None] = field(default_factory=dict)
    photons: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    n_enough: int = 0

    @property
    def n_skipped(self) -> int:
        """Levels with enough photons for a fit that were left out by the cap."""
        return self.n_enough - len(self.decays)


def fit_decays(hists: dict[int, np.ndarray], edges: np.ndarray, period: float,
               irf: np.ndarray | str, min_photons: int = FIT_MIN_PHOTONS
               ) -> dict[int, LifetimeResult | None]:
    """Fit each decay that holds at least ``min_photons`` photons.

    Parameters
    ----------
    hists
        Key -> decay counts on ``edges``.
    edges
        Decay bin edges (s), one laser period.
    period
        Laser period (s).
    irf
        Measured IRF on the bins, or ``"gaussian"`` (:func:`spad.analysis.lifetimes.fit_decay`).
    min_photons
        Fewer photons: ``None`` (no fit).

    Returns
    -------
    dict
        Key -> the fit (1 or 2 exponentials, the lower AIC), ``None`` for too few photons or a
        failed fit (the decay is then shown without one).
    """
    out: dict[int, LifetimeResult | None] = {}
    for key, counts in hists.items():
        fit = None
        if counts.sum() >= min_photons:
            try:
                fit = fit_decay_select(counts, edges, period, max_exp=2, irf=irf)
            except (ValueError, RuntimeError):
                fit = None
        out[key] = fit
    return out


def state_decays(t_sorted: np.ndarray, d_sorted: np.ndarray, edges: np.ndarray, period: float,
                 irf: np.ndarray | str, level_start: np.ndarray, level_end: np.ndarray,
                 level_state: np.ndarray, fit: bool = True
                 ) -> tuple[dict[int, np.ndarray], dict[int, LifetimeResult | None]]:
    """Decay and fit of each intensity state of a level grouping.

    Parameters
    ----------
    t_sorted, d_sorted
        Arrival times (s, sorted) and aligned delays (s) of the photons.
    edges, period, irf
        As for :func:`fit_decays`.
    level_start, level_end, level_state
        The levels (s, time order) and the state of each (0 = dimmest).
    fit
        Fit the decays (else the fits are an empty dict).

    Returns
    -------
    decays, fits
        State -> decay counts (float) and state -> fit (``None`` below
        :data:`FIT_MIN_PHOTONS` photons or when the fit failed); empty without levels.
    """
    if np.size(level_state) == 0:
        return {}, {}
    try:
        hists = state_decay_histograms(t_sorted, d_sorted, edges, level_start, level_end,
                                       np.asarray(level_state, dtype=np.int64))
    except ValueError:
        return {}, {}
    decays = {s: np.asarray(c, dtype=np.float64) for s, c in sorted(hists.items())}
    return decays, (fit_decays(decays, edges, period, irf) if fit else {})


def level_photons(t_sorted: np.ndarray, level_start: np.ndarray, level_end: np.ndarray
                  ) -> np.ndarray:
    """Photons in each level ``[start, end)`` (the last level closed, as
    :func:`spad.analysis.lifetimes.state_decay_histograms` assigns them), from sorted times."""
    start = np.asarray(level_start, dtype=np.float64)
    end = np.asarray(level_end, dtype=np.float64)
    if start.size == 0:
        return np.zeros(0, dtype=np.int64)
    hi = np.searchsorted(t_sorted, end, side="left")
    hi[-1] = np.searchsorted(t_sorted, end[-1], side="right")
    return (hi - np.searchsorted(t_sorted, start, side="left")).astype(np.int64)


def levels_to_fit(photons: np.ndarray, max_levels: int, min_photons: int = FIT_MIN_PHOTONS
                  ) -> np.ndarray:
    """Indices (ascending, i.e. time order) of the levels to fit: those with at least
    ``min_photons`` photons, at most ``max_levels`` of them, the ones with the most photons
    (bright or long: both make a decay worth fitting)."""
    enough = np.flatnonzero(np.asarray(photons) >= min_photons)
    if enough.size > max_levels:
        # stable sort: among equal counts the earlier level wins, so the choice is repeatable
        by_photons = enough[np.argsort(-np.asarray(photons)[enough], kind="stable")]
        enough = by_photons[:max(max_levels, 0)]
    return np.sort(enough)


def level_decays(t_sorted: np.ndarray, d_sorted: np.ndarray, edges: np.ndarray, period: float,
                 irf: np.ndarray | str, level_start: np.ndarray, level_end: np.ndarray,
                 max_levels: int = MAX_LEVEL_FITS, min_photons: int = FIT_MIN_PHOTONS
                 ) -> LevelDecays:
    """Decay and fit of single resolved levels, from the same photons as :func:`state_decays`.

    Only the levels :func:`levels_to_fit` picks are histogrammed and fitted: one pass over the
    photons (the other levels are labelled out), one fit per level.

    Parameters
    ----------
    t_sorted, d_sorted, edges, period, irf
        As for :func:`state_decays`.
    level_start, level_end
        The levels (s, time order).
    max_levels, min_photons
        The cap on the levels fitted, and the photons a level needs.

    Returns
    -------
    LevelDecays
    """
    photons = level_photons(t_sorted, level_start, level_end)
    n_enough = int(np.count_nonzero(photons >= min_photons))
    chosen = levels_to_fit(photons, max_levels, min_photons)
    out = LevelDecays(photons=photons, n_enough=n_enough)
    if chosen.size == 0:
        return out
    label = np.full(photons.size, -1, dtype=np.int64)  # -1: a level not fitted, left out
    label[chosen] = chosen
    hists = state_decay_histograms(t_sorted, d_sorted, edges, level_start, level_end, label)
    out.decays = {int(i): np.asarray(hists[int(i)], dtype=np.float64) for i in chosen
                  if int(i) in hists}
    out.fits = fit_decays(out.decays, edges, period, irf, min_photons)
    return out
