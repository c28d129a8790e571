"""Andor iXon EMCCD (SDK2) behind :class:`CameraInterface`, a thin layer over pylablib.

:class:`AndorCamera` drives pylablib's ``Andor.AndorSDK2Camera`` (ScopeFoundry style: the plain
device class underneath, named settings on top) and names every setting for what it is: the
EM gain (``set_em_gain``, with the advanced-gain guard: above 300 only when the rig file allows
it, because high EM gain ages the register), the pre-amplifier setting (``set_preamp``, an index
into the camera's pre-amp gains) and the read-out speed (``set_readout_speed``, an index into
its horizontal shift speeds). ``get_preamp_gain`` returns electrons per ADU, which the SDK does
not report: it comes from the camera's performance sheet through the rig file's
``sensitivity_e_per_adu`` (one value per pre-amp setting), or is an error.

Read modes ``"fvb"``, ``"single_track"`` (centre row, height), ``"multi_track"`` and ``"image"``
(ROI and binning); acquisition modes ``"single"``, ``"accum"``, ``"kinetic"`` (frame count, cycle
time) and ``"cont"``; cooler, set point and temperature status (pylablib's ``"off"``,
``"not_reached"``, ``"not_stabilized"``, ``"stabilized"``, ``"drifted"``); shutter. Frames come
with their metadata (:meth:`AndorCamera.read_frames_with_info`): index in the acquisition and a
timestamp, the host's start time plus index x kinetic cycle time (the SDK2 has no per-frame
hardware time stamp).

Errors from pylablib or the SDK become :class:`~spad.drivers.andor.errors.AndorCameraError` naming
the camera; a camera that stops answering (``DRV_ERROR_ACK``) is closed at once.

Rig file (Qudi-style config example)::

    [camera]
    backend = "andor"
    index = 0
    temperature_c = -80.0
    exposure_s = 0.1
    em_gain = 100.0
    advanced_em_gain = false
    preamp = 1
    hsspeed = 0
    sensitivity_e_per_adu = [15.9, 6.1, 3.2]   # from the camera's test sheet
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from spad.drivers.andor.errors import AndorCameraError, AndorCameraLost, translated
from spad.drivers.andor.sdk import connect_sdk2
from spad.drivers.interfaces.camera import (
    ACQUISITION_MODES,
    READ_MODES,
    AcquisitionMode,
    CameraInterface,
    ReadMode,
    TemperatureStatus,
)

MAX_EM_GAIN_NORMAL = 300
"""Largest EM gain without the SDK's advanced mode (Andor SDK2 manual, SetEMAdvanced)."""


class AndorCamera(CameraInterface):
    """An Andor iXon through pylablib (see the module docstring).

    Parameters
    ----------
    index
        SDK camera index.
    temperature_c, exposure_s, em_gain, preamp, hsspeed
        Applied on opening (the SDK resets the camera when connecting).
    advanced_em_gain
        Allow EM gain above 300.
    sensitivity_e_per_adu
        Electrons per ADU for each pre-amp setting (performance sheet).
    connect
        ``connect(name, index, temperature)`` -> a pylablib ``AndorSDK2Camera`` (or a stand-in
        with its surface); default: :func:`spad.drivers.andor.sdk.connect_sdk2`.
    """

    def __init__(self, index: int = 0, temperature_c: float = -80.0, exposure_s: float = 0.1,
                 em_gain: float = 1.0, advanced_em_gain: bool = False, preamp: int = 0,
                 hsspeed: int = 0, sensitivity_e_per_adu: Sequence[float] = (),
                 connect: Callable[..., Any] | None = None) -> None:
        self.name = f"Andor camera {index}"
        self.index = int(index)
        self._settings = dict(temperature_c=temperature_c, exposure_s=exposure_s,
                              em_gain=em_gain, preamp=preamp, hsspeed=hsspeed)
        self.advanced_em_gain = bool(advanced_em_gain)
        self.sensitivity_e_per_adu = tuple(float(s) for s in sensitivity_e_per_adu)
        self._connect = connect or connect_sdk2
        self._cam: Any = None
        self._roi = (0, None, 0, None, 1, 1)
        self._acq = ("single", 1)
        self._cycle_s = 0.0
        self._t0: float | None = None

    # -- plumbing ---------------------------------------------------------------------------

    def _do(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._cam is None:
            raise AndorCameraError(self.name, f"{what}: not open")
        try:
            with translated(self.name, what):
                return getattr(self._cam, method)(*args, **kwargs)
        except AndorCameraLost:
            self.close()
            raise

    # -- connection -------------------------------------------------------------------------

    def open(self) -> None:
        if self._cam is not None:
            return
        s = self._settings
        self._cam = self._connect(self.name, self.index, s["temperature_c"])
        try:
            info = self.get_device_info()
            self.name = f"Andor {info['model']} #{info['serial_number']}"
            self.set_preamp(s["preamp"])
            self.set_readout_speed(s["hsspeed"])
            self.set_em_gain(s["em_gain"])
            self.set_exposure(s["exposure_s"])
            self.set_temperature(s["temperature_c"])
            self._do("shutter", "setup_shutter", "auto")
            self.set_read_mode("fvb")
            self.set_acquisition_mode("single")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            # Always release: an unclosed SDK2 camera can stay locked until a reboot.
            try:
                if cam.acquisition_in_progress():
                    cam.stop_acquisition()
            except Exception:  # noqa: BLE001 - a lost camera must still be released
                pass
            try:
                cam.close()
            except Exception:  # noqa: BLE001
                pass

    def is_opened(self) -> bool:
        return self._cam is not None

    def get_device_info(self) -> dict[str, object]:
        info = self._do("device info", "get_device_info")
        # the ADC depth of the current channel: full scale for a saturation check (an iXon's
        # fast read-out channels have fewer bits than its 16-bit slow one)
        bits = int(self._do("bit depth", "get_channel_bitdepth"))
        return {"model": info.head_model, "controller": info.controller_model,
                "serial_number": info.serial_number, "adc_bits": bits}

    def get_detector_size(self) -> tuple[int, int]:
        w, h = self._do("detector size", "get_detector_size")
        return int(w), int(h)

    def get_pixel_size(self) -> float:
        return float(self._do("pixel size", "get_pixel_size")[0])

    # -- exposure, gain, amplifiers, cooling ------------------------------------------------

    def set_exposure(self, exposure_s: float) -> float:
        if not 1e-5 <= float(exposure_s) <= 3600:
            raise AndorCameraError(self.name, f"exposure {exposure_s!r} s outside 10 µs..1 h")
        return float(self._do("exposure", "set_exposure", float(exposure_s)))

    def get_exposure(self) -> float:
        return float(self._do("exposure", "get_exposure"))

    def set_em_gain(self, gain: float) -> float:
        g = int(round(gain))
        if g > MAX_EM_GAIN_NORMAL and not self.advanced_em_gain:
            raise AndorCameraError(self.name, f"EM gain {gain:g} above {MAX_EM_GAIN_NORMAL} "
                                              "needs advanced_em_gain = true in the rig file")
        if not 1 <= g <= 1000:
            raise AndorCameraError(self.name, f"EM gain {gain:g} outside 1..1000")
        # The SDK's gain 0 is "no multiplication", i.e. a gain of 1.
        self._do("EM gain", "set_EMCCD_gain", 0 if g <= 1 else g,
                 advanced=g > MAX_EM_GAIN_NORMAL)
        return self.get_em_gain()

    def get_em_gain(self) -> float:
        gain, _ = self._do("EM gain", "get_EMCCD_gain")
        return float(max(1, gain))

    def set_preamp(self, index: int) -> None:
        """Select pre-amplifier setting ``index`` (what Andor calls the pre-amp gain)."""
        self._do("pre-amp setting", "set_amp_mode", preamp=int(index))

    def set_readout_speed(self, index: int) -> None:
        """Select horizontal read-out speed ``index`` (0 is the fastest)."""
        self._do("read-out speed", "set_amp_mode", hsspeed=int(index))

    def get_readout_rate_hz(self) -> float:
        """Pixel rate of the current read-out speed."""
        return float(self._do("read-out speed", "get_hsspeed_frequency"))

    def get_preamp_gain(self) -> float:
        index = int(self._do("pre-amp setting", "get_preamp"))
        if index >= len(self.sensitivity_e_per_adu):
            raise AndorCameraError(self.name, f"no electrons-per-ADU value for pre-amp setting "
                                              f"{index}: give sensitivity_e_per_adu (from the "
                                              "camera's performance sheet) in the rig file")
        return self.sensitivity_e_per_adu[index]

    def set_temperature(self, celsius: float, enable_cooler: bool = True) -> None:
        if not -120 <= float(celsius) <= 30:
            raise AndorCameraError(self.name, f"temperature set point {celsius!r} °C outside "
                                              "-120..30 °C")
        self._do("temperature", "set_temperature", float(celsius), enable_cooler=enable_cooler)
        if not enable_cooler:
            self._do("cooler", "set_cooler", False)

    def set_cooler(self, on: bool) -> None:
        """Switch the thermoelectric cooler on or off."""
        self._do("cooler", "set_cooler", bool(on))

    def get_temperature(self) -> float:
        return float(self._do("temperature", "get_temperature"))

    def get_temperature_status(self) -> TemperatureStatus:
        return self._do("temperature status", "get_temperature_status")

    def wait_for_temperature(self, timeout_s: float = 600.0, poll_s: float = 0.5) -> None:
        """Block until the sensor is stabilised at its set point.

        Raises
        ------
        AndorCameraError
            The set point is not reached within ``timeout_s`` (the cooler may be unable to
            reach it: water flow, fan, ambient), or the cooler is off.
        """
        deadline = time.monotonic() + timeout_s
        while (status := self.get_temperature_status()) != "stabilized":
            if status == "off":
                raise AndorCameraError(self.name, "cooler is off")
            if time.monotonic() > deadline:
                setpoint = self._cam.get_temperature_setpoint()
                raise AndorCameraError(self.name, f"temperature {status.replace('_', ' ')}: "
                                                  f"{self.get_temperature():.1f} °C after "
                                                  f"{timeout_s:g} s, set point {setpoint} °C")
            time.sleep(poll_s)

    def setup_shutter(self, mode: str) -> None:
        """``"auto"`` (open while exposing), ``"open"`` or ``"closed"``."""
        self._do("shutter", "setup_shutter", mode)

    # -- read-out geometry ------------------------------------------------------------------

    def set_read_mode(self, mode: ReadMode) -> None:
        if mode not in READ_MODES:
            raise AndorCameraError(self.name, f"unknown read mode {mode!r} (use {READ_MODES})")
        self._do("read mode", "set_read_mode", mode)

    def get_read_mode(self) -> ReadMode:
        return self._do("read mode", "get_read_mode")

    def _keep_mode(self, what: str, method: str, *args: Any) -> None:
        # pylablib's setup_*_mode also switches to that mode; the interface only sets it up.
        mode = self.get_read_mode()
        self._do(what, method, *args)
        self.set_read_mode(mode)

    def setup_single_track_mode(self, center: int, width: int) -> None:
        self._keep_mode("single track", "setup_single_track_mode", int(center), int(width))

    def setup_multi_track_mode(self, number: int, height: int, offset: int = 0) -> None:
        self._keep_mode("multi track", "setup_multi_track_mode", int(number), int(height),
                        int(offset))

    def set_roi(self, hstart: int = 0, hend: int | None = None, vstart: int = 0,
                vend: int | None = None, hbin: int = 1, vbin: int = 1) -> None:
        """Image-mode region and binning; the columns also limit the other read modes (sliced
        on the host: the SDK reads FVB and tracks over the full width)."""
        w, h = self.get_detector_size()
        he, ve = (w if hend is None else int(hend)), (h if vend is None else int(vend))
        if not (0 <= hstart < he <= w and 0 <= vstart < ve <= h):
            raise AndorCameraError(self.name, f"ROI columns {hstart}..{he}, rows {vstart}..{ve} "
                                              f"outside the {w} x {h} chip")
        if (he - hstart) % hbin or (ve - vstart) % vbin:
            raise AndorCameraError(self.name, f"ROI {he - hstart} x {ve - vstart} not a multiple "
                                              f"of the binning {hbin} x {vbin}")
        self._keep_mode("region of interest", "setup_image_mode", int(hstart), he, int(vstart),
                        ve, int(hbin), int(vbin))
        self._roi = (int(hstart), he, int(vstart), ve, int(hbin), int(vbin))

    # -- acquisition ------------------------------------------------------------------------

    def set_cycle_time(self, cycle_s: float) -> None:
        """Kinetic-series cycle time (0: as fast as exposure and read-out allow)."""
        self._cycle_s = float(cycle_s)
        if self._acq[0] == "kinetic":
            self.set_acquisition_mode("kinetic", self._acq[1])

    def set_acquisition_mode(self, mode: AcquisitionMode, n_frames: int = 1) -> None:
        if mode not in ACQUISITION_MODES:
            raise AndorCameraError(self.name, f"unknown acquisition mode {mode!r} "
                                              f"(use {ACQUISITION_MODES})")
        n = int(n_frames)
        if n < 1:
            raise AndorCameraError(self.name, f"frame count must be >= 1, not {n_frames!r}")
        if mode == "kinetic":
            self._do("kinetic series", "setup_kinetic_mode", n, self._cycle_s)
        elif mode == "accum":
            self._do("accumulation", "setup_accum_mode", n)
        else:
            self._do("acquisition mode", "set_acquisition_mode", mode)
        self._acq = (mode, n)

    def get_acquisition_mode(self) -> tuple[AcquisitionMode, int]:
        return self._acq

    def start_acquisition(self) -> None:
        self._do("start", "start_acquisition")
        self._t0 = time.time()

    def stop_acquisition(self) -> None:
        self._do("stop", "stop_acquisition")

    def acquisition_in_progress(self) -> bool:
        return bool(self._do("status", "acquisition_in_progress"))

    def wait_for_frame(self, timeout_s: float = 20.0) -> None:
        if self._do("wait", "get_frames_status")[1] > 0:
            return
        if not self._do("wait", "wait_for_frame", timeout=timeout_s):
            raise AndorCameraError(self.name, "no acquisition running and no unread frame")

    def get_frames_status(self) -> tuple[int, int]:
        acquired, unread, *_ = self._do("frame status", "get_frames_status")
        return int(acquired), int(unread)

    def read_frames_with_info(self) -> tuple[np.ndarray, list[dict[str, float]]]:
        """Unread frames (as :meth:`read_multiple_images`) and, for each, its ``index`` in the
        acquisition and ``timestamp_s`` (host epoch seconds of its start)."""
        images, infos = self._do("read", "read_multiple_images", return_info=True)
        mode = self.get_read_mode()
        hstart, hend = self._roi[0], self._roi[1]
        if images:
            frames = np.stack([np.asarray(im) for im in images])
            if mode in ("fvb", "single_track"):
                frames = frames[:, 0, :]
            if mode != "image" and (hstart, hend) != (0, None):
                frames = frames[..., hstart:hend]
        else:
            frames = np.empty((0,) + (() if mode in ("fvb", "single_track") else (0,))
                              + (0,), np.uint16)
        cycle = float(self._do("timings", "get_cycle_timings")[2])
        t0 = self._t0 if self._t0 is not None else time.time()
        meta = [{"index": int(i.frame_index), "timestamp_s": t0 + int(i.frame_index) * cycle}
                for i in infos]
        return frames, meta

    def read_multiple_images(self) -> np.ndarray:
        return self.read_frames_with_info()[0]
