"""The live mode: record particles on the rig with the verdict updating as photons arrive.

Each particle is one :class:`spad.app.acquisition.Acquisition` (the engine ``spad acquire``
uses, docs/acquisition.md) running in its own thread; this module only wires it to the
panels. A Qt timer (:data:`REFRESH_MS`) polls the engine's thread-safe snapshot and redraws, in
the ScopeFoundry way (``update_display`` on a timer):

- the rolling intensity trace and its histogram at every refresh, from the photon chunks the
  engine decoded and published since the last one (``Acquisition.publish_to``: the engine's
  one read loop of the tagger), binned by the same
  :class:`spad.analysis.trace.IntensityTrace` the analysis uses;
- the decay and the coincidence histogram at every live analysis of the engine (``update_s``),
  with g2(0) ± error and the verdict with its evidence from the engine's live state;
- the EMCCD frames the engine records (published the same way).

Engine events come from the acquisition thread and are re-emitted as a Qt signal, so a device
error reaches the status bar and a dialog on the GUI thread while the engine ends the
recording cleanly with its data kept. Closing the window during a recording stops it cleanly
(the file is finished and analysed) before the window goes.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from PyQt5 import QtCore, QtWidgets
from spad.gui.analysis_mode import decay_sources
from spad.gui.camera import CameraPanel
from spad.gui.instruments import InstrumentPanel

from spad.errors import SpadError

REFRESH_MS = 80
"""Display refresh interval (12.5 Hz: a margin above the 10 Hz a live view needs to look
smooth, for the refreshes that come late while the acquisition thread holds the GIL)."""

ROLLING_S = 30.0
"""Span of the rolling intensity trace, seconds."""


class WarmUp(QtCore.QThread):
    """Warm the analysis before the first Record: compile (or load from numba's cache) the
    kernels in this process, where the recording's histograms and the rolling trace are
    computed, and start the engine's live-analysis worker, which imports the analysis meanwhile
    and loads the kernels from numba's cache at its first live update
    (:func:`spad.app.acquisition.engine.prepare`). Without it the first particle showed
    "g2(0) n/a" for the whole of its recording on a fresh installation, while they compiled.

    ``done`` gives ``""`` or the error met (the app then records anyway, as before)."""

    done = QtCore.pyqtSignal(str)

    def __init__(self, settings: Any, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings

    def run(self) -> None:
        from spad.app.acquisition.engine import prepare

        try:
            prepare(self.settings)
        except Exception as exc:  # noqa: BLE001 - any failure: said, and recording still works
            self.done.emit(f"{type(exc).__name__}: {exc}")
            return
        self.done.emit("")


class RecordPanel(QtWidgets.QWidget):
    """Record / stop / abort a particle, with its name, notes and the stop-when-sure option."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.folder = QtWidgets.QLineEdit(str(Path.cwd() / "session"))
        browse = QtWidgets.QPushButton("…")
        browse.setMaximumWidth(30)
        browse.clicked.connect(self._browse)
        folder = QtWidgets.QHBoxLayout()
        folder.addWidget(self.folder, 1)
        folder.addWidget(browse)
        self.name = QtWidgets.QLineEdit()
        self.name.setPlaceholderText("next in the session (p001, p002, …)")
        self.notes = QtWidgets.QPlainTextEdit()
        self.notes.setPlaceholderText("notes (kept in the session log)")
        self.notes.setMaximumHeight(50)
        self.duration = QtWidgets.QDoubleSpinBox()
        self.duration.setRange(1.0, 3600.0)
        self.duration.setValue(60.0)
        self.duration.setDecimals(0)
        self.duration.setSuffix(" s")
        self.sure = QtWidgets.QCheckBox("stop when sure, p ≥")
        self.sure_p = QtWidgets.QDoubleSpinBox()
        self.sure_p.setRange(0.51, 0.999)
        self.sure_p.setDecimals(3)
        self.sure_p.setSingleStep(0.01)
        self.sure_p.setValue(0.95)
        # the longest duration and the stop-when-sure option share a row: the panel then
        # fits above the Verdict on a 768 px high screen
        sure = QtWidgets.QHBoxLayout()
        sure.addWidget(self.duration)
        sure.addWidget(self.sure)
        sure.addWidget(self.sure_p)
        sure.addStretch(1)
        self.sure.setText("stop if p ≥")
        self.sure.setToolTip("stop when sure: end the particle once the live verdict's "
                             "probability reaches this value")
        form = QtWidgets.QFormLayout()
        form.addRow("session", folder)
        form.addRow("particle", self.name)
        form.addRow("notes", self.notes)
        form.addRow("longest", sure)
        self.record = QtWidgets.QPushButton("● Record")
        self.stop = QtWidgets.QPushButton("■ Stop")
        self.abort = QtWidgets.QPushButton("Abort")
        self.stop.setToolTip("end now: the file is finished and analysed")
        self.abort.setToolTip("end at once: the file keeps what was acquired, no analysis")
        buttons = QtWidgets.QHBoxLayout()
        for b in (self.record, self.stop, self.abort):
            buttons.addWidget(b)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setFormat("%p %")
        self.state = QtWidgets.QLabel("idle")
        self.state.setWordWrap(True)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addWidget(self.progress)
        lay.addWidget(self.state)
        lay.addStretch(1)
        self.ready = True       # False while the analysis warms up: Record waits for it
        self.set_running(False)

    def _browse(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, "Session directory",
                                                       self.folder.text())
        if d:
            self.folder.setText(d)

    def set_running(self, running: bool) -> None:
        self.running = running
        self.record.setEnabled(not running and self.ready)
        self.stop.setEnabled(running)
        self.abort.setEnabled(running)
        for w in (self.folder, self.name, self.duration, self.sure, self.sure_p):
            w.setEnabled(not running)


class FrameStats:
    """Refresh statistics of the live display: refreshes done, their cost, and dropped frames
    (timer intervals missed because a refresh or the event loop took too long)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.reset()

    def reset(self) -> None:
        self.ticks: list[float] = []
        self.costs: list[float] = []

    def add(self, t: float, cost: float) -> None:
        self.ticks.append(t)
        self.costs.append(cost)

    def summary(self) -> dict[str, float]:
        t = np.asarray(self.ticks)
        if t.size < 2:
            return {"refreshes": int(t.size), "rate_hz": 0.0, "dropped": 0,
                    "mean_cost_ms": 0.0, "max_cost_ms": 0.0}
        gaps = np.diff(t)
        dropped = int(np.sum(np.maximum(np.round(gaps / self.interval_s) - 1, 0)))
        return {"refreshes": int(t.size), "rate_hz": float((t.size - 1) / (t[-1] - t[0])),
                "dropped": dropped, "mean_cost_ms": float(np.mean(self.costs) * 1e3),
                "max_cost_ms": float(np.max(self.costs) * 1e3)}


class LiveMode(QtCore.QObject):
    """Wires a rig and the acquisition engine to the main window's panels."""

    engine_event = QtCore.pyqtSignal(object)

    def __init__(self, window: Any, rig: Any, release: Any = None) -> None:
        super().__init__(window)
        self.window = window
        self.rig = rig
        self._release = release          # closes the rig when the window goes
        self.lock = threading.Lock()
        self.acq: Any = None
        self.chunks: deque = deque()     # decoded photon chunks the engine publishes
        self.frames: deque = deque(maxlen=8)
        self.display_trace: Any = None
        self._shown_display: Any = None
        self._shown_verdict: Any = None
        self.stats = FrameStats(REFRESH_MS / 1e3)

        self.instruments = InstrumentPanel()
        self.camera = CameraPanel()
        self.recorder = RecordPanel()
        L, R = QtCore.Qt.LeftDockWidgetArea, QtCore.Qt.RightDockWidgetArea
        w = window
        w.add_dock("Record", self.recorder, L)
        # the instrument controls are a long column: they scroll, so that their height does
        # not set the window's (it would squeeze the Verdict and Decay docks below it)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidget(self.instruments)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QtWidgets.QFrame.NoFrame)
        w.add_dock("Instruments", scroll, L)
        w.add_dock("Camera", self.camera, R)
        w.tabifyDockWidget(w.docks["Particles"], w.docks["Record"])
        w.tabifyDockWidget(w.docks["Record"], w.docks["Instruments"])
        for name in ("Record", "Instruments", "Camera"):
            a = w.docks[name].toggleViewAction()
            a.setText(name)
            w.view_menu.addAction(a)
        w.fit_to_screen(w.geometry())      # the live docks' minimum, within the screen
        w.arrange()
        w.fit_to_screen(w.geometry())
        w.default_layout()
        w.restore_layout(live=True)        # the live mode's docks where they were left
        self.restore_settings(w.settings)

        self.instruments.error.connect(lambda m: w.show_error(m))
        self.camera.error.connect(lambda m: w.show_error(m))
        self.camera.spectrum_ready.connect(w.spectrum.show_live)
        self.camera.track.sigRegionChangeFinished.connect(
            lambda: self.instruments.set_track(self.camera.track_rows()[0]))
        self.recorder.record.clicked.connect(self.record)
        self.recorder.stop.clicked.connect(self.stop)
        self.recorder.abort.clicked.connect(self.abort)
        self.engine_event.connect(self._on_event)
        self.instruments.attach(getattr(rig, "camera", None), getattr(rig, "spectrograph", None),
                                rig.tagger, self.lock)
        if getattr(rig, "camera", None) is not None:
            # the camera settings of the last session (default: the engine's, 1 s at gain 100)
            s = w.settings
            self.instruments.exposure.setValue(float(s.value("camera/exposure_s", 1.0)))
            self.instruments.em_gain.setValue(int(float(s.value("camera/em_gain", 100))))
            self.camera.attach(rig.camera, rig.spectrograph, self.lock)
            self.instruments.set_track(self.camera.track_rows()[0])
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        # Qt's default coarse timer may fire up to 5 % late every time, which alone holds a
        # 100 ms timer below 10 Hz
        self.timer.setTimerType(QtCore.Qt.PreciseTimer)
        self.timer.timeout.connect(self.update_display)
        QtCore.QTimer.singleShot(0, w.docks["Record"].raise_)   # once the window is laid out
        self.ready_text = f"live on {getattr(rig.tagger, 'name', 'the rig')}: press Record"
        self.recorder.ready = False
        self.recorder.set_running(False)
        self.recorder.state.setText("preparing the analysis: compiling its kernels (once; a "
                                    "minute or two after an installation, seconds later)…")
        w.status.setText("preparing the analysis before the first Record…")
        self.warm = WarmUp(dataclasses.replace(w.run_settings(), max_level_fits=0), self)
        self.warm.done.connect(self._warmed)
        self.warm.start()

    def _warmed(self, error: str) -> None:
        """The analysis is ready (or could not be warmed: then the first particle compiles it,
        as without the warm-up)."""
        r = self.recorder
        r.ready = True
        r.set_running(r.running)
        if not r.running:
            r.state.setText("ready" if not error else f"ready (warm-up failed: {error})")
        if self.acq is None:
            self.window.status.setText(self.ready_text)

    # -- settings ---------------------------------------------------------------------------

    def restore_settings(self, s: QtCore.QSettings) -> None:
        r = self.recorder
        for key, setter, conv in (("live/folder", r.folder.setText, str),
                                  ("live/duration_s", r.duration.setValue, float),
                                  ("live/sure", r.sure.setChecked, lambda v: v in (True, "true")),
                                  ("live/sure_p", r.sure_p.setValue, float)):
            v = s.value(key)
            if v is not None:
                setter(conv(v))

    def save_settings(self, s: QtCore.QSettings) -> None:
        r = self.recorder
        s.setValue("live/folder", r.folder.text())
        s.setValue("live/duration_s", r.duration.value())
        s.setValue("live/sure", r.sure.isChecked())
        s.setValue("live/sure_p", r.sure_p.value())
        s.setValue("camera/exposure_s", self.instruments.exposure.value())
        s.setValue("camera/em_gain", self.instruments.em_gain.value())

    # -- recording --------------------------------------------------------------------------

    @property
    def recording(self) -> bool:
        return self.acq is not None and self.acq.snapshot().status in ("idle", "running",
                                                                       "stopping")

    def record(self) -> None:
        """Start recording one particle into the session directory."""
        from spad.analysis.trace import IntensityTrace

        from spad.app.acquisition import Acquisition, AcquisitionSettings, Session

        if self.recording:
            return
        w = self.window
        r = self.recorder
        self.camera.stop()       # the engine takes the camera for the particle's spectrum
        # the window's analysis settings, without the single-level decay fits: ~50 fits at
        # every live update (each second) would hold the verdict back for seconds
        analysis = dataclasses.replace(w.run_settings(), max_level_fits=0)
        try:
            settings = AcquisitionSettings(
                duration_s=r.duration.value(),
                until_confident=r.sure_p.value() if r.sure.isChecked() else None,
                exposure_s=self.instruments.exposure.value(),
                em_gain=float(self.instruments.em_gain.value()),
                read_mode="image", analysis=analysis)
            session = Session(r.folder.text())
            self.acq = Acquisition(self.rig, settings, session=session,
                                   name=r.name.text().strip() or None)
        except (SpadError, ValueError, OSError) as exc:
            w.show_error(str(exc))
            return
        self.acq.add_callback(self.engine_event.emit)     # from the acquisition thread: queued
        self.chunks.clear()
        self.frames.clear()
        # the engine publishes what it decoded and recorded; this mode only draws it
        self.acq.publish_to(photons=self.chunks, frames=self.frames)
        self.display_trace = IntensityTrace(analysis.trace_bin_s, analysis.detectors)
        self._shown_display = None
        self._shown_analysis: Any = None
        self._threshold_rate: float | None = None
        self._shown_verdict: Any = None
        self.camera.kept = []
        # the views showed the particle selected before: nothing of it stays on screen
        w.trace.clear_particle()
        w.decay.show_decays([("all photons", None, None, None, "")])
        w.decay.info.setText("live decay with the first live analysis (after 1 s)")
        w.g2.show_g2(None, None, None, None, None)
        w.bic.show_bic(None, None)        # the level grouping comes with the finished file
        w.spectrum.clear("no spectrum yet" if self.rig.camera is not None else "no camera")
        w.verdict.show_verdict(None, None, None, None, extra="recording: the first verdict "
                               "comes with the first live analysis")
        r.set_running(True)
        r.progress.setFormat("%p %")
        r.progress.setValue(0)
        self.instruments.set_busy(True)
        self.camera.set_busy(True)
        r.state.setText(f"recording {self.acq.name} → {self.acq.path}")
        w.status.setText(f"recording {self.acq.name}…")
        self.stats.reset()
        self.acq.start()
        self.timer.start()

    def stop(self) -> None:
        if self.acq is not None:
            self.acq.stop()

    def abort(self) -> None:
        if self.acq is not None:
            self.acq.abort()

    def shutdown(self) -> None:
        """Finish a recording in progress cleanly and release the rig (window closing)."""
        self.warm.wait()        # compiling cannot be interrupted; it ends on its own
        self.timer.stop()
        self.instruments.timer.stop()
        self.camera.stop()
        if self.acq is not None and self.recording:
            self.window.status.setText("finishing the recording…")
            self.acq.stop()
            self.acq.wait(60)
        if self._release is not None:
            self._release()
            self._release = None

    # -- events and display -----------------------------------------------------------------

    def _on_event(self, ev: Any) -> None:
        w = self.window
        if ev.kind == "error":
            w.show_error(ev.message or ev.state.error or "device error")
        elif ev.kind == "finished":
            self._finished()

    def _finished(self) -> None:
        w = self.window
        acq = self.acq
        outcome = acq.wait(10)
        self.update_display()
        self.timer.stop()
        self.recorder.set_running(False)
        self.instruments.set_busy(False)
        self.camera.set_busy(False)
        self.recorder.name.clear()
        if outcome is None:
            return
        s = outcome.state
        # a stop before the longest duration (sure, Stop, Abort, error) leaves the bar where
        # the time was: it shows the particle finished instead, and why
        self.recorder.progress.setValue(self.recorder.progress.maximum())
        self.recorder.progress.setFormat(f"finished: {outcome.stop_reason} after "
                                         f"{s.elapsed_s:.1f} s")
        text = (f"{acq.name}: {outcome.stop_reason} after {s.elapsed_s:.1f} s, {s.photons} "
                f"photons → {outcome.path}")
        if outcome.error:
            text += f"; error: {outcome.error}"
        self.recorder.state.setText(text)
        if outcome.result is not None:
            path = str(outcome.path)
            w.results[path] = outcome.result
            w.particles.add_files([path])
            w.reclassify()
            w.particles.set_current(path)
            w.show_particle(path)
        w.status.setText(text if not outcome.error else f"error: {outcome.error}")

    def _show_analysis(self, at_s: float, p: Any) -> None:
        """Draw a live :class:`~spad.analysis.photon_result.PhotonAnalysis` of the photons up to
        ``at_s`` (recorded s)."""
        w = self.window
        w.decay.show_decays([(name, edges, counts, fit,
                              None if title is None else f"live ({at_s:.0f} s): {title}")
                             for name, edges, counts, fit, title in decay_sources(p)],
                            p.decay_period_s)
        c, cg = p.correlation, p.correlation_gated
        w.g2.show_g2(None if c is None else c.lags_s, None if c is None else c.counts,
                     None if cg is None else cg.counts, p.g2_zero, p.g2_zero_err,
                     p.g2_zero_gated, p.g2_zero_gated_err)
        # the threshold as a rate: the rolling trace's bins give it in counts per bin
        self._threshold_rate = None if p.blinking is None else float(p.blinking.threshold_rate)

    def update_display(self) -> None:
        """One refresh: drain what arrived, redraw (GUI thread, every REFRESH_MS)."""
        t0 = time.perf_counter()
        acq = self.acq
        if acq is None:
            return
        w = self.window
        state = acq.snapshot()
        # the rolling trace from the chunks the engine published since the last refresh
        while self.chunks:
            self.display_trace.update(self.chunks.popleft())
        if self.display_trace is not None:
            try:
                tr = self.display_trace.result()
            except ValueError:
                tr = None
            if tr is not None and tr.total.size > 1:
                # the last bin is still filling: leave it out
                t, counts = tr.bin_edges_s[:-2], tr.total[:-1]
                keep = t >= t[-1] - ROLLING_S
                thr = (None if self._threshold_rate is None
                       else self._threshold_rate * tr.bin_width_s)
                w.trace.show_trace(t[keep], counts[keep], tr.bin_width_s, thr)
        rates = ", ".join(f"D{d} {r / 1e3:.1f} kcps" for d, r in sorted(state.rates_hz.items()))
        w.trace.info.setText(f"live: {state.elapsed_s:.1f} s, {state.photons} photons "
                             f"({rates or 'no counts yet'})")
        # the engine's last live analysis, drawn once: decays with their fits, the
        # coincidences raw and gated, the ON/OFF threshold; until the first one has finished,
        # the histograms it was started from
        a = acq.analysed
        if a is not None and a is not self._shown_analysis:
            self._shown_analysis = a
            self._show_analysis(*a)
        g = acq.gathered
        if a is None and g is not None and g is not self._shown_display:
            self._shown_display = g
            at_s, acc = g
            dec = acc.decay.result() if acc.pulsed else None
            if dec is not None:
                w.decay.show_decays([("all photons", dec.bin_edges_s, dec.counts.sum(axis=0),
                                      None, f"live decay, detectors summed ({at_s:.0f} s); "
                                      "fit with the first live analysis")])
            c = acc.correlation.result()
            if c is not None:
                w.g2.show_g2(c.lags_s, c.counts, None, state.g2_zero, state.g2_zero_err)
        shown = (state.verdict, state.probability, state.status)
        if state.verdict is not None and shown != self._shown_verdict:
            self._shown_verdict = shown
            extra = (f"live, {state.elapsed_s:.0f} s recorded" if state.status == "running"
                     else state.status)
            w.verdict.show_verdict(state.verdict, state.probability, state.p_dimer,
                                   state.evidence, "photons (live)", extra, state.inputs,
                                   state.no_information, state.reason)
        if self.frames:
            while self.frames:
                for f in self.frames.popleft():
                    self.camera.add_frame(f, draw=False)
            self.camera.draw()
        dur = self.acq.settings.duration_s
        self.recorder.progress.setValue(int(min(100, 100 * state.elapsed_s / dur)))
        self.stats.add(t0, time.perf_counter() - t0)


def open_rig(config: Path | None, seed: int | None = None) -> tuple[Any, Any]:
    """The rig of ``config`` (``spad.app.rig.open_rig``), or the simulated rig whose slide
    holds a mix of monomers and dimers, a new particle at each recording (a new slide each
    start unless ``seed`` is given); returns the rig and a function that releases it."""
    if config is not None:
        from spad.app.rig import open_rig as _open

        cm = _open(config)
    else:
        import numpy as np

        from spad.app.acquisition.simrig import simulated_rig

        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**31 - 1))
        cm = simulated_rig("mix", seed=seed, realtime=True)
    rig = cm.__enter__() if hasattr(cm, "__enter__") else cm
    return rig, (lambda: cm.__exit__(None, None, None)) if hasattr(cm, "__exit__") else None


def attach_live(window: Any, config: Path | None = None, rig: Any = None) -> LiveMode:
    """Put the live mode into ``window`` on the rig of ``config`` (or on ``rig``)."""
    release = None
    if rig is None:
        rig, release = open_rig(config)
    window.live = LiveMode(window, rig, release)
    return window.live
