"""The spectrum camera like a good camera app: live EMCCD image with the track rows marked,
continuous or single acquisition, averaging of N frames, a background taken and subtracted,
the spectrum of the track in eV, and the frames kept for the particle's record.

Frames are read in a :class:`CameraWorker` thread (the driver blocks while it waits for a
frame); the panel only draws. The spectrum of the track is the track rows minus the background
rows (:func:`spad.analysis.spectra.extract_track`) on the wavelengths the spectrograph's grating
equation gives (:meth:`spad.optics.Spectrograph.wavelengths`), converted to energy with the
Jacobian (:func:`spad.optics.spectrum_to_energy`); the fitted peak comes from
:func:`spad.analysis.spectra.analyze_spectrum` on the averaged frames.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore, QtWidgets

from spad.errors import SpadError


class CameraWorker(QtCore.QThread):
    """Reads frames from a camera in image mode: ``n_frames`` (single shot) or until stopped
    (continuous). Emits each frame; a device error ends the run and is emitted once."""

    frame = QtCore.pyqtSignal(object)
    error = QtCore.pyqtSignal(str)

    def __init__(self, camera: Any, continuous: bool, n_frames: int = 1,
                 lock: threading.Lock | None = None, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.camera = camera
        self.continuous = continuous
        self.n_frames = max(1, int(n_frames))
        self.lock = lock or threading.Lock()
        self.interrupted = False

    def run(self) -> None:
        cam = self.camera
        try:
            with self.lock:
                cam.set_read_mode("image")
                cam.set_acquisition_mode("cont" if self.continuous else "kinetic",
                                         self.n_frames)
                cam.start_acquisition()
            got = 0
            while not self.interrupted and (self.continuous or got < self.n_frames):
                with self.lock:
                    cam.wait_for_frame(timeout_s=max(5.0, 3 * cam.get_exposure()))
                    frames = cam.read_multiple_images()
                for f in frames:
                    self.frame.emit(np.asarray(f))
                    got += 1
        except SpadError as exc:
            self.error.emit(str(exc))
        finally:
            try:
                with self.lock:
                    if cam.acquisition_in_progress():
                        cam.stop_acquisition()
            except SpadError:
                pass


class CameraPanel(QtWidgets.QWidget):
    """EMCCD image with track and background rows, and the camera app's controls."""

    spectrum_ready = QtCore.pyqtSignal(object, object)   # energy (eV), intensity (ADU / eV)
    error = QtCore.pyqtSignal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.camera: Any = None
        self.spectrograph: Any = None
        self.lock = threading.Lock()
        self.worker: CameraWorker | None = None
        self.background: np.ndarray | None = None
        self._taking_background = False
        self._bg_frames: list[np.ndarray] = []
        self.frames: deque[np.ndarray] = deque(maxlen=10)
        self.kept: list[np.ndarray] = []      # frames of the current particle's record
        self._sum: np.ndarray | None = None

        self.view = pg.PlotWidget()
        self.view.setMinimumSize(200, 160)     # room for the axis labels below and left
        self.view.setLabel("bottom", "column (pixel, along the dispersion)")
        self.view.setLabel("left", "row (pixel)")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self.view.getPlotItem().invertY(False)
        self.track = pg.LinearRegionItem(orientation="horizontal", brush=(214, 39, 40, 40),
                                         pen=pg.mkPen((214, 39, 40), width=1))
        self.bg_lo = pg.LinearRegionItem(orientation="horizontal", brush=(31, 119, 180, 30),
                                         pen=pg.mkPen((31, 119, 180)), movable=False)
        self.bg_hi = pg.LinearRegionItem(orientation="horizontal", brush=(31, 119, 180, 30),
                                         pen=pg.mkPen((31, 119, 180)), movable=False)
        for item in (self.track, self.bg_lo, self.bg_hi):
            self.view.addItem(item)
        self.track.sigRegionChanged.connect(self._track_moved)

        self.continuous = QtWidgets.QPushButton("Continuous")
        self.continuous.setCheckable(True)
        self.continuous.toggled.connect(self._toggle_continuous)
        self.single = QtWidgets.QPushButton("Single")
        self.single.clicked.connect(self.acquire_single)
        self.take_bg = QtWidgets.QPushButton("Take background")
        self.take_bg.setToolTip("average the next N frames as the background (move the "
                                "particle out of focus or block the laser first)")
        self.take_bg.clicked.connect(self.take_background)
        self.subtract = QtWidgets.QCheckBox("subtract")
        self.subtract.setEnabled(False)
        self.average = QtWidgets.QSpinBox()
        self.average.setRange(1, 100)
        self.average.setValue(5)
        self.average.setPrefix("average ")
        self.average.setSuffix(" frames")
        self.average.valueChanged.connect(lambda n: self._resize_average(n))
        self.info = QtWidgets.QLabel("")
        self.info.setWordWrap(True)
        # two lines: the dock's layout sizes a wrapped label for one line (Qt does not pass
        # height-for-width up through dock widgets), and the second line then pushed the
        # image's axis label under the buttons
        self.info.setMinimumHeight(2 * self.info.fontMetrics().lineSpacing() + 2)
        # three rows: in one, the controls alone set a 660 px wide column (too wide beside the
        # trace on a 1366 px laptop screen)
        row = QtWidgets.QGridLayout()
        row.addWidget(self.continuous, 0, 0)
        row.addWidget(self.single, 0, 1)
        row.addWidget(self.average, 1, 0, 1, 2)
        row.addWidget(self.take_bg, 2, 0)
        row.addWidget(self.subtract, 2, 1)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.info)
        lay.addWidget(self.view, 1)
        lay.addLayout(row)

    # -- devices ----------------------------------------------------------------------------

    def attach(self, camera: Any, spectrograph: Any, lock: threading.Lock | None = None) -> None:
        self.camera, self.spectrograph = camera, spectrograph
        if lock is not None:
            self.lock = lock
        n_cols, n_rows = camera.get_detector_size()
        centre = n_rows // 2
        self.set_track(centre - 4, centre + 4)
        self.view.setXRange(0, n_cols, padding=0)
        self.view.setYRange(0, n_rows, padding=0)

    def set_track(self, start: int, stop: int) -> None:
        self.track.setRegion((start, stop))
        self._track_moved()

    def track_rows(self) -> tuple[tuple[int, int], list[tuple[int, int]]]:
        """The track rows ``[start, stop)`` and the background bands on either side of it."""
        lo, hi = self.track.getRegion()
        s0, s1 = int(round(lo)), max(int(round(hi)), int(round(lo)) + 1)
        h, gap = s1 - s0, 2
        n_rows = self.camera.get_detector_size()[1] if self.camera is not None else 1 << 16
        bands = [(max(0, s0 - gap - h), max(0, s0 - gap)),
                 (min(n_rows, s1 + gap), min(n_rows, s1 + gap + h))]
        return (s0, s1), [b for b in bands if b[1] > b[0]]

    def _track_moved(self) -> None:
        (s0, s1), bands = self.track_rows()
        for item, band in zip((self.bg_lo, self.bg_hi), bands + [None, None], strict=False):
            if band is None:
                item.hide()
            else:
                item.setRegion(band)
                item.show()
        self.info.setText(f"track rows {s0}-{s1 - 1} (red), background rows either side "
                          "(blue); drag the red band onto the particle's image")

    # -- acquisition ------------------------------------------------------------------------

    def set_busy(self, busy: bool) -> None:
        """While the engine records, it owns the camera: no acquisition from here."""
        for w in (self.continuous, self.single, self.take_bg):
            w.setEnabled(not busy)

    def _start(self, continuous: bool, n: int) -> None:
        if self.camera is None or (self.worker is not None and self.worker.isRunning()):
            return
        self.worker = CameraWorker(self.camera, continuous, n, self.lock)
        self.worker.frame.connect(self.add_frame)
        self.worker.error.connect(self.error.emit)
        self.worker.finished.connect(lambda: self.continuous.setChecked(False))
        self.worker.start()

    def _toggle_continuous(self, on: bool) -> None:
        if on:
            self._start(True, 1)
        else:
            self.stop()

    def acquire_single(self) -> None:
        self._start(False, self.average.value())

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.interrupted = True
            self.worker.wait(10_000)

    def take_background(self) -> None:
        self._bg_frames = []
        self._taking_background = True
        if self.worker is None or not self.worker.isRunning():
            self._start(False, self.average.value())

    def _resize_average(self, n: int) -> None:
        self.frames = deque(self.frames, maxlen=max(1, n))
        self._sum = np.sum(self.frames, axis=0) if self.frames else None

    def add_frame(self, frame: np.ndarray, draw: bool = True) -> None:
        """Take one frame (averaged with the last N) and, with ``draw``, redraw the image and
        the track's spectrum (the live mode draws once per refresh, whatever arrived)."""
        frame = np.asarray(frame, dtype=np.float64)
        if self._taking_background:
            self._bg_frames.append(frame)
            if len(self._bg_frames) >= self.average.value():
                self.background = np.mean(self._bg_frames, axis=0)
                self._taking_background = False
                self.subtract.setEnabled(True)
                self.subtract.setChecked(True)
            return
        if self._sum is None or self._sum.shape != frame.shape:
            self._sum = np.zeros_like(frame)
            self.frames.clear()
        if len(self.frames) == self.frames.maxlen:
            self._sum -= self.frames[0]           # running sum of the last N frames
        self.frames.append(frame)
        self._sum += frame
        self.kept.append(frame)
        if len(self.kept) > 2000:      # bounded memory: a particle's record keeps its last frames
            del self.kept[0]
        if draw:
            self.draw()

    def draw(self) -> None:
        """Redraw the image (mean of the last N frames) and the spectrum of its track."""
        if not self.frames:
            return
        img = self.mean_frame()
        lo, hi = np.percentile(img[::4, ::4], (1.0, 99.9))  # robust contrast, noise clipped
        self.image.setImage(img, autoLevels=False, levels=(lo, max(hi, lo + 1)))
        self.spectrum_from(img)

    def mean_frame(self) -> np.ndarray:
        img = self._sum / len(self.frames)
        if self.subtract.isChecked() and self.background is not None \
                and self.background.shape == img.shape:
            img = img - self.background
        return img

    def wavelengths_m(self, n_columns: int) -> np.ndarray | None:
        if self.spectrograph is None or self.camera is None:
            return None
        with self.lock:
            optics = self.spectrograph.get_optics()
            centre = self.spectrograph.get_centre_wavelength()
        return optics.wavelengths(centre, n_columns, self.camera.get_pixel_size())

    def spectrum_from(self, img: np.ndarray) -> None:
        from spad.analysis.spectra import extract_track

        from spad.optics import spectrum_to_energy

        signal, bands = self.track_rows()
        if img.ndim != 2 or signal[1] > img.shape[0]:
            return
        spec = extract_track(img[np.newaxis], signal, bands or None)[0]
        wl = self.wavelengths_m(img.shape[1])
        if wl is None:
            return
        # counts per pixel -> per metre (pixel width in wavelength), then the Jacobian to eV
        energy, per_ev = spectrum_to_energy(wl, spec / np.abs(np.gradient(wl)))
        self.spectrum_ready.emit(energy, per_ev)
