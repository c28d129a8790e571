"""Compile (or load from numba's cache) every photon-analysis kernel before the first particle.

The kernels are compiled on their first call. On a fresh installation that takes tens of
seconds on a laptop, and a live view started then would show "g2(0) n/a" for the whole first
particle while it waits. :func:`warm_up` runs the whole photon analysis once on a short
synthetic two-level emitter, in T3 and in T2 with a sync channel (the two stream modes take
different kernels), so that every later call finds its kernels compiled. Later starts load
them from numba's on-disk cache (``cache=True``), which takes a second or two.
"""

from __future__ import annotations

import numpy as np

from spad.photons import SYNC, PhotonChunk, Timing

PERIOD_S = 50e-9
"""Laser period of the synthetic emitter (20 MHz)."""

DURATION_S = 2.0
"""Long enough for a few change points, ON/OFF levels and a coincidence histogram."""


def _emitter(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pulse indices, detectors (1 or 2) and delays (s) of a blinking emitter: eight ON and
    OFF periods at 40 and 2 kcps, at most one photon per pulse."""
    n_pulses = int(DURATION_S / PERIOD_S)
    edges = np.concatenate([[0], np.sort(rng.integers(1, n_pulses, 7)), [n_pulses]])
    pulses = []
    for k in range(edges.size - 1):
        rate = 40e3 if k % 2 == 0 else 2e3
        n = rng.poisson(rate * (edges[k + 1] - edges[k]) * PERIOD_S)
        pulses.append(rng.integers(edges[k], edges[k + 1], n))
    idx = np.unique(np.concatenate(pulses))          # sorted, one photon per pulse
    detectors = rng.integers(1, 3, idx.size).astype(np.uint8)
    delays = np.minimum(rng.exponential(5e-9, idx.size) + 2e-9, PERIOD_S * 0.99)
    return idx.astype(np.int64), detectors, delays


def synthetic_chunks() -> list[PhotonChunk]:
    """One T3 and one T2 (with sync events) recording of the same synthetic emitter."""
    rng = np.random.default_rng(0)
    pulses, detectors, delays = _emitter(rng)
    bin_s = 50e-12
    nbins = int(round(PERIOD_S / bin_s))
    t3 = PhotonChunk(Timing("T3", PERIOD_S, nanotime_unit=bin_s, sync_period=PERIOD_S,
                            tcspc_num_bins=nbins),
                     pulses, detectors, np.round(delays / bin_s).astype(np.uint16))
    res = 1e-12
    tick = int(round(PERIOD_S / res))
    photon_t = pulses * tick + np.round(delays / res).astype(np.int64)
    sync_t = np.arange(0, pulses[-1] + 1, 100, dtype=np.int64) * tick   # divided sync
    t = np.concatenate([photon_t, sync_t])
    d = np.concatenate([detectors, np.full(sync_t.size, SYNC, np.uint8)])
    order = np.argsort(t, kind="stable")
    t2 = PhotonChunk(Timing("T2", res, sync_period=PERIOD_S), t[order], d[order])
    return [t3, t2]


_WARM = False


def warm_up() -> None:
    """Run the photon analysis once in each stream mode (compiles or loads every kernel);
    once per process, later calls return at once.

    Takes seconds from numba's cache and up to a minute or two on a fresh installation; call
    it where that wait can be shown (the desktop app does, before its first Record).
    """
    global _WARM
    if _WARM:
        return
    from spad.analysis.accumulators import IntensityTrace
    from spad.analysis.photon_analysis import AnalysisSettings, analyze_photons

    settings = AnalysisSettings()
    for chunk in synthetic_chunks():
        analyze_photons(chunk, settings)
        trace = IntensityTrace(settings.trace_bin_s, settings.detectors)
        trace.update(chunk)
        trace.result()
    _WARM = True
