"""The acquisition engine: live = replay, device faults, start/stop, sessions, the CLI."""

from __future__ import annotations

import json
import time

import h5py
import numpy as np
import pytest
from spad.analysis.particle import analyze_particle, classify_session
from spad.analysis.photon_analysis import finish

import spad
from spad.app.acquisition import Acquisition, AcquisitionSettings, Session
from spad.app.acquisition.engine import LivePipeline
from spad.app.acquisition.simrig import simulated_rig
from spad.app.cli import main
from spad.errors import DeviceError


def _analyze(path) -> dict:
    r = analyze_particle(path)
    classify_session([r])
    return r.record()


def test_live_result_equals_spad_analyze_and_replay_with_any_chunking(tmp_path) -> None:
    path = tmp_path / "p.h5"
    with simulated_rig("dimer", seed=5, realtime=False, camera=False) as rig:
        out = Acquisition(rig, AcquisitionSettings(duration_s=3.0), path=path).run()
    assert out.stop_reason == "duration" and out.error is None
    live = out.result.record()
    assert live == _analyze(path)
    assert live["classification"]["label"] == "dimer"
    # the same photons fed in random-sized pieces give the same result
    rng = np.random.default_rng(1)
    with spad.open(path) as reader:
        photons = reader.read().photons
    pipe = LivePipeline(AcquisitionSettings())
    i = 0
    while i < len(photons.timestamps):
        n = int(rng.integers(1, 60_000))
        pipe.feed(photons.select(np.arange(len(photons.timestamps))[i:i + n]))
        if pipe.due():
            pipe.update()
        i += n
    assert pipe.final(path).record() == live
    # live updates leave the FLID out (it grows with the recording like the trace); the
    # final result has it
    _, (_, gathered) = pipe.begin_update()
    assert gathered.flid is None and finish(gathered, pipe.settings.analysis).flid is None
    assert pipe.final(path).photons.flid is not None


def test_compressed_recording_holds_the_same_photons_in_fewer_bytes(tmp_path) -> None:
    paths = {}
    for compress in (False, True):
        paths[compress] = tmp_path / f"p{int(compress)}.h5"
        with simulated_rig("monomer", seed=4, realtime=False, camera=False) as rig:
            out = Acquisition(rig, AcquisitionSettings(duration_s=2.0, compress=compress),
                              path=paths[compress]).run()
        assert out.error is None
    with h5py.File(paths[False]) as plain, h5py.File(paths[True]) as packed:
        for name in ("timestamps", "detectors", "nanotimes"):
            a, b = plain[f"photon_data/{name}"], packed[f"photon_data/{name}"]
            assert a.compression is None and b.compression == "gzip" and b.shuffle
            np.testing.assert_array_equal(a[:], b[:])
        assert packed["photon_data/timestamps"].id.get_storage_size() < (
            0.5 * plain["photon_data/timestamps"].id.get_storage_size())
    assert _analyze(paths[True])["photons"] == _analyze(paths[False])["photons"]


def test_session_names_files_and_logs_start_and_end(tmp_path) -> None:
    session = Session(tmp_path / "s")
    with simulated_rig("monomer", seed=2, realtime=False, camera=False) as rig:
        Acquisition(rig, AcquisitionSettings(duration_s=1.5), session=session).run()
    with simulated_rig("monomer", seed=3, realtime=False, camera=False) as rig:
        Acquisition(rig, AcquisitionSettings(duration_s=1.5), session=Session(tmp_path / "s")
                    ).run()
    parts = Session(tmp_path / "s").particles()
    assert sorted(parts) == ["p001", "p002"]           # resumed: numbering continues
    for name, p in parts.items():
        assert (tmp_path / "s" / p["file"]).name.startswith(name + "_")
        assert p["stop_reason"] == "duration" and p["verdict"]["label"] in (
            "monomer", "uncertain")
        assert p["settings"]["duration_s"] == 1.5
    events = [e["event"] for e in Session(tmp_path / "s").entries()]
    assert events.count("settings") == 1            # settings logged once: they did not change


def test_spectrum_frames_and_settings_are_in_the_file(tmp_path) -> None:
    path = tmp_path / "p.h5"
    with simulated_rig("monomer", seed=1, realtime=True) as rig:
        out = Acquisition(rig, AcquisitionSettings(duration_s=2.0, exposure_s=0.3),
                          path=path).run()
    assert out.state.frames >= 3
    with h5py.File(path, "r") as f:
        acq = f["user/acquisition"]
        assert acq["tagger/record_type"][()].decode() == "HydraHarp2T3"
        assert acq["camera/exposure_s"][()] == pytest.approx(0.3)
        assert "start_time" in acq and acq["final/stop_reason"][()].decode() == "duration"
        assert f["user/spectrum/frames"].shape[0] == out.state.frames
    assert out.result.spectrum is not None and 580 < out.result.record()["peak_nm"] < 680


def test_swmr_reader_sees_the_file_grow_while_it_is_written(tmp_path) -> None:
    path = tmp_path / "p.h5"
    with simulated_rig("monomer", seed=4, realtime=True, camera=False) as rig:
        acq = Acquisition(rig, AcquisitionSettings(duration_s=600.0), path=path)
        acq.start()
        while acq.snapshot().photons == 0:
            time.sleep(0.05)
        seen = []
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            ts = f["photon_data/timestamps"]
            # until the reader has seen the file grow twice, however slow the machine is; then
            # the recording is stopped (a readiness signal, not a time)
            while len(set(seen)) < 3 and not acq.finished:
                ts.refresh()
                seen.append(ts.shape[0])
                time.sleep(0.05)
            assert np.all(np.diff(f["photon_data/timestamps"][:seen[-1]]) >= 0)
        acq.stop()
        out = acq.wait()
    assert seen[-1] > seen[0] > 0
    assert out.state.photons >= seen[-1]


class _Faulty:
    """Wraps a device; ``method`` raises ``exc`` from its ``after``-th call on."""

    def __init__(self, device, method: str, after: int, exc: Exception) -> None:
        self._d, self._m, self._after, self._exc, self._n = device, method, after, exc, 0

    def __getattr__(self, name):
        attr = getattr(self._d, name)
        if name != self._m:
            return attr

        def call(*a, **k):
            self._n += 1
            if self._n >= self._after:
                raise self._exc
            return attr(*a, **k)
        return call


@pytest.mark.parametrize("device, method, exc, named", [
    ("tagger", "read", DeviceError("HydraHarp 400 #0", "FIFO full (overrun)"), "HydraHarp"),
    ("tagger", "read", DeviceError("HydraHarp 400 #0", "sync signal lost"), "sync"),
    ("tagger", "read", ConnectionResetError(104, "USB device disconnected"),
     "Simulated HydraHarp"),
    ("camera", "read_multiple_images", DeviceError("iXon 897", "no frame within 3 s"), "iXon"),
    ("spectrograph", "get_centre_wavelength",
     DeviceError("Acton SP2300 on COM3", "no answer"), "Acton"),
])
def test_device_fault_ends_the_particle_cleanly_with_its_data(tmp_path, device, method, exc,
                                                              named) -> None:
    path = tmp_path / "p.h5"
    with simulated_rig("monomer", seed=6, realtime=True) as rig:
        after = {"tagger": 25, "camera": 40, "spectrograph": 3}[device]
        setattr(rig, device, _Faulty(getattr(rig, device), method, after, exc))
        acq = Acquisition(rig, AcquisitionSettings(duration_s=20.0, exposure_s=0.2), path=path)
        events = []
        acq.add_callback(events.append)
        out = acq.run()
    assert out.stop_reason == "device error"
    assert named in out.error and out.state.error == out.error
    assert any(e.kind == "error" for e in events)
    assert 0 < out.state.elapsed_s < 15
    with spad.open(path) as reader:
        m = reader.read()
    assert len(m.photons.timestamps) == out.state.photons + 0 and out.state.photons > 1000
    with h5py.File(path, "r") as f:
        assert f["user/acquisition/final/stop_reason"][()].decode() == "device error"
    assert out.result is not None and out.result.photons.n_photons > 0


def test_stop_and_abort_from_another_thread(tmp_path) -> None:
    for how in ("stop", "abort"):
        path = tmp_path / f"{how}.h5"
        with simulated_rig("monomer", seed=7, realtime=True, camera=False) as rig:
            acq = Acquisition(rig, AcquisitionSettings(duration_s=30.0), path=path)
            acq.start()
            while acq.snapshot().elapsed_s < 1.0:
                time.sleep(0.05)
            getattr(acq, how)()
            out = acq.wait(20)
        assert out.stop_reason == ("stopped" if how == "stop" else "aborted")
        assert (out.result is None) == (how == "abort")
        assert out.state.elapsed_s < 30    # stopped, not ended by its duration
        with spad.open(path) as reader:
            assert len(reader.read().photons.timestamps) == out.state.photons


def test_until_confident_stops_early(tmp_path) -> None:
    # Deterministic whatever the machine's load: the photons come as fast as they are
    # simulated (no wall clock), and every live analysis runs before the next chunk is read
    # (not in the worker, which a busy machine would make late and skip updates)
    path = tmp_path / "p.h5"
    with simulated_rig("dimer", seed=8, realtime=False, camera=False) as rig:
        acq = Acquisition(rig, AcquisitionSettings(duration_s=30.0, until_confident=0.9),
                          path=path, analysis_worker=False)
        out = acq.run()
    assert out.stop_reason == "confident"
    # the last live analysis is published for a display (fits, threshold, gated g2)
    at_s, photons = acq.analysed
    assert 0 < at_s <= out.state.elapsed_s and photons.lifetime_all is not None
    assert photons.trace is None   # it grows with the recording; no live view needs it
    assert out.state.elapsed_s < 30 and out.result.classification.label == "dimer"


def test_cli_acquire_then_replay_gives_spad_analyze_result(tmp_path, capsys) -> None:
    folder = tmp_path / "session"
    assert main(["acquire", "-o", str(folder), "--duration", "2", "--particle", "dimer",
                 "--seed", "9", "--exposure", "0.5", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    files = sorted(folder.glob("p001_*.h5"))
    assert len(files) == 1 and rec["file"] == str(files[0])
    assert (folder / "session.jsonl").exists()
    assert main(["replay", str(files[0]), "--json"]) == 0
    replayed = json.loads(capsys.readouterr().out)
    assert main(["analyze", str(files[0]), "--json"]) == 0
    analyzed = json.loads(capsys.readouterr().out)
    assert replayed == analyzed == rec


def test_cli_acquire_refuses_an_existing_file_and_bad_probability(tmp_path, capsys) -> None:
    f = tmp_path / "x.h5"
    f.write_bytes(b"")
    assert main(["acquire", "-o", str(f), "--duration", "1"]) == 2
    assert "file exists" in capsys.readouterr().err
    assert main(["acquire", "-o", str(tmp_path / "y.h5"), "--until-confident", "2"]) == 2
    assert "probability" in capsys.readouterr().err


def test_events_queue_is_bounded_and_keeps_the_latest(tmp_path, monkeypatch) -> None:
    # a program that follows snapshot() or the callbacks and never reads acq.events must not
    # grow by an event a second for as long as it records
    from spad.app.acquisition import engine

    monkeypatch.setattr(engine, "EVENTS_KEPT", 10)
    with simulated_rig("monomer", seed=2, realtime=False, camera=False) as rig:
        acq = Acquisition(rig, AcquisitionSettings(duration_s=2.0, update_s=0.001),
                          path=tmp_path / "p.h5")
        acq.run()
    events = []
    while not acq.events.empty():
        events.append(acq.events.get_nowait())
    assert len(events) == 10
    assert events[-1].kind == "finished" and events[0].kind == "progress"


def test_mmap_threshold_is_fixed_on_glibc() -> None:
    # spad's CLI (and so `spad acquire`, `spad gui`) fixes glibc's mmap threshold, so that the
    # copies a long recording makes of its growing arrays do not pile up in the heap
    import platform
    import sys

    from spad.app.memory import fix_mmap_threshold

    expected = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert fix_mmap_threshold() is expected
