"""Streaming FLID: per time bin, the photon count and mean delay after the laser pulse, and
their 2-D histogram (fluorescence-lifetime-intensity distribution), :class:`FLIDHistogram`.

An accumulator like those in :mod:`spad.analysis.accumulators`, and on the same stream conventions
(see there): fed one :class:`~spad.photons.PhotonChunk` at a time with bounded state, time bins
absolute on the macrotime and a whole number of timestamp ticks wide, the delay the T3 nanotime
or in T2 the time since the last sync, the last (incomplete) time bin left out of the histogram.
Any chunking of the same photons gives the same result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit
from spad.analysis.accumulators import (
    NO_SYNC,
    StreamState,
    TimeBins,
    row_table,
    stream_timing,
    whole_ticks,
)
from spad.analysis.trace import cover_chunk

from spad.photons import PhotonChunk

FLID_MAX_BINS = 512
"""Most bins on each axis of a FLID histogram (count and mean delay); wider bins beyond."""


@njit(cache=True, nogil=True)
def _fill_flid(timestamps, detectors, delays, rows, width, first_bin, acc):  # pragma: no cover
    """acc[0] = photons with a delay per bin, acc[1] = sum of their delays; returns dropped."""
    dropped = 0
    for i in range(timestamps.shape[0]):
        if rows[detectors[i]] >= 0:
            if delays[i] < 0:
                dropped += 1
                continue
            k = timestamps[i] // width - first_bin
            acc[0, k] += 1
            acc[1, k] += delays[i]
    return dropped


@njit(cache=True, nogil=True)
def _flid_hist(n, s, count_bin, delay_bin, hist):  # pragma: no cover - compiled
    """2-D histogram of (n // count_bin, floor(s / n / delay_bin)) over bins with n > 0.

    The mean delay's bin is computed in integers, ``s // (n * delay_bin)``, so it is exact.
    """
    for k in range(n.shape[0]):
        if n[k] > 0:
            i = n[k] // count_bin
            j = s[k] // (n[k] * delay_bin)
            if i < hist.shape[0] and j < hist.shape[1]:
                hist[i, j] += 1


@dataclass(frozen=True)
class FLID:
    """Fluorescence-lifetime-intensity distribution.

    Attributes
    ----------
    histogram
        int64, ``(n_count_bins, n_delay_bins)``: number of time bins with a given photon count
        and mean delay. Time bins without photons and the last (incomplete) bin are left out.
    count_edges
        Edges of the photon-count axis (counts per time bin).
    delay_edges_s
        Edges of the mean-delay axis, seconds after the sync.
    bin_edges_s
        Time-bin edges in seconds (as :class:`~spad.analysis.trace.Trace`).
    counts_per_bin
        int64: photons (with a known delay) per time bin.
    mean_delay_s
        Mean delay per time bin in seconds (NaN where the bin is empty).
    bin_width_s, delay_bin_s
        Time-bin and delay-bin widths actually used.
    n_without_sync
        T2 photons before the first sync (left out).
    """

    histogram: np.ndarray
    count_edges: np.ndarray
    delay_edges_s: np.ndarray
    bin_edges_s: np.ndarray
    counts_per_bin: np.ndarray
    mean_delay_s: np.ndarray
    bin_width_s: float
    delay_bin_s: float
    n_without_sync: int


class FLIDHistogram:
    """Per time bin, the photon count and mean delay after the pulse; their 2-D histogram.

    Parameters
    ----------
    bin_width_s
        Time-bin width (rounded to whole timestamp ticks), as for
        :class:`~spad.analysis.trace.IntensityTrace`.
    detectors
        Detectors whose photons are pooled.
    delay_bin_s
        Bin width of the mean-delay axis, rounded to whole native delay units (default 100 ps).
    count_bin
        Bin width of the count axis in photons.

    Either axis is widened by a whole factor where it would have more than
    :data:`FLID_MAX_BINS` bins; the result's edges and ``delay_bin_s`` give the widths used.
    """

    def __init__(self, bin_width_s: float, detectors: Sequence[int] = (1, 2),
                 delay_bin_s: float = 100e-12, count_bin: int = 1) -> None:
        if not (bin_width_s > 0 and math.isfinite(bin_width_s)):
            raise ValueError(f"bin_width_s must be positive, not {bin_width_s!r}")
        if int(count_bin) < 1:
            raise ValueError(f"count_bin must be at least 1, not {count_bin!r}")
        self.requested_bin_width_s = float(bin_width_s)
        self.requested_delay_bin_s = float(delay_bin_s)
        self.count_bin = int(count_bin)
        self.detectors = tuple(int(d) for d in detectors)
        self._rows = row_table(self.detectors)
        self._stream = StreamState()
        self._width = 0
        self._delay_bin = 0
        self._bins = TimeBins(2, np.int64)
        self._hi = NO_SYNC
        self._dropped = 0

    def update(self, chunk: PhotonChunk) -> None:
        """Add the photons of one chunk."""
        first = self._stream.timing is None
        self._stream.accept(chunk, "FLIDHistogram")
        if first:
            self._width = whole_ticks(self.requested_bin_width_s, chunk.timing.timestamp_unit,
                                 "bin_width_s")
            self._delay_bin = whole_ticks(self.requested_delay_bin_s, self._stream.delay_unit,
                                     "delay_bin_s")
        delays = self._stream.delays(chunk)
        hi = cover_chunk(chunk, self._rows, self._width, self._bins, "FLIDHistogram")
        if hi is None:
            return
        self._hi = max(self._hi, hi)
        self._dropped += _fill_flid(chunk.timestamps, chunk.detectors, delays, self._rows,
                                    self._width, self._bins.first_bin, self._bins.data)

    def result(self) -> FLID:
        """The FLID of the complete time bins so far."""
        timing = stream_timing(self._stream, "FLIDHistogram")
        unit = self._stream.delay_unit
        if self._hi == NO_SYNC:
            acc = np.zeros((2, 0), dtype=np.int64)
            first = 0
        else:
            first = self._bins.first_bin
            acc = self._bins.data[:, :self._hi - first + 1]
        n, s = acc[0].copy(), acc[1]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(n > 0, s / np.maximum(n, 1) * unit, np.nan)
        full_n, full_s = n[:-1], s[:-1]  # the last bin is incomplete
        n_max = int(full_n.max()) if full_n.size else 0
        span = timing.tcspc_num_bins if timing.is_t3 and timing.tcspc_num_bins else 0
        if not span and timing.sync_period:
            span = int(math.ceil(timing.sync_period / unit))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_max = int((full_s // np.maximum(full_n, 1)).max()) if full_n.size else 0
        # Both axes are widened by whole factors to at most FLID_MAX_BINS bins: at 2 M
        # photons/s a 10 ms bin holds ~20,000 photons, and a 1 MHz laser's period is 10,000
        # delay bins of 100 ps; one bin per value would make a histogram of hundreds of MB.
        count_bin = max(self.count_bin, -(-(n_max + 1) // FLID_MAX_BINS))
        delay_bin = self._delay_bin
        n_delay = max(-(-span // delay_bin), mean_max // delay_bin + 1)
        if n_delay > FLID_MAX_BINS:
            delay_bin *= -(-n_delay // FLID_MAX_BINS)
            n_delay = max(-(-span // delay_bin), mean_max // delay_bin + 1)
        n_count = n_max // count_bin + 1
        hist = np.zeros((n_count, n_delay), dtype=np.int64)
        _flid_hist(full_n, full_s, count_bin, delay_bin, hist)
        w_s = self._width * timing.timestamp_unit
        edges = (first + np.arange(n.shape[0] + 1)) * (self._width * 1.0) * timing.timestamp_unit
        return FLID(hist, np.arange(n_count + 1) * count_bin,
                    np.arange(n_delay + 1) * (delay_bin * unit), edges, n, mean,
                    w_s, delay_bin * unit, self._dropped)

    def to_dict(self) -> dict[str, Any]:
        """The full state as a dict of plain values and arrays."""
        return {"kind": "FLIDHistogram", "bin_width_s": self.requested_bin_width_s,
                "delay_bin_s": self.requested_delay_bin_s, "count_bin": self.count_bin,
                "detectors": list(self.detectors), "stream": self._stream.state(),
                "width_ticks": self._width, "delay_bin": self._delay_bin,
                "first_bin": self._bins.first_bin, "data": self._bins.data.copy(),
                "hi": self._hi, "dropped": self._dropped}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FLIDHistogram:
        """Rebuild an accumulator from :meth:`to_dict`."""
        self = cls(d["bin_width_s"], d["detectors"], d["delay_bin_s"], d["count_bin"])
        self._stream.restore(d["stream"])
        self._width, self._delay_bin = int(d["width_ticks"]), int(d["delay_bin"])
        self._bins.first_bin = int(d["first_bin"])
        self._bins.data = np.array(d["data"], dtype=np.int64)
        self._hi, self._dropped = int(d["hi"]), int(d["dropped"])
        return self


__all__ = ["FLIDHistogram", "FLID", "FLID_MAX_BINS"]
