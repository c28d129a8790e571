"""The desktop app's layout and plots: the window fits a 1366x768 laptop and a 1920x1080
monitor, the dock layout comes back, levels are drawn as segments, ΔBIC against the best,
whole particle counts on count axes, and a clear error where Qt cannot open a window."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt5 import QtCore, QtWidgets  # noqa: E402

from spad.errors import SpadError  # noqa: E402

SCREENS = {"laptop": QtCore.QRect(0, 0, 1366, 768 - 40), "monitor": QtCore.QRect(0, 0, 1920,
                                                                                  1080 - 40)}
"""Available areas of the two screens (a 40 px task bar taken off)."""


@pytest.fixture
def settings(tmp_path):
    return QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.IniFormat)


@pytest.fixture
def rig():
    from spad.app.acquisition.simrig import simulated_rig

    with simulated_rig("monomer", seed=3, realtime=False, camera=False) as r:
        yield r


def _window(qtbot, settings, rig=None):
    from spad.gui.live_mode import attach_live
    from spad.gui.main_window import MainWindow

    w = MainWindow(settings)
    qtbot.addWidget(w)
    if rig is not None:
        attach_live(w, rig=rig)
    return w


@pytest.mark.parametrize("mode", ["analysis", "live"])
def test_window_fits_a_laptop_and_a_lab_monitor(qtbot, settings, rig, mode):
    """It once needed 1117 px of height. Now its smallest size fits a 1366x768 screen with a
    task bar and a title bar, it opens inside the screen, and at that size no panel is
    squeezed below its own minimum (where Qt overlaps them, as the Particles panel's progress
    bar once did the Verdict dock's title)."""
    from spad.gui.main_window import FRAME_PX, initial_geometry

    w = _window(qtbot, settings, rig if mode == "live" else None)
    try:
        hint = w.minimumSizeHint()
        laptop = SCREENS["laptop"]
        assert hint.width() <= laptop.width() and hint.height() <= laptop.height() - FRAME_PX
        for name, screen in SCREENS.items():
            g = initial_geometry(screen)
            assert screen.contains(g), name
            assert g.width() >= hint.width() and g.height() >= hint.height(), name
            w.setGeometry(g)
            w.arrange()                 # docks as tabs below 900 px of height, else side by side
            assert w.compact == (name == "laptop")
            w.layout().invalidate()
            w.layout().activate()
            w.setGeometry(g)
            w.default_layout()
            # laid out as on screen, without showing it (a shown window's pyqtgraph items
            # outlive its deletion in later tests' event loops)
            w.layout().activate()
            w.layout().setGeometry(w.rect())
            assert w.size() == g.size(), name
            for dock_name, dock in w.docks.items():
                if dock.isHidden():
                    continue
                # of docks stacked as tabs, the one laid out (the current tab) has the room
                tabs = [dock, *w.tabifiedDockWidgets(dock)]
                shown = max(tabs, key=lambda d: d.width() * d.height())
                least = max(d.minimumSizeHint().height() for d in tabs)
                assert shown.height() >= least, (name, dock_name)
                assert shown.width() >= dock.minimumSizeHint().width(), (name, dock_name)
            # the Particles panel (its progress bar at the bottom) ends above the Verdict dock
            assert w.docks["Particles"].geometry().bottom() < w.docks["Verdict"].geometry().top()
    finally:
        if w.live is not None:
            w.live.shutdown()


def test_a_window_saved_on_a_large_screen_opens_whole_on_a_small_one():
    from spad.gui.main_window import initial_geometry

    laptop = SCREENS["laptop"]
    g = initial_geometry(laptop, QtCore.QRect(300, 200, 1900, 1040))
    assert laptop.contains(g) and g.width() == 1366
    g = initial_geometry(laptop, QtCore.QRect(-50, 900, 800, 500))      # off the bottom
    assert laptop.contains(g) and g.size() == QtCore.QSize(800, 500)
    g = initial_geometry(SCREENS["monitor"])                               # first start
    assert g.size() == QtCore.QSize(1600, 1000)


def test_live_dock_layout_is_saved_and_restored(qtbot, settings, rig):
    """The live mode's own docks (Record, Instruments, Camera) come back where they were left,
    and the analysis mode keeps its own layout."""
    w = _window(qtbot, settings, rig)
    w.live.shutdown()
    right, bottom = QtCore.Qt.RightDockWidgetArea, QtCore.Qt.BottomDockWidgetArea
    assert w.dockWidgetArea(w.docks["Camera"]) == right
    w.addDockWidget(bottom, w.docks["Camera"])
    w.docks["Instruments"].hide()
    w.close()
    w2 = _window(qtbot, QtCore.QSettings(settings.fileName(), QtCore.QSettings.IniFormat), rig)
    w2.live.shutdown()
    assert w2.dockWidgetArea(w2.docks["Camera"]) == bottom
    assert w2.docks["Instruments"].isHidden()
    w2.close()
    w3 = _window(qtbot, QtCore.QSettings(settings.fileName(), QtCore.QSettings.IniFormat))
    assert "Camera" not in w3.docks and not w3.docks["Levels"].isHidden()


def test_levels_are_horizontal_segments_coloured_by_state(qtbot):
    """Each level a segment at its intensity from its start to its end, its state's colour;
    a thin staircase joins them in time order (not scattered dots)."""
    from spad.gui.panels import GROUP_COLOURS, TracePanel

    p = TracePanel()
    qtbot.addWidget(p)
    start = np.array([0.0, 0.4, 0.41, 1.2])
    end = np.array([0.4, 0.41, 1.2, 2.0])
    per_bin = np.array([350.0, 20.0, 345.0, 22.0])
    state = np.array([1, 0, 1, 0])
    p.show_levels(start, end, per_bin, state)
    steps, *by_state = p.levels
    x, y = steps.getData()
    assert list(x) == [0.0, 0.4, 0.4, 0.41, 0.41, 1.2, 1.2, 2.0]
    assert list(y) == [350, 350, 20, 20, 345, 345, 22, 22]
    assert len(by_state) == 2
    for g, item in enumerate(by_state):
        x, y = item.getData()
        sel = state == g
        assert list(x) == list(np.column_stack([start[sel], end[sel]]).ravel())
        assert list(y[::2]) == list(y[1::2]) == list(per_bin[sel])     # horizontal
        assert item.opts["connect"] == "pairs"
        assert item.opts["pen"].color().getRgb()[:3] == GROUP_COLOURS[g]
    p.show_levels(np.empty(0), np.empty(0), np.empty(0))
    assert p.levels == []


def test_bic_plot_is_delta_bic_against_the_best(qtbot):
    """The BIC spans tens of thousands; the band of 10 in which the fewest states are chosen
    shows only on ΔBIC. A far-off number of states sits on the top edge, its value in the
    text."""
    from spad.analysis.level_grouping import BIC_MARGIN
    from spad.gui.panels import BicPanel

    p = BicPanel()
    qtbot.addWidget(p)
    bic = np.array([-80_000.0, -120.0, -104.0, -100.0, -101.0])
    p.show_bic(bic, 3)
    x, y = p.curve.getData()
    top = p.TOP
    assert list(x) == [1, 2, 3, 4, 5]
    assert list(y) == [top, 20.0, 4.0, 0.0, 1.0]
    assert list(p.best.getData()[1]) == [4.0]
    assert list(p.off_scale.getData()[0]) == [1]
    lo, hi = p.plot.getPlotItem().vb.viewRange()[1]
    assert lo < 0 < BIC_MARGIN < hi < 2 * top
    assert "off scale (ΔBIC): 1: 79,900" in p.info.text() and "3 states" in p.info.text()
    assert p.plot.getPlotItem().getAxis("left").labelText == "ΔBIC below the best"
    p.show_bic(None, None)
    assert p.info.text() == "level grouping: n/a"


def test_particle_counts_tick_on_whole_numbers(qtbot):
    """The peak histogram counts particles and the population plot can show numbers of
    states: no 0.5 particle on their axes."""
    from spad.gui.panels import PeakHistogramPanel, ScatterPanel

    peaks = PeakHistogramPanel()
    qtbot.addWidget(peaks)
    peaks.show_peaks({"monomer": [2.006, 2.056], "dimer": [1.975, 1.949]},
                     {"shift_mev": 70.0, "shift_err_mev": 28.0})
    axis = peaks.plot.getPlotItem().getAxis("left")
    for lo, hi in ((0, 1.8), (0, 3.6), (0, 40)):
        ticks = [v for _, values in axis.tickValues(lo, hi, 150) for v in values]
        assert ticks and all(float(v).is_integer() for v in ticks), (lo, hi, ticks)
    scatter = ScatterPanel()
    qtbot.addWidget(scatter)
    scatter.y.setCurrentIndex(scatter.y.findData("n_levels"))
    scatter.show_records([{"lifetime_ns": 20.0, "n_levels": 2, "classification": None},
                          {"lifetime_ns": 30.0, "n_levels": 3, "classification": None}])
    left, bottom = (scatter.plot.getPlotItem().getAxis(s) for s in ("left", "bottom"))
    assert left.integer and not bottom.integer
    assert all(float(v).is_integer() for _, vs in left.tickValues(1.8, 3.2, 150) for v in vs)


# -- Qt's xcb libraries --------------------------------------------------------------------

def test_debian_packages_of_missing_libraries():
    from spad.gui.platform_check import debian_package

    assert debian_package("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert debian_package("libxcb-keysyms.so.1") == "libxcb-keysyms1"
    assert debian_package("libxcb-xinerama.so.0") == "libxcb-xinerama0"
    assert debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert debian_package("libX11-xcb.so.1") == "libx11-xcb1"
    assert debian_package("libglib-2.0.so.0") == "libglib2.0-0"


def test_missing_xcb_libraries_are_one_clear_error(monkeypatch, tmp_path):
    from spad.gui import platform_check

    plugin = tmp_path / "libqxcb.so"
    monkeypatch.setattr(platform_check, "xcb_plugin", lambda: plugin)
    monkeypatch.setattr(platform_check, "missing_libraries",
                        lambda _p: ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"])
    env = {"DISPLAY": ":0"}
    with pytest.raises(SpadError) as err:
        platform_check.check_display(env)
    text = str(err.value)
    assert "\n" not in text and str(plugin) in text
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1" in text
    assert "apt-get install libxcb-icccm4 libxcb-keysyms1" in text
    platform_check.check_display({"QT_QPA_PLATFORM": "offscreen"})   # not xcb: no check
    monkeypatch.setattr(platform_check, "missing_libraries", lambda _p: [])
    platform_check.check_display(env)
    with pytest.raises(SpadError, match="DISPLAY is not set"):
        platform_check.check_display({})


def test_ldd_output_is_read(monkeypatch, tmp_path):
    import subprocess

    from spad.gui import platform_check

    out = ("\tlinux-vdso.so.1 (0x00007ffd)\n"
           "\tlibQt5XcbQpa.so.5 => /x/libQt5XcbQpa.so.5 (0x7f)\n"
           "\tlibxcb-icccm.so.4 => not found\n"
           "\tlibxcb-xinerama.so.0 => not found\n"
           "\tlibxcb-icccm.so.4 => not found\n")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0,
                                                                                       out, ""))
    assert platform_check.missing_libraries(tmp_path) == ["libxcb-icccm.so.4",
                                                          "libxcb-xinerama.so.0"]


def test_spad_gui_without_xcb_libraries_exits_with_one_line(monkeypatch, capsys):
    """``spad gui`` stops before Qt (which would abort with exit 134) with one ``spad: error:``
    line."""
    from spad.gui import platform_check

    from spad.app.cli import main

    monkeypatch.setattr(platform_check, "missing_libraries", lambda _p: ["libxcb-icccm.so.4"])
    monkeypatch.setattr(platform_check, "xcb_plugin", lambda: "libqxcb.so")
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(QtWidgets.QApplication, "instance", staticmethod(lambda: None))
    code = main(["gui"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1
    assert err[0].startswith("spad: error: Qt's xcb platform plugin")
    assert "libxcb-icccm4" in err[0]


def test_on_a_machine_without_the_libraries(tmp_path):
    """The real thing where this machine lacks Qt's xcb libraries (skipped where it has them:
    a window would open)."""
    import subprocess
    import sys
    from pathlib import Path

    from spad.gui.platform_check import missing_libraries, xcb_plugin

    plugin = xcb_plugin()
    if plugin is None or not missing_libraries(plugin):
        pytest.skip("Qt's xcb plugin loads on this machine")
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env["DISPLAY"] = ":0"
    spad = Path(sys.executable).with_name("spad")
    out = subprocess.run([str(spad), "gui"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120, check=False)
    assert out.returncode not in (0, 134), out.stderr     # 134: Qt aborted
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spad: error: Qt's xcb platform plugin")
