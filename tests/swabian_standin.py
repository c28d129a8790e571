"""A stand-in for Swabian's Time Tagger API that serves events from the photon simulator
(Swabian's own virtual tagger needs a licence fetched from a connected device).

It cannot drift from the real API unnoticed: each class names what it stands for (``REAL``:
the class of ``Swabian.TimeTagger``, ``""`` for the module itself), and
tests/test_driver_swabian_api.py checks that every public name it offers exists there with
parameters of the same names, and that every call the driver made on it binds to the real
signature. Names in ``CONTROLS`` are the tests' own knobs, not part of the API.

Every public attribute the driver touches is logged in ``api.log`` as a :class:`Call`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class Call:
    """One use of the API by the driver: ``args is None`` for reading an attribute."""

    real: str                       # class of Swabian.TimeTagger ("" = the module)
    name: str
    args: tuple[Any, ...] | None
    kwargs: dict[str, Any] | None


class Recorded:
    """Logs every public attribute read or method call (except ``CONTROLS``) in ``_log``."""

    REAL: ClassVar[str] = ""
    CONTROLS: ClassVar[frozenset[str]] = frozenset()
    _log: list[Call]

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        cls = type(self)
        if name.startswith("_") or name in cls.CONTROLS or name in ("REAL", "CONTROLS"):
            return value
        log = object.__getattribute__(self, "_log")
        if not callable(value):
            log.append(Call(cls.REAL, name, None, None))
            return value

        def recorded(*args: Any, **kwargs: Any) -> Any:
            log.append(Call(cls.REAL, name, args, kwargs))
            return value(*args, **kwargs)

        return recorded


class StandInBuffer(Recorded):
    REAL = "TimeTagStreamBuffer"

    def __init__(self, log: list[Call], ts: np.ndarray, ch: np.ndarray, overflow: bool) -> None:
        self._log = log
        self._ts, self._ch = ts, ch
        self._overflow = overflow

    @property
    def size(self) -> int:
        return int(self._ts.size)

    @property
    def hasOverflows(self) -> bool:  # noqa: N802 - the API's names
        return self._overflow

    def getTimestamps(self) -> np.ndarray:  # noqa: N802
        return self._ts

    def getChannels(self) -> np.ndarray:  # noqa: N802
        return self._ch

    def getEventTypes(self) -> np.ndarray:  # noqa: N802
        return np.full(self._ts.size, 2 if self._overflow else 0, np.uint8)

    def getMissedEvents(self) -> np.ndarray:  # noqa: N802
        return np.full(self._ts.size, 7 if self._overflow else 0, np.uint16)


class StandInTagger(Recorded):
    REAL = "TimeTagger"
    CONTROLS = frozenset({"levels", "delays", "dividers"})

    def __init__(self, api: StandInAPI, serial: str) -> None:
        self._log = api.log
        self._serial = serial or "2138000XYZ"
        self.levels: dict[int, float] = {}
        self.delays: dict[int, int] = {}
        self.dividers: dict[int, int] = {}

    def getSerial(self) -> str:  # noqa: N802
        return self._serial

    def getModel(self) -> str:  # noqa: N802
        return "Time Tagger Ultra"

    def getPsPerClock(self) -> int:  # noqa: N802
        return 2000                 # the Ultra's 500 MHz clock

    def getChannelList(self, type: int = 0) -> list[int]:  # noqa: N802, A002
        return [1, 2, 3, 4]

    def setTriggerLevel(self, channel: int, voltage: float) -> None:  # noqa: N802
        self.levels[channel] = voltage

    def setInputDelay(self, channel: int, delay: int) -> None:  # noqa: N802
        self.delays[channel] = delay

    def setEventDivider(self, channel: int, divider: int) -> None:  # noqa: N802
        self.dividers[channel] = divider


class StandInStream(Recorded):
    REAL = "TimeTagStream"

    def __init__(self, api: StandInAPI, tagger: StandInTagger, n_max_events: int,
                 channels: list[int]) -> None:
        self._log = api.log
        self._api, self._channels = api, list(channels)
        self._pos, self._running, self._until = 0, False, 0.0

    def startFor(self, capture_duration: int, clear: bool = True) -> None:  # noqa: N802
        # Like the real stream, it runs for the whole duration (delivering nothing once its
        # events are used up) unless the loaded events are all it was started for.
        self._running = True
        self._until = (time.monotonic() + capture_duration * 1e-12) if self._api.hold else 0.0

    def isRunning(self) -> bool:  # noqa: N802
        return self._running and (self._pos < self._api.ts.size
                                  or time.monotonic() < self._until)

    def stop(self) -> None:
        self._running = False

    def getData(self) -> StandInBuffer:  # noqa: N802
        api = self._api
        if api.unplugged:
            raise RuntimeError("Time Tagger not connected (USB error)")
        n = min(api.per_read, api.ts.size - self._pos)
        sl = slice(self._pos, self._pos + n)
        self._pos += n
        overflow = api.overflow_after is not None and self._pos > api.overflow_after
        return StandInBuffer(api.log, api.ts[sl], api.ch[sl], overflow)


class StandInCountrate(Recorded):
    REAL = "Countrate"

    def __init__(self, api: StandInAPI, tagger: StandInTagger, channels: list[int]) -> None:
        self._log = api.log
        self._api, self._channels = api, list(channels)

    def startFor(self, capture_duration: int, clear: bool = True) -> None:  # noqa: N802
        pass

    def waitUntilFinished(self, timeout: int = -1) -> bool:  # noqa: N802
        return True

    def getData(self) -> np.ndarray:  # noqa: N802
        return np.array([self._api.rates.get(c, 0.0) for c in self._channels])


class StandInAPI(Recorded):
    """Module-like stand-in for ``Swabian.TimeTagger``: events ``ts_ps`` on ``channels``."""

    REAL = ""
    CONTROLS = frozenset({"ts", "ch", "rates", "per_read", "unplugged", "overflow_after",
                          "hold", "freed", "log", "devices"})

    def __init__(self, ts_ps: Any, channels: Any, rates: dict[int, float],
                 per_read: int = 50000) -> None:
        self._log = self.log = []
        self.ts = np.asarray(ts_ps, np.int64)
        self.ch = np.asarray(channels, np.int32)
        self.rates = rates
        self.per_read = per_read
        self.unplugged = False
        self.overflow_after: int | None = None
        self.hold = False           # keep running until the requested duration has passed
        self.freed: list[StandInTagger] = []
        self.devices = ["2138000XYZ"]

    def getVersion(self) -> str:  # noqa: N802
        return "2.22.6"

    def scanTimeTagger(self, include_model_name: bool = False) -> tuple[str, ...]:  # noqa: N802
        return tuple(self.devices)

    def createTimeTagger(self, serial: str = "", resolution: int = 0) -> StandInTagger:  # noqa: N802
        return StandInTagger(self, serial)

    def freeTimeTagger(self, tagger: StandInTagger) -> None:  # noqa: N802
        self.freed.append(tagger)

    def TimeTagStream(self, tagger: StandInTagger, n_max_events: int,  # noqa: N802
                      channels: list[int]) -> StandInStream:
        return StandInStream(self, tagger, n_max_events, channels)

    def Countrate(self, tagger: StandInTagger, channels: list[int]) -> StandInCountrate:  # noqa: N802
        return StandInCountrate(self, tagger, channels)


STAND_INS = (StandInAPI, StandInTagger, StandInStream, StandInCountrate, StandInBuffer)
