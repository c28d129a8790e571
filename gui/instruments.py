"""Instrument control: camera, spectrograph and time tagger settings with their status.

A thin settings panel over the driver interfaces (``drivers/interfaces``), in the ScopeFoundry
way: the widgets write to the devices when changed, and a timer reads the status back (sensor
temperature and cooler state, grating position, sync and count rates). Calls that can take time
(a grating move) are started without waiting and followed by the status poll. Every device
error goes to :attr:`InstrumentPanel.error` and the panel stays usable.
"""

from __future__ import annotations

import threading
from typing import Any

from PyQt5 import QtCore, QtWidgets

from spad.errors import SpadError

READ_MODE_NAMES = {"image": "image", "single_track": "single track", "multi_track": "multi track",
                   "fvb": "full vertical binning"}


class InstrumentPanel(QtWidgets.QWidget):
    """Settings and status of the rig's camera, spectrograph and tagger."""

    error = QtCore.pyqtSignal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.camera: Any = None
        self.spectrograph: Any = None
        self.tagger: Any = None
        self.lock = threading.Lock()

        cam = QtWidgets.QGroupBox("EMCCD camera")
        f = QtWidgets.QFormLayout(cam)
        self.exposure = QtWidgets.QDoubleSpinBox()
        self.exposure.setDecimals(3)
        self.exposure.setRange(0.001, 60.0)
        self.exposure.setSuffix(" s")
        self.em_gain = QtWidgets.QSpinBox()
        self.em_gain.setRange(1, 1000)
        self.read_mode = QtWidgets.QComboBox()
        for k, v in READ_MODE_NAMES.items():
            self.read_mode.addItem(v, k)
        self.track = QtWidgets.QLabel("–")
        self.cooler = QtWidgets.QCheckBox("on")
        self.setpoint = QtWidgets.QSpinBox()
        self.setpoint.setRange(-100, 20)
        self.setpoint.setValue(-70)
        self.setpoint.setSuffix(" °C")
        cool = QtWidgets.QHBoxLayout()
        cool.addWidget(self.cooler)
        cool.addWidget(QtWidgets.QLabel("set point"))
        cool.addWidget(self.setpoint)
        self.temperature = QtWidgets.QLabel("–")
        f.addRow("exposure", self.exposure)
        f.addRow("EM gain", self.em_gain)
        f.addRow("read mode", self.read_mode)
        f.addRow("track rows", self.track)
        f.addRow("cooler", cool)
        f.addRow("sensor", self.temperature)

        spg = QtWidgets.QGroupBox("spectrograph")
        f = QtWidgets.QFormLayout(spg)
        self.grating = QtWidgets.QComboBox()
        self.centre = QtWidgets.QDoubleSpinBox()
        self.centre.setRange(200.0, 1400.0)
        self.centre.setDecimals(1)
        self.centre.setSuffix(" nm")
        self.go = QtWidgets.QPushButton("Go")
        c = QtWidgets.QHBoxLayout()
        c.addWidget(self.centre, 1)
        c.addWidget(self.go)
        self.position = QtWidgets.QLabel("–")
        f.addRow("grating", self.grating)
        f.addRow("centre", c)
        f.addRow("position", self.position)

        tag = QtWidgets.QGroupBox("time tagger")
        f = QtWidgets.QFormLayout(tag)
        self.mode = QtWidgets.QComboBox()
        self.mode.addItems(["T3", "T2"])
        self.sync = QtWidgets.QLabel("–")
        self.rates = QtWidgets.QLabel("–")
        self.tagger_name = QtWidgets.QLabel("–")
        f.addRow("device", self.tagger_name)
        f.addRow("mode", self.mode)
        f.addRow("sync rate", self.sync)
        f.addRow("count rates", self.rates)

        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        for g in (cam, spg, tag):
            lay.addWidget(g)
        lay.addStretch(1)

        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(1000)
        self.timer.timeout.connect(self.poll)

    # -- wiring -----------------------------------------------------------------------------

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            with self.lock:
                return fn(*args, **kwargs)
        except (SpadError, ValueError) as exc:
            self.error.emit(str(exc) if str(exc) else f"{what} failed")
            return None

    def attach(self, camera: Any, spectrograph: Any, tagger: Any,
               lock: threading.Lock | None = None) -> None:
        """Show the devices' current settings and write changes back to them."""
        self.camera, self.spectrograph, self.tagger = camera, spectrograph, tagger
        if lock is not None:
            self.lock = lock
        if camera is not None:
            for w, v in ((self.exposure, camera.get_exposure()),
                         (self.em_gain, int(camera.get_em_gain()))):
                w.blockSignals(True)
                w.setValue(v)
                w.blockSignals(False)
            i = self.read_mode.findData(camera.get_read_mode())
            self.read_mode.setCurrentIndex(max(i, 0))
            self.exposure.valueChanged.connect(
                lambda v: self._call("exposure", camera.set_exposure, v))
            self.em_gain.valueChanged.connect(
                lambda v: self._call("EM gain", camera.set_em_gain, v))
            self.read_mode.currentIndexChanged.connect(
                lambda _i: self._call("read mode", camera.set_read_mode,
                                      self.read_mode.currentData()))
            self.cooler.toggled.connect(self._cooling)
            self.setpoint.valueChanged.connect(lambda _v: self._cooling(self.cooler.isChecked()))
        if spectrograph is not None:
            gratings = self._call("gratings", spectrograph.get_gratings) or []
            for g in gratings:
                self.grating.addItem(f"{g.index}: {g.groove_density_per_m / 1e3:.0f} g/mm"
                                     + (f", blaze {g.blaze}" if g.blaze else ""), g.index)
            current = self._call("grating", spectrograph.get_grating)
            self.grating.setCurrentIndex(max(self.grating.findData(current), 0))
            wl = self._call("centre wavelength", spectrograph.get_centre_wavelength)
            if wl is not None:
                self.centre.setValue(wl * 1e9)
            self.grating.activated.connect(
                lambda _i: self._call("grating", spectrograph.set_grating,
                                      self.grating.currentData(), wait=False))
            self.go.clicked.connect(
                lambda: self._call("centre wavelength", spectrograph.set_centre_wavelength,
                                   self.centre.value() * 1e-9, wait=False))
        if tagger is not None:
            self.tagger_name.setText(getattr(tagger, "name", "time tagger"))
            self.mode.setCurrentText(tagger.config.mode)
            self.mode.activated.connect(self._tagger_mode)
        self.poll()
        self.timer.start()

    def _cooling(self, on: bool) -> None:
        self._call("cooler", self.camera.set_temperature, float(self.setpoint.value()),
                   enable_cooler=on)

    def _tagger_mode(self, _i: int) -> None:
        t = self.tagger
        c = t.config
        self._call("tagger mode", t.configure, mode=self.mode.currentText(),
                   sync_divider=c.sync_divider, binning=c.binning, offsets_s=c.offsets_s,
                   sync_offset_s=c.sync_offset_s)

    def set_track(self, rows: tuple[int, int]) -> None:
        self.track.setText(f"{rows[0]}-{rows[1] - 1}")

    def set_busy(self, busy: bool) -> None:
        """Settings that cannot change during a recording are locked meanwhile."""
        for w in (self.mode, self.exposure, self.em_gain, self.read_mode):
            w.setEnabled(not busy)

    def poll(self) -> None:
        """Read the status back from the devices (every second)."""
        cam, spg, tag = self.camera, self.spectrograph, self.tagger
        if cam is not None:
            try:
                with self.lock:
                    t, status = cam.get_temperature(), cam.get_temperature_status()
                self.temperature.setText(f"{t:.1f} °C, {status.replace('_', ' ')}")
            except SpadError as exc:
                self.temperature.setText("n/a")
                self.error.emit(str(exc))
        if spg is not None:
            try:
                with self.lock:
                    wl, moving = spg.get_centre_wavelength(), spg.is_moving()
                self.position.setText(f"{wl * 1e9:.1f} nm" + (" (moving)" if moving else ""))
            except SpadError as exc:
                self.position.setText("n/a")
                self.error.emit(str(exc))
        if tag is not None:
            try:
                sync = tag.sync_rate_hz()
                rates = tag.count_rates_hz()
                self.sync.setText(f"{sync / 1e6:.3f} MHz")
                self.rates.setText(", ".join(f"ch{i + 1} {r / 1e3:.1f} kcps"
                                             for i, r in enumerate(rates)))
            except SpadError as exc:
                self.sync.setText("n/a")
                self.error.emit(str(exc))
