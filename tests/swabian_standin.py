"""A stand-in for Swabian's ``TimeTagger`` module: the calls spad's driver makes, serving events
from the photon simulator (Swabian's own virtual tagger needs a licence from a device)."""

from __future__ import annotations

import time

import numpy as np


class _Buffer:
    def __init__(self, ts, ch, overflow=False):
        self._ts, self._ch = ts, ch
        self.size = ts.size
        self.hasOverflows = overflow
        self._types = np.full(ts.size, 2 if overflow else 0, np.int8)

    def getTimestamps(self):  # noqa: N802 - the API's names
        return self._ts

    def getChannels(self):  # noqa: N802
        return self._ch

    def getEventTypes(self):  # noqa: N802
        return self._types

    def getMissedEvents(self):  # noqa: N802
        return np.full(self.size, 7 if self.hasOverflows else 0, np.uint16)


class FakeTagger:
    def __init__(self, api, serial):
        self.api, self.serial = api, serial or "2138000XYZ"
        self.levels, self.delays, self.dividers = {}, {}, {}

    def getSerial(self):  # noqa: N802
        return self.serial

    def getModel(self):  # noqa: N802
        return "Time Tagger Ultra"

    def getChannelList(self):  # noqa: N802
        return [1, 2, 3, 4]

    def setTriggerLevel(self, channel, voltage):  # noqa: N802
        self.levels[channel] = voltage

    def setInputDelay(self, channel, delay):  # noqa: N802
        self.delays[channel] = delay

    def setEventDivider(self, channel, divider):  # noqa: N802
        self.dividers[channel] = divider


class FakeStream:
    def __init__(self, api, tagger, n_max_events, channels):
        self.api, self.channels = api, list(channels)
        self.pos, self.running = 0, False
        self.until = 0.0

    def startFor(self, duration_ps):  # noqa: N802
        # Like the real stream, it runs for the whole duration (delivering nothing once its
        # events are used up) unless the loaded events are all it was started for.
        self.running = True
        self.until = time.monotonic() + duration_ps * 1e-12 if self.api.hold else 0.0

    def isRunning(self):  # noqa: N802
        return self.running and (self.pos < self.api.ts.size or time.monotonic() < self.until)

    def stop(self):
        self.running = False

    def getData(self):  # noqa: N802
        api = self.api
        if api.unplugged:
            raise RuntimeError("Time Tagger not connected (USB error)")
        n = min(api.per_read, api.ts.size - self.pos)
        sl = slice(self.pos, self.pos + n)
        self.pos += n
        overflow = api.overflow_after is not None and self.pos > api.overflow_after
        return _Buffer(api.ts[sl], api.ch[sl], overflow)


class FakeCountrate:
    def __init__(self, api, tagger, channels):
        self.api, self.channels = api, channels

    def startFor(self, duration_ps):  # noqa: N802
        pass

    def waitUntilFinished(self):  # noqa: N802
        pass

    def getData(self):  # noqa: N802
        return np.array([self.api.rates.get(c, 0.0) for c in self.channels])


class FakeTimeTaggerAPI:
    """Module-like object with createTimeTagger, freeTimeTagger, TimeTagStream, Countrate."""

    def __init__(self, ts_ps, channels, rates, per_read=50000):
        self.ts = np.asarray(ts_ps, np.int64)
        self.ch = np.asarray(channels, np.int32)
        self.rates = rates
        self.per_read = per_read
        self.unplugged = False
        self.overflow_after = None
        self.hold = False  # keep running until the requested duration has passed
        self.freed = []

    def createTimeTagger(self, serial=""):  # noqa: N802
        return FakeTagger(self, serial)

    def freeTimeTagger(self, tagger):  # noqa: N802
        self.freed.append(tagger)

    def TimeTagStream(self, tagger, n_max_events, channels):  # noqa: N802
        return FakeStream(self, tagger, n_max_events, channels)

    def Countrate(self, tagger, channels):  # noqa: N802
        return FakeCountrate(self, tagger, channels)

