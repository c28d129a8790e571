"""Simulated spectrograph and EMCCD camera behind the driver interfaces.

:class:`SimulatedSpectrograph` turns its grating at a finite speed (a move takes time, a grating
change longer), and refuses what an Acton refuses: wavelengths outside the drive's range or that
the grating equation cannot centre, unknown gratings, commands while closed.

:class:`SimulatedCamera` renders frames from a :class:`Scene` (the emitters currently in focus,
their track on the chip and the background) through the spectrograph's current grating and
centre wavelength, with the EMCCD noise model of :mod:`spad.simulators.emccd`. Time runs on a clock
that can be the wall clock or a :class:`ManualClock` (tests, fast demos): frames become available
one cycle (exposure + read-out) after another, and the sensor cools at a finite rate.

Both take faults (``inject``), for the first-light check ``spad devices --check``: the
spectrograph's :data:`SPECTROGRAPH_FAULTS` (``"stuck"``: the drive does not turn although the
move reports done; ``"position_error"``: it stops 0.5 nm beyond the target, as after lost
steps), the camera's :data:`CAMERA_FAULTS` (``"cooler_off"``: the cooler does not run;
``"no_frame"``: no frame ever arrives; ``"saturated"``: a quarter of the chip is saturated, as
with a light leak or the shutter open to the room).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from spad.drivers.interfaces.camera import (
    ACQUISITION_MODES,
    READ_MODES,
    AcquisitionMode,
    CameraInterface,
    ReadMode,
    TemperatureStatus,
)
from spad.drivers.interfaces.spectrograph import Grating, SpectrographInterface
from spad.simulators.emccd import Emccd, Readout, emccd_frames
from spad.simulators.spectrum import EmissionLine, SpectrumSetup, mean_photons

from spad.errors import DeviceError
from spad.optics import Spectrograph


class WallClock:
    """Real time: ``now()`` is ``time.monotonic()``, ``sleep`` sleeps."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ManualClock:
    """Simulated time: ``sleep`` advances ``now`` instantly (and so does :meth:`advance`)."""

    def __init__(self, start_s: float = 0.0) -> None:
        self.t = float(start_s)

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, float(seconds))

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        self.sleep(seconds)


SPECTROGRAPH_FAULTS = ("stuck", "position_error")
CAMERA_FAULTS = ("cooler_off", "no_frame", "saturated")


def _check_fault(fault: str | None, known: tuple[str, ...], what: str) -> str | None:
    if fault is not None and fault not in known:
        raise ValueError(f"unknown {what} fault {fault!r} (use {known})")
    return fault


DEFAULT_GRATINGS: tuple[Grating, ...] = (
    Grating(1, 300e3, "500NM"), Grating(2, 600e3, "500NM"), Grating(3, 1200e3, "500NM"))


class SimulatedSpectrograph(SpectrographInterface):
    """An Acton SpectraPro-like spectrograph (0.3 m, three-grating turret).

    Parameters
    ----------
    gratings
        The turret.
    focal_length_m
        Focal length.
    centre_wavelength_m, grating
        Power-up state.
    scan_speed_m_per_s
        Wavelength scan speed of a GOTO move (for the 1200 g/mm equivalent; a coarser grating
        covers proportionally more wavelength per turn of the drive).
    grating_change_s
        Time for a turret move.
    drive_range_m
        Drive range in 1200 g/mm-equivalent wavelength (Acton: 0-1400 nm).
    clock
        :class:`WallClock` (default) or :class:`ManualClock`.
    """

    def __init__(self, gratings: Sequence[Grating] = DEFAULT_GRATINGS,
                 focal_length_m: float = 0.300, centre_wavelength_m: float = 630e-9,
                 grating: int = 1, scan_speed_m_per_s: float = 50e-9,
                 grating_change_s: float = 15.0, drive_range_m: float = 1400e-9,
                 clock: WallClock | ManualClock | None = None,
                 name: str = "simulated spectrograph") -> None:
        self.name = name
        self._gratings = list(gratings)
        if not self._gratings or len({g.index for g in self._gratings}) != len(self._gratings):
            raise ValueError("gratings must be non-empty with distinct indices")
        self._focal = float(focal_length_m)
        self._speed = float(scan_speed_m_per_s)
        self._turret_s = float(grating_change_s)
        self._range = float(drive_range_m)
        self.clock = clock or WallClock()
        self._grating = int(grating)
        self._open = False
        self.fault: str | None = None
        # A move: from (t0, wl0) to (t1, wl1), linear in time.
        self._move = (self.clock.now(), float(centre_wavelength_m),
                      self.clock.now(), float(centre_wavelength_m))
        self._check_wavelength(float(centre_wavelength_m), self._grating)

    # -- helpers ----------------------------------------------------------------------------

    def _require_open(self) -> None:
        if not self._open:
            raise DeviceError(self.name, "not open")

    def _grating_by_index(self, index: int) -> Grating:
        for g in self._gratings:
            if g.index == index:
                return g
        raise DeviceError(self.name, f"no grating {index} in the turret "
                                     f"(have {[g.index for g in self._gratings]})")

    def _check_wavelength(self, wavelength_m: float, grating: int) -> None:
        g = self._grating_by_index(grating)
        limit = self._range * 1200e3 / g.groove_density_per_m
        if not (math.isfinite(wavelength_m) and 0.0 <= wavelength_m <= limit):
            raise DeviceError(self.name, f"{wavelength_m * 1e9:g} nm outside the drive's range "
                                         f"0-{limit * 1e9:g} nm for grating {grating}")
        try:
            Spectrograph(groove_density_per_m=g.groove_density_per_m,
                         focal_length_m=self._focal).grating_angle(wavelength_m)
        except ValueError as exc:
            raise DeviceError(self.name, str(exc)) from None

    def _position(self) -> float:
        t0, w0, t1, w1 = self._move
        now = self.clock.now()
        if now >= t1 or t1 == t0:
            return w1
        return w0 + (w1 - w0) * max(0.0, now - t0) / (t1 - t0)

    def _wait(self, timeout_s: float) -> None:
        remaining = self._move[2] - self.clock.now()
        if remaining > timeout_s:
            self.clock.sleep(timeout_s)
            raise DeviceError(self.name, f"move not finished within {timeout_s:g} s")
        self.clock.sleep(remaining)

    # -- interface --------------------------------------------------------------------------

    def inject(self, fault: str | None) -> None:
        """Switch a fault on (one of :data:`SPECTROGRAPH_FAULTS`) or off (``None``)."""
        self.fault = _check_fault(fault, SPECTROGRAPH_FAULTS, "spectrograph")

    def open(self) -> None:
        self._open = True

    def close(self) -> None:
        self._open = False

    def is_opened(self) -> bool:
        return self._open

    def get_centre_wavelength(self) -> float:
        self._require_open()
        return self._position()

    def set_centre_wavelength(self, wavelength_m: float, wait: bool = True,
                              timeout_s: float = 60.0) -> None:
        self._require_open()
        if self.is_moving():
            raise DeviceError(self.name, "busy: a move is still in progress")
        target = float(wavelength_m)
        self._check_wavelength(target, self._grating)
        g = self._grating_by_index(self._grating)
        speed = self._speed * 1200e3 / g.groove_density_per_m
        here = self._position()
        if self.fault == "stuck":
            target = here
        elif self.fault == "position_error":
            target += 0.5e-9
        now = self.clock.now()
        self._move = (now, here, now + abs(target - here) / speed, target)
        if wait:
            self._wait(timeout_s)

    def is_moving(self) -> bool:
        self._require_open()
        return self.clock.now() < self._move[2]

    def wait_until_idle(self, timeout_s: float = 60.0) -> None:
        self._require_open()
        self._wait(timeout_s)

    def get_gratings(self) -> list[Grating]:
        self._require_open()
        return list(self._gratings)

    def get_grating(self) -> int:
        self._require_open()
        return self._grating

    def set_grating(self, index: int, wait: bool = True, timeout_s: float = 60.0) -> None:
        self._require_open()
        if self.is_moving():
            raise DeviceError(self.name, "busy: a move is still in progress")
        index = int(index)
        here = self._position()
        self._check_wavelength(here, index)
        if index != self._grating:
            self._grating = index
            now = self.clock.now()
            self._move = (now, here, now + self._turret_s, here)
        if wait:
            self._wait(timeout_s)

    def get_focal_length(self) -> float:
        return self._focal


@dataclass
class Scene:
    """What the camera sees: the emitters in focus, their track, the background.

    Parameters
    ----------
    lines
        Emission lines of the emitters in focus (empty: background only).
    track_centre_row, track_sigma_rows
        Where the particle's image falls across the rows and its width.
    background_photons_per_pixel_s
        Stray light and autofluorescence per physical pixel.
    brightness
        ``brightness(t0_s, t1_s)`` -> mean relative brightness of each line over that window
        (blinking); ``None``: always 1.
    """

    lines: Sequence[EmissionLine] = field(default_factory=list)
    track_centre_row: float = 256.0
    track_sigma_rows: float = 1.5
    background_photons_per_pixel_s: float = 5.0
    brightness: Callable[[float, float], Sequence[float]] | None = None


class SimulatedCamera(CameraInterface):
    """An Andor iXon3-like EMCCD rendering a :class:`Scene` through a spectrograph.

    Parameters
    ----------
    scene
        What is in focus (may be replaced at any time through :attr:`scene`).
    spectrograph
        Where the grating and centre wavelength come from; ``None``: a fixed 300 g/mm grating
        at 630 nm.
    sensor
        The EMCCD model (its ``dark_e_per_pixel_s`` applies at -80 °C; dark current halves
        every 7 °C of cooling).
    seed
        Seed of the noise.
    clock
        :class:`WallClock` (default) or :class:`ManualClock`.
    cooling_rate_c_per_s
        How fast the sensor approaches the set point.
    pixel_rate_hz
        Read-out pixel rate (sets the read-out time added to each exposure).
    """

    AMBIENT_C = 20.0
    STABILISE_S = 10.0
    BUFFER_FRAMES = 256

    def __init__(self, scene: Scene | None = None,
                 spectrograph: SpectrographInterface | None = None,
                 sensor: Emccd | None = None, seed: int | None = None,
                 clock: WallClock | ManualClock | None = None,
                 cooling_rate_c_per_s: float = 1.0, pixel_rate_hz: float = 1e6,
                 name: str = "simulated EMCCD") -> None:
        self.name = name
        self.scene = scene or Scene()
        self.spectrograph = spectrograph
        self.sensor = sensor or Emccd()
        self.clock = clock or WallClock()
        self._rng = np.random.default_rng(seed)
        self._cool_rate = float(cooling_rate_c_per_s)
        self._pixel_rate = float(pixel_rate_hz)
        self._open = False
        self._exposure = 0.08
        self._gain = 1.0
        self._setpoint: float | None = None
        self._cooler = False
        self._temp_t0, self._temp0 = self.clock.now(), self.AMBIENT_C
        self._read_mode: ReadMode = "image"
        n = self.sensor.n_rows
        self._track = (n // 2, 16)
        self._multi = (1, 16, 0)
        self._roi = (0, self.sensor.n_columns, 0, n)
        self._acq_mode: AcquisitionMode = "single"
        self._acq_frames = 1
        self._running = False
        self._acq = None  # (t0, cycle_s, total frames, readout, column slice, accum count)
        self._acquired = 0
        self._stopped_at: int | None = None
        self._unread: list[np.ndarray] = []
        self.fault: str | None = None

    def inject(self, fault: str | None) -> None:
        """Switch a fault on (one of :data:`CAMERA_FAULTS`) or off (``None``)."""
        self.fault = _check_fault(fault, CAMERA_FAULTS, "camera")
        if fault == "cooler_off" and self._setpoint is not None:
            self.set_temperature(self._setpoint)

    # -- helpers ----------------------------------------------------------------------------

    def _require_open(self) -> None:
        if not self._open:
            raise DeviceError(self.name, "not open")

    def _require_idle(self, what: str) -> None:
        self._require_open()
        if self.acquisition_in_progress():
            raise DeviceError(self.name, f"cannot change {what} during an acquisition")

    def _readout(self) -> Readout:
        s = self.sensor
        if self._read_mode == "fvb":
            return Readout.fvb(s)
        if self._read_mode == "single_track":
            return Readout.single_track(s, *self._track)
        if self._read_mode == "multi_track":
            return Readout.multi_track(s, *self._multi)
        return Readout.image(s, self._roi[2], self._roi[3])

    def _sensor_now(self) -> Emccd:
        temp = self.get_temperature()
        dark = self.sensor.dark_e_per_pixel_s * 2.0 ** ((temp + 80.0) / 7.0)
        return dataclasses.replace(self.sensor, dark_e_per_pixel_s=dark)

    def _optics(self) -> tuple[Spectrograph, float]:
        if self.spectrograph is None:
            return Spectrograph(), 630e-9
        return self.spectrograph.get_optics(), self.spectrograph.get_centre_wavelength()

    def _render(self, first: int, last: int) -> None:
        """Render frames ``first..last-1`` of the running acquisition into the unread buffer."""
        t0, cycle, _, readout, cols, n_acc = self._acq
        optics, centre = self._optics()
        scene = self.scene
        sensor = self._sensor_now()
        setup = SpectrumSetup(spectrograph=optics, centre_wavelength_m=centre, sensor=sensor,
                              exposure_s=self._exposure, em_gain=self._gain,
                              track_centre_row=scene.track_centre_row,
                              track_sigma_rows=scene.track_sigma_rows,
                              background_photons_per_pixel_s=scene.background_photons_per_pixel_s)
        sub = cycle / n_acc
        starts = t0 + np.arange(first * n_acc, last * n_acc) * sub
        lines = list(scene.lines)
        if scene.brightness is None:
            intensity = np.ones((len(lines), starts.size))
        else:
            intensity = np.array([scene.brightness(s, s + self._exposure) for s in starts],
                                 dtype=float).reshape(starts.size, len(lines)).T
        phi = mean_photons(lines, setup, readout, intensity)
        adu = emccd_frames(phi, sensor, readout, self._gain, self._exposure, self._rng)
        adu = adu[..., cols]
        if n_acc > 1:
            adu = adu.astype(np.int64).reshape((last - first, n_acc) + adu.shape[1:]).sum(1)
        self._unread.extend(list(adu))

    def _update(self) -> None:
        """Bring the acquired-frame count (and the buffer) up to the clock."""
        if self._acq is None:
            return
        t0, cycle, total, *_ = self._acq
        if self._stopped_at is not None:
            due = self._stopped_at
        else:
            due = min(total, int(math.floor((self.clock.now() - t0) / cycle + 1e-9)))
        if due > self._acquired:
            # Like the camera's ring buffer: frames not read in time are overwritten.
            first = max(self._acquired, due - self.BUFFER_FRAMES)
            self._render(first, due)
            self._unread = self._unread[-self.BUFFER_FRAMES:]
            self._acquired = due
        if self._acquired >= total:
            self._running = False

    # -- connection -------------------------------------------------------------------------

    def open(self) -> None:
        self._open = True

    def close(self) -> None:
        if self._open and self._running:
            self.stop_acquisition()
        self._open = False

    def is_opened(self) -> bool:
        return self._open

    def get_device_info(self) -> dict[str, object]:
        self._require_open()
        return {"model": "simulated iXon3 897", "serial_number": 0,
                "n_rows": self.sensor.n_rows, "n_columns": self.sensor.n_columns,
                "pixel_size_m": self.sensor.pixel_size_m, "adc_bits": self.sensor.adc_bits}

    def get_detector_size(self) -> tuple[int, int]:
        return self.sensor.n_columns, self.sensor.n_rows

    def get_pixel_size(self) -> float:
        return self.sensor.pixel_size_m

    # -- exposure, gain, cooling ------------------------------------------------------------

    def set_exposure(self, exposure_s: float) -> float:
        self._require_idle("the exposure")
        e = float(exposure_s)
        if not (1e-5 <= e <= 3600.0):
            raise DeviceError(self.name, f"exposure {exposure_s!r} s outside 10 µs..1 h")
        self._exposure = e
        return e

    def get_exposure(self) -> float:
        return self._exposure

    def set_em_gain(self, gain: float) -> float:
        self._require_idle("the EM gain")
        self._gain = self.sensor.check_gain(gain, self.name)
        return self._gain

    def get_em_gain(self) -> float:
        return self._gain

    def get_preamp_gain(self) -> float:
        return self.sensor.preamp_gain_e_per_adu

    def set_temperature(self, celsius: float, enable_cooler: bool = True) -> None:
        self._require_open()
        c = float(celsius)
        if not (-120.0 <= c <= 30.0):
            raise DeviceError(self.name, f"temperature set point {celsius!r} °C outside "
                                         "-120..30 °C")
        self._temp_t0, self._temp0 = self.clock.now(), self.get_temperature()
        self._setpoint = c if enable_cooler else None
        self._cooler = enable_cooler and self.fault != "cooler_off"

    def _temperature_and_arrival(self) -> tuple[float, float]:
        cooling = self._setpoint is not None and self._cooler
        target = self._setpoint if cooling else self.AMBIENT_C
        dt = self.clock.now() - self._temp_t0
        span = abs(target - self._temp0)
        reached_at = self._temp_t0 + span / self._cool_rate
        if dt * self._cool_rate >= span:
            return target, reached_at
        return self._temp0 + math.copysign(dt * self._cool_rate, target - self._temp0), \
            reached_at

    def get_temperature(self) -> float:
        return self._temperature_and_arrival()[0]

    def get_temperature_status(self) -> TemperatureStatus:
        self._require_open()
        if self._setpoint is None or not self._cooler:
            return "off"
        temp, reached_at = self._temperature_and_arrival()
        if abs(temp - self._setpoint) > 1.0:
            return "not_reached"
        if self.clock.now() < reached_at + self.STABILISE_S:
            return "not_stabilized"
        return "stabilized"

    # -- read-out geometry ------------------------------------------------------------------

    def set_read_mode(self, mode: ReadMode) -> None:
        self._require_idle("the read mode")
        if mode not in READ_MODES:
            raise DeviceError(self.name, f"unknown read mode {mode!r} (use {READ_MODES})")
        self._read_mode = mode

    def get_read_mode(self) -> ReadMode:
        return self._read_mode

    def setup_single_track_mode(self, center: int, width: int) -> None:
        self._require_idle("the track")
        Readout.single_track(self.sensor, center, width)      # raises for impossible tracks
        self._track = (int(center), int(width))

    def setup_multi_track_mode(self, number: int, height: int, offset: int = 0) -> None:
        self._require_idle("the tracks")
        Readout.multi_track(self.sensor, number, height, offset)
        self._multi = (int(number), int(height), int(offset))

    def set_roi(self, hstart: int = 0, hend: int | None = None, vstart: int = 0,
                vend: int | None = None) -> None:
        self._require_idle("the region of interest")
        s = self.sensor
        hend = s.n_columns if hend is None else int(hend)
        vend = s.n_rows if vend is None else int(vend)
        if not (0 <= hstart < hend <= s.n_columns and 0 <= vstart < vend <= s.n_rows):
            raise DeviceError(self.name, f"ROI columns {hstart}..{hend}, rows {vstart}..{vend} "
                                         f"outside the {s.n_columns} x {s.n_rows} chip")
        self._roi = (int(hstart), hend, int(vstart), vend)

    # -- acquisition ------------------------------------------------------------------------

    def set_acquisition_mode(self, mode: AcquisitionMode, n_frames: int = 1) -> None:
        self._require_idle("the acquisition mode")
        if mode not in ACQUISITION_MODES:
            raise DeviceError(self.name, f"unknown acquisition mode {mode!r} "
                                         f"(use {ACQUISITION_MODES})")
        if int(n_frames) < 1:
            raise DeviceError(self.name, f"frame count must be >= 1, not {n_frames!r}")
        self._acq_mode, self._acq_frames = mode, int(n_frames)

    def get_acquisition_mode(self) -> tuple[AcquisitionMode, int]:
        return self._acq_mode, self._acq_frames

    def start_acquisition(self) -> None:
        self._require_open()
        if self.acquisition_in_progress():
            raise DeviceError(self.name, "an acquisition is already running")
        readout = self._readout()
        n_pixels = readout.n_outputs * self.sensor.n_columns
        read_s = n_pixels / self._pixel_rate + 1e-3
        n_acc = self._acq_frames if self._acq_mode == "accum" else 1
        total = {"single": 1, "accum": 1, "kinetic": self._acq_frames,
                 "cont": 1 << 62}[self._acq_mode]
        cols = slice(self._roi[0], self._roi[1])
        self._acq = (self.clock.now(), (self._exposure + read_s) * n_acc, total, readout, cols,
                     n_acc)
        self._acquired, self._stopped_at, self._unread = 0, None, []
        self._running = True

    def stop_acquisition(self) -> None:
        self._require_open()
        self._update()
        if self._running:
            self._stopped_at = self._acquired
            self._running = False

    def acquisition_in_progress(self) -> bool:
        self._update()
        return self._running

    def wait_for_frame(self, timeout_s: float = 20.0) -> None:
        self._require_open()
        self._update()
        if self._unread:
            return
        if not self._running:
            raise DeviceError(self.name, "no acquisition running and no unread frame")
        if self.fault == "no_frame":
            self.clock.sleep(timeout_s)
            raise DeviceError(self.name, f"no frame within {timeout_s:g} s")
        t0, cycle, *_ = self._acq
        wait = t0 + (self._acquired + 1) * cycle - self.clock.now()
        if wait > timeout_s:
            self.clock.sleep(timeout_s)
            self._update()
            raise DeviceError(self.name, f"no frame within {timeout_s:g} s")
        self.clock.sleep(wait + 1e-9)
        self._update()

    def get_frames_status(self) -> tuple[int, int]:
        self._require_open()
        self._update()
        return self._acquired, len(self._unread)

    def read_multiple_images(self) -> np.ndarray:
        return self.read_frames_indexed()[0]

    def read_frames_indexed(self) -> tuple[np.ndarray, int]:
        """The unread frames (as :meth:`read_multiple_images`) and the index of the first of
        them in the acquisition, both from one reading of the clock: a frame that ends
        between two calls would otherwise be counted but not read, or read but not counted."""
        self._require_open()
        self._update()
        frames, self._unread = self._unread, []
        return self._stack(frames), self._acquired - len(frames)

    def _stack(self, frames: list[np.ndarray]) -> np.ndarray:
        if frames:
            out = np.stack(frames)
            if self.fault == "saturated":
                out[..., : out.shape[-1] // 4] = 2 ** self.sensor.adc_bits - 1
            return out
        shape = {"fvb": (), "single_track": ()}.get(self._read_mode)
        if shape is None:
            shape = (self._readout().n_outputs,)
        return np.empty((0,) + shape + (self._roi[1] - self._roi[0],), dtype=np.uint16)
