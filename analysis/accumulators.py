"""Streaming accumulators over photon chunks: decays and correlation (the intensity trace's
is :mod:`spad.analysis.trace`, the FLID's :mod:`spad.analysis.flid`).

Also the stream bookkeeping and time bins they share (``StreamState``, ``TimeBins``), which
the trace, the FLID and :mod:`spad.analysis.photon_collector` use too.

Every accumulator is fed with :meth:`update` one :class:`~spad.photons.PhotonChunk` at a time,
from any source (a file reader, an instrument, a simulator), and holds only bounded state. Any
split of the same photon stream into chunks gives results identical to feeding the whole stream
at once: bins are defined on integer time ticks, and the cross-correlation keeps the photons of
the last ``max lag`` of each chunk so that pairs across chunk boundaries are counted once.

Conventions
-----------
- All bin widths are rounded to a whole number of the stream's native ticks (``timestamp_unit``
  for time bins and T2 lags; ``nanotime_unit`` for T3 delays and T3 lags) so that every bin edge
  lies on the tick grid and no bin aliases the tick. The width actually used is the result's
  ``bin_width_s``.
- Time bins (trace, FLID) are absolute: bin ``k`` spans ``[k w, (k+1) w)`` from time 0 of the
  stream's clock, on the macrotime (``timestamps``; the T3 nanotime is not added). The arrays
  begin at the bin holding the first selected photon, so a clock that started long ago costs no
  memory. The last bin is incomplete (the stream may continue): it is flagged.
- The delay of a photon after its laser pulse is the nanotime in T3, and in T2 the time since
  the last sync event (detector 0, :data:`spad.photons.SYNC`) carried across chunks. T2 photons
  before the first sync have no delay.
- Results are frozen dataclasses of plain numpy arrays, units in the attribute names.
- Chunks of one stream must share one :class:`~spad.photons.Timing`; timestamps must not go
  backwards (a ``ValueError`` says which).
- The compiled kernels release the GIL (``nogil``): at the microscope the acquisition thread
  feeds them while the GUI thread draws.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from spad.photons import SYNC, PhotonChunk, Timing

NO_SYNC = np.iinfo(np.int64).min
"""Sentinel for "no sync event seen yet" in T2 delay tracking."""


# --------------------------------------------------------------------------------------------
# helpers shared by the accumulators
# --------------------------------------------------------------------------------------------

def _timing_to_dict(timing: Timing | None) -> dict[str, Any] | None:
    if timing is None:
        return None
    return {"mode": timing.mode, "timestamp_unit": timing.timestamp_unit,
            "nanotime_unit": timing.nanotime_unit, "sync_period": timing.sync_period,
            "tcspc_num_bins": timing.tcspc_num_bins}


def _timing_from_dict(d: dict[str, Any] | None) -> Timing | None:
    return None if d is None else Timing(**d)


def whole_ticks(width_s: float, unit_s: float, what: str) -> int:
    """A width in seconds as a whole number (at least 1) of ticks of ``unit_s`` seconds."""
    if not (width_s > 0 and math.isfinite(width_s)):
        raise ValueError(f"{what} must be a positive number of seconds, not {width_s!r}")
    return max(1, int(round(width_s / unit_s)))


def row_table(detectors: Sequence[int]) -> np.ndarray:
    """Lookup table detector number -> row (-1 for detectors not selected)."""
    table = np.full(256, -1, dtype=np.int64)
    for row, d in enumerate(detectors):
        if not 0 <= int(d) <= 255:
            raise ValueError(f"detector numbers are 0-255, not {d!r}")
        if table[int(d)] >= 0:
            raise ValueError(f"detector {d} listed twice")
        table[int(d)] = row
    return table


@njit(cache=True, nogil=True)
def _t2_delays(timestamps, detectors, last_sync):  # pragma: no cover - compiled
    """Ticks since the last sync event per event (-1 for syncs and before the first sync)."""
    n = timestamps.shape[0]
    out = np.empty(n, dtype=np.int64)
    s = last_sync
    for i in range(n):
        if detectors[i] == 0:
            s = timestamps[i]
            out[i] = -1
        elif s == NO_SYNC:
            out[i] = -1
        else:
            out[i] = timestamps[i] - s
    return out, s


@njit(cache=True, nogil=True)
def first_decrease(timestamps, previous):  # pragma: no cover - compiled
    """Index of the first timestamp below its predecessor, the first one's being ``previous``
    (-1 if in order); integer ticks or float seconds. No whole-length temporaries, unlike
    ``np.diff(t) < 0``."""
    last = previous
    for i in range(timestamps.shape[0]):
        if timestamps[i] < last:
            return i
        last = timestamps[i]
    return -1


class StreamState:
    """Timing and order bookkeeping shared by all accumulators."""

    def __init__(self) -> None:
        self.timing: Timing | None = None
        self.last_timestamp = NO_SYNC
        self.first_timestamp = NO_SYNC
        self.last_sync = NO_SYNC

    def accept(self, chunk: PhotonChunk, name: str, check_order: bool = True) -> None:
        if not isinstance(chunk, PhotonChunk):
            raise TypeError(f"{name}.update takes a PhotonChunk, not {type(chunk).__name__}")
        if self.timing is None:
            self.timing = chunk.timing
        elif chunk.timing != self.timing:
            raise ValueError(f"{name}: chunk timing {chunk.timing} differs from the stream's "
                             f"{self.timing}")
        if len(chunk):
            bad = first_decrease(chunk.timestamps, self.last_timestamp) if check_order else -1
            if bad >= 0:
                raise ValueError(f"{name}: timestamps go backwards at photon {bad} of the chunk; "
                                 "photons must be fed in time order")
            if self.first_timestamp == NO_SYNC:
                self.first_timestamp = int(chunk.timestamps[0])
            self.last_timestamp = int(chunk.timestamps[-1])

    def delays(self, chunk: PhotonChunk) -> np.ndarray:
        """Delay after the laser pulse in native units (T3 nanotime, T2 ticks; -1 = none)."""
        if chunk.nanotimes is not None:
            return chunk.nanotimes
        out, self.last_sync = _t2_delays(chunk.timestamps, chunk.detectors, self.last_sync)
        return out

    @property
    def delay_unit(self) -> float:
        assert self.timing is not None
        return self.timing.nanotime_unit if self.timing.is_t3 else self.timing.timestamp_unit

    def duration_s(self) -> float:
        if self.timing is None or self.first_timestamp == NO_SYNC:
            return 0.0
        return (self.last_timestamp - self.first_timestamp) * self.timing.timestamp_unit

    def state(self) -> dict[str, Any]:
        return {"timing": _timing_to_dict(self.timing), "last_timestamp": self.last_timestamp,
                "first_timestamp": self.first_timestamp, "last_sync": self.last_sync}

    def restore(self, d: dict[str, Any]) -> None:
        self.timing = _timing_from_dict(d["timing"])
        self.last_timestamp = int(d["last_timestamp"])
        self.first_timestamp = int(d["first_timestamp"])
        self.last_sync = int(d["last_sync"])


def stream_timing(stream: StreamState, name: str) -> Timing:
    if stream.timing is None:
        raise ValueError(f"{name}: no chunk fed yet, so the stream's timing is unknown")
    return stream.timing


class TimeBins:
    """Per-bin arrays on absolute time bins that grow in both directions as photons arrive."""

    def __init__(self, n_rows: int, dtype: Any) -> None:
        self.first_bin = 0
        self.data = np.zeros((n_rows, 0), dtype=dtype)

    def cover(self, lo: int, hi: int) -> None:
        """Make room for bins ``lo..hi`` inclusive."""
        n = self.data.shape[1]
        if n == 0:
            self.first_bin = lo
            self.data = np.zeros((self.data.shape[0], hi - lo + 1), dtype=self.data.dtype)
            return
        new_lo = min(lo, self.first_bin)
        new_hi = max(hi, self.first_bin + n - 1)
        if new_lo == self.first_bin and new_hi == self.first_bin + n - 1:
            return
        # grow geometrically at the end so that a long stream costs amortised O(1) per bin;
        # by half, not double: at most half the array is slack (an hour of 10 ms bins is
        # 360,000 of them, held for as long as the recording lasts)
        if new_hi > self.first_bin + n - 1:
            new_hi = max(new_hi, self.first_bin + n + n // 2)
        grown = np.zeros((self.data.shape[0], new_hi - new_lo + 1), dtype=self.data.dtype)
        grown[:, self.first_bin - new_lo:self.first_bin - new_lo + n] = self.data
        self.first_bin, self.data = new_lo, grown


# --------------------------------------------------------------------------------------------
# TCSPC decay histograms
# --------------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _fill_decay(detectors, delays, rows, factor, hist):  # pragma: no cover - compiled
    """Histogram delays // factor per row; returns (photons without delay, out of range)."""
    no_delay = 0
    out = 0
    nb = hist.shape[1]
    for i in range(detectors.shape[0]):
        r = rows[detectors[i]]
        if r < 0:
            continue
        d = delays[i]
        if d < 0:
            no_delay += 1
            continue
        k = d // factor
        if k >= nb:
            out += 1
        else:
            hist[r, k] += 1
    return no_delay, out


@dataclass(frozen=True)
class Decay:
    """TCSPC histograms, one per detector.

    Attributes
    ----------
    bin_edges_s
        Delay bin edges in seconds after the sync, ``n_bins + 1``.
    counts
        int64, ``(len(detectors), n_bins)``.
    detectors
        Detector per row.
    bin_width_s
        Bin width actually used.
    n_without_sync
        T2 photons before the first sync (no delay; not histogrammed).
    n_out_of_range
        Photons with a delay beyond the last bin (not histogrammed).
    """

    bin_edges_s: np.ndarray
    counts: np.ndarray
    detectors: tuple[int, ...]
    bin_width_s: float
    n_without_sync: int
    n_out_of_range: int

    @property
    def bin_centers_s(self) -> np.ndarray:
        return 0.5 * (self.bin_edges_s[1:] + self.bin_edges_s[:-1])

    @property
    def total(self) -> np.ndarray:
        """Summed over detectors."""
        return self.counts.sum(axis=0)


def add_delay_histograms(counts: np.ndarray, delays: np.ndarray, detectors: np.ndarray,
                         template: Decay, delay_unit_s: float,
                         keep: np.ndarray | None = None) -> None:
    """Add the delay histograms of photons (those of ``keep``, if given) to ``counts``, on the
    bins of ``template``, one row per detector of it: the one delay histogram of a list of
    photons (the decays of the photons an analysis keeps, of the gated photons, of each window
    of a recording read again).

    Parameters
    ----------
    counts
        Histograms to add to, shaped like ``template.counts``.
    delays, detectors
        Each photon's delay after its sync in native units (``delay_unit_s``; T2 delays
        included, negative before the first sync: never counted) and its detector.
    keep
        Mask over the photons; default all.
    """
    factor = max(1, round(template.bin_width_s / delay_unit_s))
    for row, det in enumerate(template.detectors):
        on = detectors == det
        k = delays[on if keep is None else keep & on] // factor
        k = k[(k >= 0) & (k < counts.shape[1])]
        counts[row] += np.bincount(k, minlength=counts.shape[1])


class DecayHistogram:
    """TCSPC decay histograms per detector, streamed.

    Parameters
    ----------
    bin_width_s
        Delay bin width in seconds, rounded to whole native units (T3 TCSPC bins, T2 ticks);
        ``None`` keeps the native unit.
    detectors
        Detectors to histogram, one row each.
    range_s
        Delays histogrammed, ``[0, range_s)``. Default: T3 ``tcspc_num_bins`` bins (65536 if
        unknown), grown to hold any delay beyond them (a header that contradicts the data);
        T2 the sync period (required then if the timing carries none).
    """

    def __init__(self, bin_width_s: float | None = None, detectors: Sequence[int] = (1, 2),
                 range_s: float | None = None) -> None:
        self.requested_bin_width_s = bin_width_s
        self.range_s = range_s
        self.detectors = tuple(int(d) for d in detectors)
        self._rows = row_table(self.detectors)
        self._stream = StreamState()
        self._factor = 0
        self._hist = np.zeros((len(self.detectors), 0), dtype=np.int64)
        self._no_delay = 0
        self._out = 0

    def _setup(self, timing: Timing) -> None:
        unit = timing.nanotime_unit if timing.is_t3 else timing.timestamp_unit
        self._factor = (1 if self.requested_bin_width_s is None
                        else whole_ticks(self.requested_bin_width_s, unit, "bin_width_s"))
        if self.range_s is not None:
            native = whole_ticks(self.range_s, unit, "range_s")
        elif timing.is_t3:
            native = timing.tcspc_num_bins or 65536
        elif timing.sync_period:
            native = whole_ticks(timing.sync_period, unit, "sync_period")
        else:
            raise ValueError("DecayHistogram: T2 stream without a sync period: give range_s")
        n_bins = -(-native // self._factor)
        self._hist = np.zeros((len(self.detectors), n_bins), dtype=np.int64)

    def update(self, chunk: PhotonChunk) -> None:
        """Add the photons of one chunk."""
        first = self._stream.timing is None
        self._stream.accept(chunk, "DecayHistogram")
        if first:
            self._setup(chunk.timing)
        delays = self._stream.delays(chunk)
        if self.range_s is None and chunk.timing.is_t3 and delays.size:
            # delays beyond the stated bins: the header contradicts the data (the reader warns);
            # keep them, so that no analysis trusts the stated period over the photons
            self._grow(int(delays.max()) // self._factor + 1)
        a, b = _fill_decay(chunk.detectors, delays, self._rows, self._factor, self._hist)
        self._no_delay += a
        self._out += b

    def result(self) -> Decay:
        """The histograms so far."""
        stream_timing(self._stream, "DecayHistogram")
        w = self._factor * self._stream.delay_unit
        edges = np.arange(self._hist.shape[1] + 1) * w
        return Decay(edges, self._hist.copy(), self.detectors, w, self._no_delay, self._out)

    def _grow(self, n_bins: int) -> None:
        if n_bins > self._hist.shape[1]:
            grown = np.zeros((self._hist.shape[0], n_bins), dtype=np.int64)
            grown[:, :self._hist.shape[1]] = self._hist
            self._hist = grown

    def merge(self, other: DecayHistogram) -> None:
        """Add the histograms of another measurement taken with the same settings."""
        if self.range_s is None and other._factor == self._factor:
            # T3 histograms grown past the stated bins by delays beyond them
            self._grow(other._hist.shape[1])
            other._grow(self._hist.shape[1])
        if (other._hist.shape != self._hist.shape or other._factor != self._factor
                or other.detectors != self.detectors
                or other._stream.delay_unit != self._stream.delay_unit):
            raise ValueError("DecayHistogram.merge: histograms with different bins/detectors")
        self._hist += other._hist
        self._no_delay += other._no_delay
        self._out += other._out

    def to_dict(self) -> dict[str, Any]:
        """The full state as a dict of plain values and arrays."""
        return {"kind": "DecayHistogram", "bin_width_s": self.requested_bin_width_s,
                "range_s": self.range_s, "detectors": list(self.detectors),
                "stream": self._stream.state(), "factor": self._factor,
                "hist": self._hist.copy(), "no_delay": self._no_delay, "out": self._out}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DecayHistogram:
        """Rebuild an accumulator from :meth:`to_dict`."""
        self = cls(d["bin_width_s"], d["detectors"], d["range_s"])
        self._stream.restore(d["stream"])
        self._factor = int(d["factor"])
        self._hist = np.array(d["hist"], dtype=np.int64)
        self._no_delay, self._out = int(d["no_delay"]), int(d["out"])
        return self


# --------------------------------------------------------------------------------------------
# cross-correlation
# --------------------------------------------------------------------------------------------

# Persistent state of the correlation kernel, one int64 array so that it survives chunks
_PREV, _HEAD, _COUNT, _NA, _NB, _FMAX = range(6)


@njit(cache=True, nogil=True)
def _correlate(timestamps, detectors, nanotimes, t3, start, det_a, det_b, period, hi, lo,
               width, state, ring_key, ring_fine, ring_b, hist):  # pragma: no cover
    """One pass over a chunk: every a-b pair within the histogram is added to ``hist``.

    Photons of detectors a and b enter a ring buffer of the photons of the
    last look-back window, which persists across chunks; each new photon is paired with those
    of the other detector in the ring. The lag ``t_b - t_a`` in fine units (T3 TCSPC bins, T2
    ticks) is ``(k_j - k_i) * period + f_j - f_i`` with k the timestamp and f the nanotime (T3;
    period = sync period in TCSPC bins) or k = 0 and f the tag (T2), sign flipped when the new
    photon is the a photon; its bin is ``floor((lag - lo) / width)``.

    The look-back: an earlier photon i and a later photon j with ``|lag| <= hi`` have
    ``(k_j - k_i) * period <= hi + f_i <= hi + fmax``; T2: ``t_j - t_i <= hi``.

    Returns ``(stop, bad)``: ``stop`` is the index where the ring filled up (``len`` when the
    chunk is done; the caller grows the ring and resumes there); ``bad`` the index of the first
    timestamp below its predecessor (-1 if none), at which the pass stops.
    """
    n = timestamps.shape[0]
    nb = hist.shape[0]
    cap = ring_key.shape[0]
    mask = cap - 1
    auto = det_a == det_b
    prev = state[_PREV]
    head = state[_HEAD]
    count = state[_COUNT]
    n_a = state[_NA]
    n_b = state[_NB]
    fmax = state[_FMAX]
    if t3:
        window = np.int64(math.floor((hi + fmax) / period)) + 1
    else:
        window = np.int64(math.floor(hi)) + 1
    stop = n
    bad = -1
    for j in range(start, n):
        k = timestamps[j]
        if k < prev:
            bad = j
            stop = j
            break
        prev = k
        d = detectors[j]
        if d != det_a and d != det_b:
            continue
        if t3:
            f = np.int64(nanotimes[j])
            key = k
        else:
            f = k
            key = np.int64(0)
        if count == cap:
            stop = j
            break
        if t3 and f > fmax:
            fmax = f
            window = np.int64(math.floor((hi + fmax) / period)) + 1
        # drop photons that can no longer pair with this or any later photon
        lim = k - window
        while count > 0 and (ring_key[head] if t3 else ring_fine[head]) < lim:
            head = (head + 1) & mask
            count -= 1
        is_b = d == det_b
        for q in range(count):
            r = (head + q) & mask
            if not auto and ring_b[r] == is_b:
                continue
            lag = (key - ring_key[r]) * period + (f - ring_fine[r])
            if auto:
                x = (lag - lo) / width
                if 0.0 <= x < nb:   # np.int64, not int(): the same truncation, and no
                    hist[np.int64(x)] += 1   # builtin overload to compile on the first run
                x = (-lag - lo) / width
                if 0.0 <= x < nb:
                    hist[np.int64(x)] += 1
                continue
            if not is_b:
                lag = -lag
            x = (lag - lo) / width
            if 0.0 <= x < nb:
                hist[np.int64(x)] += 1
        r = (head + count) & mask
        ring_key[r] = key
        ring_fine[r] = f
        ring_b[r] = is_b
        count += 1
        if is_b:
            n_b += 1
        if d == det_a:
            n_a += 1
    state[_PREV] = prev
    state[_HEAD] = head
    state[_COUNT] = count
    state[_NA] = n_a
    state[_NB] = n_b
    state[_FMAX] = fmax
    return stop, bad


@dataclass(frozen=True)
class Correlation:
    """Histogram of photon-pair lags ``t_b - t_a``.

    Attributes
    ----------
    lags_s
        Bin centres in seconds (``k * bin_width_s``, ``k = -M..M``; lag 0 is a centre).
    bin_edges_s
        Bin edges in seconds, ``2M + 2``.
    counts
        int64, pairs per bin.
    bin_width_s
        Bin width actually used.
    det_a, det_b
        The detectors: a positive lag means the b photon came later.
    n_a, n_b
        Photons of each detector that entered the correlation.
    duration_s
        Span of the stream from its first to its last event.
    sync_period_s
        Laser period from the stream's timing, ``None`` if unknown.
    """

    lags_s: np.ndarray
    bin_edges_s: np.ndarray
    counts: np.ndarray
    bin_width_s: float
    det_a: int
    det_b: int
    n_a: int
    n_b: int
    duration_s: float
    sync_period_s: float | None


class CrossCorrelation:
    """Exact histogram of ``t_b - t_a`` over all photon pairs within a maximum lag, streamed.

    Every pair of an a photon and a b photon whose lag falls in the histogram is counted once
    (no multi-tau coarsening). T3 times are ``nsync * T + nanotime * res``; T2 times are the
    tags. With ``det_a == det_b`` the auto-correlation counts every ordered pair of distinct
    photons (both signs).

    Parameters
    ----------
    det_a, det_b
        Detector numbers (from 1).
    max_lag_periods
        Lag range ``+/- max_lag_periods`` sync periods (needs the sync period in the timing).
    max_lag_s
        Lag range in seconds (instead of ``max_lag_periods``).
    bin_width_s
        Lag bin width, rounded to whole fine units (T3 TCSPC bins, T2 ticks).

    The time-gated correlation is this accumulator fed with the photons that pass the one time
    gate of :func:`spad.analysis.g2.gate_mask`.

    Notes
    -----
    Bins are centred on multiples of the bin width: bin ``k`` holds lags in
    ``[(k - 1/2) w, (k + 1/2) w)``, ``k = -M..M``, ``M = ceil(max_lag / w)``.
    """

    def __init__(self, det_a: int = 1, det_b: int = 2, *, max_lag_periods: float | None = None,
                 max_lag_s: float | None = None, bin_width_s: float = 1e-9) -> None:
        if (max_lag_periods is None) == (max_lag_s is None):
            raise ValueError("give exactly one of max_lag_periods and max_lag_s")
        lag = max_lag_periods if max_lag_s is None else max_lag_s
        if not (lag > 0 and math.isfinite(lag)):
            raise ValueError(f"the maximum lag must be positive, not {lag!r}")
        if not (bin_width_s > 0 and math.isfinite(bin_width_s)):
            raise ValueError(f"bin_width_s must be positive, not {bin_width_s!r}")
        for d in (det_a, det_b):
            # 0 is the sync input; a PicoHarp in T2 can have a detector wired to it.
            if not 0 <= int(d) <= 255:
                raise ValueError(f"detectors are numbered 0-255, not {d!r}")
        self.det_a, self.det_b = int(det_a), int(det_b)
        self.max_lag_periods = max_lag_periods
        self.max_lag_s = max_lag_s
        self.requested_bin_width_s = float(bin_width_s)
        self._stream = StreamState()
        self._hist = np.zeros(0, dtype=np.int64)
        self._extra_duration_s = 0.0  # durations of measurements merged in
        self._state = np.array([NO_SYNC, 0, 0, 0, 0, 0], dtype=np.int64)
        self._ring = (np.zeros(1024, dtype=np.int64), np.zeros(1024, dtype=np.int64),
                      np.zeros(1024, dtype=np.bool_))

    def _setup(self, timing: Timing) -> None:
        if self.max_lag_s is not None:
            lag_s = float(self.max_lag_s)
        elif timing.sync_period:
            lag_s = float(self.max_lag_periods) * timing.sync_period
        else:
            raise ValueError("CrossCorrelation: max_lag_periods needs the sync period, which "
                             "this stream's timing does not give; use max_lag_s")
        fine_unit = timing.nanotime_unit if timing.is_t3 else timing.timestamp_unit
        self._fine_unit = fine_unit
        self._width = whole_ticks(self.requested_bin_width_s, fine_unit, "bin_width_s")
        self._m = max(1, math.ceil(lag_s / (self._width * fine_unit) - 1e-9))
        self._lo = -(self._m + 0.5) * self._width
        # T3: one coarse key (sync) is `period` fine units; T2: key and fine are both the tag
        self._period = timing.timestamp_unit / fine_unit if timing.is_t3 else 0.0
        if abs(self._period - round(self._period)) < 1e-6:
            # 100e-9 / 25e-12 is 3999.9999999999995 in floating point: snap to the whole
            # number so that integer lags stay exact (the error is < 1e-6 TCSPC bin per period)
            self._period = float(round(self._period))
        self._hist = np.zeros(2 * self._m + 1, dtype=np.int64)

    def update(self, chunk: PhotonChunk) -> None:
        """Add all pairs that the photons of this chunk form with each other and with earlier
        photons."""
        first = self._stream.timing is None
        self._stream.accept(chunk, "CrossCorrelation", check_order=False)
        if first:
            self._setup(chunk.timing)
        t3 = chunk.nanotimes is not None
        hi = (self._m + 0.5) * self._width
        start = 0
        while True:
            stop, bad = _correlate(
                chunk.timestamps, chunk.detectors,
                chunk.nanotimes if t3 else chunk.timestamps, t3, start, self.det_a, self.det_b,
                self._period, hi, self._lo,
                float(self._width), self._state, *self._ring, self._hist)
            if bad >= 0:
                raise ValueError(f"CrossCorrelation: timestamps go backwards at photon {bad} of "
                                 "the chunk; photons must be fed in time order (the "
                                 "accumulator now holds part of this chunk)")
            if stop >= len(chunk):
                return
            self._grow_ring()
            start = stop

    def _grow_ring(self) -> None:
        """Double the ring buffer (more photons inside one look-back window than it holds)."""
        cap = self._ring[0].shape[0]
        order = (self._state[_HEAD] + np.arange(self._state[_COUNT])) & (cap - 1)
        grown = []
        for arr in self._ring:
            new = np.zeros(2 * cap, dtype=arr.dtype)
            new[:order.size] = arr[order]
            grown.append(new)
        self._ring = tuple(grown)
        self._state[_HEAD] = 0

    def result(self) -> Correlation:
        """The correlation histogram so far."""
        timing = stream_timing(self._stream, "CrossCorrelation")
        w = self._width * self._fine_unit
        k = np.arange(-self._m, self._m + 1)
        edges = (np.arange(-self._m, self._m + 2) - 0.5) * w
        return Correlation(k * w, edges, self._hist.copy(), w, self.det_a, self.det_b,
                           int(self._state[_NA]), int(self._state[_NB]),
                           self._stream.duration_s() + self._extra_duration_s,
                           timing.sync_period)

    def merge(self, other: CrossCorrelation) -> None:
        """Add the pairs of another measurement taken with the same settings.

        The durations add, as for measurements recorded one after the other.
        """
        if (self._hist.shape != other._hist.shape or self._width != other._width
                or self._fine_unit != other._fine_unit
                or (self.det_a, self.det_b) != (other.det_a, other.det_b)):
            raise ValueError("CrossCorrelation.merge: histograms with different settings")
        self._hist += other._hist
        self._state[_NA] += other._state[_NA]
        self._state[_NB] += other._state[_NB]
        self._extra_duration_s += other._stream.duration_s() + other._extra_duration_s

    def to_dict(self) -> dict[str, Any]:
        """The full state (parameters, histogram and the ring of pending photons)."""
        return {"kind": "CrossCorrelation", "det_a": self.det_a, "det_b": self.det_b,
                "max_lag_periods": self.max_lag_periods, "max_lag_s": self.max_lag_s,
                "bin_width_s": self.requested_bin_width_s,
                "stream": self._stream.state(), "hist": self._hist.copy(),
                "extra_duration_s": self._extra_duration_s, "state": self._state.copy(),
                "ring_key": self._ring[0].copy(), "ring_fine": self._ring[1].copy(),
                "ring_is_b": self._ring[2].copy()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CrossCorrelation:
        """Rebuild an accumulator from :meth:`to_dict` (it can go on accumulating)."""
        self = cls(d["det_a"], d["det_b"], max_lag_periods=d["max_lag_periods"],
                   max_lag_s=d["max_lag_s"], bin_width_s=d["bin_width_s"])
        self._stream.restore(d["stream"])
        if self._stream.timing is not None:
            self._setup(self._stream.timing)
        self._hist = np.array(d["hist"], dtype=np.int64)
        self._extra_duration_s = float(d["extra_duration_s"])
        self._state = np.array(d["state"], dtype=np.int64)
        self._ring = (np.array(d["ring_key"], dtype=np.int64),
                      np.array(d["ring_fine"], dtype=np.int64),
                      np.array(d["ring_is_b"], dtype=np.bool_))
        return self


__all__ = ["DecayHistogram", "Decay", "CrossCorrelation", "Correlation", "SYNC"]
