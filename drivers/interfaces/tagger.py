"""The time-tagger interface: what a PicoQuant/Swabian driver and the simulator both offer.

A tagger is configured, started for a duration, and then polled with :meth:`TimeTagger.read`,
which returns the raw little-endian uint32 TTTR records gathered since the last call (like
``ReadFiFo``), and ``None`` once the measurement has ended and everything has been read. The
records are of :attr:`TimeTagger.record_type` (decode them with
``spad.formats.records.Decoder(tagger.record_type, tagger.timing)``); :attr:`TimeTagger.timing`
gives their units as a :class:`spad.photons.Timing`.

Typical use::

    with tagger:                                           # open ... close
        tagger.configure(mode="T3", sync_divider=1, binning=4)   # 16 ps bins
        tagger.start(duration_s=60.0)
        while (records := tagger.read()) is not None:
            sink(records)
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from spad.drivers.interfaces.base import Instrument

from spad.photons import Mode, Timing

__all__ = ["TaggerConfig", "TimeTagger"]


@dataclass(frozen=True)
class TaggerConfig:
    """Acquisition settings of a time tagger.

    Parameters
    ----------
    mode
        ``"T2"`` or ``"T3"``.
    sync_divider
        Divider applied to the sync input (1, 2, 4, ...).
    binning
        T3 TCSPC bin = base resolution x 2**binning (HydraHarp ``SetBinning``).
    offsets_s
        Delay added to each detector input, seconds (``SetInputChannelOffset``); missing
        entries are 0.
    sync_offset_s
        Delay added to the sync input, seconds (moves the decay earlier in the TCSPC window).
    """

    mode: Mode = "T3"
    sync_divider: int = 1
    binning: int = 0
    offsets_s: tuple[float, ...] = ()
    sync_offset_s: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in ("T2", "T3"):
            raise ValueError(f"tagger mode must be 'T2' or 'T3', not {self.mode!r}")
        if int(self.sync_divider) != self.sync_divider or self.sync_divider < 1:
            raise ValueError(f"sync_divider must be a positive integer, not {self.sync_divider!r}")
        if int(self.binning) != self.binning or not 0 <= self.binning <= 24:
            raise ValueError(f"binning must be an integer 0-24, not {self.binning!r}")
        object.__setattr__(self, "offsets_s", tuple(float(x) for x in self.offsets_s))
        if any(abs(x) > 1e-3 for x in (*self.offsets_s, self.sync_offset_s)):
            raise ValueError("offsets are in seconds (a few ns); an offset above 1 ms is a unit "
                             "mistake")

    def offset(self, detector: int) -> float:
        """Input offset of ``detector`` (numbered from 1), seconds."""
        return self.offsets_s[detector - 1] if detector <= len(self.offsets_s) else 0.0


class TimeTagger(Instrument):
    """A time tagger producing raw TTTR records.

    Subclasses implement the hardware (or simulation) calls; the order of use is
    :meth:`open` -> :meth:`configure` -> :meth:`start` -> :meth:`read` until ``None`` (or
    :meth:`stop`) -> :meth:`close` (``with tagger:`` opens and closes). Problems with the
    device raise ``spad.errors.DeviceError``.
    """

    name: str = "time tagger"

    @property
    @abstractmethod
    def n_channels(self) -> int:
        """Number of detector inputs."""

    @property
    @abstractmethod
    def base_resolution_s(self) -> float:
        """Finest time bin of the device, seconds."""

    @abstractmethod
    def configure(self, mode: Mode = "T3", sync_divider: int = 1, binning: int = 0,
                  offsets_s: Sequence[float] = (), sync_offset_s: float = 0.0) -> TaggerConfig:
        """Apply acquisition settings (not while running); returns them as applied."""

    @property
    @abstractmethod
    def config(self) -> TaggerConfig:
        """The settings in force."""

    @property
    @abstractmethod
    def timing(self) -> Timing:
        """Units of the records produced with the current settings."""

    @property
    @abstractmethod
    def record_type(self) -> str:
        """PicoQuant record type name of the output, e.g. ``"HydraHarp2T3"``."""

    @abstractmethod
    def start(self, duration_s: float) -> None:
        """Start a measurement of ``duration_s`` seconds."""

    @abstractmethod
    def read(self) -> np.ndarray | None:
        """Records acquired since the last call (uint32, possibly empty), at most one FIFO
        read; ``None`` when the measurement is over and all records have been returned."""

    @abstractmethod
    def stop(self) -> None:
        """End the measurement early (records already acquired can still be read)."""

    @property
    @abstractmethod
    def running(self) -> bool:
        """True while a measurement is acquiring."""

    @abstractmethod
    def sync_rate_hz(self) -> float:
        """Rate at the sync input (before the divider), Hz."""

    @abstractmethod
    def count_rates_hz(self) -> list[float]:
        """Current count rate of each detector input, Hz."""
