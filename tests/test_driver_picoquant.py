"""The PicoQuant driver through ctypes into a fake vendor library compiled from C for the test.

The fake (tests/fake_picoquant/fakepq.c) exports the hhlib/mhlib/phlib functions the driver
calls, compiled against the project's own declarations of them (fakepq_decl.h; against
PicoQuant's published headers in tests/test_driver_picoquant_headers.py, opt-in), and
streams record words written by the photon simulator;
so the driver's real ctypes calls, buffers and flag handling are exercised, and what comes out
must decode to exactly the simulated photons.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from spad.drivers.picoquant import FAMILIES, HydraHarp, MultiHarp, PicoHarp
from spad.drivers.picoquant.errors import FifoOverrunError, PicoQuantLibraryError

from spad.errors import DeviceError
from spad.formats.records import Decoder
from tests.picoquant_fake import (
    CNTS_DROPPED,
    FIFOFULL,
    NO_DEVICE,
    SYNC_LOST,
    SYSERROR,
    UNPLUGGED,
    Fake,
    as_picoharp_t2,
    build,
    simulated_records,
)

HANG_GUARD_S = 30.0
"""A limit against a hang, not a measured duration: the fault's own message shows what ended
the wait, and a busy machine may make any poll late (tests never depend on its speed)."""


@pytest.fixture(scope="session")
def libs(tmp_path_factory):
    out = tmp_path_factory.mktemp("fakepq")
    return {fam: build(fam, out) for fam in FAMILIES}


@pytest.fixture(scope="session")
def t3_words():
    return simulated_records("T3", duration_s=0.2)


def _fake(libs, family, tmp_path, words=None) -> Fake:
    fake = Fake(libs[family])
    fake.device(base_ps=4.0 if family == "picoharp" else 1.0, sync_rate=5_000_000)
    fake.words_per_read(20000)
    if words is not None:
        fake.load(words, tmp_path)
    return fake


def _collect(tagger, duration_s=10.0):
    tagger.start(duration_s)
    parts = []
    while (w := tagger.read()) is not None:
        parts.append(w)
    return np.concatenate(parts) if parts else np.zeros(0, np.uint32)


@pytest.mark.parametrize("family, cls", [("hydraharp", HydraHarp), ("multiharp", MultiHarp)])
def test_t3_stream_is_the_simulated_stream(libs, tmp_path, t3_words, family, cls):
    words, timing = t3_words
    fake = _fake(libs, family, tmp_path, words)
    with cls(library=str(libs[family]), mode="T3") as tagger:
        assert tagger.is_opened() and tagger.serial == "1021234"
        tagger.configure("T3", binning=4, offsets_s=(0.0, 0.35e-9))
        got = _collect(tagger)
        assert np.array_equal(got, words)
        assert tagger.timing.timestamp_unit == pytest.approx(timing.timestamp_unit)
        assert tagger.timing.nanotime_unit == pytest.approx(timing.nanotime_unit)
        photons = Decoder(tagger.record_type, tagger.timing).decode(got)
        assert photons.n_photons > 1000
        assert tagger.count_rates_hz() == [30000.0, 29000.0]
        assert tagger.sync_rate_hz() == 5e6
    assert not tagger.is_opened()
    calls = fake.calls()
    trig = "SetSyncCFD" if family == "hydraharp" else "SetSyncEdgeTrg"
    expected = ["GetLibraryVersion", "OpenDevice", "Initialize", "GetHardwareInfo",
                "GetNumOfInputChannels", "GetBaseResolution"]
    expected += ["Calibrate"] if family == "hydraharp" else []
    expected += ["SetSyncDiv", trig]
    assert calls[:len(expected)] == expected
    assert calls.index("SetBinning") < calls.index("GetResolution") < calls.index("StartMeas")
    assert "StopMeas" in calls[calls.index("StartMeas"):] and calls[-1] == "CloseDevice"


def test_hydraharp_t2_and_mode_change_reinitialises(libs, tmp_path):
    words, _ = simulated_records("T2", duration_s=0.01)
    fake = _fake(libs, "hydraharp", tmp_path, words)
    with HydraHarp(library=str(libs["hydraharp"]), mode="T3") as tagger:
        tagger.configure("T2")
        assert tagger.record_type == "HydraHarp2T2"
        assert np.array_equal(_collect(tagger), words)
    assert fake.calls().count("Initialize") == 2


def test_picoharp_t2_records(libs, tmp_path):
    hh, timing = simulated_records("T2", duration_s=0.01)
    words, ph_timing = as_picoharp_t2(hh, timing)
    fake = _fake(libs, "picoharp", tmp_path, words)
    with PicoHarp(library=str(libs["picoharp"]), mode="T2", detectors=[1, 2]) as tagger:
        assert tagger.base_resolution_s == pytest.approx(4e-12)
        got = _collect(tagger)
        assert np.array_equal(got, words)
        assert tagger.timing.timestamp_unit == pytest.approx(ph_timing.timestamp_unit)
        with pytest.raises(DeviceError, match="no per-detector offsets"):
            tagger.configure("T2", offsets_s=(1e-9,))
    assert "SetSyncOffset" in fake.calls() and "Calibrate" in fake.calls()


@pytest.mark.parametrize("family, kind, message, error", [
    ("hydraharp", FIFOFULL, "FIFO overrun", FifoOverrunError),
    ("picoharp", FIFOFULL, "FIFO overrun", FifoOverrunError),
    ("hydraharp", SYNC_LOST, "sync signal lost", DeviceError),
    ("multiharp", SYSERROR, "system error", DeviceError),
    ("picoharp", SYSERROR, "system error", DeviceError),
    ("multiharp", CNTS_DROPPED, "counts dropped", DeviceError),
    ("hydraharp", UNPLUGGED, "ERROR_USB_BULKRD_FAIL", DeviceError),
])
def test_faults_stop_close_and_name_the_device(libs, tmp_path, t3_words, family, kind,
                                               message, error):
    words, _ = t3_words
    if family == "picoharp":
        words, _ = as_picoharp_t2(*simulated_records("T2", duration_s=0.005))
    fake = _fake(libs, family, tmp_path, words)
    fake.words_per_read(1000)
    tagger = FAMILIES[family](library=str(libs[family]),
                              mode="T2" if family == "picoharp" else "T3")
    got = []
    with pytest.raises(error, match=message) as info:
        with tagger:
            tagger.start(10.0)
            fake.inject(kind, after_reads=2)
            while (w := tagger.read()) is not None:
                got.append(w)
    assert tagger.name in str(info.value) and "1021234" in str(info.value)
    assert not tagger.is_opened()
    assert sum(len(g) for g in got) == 2 * 1000           # what came before is kept
    assert fake.calls()[-1] == "CloseDevice"


def test_unplugged_mid_run_reported_within_2s(libs, tmp_path, t3_words):
    fake = _fake(libs, "hydraharp", tmp_path, np.zeros(0, np.uint32))   # nothing arrives
    with HydraHarp(library=str(libs["hydraharp"])) as tagger:
        tagger.start(60.0)
        threading.Timer(0.3, fake.inject, (UNPLUGGED, 0)).start()
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match="HydraHarp 400 1021234"):
            while tagger.read() is not None:
                pass
        # the unplugging, not the 60 s run, ended it (its message); a hang guard only
        assert time.monotonic() - t0 < HANG_GUARD_S
        assert not tagger.is_opened()


def test_no_device_and_wrong_serial(libs, tmp_path):
    fake = _fake(libs, "hydraharp", tmp_path)
    with pytest.raises(DeviceError, match="no device with serial 999 .found 1021234"):
        HydraHarp(library=str(libs["hydraharp"]), serial="999").open()
    fake.inject(NO_DEVICE)
    t = HydraHarp(library=str(libs["hydraharp"]))
    with pytest.raises(DeviceError, match="no device found"):
        t.open()
    assert not t.is_opened()


def test_missing_or_wrong_library_is_one_clear_error(libs, tmp_path, monkeypatch):
    monkeypatch.delenv("SPAD_PICOQUANT_LIBRARY", raising=False)
    with pytest.raises(PicoQuantLibraryError, match="cannot load the vendor library"):
        HydraHarp(library=str(tmp_path / "nope.so")).open()
    with pytest.raises(PicoQuantLibraryError, match="has no function HH_"):
        HydraHarp(library=str(libs["multiharp"])).open()
    monkeypatch.setenv("SPAD_PICOQUANT_LIBRARY", str(libs["multiharp"]))
    _fake(libs, "multiharp", tmp_path)
    with MultiHarp() as tagger:                       # path from the environment
        assert tagger.get_device_info()["model"] == "MultiHarp 150 4P"


def test_impossible_settings_are_refused(libs, tmp_path):
    _fake(libs, "hydraharp", tmp_path)
    with HydraHarp(library=str(libs["hydraharp"])) as tagger:
        with pytest.raises(DeviceError, match="offset"):
            tagger.configure("T3", offsets_s=(200e-9,))
        with pytest.raises(DeviceError, match="sync divider"):
            tagger.configure("T3", sync_divider=32)
        with pytest.raises(DeviceError, match="measurement time"):
            tagger.start(0.0)
    with pytest.raises(DeviceError, match=r"input\(s\) \[5\]"):
        HydraHarp(library=str(libs["hydraharp"]), detectors=[1, 5]).open()


def test_the_drivers_stream_is_the_simulated_photons(libs, tmp_path, t3_words):
    """The driver's FIFO reads, decoded with its own record type and timing (as the
    acquisition engine's read loop does), give the photons the fake library holds."""
    words, timing = t3_words
    _fake(libs, "hydraharp", tmp_path, words)
    with HydraHarp(library=str(libs["hydraharp"])) as tagger:
        tagger.configure("T3", binning=4)
        tagger.start(10.0)
        read = []
        while (part := tagger.read()) is not None:
            read.append(part)
        tagger.stop()
        got = Decoder(tagger.record_type, tagger.timing).decode(np.concatenate(read))
    want = Decoder("HydraHarp2T3", timing).decode(words)
    assert np.array_equal(got.timestamps, want.timestamps)
    assert np.array_equal(got.nanotimes, want.nanotimes)
    assert np.array_equal(got.detectors, want.detectors)
