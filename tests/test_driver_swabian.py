"""The Swabian driver against a stand-in of the TimeTagger API fed by the photon simulator."""

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
from tests.swabian_standin import FakeTimeTaggerAPI


@pytest.fixture(scope="module")
def events():
    words, timing = simulated_records("T2", duration_s=0.01)
    chunk = decode(words, "HydraHarp2T2", timing)
    ch = np.where(chunk.detectors == SYNC, 3, chunk.detectors).astype(np.int32)
    return chunk.timestamps + 1_000_000, ch, 1 / timing.sync_period     # ps since power-up


def _api(events, **kw):
    ts, ch, rate = events
    return FakeTimeTaggerAPI(ts, ch, {3: rate, 1: 3e4, 2: 2.9e4}, **kw)


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
        assert time.monotonic() - t0 < 2.0
        assert not tagger.is_opened()


def test_missing_software_is_one_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "TimeTagger", None)     # import fails
    with pytest.raises(DeviceError, match="pip install swabian-timetagger"):
        SwabianTagger().open()


def test_missing_input_is_named(events):
    with pytest.raises(DeviceError, match=r"input\(s\) \[7\]"):
        SwabianTagger(api=_api(events), detectors=(1, 7), sync_channel=3).open()
