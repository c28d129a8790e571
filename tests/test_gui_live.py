"""The desktop app's live mode on the simulated rig: record a particle, see the verdict,
export the table; an injected device error is shown and the app stays alive; closing during a
recording finishes the file."""

from __future__ import annotations

import csv
import os

import h5py
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt5 import QtCore  # noqa: E402

from spad.errors import DeviceError  # noqa: E402


@pytest.fixture
def rig():
    from spad.app.acquisition.simrig import simulated_rig

    # fast simulated time (not the wall clock) keeps the test short; no camera: the EMCCD
    # simulation costs more than the rest
    with simulated_rig("dimer", seed=5, realtime=False, camera=False) as r:
        yield r


@pytest.fixture
def live(qtbot, tmp_path, rig):
    from spad.gui.live_mode import attach_live
    from spad.gui.main_window import MainWindow

    w = MainWindow(QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.IniFormat))
    qtbot.addWidget(w)
    lm = attach_live(w, rig=rig)
    lm.recorder.folder.setText(str(tmp_path / "session"))
    lm.recorder.duration.setValue(3.0)
    # Record waits for the warm-up of the analysis kernels (seconds from numba's cache)
    qtbot.waitUntil(lm.recorder.record.isEnabled, timeout=600_000)
    yield lm
    lm.shutdown()


def test_record_a_particle_see_the_verdict_export_the_table(qtbot, live, tmp_path):
    w = live.window
    live.recorder.name.setText("qd1")
    live.recorder.record.click()
    assert live.recording
    qtbot.waitUntil(lambda: not live.recording and live.recorder.record.isEnabled(),
                    timeout=120_000)
    assert w.errors == []
    paths = w.particles.paths()
    assert len(paths) == 1 and "qd1" in paths[0]
    result = w.results[paths[0]]
    label = result.classification.label
    assert w.verdict.label.text().startswith(label)
    assert label == "dimer"            # a simulated dimer, 3 s at ~40 kcps
    assert live.stats.summary()["refreshes"] > 0
    # the recording ended as asked (not in an error), and the display had the engine's live
    # histograms to draw (a GUI subclass of the engine once broke on a changed private hook)
    assert live.acq.snapshot().status == "done"
    at_s, acc = live.acq.gathered
    assert 0 < at_s <= 3.0 and acc.correlation.result().counts.sum() > 0
    # a live analysis draws its decay fit and the ON/OFF threshold (this fast recording may
    # end before the worker's first analysis does: one is made here from the same histograms)
    from spad.analysis.photon_analysis import finish

    p = finish(acc, live.acq.settings.analysis)
    assert p.lifetime_all is not None
    live._show_analysis(at_s, p)
    assert w.decay.info.text().startswith(f"live ({at_s:.0f} s)")
    assert len(w.decay.fit.getData()[0]) > 0
    assert live._threshold_rate == pytest.approx(p.blinking.threshold_rate)
    out = w.export_csv(tmp_path / "table.csv")
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert [r["label"] for r in rows] == [label]
    with h5py.File(paths[0], "r") as f:
        assert f["photon_data/timestamps"].shape[0] >= result.photons.n_photons > 0
        assert "user/acquisition" in f


def test_injected_device_error_is_shown_and_the_app_stays_alive(qtbot, live, rig, monkeypatch):
    w = live.window
    real_read = rig.tagger.read
    calls = {"n": 0}

    def failing_read():
        calls["n"] += 1
        if calls["n"] > 30:
            raise DeviceError(rig.tagger.name, "FIFO overrun")
        return real_read()

    monkeypatch.setattr(rig.tagger, "read", failing_read)
    live.recorder.record.click()
    qtbot.waitUntil(lambda: not live.recording and live.recorder.record.isEnabled(),
                    timeout=120_000)
    assert any("FIFO overrun" in e and rig.tagger.name in e for e in w.errors)
    assert "FIFO overrun" in w.status.text()
    assert w._last_dialog.isVisible()
    # the recording ended cleanly with its data, and the app goes on: record again
    path = live.acq.path
    with h5py.File(path, "r") as f:
        assert f["photon_data/timestamps"].shape[0] > 0
    monkeypatch.setattr(rig.tagger, "read", real_read)
    live.recorder.record.click()
    qtbot.waitUntil(lambda: not live.recording and live.recorder.record.isEnabled(),
                    timeout=120_000)
    assert live.acq.path != path and live.acq.wait(1).error is None


def test_closing_during_a_recording_finishes_the_file(qtbot, tmp_path):
    from spad.gui.live_mode import attach_live
    from spad.gui.main_window import MainWindow

    from spad.app.acquisition.simrig import simulated_rig

    with simulated_rig("monomer", seed=2, realtime=True, camera=False) as rig:
        w = MainWindow(QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.IniFormat))
        qtbot.addWidget(w)
        lm = attach_live(w, rig=rig)
        lm.recorder.folder.setText(str(tmp_path / "session"))
        lm.recorder.duration.setValue(600.0)
        lm.record()
        qtbot.waitUntil(lambda: lm.acq.snapshot().photons > 0, timeout=60_000)
        w.close()                      # stops the recording cleanly before the window goes
        outcome = lm.acq.wait(1)
        assert outcome is not None and outcome.stop_reason == "stopped"
        with h5py.File(outcome.path, "r") as f:
            assert f["photon_data/timestamps"].shape[0] > 0


def test_record_waits_for_the_warm_up_and_says_so(qtbot, tmp_path, rig):
    """The kernels are warmed before the first Record (the first particle once showed
    "g2(0) n/a" all along while they compiled): Record is disabled with a visible status until
    then."""
    from spad.gui.live_mode import attach_live
    from spad.gui.main_window import MainWindow

    w = MainWindow(QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.IniFormat))
    qtbot.addWidget(w)
    lm = attach_live(w, rig=rig)
    try:
        assert not lm.recorder.record.isEnabled()
        assert lm.recorder.state.text().startswith("preparing the analysis")
        assert "preparing the analysis" in w.status.text()
        qtbot.waitUntil(lm.recorder.record.isEnabled, timeout=600_000)
        assert lm.recorder.state.text() == "ready"
        assert w.status.text().endswith("press Record")
    finally:
        lm.shutdown()


def test_progress_bar_shows_the_particle_finished_after_an_early_stop(qtbot, live):
    """A particle ended before its longest duration (sure, Stop) once left the bar at the
    fraction of the time it took (7-9 %): it says finished, and why."""
    bar = live.recorder.progress
    live.recorder.duration.setValue(600.0)
    live.recorder.record.click()
    qtbot.waitUntil(lambda: live.acq.snapshot().elapsed_s > 0.5, timeout=60_000)
    live.recorder.stop.click()
    qtbot.waitUntil(lambda: not live.recording and live.recorder.record.isEnabled(),
                    timeout=120_000)
    assert bar.value() == bar.maximum()
    assert bar.text().startswith("finished: stopped after ")
    live.window.particles.set_current(live.window.particles.paths()[0])
    shown = live.window.bic.curve.getData()[0]
    assert shown is not None and len(shown) > 0                # the finished particle's BIC
    live.recorder.record.click()          # the next particle starts from an empty bar
    assert bar.text() != "" and not bar.text().startswith("finished")
    # and shows nothing of the particle before it: its level grouping neither
    assert live.window.bic.info.text() == "level grouping: n/a"
    live.abort()
    qtbot.waitUntil(lambda: not live.recording, timeout=120_000)
