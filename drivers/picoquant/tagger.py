"""PicoQuant time taggers in TTTR mode: HydraHarp 400, MultiHarp 150/160 and PicoHarp 300.

One flow for the three, as in PicoQuant's TTTR-mode demos (``tttrmode.py`` of
HH400-v3.x-Demos and MH150-Demos, ``tttrmode.c`` of PH300-v3.x-Demos):

1. ``GetLibraryVersion``; ``OpenDevice`` over indices 0-7, keeping the one with the wanted
   serial number (or the first);
2. ``Initialize`` (mode 2 = T2, 3 = T3; reference clock internal/external; the PicoHarp has no
   reference argument), ``GetHardwareInfo``, ``GetNumOfInputChannels``, ``GetBaseResolution``,
   ``Calibrate`` (HydraHarp and PicoHarp);
3. :meth:`PicoQuantTagger.configure`: ``SetSyncDiv``; sync and input discriminators:
   ``SetSyncCFD``/``SetInputCFD`` (HydraHarp; PicoHarp: ``SetInputCFD`` on input 0 = sync and 1),
   ``SetSyncEdgeTrg``/``SetInputEdgeTrg`` (MultiHarp, falling edge as for APD NIM pulses);
   ``SetSyncChannelOffset``/``SetInputChannelOffset`` (PicoHarp: ``SetSyncOffset`` only);
   in T3 ``SetBinning`` and ``SetOffset(0)``; ``GetResolution``;
4. :meth:`~PicoQuantTagger.start`: ``StartMeas(tacq_ms)``; :meth:`~PicoQuantTagger.read`:
   ``GetFlags`` (FIFO full, sync lost, reference lost, system error, counts dropped each stop
   the measurement with a clear error: records lost are never passed over), ``ReadFiFo`` into
   one preallocated buffer (``MH_ReadFiFo`` takes no count: its buffer holds TTREADMAX =
   1,048,576 words; HydraHarp and PicoHarp read up to 131,072), ``CTCStatus`` when nothing came;
5. ``StopMeas``, ``CloseDevice``.

Count rates need 100 ms after ``Initialize`` or ``SetSyncDiv`` to be valid (the demos wait).
Any failure is a :class:`~spad.drivers.picoquant.errors.PicoQuantError` naming the device, with the
library's ``GetErrorString`` text; a failure during a measurement stops it and closes the
device, so an unplugged tagger ends the recording at the next read (within milliseconds).

Records are PicoQuant's own: ``HydraHarp2T3/T2`` (HydraHarp 400, library v3), ``GenericT3/T2``
(MultiHarp), ``PicoHarpT3/T2``; decode them with :class:`spad.formats.records.Decoder`.

Rig file (Qudi-style config example)::

    [tagger]
    backend = "picoquant"
    family = "hydraharp"            # or "multiharp", "picoharp"
    library = "C:/Program Files/PicoQuant/HydraHarp-HHLibv30/hhlib64.dll"
    serial = "1021234"              # "" = first device found
    mode = "T3"
    reference = "internal"
    sync_divider = 1
    binning = 2
    sync_level_mv = 50.0            # CFD level (HH, PH) or edge-trigger level (MH, -1200..1200)
    sync_zero_cross_mv = 10.0       # CFD zero cross (HH, PH)
    input_levels_mv = [50.0, 50.0]
    input_zero_cross_mv = [10.0, 10.0]
    sync_offset_ns = 0.0
    detector_offsets_ns = [0.0, 0.35]
    detectors = [1, 2]              # inputs (from 1) with the two APDs
"""

from __future__ import annotations

import ctypes
import math
import time
from collections.abc import Sequence
from ctypes import byref, c_double, c_int

import numpy as np
from spad.drivers.interfaces.tagger import TaggerConfig, TimeTagger
from spad.drivers.picoquant import constants as k
from spad.drivers.picoquant.errors import FifoOverrunError, PicoQuantError
from spad.drivers.picoquant.library import Library

from spad.errors import DeviceError
from spad.photons import Mode, Timing

__all__ = ["PicoQuantTagger", "HydraHarp", "MultiHarp", "PicoHarp", "FAMILIES"]


class PicoQuantTagger(TimeTagger):
    """Common flow of the three PicoQuant TTTR devices (see the module docstring).

    Parameters
    ----------
    library
        Path of the vendor library (``None``: ``$SPAD_PICOQUANT_LIBRARY`` or the default name).
    serial
        Serial number to open; ``""``: the first device found.
    mode
        Mode to initialise in (``configure`` re-initialises if another is asked).
    reference
        ``"internal"`` or ``"external"`` reference clock.
    sync_level_mv, sync_zero_cross_mv, input_levels_mv, input_zero_cross_mv
        Discriminator settings (CFD for HydraHarp/PicoHarp, edge trigger for MultiHarp).
    detectors
        Inputs (from 1) carrying the detectors whose levels/offsets are set, in order.
    poll_s
        Pause when a read found nothing (keeps the polling loop off the CPU).
    """

    family = ""
    model = "PicoQuant"
    record_types = ("", "")           # (T2, T3)
    readmax = k.TTREADMAX_HH
    fifo_full_flag = k.FLAG_FIFOFULL
    syserror_flag = k.FLAG_SYSERROR

    def __init__(self, library: str | None = None, serial: str = "", mode: Mode = "T3",
                 reference: str = "internal", sync_level_mv: float = 50.0,
                 sync_zero_cross_mv: float = 10.0, input_levels_mv: Sequence[float] = (50.0,),
                 input_zero_cross_mv: Sequence[float] = (10.0,),
                 detectors: Sequence[int] = (1, 2), poll_s: float = 0.005) -> None:
        self.name = f"{self.model} {serial}".strip()
        self._library_path = library
        self.serial = serial
        self._init_mode: Mode = mode
        if reference not in k.REFERENCES:
            raise ValueError(f"reference must be one of {list(k.REFERENCES)}, not {reference!r}")
        self.reference = reference
        self.sync_level_mv, self.sync_zero_cross_mv = sync_level_mv, sync_zero_cross_mv
        self.input_levels_mv = tuple(input_levels_mv)
        self.input_zero_cross_mv = tuple(input_zero_cross_mv)
        self.detectors = tuple(int(d) for d in detectors)
        self._poll = float(poll_s)
        self._lib: Library | None = None
        self._dev: int | None = None
        self._buffer = np.zeros(self.readmax, dtype=np.uint32)
        self._bufptr = self._buffer.ctypes.data_as(ctypes.POINTER(ctypes.c_uint))
        self._config = TaggerConfig(mode=mode)
        self._n_channels = 0
        self._base_res_s = 0.0
        self._res_s = 0.0
        self._running = False
        self._finished = True
        self._sync_rate = 0.0
        self.hardware: dict[str, str] = {}
        self.library_version = ""

    # -- connection -------------------------------------------------------------------------

    def _call(self, name: str, *args: object) -> int:
        if self._lib is None or self._dev is None:
            raise DeviceError(self.name, "not open")
        return self._lib(name, self._dev, *args)

    def open(self) -> None:
        if self._dev is not None:
            return
        lib = self._lib or Library(self.family, self._library_path, self.name)
        self._lib = lib
        version = ctypes.create_string_buffer(16)
        lib("GetLibraryVersion", version)
        self.library_version = version.value.decode("ascii", "replace")
        found = []
        for idx in range(k.MAXDEVNUM):
            ser = ctypes.create_string_buffer(16)
            if lib.raw("OpenDevice", idx, ser) == 0:
                s = ser.value.decode("ascii", "replace")
                if not self.serial or s == self.serial:
                    self._dev, self.serial = idx, s
                    break
                found.append(s)
                lib.raw("CloseDevice", idx)
        if self._dev is None:
            what = f"no device with serial {self.serial}" if self.serial else "no device found"
            others = f" (found {', '.join(found)})" if found else ""
            raise DeviceError(self.name, f"{what}{others}: is it connected and powered, and "
                                         "not held by another program?")
        self.name = f"{self.model} {self.serial}"
        lib.device = self.name
        try:
            self._initialise(self._init_mode)
            self.configure(self._init_mode)
        except BaseException:
            self.close()
            raise

    def _initialise(self, mode: Mode) -> None:
        self._initialize_call(k.MODES[mode])
        model, part, version = (ctypes.create_string_buffer(32) for _ in range(3))
        self._call("GetHardwareInfo", model, part, version)
        self.hardware = {"model": model.value.decode("ascii", "replace"),
                         "part_number": part.value.decode("ascii", "replace"),
                         "version": version.value.decode("ascii", "replace")}
        self._n_channels = self._count_channels()
        res, steps = c_double(), c_int()
        self._call("GetBaseResolution", byref(res), byref(steps))
        self._base_res_s = res.value * 1e-12
        if self._lib is not None and self._lib.has("Calibrate"):
            self._call("Calibrate")
        self._init_mode = mode
        self._initialised_at = time.monotonic()

    def _initialize_call(self, mode_code: int) -> None:
        self._call("Initialize", mode_code, k.REFERENCES[self.reference])

    def _count_channels(self) -> int:
        n = c_int()
        self._call("GetNumOfInputChannels", byref(n))
        return n.value

    def close(self) -> None:
        lib, dev = self._lib, self._dev
        self._dev = None
        if lib is not None and dev is not None:
            if self._running:
                lib.raw("StopMeas", dev)        # best effort: the device may be gone
            lib.raw("CloseDevice", dev)
        self._running = False
        self._finished = True

    def is_opened(self) -> bool:
        return self._dev is not None

    def _fail(self, problem: str, cls: type[PicoQuantError] = PicoQuantError) -> PicoQuantError:
        """Stop and close (records already returned are kept by the caller); the error."""
        self.close()
        return cls(self.name, problem)

    # -- settings ---------------------------------------------------------------------------

    @property
    def n_channels(self) -> int:
        return self._n_channels

    @property
    def base_resolution_s(self) -> float:
        return self._base_res_s

    def _level(self, values: tuple[float, ...], i: int) -> int:
        return int(round(values[i] if i < len(values) else values[-1]))

    def _set_sync_trigger(self) -> None:
        self._call("SetSyncCFD", int(round(self.sync_level_mv)),
                   int(round(self.sync_zero_cross_mv)))

    def _set_input_trigger(self, channel: int, i: int) -> None:
        self._call("SetInputCFD", channel, self._level(self.input_levels_mv, i),
                   self._level(self.input_zero_cross_mv, i))

    def _set_offsets(self, cfg: TaggerConfig) -> None:
        self._call("SetSyncChannelOffset", _ps(cfg.sync_offset_s, self.name))
        for i, det in enumerate(self.detectors):
            self._call("SetInputChannelOffset", det - 1, _ps(cfg.offset(i + 1), self.name))

    def configure(self, mode: Mode = "T3", sync_divider: int = 1, binning: int = 0,
                  offsets_s: Sequence[float] = (), sync_offset_s: float = 0.0) -> TaggerConfig:
        if self._running:
            raise DeviceError(self.name, "cannot configure while a measurement is running")
        try:
            cfg = TaggerConfig(mode, sync_divider, binning, tuple(offsets_s), sync_offset_s)
        except ValueError as exc:
            raise DeviceError(self.name, str(exc)) from None
        if cfg.sync_divider > k.SYNCDIVMAX[self.family]:
            raise DeviceError(self.name, f"sync divider {cfg.sync_divider} above "
                                         f"{k.SYNCDIVMAX[self.family]}")
        bad = [d for d in self.detectors if not 1 <= d <= self._n_channels]
        if bad:
            raise DeviceError(self.name, f"detector input(s) {bad} not on this device "
                                         f"({self._n_channels} inputs)")
        if len(cfg.offsets_s) > len(self.detectors):
            raise DeviceError(self.name, f"{len(cfg.offsets_s)} offsets for "
                                         f"{len(self.detectors)} detectors")
        if mode != self._init_mode:
            self._initialise(mode)
        self._call("SetSyncDiv", cfg.sync_divider)
        self._set_sync_trigger()
        for i, det in enumerate(self.detectors):
            self._set_input_trigger(det - 1, i)
        self._set_offsets(cfg)
        if mode == "T3":
            self._call("SetBinning", cfg.binning)
            self._call("SetOffset", 0)
        res = c_double()
        self._call("GetResolution", byref(res))
        self._res_s = res.value * 1e-12
        self._config = cfg
        self._initialised_at = time.monotonic()
        self._sync_rate = 0.0          # measured again (once) for the new settings
        return cfg

    @property
    def config(self) -> TaggerConfig:
        return self._config

    def _wait_rates_valid(self) -> None:
        left = self._initialised_at + k.COUNTRATE_WAIT_S - time.monotonic()
        if left > 0:
            time.sleep(left)

    def sync_rate_hz(self) -> float:
        self._wait_rates_valid()
        rate = c_int()
        self._call("GetSyncRate", byref(rate))
        return float(rate.value)

    def count_rates_hz(self) -> list[float]:
        self._wait_rates_valid()
        out = []
        for det in self.detectors:
            rate = c_int()
            self._call("GetCountRate", det - 1, byref(rate))
            out.append(float(rate.value))
        return out

    def warnings(self) -> str:
        """The device's warnings (count rates, divider) as the library words them."""
        w = c_int()
        self._call("GetWarnings", byref(w))
        if not w.value:
            return ""
        text = ctypes.create_string_buffer(16384)
        self._call("GetWarningsText", text, w.value)
        return text.value.decode("ascii", "replace").strip()

    def _stream_sync_rate(self) -> float:
        # Measured once per configuration, so the timing a decoder gets before start() is the
        # timing of the records that follow.
        if self._sync_rate <= 0:
            self._sync_rate = self.sync_rate_hz()
        return self._sync_rate

    @property
    def timing(self) -> Timing:
        rate = self._stream_sync_rate()
        if self._config.mode == "T2":
            return Timing("T2", self._base_res_s, sync_period=1.0 / rate if rate > 0 else None)
        if rate <= 0:
            raise DeviceError(self.name, "no sync signal: T3 needs the laser sync")
        eff = self._config.sync_divider / self._sync_rate
        nbins = max(1, math.ceil(eff / self._res_s - 1e-9))
        return Timing("T3", eff, nanotime_unit=self._res_s, sync_period=eff,
                      tcspc_num_bins=nbins)

    @property
    def record_type(self) -> str:
        return self.record_types[self._config.mode == "T3"]

    # -- measurement ------------------------------------------------------------------------

    def start(self, duration_s: float) -> None:
        if self._running:
            raise DeviceError(self.name, "a measurement is already running")
        ms = duration_s * 1e3 if math.isfinite(duration_s) else -1
        if not 1 <= ms <= k.ACQTMAX_MS:
            raise DeviceError(self.name, f"measurement time {duration_s!r} s outside "
                                         f"1 ms..{k.ACQTMAX_MS / 3.6e6:g} h")
        self._stream_sync_rate()
        self._call("StartMeas", int(round(ms)))
        self._running, self._finished = True, False

    def _check_flags(self) -> None:
        flags = c_int()
        self._call("GetFlags", byref(flags))
        f = flags.value
        if f & self.fifo_full_flag == self.fifo_full_flag:
            raise self._fail("FIFO overrun: records were lost, the measurement was stopped "
                             "(count rate too high for the link, or reads too slow)",
                             FifoOverrunError)
        if f & self.syserror_flag:
            raise self._fail("the device reports a system error (hardware fault; contact "
                             "PicoQuant support)")
        if self._config.mode == "T3" and f & k.FLAG_SYNC_LOST and self.family != "picoharp":
            # In T2 the sync is just another input; in T3 every record is timed from it.
            raise self._fail("sync signal lost during a T3 measurement (laser off or cable?)")
        if self.reference == "external" and f & k.FLAG_REF_LOST and self.family != "picoharp":
            raise self._fail("external reference clock lost")
        if self.family == "multiharp" and f & k.FLAG_CNTS_DROPPED:
            raise self._fail("counts dropped by the device (input rate too high)")

    def _read_fifo(self) -> int:
        n = c_int()
        self._call("ReadFiFo", self._bufptr, self.readmax, byref(n))
        return n.value

    def read(self) -> np.ndarray | None:
        if self._finished:
            return None
        if self._dev is None:
            raise DeviceError(self.name, "read() after the device was closed")
        try:
            self._check_flags()
            n = self._read_fifo()
            if n > 0:
                return self._buffer[:n].copy()
            done = c_int()
            self._call("CTCStatus", byref(done))
        except PicoQuantError as exc:
            if self._dev is not None:
                self.close()
            raise type(exc)(self.name, f"{exc.problem}; measurement stopped",
                            exc.function, exc.code) from None
        if done.value or not self._running:
            self._call("StopMeas")
            self._running, self._finished = False, True
            return None
        time.sleep(self._poll)
        return self._buffer[:0].copy()

    def stop(self) -> None:
        if self._running and self._dev is not None:
            self._running = False
            self._call("StopMeas")
        self._finished = True

    @property
    def running(self) -> bool:
        return self._running

    def get_device_info(self) -> dict[str, object]:
        """Model, serial, hardware version, library version, inputs, reference clock."""
        return {**self.hardware, "serial_number": self.serial, "library": self._library_path
                or (self._lib.path if self._lib else None), "library_version":
                self.library_version, "inputs": self._n_channels,
                "reference_clock": self.reference}


def _ps(seconds: float, name: str) -> int:
    ps = int(round(seconds * 1e12))
    if abs(ps) > k.CHANOFFS_PS:
        raise DeviceError(name, f"offset {seconds * 1e9:g} ns outside ±{k.CHANOFFS_PS / 1e3:g} ns")
    return ps


class HydraHarp(PicoQuantTagger):
    """HydraHarp 400 through HHLib v3 (records ``HydraHarp2T2/T3``)."""

    family = "hydraharp"
    model = "HydraHarp 400"
    record_types = ("HydraHarp2T2", "HydraHarp2T3")
    readmax = k.TTREADMAX_HH


class MultiHarp(PicoQuantTagger):
    """MultiHarp 150/160 through MHLib (edge triggers, records ``GenericT2/T3``)."""

    family = "multiharp"
    model = "MultiHarp"
    record_types = ("GenericT2", "GenericT3")
    readmax = k.TTREADMAX_MH

    def _set_sync_trigger(self) -> None:
        self._call("SetSyncEdgeTrg", int(round(self.sync_level_mv)), k.EDGE_FALLING)

    def _set_input_trigger(self, channel: int, i: int) -> None:
        self._call("SetInputEdgeTrg", channel, self._level(self.input_levels_mv, i),
                   k.EDGE_FALLING)

    def _read_fifo(self) -> int:
        n = c_int()
        self._call("ReadFiFo", self._bufptr, byref(n))      # no count: buffer is TTREADMAX
        return n.value


class PicoHarp(PicoQuantTagger):
    """PicoHarp 300 through PHLib v3 (records ``PicoHarpT2/T3``).

    The PicoHarp has one detector input; with a PHR 800 router its four routed channels
    appear as detectors 1-4 (``detectors = [1, 2]`` for two APDs on the router). Its CFDs are
    input 0 (sync) and input 1 (detectors); per-detector offsets do not exist, only the sync
    offset; the sync rate is ``GetCountRate`` of input 0.
    """

    family = "picoharp"
    model = "PicoHarp 300"
    record_types = ("PicoHarpT2", "PicoHarpT3")
    readmax = k.TTREADMAX_PH
    fifo_full_flag = k.PH_FLAG_FIFOFULL
    syserror_flag = k.PH_FLAG_SYSERROR

    def _initialize_call(self, mode_code: int) -> None:
        if self.reference != "internal":
            raise DeviceError(self.name, "the PicoHarp 300 has no external reference input")
        self._call("Initialize", mode_code)

    def _count_channels(self) -> int:
        return 4                                   # routing channels (1 without a router)

    def _set_sync_trigger(self) -> None:
        self._call("SetInputCFD", 0, int(round(self.sync_level_mv)),
                   int(round(self.sync_zero_cross_mv)))

    def _set_input_trigger(self, channel: int, i: int) -> None:
        if i == 0:                                 # one physical detector input
            self._call("SetInputCFD", 1, self._level(self.input_levels_mv, 0),
                       self._level(self.input_zero_cross_mv, 0))

    def _set_offsets(self, cfg: TaggerConfig) -> None:
        if any(cfg.offsets_s):
            raise DeviceError(self.name, "the PicoHarp 300 has no per-detector offsets; "
                                         "compensate with cable length or in analysis")
        self._call("SetSyncOffset", _ps(cfg.sync_offset_s, self.name))

    def sync_rate_hz(self) -> float:
        self._wait_rates_valid()
        rate = c_int()
        self._call("GetCountRate", 0, byref(rate))
        return float(rate.value)

    def count_rates_hz(self) -> list[float]:
        self._wait_rates_valid()
        rate = c_int()
        self._call("GetCountRate", 1, byref(rate))
        return [float(rate.value)]


FAMILIES: dict[str, type[PicoQuantTagger]] = {
    "hydraharp": HydraHarp, "multiharp": MultiHarp, "picoharp": PicoHarp}
"""Driver class of each ``family`` of the rig file."""
