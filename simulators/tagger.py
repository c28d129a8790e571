"""A simulated HydraHarp-like time tagger driven by the photon stream simulator.

It implements :class:`spad.drivers.interfaces.tagger.TimeTagger`: configure, start, then read raw
HydraHarp v2 records (T3 or T2) in FIFO-sized pieces. Like the hardware, in T2 it records every
(divided) sync as a special record on channel 0. With ``realtime=True`` records become
available at the pace of the wall clock; otherwise as fast as they can be simulated, and the
tagger's :attr:`~SimulatedTagger.clock` (a :class:`~spad.simulators.instruments.ManualClock`)
moves on by the measurement time of each piece as it is delivered. A simulated rig gives that
clock to its camera, spectrograph and stage, so a fast run sees the same frames, moves and
photons as a real-time one, however fast the machine is.

Faults (:meth:`SimulatedTagger.inject`, for the first-light check ``spad devices --check``):
``"no_sync"`` (the laser's sync cable is off: no sync, and in T3 no records at all, as a
HydraHarp records T3 photons only against a sync) and ``"dead_detector"`` (the second APD is
off or unplugged: its input gives no counts).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from spad.drivers.interfaces.tagger import TaggerConfig, TimeTagger
from spad.simulators.detection import Detection
from spad.simulators.emitter import Emitter
from spad.simulators.instruments import ManualClock, WallClock
from spad.simulators.stream import Simulation, record_type_for

from spad.errors import DeviceError
from spad.formats.records import Encoder
from spad.photons import Mode, Timing

__all__ = ["SimulatedTagger", "FIFO_RECORDS", "FAULTS"]

FAULTS = ("no_sync", "dead_detector")

FIFO_RECORDS = 131072
"""Largest read, in records (HydraHarp ``TTREADMAX``)."""


class SimulatedTagger(TimeTagger):
    """Time tagger whose detectors look at simulated emitters.

    Parameters
    ----------
    emitters
        What is in the focus (one emitter or several).
    detection
        Detection chain; its tagger fields (mode, bin, divider) are set by :meth:`configure`,
        its ``offsets_s`` are the cable delays to which the input offsets are added.
    seed
        Seed of the simulation (each start uses it, so repeated runs are identical).
    realtime
        Deliver records no faster than the wall clock.
    fifo_records
        Largest number of records one :meth:`read` returns.
    chunk_s
        Simulated time generated at once (the latency of a read in real-time mode).
    clock
        The clock of the rig (see the module docstring); default: the wall clock in real
        time, else a new :class:`~spad.simulators.instruments.ManualClock`. A manual clock is
        advanced by the tagger as it delivers records; the wall clock runs by itself.
    """

    name = "Simulated HydraHarp 400"

    def __init__(self, emitters: Emitter | Sequence[Emitter], detection: Detection | None = None,
                 seed: int = 0, realtime: bool = False, fifo_records: int = FIFO_RECORDS,
                 chunk_s: float = 0.05, clock: WallClock | ManualClock | None = None) -> None:
        self.emitters = emitters
        self.detection = Detection() if detection is None else detection
        self.seed = int(seed)
        self.realtime = bool(realtime)
        if fifo_records < 1:
            raise ValueError("fifo_records must be >= 1")
        self.fifo_records = int(fifo_records)
        self.chunk_s = float(chunk_s)
        if clock is None:
            clock = WallClock() if self.realtime else ManualClock()
        self.clock = clock
        first = emitters if isinstance(emitters, Emitter) else next(iter(emitters))
        self._rep_rate = first.rep_rate_hz
        self._config = TaggerConfig()
        self._sim: Simulation | None = None
        self._records: Iterator[np.ndarray] | None = None
        self._buffer = np.zeros(0, np.uint32)
        self._pos = 0
        self._running = False
        self._opened = False
        self._last_rates = [0.0, 0.0]
        self.fault: str | None = None
        # Finest binning whose 15-bit TCSPC range still covers the laser period.
        bins = 1.0 / (self._rep_rate * self.base_resolution_s)
        self.configure(binning=max(0, math.ceil(math.log2(bins / 32768))))

    # -- settings -----------------------------------------------------------------------------

    @property
    def n_channels(self) -> int:
        return 2

    @property
    def base_resolution_s(self) -> float:
        return 1e-12

    def configure(self, mode: Mode = "T3", sync_divider: int = 1, binning: int = 0,
                  offsets_s: Sequence[float] = (), sync_offset_s: float = 0.0) -> TaggerConfig:
        """Apply settings; in T3 the period must fit in 32768 bins (as on a HydraHarp, whose
        T3 dtime field has 15 bits), else :class:`~spad.errors.DeviceError`."""
        if self._running:
            raise DeviceError(self.name, "cannot configure while a measurement is running")
        if len(offsets_s) > self.n_channels:
            raise DeviceError(self.name, f"{len(offsets_s)} offsets for {self.n_channels} inputs")
        cfg = TaggerConfig(mode, sync_divider, binning, tuple(offsets_s), sync_offset_s)
        cable = self.detection.offsets_s
        # A delayed sync makes every photon look earlier by the same amount.
        offs = tuple(cable[d] + cfg.offset(d + 1) - cfg.sync_offset_s for d in range(2))
        det = self.detection.replace(
            mode=mode, sync_divider=int(sync_divider), offsets_s=offs,
            bin_s=self.base_resolution_s * 2 ** int(binning),
            t2_resolution_s=self.base_resolution_s, t2_sync_events=True)
        try:
            det.timing(self._rep_rate)
        except ValueError as exc:
            raise DeviceError(self.name, str(exc)) from None
        self._config = cfg
        self._det = det
        return cfg

    @property
    def config(self) -> TaggerConfig:
        return self._config

    @property
    def timing(self) -> Timing:
        return self._det.timing(self._rep_rate)

    @property
    def record_type(self) -> str:
        return record_type_for(self._config.mode)

    # -- acquisition --------------------------------------------------------------------------

    def start(self, duration_s: float) -> None:
        if not self._opened:
            raise DeviceError(self.name, "not opened: call open() first, or use `with tagger:`")
        if self._running:
            raise DeviceError(self.name, "a measurement is already running")
        if not (duration_s > 0 and math.isfinite(duration_s)):
            raise DeviceError(self.name, f"measurement time must be positive seconds, "
                              f"not {duration_s!r}")
        self._sim = Simulation(self.emitters, self._det, duration_s, self.seed,
                               chunk_s=self.chunk_s, realtime=self.realtime)
        self._records = self._generate(self._sim)
        self._buffer = np.zeros(0, np.uint32)
        self._pos = 0
        self._running = True

    def _generate(self, sim: Simulation) -> Iterator[np.ndarray]:
        enc = Encoder(self.record_type, sim.timing)
        done = 0.0
        for k, chunk in enumerate(sim.chunks()):
            det = chunk.detectors
            n1 = int(np.count_nonzero(det == 1))
            n2 = int(np.count_nonzero(det == 2))
            self._last_rates = [n1 / sim.chunk_s, n2 / sim.chunk_s]
            end = min((k + 1) * sim.chunk_s, sim.duration_s)
            self.advance_clock(end - done)
            done = end
            yield enc.encode(chunk)

    def advance_clock(self, seconds: float) -> None:
        """Let ``seconds`` of measurement pass on a manual :attr:`clock` (records delivered;
        the wall clock runs by itself)."""
        if isinstance(self.clock, ManualClock):
            self.clock.advance(seconds)

    def inject(self, fault: str | None) -> None:
        """Switch a fault on (one of :data:`FAULTS`) or off (``None``)."""
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown tagger fault {fault!r} (use {FAULTS})")
        self.fault = fault

    def _faulty(self, words: np.ndarray) -> np.ndarray:
        """``words`` as the faulty hardware would deliver them."""
        if self.fault == "no_sync":
            if self._config.mode == "T3":
                return words[:0]
            special = (words >> 31) == 1          # HydraHarp v2: sync records are special,
            return words[~(special & (((words >> 25) & 0x3F) == 0))]   # channel 0
        if self.fault == "dead_detector":           # the second detector: channel index 1
            return words[~(((words >> 31) == 0) & (((words >> 25) & 0x3F) == 1))]
        return words

    def read(self) -> np.ndarray | None:
        if self._records is None:
            raise DeviceError(self.name, "read() before start()")
        while self._pos >= self._buffer.size:
            if not self._running:
                return None
            nxt = next(self._records, None)
            if nxt is None:
                self._running = False
                return None
            self._buffer, self._pos = nxt, 0
        end = min(self._pos + self.fifo_records, self._buffer.size)
        out = self._buffer[self._pos:end]
        self._pos = end
        return self._faulty(out) if self.fault else out

    def stop(self) -> None:
        if self._running and self._records is not None:
            self._records.close()  # type: ignore[attr-defined]
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    @property
    def simulation(self) -> Simulation | None:
        """The simulation of the current (or last) measurement, with its ``truth``."""
        return self._sim

    def sync_rate_hz(self) -> float:
        return 0.0 if self.fault == "no_sync" else float(self._rep_rate)

    def count_rates_hz(self) -> list[float]:
        """Rates of the last simulated chunk while running; before that, the expected rates."""
        if self._sim is None:
            sim = Simulation(self.emitters, self._det, 1.0, self.seed)
            rate = sim.truth.detected_rate_hz() - sum(self._det.dark_rate_hz)
            s = self._det.split_ratio
            rates = [rate * s + self._det.dark_rate_hz[0],
                     rate * (1 - s) + self._det.dark_rate_hz[1]]
        else:
            rates = list(self._last_rates)
        if self.fault == "dead_detector":
            rates[1] = 0.0
        return rates

    def open(self) -> None:
        self._opened = True

    def is_opened(self) -> bool:
        return self._opened

    def close(self) -> None:
        self.stop()
        self._opened = False
