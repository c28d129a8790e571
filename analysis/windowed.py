"""The photons of one particle as time-ordered windows: the one source every whole-trace step
reads.

The streaming accumulators (trace, decays, correlation, FLID) see each chunk once. What needs
the photons again, after the pass (the change points and levels, the region of interest and
burst removal, the decays and correlation of the photons kept, the bright-state and per-state
decays, the sync-pair counts and the time-gated g2), is written once here and in
:mod:`spad.analysis.blinking`, as passes over a :class:`PhotonWindows`:

- :class:`MemoryWindows`: the photons the collector held (at most
  :data:`spad.analysis.photon_analysis.PHOTON_BUDGET`), sorted once, as one cached window;
- :class:`FileWindows`: a source that can be read again (a file reader), read once per pass in
  windows of at most :data:`WINDOW_PHOTONS` photons, when there were more photons than the
  budget;
- a live stream cannot be read again: it gets the :class:`MemoryWindows` of what its collector
  held, and beyond the budget no windows at all (the whole-trace results are null, with a note;
  the recorded file, analysed afterwards, gets them).

Every quantity is computed in pieces that add up: counts add, photon times and indices are
those of the whole sorted stream, and the change-point search carries its unfinished window
from one piece to the next (:class:`spad.analysis.changepoints.ChangePointStream`). The
numbers are therefore the same for one window and for many (``tests/test_windowed.py`` compares
them with a tiny budget), at the price of reading a file several times (up to seven passes).

A new whole-trace analysis goes here once, as a pass over windows (copy
:meth:`KeptPhotons.sync_pairs`, the shortest), and is called from
:mod:`spad.analysis.photon_analysis`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

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
    blinking_in_passes,
    change_points_of,
    steady_emitter,
)
from spad.analysis.bursts import photons_outside
from spad.analysis.decay_window import wrap_delays
from spad.analysis.flid import FLIDHistogram
from spad.analysis.g2 import G2Result, passes_gate, pulsed_g2
from spad.analysis.g2_pairs import SyncPairCounter
from spad.analysis.lifetimes import state_decay_histograms
from spad.analysis.photon_collector import PhotonList
from spad.analysis.roi import bleach_end

from spad.photons import PhotonChunk, Timing

__all__ = ["WINDOW_PHOTONS", "PhotonWindows", "MemoryWindows", "FileWindows", "Window",
           "select_photons", "Selection", "KeptPhotons"]

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


class PhotonWindows(Protocol):
    """The photons of some detectors of one particle, as time-ordered windows, as many passes
    as asked.

    Implementations: :class:`MemoryWindows` (photons held in memory, one cached window) and
    :class:`FileWindows` (a source read again, window by window). A source that cannot be read
    again (a generator, a live stream) is not one: it gets the :class:`MemoryWindows` of the
    photons its collector held within the budget, and beyond it no whole-trace results (null,
    with a note).

    Attributes
    ----------
    detectors
        Detectors whose photons are taken.
    timing, delay_unit_s
        The stream's timing and the seconds per delay unit (known after the first pass).
    passes
        Passes made so far.
    in_memory
        All photons are one window held in memory: analyses too costly to repeat over a file
        (the per-state and per-level decay fits) run only then.
    """

    detectors: tuple[int, ...]
    timing: Timing | None
    delay_unit_s: float
    passes: int
    in_memory: bool

    def __call__(self, lo: float | None = None, hi: float | None = None,
                 below: float | None = None) -> Iterator[Window]:
        """One pass: the windows of the photons with ``lo <= t <= hi`` and ``t < below`` (each
        bound ``None``: none), in time order. Windows may be empty after the bounds."""
        ...


class MemoryWindows:
    """Photons held in memory as one window (:class:`PhotonWindows`), sorted once; the window
    of the last bounds asked for is cached.

    Parameters
    ----------
    photons
        The photons of ``detectors``, in the stream's order.
    detectors
        The detectors they were collected from.
    """

    in_memory = True

    def __init__(self, photons: PhotonList, detectors: Iterable[int]) -> None:
        self.timing: Timing | None = photons.timing
        self.delay_unit_s = photons.delay_unit_s
        self.detectors = tuple(int(d) for d in detectors)
        self.passes = 0
        # Arrival times, computed and ordered once. A time-tag stream is already (nearly) in
        # time order, and a stable sort (radix/timsort) of sorted data is ~50x cheaper than the
        # default introsort, which gains nothing from order. The times are sorted in place (the
        # values of times[order]): one whole-length array less.
        times = photons.times_s()
        order = np.argsort(times, kind="stable")
        times.sort(kind="stable")
        self.whole = Window(times, order, photons.timestamps, photons.delays, photons.detectors)
        self._bounds: tuple[float | None, float | None, float | None] = (None, None, None)
        self._cached = self.whole
        # two passes may run at once (spad.analysis.photon_analysis.PairCounts counts pairs
        # on a second thread): the cached window and its bounds change together
        self._lock = threading.Lock()

    def __call__(self, lo: float | None = None, hi: float | None = None,
                 below: float | None = None) -> Iterator[Window]:
        with self._lock:
            self.passes += 1
            if (lo, hi, below) != self._bounds:
                self._bounds, self._cached = (lo, hi, below), self._within(lo, hi, below)
            cached = self._cached
        yield cached

    def _within(self, lo: float | None, hi: float | None, below: float | None) -> Window:
        w = self.whole
        t = w.times
        mask = np.ones(t.size, dtype=bool)
        if lo is not None:
            mask &= t >= lo
        if hi is not None:
            mask &= t <= hi
        if below is not None:
            mask &= t < below
        if mask.all():
            return w  # all of the trace (the usual case): no copy
        stream = w.stream_mask(mask)
        # each kept photon's position among the kept ones in the stream's order; the stable
        # sort of the kept times is the whole sort restricted to them
        rank = np.cumsum(stream) - 1
        return Window(t[mask], rank[w.order[mask]], w.timestamps[stream], w.delays[stream],
                      w.detectors[stream])


class FileWindows:
    """The photons of some detectors of a source that can be read again (:class:`PhotonWindows`),
    read once per pass, in windows of at most ``size`` photons.

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

    in_memory = False

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


def _times(windows: PhotonWindows, bounds: tuple[Any, Any, Any]
           ) -> Callable[[], Iterator[np.ndarray]]:
    """The sorted photon times within ``bounds`` (lo, hi, below), a window at a time, once per
    call (the pieces :func:`spad.analysis.blinking.blinking_in_passes` reads)."""
    return lambda: (w.times for w in windows(*bounds))


@dataclass
class Selection:
    """The photons the analyses keep (:func:`select_photons`): inside the region of interest
    and outside every burst.

    Attributes
    ----------
    bounds
        (lo, hi, below): the photons with ``lo <= t <= hi`` and ``t < below`` are in the ROI.
    roi_start_s, roi_end_s
        The region of interest on the recording's clock (s).
    roi_auto
        The end was set by :func:`spad.analysis.roi.bleach_end` (the trace's dark tail was cut).
    blinking
        The blinking analysis of the kept photons (bursts already removed).
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


def select_photons(windows: PhotonWindows, first_s: float, last_s: float, bin_width: float,
                   confidence: float, roi: tuple[float | None, float | None] | None = None,
                   auto_roi: bool = True, bursts: bool = True, min_dark_s: float = 1.0
                   ) -> Selection:
    """Region of interest and burst removal, then the blinking analysis of what is left, in
    passes over ``windows``.

    A ROI given by hand is used as it is; otherwise, with ``auto_roi``, the trace is cut where a
    trailing dark run begins (:func:`spad.analysis.roi.bleach_end`) and the levels are found
    again on the photons before it, so that the dark tail changes neither the threshold nor the
    grouping.

    Parameters
    ----------
    windows
        The photons.
    first_s, last_s
        Time of their first and last photon (s, the recording's clock).
    bin_width, confidence
        Of the blinking analysis (:func:`spad.analysis.blinking.analyse_blinking`).
    roi
        (start, end) in seconds, either ``None`` for the trace's own start or end.
    auto_roi
        Find the end of the ROI from the trace when ``roi`` does not give one.
    bursts
        Find and remove photon bursts.
    min_dark_s
        Shortest trailing dark run cut by the automatic ROI.
    """
    lo, hi = roi if roi is not None else (None, None)
    start = float(first_s) if lo is None else float(lo)
    end = float(last_s) if hi is None else float(hi)
    bounds: tuple[float, float, float | None] = (start, end, None)
    cp = change_points_of(_times(windows, bounds)(), confidence)
    if cp.n_photons < 2:
        raise ValueError(f"the ROI {start:g}-{end:g} s holds fewer than two photons "
                         f"(photons from {first_s:g} to {last_s:g} s)")
    blink = blinking_in_passes(_times(windows, bounds), bin_width, confidence, bursts=bursts,
                               change_points=cp)
    auto = False
    # a steady emitter has no dark state to bleach into: the threshold through its shot noise
    # would make its dimmer levels look dark and cut the trace anywhere
    if hi is None and auto_roi and not steady_emitter(blink.state_intensity):
        cut = bleach_end(blink.level_start, blink.level_end, blink.level_intensity,
                         blink.threshold_rate, min_dark_s=min_dark_s)
        if cut is not None:
            cut_bounds = (start, end, float(cut))
            cp = change_points_of(_times(windows, cut_bounds)(), confidence)
            if cp.n_photons >= 2:
                end, auto, bounds = float(cut), True, cut_bounds
                blink = blinking_in_passes(_times(windows, bounds), bin_width, confidence,
                                           bursts=bursts, change_points=cp)
    return Selection(bounds, start, end, auto, blink)


class KeptPhotons:
    """The photons a selection keeps, for the steps of :mod:`spad.analysis.photon_analysis`
    that need them after the selection: each method is one pass over the windows.

    Parameters
    ----------
    windows
        The particle's photons, window by window.
    selection
        Which are kept (ROI, bursts).
    """

    def __init__(self, windows: PhotonWindows, selection: Selection) -> None:
        self.windows = windows
        self.selection = selection
        self.n_kept = -1
        self._in_memory: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _kept(self) -> Iterator[tuple[Window, np.ndarray]]:
        for w in self.windows(*self.selection.bounds):
            yield w, self.selection.keep(w.times)

    def kept_pieces(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Window by window: the kept photons' timestamps, delays (in units) and detectors in
        the stream's order. Photons in memory (one window) are picked out once and kept for
        the next pass: the g2 background's afterpulse model makes two and the g2 step three
        (pairs, gated correlation, gated pairs)."""
        if self._in_memory is not None:
            yield self._in_memory
            return
        for w, keep_sorted in self._kept():
            kept = w.stream_mask(keep_sorted)
            streams = w.timestamps[kept], w.delays[kept], w.detectors[kept]
            if self.windows.in_memory:
                self._in_memory = streams
            yield streams

    def made_again(self, decay: Decay | None, lag_s: float, width_s: float,
                   detectors: tuple[int, int], trace_bin_s: float
                   ) -> tuple[Decay | None, Correlation, Any]:
        """Decays (on ``decay``'s bins, if given), correlation and FLID (T3) of the kept
        photons, for :func:`spad.analysis.photon_analysis.selection_step` when photons are left
        out; also counts them (:attr:`n_kept`)."""
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

    def sorted_delays(self, shift_s: np.ndarray, edges: np.ndarray, wrap_s: float | None = None
                      ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Window by window: the arrival times and aligned delays of the kept photons that have
        a delay (T2: not before the first sync), in time order.

        Parameters
        ----------
        shift_s
            Alignment shift (s) of each detector number (cable delays), indexed by detector.
        edges
            Decay bin edges (s).
        wrap_s
            The delays are wrapped by this (s; default the edges' span) to lie from
            ``edges[0]`` (:func:`spad.analysis.decay_window.wrap_delays`).

        Yields
        ------
        t_sorted, d_sorted
            Arrival times (s, sorted) and aligned delays (s).
        """
        unit = self.windows.delay_unit_s
        for w, keep in self._kept():
            if keep.all():
                # every photon kept (the usual case): no whole-length copies of the times
                t_sorted, sel = w.times, w.order
            else:
                t_sorted, sel = w.times[keep], w.order[keep]
            d_all = w.delays[sel]
            det_all = w.detectors[sel]
            valid = d_all >= 0
            if not valid.all():
                t_sorted, det_all, d_all = t_sorted[valid], det_all[valid], d_all[valid]
            # each photon's delay moved by its detector's alignment shift, wrapped into the
            # period
            yield t_sorted, wrap_delays(d_all * unit - shift_s[det_all], edges, wrap_s)

    def state_decay_histograms(self, shift_s: np.ndarray, edges: np.ndarray, wrap_s: float,
                               level_start: np.ndarray, level_end: np.ndarray,
                               level_state: np.ndarray
                               ) -> tuple[dict[int, np.ndarray],
                                          tuple[np.ndarray, np.ndarray] | None]:
        """:func:`spad.analysis.lifetimes.state_decay_histograms` of the kept photons
        (:meth:`sorted_delays`), summed over the windows.

        Returns
        -------
        hists, whole
            The histograms, and (when the windows are in memory, one window) that window's
            :meth:`sorted_delays`, for the per-state and per-level decays; else ``None``.
        """
        total: dict[int, np.ndarray] = {}
        whole = None
        for t, d in self.sorted_delays(shift_s, edges, wrap_s):
            hists = state_decay_histograms(t, d, edges, level_start, level_end, level_state)
            for k, h in hists.items():
                total[k] = total[k] + h if k in total else h
            if self.windows.in_memory:
                whole = (t, d)
        return dict(sorted(total.items())), whole

    def sync_pairs(self, det_a: int, det_b: int,
                   pulse_delay_s: Mapping[int, float] | None = None, gate_s: float = 0.0
                   ) -> tuple[int, np.ndarray]:
        """Pairs of the kept photons (those past the time gate of
        :func:`spad.analysis.g2.passes_gate`, if ``pulse_delay_s`` is given) by sync label
        (:class:`spad.analysis.g2_pairs.SyncPairCounter`), in one pass."""
        counter = SyncPairCounter(det_a, det_b)
        unit = self.windows.delay_unit_s
        for ts, dl, det in self.kept_pieces():
            if pulse_delay_s is not None:
                gate = passes_gate(dl * unit, det, pulse_delay_s, gate_s)
                ts, det = ts[gate], det[gate]
            counter.update(ts, det)
        return counter.centre, counter.sides

    def gated_pulsed_g2(self, decay: Decay | None, pulse_delay_s: Mapping[int, float],
                        gate_s: float, *, det_a: int, det_b: int, max_lag_s: float,
                        bin_width_s: float, sync_period_s: float, centre_lag_s: float,
                        **g2_options: Any) -> tuple[Correlation, G2Result, float]:
        """Time-gated pulsed g2(0) of the kept photons, in one pass: the correlation of the
        photons passing the gate (:func:`spad.analysis.g2.passes_gate`: at least ``gate_s``
        after their own detector's pulse), with the peak shape from their own decays.

        Parameters
        ----------
        decay, pulse_delay_s, gate_s
            The delay histograms whose bins the gated decays take (``None``: no tail
            correction), each detector's pulse delay and the gate.
        det_a, det_b, max_lag_s, bin_width_s
            As for :class:`~spad.analysis.accumulators.CrossCorrelation` (the ungated
            correlation's).
        sync_period_s, centre_lag_s
            The laser period and the zero-delay peak of the ungated correlation (gating thins
            the peaks, so they are not looked for again).
        **g2_options
            Passed to :func:`spad.analysis.g2.pulsed_g2` (background options).

        Returns
        -------
        (Correlation, G2Result, kept_fraction)
            ``kept_fraction``: share of the kept photons that pass the gate.
        """
        timing = self.windows.timing
        assert timing is not None
        unit = self.windows.delay_unit_s
        acc = CrossCorrelation(det_a, det_b, max_lag_s=max_lag_s, bin_width_s=bin_width_s)
        counts = None if decay is None else np.zeros_like(decay.counts)
        n_kept = n_pass = 0
        for ts, dl, det in self.kept_pieces():
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
