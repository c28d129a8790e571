"""The photons themselves, for the analyses that need the whole trace at once (change points,
per-state decays, time gating): :class:`PhotonCollector` keeps them across chunks, up to a limit,
as a :class:`PhotonList`; past its limit it only counts them (:class:`PhotonCount`) and the
whole-trace analyses read the source again in windows (:mod:`spad.analysis.windowed`).

Same stream conventions as :mod:`spad.analysis.accumulators` (delays: the T3 nanotime, or in T2 the
time since the last sync event).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from spad.analysis.accumulators import StreamState, stream_timing

from spad.photons import PhotonChunk, Timing

__all__ = ["PhotonCollector", "PhotonCount", "PhotonList"]

@dataclass(frozen=True)
class PhotonList:
    """Photons of the selected detectors, kept for analyses that need the whole trace.

    Attributes
    ----------
    timestamps
        int64 macrotimes in ``timing.timestamp_unit``.
    delays
        Delay after the laser pulse in native units: the uint16 TCSPC bin in T3, int64 ticks
        in T2 (-1 where a T2 photon came before the first sync). The narrowest type that holds
        them: 11 bytes a photon in T3 instead of 17.
    detectors
        uint8 detector of each photon.
    delay_unit_s
        Seconds per delay unit.
    timing
        The stream's timing.
    """

    timestamps: np.ndarray
    delays: np.ndarray
    detectors: np.ndarray
    delay_unit_s: float
    timing: Timing

    def times_s(self) -> np.ndarray:
        """Arrival times in seconds (macrotime plus the T3 nanotime)."""
        t = self.timestamps * self.timing.timestamp_unit
        if self.timing.is_t3:
            # in place: one whole-length temporary less, the same numbers as t + d * unit
            t += self.delays * self.delay_unit_s
        return t


@dataclass(frozen=True)
class PhotonCount:
    """What a :class:`PhotonCollector` tells once it holds more photons than its limit: how
    many there were and when the first and last arrived (the photons themselves are gone).

    Attributes
    ----------
    n_photons
        Photons of the selected detectors seen.
    first_s, last_s
        Earliest and latest arrival time (s, macrotime plus T3 nanotime).
    limit
        The collector's limit.
    timing
        The stream's timing.
    """

    n_photons: int
    first_s: float
    last_s: float
    limit: int
    timing: Timing


class PhotonCollector:
    """Collects the photons (not sync events) of some detectors across chunks.

    Memory grows with the number of photons, 11 bytes each in T3 (int64 timestamp, uint16
    nanotime, uint8 detector; 17 in T2, whose delays are int64 ticks): 3 MB for a 60 s particle
    at 50 kcps. The change-point analysis needs every photon of the trace at once; beyond
    ``limit`` photons the collector lets them go and only counts them (:class:`PhotonCount`),
    and the whole-trace analyses read the source again in windows
    (:mod:`spad.analysis.windowed`).

    Parameters
    ----------
    detectors
        Detectors whose photons are kept.
    limit
        Most photons kept; ``None``: no limit.
    """

    def __init__(self, detectors: Sequence[int] = (1, 2), limit: int | None = None) -> None:
        self.detectors = tuple(int(d) for d in detectors)
        self.limit = None if limit is None else int(limit)
        self._stream = StreamState()
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._n = 0
        self._over = False
        self._first_s = math.inf
        self._last_s = -math.inf

    @property
    def n_photons(self) -> int:
        """Photons of the selected detectors seen so far."""
        return self._n

    @property
    def overflowed(self) -> bool:
        """More photons came than ``limit``: they were let go, only counted."""
        return self._over

    def update(self, chunk: PhotonChunk) -> None:
        """Add the photons of one chunk."""
        self._stream.accept(chunk, "PhotonCollector")
        delays = self._stream.delays(chunk)
        keep = np.isin(chunk.detectors, self.detectors)
        ts, dl, det = chunk.timestamps[keep], delays[keep], chunk.detectors[keep]
        # T3 nanotimes stay uint16; T2 delays are int64 ticks (they can exceed 2^31)
        dl = dl.astype(np.uint16 if chunk.timing.is_t3 else np.int64, copy=False)
        self._n += int(ts.size)
        if self._over:
            self._span(PhotonList(ts, dl, det, self._stream.delay_unit, chunk.timing))
            return
        self._parts.append((ts, dl, det))
        if self.limit is not None and self._n > self.limit:
            # over the limit: keep the span, let the photons go
            for part in self._parts:
                self._span(PhotonList(*part, self._stream.delay_unit, chunk.timing))
            self._parts = []
            self._over = True

    def _span(self, photons: PhotonList) -> None:
        if photons.timestamps.size:
            t = photons.times_s()
            self._first_s = min(self._first_s, float(t.min()))
            self._last_s = max(self._last_s, float(t.max()))

    def result(self) -> PhotonList | PhotonCount:
        """All photons collected so far, or only their count once over the limit."""
        timing = stream_timing(self._stream, "PhotonCollector")
        if self._over:
            assert self.limit is not None
            return PhotonCount(self._n, self._first_s, self._last_s, self.limit, timing)
        if self._parts:
            ts, dl, det = (np.concatenate(x) for x in zip(*self._parts, strict=True))
            self._parts = [(ts, dl, det)]
        else:
            ts, dl, det = (np.empty(0, np.int64),
                           np.empty(0, np.uint16 if timing.is_t3 else np.int64),
                           np.empty(0, np.uint8))
        return PhotonList(ts, dl, det, self._stream.delay_unit, timing)
