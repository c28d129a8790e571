"""The intensity trace, streamed: photon counts per time bin per detector
(:class:`IntensityTrace`, result :class:`Trace`), with the conventions of
:mod:`spad.analysis.accumulators` (bins on whole timestamp ticks, absolute from time 0 of the
stream's clock, the last bin flagged incomplete; any chunking gives the same counts).
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

from spad.photons import PhotonChunk

_INT64_MIN = int(np.iinfo(np.int64).min)
_INT64_MAX = int(np.iinfo(np.int64).max)


@njit(cache=True, nogil=True)
def selected_range(timestamps, detectors, rows, width):  # pragma: no cover - compiled
    """Smallest and largest time bin of the selected photons (hi < lo when none)."""
    lo = _INT64_MAX   # module constants: np.iinfo in a kernel is more for numba to compile
    hi = _INT64_MIN
    for i in range(timestamps.shape[0]):
        if rows[detectors[i]] >= 0:
            b = timestamps[i] // width
            if b < lo:
                lo = b
            if b > hi:
                hi = b
    return lo, hi


def cover_chunk(chunk: PhotonChunk, rows: np.ndarray, width: int, bins: TimeBins,
                name: str) -> int | None:
    """Grow ``bins`` to hold the time bins (``width`` ticks) of the chunk's photons of the
    detectors in ``rows``: the last of those bins, or None when the chunk has none of them.
    Shared by the time-binned accumulators (the trace, the FLID).

    Raises
    ------
    ValueError
        Negative timestamps (the bins start at time 0 of the stream's clock).
    """
    lo, hi = selected_range(chunk.timestamps, chunk.detectors, rows, width)
    if hi < lo:
        return None
    if lo < 0:
        raise ValueError(f"{name}: negative timestamps")
    bins.cover(lo, hi)
    return hi


@njit(cache=True, nogil=True)
def _fill_trace(timestamps, detectors, rows, width, first_bin, counts):  # pragma: no cover
    for i in range(timestamps.shape[0]):
        r = rows[detectors[i]]
        if r >= 0:
            counts[r, timestamps[i] // width - first_bin] += 1


@dataclass(frozen=True)
class Trace:
    """Photon counts per time bin.

    Attributes
    ----------
    bin_edges_s
        Bin edges in seconds from time 0 of the stream's clock, ``n_bins + 1``.
    counts
        int64, shape ``(len(detectors), n_bins)``: counts per detector.
    total
        int64, ``n_bins``: summed over the detectors.
    complete
        bool, ``n_bins``: False for the last bin, which the stream may not have finished.
    detectors
        Detector numbers, one per row of ``counts``.
    bin_width_s
        Bin width actually used (a whole number of timestamp ticks).
    """

    bin_edges_s: np.ndarray
    counts: np.ndarray
    total: np.ndarray
    complete: np.ndarray
    detectors: tuple[int, ...]
    bin_width_s: float

    @property
    def rate_hz(self) -> np.ndarray:
        """Summed count rate per bin in Hz."""
        return self.total / self.bin_width_s


class IntensityTrace:
    """Counts per time bin per detector, streamed.

    Parameters
    ----------
    bin_width_s
        Bin width in seconds (rounded to whole timestamp ticks: T3 sync periods, T2 ticks).
    detectors
        Photon detectors to count, one row each.
    """

    def __init__(self, bin_width_s: float, detectors: Sequence[int] = (1, 2)) -> None:
        if not (bin_width_s > 0 and math.isfinite(bin_width_s)):
            raise ValueError(f"bin_width_s must be positive, not {bin_width_s!r}")
        self.requested_bin_width_s = float(bin_width_s)
        self.detectors = tuple(int(d) for d in detectors)
        self._rows = row_table(self.detectors)
        self._stream = StreamState()
        self._width = 0
        self._bins = TimeBins(len(self.detectors), np.int64)
        self._hi = NO_SYNC  # last bin holding a photon

    def update(self, chunk: PhotonChunk) -> None:
        """Add the photons of one chunk."""
        first = self._stream.timing is None
        self._stream.accept(chunk, "IntensityTrace")
        if first:
            self._width = whole_ticks(self.requested_bin_width_s, chunk.timing.timestamp_unit,
                                 "bin_width_s")
        hi = cover_chunk(chunk, self._rows, self._width, self._bins, "IntensityTrace")
        if hi is None:
            return
        self._hi = max(self._hi, hi)
        _fill_trace(chunk.timestamps, chunk.detectors, self._rows, self._width,
                    self._bins.first_bin, self._bins.data)

    def result(self) -> Trace:
        """The trace so far (bins from the first to the last photon's)."""
        timing = stream_timing(self._stream, "IntensityTrace")
        w_s = self._width * timing.timestamp_unit
        if self._hi == NO_SYNC:
            counts = np.zeros((len(self.detectors), 0), dtype=np.int64)
            first = 0
        else:
            first = self._bins.first_bin
            counts = self._bins.data[:, :self._hi - first + 1].copy()
        n = counts.shape[1]
        complete = np.ones(n, dtype=bool)
        if n:
            complete[-1] = False
        edges = (first + np.arange(n + 1)) * (self._width * 1.0) * timing.timestamp_unit
        return Trace(edges, counts, counts.sum(axis=0), complete, self.detectors, w_s)

    def to_dict(self) -> dict[str, Any]:
        """The full state (parameters and arrays) as a dict of plain values and arrays."""
        return {"kind": "IntensityTrace", "bin_width_s": self.requested_bin_width_s,
                "detectors": list(self.detectors), "stream": self._stream.state(),
                "width_ticks": self._width, "first_bin": self._bins.first_bin,
                "data": self._bins.data.copy(), "hi": self._hi}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IntensityTrace:
        """Rebuild an accumulator from :meth:`to_dict` (it can go on accumulating)."""
        self = cls(d["bin_width_s"], d["detectors"])
        self._stream.restore(d["stream"])
        self._width = int(d["width_ticks"])
        self._bins.first_bin = int(d["first_bin"])
        self._bins.data = np.array(d["data"], dtype=np.int64)
        self._hi = int(d["hi"])
        return self


__all__ = ["IntensityTrace", "Trace", "cover_chunk", "selected_range"]
