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
    from gui.main_window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.IniFormat)
    w = MainWindow(settings)
    qtbot.addWidget(w)
    return w


def _wait_idle(qtbot, w) -> None:
    qtbot.waitUntil(lambda: w.worker is not None and w.worker.isFinished(), timeout=120_000)
    qtbot.wait(50)  # the finished signal's slot (classification) runs on the GUI thread


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
    assert any("1.00-2.00 s" in n for n in part.notes)


def test_bad_file_is_reported_and_the_app_goes_on(qtbot, window, session_dir, tmp_path):
    bad = tmp_path / "broken.h5"
    bad.write_bytes(b"not a particle file at all")
    window.open_paths([bad, session_dir / "monomer.h5"])
    _wait_idle(qtbot, window)
    assert any("broken.h5" in e for e in window.errors)
    assert str(session_dir / "monomer.h5") in window.results
    assert "broken.h5" in window.status.text() or "analysed" in window.status.text()


def test_layout_and_settings_are_remembered(qtbot, tmp_path):
    from gui.main_window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.IniFormat)
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.particles.bin_ms.setValue(20.0)
    w.docks["Levels"].hide()
    w.close()
    w2 = MainWindow(QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.IniFormat))
    qtbot.addWidget(w2)
    assert w2.particles.bin_ms.value() == 20.0
    assert w2.docks["Levels"].isHidden()


def test_cli_knows_the_command_without_importing_qt():
    import subprocess
    import sys

    code = ("import sys; from spad.app.cli import build_parser; build_parser(); "
            "print('PyQt5' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
