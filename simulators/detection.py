"""The detection chain: collection, HBT beamsplitter, APDs and the time tagger.

Order of effects on each emitted photon (the first three are applied per pulse in
:mod:`spad.simulators.emission`, the rest here):

1. collected and detected with probability ``collection_efficiency * detector_efficiency``;
2. sent to detector 1 with probability ``split_ratio``, else to detector 2 (50:50 HBT);
3. delayed by the detector's timing jitter (Gaussian of FWHM ``jitter_fwhm_s``, truncated at
   6 sigma, or a measured IRF) and its cable delay ``offsets_s``;
4. dark counts (Poisson, ``dark_rate_hz``) join the detector's stream;
5. non-paralysable dead time per detector: an event within ``dead_time_s`` of the last
   *registered* event of the same detector is lost (afterpulses included);
6. each registered event is followed by an afterpulse with probability
   ``afterpulse_probability``, after the dead time plus a delay drawn from a mixture of
   exponentials (``afterpulse_tau_s``, ``afterpulse_weights``); afterpulses can afterpulse;
7. the tagger quantises: T3 to (sync number, TCSPC bin of ``bin_s``), T2 to ticks of
   ``t2_resolution_s``; the sync may be divided by ``sync_divider``.

Times inside the simulator are float64 seconds since the start (sub-picosecond precision for
runs of hours); the tagger's integer units appear only at quantisation.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit
from scipy.special import ndtr
from spad.simulators.blinking import uniform

from spad.photons import SYNC, Mode, Timing

__all__ = ["Detection", "irf_quantiles", "dead_time_afterpulse", "quantise_t3", "quantise_t2"]

_MAX_T3_BINS = 1 << 15
"""HydraHarp-family T3 records have a 15-bit dtime field."""

_N_QUANTILES = 4096
"""Points of the jitter inverse-CDF table."""


def _pair(x: float | Sequence[float], name: str) -> tuple[float, float]:
    v = (float(x), float(x)) if np.ndim(x) == 0 else tuple(float(a) for a in x)
    if len(v) != 2:
        raise ValueError(f"{name} must be one value or one per detector (2)")
    return v  # type: ignore[return-value]


@dataclass(frozen=True)
class Detection:
    """Parameters of the two-APD HBT set-up and the time tagger (SI units).

    Per-detector quantities accept one value (both detectors) or a pair.

    Parameters
    ----------
    collection_efficiency
        Fraction of emitted photons reaching the detectors (objective, filters, optics).
    detector_efficiency
        APD photon detection efficiency. With the defaults (0.15 x 0.5) an ON monomer at 5 MHz
        and <N> = 0.1 gives ~32 kcps.
    split_ratio
        Fraction sent to detector 1 (0.5 for a 50:50 beamsplitter).
    dead_time_s
        Non-paralysable dead time per detector.
    dark_rate_hz
        Dark count rate per detector.
    afterpulse_probability
        Probability that a registered event is followed by an afterpulse.
    afterpulse_tau_s, afterpulse_weights
        Afterpulse delay after the dead time: mixture of exponentials.
    jitter_fwhm_s
        Gaussian timing jitter (APD + tagger), FWHM; ignored when ``irf`` is given.
    irf, irf_dt_s
        Measured instrument response: histogram values on a grid of ``irf_dt_s`` seconds
        starting at 0 (its own delay is kept, so a measured IRF also shifts the times).
    offsets_s
        Cable delay of each detector (relative to the sync), seconds.
    mode
        ``"T3"`` or ``"T2"`` output.
    bin_s
        T3 TCSPC bin width (e.g. 16, 32, 64 ps).
    t2_resolution_s
        T2 tag resolution (1 ps for a HydraHarp 400).
    sync_divider
        Sync divider: in T3 the sync counter and TCSPC range cover ``sync_divider`` pulses.
    t2_sync_events
        Keep the (divided) sync events in T2 streams as detector 0.
    """

    collection_efficiency: float = 0.15
    detector_efficiency: float = 0.5
    split_ratio: float = 0.5
    dead_time_s: float | tuple[float, float] = 22e-9
    dark_rate_hz: float | tuple[float, float] = 100.0
    afterpulse_probability: float | tuple[float, float] = 0.007
    afterpulse_tau_s: tuple[float, ...] = (60e-9, 600e-9)
    afterpulse_weights: tuple[float, ...] = (0.7, 0.3)
    jitter_fwhm_s: float = 0.35e-9
    irf: np.ndarray | None = field(default=None, compare=False, repr=False)
    irf_dt_s: float | None = None
    offsets_s: tuple[float, float] = (3.0e-9, 5.4e-9)
    mode: Mode = "T3"
    bin_s: float = 16e-12
    t2_resolution_s: float = 1e-12
    sync_divider: int = 1
    t2_sync_events: bool = False

    def __post_init__(self) -> None:
        for name in ("collection_efficiency", "detector_efficiency", "split_ratio"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"detection {name} must be within 0-1")
        for name in ("dead_time_s", "dark_rate_hz", "afterpulse_probability", "offsets_s"):
            object.__setattr__(self, name, _pair(getattr(self, name), name))
        if min(self.dead_time_s) < 0 or min(self.dark_rate_hz) < 0:
            raise ValueError("dead_time_s and dark_rate_hz must be >= 0")
        if not all(0 <= p < 1 for p in self.afterpulse_probability):
            raise ValueError("afterpulse_probability must be within [0, 1)")
        taus = tuple(float(t) for t in self.afterpulse_tau_s)
        w = tuple(float(x) for x in self.afterpulse_weights)
        if len(taus) != len(w) or not taus or min(taus) <= 0 or min(w) < 0 or sum(w) <= 0:
            raise ValueError("afterpulse_tau_s (positive) and afterpulse_weights must pair up")
        object.__setattr__(self, "afterpulse_tau_s", taus)
        object.__setattr__(self, "afterpulse_weights", w)
        if not self.jitter_fwhm_s >= 0:
            raise ValueError("jitter_fwhm_s must be >= 0 s")
        if self.irf is not None:
            irf = np.asarray(self.irf, dtype=float)
            if irf.ndim != 1 or irf.size < 2 or np.any(irf < 0) or irf.sum() <= 0:
                raise ValueError("irf must be a 1-D non-negative histogram with counts")
            if not (self.irf_dt_s and self.irf_dt_s > 0):
                raise ValueError("a measured irf needs irf_dt_s, its bin width in seconds")
            object.__setattr__(self, "irf", irf)
        if self.mode not in ("T2", "T3"):
            raise ValueError(f"mode must be 'T2' or 'T3', not {self.mode!r}")
        if not (0 < self.bin_s < 1e-6 and 0 < self.t2_resolution_s < 1e-6):
            raise ValueError("bin_s and t2_resolution_s are seconds (e.g. 16e-12)")
        if int(self.sync_divider) != self.sync_divider or self.sync_divider < 1:
            raise ValueError("sync_divider must be a positive integer")

    @property
    def efficiency(self) -> float:
        """Probability that an emitted photon is detected (before dead time)."""
        return self.collection_efficiency * self.detector_efficiency

    def replace(self, **changes: Any) -> Detection:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def timing(self, rep_rate_hz: float) -> Timing:
        """The :class:`~spad.photons.Timing` of the stream for a laser at ``rep_rate_hz``."""
        period = 1.0 / rep_rate_hz
        if self.mode == "T2":
            return Timing("T2", self.t2_resolution_s, sync_period=period)
        eff = period * self.sync_divider
        nbins = math.ceil(eff / self.bin_s - 1e-9)
        if nbins > _MAX_T3_BINS:
            raise ValueError(f"T3: {eff * 1e9:g} ns sync period / {self.bin_s * 1e12:g} ps bins "
                             f"= {nbins} bins, more than the {_MAX_T3_BINS} a HydraHarp T3 "
                             "record holds; use wider bins")
        return Timing("T3", eff, nanotime_unit=self.bin_s, sync_period=eff, tcspc_num_bins=nbins)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data description (the IRF as a list)."""
        d = dataclasses.asdict(self)
        if self.irf is not None:
            d["irf"] = self.irf.tolist()
        return d


def irf_quantiles(det: Detection) -> np.ndarray:
    """Inverse-CDF table of the jitter (seconds) at evenly spaced probabilities 0..1.

    Sampling ``np.interp(u * (n - 1), arange(n), table)`` with uniform ``u`` draws the jitter.
    """
    if det.irf is not None:
        dt = float(det.irf_dt_s)  # type: ignore[arg-type]
        edges = np.arange(det.irf.size + 1) * dt
        cdf = np.concatenate(([0.0], np.cumsum(det.irf)))
    elif det.jitter_fwhm_s > 0:
        sigma = det.jitter_fwhm_s / (2 * math.sqrt(2 * math.log(2)))
        edges = np.linspace(-6 * sigma, 6 * sigma, 4001)
        cdf = ndtr(edges / sigma) - ndtr(-6.0)
    else:
        return np.zeros(_N_QUANTILES)
    cdf = cdf / cdf[-1]
    p = np.linspace(0.0, 1.0, _N_QUANTILES)
    # Invert the piecewise-linear CDF; empty IRF bins (flat CDF) are skipped: the bin found is
    # the one where the CDF rises through p (the last one below 1 for p = 1).
    i = np.searchsorted(cdf, p, side="right") - 1
    i[-1] = np.searchsorted(cdf, 1.0, side="left") - 1
    i = np.clip(i, 0, cdf.size - 2)
    rise = cdf[i + 1] - cdf[i]
    frac = np.clip(np.divide(p - cdf[i], rise, out=np.zeros_like(p), where=rise > 0), 0, 1)
    return edges[i] + frac * (edges[i + 1] - edges[i])


@njit(cache=True)
def dead_time_afterpulse(rng: np.ndarray, times: np.ndarray, dets: np.ndarray, horizon: float,
                         last: np.ndarray, pending: np.ndarray, n_pending: np.ndarray,
                         dead: np.ndarray, p_ap: np.ndarray, ap_tau: np.ndarray,
                         ap_cum: np.ndarray, out_t: np.ndarray, out_d: np.ndarray,
                         n_ap: np.ndarray) -> tuple[int, int]:
    """Dead time and afterpulsing of detectors 1 and 2 over a block of sorted events.

    Events (and pending afterpulses) are taken in time order up to ``horizon``; the state
    arrays are updated in place so the next block continues where this one stopped.

    Parameters
    ----------
    rng
        xoshiro256+ state of this block's afterpulse draws.
    times, dets
        Sorted arrival times (seconds) and detectors (1, 2) of photons and dark counts.
    horizon
        Events at or after this time are left for the next block.
    last
        (2,) time of each detector's last registered event.
    pending, n_pending
        (2, m) sorted afterpulse times awaiting registration per detector, and their counts
        (a full queue drops further afterpulses; they can only pile up a few deep).
    dead, p_ap
        (2,) dead time and afterpulse probability per detector.
    ap_tau, ap_cum
        Afterpulse delay components (after the dead time) and their cumulative weights.
    out_t, out_d
        Registered events are written here, merged in time order.
    n_ap
        (2,) running count of registered afterpulses per detector.

    Returns
    -------
    n_out, n_used
        Events registered, and input events consumed (those before ``horizon``); ``n_out`` is
        -1 when the output buffers are too small (the state is then partly updated: call again
        from a copy).
    """
    n = times.shape[0]
    cap = out_t.shape[0]
    m = pending.shape[1]
    i = 0
    n_out = 0
    while True:
        # Next event: the earliest of the input and the two afterpulse queues' heads.
        src = -1
        t = np.inf
        if i < n:
            t = times[i]
        for k in range(2):
            if n_pending[k] > 0 and pending[k, 0] < t:
                t = pending[k, 0]
                src = k
        if t >= horizon or t == np.inf:
            break
        if src >= 0:
            dk = src
            for j in range(n_pending[dk] - 1):
                pending[dk, j] = pending[dk, j + 1]
            n_pending[dk] -= 1
        else:
            dk = dets[i] - 1
            i += 1
        if t - last[dk] < dead[dk]:
            continue
        if n_out >= cap:
            return -1, i
        out_t[n_out] = t
        out_d[n_out] = dk + 1
        n_out += 1
        if src >= 0:
            n_ap[dk] += 1
        last[dk] = t
        if p_ap[dk] > 0 and uniform(rng) < p_ap[dk]:
            u = uniform(rng)
            c = 0
            while c < ap_cum.shape[0] - 1 and u >= ap_cum[c]:
                c += 1
            ta = t + dead[dk] - ap_tau[c] * math.log(1.0 - uniform(rng))
            if n_pending[dk] < m:
                j = n_pending[dk]  # insert keeping the queue sorted
                while j > 0 and pending[dk, j - 1] > ta:
                    pending[dk, j] = pending[dk, j - 1]
                    j -= 1
                pending[dk, j] = ta
                n_pending[dk] += 1
    return n_out, i


@njit(cache=True)
def quantise_t3(t: np.ndarray, period: float, bin_s: float, nbins: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Sync numbers and TCSPC bins of absolute times (sorted in, sorted out)."""
    n = t.shape[0]
    ts = np.empty(n, np.int64)
    nt = np.empty(n, np.uint16)
    for k in range(n):
        s = math.floor(t[k] / period)
        b = int((t[k] - s * period) / bin_s)
        if b >= nbins:  # rounding at the period's end
            b = nbins - 1
        elif b < 0:
            b = 0
        ts[k] = s
        nt[k] = b
    return ts, nt


@njit(cache=True)
def quantise_t2(t: np.ndarray, det: np.ndarray, res: float, sync_period: float,
                t0: float, t1: float, with_sync: bool) -> tuple[np.ndarray, np.ndarray]:
    """T2 ticks of absolute times; with ``with_sync`` the syncs in ``[t0, t1)`` are merged in
    as detector 0 (a sync and a photon in the same tick: sync first)."""
    n = t.shape[0]
    if with_sync:
        # Syncs s with s * period in [t0, t1); the small slack makes a boundary that falls on a
        # sync (chunks of whole periods) belong to the later chunk, consistently on both sides.
        s0 = math.ceil(t0 / sync_period - 1e-9)
        ns = max(math.ceil(t1 / sync_period - 1e-9) - s0, 0)
    else:
        s0 = 0
        ns = 0
    ticks_per_sync = sync_period / res
    ts = np.empty(n + ns, np.int64)
    dd = np.empty(n + ns, np.uint8)
    i = 0
    j = 0
    for k in range(n + ns):
        if j < ns:
            # + 1e-6 tick: a sync on an exact tick must not round down by float error.
            sync_tick = math.floor((s0 + j) * ticks_per_sync + 1e-6)
        else:
            sync_tick = 0
        photon_tick = math.floor(t[i] / res) if i < n else 0
        if j < ns and (i >= n or sync_tick <= photon_tick):
            ts[k] = sync_tick
            dd[k] = SYNC
            j += 1
        else:
            ts[k] = photon_tick
            dd[k] = det[i]
            i += 1
    return ts, dd
