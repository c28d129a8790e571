"""The main window: docked panels, menus, status bar, settings and layout kept in QSettings.

The same panels serve both modes: in the analysis mode they show the selected recorded
particle; in the live mode (:mod:`spad.gui.live_mode`) they follow the acquisition. Every panel is a
dock the user can move, stack or close; the arrangement and the settings come back at the next
start (``QSettings("spad", "spad gui")``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PyQt5 import QtCore, QtWidgets
from spad.gui.analysis_mode import (
    AnalysisWorker,
    ParticleList,
    SessionTable,
    decay_sources,
    peaks_by_label,
    settings_from,
    trace_levels_of,
)
from spad.gui.panels import (
    BicPanel,
    DecayPanel,
    G2Panel,
    PeakHistogramPanel,
    ScatterPanel,
    SpectrumPanel,
    TracePanel,
    VerdictPanel,
)

from spad.particle import PARTICLE_SUFFIXES, particle_files

ORG, APP = "spad", "spad gui"

LAYOUT_VERSION = 2
"""Version of the saved dock layout: a layout saved by a version with other docks or corners
is not restored (the default one is used instead)."""

DEFAULT_SIZE = (1600, 1000)
"""Size of the window at its first start, reduced to the screen it opens on."""

COMPACT_HEIGHT = 900
"""Below this window height (a 1366x768 laptop) the docks below the trace share one place as
tabs, and so do the camera and the spectrum: side by side, each would be too low or too narrow
for its axes and its text."""

FRAME_PX = 40
"""Room left for the window's title bar and frame, which the available screen area does not
count."""


def initial_geometry(available: QtCore.QRect, saved: QtCore.QRect | None = None) -> QtCore.QRect:
    """Where the window opens: the saved place, or the default size, in either case moved and
    shrunk into ``available`` (the screen without its task bars), so that a layout saved on a
    1920x1080 lab monitor opens whole on a 1366x768 laptop."""
    want = saved if saved is not None and saved.isValid() else QtCore.QRect(
        available.topLeft(), QtCore.QSize(*DEFAULT_SIZE))
    w = min(want.width(), available.width())
    h = min(want.height(), available.height() - FRAME_PX)
    x = min(max(want.x(), available.left()), available.right() + 1 - w)
    y = min(max(want.y(), available.top() + FRAME_PX), available.bottom() + 1 - h)
    return QtCore.QRect(x, y, w, h)


class MainWindow(QtWidgets.QMainWindow):
    """The desktop app's window.

    Parameters
    ----------
    settings
        Where settings and layout are kept (default ``QSettings("spad", "spad gui")``; tests
        pass a temporary INI file).
    """

    status_message = QtCore.pyqtSignal(str)

    def __init__(self, settings: QtCore.QSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or QtCore.QSettings(ORG, APP)
        self.setWindowTitle("spad — single-particle spectroscopy")
        self.results: dict[str, Any] = {}       # path -> ParticleResult, session order
        self.reference_ev: float | None = None
        self.worker: AnalysisWorker | None = None
        self.errors: list[str] = []             # every error shown, newest last
        self.live: Any = None                   # gui.live_mode.LiveMode when on a rig
        self.survey: Any = None                 # gui.survey.SurveyPanel (the Survey tab)

        self.particles = ParticleList()
        self.trace = TracePanel()
        self.bic = BicPanel()
        self.spectrum = SpectrumPanel()
        self.decay = DecayPanel()
        self.g2 = G2Panel()
        self.verdict = VerdictPanel()
        self.scatter = ScatterPanel()
        self.table = SessionTable()
        self.peaks = PeakHistogramPanel()
        session = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(session)
        lay.setContentsMargins(2, 2, 2, 2)
        split = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.peaks)
        split.setSizes([200, 200])     # the table and the histogram share the height
        lay.addWidget(split)
        self.session_widget = session

        self.setCentralWidget(self.trace)
        # the side columns run the full height and the bottom docks sit under the trace only:
        # the window then needs the taller of the columns, not a column plus the bottom row
        # (1117 px before; a 1366x768 laptop has about 700)
        self.setCorner(QtCore.Qt.BottomLeftCorner, QtCore.Qt.LeftDockWidgetArea)
        self.setCorner(QtCore.Qt.BottomRightCorner, QtCore.Qt.RightDockWidgetArea)
        self.setDockOptions(QtWidgets.QMainWindow.AllowTabbedDocks
                            | QtWidgets.QMainWindow.AnimatedDocks)
        self.docks: dict[str, QtWidgets.QDockWidget] = {}
        L, R, B = (QtCore.Qt.LeftDockWidgetArea, QtCore.Qt.RightDockWidgetArea,
                   QtCore.Qt.BottomDockWidgetArea)
        self.add_dock("Particles", self.particles, L)
        self.add_dock("Verdict", self.verdict, L)
        self.add_dock("Spectrum", self.spectrum, R)
        self.add_dock("g2", self.g2, R)
        self.add_dock("Decay", self.decay, B)
        self.add_dock("Levels", self.bic, B)
        self.add_dock("Session", self.session_widget, B)
        self.add_dock("Population", self.scatter, B)

        self._menus()
        self.status = QtWidgets.QLabel("ready")
        self.statusBar().addWidget(self.status, 1)
        self.status_message.connect(self.status.setText)

        self.particles.selected.connect(self.show_particle)
        self.particles.analyse.connect(self.analyse)
        self.trace.roi_changed.connect(self._roi)
        self.particles.roi_typed.connect(self._roi)
        self.scatter.picked.connect(self._pick)
        self.table.cellClicked.connect(lambda row, _c: self._pick(row))
        self._restore()
        # matplotlib (report and red-shift statistics) takes seconds to import: once, at
        # start, not in the middle of a recording
        import spad.app.report  # noqa: F401

    # -- layout -----------------------------------------------------------------------------

    def add_dock(self, name: str, widget: QtWidgets.QWidget, area: Any) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(name, self)
        dock.setObjectName(f"dock_{name}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.docks[name] = dock
        return dock

    def _menus(self) -> None:
        m = self.menuBar().addMenu("&File")
        for text, slot, key in (("Open &files…", self.open_files_dialog, "Ctrl+O"),
                                ("Open session &directory…", self.open_dir_dialog, "Ctrl+D"),
                                ("Export &table (CSV)…", self.export_csv_dialog, "Ctrl+E"),
                                ("Export &report…", self.export_report_dialog, "Ctrl+R"),
                                ("Export particle &figure…", self.export_figure_dialog, ""),
                                ("&Quit", self.close, "Ctrl+Q")):
            a = m.addAction(text, slot)
            if key:
                a.setShortcut(key)
        self.view_menu = self.menuBar().addMenu("&View")
        for name, dock in self.docks.items():
            a = dock.toggleViewAction()
            a.setText(name)
            self.view_menu.addAction(a)

    def _restore(self) -> None:
        s = self.settings
        geometry = s.value("window/geometry")
        saved = None
        if geometry is not None and self.restoreGeometry(geometry):
            saved = self.geometry()
        self.fit_to_screen(saved)
        self.arrange()                  # for the height the screen gives
        self.fit_to_screen(saved)       # with the minimum of that arrangement
        self.default_layout()
        self.restore_layout(live=False)
        for box, key in ((self.particles.bin_ms, "analysis/bin_ms"),
                         (self.particles.gate_ns, "analysis/gate_ns")):
            v = s.value(key)
            if v is not None:
                box.setValue(float(v))
        for check, key in ((self.particles.auto_roi, "analysis/auto_roi"),
                           (self.particles.remove_bursts, "analysis/remove_bursts")):
            v = s.value(key)
            if v is not None:  # an INI file gives the text "true"/"false", the registry a bool
                check.setChecked(str(v).lower() == "true")

    def fit_to_screen(self, saved: QtCore.QRect | None = None) -> None:
        """Place the window on its screen (:func:`initial_geometry`), with the minimum size of
        the docks as they are now (Qt keeps the minimum of an earlier arrangement until its
        layout is activated again, and would hold the window wider than the screen)."""
        self.layout().invalidate()
        self.layout().activate()
        screen = self.screen() or QtWidgets.QApplication.primaryScreen()
        self.setGeometry(initial_geometry(screen.availableGeometry(), saved))

    def arrange(self, compact: bool | None = None) -> None:
        """The default arrangement of the docks, for a small screen (``compact``, default: the
        window lower than :data:`COMPACT_HEIGHT`) or a large one: below the trace the Decay,
        Levels and Session / Population docks side by side, or all as tabs; in the live mode
        the Camera above the Spectrum, or both as tabs."""
        d = self.docks
        self.compact = self.height() < COMPACT_HEIGHT if compact is None else compact
        live = "Camera" in d
        bottom, right = QtCore.Qt.BottomDockWidgetArea, QtCore.Qt.RightDockWidgetArea
        moved = ["Levels", "Session", "Population"] + (["Spectrum"] if live else [])
        for name in moved:
            self.removeDockWidget(d[name])   # out of any tab group (re-shown below)
        if self.compact:
            previous = "Decay"
            for name in ("Levels", "Session", "Population"):
                self.tabifyDockWidget(d[previous], d[name])
                previous = name
        else:
            self.addDockWidget(bottom, d["Levels"])
            if live:     # the Levels are seen after a recording: a tab beside the Session
                self.tabifyDockWidget(d["Levels"], d["Session"])
            else:
                self.addDockWidget(bottom, d["Session"])
            self.tabifyDockWidget(d["Session"], d["Population"])
        if live:
            if self.compact:
                self.tabifyDockWidget(d["Camera"], d["Spectrum"])
            else:
                self.addDockWidget(right, d["Spectrum"])    # below the Camera
        for name in moved:
            d[name].show()
        # the tabs in front (after show(), which brings a tab forward)
        d["Decay" if self.compact else "Session"].raise_()
        if live and self.compact:
            d["Camera"].raise_()

    def default_layout(self) -> None:
        """Dock sizes as fractions of the window: the side columns a quarter each at most,
        the bottom row below the trace about 40 % of the height."""
        w, h = self.width(), self.height()
        side = [d for d in (self.docks.get("Particles"), self.docks.get("Spectrum")) if d]
        self.resizeDocks(side, [min(360, w // 4), min(480, w // 4)], QtCore.Qt.Horizontal)
        self.resizeDocks([self.docks["Decay"]], [max(330, int(0.42 * h))], QtCore.Qt.Vertical)
        if not getattr(self, "compact", True):    # side by side below the trace
            centre = w - min(360, w // 4) - min(480, w // 4)
            shares = ({"Decay": 0.5, "Session": 0.5} if "Camera" in self.docks   # live: tabs
                      else {"Decay": 0.4, "Levels": 0.25, "Session": 0.35})
            self.resizeDocks([self.docks[n] for n in shares],
                             [int(centre * f) for f in shares.values()], QtCore.Qt.Horizontal)
            if "Camera" in self.docks:  # the right column: room for each plot's axis label
                right = {"g2": 0.3, "Camera": 0.34, "Spectrum": 0.36}
                self.resizeDocks([self.docks[n] for n in right],
                                 [int(h * f) for f in right.values()], QtCore.Qt.Vertical)

    @staticmethod
    def layout_key(live: bool) -> str:
        """The settings key of the dock layout: one per mode, as their docks differ."""
        return "window/state_live" if live else "window/state"

    def restore_layout(self, live: bool) -> bool:
        """The dock layout the mode was last left in, if one was saved (by this version)."""
        state = self.settings.value(self.layout_key(live))
        return state is not None and self.restoreState(state, LAYOUT_VERSION)

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue(self.layout_key(self.live is not None), self.saveState(LAYOUT_VERSION))
        s.setValue("analysis/bin_ms", self.particles.bin_ms.value())
        s.setValue("analysis/gate_ns", self.particles.gate_ns.value())
        s.setValue("analysis/auto_roi", self.particles.auto_roi.isChecked())
        s.setValue("analysis/remove_bursts", self.particles.remove_bursts.isChecked())
        if self.live is not None:
            self.live.save_settings(s)
        s.sync()

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        if self.survey is not None:
            self.survey.shutdown()          # the particle being recorded is finished
        if self.live is not None:
            self.live.shutdown()            # a recording in progress is finished cleanly
        if self.worker is not None and self.worker.isRunning():
            self.worker.interrupted = True
            self.worker.wait()
        self.save_settings()
        super().closeEvent(event)

    # -- errors -----------------------------------------------------------------------------

    def show_error(self, message: str, dialog: bool = True) -> None:
        """An error in the status bar and (unless told not to) in a dialog; the app goes on."""
        self.errors.append(message)
        self.status.setText(f"error: {message}")
        if dialog:
            box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Warning, "spad", message,
                                        QtWidgets.QMessageBox.Ok, self)
            box.setModal(False)
            box.show()
            self._last_dialog = box

    # -- files ------------------------------------------------------------------------------

    def open_files_dialog(self) -> None:
        files, _ = QtWidgets.QFileDialog.getOpenFileNames(
            self, "Open particle recordings", str(self.settings.value("paths/last", "")),
            "Particle recordings (*.h5 *.hdf5 *.ptu *.pt3 *.ht3);;All files (*)")
        if files:
            self.open_paths(files)

    def open_dir_dialog(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(
            self, "Open session directory", str(self.settings.value("paths/last", "")))
        if d:
            self.open_paths([d])

    def open_paths(self, paths: list[str | Path], analyse: bool = True) -> None:
        """Add recordings (files or session directories) and analyse the new ones."""
        files: list[Path] = []
        for p in map(Path, paths):
            if p.is_dir():
                found = particle_files(p)
                if not found:
                    self.show_error(f"{p}: no particle recordings ({', '.join(PARTICLE_SUFFIXES)})")
                files += found
            elif p.exists():
                files.append(p)
            else:
                self.show_error(f"{p}: no such file")
        if not files:
            return
        self.settings.setValue("paths/last", str(files[0].parent))
        new = [str(f) for f in files if str(f) not in self.results]
        self.particles.add_files(files)
        if analyse and new:
            self.run_analysis([(f, None) for f in new])

    # -- analysis ---------------------------------------------------------------------------

    def analyse(self, which: str) -> None:
        if which == "current":
            paths = [p for p in [self.particles.current()] if p]
        elif which == "checked":
            paths = self.particles.paths(checked_only=True)
        else:
            paths = self.particles.paths()
        if paths:
            self.run_analysis([(p, None) for p in paths])

    def run_analysis(self, jobs: list[tuple[str, tuple[float, float] | None]]) -> None:
        """Analyse in the background; one batch at a time."""
        if self.worker is not None and self.worker.isRunning():
            self.status.setText("an analysis is already running: wait for it to finish")
            return
        self.worker = AnalysisWorker(jobs, self.run_settings())
        self.worker.progress.connect(self._progress)
        self.worker.result.connect(self._result)
        self.worker.failed.connect(lambda _p, msg: self.show_error(msg, dialog=False))
        self.worker.finished.connect(self._batch_done)
        self.particles.progress.setMaximum(len(jobs))
        self.particles.progress.setValue(0)
        self.worker.start()

    def run_settings(self) -> Any:
        """The :class:`~spad.analysis.photon_analysis.AnalysisSettings` of the Particles panel."""
        pl = self.particles
        return settings_from(pl.bin_ms.value(), pl.gate_ns.value(), pl.auto_roi.isChecked(),
                             pl.remove_bursts.isChecked())

    def _progress(self, done: int, total: int, path: str) -> None:
        self.particles.progress.setValue(done)
        if path:
            self.status.setText(f"analysing {Path(path).name} ({done + 1} of {total})…")

    def _result(self, path: str, result: Any) -> None:
        self.results[path] = result

    def _batch_done(self) -> None:
        self.reclassify()
        n = len(self.results)
        ref = ("no monomer reference (needs 3 confident monomers with spectra)"
               if self.reference_ev is None else f"monomer reference {self.reference_ev:.4f} eV")
        self.status.setText(f"{n} particle{'s' if n != 1 else ''} analysed; {ref}")
        current = self.particles.current()
        if current:
            self.show_particle(current)

    def reclassify(self) -> None:
        """Shift and verdict of every particle against the whole session, as the CLI does."""
        from spad.analysis.particle import classify_session

        order = [p for p in self.particles.paths() if p in self.results]
        results = [self.results[p] for p in order]
        self.reference_ev = classify_session(results) if results else None
        records = [r.record() for r in results]
        for p, rec in zip(order, records, strict=True):
            self.particles.mark(p, (rec["classification"] or {}).get("label"))
        self.show_session(records)

    def records(self) -> list[dict[str, Any]]:
        return [self.results[p].record() for p in self.particles.paths() if p in self.results]

    def show_session(self, records: list[dict[str, Any]]) -> None:
        from spad.app.report import red_shift

        self.table.show_records(records)
        self.scatter.show_records(records)
        self.peaks.show_peaks(peaks_by_label(records), red_shift(records))

    def _pick(self, index: int) -> None:
        paths = [p for p in self.particles.paths() if p in self.results]
        if 0 <= index < len(paths):
            self.particles.set_current(paths[index])

    def _roi(self, lo: float, hi: float) -> None:
        path = self.particles.current()
        if path is None or path not in self.results:
            return
        tr = self.results[path].photons.trace
        if tr is not None and lo <= tr.bin_edges_s[0] + 1e-9 and hi >= tr.bin_edges_s[-1] - 1e-9:
            roi = None    # the whole recording again
        else:
            roi = (lo, hi)
        self.run_analysis([(path, roi)])

    def show_particle(self, path: str) -> None:
        """Draw one analysed particle in every panel (not while a particle is recorded: the
        panels show the live views then, and mixing in another particle's levels, fits or
        verdict would mislead)."""
        if self.live is not None and self.live.recording:
            self.status.setText(f"recording: {Path(path).name} is shown when the recording "
                                "ends")
            return
        r = self.results.get(path)
        if r is None:
            self.status.setText(f"{Path(path).name}: not analysed yet")
            return
        self.show_photons(r.photons, Path(path).name)
        self.particles.show_roi(r.photons.roi_start_s, r.photons.roi_end_s)
        tr = r.photons.trace
        if tr is not None and tr.total.size:
            # the ROI analysed (set, or ended where a bleached tail begins), on the whole trace
            lo, hi = r.photons.roi_start_s, r.photons.roi_end_s
            if lo is None or hi is None:
                lo, hi = tr.bin_edges_s[0], tr.bin_edges_s[-1]
            self.trace.set_roi(float(lo), float(hi))
        self.spectrum.show_result(r.spectrum, r.shift_mev, r.reference_ev)
        self.show_classification(r.classification, r.photons.notes + r.notes)

    def show_photons(self, p: Any, name: str, window_s: float | None = None) -> None:
        """Trace, levels, BIC, decay and g2 of a :class:`PhotonAnalysis`; with ``window_s``
        only the last ``window_s`` seconds of the trace (rolling, live)."""
        tr = p.trace
        b = p.blinking
        if tr is not None and tr.total.size:
            thr = None if b is None else b.threshold_rate * tr.bin_width_s
            t, counts = tr.bin_edges_s[:-1], tr.total
            if window_s is not None:
                keep = t >= t[-1] - window_s
                t, counts = t[keep], counts[keep]
            self.trace.show_trace(t, counts, tr.bin_width_s, thr)
        lv = trace_levels_of(p)
        if lv is not None:
            self.trace.show_levels(*lv)
        self.trace.info.setText(
            f"{name}: {p.n_photons} photons in {p.duration_s:.1f} s "
            f"({p.count_rate_cps / 1e3:.1f} kcps), ON fraction "
            f"{'n/a' if p.on_fraction is None else format(p.on_fraction, '.2f')}")
        self.bic.show_bic(None if b is None else b.bic, p.n_levels)
        self.decay.show_decays(decay_sources(p), p.decay_period_s)
        c, cg = p.correlation, p.correlation_gated
        self.g2.show_g2(None if c is None else c.lags_s, None if c is None else c.counts,
                        None if cg is None else cg.counts, p.g2_zero, p.g2_zero_err,
                        p.g2_zero_gated, p.g2_zero_gated_err)

    def show_classification(self, cl: Any, notes: list[str]) -> None:
        text = "; ".join(notes)
        if cl is None:
            self.verdict.show_verdict(None, None, None, None, extra=text)
        else:
            self.verdict.show_verdict(cl.label, cl.probability, cl.p_dimer, cl.evidence,
                                      cl.model, text, cl.inputs, cl.no_information, cl.reason)

    # -- export -----------------------------------------------------------------------------

    def export_csv(self, path: str | Path) -> Path:
        from spad.app.report import population_csv

        return population_csv(self.records(), path)

    def export_csv_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export table", str(self.settings.value("paths/last", "")), "CSV (*.csv)")
        if path:
            self.status.setText(f"table written to {self.export_csv(path)}")

    def export_report_dialog(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, "Report directory")
        if d:
            from spad.app.report import write_report

            results = [self.results[p] for p in self.particles.paths() if p in self.results]
            self.status.setText(f"report written to {write_report(Path(d), results)}/")

    def export_figure_dialog(self) -> None:
        from spad.app.report import particle_figure

        path = self.particles.current()
        if path is None or path not in self.results:
            return
        out, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export figure", str(Path(path).with_suffix(".png")), "PNG (*.png)")
        if out:
            self.status.setText(f"figure written to {particle_figure(self.results[path], out)}")

