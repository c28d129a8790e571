"""The photon data model, mirroring Photon-HDF5.

A photon stream is described by a :class:`Timing` (units and modes, shared by all chunks of one
measurement) and carried in :class:`PhotonChunk` objects:

- ``timestamps``: int64, in units of ``timing.timestamp_unit`` seconds. In T3 data this is the
  sync (laser pulse) count and the unit is the sync period; in T2 data it is the tagger's time in
  units of its resolution.
- ``detectors``: uint8 detector number. Photon detectors are numbered from 1 as in PicoQuant's
  reference reader; in T2 data, sync events are kept in the stream as detector 0 (:data:`SYNC`)
  so that the time since the last laser pulse can be computed.
- ``nanotimes``: uint16 TCSPC bin (T3 only, ``None`` in T2), in units of ``timing.nanotime_unit``.
- markers are kept apart: ``marker_times`` (int64, same unit as timestamps) and
  ``marker_channels`` (uint8, the marker bit pattern / number).

The absolute arrival time of a T3 photon is ``timestamps * timestamp_unit + nanotimes *
nanotime_unit`` seconds; of a T2 photon ``timestamps * timestamp_unit``.

A whole recording is a :class:`Measurement`: all photons in one chunk plus the file metadata.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

SYNC: int = 0
"""Detector number used for laser sync events kept in T2 streams."""

Mode = Literal["T2", "T3"]


@dataclass(frozen=True)
class Timing:
    """Units and acquisition mode of one photon stream (all in SI units).

    Parameters
    ----------
    mode
        ``"T2"`` (every event time-tagged at full resolution) or ``"T3"`` (sync count plus a
        TCSPC delay after the sync).
    timestamp_unit
        Seconds per timestamp tick. T3: the sync period; T2: the tagger resolution.
    nanotime_unit
        Seconds per TCSPC bin (T3), ``None`` in T2.
    sync_period
        Laser period in seconds, ``None`` if unknown (T2 without a sync rate).
    tcspc_num_bins
        Number of TCSPC bins that span one sync period (T3), ``None`` in T2.
    """

    mode: Mode
    timestamp_unit: float
    nanotime_unit: float | None = None
    sync_period: float | None = None
    tcspc_num_bins: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("T2", "T3"):
            raise ValueError(f"mode must be 'T2' or 'T3', not {self.mode!r}")
        if not (self.timestamp_unit > 0 and np.isfinite(self.timestamp_unit)):
            raise ValueError(f"timestamp_unit must be a positive number of seconds, "
                             f"not {self.timestamp_unit!r}")
        if self.mode == "T3" and not (self.nanotime_unit and self.nanotime_unit > 0):
            raise ValueError("T3 timing needs a positive nanotime_unit (seconds per TCSPC bin)")
        if self.timestamp_unit > 1.0 or (self.nanotime_unit or 0) > 1.0:
            # Guard against milliseconds or nanoseconds passed where seconds are expected.
            raise ValueError("time units are in seconds; a unit above 1 s is not a time tagger's")

    @property
    def is_t3(self) -> bool:
        """True for T3 (TCSPC) data."""
        return self.mode == "T3"


def _empty(dtype: Any) -> np.ndarray:
    return np.empty(0, dtype=dtype)


@dataclass
class PhotonChunk:
    """A time-ordered block of photons (and the markers that fall in the same records).

    Chunks of one stream share one :class:`Timing`. Concatenating the chunks of a stream gives
    exactly the photons of the whole measurement.
    """

    timing: Timing
    timestamps: np.ndarray = field(default_factory=lambda: _empty(np.int64))
    detectors: np.ndarray = field(default_factory=lambda: _empty(np.uint8))
    nanotimes: np.ndarray | None = None
    marker_times: np.ndarray = field(default_factory=lambda: _empty(np.int64))
    marker_channels: np.ndarray = field(default_factory=lambda: _empty(np.uint8))

    def __post_init__(self) -> None:
        self.timestamps = np.asarray(self.timestamps, dtype=np.int64)
        self.detectors = np.asarray(self.detectors, dtype=np.uint8)
        if self.timing.is_t3:
            if self.nanotimes is None:
                self.nanotimes = np.zeros(self.timestamps.shape, dtype=np.uint16)
            self.nanotimes = np.asarray(self.nanotimes, dtype=np.uint16)
        elif self.nanotimes is not None:
            raise ValueError("T2 photons carry no nanotimes")
        self.marker_times = np.asarray(self.marker_times, dtype=np.int64)
        self.marker_channels = np.asarray(self.marker_channels, dtype=np.uint8)
        n = self.timestamps.shape[0]
        if self.detectors.shape != (n,) or (self.nanotimes is not None
                                            and self.nanotimes.shape != (n,)):
            raise ValueError("timestamps, detectors and nanotimes must be 1-D of equal length")
        if self.marker_times.shape != self.marker_channels.shape:
            raise ValueError("marker_times and marker_channels must have equal length")

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    @property
    def n_photons(self) -> int:
        """Number of detector events (sync events in T2 excluded)."""
        return int(np.count_nonzero(self.detectors != SYNC)) if len(self) else 0

    def times_s(self) -> np.ndarray:
        """Absolute arrival times in seconds (float64, includes the nanotime in T3)."""
        t = self.timestamps * self.timing.timestamp_unit
        if self.nanotimes is not None:
            t = t + self.nanotimes * self.timing.nanotime_unit
        return t

    def select(self, mask: np.ndarray) -> PhotonChunk:
        """Photons where ``mask`` is true (markers are kept whole)."""
        return PhotonChunk(
            self.timing, self.timestamps[mask], self.detectors[mask],
            None if self.nanotimes is None else self.nanotimes[mask],
            self.marker_times, self.marker_channels)

    @classmethod
    def concatenate(cls, chunks: Iterable[PhotonChunk], timing: Timing | None = None
                    ) -> PhotonChunk:
        """Join chunks of one stream into one chunk.

        Parameters
        ----------
        chunks
            Chunks sharing one timing, in time order.
        timing
            The timing to use when ``chunks`` is empty.
        """
        chunks = list(chunks)
        if not chunks:
            if timing is None:
                raise ValueError("cannot concatenate no chunks without a timing")
            return cls(timing)
        timing = chunks[0].timing
        if any(c.timing != timing for c in chunks):
            raise ValueError("chunks of different streams (timings differ)")
        return cls(
            timing,
            np.concatenate([c.timestamps for c in chunks]),
            np.concatenate([c.detectors for c in chunks]),
            np.concatenate([c.nanotimes for c in chunks]) if timing.is_t3 else None,
            np.concatenate([c.marker_times for c in chunks]),
            np.concatenate([c.marker_channels for c in chunks]),
        )

    def equals(self, other: PhotonChunk) -> bool:
        """True if both hold exactly the same photons, markers and timing."""
        def same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
            return (a is None and b is None) or (
                a is not None and b is not None and np.array_equal(a, b))
        return (self.timing == other.timing and same(self.timestamps, other.timestamps)
                and same(self.detectors, other.detectors)
                and same(self.nanotimes, other.nanotimes)
                and same(self.marker_times, other.marker_times)
                and same(self.marker_channels, other.marker_channels))


@dataclass
class Meta:
    """What a time-tag file says about its measurement.

    Times in seconds, rates in Hz. Fields a format does not carry are ``None``.
    """

    path: str
    format: str                       # "PTU", "PT3", "HT3", "Photon-HDF5"
    record_type: str                  # e.g. "HydraHarp2T3", "generic" for Photon-HDF5
    record_type_code: int | None      # PicoQuant TTResultFormat_TTTRRecType or None
    mode: Mode
    timing: Timing
    global_resolution: float | None   # s (T3: sync period; T2: tag resolution)
    resolution: float | None          # s, TCSPC bin (T3)
    sync_rate: float | None           # Hz
    acquisition_time: float | None    # s, as stated by the file
    n_channels: int | None            # detector inputs of the instrument
    n_records: int                    # records actually in the file
    creation_time: str | None         # ISO 8601 where it could be parsed, else as written
    software: str | None
    software_version: str | None
    comment: str | None
    tags: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Measurement:
    """A whole recording: its photons and the metadata of its file."""

    photons: PhotonChunk
    meta: Meta

    @property
    def timing(self) -> Timing:
        return self.photons.timing

    def duration_s(self) -> float:
        """Span from the first to the last event, in seconds (0 for fewer than two events)."""
        ts = self.photons.timestamps
        return float((ts[-1] - ts[0]) * self.timing.timestamp_unit) if len(ts) > 1 else 0.0
