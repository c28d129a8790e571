"""Photon bursts: short intensity spikes far above anything the emitter does, and their removal.

A burst is a brief flood of counts that does not come from the particle: a cosmic ray or other
particle through the APD, an afterpulsing cascade, a bright speck drifting through the focus.
Counted as emission it makes a false "brightest state", adds a level to the grouping and raises
the coincidences at zero delay.

Criterion (Full SMS: Botha, van Heerden & Krüger, Biophys. Rep. 2024, its change-point module,
which flags a resolved level as a burst when its intensity exceeds the dwell-time weighted mean of
all level intensities by more than three dwell-time weighted standard deviations and it lasts
less than 0.1 s), with one addition here: the level's photon count must exceed what that
threshold intensity would give over the level's duration, tested as a scan statistic: the
probability that a Poisson stream at the threshold intensity holds, anywhere in the whole trace,
a window of the level's duration with that many photons (Naus's approximation, J. Am. Stat.
Assoc. 77, 177 (1982); the change-point search looks everywhere, so the single-window Poisson tail
would be far too small) must lie below ``p_value``. The analysis uses one minus its
confidence times :data:`BURST_TRACE_SHARE`, so that a steady source loses no photons
at that confidence per trace.
Measured on simulated steady sources (docs/methods.md, "Photon bursts"): without the scan
correction a steady source at 10-500 kcps lost up to 2 false bursts per trace at a Poisson tail
of 1e-6.

Removal (as Full SMS merges a burst level into its brighter neighbour): the burst's photons are
dropped from every further analysis (levels, decays, g2), and its time is given to the brighter
of the two neighbouring levels, which then become adjacent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from spad.analysis.changepoints import Levels
from spad.analysis.distributions import poisson_pmf, poisson_sf

__all__ = ["Bursts", "find_bursts", "levels_without_bursts", "photons_outside", "scan_p_value"]

#: Full SMS's burst definition: intensity above the weighted mean + 3 weighted SD ...
BURST_SIGMA = 3.0
#: ... and shorter than 0.1 s.
BURST_MAX_DWELL_S = 0.1
#: Share of the analysis's false-positive rate (one minus its confidence) given to the burst
#: test per trace. The scan approximation covers windows of one length; the change-point search
#: tries every length, and at the full share a steady source lost a false burst in 1.7 % of
#: simulated traces at 99 % confidence (60 traces each at 100 and 500 kcps). A tenth keeps it
#: under 1 % (0 in 180 traces at 10-500 kcps, docs/methods.md), and real bursts (cosmic rays,
#: afterpulsing cascades) lie tens of orders of magnitude below it.
BURST_TRACE_SHARE = 0.1


@dataclass
class Bursts:
    """Burst levels found in a trace (times in s, intensities in counts/s).

    Attributes
    ----------
    level
        Index of each burst level among the levels it was found in.
    start, end
        Time span of each burst: its first photon and the next level's first photon.
    n_photons
        Photons of each burst (removed from the analyses).
    intensity
        Intensity of each burst.
    threshold_rate
        Intensity above which a short level may be a burst (weighted mean + 3 weighted SD).
    """

    level: np.ndarray
    start: np.ndarray
    end: np.ndarray
    n_photons: np.ndarray
    intensity: np.ndarray
    threshold_rate: float

    def __len__(self) -> int:
        return int(self.level.size)


def scan_p_value(n: np.ndarray, rate: float, window_s: np.ndarray, total_s: float
                 ) -> np.ndarray:
    """Probability that a Poisson stream of ``rate`` over ``total_s`` holds at least ``n``
    events in some window of ``window_s`` (Naus 1982):
    ``1 - F(n-1; psi) exp(-((n - psi)/n) rate (T - w) p(n-1; psi))``, ``psi = rate w``, with F
    and p the Poisson distribution and mass functions; never below the single-window tail."""
    n = np.asarray(n, dtype=np.float64)
    w = np.asarray(window_s, dtype=np.float64)
    psi = rate * w
    tail = poisson_sf(n - 1, psi)
    pk = poisson_pmf(n - 1, psi)
    x = np.clip((n - psi) / np.maximum(n, 1.0), 0.0, None) * rate * np.clip(total_s - w, 0.0,
                                                                           None) * pk
    p = -np.expm1(np.log1p(-np.minimum(tail, 1.0 - 1e-16)) - x)
    return np.clip(np.maximum(p, tail), 0.0, 1.0)


def find_bursts(levels: Levels, sigma: float = BURST_SIGMA,
                max_dwell_s: float = BURST_MAX_DWELL_S, p_value: float = 0.01) -> Bursts:
    """Burst levels among change-point levels.

    Parameters
    ----------
    levels
        Levels from :func:`spad.analysis.changepoints.levels_from_change_points`.
    sigma
        Weighted standard deviations above the weighted mean intensity.
    max_dwell_s
        Longest burst (s).
    p_value
        Probability (per trace, :func:`scan_p_value`) below which the level's count is
        significantly above the threshold intensity: one minus the analysis confidence.
    """
    d = np.asarray(levels.duration, dtype=np.float64)
    inten = np.asarray(levels.intensity, dtype=np.float64)
    n = np.asarray(levels.n_photons, dtype=np.int64)
    empty = np.empty(0)
    if d.size < 2 or d.sum() <= 0:
        return Bursts(np.empty(0, np.int64), empty, empty, np.empty(0, np.int64), empty,
                      float("nan"))
    w = d / d.sum()
    mean = float(np.sum(w * inten))
    sd = float(np.sqrt(np.sum(w * (inten - mean) ** 2)))
    thr = mean + sigma * sd
    # P(some window of the level's duration holds >= n photons | threshold rate, whole trace)
    p = scan_p_value(n, thr, d, float(d.sum()))
    hit = np.flatnonzero((inten > thr) & (d < max_dwell_s) & (p < p_value))
    return Bursts(hit.astype(np.int64), levels.start[hit].astype(np.float64),
                  levels.end[hit].astype(np.float64), n[hit], inten[hit], thr)


def levels_without_bursts(levels: Levels, last_photon_s: np.ndarray, n: int, found: Bursts
                          ) -> tuple[Levels, np.ndarray, np.ndarray, int, float]:
    """Drop the bursts' photons and merge their time into the brighter neighbouring level,
    from the levels alone (the photons are not needed: a level's photons are a range of stream
    indices).

    Parameters
    ----------
    levels, found
        Levels and the bursts among them (:func:`find_bursts`).
    last_photon_s
        Time of each level's last photon (s).
    n
        Photons in all the levels.

    Returns
    -------
    levels, burst_first, burst_stop, n_kept, t_last
        The levels of the kept photons, the stream-index ranges ``[first, stop)`` of the
        burst levels, the number of photons kept and the time of the last one.
    """
    first = np.asarray(levels.first_photon, dtype=np.int64)
    last = np.append(first[1:], n)
    is_burst = np.zeros(len(levels), dtype=bool)
    is_burst[found.level] = True
    good = np.flatnonzero(~is_burst)
    if good.size == 0:
        raise ValueError("every level is a burst: no emission left")
    removed = np.where(is_burst, last - first, 0)
    before = np.cumsum(removed) - removed   # burst photons before each level
    new_first = first[good] - before[good]
    n_kept = int(n - removed.sum())
    start = np.asarray(levels.start, dtype=np.float64)[good].copy()
    t_last = float(last_photon_s[good[-1]])
    end = np.append(start[1:], t_last)
    n_ph = np.diff(np.append(new_first, n_kept)).astype(np.int64)
    give_burst_time(levels, good, start, end)
    return (Levels(start=start, end=end, n_photons=n_ph, first_photon=new_first),
            first[is_burst], last[is_burst], n_kept, t_last)


def give_burst_time(levels: Levels, good: np.ndarray, start: np.ndarray,
                    end: np.ndarray) -> None:
    """A burst between two kept levels: its time goes to the brighter one (the later level
    starts at the burst's start instead of at its first photon after the burst). ``good`` are
    the kept levels' indices in ``levels``; ``start`` and ``end`` (theirs) change in place."""
    inten = levels.intensity
    for j in range(1, good.size):
        a, b = good[j - 1], good[j]
        if b - a > 1 and inten[b] > inten[a]:
            start[j] = levels.start[a + 1]
            end[j - 1] = start[j]


def photons_outside(times: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Mask of the photon times outside every interval ``[start, end)`` (sorted, disjoint)."""
    t = np.asarray(times, dtype=np.float64)
    s = np.asarray(start, dtype=np.float64)
    e = np.asarray(end, dtype=np.float64)
    if s.size == 0:
        return np.ones(t.size, dtype=bool)
    k = np.searchsorted(s, t, side="right") - 1  # last interval starting at or before t
    inside = (k >= 0) & (t < e[np.maximum(k, 0)])
    return ~inside
