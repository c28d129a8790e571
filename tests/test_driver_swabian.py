"""The Swabian driver streaming from a stand-in of the Time Tagger API fed by the photon simulator
(the stand-in and the driver's calls are checked against Swabian's real package in
test_driver_swabian_api.py)."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest
from spad.drivers.swabian import SwabianTagger

from spad.errors import DeviceError
from spad.formats.records import Decoder, decode
from spad.photons import SYNC
from tests.picoquant_fake import simulated_records
from tests.swabian_standin import StandInAPI

HANG_GUARD_S = 30.0
"""A limit against a hang, not a measured duration: the fault's own message shows what ended
the wait, and a busy machine may make any poll late (tests never depend on its speed)."""


@pytest.fixture(scope="module")
def events():
    words, timing = simulated_records("T2", duration_s=0.01)
    chunk = decode(words, "HydraHarp2T2", timing)
    ch = np.where(chunk.detectors == SYNC, 3, chunk.detectors).astype(np.int32)
    return chunk.timestamps + 1_000_000, ch, 1 / timing.sync_period     # ps since power-up


def _api(events, **kw):
    ts, ch, rate = events
    return StandInAPI(ts, ch, {3: rate, 1: 3e4, 2: 2.9e4}, **kw)


def _collect(tagger):
    tagger.start(1.0)
    parts = []
    while (w := tagger.read()) is not None:
        parts.append(w)
    return np.concatenate(parts)


def test_t2_stream_keeps_every_event(events):
    api = _api(events)
    with SwabianTagger(api=api) as tagger:
        assert tagger.name == "Swabian Time Tagger Ultra 2138000XYZ"
        tagger.configure("T2", offsets_s=(0.0, 0.5e-9))
        words = _collect(tagger)
        chunk = Decoder(tagger.record_type, tagger.timing).decode(words)
        ts, ch, _ = events
        assert np.array_equal(chunk.timestamps, ts - ts[0])
        assert np.array_equal(chunk.detectors, np.where(ch == 3, SYNC, ch))
        assert tagger.count_rates_hz() == [3e4, 2.9e4]
    assert not tagger.is_opened() and len(api.freed) == 1


def test_t3_on_the_host_matches_the_t2_times(events):
    with SwabianTagger(api=_api(events, per_read=777)) as tagger:
        tagger.configure("T3", binning=3)
        words = _collect(tagger)
        timing = tagger.timing
        chunk = Decoder(tagger.record_type, timing).decode(words)
    ts, ch, rate = events
    t_ps = ts - ts[0]
    sync = t_ps[ch == 3]
    photons = t_ps[(ch != 3) & (t_ps >= sync[0])]
    assert len(chunk) == photons.size
    got = chunk.timestamps * round(1e12 / rate) + chunk.nanotimes.astype(np.int64) * 8
    assert np.all(np.abs(got - photons) < 8 + 1)
    assert np.all(chunk.nanotimes < timing.tcspc_num_bins)


def test_overflow_stops_with_a_clear_error(events):
    api = _api(events, per_read=1000)
    api.overflow_after = 3000
    tagger = SwabianTagger(api=api)
    got = []
    with pytest.raises(DeviceError, match="Swabian Time Tagger Ultra 2138000XYZ: overflow"):
        with tagger:
            tagger.configure("T2")
            tagger.start(1.0)
            while (w := tagger.read()) is not None:
                got.append(w)
    assert got and not tagger.is_opened()


def test_unplugged_mid_run_reported_within_2s(events):
    api = _api(events, per_read=10)
    api.hold = True  # still running when the cable is pulled, however fast the reads are
    with SwabianTagger(api=api) as tagger:
        tagger.configure("T2")
        tagger.start(60.0)
        threading.Timer(0.3, setattr, (api, "unplugged", True)).start()
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match="not connected"):
            while tagger.read() is not None:
                pass
        # the unplugging, not the 60 s run, ended it (its message); a hang guard only
        assert time.monotonic() - t0 < HANG_GUARD_S
        assert not tagger.is_opened()


def test_missing_software_is_one_clear_message(monkeypatch):
    for module in ("Swabian", "Swabian.TimeTagger", "TimeTagger"):
        monkeypatch.setitem(sys.modules, module, None)       # neither spelling imports
    with pytest.raises(DeviceError, match="pip install swabian-timetagger"):
        SwabianTagger().open()


def test_either_spelling_of_the_module_is_loaded(monkeypatch):
    import types

    from spad.drivers.swabian.api import load_api
    installer = types.ModuleType("TimeTagger")               # Swabian's installer's module
    monkeypatch.setitem(sys.modules, "Swabian", None)
    monkeypatch.setitem(sys.modules, "Swabian.TimeTagger", None)
    monkeypatch.setitem(sys.modules, "TimeTagger", installer)
    assert load_api("tagger") is installer


def test_no_device_and_wrong_serial_are_named(events):
    api = _api(events)
    api.devices = []
    with pytest.raises(DeviceError, match="Swabian Time Tagger: no Time Tagger connected"):
        SwabianTagger(api=api).open()
    api.devices = ["1234"]
    with pytest.raises(DeviceError, match="no Time Tagger with serial 99 connected .found 1234"):
        SwabianTagger(serial="99", api=api).open()


def test_missing_input_is_named(events):
    with pytest.raises(DeviceError, match=r"input\(s\) \[7\]"):
        SwabianTagger(api=_api(events), detectors=(1, 7), sync_channel=3).open()


def test_a_full_stream_buffer_stops_with_a_clear_error(events):
    api = _api(events, per_read=1000)
    tagger = SwabianTagger(api=api, n_max_events=1000)
    with pytest.raises(DeviceError, match="stream buffer full .1000 events between two reads"):
        with tagger:
            tagger.configure("T2")
            tagger.start(1.0)
            while tagger.read() is not None:
                pass
    assert not tagger.is_opened()
