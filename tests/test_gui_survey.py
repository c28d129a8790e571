"""The Survey tab (pytest-qt) and the live mode's varied simulated particles."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

from PyQt5 import QtCore  # noqa: E402

from spad.config import Rig, SlideSettings, StageSettings  # noqa: E402


@pytest.fixture
def window(qtbot, tmp_path):
    from spad.gui.main_window import MainWindow

    w = MainWindow(QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.IniFormat))
    qtbot.addWidget(w)
    yield w
    if w.survey is not None:
        w.survey.shutdown()


def _panel(window, tmp_path, n=3, seed=4, **slide):
    from spad.gui.survey import attach_survey

    from spad.app.rig import open_rig

    def factory():
        cm = open_rig(Rig(stage=StageSettings(), slide=SlideSettings(
            n_particles=n, size_m=3e-6, seed=seed, **slide)), realtime=False)
        return cm.__enter__(), lambda: cm.__exit__(None, None, None)

    panel = attach_survey(window)
    panel.rig_factory = factory
    panel.folder.setText(str(tmp_path / "survey"))
    panel.cap.setValue(3)
    return panel


def test_survey_tab_scans_finds_records_and_colours_by_verdict(qtbot, window, tmp_path):
    from spad.gui.panels import LABEL_COLOURS
    from spad.gui.survey import candidate_colour

    panel = _panel(window, tmp_path)
    assert "Survey" in window.docks
    with qtbot.waitSignal(panel.finished, timeout=240_000):
        panel.start_button.click()
        assert not panel.start_button.isEnabled() and panel.stop_button.isEnabled()
    s = panel.survey
    assert s.report()["done"] == 3
    assert panel.image.image is not None and panel.image.image.shape == s.area.shape
    assert panel.queue.count() == 3
    # every candidate drawn in its verdict's colour
    brushes = [b.color().getRgb()[:3] for b in panel.spots.data["brush"]]
    assert brushes == [LABEL_COLOURS[c.verdict] for c in s.candidates]
    assert all(candidate_colour(c) in LABEL_COLOURS.values() for c in s.candidates)
    # the population: counts summed to the particles
    assert sum(int(t.split()[-1]) for t in panel.counts.text()[10:].split(", ")) == 3
    # and histogram bars for the verdicts' peak energies: the simulated camera runs on the
    # tagger's simulated clock, so each 3-s particle has its spectrum (two 1-s frames) however
    # fast the machine is
    assert all(r["peak_ev"] is not None for r in s.records.values())
    panel._show_population()
    assert len(panel.population.items) == 2 * len({r["classification"]["label"]
                                                    for r in s.records.values()})
    assert panel.start_button.isEnabled() and not panel.stop_button.isEnabled()


def test_pause_holds_before_the_next_particle_and_stop_leaves_the_rest(qtbot, window,
                                                                        tmp_path):
    panel = _panel(window, tmp_path, n=3, seed=6)
    panel.start_button.click()
    panel.toggle_pause()                       # during the scan: hold before particle 1
    assert panel.pause_button.text() == "Resume"
    qtbot.waitUntil(lambda: bool(panel.survey.candidates) and panel.status.text() == "paused",
                    timeout=120_000)
    assert not list((tmp_path / "survey").glob("p*.h5"))
    # the queue is edited while paused: the last candidate moves to the front
    last = panel.survey.candidates[-1].id
    panel.queue.setCurrentRow(2)
    panel.move_selected(-2)
    assert panel.survey.candidates[0].id == last
    visits = []
    panel.survey.add_callback(lambda ev: visits.append(ev.data.id) if ev.kind == "visit"
                              else None)
    with qtbot.waitSignal(panel.finished, timeout=240_000):
        panel.toggle_pause()
        # once its recording runs (a stop while centring would leave it to do, unrecorded)
        qtbot.waitUntil(lambda: panel.survey.acquisition is not None, timeout=60_000)
        panel.stop()                          # finish this particle, then stop
    rep = panel.survey.report()
    assert visits == [last] and rep["done"] == 1 and rep["pending"] == 2


def test_remove_and_click_to_add_edit_the_queue(qtbot, window, tmp_path):
    from spad.app.survey import Survey, SurveySettings
    from spad.app.survey_scan import Candidate

    panel = _panel(window, tmp_path)
    panel.rig, panel._release = panel.rig_factory()
    panel.survey = Survey(panel.rig, tmp_path / "s", SurveySettings())
    panel.survey.add_callback(panel.bridge.event.emit)
    panel.survey.set_candidates([Candidate(1, 1e-6, 1e-6), Candidate(2, 2e-6, 2e-6)])
    assert panel.queue.count() == 2
    panel.queue.setCurrentRow(0)
    panel.remove_selected()
    assert [c.id for c in panel.survey.candidates] == [2] and panel.queue.count() == 1
    c = panel.survey.add_candidate(3e-6, 1e-6)
    assert c.id == 3 and panel.queue.count() == 2


def test_live_mode_simulated_rig_records_different_particles():
    from spad.gui.live_mode import open_rig

    rig, release = open_rig(None, seed=7)
    try:
        kinds, peaks = [], []
        for _ in range(5):
            rig.tagger.start(1.0)
            rig.tagger.stop()
            kinds.append(rig.tagger.particle.kind)
            peaks.append(rig.camera.scene.lines[0].peak_ev)
    finally:
        release()
    assert len(set(peaks)) == 5 and set(kinds) == {"monomer", "dimer"}


def test_the_apps_live_window_has_the_survey_tab(qtbot, tmp_path):
    from spad.gui.app import make_window

    w = make_window([], None, QtCore.QSettings(str(tmp_path / "gui.ini"),
                                               QtCore.QSettings.IniFormat))
    qtbot.addWidget(w)
    assert w.survey is not None and w.docks["Survey"].widget() is w.survey
    assert w.live is not None and getattr(w.live.rig, "stage", None) is None
    w.close()            # releases the live rig; the survey tab opened none
    assert w.survey.rig is None
