"""Swabian Instruments Time Tagger (Ultra, 20, X) behind the TimeTagger interface.

The Time Tagger's API (``Swabian.TimeTagger`` from the package ``swabian-timetagger``, or the
``TimeTagger`` module of Swabian's installer: :mod:`spad.drivers.swabian.api`) streams raw
events with :class:`TimeTagStream`: each ``getData()`` returns a buffer with ``getTimestamps()``
(int64 picoseconds), ``getChannels()`` (the input, from 1; negative numbers are falling edges),
``getEventTypes()`` (0 = time tag; 1 = error, 2/3 = overflow begin/end, 4 = missed events) and
``getMissedEvents()``; ``hasOverflows`` is true when the device dropped events because the USB
link was saturated. spad turns these into the same PicoQuant records the PicoQuant taggers
deliver (``GenericT2``: 1 ps ticks; ``GenericT3``: sync count and 1 ps x 2**binning bins
computed from the sync channel on the host), so everything downstream is shared. An overflow or
missed events stop the measurement with a clear error, and so does a full stream buffer (events
dropped between two reads): lost photons are never passed over. Before connecting,
``scanTimeTagger`` tells "no Time Tagger connected" from a wrong serial number. Swabian's
virtual tagger needs a licence fetched from a connected device, so the streaming tests use a
stand-in (tests/swabian_standin.py) whose public surface, and every call the driver makes on it,
the tests check against Swabian's real package (tests/test_driver_swabian_api.py).

Rig file (Qudi-style config example)::

    [tagger]
    backend = "swabian"
    serial = ""                     # "" = the first Time Tagger found
    mode = "T3"
    sync_divider = 1                # event divider on the sync channel
    binning = 2                     # T3 bin = 1 ps x 2**binning
    sync_level_mv = 500.0           # trigger levels (V on the device)
    input_levels_mv = [500.0, 500.0]
    sync_offset_ns = 0.0            # input delays
    detector_offsets_ns = [0.0, 0.0]
    detectors = [1, 2]              # APD inputs; the sync (laser) is the next free input
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from spad.drivers.interfaces.tagger import TaggerConfig, TimeTagger
from spad.drivers.swabian.api import load_api

from spad.errors import DeviceError
from spad.formats.records import Encoder
from spad.photons import SYNC, Mode, PhotonChunk, Timing

TAG, ERROR, OVERFLOW_BEGIN, OVERFLOW_END, MISSED = 0, 1, 2, 3, 4
PS = 1e-12


class SwabianTagger(TimeTagger):
    """A Swabian Time Tagger (see the module docstring).

    Parameters
    ----------
    serial
        Serial number; ``""``: the first device.
    detectors
        Inputs (from 1) with the APDs, in detector order.
    sync_channel
        Input with the laser sync; default the input after the last detector.
    sync_level_v, input_levels_v
        Trigger levels in volts.
    n_max_events
        Size of the stream buffer (events kept between two reads).
    api
        The ``TimeTagger`` module or a stand-in with its surface; default: import it.
    """

    def __init__(self, serial: str = "", detectors: Sequence[int] = (1, 2),
                 sync_channel: int | None = None, sync_level_v: float = 0.5,
                 input_levels_v: Sequence[float] = (0.5,), n_max_events: int = 4_000_000,
                 api: Any = None, poll_s: float = 0.01) -> None:
        self.name = f"Swabian Time Tagger {serial}".strip()
        self.serial = serial
        self.detectors = tuple(int(d) for d in detectors)
        self.sync_channel = int(sync_channel or max(self.detectors) + 1)
        self.sync_level_v = float(sync_level_v)
        self.input_levels_v = tuple(float(v) for v in input_levels_v)
        self.n_max_events = int(n_max_events)
        self._api = api
        self._poll = float(poll_s)
        self._tagger: Any = None
        self._stream: Any = None
        self._config = TaggerConfig()
        self._sync_rate = 0.0
        self._finished = True
        self.model = ""
        self.clock_ps = 0

    # -- connection -------------------------------------------------------------------------

    def _guard(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except DeviceError:
            raise
        except Exception as exc:  # noqa: BLE001 - the API raises plain RuntimeErrors
            self.close()
            raise DeviceError(self.name, f"{what}: {exc}") from None

    def open(self) -> None:
        if self._tagger is not None:
            return
        api = self._api = self._api or load_api(self.name)
        # Look before connecting: createTimeTagger's own error for "nothing on USB" is a raw
        # USB message ("Got the USB error 'Failed' in 'OpenBySerial'").
        found = [str(s) for s in self._guard("looking for devices", api.scanTimeTagger)]
        if not found:
            raise DeviceError(self.name, "no Time Tagger connected (Swabian's software "
                                         f"{self._guard('version', api.getVersion)} found none "
                                         "on USB: check the cable and power, and that no other "
                                         "program holds it)")
        if self.serial and self.serial not in found:
            raise DeviceError(self.name, f"no Time Tagger with serial {self.serial} connected "
                                         f"(found {', '.join(found)})")
        self._tagger = self._guard("connecting", api.createTimeTagger, self.serial)
        t = self._tagger
        self.serial = str(self._guard("serial", t.getSerial))
        self.model = str(self._guard("model", t.getModel))
        self.name = f"Swabian {self.model} {self.serial}"
        self.clock_ps = int(self._guard("clock", t.getPsPerClock))
        channels = list(self._guard("channels", t.getChannelList))
        missing = [c for c in (*self.detectors, self.sync_channel) if c not in channels]
        if missing:
            self.close()
            raise DeviceError(self.name, f"input(s) {missing} not on this device "
                                         f"(has {channels})")
        self._guard("trigger level", t.setTriggerLevel, self.sync_channel, self.sync_level_v)
        for i, ch in enumerate(self.detectors):
            level = self.input_levels_v[min(i, len(self.input_levels_v) - 1)]
            self._guard("trigger level", t.setTriggerLevel, ch, level)
        self.configure()

    def close(self) -> None:
        tagger, self._tagger = self._tagger, None
        stream, self._stream = self._stream, None
        try:
            if stream is not None:
                stream.stop()
        except Exception:  # noqa: BLE001 - a lost device must still be freed
            pass
        if tagger is not None and self._api is not None:
            try:
                self._api.freeTimeTagger(tagger)
            except Exception:  # noqa: BLE001
                pass
        self._finished = True

    def is_opened(self) -> bool:
        return self._tagger is not None

    # -- settings ---------------------------------------------------------------------------

    @property
    def n_channels(self) -> int:
        return len(self.detectors)

    @property
    def base_resolution_s(self) -> float:
        return PS      # the API's unit; the device's own jitter is a few ps rms

    def configure(self, mode: Mode = "T3", sync_divider: int = 1, binning: int = 0,
                  offsets_s: Sequence[float] = (), sync_offset_s: float = 0.0) -> TaggerConfig:
        if self._stream is not None and not self._finished:
            raise DeviceError(self.name, "cannot configure while a measurement is running")
        try:
            cfg = TaggerConfig(mode, sync_divider, binning, tuple(offsets_s), sync_offset_s)
        except ValueError as exc:
            raise DeviceError(self.name, str(exc)) from None
        t = self._tagger
        if t is None:
            raise DeviceError(self.name, "not open")
        self._guard("event divider", t.setEventDivider, self.sync_channel, cfg.sync_divider)
        self._guard("input delay", t.setInputDelay, self.sync_channel,
                    int(round(cfg.sync_offset_s / PS)))
        for i, ch in enumerate(self.detectors):
            self._guard("input delay", t.setInputDelay, ch, int(round(cfg.offset(i + 1) / PS)))
        self._config = cfg
        self._sync_rate = 0.0          # measured again (once) for the new settings
        return cfg

    @property
    def config(self) -> TaggerConfig:
        return self._config

    @property
    def timing(self) -> Timing:
        cfg = self._config
        if self._sync_rate <= 0:       # once per configuration: decoder and records agree
            self._sync_rate = self.sync_rate_hz()
        period = 1.0 / self._sync_rate if self._sync_rate > 0 else None
        if cfg.mode == "T2":
            return Timing("T2", PS, sync_period=period)
        if period is None:
            raise DeviceError(self.name, "no sync signal: T3 needs the laser sync")
        eff = period * cfg.sync_divider
        bin_s = PS * 2 ** cfg.binning
        nbins = math.ceil(eff / bin_s - 1e-9)
        if nbins > 32768:
            raise DeviceError(self.name, f"T3: {eff * 1e9:g} ns sync period in "
                                         f"{bin_s * 1e12:g} ps bins needs {nbins} bins, more "
                                         "than a T3 record holds (32768): raise the binning")
        return Timing("T3", eff, nanotime_unit=bin_s, sync_period=eff, tcspc_num_bins=nbins)

    @property
    def record_type(self) -> str:
        return "GenericT3" if self._config.mode == "T3" else "GenericT2"

    def _rate(self, channels: list[int]) -> list[float]:
        api, t = self._api, self._tagger
        if t is None:
            raise DeviceError(self.name, "not open")
        meas = self._guard("count rate", api.Countrate, t, channels)
        self._guard("count rate", meas.startFor, int(0.1e12))
        self._guard("count rate", meas.waitUntilFinished)
        return [float(r) for r in self._guard("count rate", meas.getData)]

    def sync_rate_hz(self) -> float:
        return self._rate([self.sync_channel])[0] * self._config.sync_divider

    def count_rates_hz(self) -> list[float]:
        return self._rate(list(self.detectors))

    # -- measurement ------------------------------------------------------------------------

    def start(self, duration_s: float) -> None:
        if self._stream is not None and not self._finished:
            raise DeviceError(self.name, "a measurement is already running")
        if not (math.isfinite(duration_s) and duration_s > 0):
            raise DeviceError(self.name, f"measurement time must be positive seconds, not "
                                         f"{duration_s!r}")
        timing = self.timing
        self._encoder = Encoder(self.record_type, timing)
        self._t_origin: int | None = None
        self._last_sync: int | None = None
        self._n_sync = -1
        self._det_of = {ch: i + 1 for i, ch in enumerate(self.detectors)}
        channels = [*self.detectors, self.sync_channel]
        self._stream = self._guard("stream", self._api.TimeTagStream, self._tagger,
                                   self.n_max_events, channels)
        self._guard("stream", self._stream.startFor, int(round(duration_s / PS)))
        self._finished = False

    def read(self) -> np.ndarray | None:
        if self._finished:
            return None
        if self._stream is None:
            raise DeviceError(self.name, "read() before start()")
        stream = self._stream
        running = bool(self._guard("stream", stream.isRunning))
        buf = self._guard("stream", stream.getData)
        if int(buf.size) >= self.n_max_events:
            # Swabian's documentation of TimeTagStreamBuffer.size: a full buffer means events
            # were "likely discarded" between two reads
            self.close()
            raise DeviceError(self.name, f"stream buffer full ({self.n_max_events} events "
                                         "between two reads): events were dropped; "
                                         "measurement stopped")
        types = np.asarray(buf.getEventTypes())
        overflow = getattr(buf, "hasOverflows", False)
        if callable(overflow):          # a property in current releases, a method in some
            overflow = overflow()
        if bool(overflow) or np.any(types != TAG):
            missed = int(np.sum(buf.getMissedEvents()))
            self.close()
            raise DeviceError(self.name, f"overflow: the Time Tagger dropped events ({missed} "
                                         "missed; USB link saturated, lower the count rate); "
                                         "measurement stopped")
        ts = np.asarray(buf.getTimestamps(), dtype=np.int64)
        ch = np.asarray(buf.getChannels(), dtype=np.int64)
        if ts.size == 0:
            if not running:
                self._finished = True
                self._stream = None
                return None
            time.sleep(self._poll)
            return np.zeros(0, np.uint32)
        return self._encode(ts, ch)

    def _encode(self, ts: np.ndarray, ch: np.ndarray) -> np.ndarray:
        if self._t_origin is None:
            self._t_origin = int(ts[0])
        ts = ts - self._t_origin
        is_sync = ch == self.sync_channel
        det = np.zeros(ts.size, np.uint8)
        for channel, d in self._det_of.items():
            det[ch == channel] = d
        timing = self._encoder.timing
        if timing.mode == "T2":
            det[is_sync] = SYNC
            return self._encoder.encode(PhotonChunk(timing, ts, det))
        # T3 on the host: each photon gets the number of the last sync before it and its delay.
        sync_t = ts[is_sync]
        ph = ~is_sync
        idx = np.searchsorted(sync_t, ts[ph], side="right") - 1
        prev = np.where(idx >= 0, sync_t[np.maximum(idx, 0)], -1)
        if self._last_sync is not None:
            prev = np.where(idx >= 0, prev, self._last_sync)
        nsync = np.where(idx >= 0, self._n_sync + 1 + idx, self._n_sync)
        keep = prev >= 0 if self._last_sync is None else np.ones(idx.size, bool)
        keep &= nsync >= 0
        dtime = (ts[ph] - prev) // int(round(timing.nanotime_unit / PS))
        keep &= dtime < (timing.tcspc_num_bins or 32768)
        if sync_t.size:
            self._last_sync = int(sync_t[-1])
            self._n_sync += int(sync_t.size)
        chunk = PhotonChunk(timing, nsync[keep], det[ph][keep], dtime[keep].astype(np.uint16))
        return self._encoder.encode(chunk)

    def stop(self) -> None:
        if self._stream is not None:
            self._guard("stop", self._stream.stop)
        self._finished = True

    @property
    def running(self) -> bool:
        return self._stream is not None and not self._finished

    def get_device_info(self) -> dict[str, object]:
        return {"model": self.model, "serial_number": self.serial,
                "clock_period_ps": self.clock_ps,
                "detectors": list(self.detectors), "sync_channel": self.sync_channel}
