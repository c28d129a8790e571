"""Whole-trace analyses of a recording too long to hold in memory: its photons read again, in
windows of time-ordered photons.

:func:`spad.analysis.photon_analysis.finish` keeps every photon of a particle when there are at most
:data:`spad.analysis.photon_analysis.PHOTON_BUDGET` of them. Above that the collector lets them go
(:class:`spad.analysis.photon_collector.PhotonCount`), the streaming accumulators (trace, decays,
correlation, FLID) stay as they are, and what needs the photons again is done here in passes
over the source, each holding one window of at most :data:`WINDOW_PHOTONS` photons:

- the change points (:class:`spad.analysis.changepoints.ChangePointStream`, which carries the
  unfinished window of the Watkins-Yang search from one piece to the next, so the change points
  are exactly those of the whole stream);
- the levels and burst removal (from the change points' times alone), the binned trace of the
  photons kept (a second pass), then the rest of the blinking analysis
  (:func:`spad.analysis.blinking.blinking_from_levels`, no photons needed);
- the region of interest (:func:`select_windowed`, as :func:`spad.analysis.roi.select_photons`);
- the decays, correlation and FLID of the photons kept, the bright-state decay and the
  time-gated g2 (:class:`WindowedPhotons`).

Every quantity is the in-memory one computed in pieces: counts add, photon times and indices
are those of the whole sorted stream. The results are therefore the same as the in-memory
path's (``tests/test_windowed.py`` compares them with a tiny budget), at the price of reading
the source several times (up to seven passes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from spad.analysis.accumulators import (
    Correlation,
    CrossCorrelation,
    Decay,
    StreamState,
    add_delay_histograms,
)
from spad.analysis.blinking import (
    BlinkingResult,
    add_to_bins,
    blinking_from_levels,
    burst_note,
)
from spad.analysis.bursts import Bursts, find_bursts, give_burst_time, photons_outside
from spad.analysis.changepoints import (
    EDGE,
    Levels,
    change_points_kernel,
    critical_curve,
    first_decrease,
)
from spad.analysis.decay_window import wrap_delays
from spad.analysis.flid import FLIDHistogram
from spad.analysis.g2 import G2Result, passes_gate, pulsed_g2
from spad.analysis.g2_pairs import SyncPairCounter
from spad.analysis.lifetimes import state_decay_histograms
from spad.analysis.photon_collector import PhotonCount
from spad.analysis.roi import bleach_end

from spad.photons import PhotonChunk, Timing

__all__ = ["WINDOW_PHOTONS", "PhotonWindows", "Window", "ChangePointStream",
           "analyse_blinking_windowed", "select_windowed", "WindowedSelection",
           "WindowedPhotons"]

#: Photons per window of a pass. Each photon of a window costs ~35 bytes (timestamp, delay,
#: detector, time, sort order, sorted time): 4·10^6 photons are ~150 MB, small beside the 2 GB
#: goal, and large enough that the per-window overhead (a sort, a few numpy calls) is nothing.
WINDOW_PHOTONS = 1 << 22


@dataclass
class Window:
    """Consecutive photons of the selected detectors.

    Attributes
    ----------
    times
        Arrival times (s), sorted (stable: ties keep the stream's order).
    order
        For each sorted photon, its position in the stream-order arrays below.
    timestamps, delays, detectors
        The photons in the stream's order (delays as
        :class:`~spad.analysis.photon_collector.PhotonList`
        has them).
    """

    times: np.ndarray
    order: np.ndarray
    timestamps: np.ndarray
    delays: np.ndarray
    detectors: np.ndarray

    def chunk(self, timing: Timing, keep: np.ndarray) -> PhotonChunk:
        """The photons of stream-order mask ``keep`` as a chunk of the stream."""
        return PhotonChunk(timing, self.timestamps[keep], self.detectors[keep],
                           self.delays[keep].astype(np.uint16) if timing.is_t3 else None)

    def stream_mask(self, sorted_mask: np.ndarray) -> np.ndarray:
        """A mask over the sorted photons as a mask over the stream-order arrays."""
        out = np.empty_like(sorted_mask)
        out[self.order] = sorted_mask
        return out


class PhotonWindows:
    """The photons of some detectors of a source that can be read again, window by window in
    time order, as many times as asked.

    Parameters
    ----------
    chunks
        Called once per pass: returns the source's chunks from the beginning (a reader's
        ``chunks``).
    detectors
        Detectors whose photons are taken (as
        :class:`~spad.analysis.photon_collector.PhotonCollector`).
    size
        Photons per window (default :data:`WINDOW_PHOTONS`, read when the passes run).
    """

    def __init__(self, chunks: Callable[[], Iterable[PhotonChunk]],
                 detectors: Iterable[int], size: int | None = None) -> None:
        self._chunks = chunks
        self.detectors = tuple(int(d) for d in detectors)
        self.size = size
        self.timing: Timing | None = None
        self.delay_unit_s = 0.0
        self.passes = 0

    def __call__(self, lo: float | None = None, hi: float | None = None,
                 below: float | None = None) -> Iterator[Window]:
        """One pass: the windows of the photons with ``lo <= t <= hi`` and ``t < below`` (each
        bound ``None``: none). Windows may be empty after the bounds."""
        self.passes += 1
        size = max(1, int(self.size if self.size is not None else WINDOW_PHOTONS))
        stream = StreamState()
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        n = 0
        prev_last = -np.inf
        for chunk in self._chunks():
            stream.accept(chunk, "PhotonWindows")
            if self.timing is None:
                self.timing, self.delay_unit_s = chunk.timing, stream.delay_unit
            delays = stream.delays(chunk)
            keep = np.isin(chunk.detectors, self.detectors)
            dtype = np.uint16 if chunk.timing.is_t3 else np.int64
            parts.append((chunk.timestamps[keep], delays[keep].astype(dtype, copy=False),
                          chunk.detectors[keep]))
            n += int(parts[-1][0].size)
            if n < size:
                continue
            ts, dl, det = (np.concatenate(x) for x in zip(*parts, strict=True))
            # Photons before the last timestamp are complete: every later photon has a
            # timestamp at least the last, so a later time (T3 nanotime < one sync period).
            m = int(np.searchsorted(ts, ts[-1], side="left"))
            parts, n = [(ts[m:], dl[m:], det[m:])], int(ts.size - m)
            if m == 0:
                continue
            w = self._window(ts[:m], dl[:m], det[:m], lo, hi, below, prev_last,
                             bound=float(ts[-1] * self.timing.timestamp_unit))
            prev_last = w[1]
            if w[0] is not None:
                yield w[0]
            if (hi is not None and w[1] > hi) or (below is not None and w[1] >= below):
                return  # times only grow: nothing further passes the bounds
        if n:
            ts, dl, det = (np.concatenate(x) for x in zip(*parts, strict=True))
            w = self._window(ts, dl, det, lo, hi, below, prev_last, bound=np.inf)
            if w[0] is not None:
                yield w[0]

    def _window(self, ts: np.ndarray, dl: np.ndarray, det: np.ndarray, lo: float | None,
                hi: float | None, below: float | None, prev_last: float, bound: float
                ) -> tuple[Window | None, float]:
        timing = self.timing
        assert timing is not None
        t = ts * timing.timestamp_unit
        if timing.is_t3:
            t += dl * self.delay_unit_s
        t_min, t_max = float(t.min()), float(t.max())
        if t_min < prev_last or t_max > bound:
            raise ValueError("photon times overlap between windows (a T3 nanotime longer than "
                             "the sync period?): the windowed analysis cannot order them")
        mask = None
        if lo is not None:
            mask = t >= lo
        if hi is not None:
            mask = (t <= hi) if mask is None else mask & (t <= hi)
        if below is not None:
            mask = (t < below) if mask is None else mask & (t < below)
        if mask is not None and not mask.all():
            ts, dl, det, t = ts[mask], dl[mask], det[mask], t[mask]
        order = np.argsort(t, kind="stable")
        t.sort(kind="stable")  # the same values as t[order], without a second array
        return Window(t, order, ts, dl, det), t_max


class ChangePointStream:
    """:func:`~spad.analysis.changepoints.find_change_points` on a stream of sorted photon times
    fed in pieces.

    The search runs window by window (``analysis.changepoints._find_change_points``); the
    photons from where it stopped are kept (at most one window) and searched again with the
    next piece, so the change points are exactly those of the search on the whole stream while
    memory holds one piece. Also kept: the times of each change point's photon and of the
    photon before it, the first and last time and the count, which is all
    :class:`~spad.analysis.changepoints.Levels` and burst removal need.

    Parameters
    ----------
    confidence, window, overlap, min_photons, edge
        As for :func:`~spad.analysis.changepoints.find_change_points`.
    """

    def __init__(self, confidence: float = 0.95, window: int = 1000, overlap: int = 200,
                 min_photons: int = 20, edge: int = EDGE) -> None:
        if not 0 <= overlap < window:
            raise ValueError(f"overlap ({overlap}) must lie in [0, window = {window})")
        self.min_intervals = max(int(min_photons) - 1, 2 * edge)
        if window < self.min_intervals:
            raise ValueError(f"window ({window}) shorter than the shortest tested segment")
        self.window, self.overlap, self.edge = int(window), int(overlap), int(edge)
        grid, values = critical_curve(float(confidence), int(window), int(edge))
        self._grid = np.ascontiguousarray(grid, dtype=np.float64)
        self._values = np.ascontiguousarray(values, dtype=np.float64)
        self._carry = np.empty(0)
        self._offset = 0              # stream index of self._carry[0]
        self.n_photons = 0
        self.first_s = float("nan")
        self.last_s = float("nan")
        self._cps: list[np.ndarray] = []
        self._t_at: list[np.ndarray] = []
        self._t_before: list[np.ndarray] = []
        self._closed = False

    def update(self, times: np.ndarray) -> None:
        """Add the next sorted photon times (seconds)."""
        t = np.ascontiguousarray(times, dtype=np.float64)
        if self._closed:
            raise ValueError("ChangePointStream: closed")
        if not t.size:
            return
        if first_decrease(t) >= 0 or (self.n_photons and t[0] < self.last_s):
            raise ValueError("photon times must be sorted in time")
        if not self.n_photons:
            self.first_s = float(t[0])
        self.n_photons += int(t.size)
        self.last_s = float(t[-1])
        buf = np.concatenate([self._carry, t]) if self._carry.size else t
        self._search(buf, final=False)

    def close(self) -> np.ndarray:
        """Search the rest; returns all change points (stream indices, sorted)."""
        if not self._closed:
            self._closed = True
            if self._carry.size > self.min_intervals:
                self._search(self._carry, final=True)
            self._carry = np.empty(0)
        return self.change_points

    def _search(self, buf: np.ndarray, final: bool) -> None:
        cps, resume = change_points_kernel(buf, self.window, self.overlap, self.min_intervals,
                                          self.edge, self._grid, self._values, final)
        if cps.size:
            # a change point is never a window's first photon (edge > 0): cps - 1 is in buf
            self._cps.append(cps + self._offset)
            self._t_at.append(buf[cps])
            self._t_before.append(buf[cps - 1])
        if not final:
            self._carry = buf[resume:].copy()
            self._offset += int(resume)

    @property
    def change_points(self) -> np.ndarray:
        """Change points so far (stream indices of each new level's first photon)."""
        return np.concatenate(self._cps) if self._cps else np.empty(0, dtype=np.int64)

    def levels(self) -> tuple[Levels, np.ndarray]:
        """The levels (as :func:`levels_from_change_points` makes them from the whole stream)
        and the time of each level's last photon (after :meth:`close`)."""
        if self.n_photons < 2:
            raise ValueError("need at least two photons to form a level")
        cps = self.close()
        t_at = np.concatenate(self._t_at) if self._t_at else np.empty(0)
        t_before = np.concatenate(self._t_before) if self._t_before else np.empty(0)
        first = np.concatenate([[0], cps])
        counts = np.diff(np.concatenate([first, [self.n_photons]]))
        start = np.concatenate([[self.first_s], t_at])
        end = np.concatenate([t_at, [self.last_s]])
        last_photon = np.concatenate([t_before, [self.last_s]])
        return (Levels(start=start, end=end, n_photons=counts.astype(np.int64),
                       first_photon=first), last_photon)


def _change_points(windows: PhotonWindows, bounds: tuple[Any, Any, Any], confidence: float
                   ) -> ChangePointStream:
    """One pass: the change points of the photons within ``bounds`` (lo, hi, below)."""
    cp = ChangePointStream(confidence)
    for w in windows(*bounds):
        cp.update(w.times)
    cp.close()
    return cp


def _without_bursts(levels: Levels, last_photon_s: np.ndarray, n: int, found: Bursts
                    ) -> tuple[Levels, np.ndarray, np.ndarray, int, float]:
    """:func:`spad.analysis.bursts.remove_bursts` from the levels alone.

    Returns the levels of the kept photons, the stream-index ranges ``[first, stop)`` of the
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


def analyse_blinking_windowed(windows: PhotonWindows, bounds: tuple[Any, Any, Any],
                              bin_width: float, confidence: float, bursts: bool = True,
                              change_points: ChangePointStream | None = None
                              ) -> BlinkingResult:
    """:func:`spad.analysis.blinking.analyse_blinking` of the photons within ``bounds`` (lo, hi,
    below) of ``windows``: one pass for the change points (unless given), one for the binned
    trace of the photons kept."""
    cp = change_points or _change_points(windows, bounds, confidence)
    if cp.n_photons < 2:
        raise ValueError("need a 1-D array of at least two photon times")
    levels, last_photon = cp.levels()
    notes: list[str] = []
    found: Bursts | None = None
    burst_lo = burst_hi = np.empty(0, dtype=np.int64)
    n_kept, t0, t1 = cp.n_photons, cp.first_s, cp.last_s
    if bursts:
        found = find_bursts(levels)
        if len(found):
            levels, burst_lo, burst_hi, n_kept, t1 = _without_bursts(levels, last_photon,
                                                                      cp.n_photons, found)
            t0 = float(levels.start[0])
            notes.append(burst_note(found))
    n_bins = int(np.floor((t1 - t0) / bin_width))
    if n_bins < 1:
        raise ValueError(f"the span {t1 - t0:g} s is shorter than one bin of {bin_width:g} s")
    counts = np.zeros(n_bins, dtype=np.int64)
    offset = 0
    for w in windows(*bounds):
        t = w.times
        if burst_lo.size:
            # the burst levels' photons, by their index in the stream (as remove_bursts)
            idx = offset + np.arange(t.size)
            k = np.searchsorted(burst_lo, idx, side="right") - 1
            inside = (k >= 0) & (idx < burst_hi[np.maximum(k, 0)])
            t = t[~inside]
        add_to_bins(t, t0, float(bin_width), counts)
        offset += w.times.size
    return blinking_from_levels(levels, found, counts, n_kept, float(t1 - t0), bin_width,
                                confidence, notes=notes)


@dataclass
class WindowedSelection:
    """The photons the analyses keep (:func:`select_windowed`), as bounds and bursts.

    Attributes
    ----------
    bounds
        (lo, hi, below): the photons with ``lo <= t <= hi`` and ``t < below`` are in the ROI.
    roi_start_s, roi_end_s, roi_auto, blinking
        As :class:`spad.analysis.roi.Selection`.
    """

    bounds: tuple[float, float, float | None]
    roi_start_s: float
    roi_end_s: float
    roi_auto: bool
    blinking: BlinkingResult

    def keeps_all(self, first_s: float, last_s: float) -> bool:
        """Every photon of a trace from ``first_s`` to ``last_s`` is kept for sure: no
        bursts, and the ROI holds the whole trace."""
        lo, hi, below = self.bounds
        b = self.blinking.bursts
        return (below is None and lo <= first_s and hi >= last_s
                and (b is None or len(b) == 0))

    def keep(self, times: np.ndarray) -> np.ndarray:
        """Mask of the photons kept among sorted ``times``: in the ROI, outside every burst."""
        lo, hi, below = self.bounds
        keep = (times >= lo) & (times <= hi)
        if below is not None:
            keep &= times < below
        b = self.blinking.bursts
        if b is not None and len(b):
            keep &= photons_outside(times, b.start, b.end)
        return keep


def select_windowed(windows: PhotonWindows, span: PhotonCount, bin_width: float,
                    confidence: float, roi: tuple[float | None, float | None] | None = None,
                    auto_roi: bool = True, bursts: bool = True, min_dark_s: float = 1.0
                    ) -> WindowedSelection:
    """:func:`spad.analysis.roi.select_photons` in passes over ``windows`` (``span``: the count and
    the first and last time of all the photons)."""
    lo, hi = roi if roi is not None else (None, None)
    start = float(span.first_s) if lo is None else float(lo)
    end = float(span.last_s) if hi is None else float(hi)
    bounds: tuple[float, float, float | None] = (start, end, None)
    cp = _change_points(windows, bounds, confidence)
    if cp.n_photons < 2:
        raise ValueError(f"the ROI {start:g}-{end:g} s holds fewer than two photons "
                         f"(photons from {span.first_s:g} to {span.last_s:g} s)")
    blink = analyse_blinking_windowed(windows, bounds, bin_width, confidence, bursts, cp)
    auto = False
    if hi is None and auto_roi:
        cut = bleach_end(blink.level_start, blink.level_end, blink.level_intensity,
                         blink.threshold_rate, min_dark_s=min_dark_s)
        if cut is not None:
            cut_bounds = (start, end, float(cut))
            cp = _change_points(windows, cut_bounds, confidence)
            if cp.n_photons >= 2:
                end, auto, bounds = float(cut), True, cut_bounds
                blink = analyse_blinking_windowed(windows, bounds, bin_width, confidence,
                                                  bursts, cp)
    return WindowedSelection(bounds, start, end, auto, blink)


class WindowedPhotons:
    """The kept photons of a recording too long to hold, for the steps of
    :mod:`spad.analysis.photon_analysis` that need them again: each method is one pass.

    Parameters
    ----------
    windows
        The source's photons, window by window.
    selection
        Which are kept (ROI, bursts).
    """

    def __init__(self, windows: PhotonWindows, selection: WindowedSelection) -> None:
        self.windows = windows
        self.selection = selection
        self.n_kept = -1

    def _kept(self) -> Iterator[tuple[Window, np.ndarray]]:
        for w in self.windows(*self.selection.bounds):
            yield w, self.selection.keep(w.times)

    def made_again(self, decay: Decay | None, lag_s: float, width_s: float,
                   detectors: tuple[int, int], trace_bin_s: float
                   ) -> tuple[Decay | None, Correlation, Any]:
        """Decays (on ``decay``'s bins, if given), correlation and FLID (T3) of the kept
        photons, as :func:`spad.analysis.photon_analysis.selection_step` makes them; also counts
        them (:attr:`n_kept`)."""
        counts = None if decay is None else np.zeros_like(decay.counts)
        corr = CrossCorrelation(*detectors, max_lag_s=lag_s, bin_width_s=width_s)
        timing = self.windows.timing
        assert timing is not None
        flid = FLIDHistogram(trace_bin_s, detectors) if timing.is_t3 else None
        n = 0
        for w, keep_sorted in self._kept():
            keep = w.stream_mask(keep_sorted)
            n += int(np.count_nonzero(keep))
            if counts is not None and decay is not None:
                add_delay_histograms(counts, w.delays, w.detectors, decay,
                                     self.windows.delay_unit_s, keep)
            chunk = w.chunk(timing, keep)
            corr.update(chunk)
            if flid is not None:
                flid.update(chunk)
        self.n_kept = n
        return (None if decay is None else replace(decay, counts=counts), corr.result(),
                None if flid is None else flid.result())

    def state_decay_histograms(self, shift_s: np.ndarray, edges: np.ndarray, wrap_s: float,
                               level_start: np.ndarray, level_end: np.ndarray,
                               level_state: np.ndarray) -> dict[int, np.ndarray]:
        """:func:`spad.analysis.lifetimes.state_decay_histograms` of the kept photons, their
        delays moved by their detector's ``shift_s`` and wrapped by ``wrap_s`` (as
        :func:`spad.analysis.photon_analysis.lifetime_step` does), summed over the windows."""
        unit = self.windows.delay_unit_s
        total: dict[int, np.ndarray] = {}
        for w, keep in self._kept():
            sel = w.order[keep]
            d_all = w.delays[sel]
            valid = d_all >= 0
            det = w.detectors[sel][valid]
            d = wrap_delays(d_all[valid] * unit - shift_s[det], edges, wrap_s)
            hists = state_decay_histograms(w.times[keep][valid], d, edges, level_start,
                                           level_end, level_state)
            for k, h in hists.items():
                total[k] = total[k] + h if k in total else h
        return dict(sorted(total.items()))

    def sync_pairs(self, det_a: int, det_b: int,
                   pulse_delay_s: Mapping[int, float] | None = None, gate_s: float = 0.0
                   ) -> tuple[int, np.ndarray]:
        """:func:`spad.analysis.g2_pairs.sync_pair_areas` of the kept photons (those past the
        time gate, if ``pulse_delay_s`` is given), in one pass."""
        counter = SyncPairCounter(det_a, det_b)
        unit = self.windows.delay_unit_s
        for w, keep_sorted in self._kept():
            kept = w.stream_mask(keep_sorted)
            ts, det = w.timestamps[kept], w.detectors[kept]
            if pulse_delay_s is not None:
                delay_s = w.delays[kept] * unit
                gate = np.zeros(ts.shape, dtype=bool)
                for d, t0 in pulse_delay_s.items():
                    gate |= (det == d) & (delay_s >= t0 + gate_s)
                ts, det = ts[gate], det[gate]
            counter.update(ts, det)
        return counter.centre, counter.sides

    def gated_pulsed_g2(self, decay: Decay | None, pulse_delay_s: Mapping[int, float],
                        gate_s: float, *, det_a: int, det_b: int, max_lag_s: float,
                        bin_width_s: float, sync_period_s: float, centre_lag_s: float,
                        **g2_options: Any) -> tuple[Correlation, G2Result, float]:
        """:func:`spad.analysis.g2.gated_pulsed_g2` of the kept photons, in one pass."""
        timing = self.windows.timing
        assert timing is not None
        unit = self.windows.delay_unit_s
        acc = CrossCorrelation(det_a, det_b, max_lag_s=max_lag_s, bin_width_s=bin_width_s)
        counts = None if decay is None else np.zeros_like(decay.counts)
        n_kept = n_pass = 0
        for w, keep_sorted in self._kept():
            kept = w.stream_mask(keep_sorted)
            ts, dl, det = w.timestamps[kept], w.delays[kept], w.detectors[kept]
            gate = passes_gate(dl * unit, det, pulse_delay_s, gate_s)
            n_kept += int(ts.size)
            n_pass += int(np.count_nonzero(gate))
            acc.update(PhotonChunk(timing, ts[gate], det[gate],
                                   dl[gate].astype(np.uint16) if timing.is_t3 else None))
            if counts is not None and decay is not None:
                add_delay_histograms(counts, dl, det, decay, unit, gate)
        correlation = acc.result()
        kept = n_pass / n_kept if n_kept else 0.0
        g2 = pulsed_g2(correlation, sync_period_s, centre_lag_s=centre_lag_s,
                       decay=None if decay is None else replace(decay, counts=counts),
                       **g2_options)
        return correlation, g2, kept
