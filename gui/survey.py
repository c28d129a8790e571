"""The Survey tab: scan the slide, find the particles, record each until sure, live.

The tab drives a :class:`spad.app.survey.Survey` in its own thread on a rig with a sample
stage (the live rig when it has one; otherwise a simulated rig with a simulated slide). It
shows:

- the scan image as it is scanned, row by row, with the candidates on it, each coloured by
  its state and, once recorded, by its verdict (monomer blue, dimer red, uncertain grey;
  pending white, being recorded yellow, skipped or failed black);
- the queue: the candidate list, which the user edits at any time (remove, move up or down,
  a click on the image adds a candidate there); the survey takes the next pending candidate
  of the list as it is when it gets there;
- Pause (after the particle being recorded), Skip (end this particle now, keep its file),
  Stop (finish this particle, then stop; a later start with "resume" goes on);
- the population: peak-energy histograms of monomers and dimers with the red shift, and the
  verdict counts, updated after each particle.

The survey's events come from its thread; a Qt signal brings each to the GUI thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore, QtWidgets
from spad.gui.panels import LABEL_COLOURS, PeakHistogramPanel, no_si_prefix

from spad.app.survey_scan import SCAN_DWELL_S, SCAN_STEP_M

STATE_COLOURS = {"pending": (255, 255, 255), "recording": (255, 210, 0),
                 "skipped": (0, 0, 0), "failed": (0, 0, 0)}
"""Colour of a candidate that has no verdict (yet)."""


def candidate_colour(c: Any) -> tuple[int, int, int]:
    """A candidate's colour: its verdict's once recorded, else its state's."""
    if c.status == "done" and c.verdict in LABEL_COLOURS:
        return LABEL_COLOURS[c.verdict]
    return STATE_COLOURS.get(c.status, (255, 255, 255))


class _Bridge(QtCore.QObject):
    """Survey events (any thread) -> the GUI thread."""

    event = QtCore.pyqtSignal(object)


class SurveyPanel(QtWidgets.QWidget):
    """The Survey tab (see the module docstring).

    Parameters
    ----------
    rig_factory
        ``rig_factory()`` -> ``(rig, release)``: the rig to survey with (``.stage`` needed)
        and a function that releases it (or ``None``), called when a survey starts.
    """

    finished = QtCore.pyqtSignal(object)

    def __init__(self, rig_factory: Any, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.rig_factory = rig_factory
        self.survey: Any = None
        self.rig: Any = None
        self._release: Any = None
        self.bridge = _Bridge()
        self.bridge.event.connect(self._on_event)

        # controls
        self.folder = QtWidgets.QLineEdit(str(Path.cwd() / "survey"))
        browse = QtWidgets.QPushButton("…")
        browse.setFixedWidth(28)
        browse.clicked.connect(self._browse)
        self.area = QtWidgets.QLineEdit("")
        self.area.setPlaceholderText("X0,Y0,X1,Y1 µm (empty: the simulated slide)")
        self.step = QtWidgets.QDoubleSpinBox(decimals=0, minimum=10, maximum=5000,
                                             value=SCAN_STEP_M * 1e9, suffix=" nm")
        self.dwell = QtWidgets.QDoubleSpinBox(decimals=1, minimum=0.1, maximum=1000,
                                              value=SCAN_DWELL_S * 1e3, suffix=" ms")
        self.cap = QtWidgets.QDoubleSpinBox(decimals=0, minimum=1, maximum=3600, value=30,
                                            suffix=" s")
        self.resume_box = QtWidgets.QCheckBox("resume")
        self.start_button = QtWidgets.QPushButton("Scan && survey")
        self.pause_button = QtWidgets.QPushButton("Pause")
        self.skip_button = QtWidgets.QPushButton("Skip")
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.skip_button.clicked.connect(self.skip)
        self.stop_button.clicked.connect(self.stop)
        self.status = QtWidgets.QLabel("no survey")
        self.status.setWordWrap(True)
        row1 = QtWidgets.QHBoxLayout()
        for w in (QtWidgets.QLabel("session"), self.folder, browse, QtWidgets.QLabel("area"),
                  self.area):
            row1.addWidget(w)
        row2 = QtWidgets.QHBoxLayout()
        for w in (QtWidgets.QLabel("step"), self.step, QtWidgets.QLabel("dwell"), self.dwell,
                  QtWidgets.QLabel("cap"), self.cap, self.resume_box, self.start_button,
                  self.pause_button, self.skip_button, self.stop_button):
            row2.addWidget(w)
        row2.addStretch(1)

        # scan image with the candidates
        self.image_plot = pg.PlotWidget()
        no_si_prefix(self.image_plot.getPlotItem())
        self.image_plot.setAspectLocked(True)
        self.image_plot.setLabel("bottom", "x (µm)")
        self.image_plot.setLabel("left", "y (µm)")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setColorMap(pg.colormap.get("viridis"))
        self.image_plot.addItem(self.image)
        self.spots = pg.ScatterPlotItem(size=14, pxMode=True, symbol="o")
        self.image_plot.addItem(self.spots)
        self.image_plot.scene().sigMouseClicked.connect(self._clicked)

        # the queue
        self.queue = QtWidgets.QListWidget()
        self.queue.setMinimumWidth(230)
        up, down, remove = (QtWidgets.QPushButton(t) for t in ("Up", "Down", "Remove"))
        up.clicked.connect(lambda: self.move_selected(-1))
        down.clicked.connect(lambda: self.move_selected(1))
        remove.clicked.connect(self.remove_selected)
        qbox = QtWidgets.QWidget()
        ql = QtWidgets.QVBoxLayout(qbox)
        ql.setContentsMargins(0, 0, 0, 0)
        ql.addWidget(QtWidgets.QLabel("queue (click the image to add)"))
        ql.addWidget(self.queue, 1)
        qb = QtWidgets.QHBoxLayout()
        for b in (up, down, remove):
            qb.addWidget(b)
        ql.addLayout(qb)

        # the population
        self.population = PeakHistogramPanel()
        self.counts = QtWidgets.QLabel("")

        pop = QtWidgets.QWidget()
        pl = QtWidgets.QVBoxLayout(pop)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(self.counts)
        pl.addWidget(self.population, 1)
        split = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        split.addWidget(self.image_plot)
        split.addWidget(qbox)
        split.addWidget(pop)
        split.setSizes([440, 380, 500])
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(row1)
        lay.addLayout(row2)
        lay.addWidget(split, 1)
        lay.addWidget(self.status)
        self._set_running(False)

    # -- control ----------------------------------------------------------------------------

    def _browse(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, "Survey session directory")
        if d:
            self.folder.setText(d)

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        for b in (self.pause_button, self.skip_button, self.stop_button):
            b.setEnabled(running)
        if not running:
            self.pause_button.setText("Pause")

    @property
    def running(self) -> bool:
        return self.survey is not None and self.survey._thread is not None and \
            self.survey._thread.is_alive()

    def start(self) -> None:
        """Open the rig and start the survey (scan first, unless resuming)."""
        from spad.app.acquisition import AcquisitionSettings
        from spad.app.survey import Survey, SurveySettings
        from spad.app.survey_scan import Area
        from spad.errors import SpadError

        if self.running:
            return
        try:
            if self.rig is None:
                self.rig, self._release = self.rig_factory()
            step, dwell = self.step.value() * 1e-9, self.dwell.value() * 1e-3
            text = self.area.text().strip()
            if text:
                area = Area.parse(text, step, dwell)
            else:
                slide = getattr(self.rig, "slide", None)
                if slide is None:
                    raise SpadError("survey: give the area to scan (X0,Y0,X1,Y1 in µm)")
                (cx, cy), half = slide.spec.centre_m, slide.spec.size_m / 2 + 0.5e-6
                area = Area(cx - half, cy - half, cx + half, cy + half, step, dwell)
            settings = SurveySettings(area=area, acquisition=AcquisitionSettings(
                duration_s=self.cap.value(), until_confident=0.95))
            self.survey = Survey(self.rig, self.folder.text(), settings,
                                 resume=self.resume_box.isChecked())
        except (SpadError, OSError, ValueError) as exc:
            self.status.setText(f"error: {exc}")
            return
        self.survey.add_callback(self.bridge.event.emit)
        self.spots.setData([])
        self.queue.clear()
        if self.survey.image is not None and self.survey.area is not None:
            self._show_image(self.survey.image)
        self._show_population()
        self._set_running(True)
        self.status.setText("scanning…" if self.survey.image is None else "resuming…")
        self.survey.start()

    def toggle_pause(self) -> None:
        if self.survey is None:
            return
        if self.survey.paused:
            self.survey.resume()
            self.pause_button.setText("Pause")
            self.status.setText("going on")
        else:
            self.survey.pause()
            self.pause_button.setText("Resume")
            self.status.setText("pausing after this particle…")

    def skip(self) -> None:
        if self.survey is not None:
            self.survey.skip()

    def stop(self) -> None:
        if self.survey is not None:
            self.survey.stop()
            self.status.setText("stopping after this particle…")

    def shutdown(self) -> None:
        """Stop a running survey (the particle being recorded is finished) and release the
        rig: the window is closing."""
        if self.survey is not None:
            self.survey.stop()
            self.survey.wait()
        if self._release is not None:
            self._release()
            self._release = None
        self.rig = None

    # -- queue edits ------------------------------------------------------------------------

    def _selected(self) -> Any:
        item = self.queue.currentItem()
        if item is None or self.survey is None:
            return None
        cid = item.data(QtCore.Qt.UserRole)
        return next((c for c in self.survey.candidates if c.id == cid), None)

    def move_selected(self, by: int) -> None:
        c = self._selected()
        if c is None:
            return
        cands = list(self.survey.candidates)
        i = cands.index(c)
        j = min(max(i + by, 0), len(cands) - 1)
        cands.insert(j, cands.pop(i))
        self.survey.set_candidates(cands)
        self.queue.setCurrentRow(j)

    def remove_selected(self) -> None:
        c = self._selected()
        if c is None or c.status != "pending":
            return
        self.survey.set_candidates([x for x in self.survey.candidates if x is not c])

    def _clicked(self, ev: Any) -> None:
        if self.survey is None or ev.button() != QtCore.Qt.LeftButton:
            return
        vb = self.image_plot.getPlotItem().vb
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        p = vb.mapSceneToView(ev.scenePos())
        self.survey.add_candidate(p.x() * 1e-6, p.y() * 1e-6)

    # -- display ----------------------------------------------------------------------------

    def _on_event(self, ev: Any) -> None:
        kind = ev.kind
        if kind == "scan_row":
            i, img = ev.data
            self._show_image(img)
            self.status.setText(f"scanning: row {i + 1} of {img.shape[0]}")
        elif kind in ("candidates", "particle", "visit"):
            self._show_candidates()
            if kind == "particle":
                c = ev.data
                self._show_population()
                self.status.setText(f"#{c.id} {c.status}"
                                    + (f": {c.verdict}" if c.verdict else "")
                                    + (f" ({c.note})" if c.note else ""))
            elif kind == "visit":
                self.status.setText(f"#{ev.data.id}: centring…")
        elif kind == "progress":
            self.status.setText(ev.data.line())
        elif kind == "paused":
            self.status.setText("paused")
        elif kind == "finished":
            self._show_candidates()
            self._show_population()
            self._set_running(False)
            rep = self.survey.report() if self.survey is not None else {}
            self.status.setText(f"survey {ev.message}: {rep.get('done', 0)} recorded, "
                                f"{rep.get('skipped', 0)} skipped, {rep.get('failed', 0)} "
                                f"failed, {rep.get('pending', 0)} left")
            self.finished.emit(ev.message)

    def _show_image(self, img: np.ndarray) -> None:
        area = self.survey.area
        shown = np.nan_to_num(np.array(img, float), nan=0.0)
        self.image.setImage(shown / 1e3, autoLevels=True)
        w = (area.x1_m - area.x0_m) * 1e6 + area.step_m * 1e6
        h = (area.y1_m - area.y0_m) * 1e6 + area.step_m * 1e6
        self.image.setRect(QtCore.QRectF((area.x0_m - area.step_m / 2) * 1e6,
                                         (area.y0_m - area.step_m / 2) * 1e6, w, h))

    def _show_candidates(self) -> None:
        if self.survey is None:
            return
        cands = list(self.survey.candidates)
        self.spots.setData(
            [c.x_m * 1e6 for c in cands], [c.y_m * 1e6 for c in cands],
            brush=[pg.mkBrush(*candidate_colour(c), 200) for c in cands],
            pen=[pg.mkPen("k" if c.status in ("pending", "recording") else "w") for c in cands],
            symbol=["x" if c.status in ("skipped", "failed") else "o" for c in cands])
        row = self.queue.currentRow()
        self.queue.clear()
        for c in cands:
            text = (f"#{c.id} {c.status}" + (f" {c.verdict}" if c.verdict else "")
                    + (f" {c.particle}" if c.particle else "")
                    + f" — ({c.x_m * 1e6:.2f}, {c.y_m * 1e6:.2f}) µm, "
                      f"{c.rate_hz / 1e3:.0f} kcps")
            item = QtWidgets.QListWidgetItem(text)
            item.setData(QtCore.Qt.UserRole, c.id)
            if c.note:
                item.setToolTip(c.note)
            self.queue.addItem(item)
        if 0 <= row < self.queue.count():
            self.queue.setCurrentRow(row)

    def _show_population(self) -> None:
        from spad.app.report import red_shift

        records = list(self.survey.records.values()) if self.survey is not None else []
        peaks: dict[str, list[float]] = {"monomer": [], "dimer": []}
        for r in records:
            label = (r.get("classification") or {}).get("label")
            if label in peaks and r.get("peak_ev") is not None:
                peaks[label].append(float(r["peak_ev"]))
        self.population.show_peaks(peaks, red_shift(records))
        counts: dict[str, int] = {}
        for r in records:
            label = str((r.get("classification") or {}).get("label"))
            counts[label] = counts.get(label, 0) + 1
        self.counts.setText("verdicts: " + (", ".join(f"{k} {v}" for k, v in
                                                      sorted(counts.items())) or "none yet"))


def attach_survey(window: Any, config: Path | None = None) -> SurveyPanel:
    """Add the Survey tab to ``window`` (tabbed with the Session and Population docks).

    The survey uses the live rig when it has a stage; otherwise (the simulated rig, or a
    rig file without ``[stage]``) a simulated rig with a simulated slide of 30 particles."""
    def factory() -> tuple[Any, Any]:
        live = getattr(window, "live", None)
        if live is not None and getattr(live.rig, "stage", None) is not None:
            return live.rig, None
        from spad.app.rig import open_rig
        from spad.config import Rig, SlideSettings, StageSettings

        cm = open_rig(Rig(stage=StageSettings(), slide=SlideSettings()))
        return cm.__enter__(), lambda: cm.__exit__(None, None, None)

    panel = SurveyPanel(factory)
    window.survey = panel
    dock = window.add_dock("Survey", panel, QtCore.Qt.BottomDockWidgetArea)
    window.tabifyDockWidget(window.docks["Population"], dock)
    window.view_menu.addAction(dock.toggleViewAction())
    return panel
