"""The desktop app's analysis mode: same results as ``spad analyze``, export, errors.

Runs offscreen (``QT_QPA_PLATFORM=offscreen``, set by ``make test`` and below).
"""

from __future__ import annotations

import csv
import json
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt5 import QtCore  # noqa: E402

from spad.app.cli import main as spad_main  # noqa: E402


@pytest.fixture(scope="module")
def session_dir(tmp_path_factory):
    """Two short simulated particles, a monomer and a dimer, with spectra."""
    d = tmp_path_factory.mktemp("session")
    for kind, seed in (("monomer", 3), ("dimer", 13)):
        assert spad_main(["simulate", "--particle", kind, "--seed", str(seed), "--duration",
                          "4", "-o", str(d / f"{kind}.h5")]) == 0
    return d


@pytest.fixture
def window(qtbot, tmp_path):
    from spad.gui.main_window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.IniFormat)
    w = MainWindow(settings)
    qtbot.addWidget(w)
    return w


def _wait_idle(qtbot, w) -> None:
    qtbot.waitUntil(lambda: w.worker is not None and w.worker.isFinished(), timeout=120_000)
    # the slots of the worker's last signals (classification) run on the GUI thread: deliver
    # what it queued, rather than wait a while and hope
    QtCore.QCoreApplication.sendPostedEvents()
    QtCore.QCoreApplication.processEvents()


def test_replay_shows_the_same_results_as_spad_analyze(qtbot, window, session_dir, capsys):
    window.open_paths([session_dir])
    _wait_idle(qtbot, window)
    files = sorted(str(p) for p in session_dir.glob("*.h5"))
    assert window.particles.paths() == files
    capsys.readouterr()
    assert spad_main(["analyze", *files, "--json", "--jobs", "1"]) == 0
    cli = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    gui = [json.loads(json.dumps(r)) for r in window.records()]
    assert gui == cli
    # what the panels show is that result
    labels = {r["file"]: r["classification"]["label"] for r in cli}
    window.particles.set_current(str(session_dir / "dimer.h5"))
    assert window.verdict.label.text().startswith(labels[str(session_dir / "dimer.h5")])
    assert window.table.rowCount() == 2
    rec = next(r for r in cli if r["file"].endswith("dimer.h5"))
    assert f"{rec['g2_zero']:.3f}" in window.g2.info.text()
    assert f"{rec['peak_ev']:.4f} eV" in window.spectrum.info.text()


def test_decay_of_each_intensity_state(qtbot, window, session_dir):
    """The Decay panel offers the decay of every state of the level grouping, with its fit."""
    window.open_paths([session_dir / "dimer.h5"])
    _wait_idle(qtbot, window)
    p = window.results[str(session_dir / "dimer.h5")].photons
    panel = window.decay
    names = [panel.choice.itemText(i) for i in range(panel.choice.count())]
    assert names[:2] == ["all photons", "bright (ON) state"]
    states = [n for n in names if n.startswith("state ")]
    assert len(states) == len(p.state_decays) == p.n_levels >= 2
    # choosing a state draws that state's decay, and its fit when it has one
    brightest = max(p.state_decays)
    panel.choice.setCurrentIndex(names.index(states[0]))
    y = panel.data.yData  # the data as given (getData is log10 on a log axis)
    counts = p.state_decays[brightest]
    assert y.sum() == pytest.approx(counts[counts > 0].sum())
    fit = p.state_lifetimes[brightest]
    assert fit is not None and "⟨τ⟩" in panel.info.text()
    assert f"{fit.tau_intensity_mean * 1e9:.2f}" in panel.info.text()
    # the photons of all states are the photons inside the levels: the whole decay at most
    total = sum(c.sum() for c in p.state_decays.values())
    assert 0.9 * p.decay_fitted.sum() <= total <= p.decay_fitted.sum()


def test_state_decays_without_fits_say_so(session_dir):
    """An analysis that did not fit the states' decays (spad analyze's default,
    AnalysisSettings.state_fits) offers them to the Decay panel as not fitted, not as too
    few photons."""
    from spad.analysis.particle import analyze_particle
    from spad.gui.analysis_mode import decay_sources

    p = analyze_particle(session_dir / "dimer.h5").photons
    assert p.state_decays and p.state_lifetimes == {}
    states = [(fit, title) for name, _, _, fit, title in decay_sources(p)
              if name.startswith("state ")]
    assert len(states) == len(p.state_decays)
    assert all(fit is None and "not fitted" in title for fit, title in states)


def test_decay_of_each_single_level(qtbot, window, session_dir):
    """The Decay panel offers each fitted single level, under a heading, with its fit."""
    from spad.analysis.level_decays import MAX_LEVEL_FITS

    window.open_paths([session_dir / "dimer.h5"])
    _wait_idle(qtbot, window)
    p = window.results[str(session_dir / "dimer.h5")].photons
    ld, b = p.level_decays, p.blinking
    assert ld is not None and 0 < len(ld.decays) <= MAX_LEVEL_FITS
    panel = window.decay
    names = [panel.choice.itemText(i) for i in range(panel.choice.count())]
    (heading,) = [i for i, n in enumerate(names) if n.startswith("— ")]
    assert "single levels" in names[heading] and "1,000 photons" in names[heading]
    if ld.n_skipped:
        assert f"of {ld.n_enough}" in names[heading]
    assert not panel.choice.model().item(heading).isEnabled()   # a heading, not a decay
    levels = names[heading + 1:]
    assert len(levels) == len(ld.decays) and all(n.startswith("level ") for n in levels)
    # the level with the most photons: its decay, its fit and the fit's quality
    i = max(ld.decays, key=lambda k: ld.photons[k])
    name = next(n for n in levels if n.startswith(f"level {i + 1}: "))
    assert f"{b.level_start[i]:.2f}-{b.level_end[i]:.2f} s" in name
    panel.choice.setCurrentIndex(names.index(name))
    assert panel.data.yData.sum() == pytest.approx(ld.decays[i].sum())
    fit = ld.fits[i]
    text = panel.info.text()
    assert f"⟨τ⟩ = {fit.tau_intensity_mean * 1e9:.2f}" in text
    assert f"χ²/dof = {fit.chi2_reduced:.2f}" in text
    assert f"Durbin-Watson {fit.durbin_watson:.2f}" in text
    assert 0 < panel.res_curve.yData.size <= fit.model.size   # the normalised residuals
    # choosing the heading keeps the decay shown
    panel.choice.setCurrentIndex(heading)
    assert panel.info.text() == text


@pytest.fixture(scope="module")
def bleached_bursting_file(tmp_path_factory):
    """A monomer that bleaches at 6 s, with two photon bursts added, as a particle file."""
    import dataclasses

    from spad.simulators.recipe import build
    from spad.simulators.stream import simulate

    from spad.particle import write_particle
    from tests.conftest import chunk_with_bursts

    em, det = build("monomer", 6, vary=True)
    chunks = list(simulate(dataclasses.replace(em, bleach_s=6.0), det, 9.0, 6,
                           chunk_s=1.0).chunks())
    # 4e5 cps: far above the emitter
    chunk = chunk_with_bursts(chunks, [(2.0, 0.01), (4.0, 0.02)], 4e5, seed=3)
    path = tmp_path_factory.mktemp("bursts") / "bleached.h5"
    write_particle(path, chunk)
    return path


def test_auto_roi_and_burst_removal_settable_as_spad_analyze(qtbot, window,
                                                             bleached_bursting_file, capsys):
    """Unchecked, the window gives ``spad analyze --no-auto-roi --keep-bursts``; checked again
    (the CLI's defaults: automatic ROI, bursts removed), ``spad analyze FILE``."""
    path = str(bleached_bursting_file)

    def cli(*options: str) -> dict:
        capsys.readouterr()
        assert spad_main(["analyze", path, "--json", "--jobs", "1", *options]) == 0
        (line,) = capsys.readouterr().out.splitlines()
        return json.loads(line)

    pl = window.particles
    assert pl.auto_roi.isChecked() and pl.remove_bursts.isChecked()  # the CLI's defaults
    pl.auto_roi.setChecked(False)
    pl.remove_bursts.setChecked(False)
    window.open_paths([path])
    _wait_idle(qtbot, window)
    (kept,) = [json.loads(json.dumps(r)) for r in window.records()]
    assert kept == cli("--no-auto-roi", "--keep-bursts")
    assert kept["roi_source"] == "whole" and kept["n_bursts"] == 0
    pl.auto_roi.setChecked(True)
    pl.remove_bursts.setChecked(True)
    window.analyse("all")
    _wait_idle(qtbot, window)
    (cut,) = [json.loads(json.dumps(r)) for r in window.records()]
    assert cut == cli()
    assert cut["roi_source"] == "auto" and abs(cut["roi_end_s"] - 6.0) < 0.1
    assert cut["n_bursts"] == 2 and cut["photons"] < kept["photons"]


def test_export_table_and_roi_reanalysis(qtbot, window, session_dir, tmp_path):
    path = str(session_dir / "monomer.h5")
    window.open_paths([path])
    _wait_idle(qtbot, window)
    out = window.export_csv(tmp_path / "table.csv")
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["file"] == path
    assert rows[0]["label"] in ("monomer", "dimer", "uncertain")
    whole = window.results[path].photons.n_photons
    window.trace.roi.setRegion((1.0, 2.0))
    window.trace.roi.sigRegionChangeFinished.emit(window.trace.roi)
    _wait_idle(qtbot, window)
    part = window.results[path]
    assert 0 < part.photons.n_photons < whole
    assert part.photons.duration_s < 1.01
    # a setting, as spad analyze --roi: the whole trace kept, the ROI's photons analysed
    assert part.photons.roi_source == "set"
    assert (part.photons.roi_start_s, part.photons.roi_end_s) == pytest.approx((1.0, 2.0), abs=0.02)
    assert part.photons.trace.bin_edges_s[-1] > 3.5
    # typed, as spad analyze --roi START:END; a bad entry changes nothing
    window.particles.set_current(path)
    pl = window.particles
    pl.roi.setText("2.5 to 4")
    pl.roi.returnPressed.emit()
    assert "red" in pl.roi.styleSheet() and window.worker.isFinished()
    pl.roi.setText("2.5:4")
    pl.roi.returnPressed.emit()
    _wait_idle(qtbot, window)
    typed = window.results[path]
    assert typed.photons.roi_source == "set" and typed.photons.duration_s < 1.51
    roi = (typed.photons.roi_start_s, typed.photons.roi_end_s)
    assert roi == pytest.approx((2.5, 4.0), abs=0.02)
    window.show_particle(path)
    assert pl.roi.text() == f"{typed.photons.roi_start_s:.2f}:{typed.photons.roi_end_s:.2f}"


def test_bad_file_is_reported_and_the_app_goes_on(qtbot, window, session_dir, tmp_path):
    bad = tmp_path / "broken.h5"
    bad.write_bytes(b"not a particle file at all")
    window.open_paths([bad, session_dir / "monomer.h5"])
    _wait_idle(qtbot, window)
    assert any("broken.h5" in e for e in window.errors)
    assert str(session_dir / "monomer.h5") in window.results
    assert "broken.h5" in window.status.text() or "analysed" in window.status.text()


def test_layout_and_settings_are_remembered(qtbot, tmp_path):
    from spad.gui.main_window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.IniFormat)
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.particles.bin_ms.setValue(20.0)
    w.particles.auto_roi.setChecked(False)
    w.docks["Levels"].hide()
    w.close()
    w2 = MainWindow(QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.IniFormat))
    qtbot.addWidget(w2)
    assert w2.particles.bin_ms.value() == 20.0
    assert not w2.particles.auto_roi.isChecked() and w2.particles.remove_bursts.isChecked()
    s = w2.run_settings()
    assert (s.trace_bin_s, s.auto_roi, s.remove_bursts) == (0.020, False, True)
    assert w2.docks["Levels"].isHidden()


def test_cli_knows_the_command_without_importing_qt():
    import subprocess
    import sys

    code = ("import sys; from spad.app.cli import build_parser; build_parser(); "
            "print('PyQt5' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_detectors_chosen_as_spad_analyze_also_for_a_region(qtbot, window, capsys):
    """A recording whose second detector is on the sync input: the window correlates the
    detectors ``spad analyze`` chooses, for the whole recording and for a region of it."""
    from tests.conftest import DATA

    path = str(DATA / "picoquant-sample-data" / "v30_t2.ptu")
    window.open_paths([path])
    _wait_idle(qtbot, window)
    assert spad_main(["analyze", path, "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert json.loads(json.dumps(window.records()[0])) == cli
    assert cli["notes"][0].startswith("detectors 0 and 1 correlated")
    window.trace.roi.setRegion((1.0, 4.0))
    window.trace.roi.sigRegionChangeFinished.emit(window.trace.roi)
    _wait_idle(qtbot, window)
    part = window.results[path]
    assert part.photons.notes[0] == cli["notes"][0]
    assert part.photons.g2_zero is not None and part.photons.duration_s < 3.01


def test_verdict_panel_shows_each_value_with_its_error(qtbot) -> None:
    """Issue 24 item 7: each evidence bar is labelled with the feature's value ± error, and
    evidence that carried none is marked."""
    from spad.analysis.classify import Classifier, FeatureModel
    from spad.gui.panels import VerdictPanel

    clf = Classifier([
        FeatureModel("g2_zero", "g2_zero_err", (0.1, 0.05), (0.55, 0.08), 3.0),
        FeatureModel("on_fraction", "on_fraction_err", (0.85, 0.08), (0.6, 0.1), 2.0)])
    c = clf.classify({"g2_zero": 0.52, "g2_zero_err": 0.02, "on_fraction": 0.7,
                      "on_fraction_err": 40.0})
    panel = VerdictPanel()
    qtbot.addWidget(panel)
    panel.show_verdict(c.label, c.probability, c.p_dimer, c.evidence, c.model, "",
                       c.inputs, c.no_information)
    ticks = dict(panel.plot.getPlotItem().getAxis("left")._tickLevels[0])
    assert ticks[0] == "g2(0)\n0.52 ± 0.02"
    assert ticks[1] == "ON fraction\n0.7 ± 40 (no info)"
    assert panel.label.text().startswith("dimer")


def test_verdict_panel_says_why_a_likely_class_is_uncertain(qtbot) -> None:
    """A stated p above 0.95 with the label uncertain (the blinking statistics alone, beyond
    their fitted weight) reads as a contradiction unless the panel says why: the reason's
    first clause is shown under P(dimer)."""
    from spad.analysis.classify import Classifier, FeatureModel
    from spad.gui.panels import VerdictPanel

    on = FeatureModel("on_fraction", "on_fraction_err", (0.88, 0.15), (0.56, 0.15), 1.3,
                      floor=0.05, steady=(0.2, 1.0, 0.15))
    clf = Classifier([on], slopes=(1.0, 4.0))
    c = clf.classify({"on_fraction": 0.6, "on_fraction_err": 0.05})   # +1.5 at weight 1
    assert c.label == "uncertain" and c.probability > 0.95
    panel = VerdictPanel()
    qtbot.addWidget(panel)
    panel.show_verdict(c.label, c.probability, c.p_dimer, c.evidence, c.model, "",
                       c.inputs, c.no_information, c.reason)
    assert panel.label.text() == f"uncertain  (dimer, p = {c.probability:.2f})"
    assert "uncertain: dimer is likelier" in panel.detail.text()
    assert "blinking statistics at their fitted weight" in panel.detail.text()
    panel.show_verdict("dimer", 0.99, 0.99, c.evidence, c.model, "", c.inputs,
                       c.no_information, "decided by g2(0)")
    assert "uncertain" not in panel.detail.text()


@pytest.mark.parametrize("size", [(300, 420), (385, 260)])
def test_verdict_panel_draws_every_label(qtbot, size) -> None:
    """pyqtgraph silently drops a tick label wider than its axis: seen in live mode, where
    "g2(0) gated … (no info)" and a long intensity-variance value went unlabelled. In a short
    dock (1366×768) two-line labels overlapped: there each label takes one line."""
    from PyQt5 import QtGui
    from spad.gui.panels import VerdictPanel

    evidence = {"g2_zero": 6.3, "g2_zero_gated": 0.0, "lifetime_ns": 0.38, "on_fraction": 1.8,
                "intensity_excess_var": 0.55, "fwhm_mev": 3.9, "shift_mev": 0.0}
    inputs = {"g2_zero": (0.544, 0.0259), "g2_zero_gated": (0.2549, 0.0277),
              "lifetime_ns": (13.91, 0.0364), "on_fraction": (0.5475, 0.05),
              "intensity_excess_var": (-0.001234, 0.0024303), "fwhm_mev": (89.83, 0.95),
              "shift_mev": (None, None)}
    panel = VerdictPanel()
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    panel.show_verdict("dimer", 1.0, 1.0, evidence, "photons (live)", "", inputs,
                       ["g2_zero_gated", "shift_mev"])
    qtbot.wait(50)
    ax = panel.plot.getPlotItem().getAxis("left")
    image = QtGui.QImage(400, 600, QtGui.QImage.Format_ARGB32)
    painter = QtGui.QPainter(image)
    try:
        painter.setFont(ax.style["tickFont"])
        _, _, texts = ax.generateDrawSpecs(painter)
    finally:
        painter.end()
    drawn = [text for _, _, text in texts]
    names = ["g2(0)", "g2(0) gated", "lifetime", "ON fraction", "intensity var.", "FWHM",
             "red shift"]
    two_lines = size[1] > 400
    assert len(drawn) == len(names)
    for name, text in zip(names, drawn, strict=True):
        assert text.startswith(name + ("\n" if two_lines else " ")), (name, text)


def test_decay_window_that_wraps_is_drawn_from_before_the_sync(qtbot) -> None:
    """A fit window starting 10 ns before a pulse at 3 ns runs 190-390 ns at a 200 ns period
    (seen in live mode): it is drawn from -10 ns to 190 ns, delays after the sync as a reader
    expects, with the fit on the same axis; a window from 0 is drawn as it is."""
    from types import SimpleNamespace

    import numpy as np
    from spad.gui.panels import DecayPanel

    panel = DecayPanel()
    qtbot.addWidget(panel)
    period, width = 200e-9, 0.128e-9
    edges = 190e-9 + np.arange(1563) * width
    centres = 0.5 * (edges[1:] + edges[:-1])
    counts = 1000.0 * np.exp(-np.clip(centres - 203e-9, 0, None) / 20e-9) + 2.0
    fit = SimpleNamespace(model=counts.copy(), fit_start=float(centres[0]),
                          fit_stop=float(centres[-1]))
    panel.show_decays([("all photons", edges, counts, fit, "all photons")], period)
    x, _ = panel.data.getData()
    xf, _ = panel.fit.getData()
    assert -10.0 < x.min() < -9.8 and 189.8 < x.max() < 190.0
    assert np.allclose(xf, x)
    panel.show_decays([("all photons", edges - 190e-9, counts, None, "all photons")], period)
    x, _ = panel.data.getData()
    assert 0 <= x.min() < 0.1
