"""A stand-in for pylablib's ``Andor.AndorSDK2Camera`` rendering frames from the EMCCD simulator.

:class:`SimulatedAndorSDK2Camera` has the method names, arguments and return types of the
subset of ``pylablib.devices.Andor.AndorSDK2Camera`` (pylablib 1.4) that
:class:`spad.drivers.andor.AndorCamera` calls, and raises pylablib's own exceptions
(``AndorError``, ``AndorTimeoutError``, ``AndorSDK2LibError``), so the driver runs unchanged on
it (the companion project pyLabLib-cam-control models its simulated camera the same way).
Images come as pylablib returns them: 2-D arrays indexed (row, column), one row in ``"fvb"``
and ``"single_track"``; frame infos are ``TFrameInfo(frame_index)``.

Underneath, a :class:`spad.simulators.instruments.SimulatedCamera` renders the scene through the
spectrograph with the EMCCD noise model and cools at a finite rate.

Faults (:meth:`SimulatedAndorSDK2Camera.inject`): ``"temperature_not_reached"`` (the cooler
stalls at ``stall_c``), ``"acquisition_timeout"`` (no frame ever arrives), ``"disconnect"``
(every call fails with ``DRV_ERROR_ACK``, as when the camera's cable is pulled).
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import numpy as np
from spad.drivers.interfaces.spectrograph import SpectrographInterface
from spad.simulators.emccd import Emccd
from spad.simulators.instruments import ManualClock, Scene, SimulatedCamera, WallClock


def _pylablib() -> SimpleNamespace:
    """pylablib's Andor exceptions and return types, imported when a stand-in is made (pylablib
    is the optional "instruments" extra; importing this module does not need it)."""
    from pylablib.devices.Andor.AndorSDK2 import TCycleTimings, TDeviceInfo
    from pylablib.devices.Andor.atmcd32d_lib import AndorSDK2LibError
    from pylablib.devices.Andor.base import AndorError, AndorTimeoutError
    from pylablib.devices.interface.camera import TFrameInfo
    return SimpleNamespace(TCycleTimings=TCycleTimings, TDeviceInfo=TDeviceInfo,
                           AndorSDK2LibError=AndorSDK2LibError, AndorError=AndorError,
                           AndorTimeoutError=AndorTimeoutError, TFrameInfo=TFrameInfo)


FAULTS = ("temperature_not_reached", "acquisition_timeout", "disconnect")
DRV_ERROR_ACK = 20013          # atmcd32d.h: "unable to communicate with card"


class SimulatedAndorSDK2Camera:
    """pylablib's AndorSDK2Camera surface over the simulated EMCCD (see the module docstring).

    Parameters
    ----------
    idx, ini_path, temperature, fan_mode, amp_mode
        As pylablib's constructor (connecting opens the camera and resets its settings).
    scene, spectrograph, sensor, seed
        What the simulated camera sees (:class:`SimulatedCamera`).
    cooling_rate_c_per_s, stabilise_s
        Cooling dynamics: approach speed and time from reaching the set point to "stabilized".
    stall_c
        Where the cooler stalls under the ``"temperature_not_reached"`` fault.
    clock
        The camera's time (default the wall clock; a test gives a :class:`ManualClock`).
    """

    def __init__(self, idx: int = 0, ini_path: str = "", temperature: Any = None,
                 fan_mode: str = "off", amp_mode: Any = None, *, scene: Scene | None = None,
                 spectrograph: SpectrographInterface | None = None, sensor: Emccd | None = None,
                 seed: int | None = None, cooling_rate_c_per_s: float = 20.0,
                 stabilise_s: float = 0.5, stall_c: float = -45.0,
                 clock: WallClock | ManualClock | None = None) -> None:
        self.idx = idx
        self._pl = _pylablib()
        self._cam = SimulatedCamera(scene, spectrograph, sensor, seed, clock or WallClock(),
                                    cooling_rate_c_per_s, name="simulated iXon")
        self._cam.STABILISE_S = stabilise_s
        self.fault: str | None = None
        self._stall = float(stall_c)
        self._requested: float | None = None
        self._cooler = False
        self._setpoint = -80
        self._preamp, self._hsspeed = 0, 0
        self._advanced = False
        self._shutter = "closed"
        self._image = (0, self._cam.sensor.n_columns, 0, self._cam.sensor.n_rows, 1, 1)
        self._kinetic = (1, 0.0)
        self._accum = 1
        self._acq_mode = "single"
        self._first_unread = 0
        self._handle: int | None = None
        self.open()
        if temperature not in (None, "off"):
            self.set_temperature(temperature)

    # -- faults and checks ------------------------------------------------------------------

    def inject(self, fault: str | None) -> None:
        """Switch a fault on (one of :data:`FAULTS`) or off (``None``)."""
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r} (use {FAULTS})")
        self.fault = fault
        if fault == "temperature_not_reached" and self._cooler and self._requested is not None:
            self._apply_setpoint()

    def _check(self, func: str) -> None:
        if self._handle is None:
            raise self._pl.AndorError("camera is not opened")
        if self.fault == "disconnect":
            raise self._pl.AndorSDK2LibError(func, DRV_ERROR_ACK)

    # -- connection -------------------------------------------------------------------------

    def open(self) -> None:
        if self._handle is None:
            self._handle = 100 + self.idx
            self._cam.open()

    def close(self) -> None:
        if self._handle is not None:
            try:
                self._cam.close()
            finally:
                self._handle = None

    def is_opened(self) -> bool:
        return self._handle is not None

    def get_device_info(self) -> Any:
        self._check("GetHeadModel")
        return self._pl.TDeviceInfo("USB", "DU897_BV", 12345)

    def get_channel_bitdepth(self, channel: int | None = None) -> int:
        self._check("GetBitDepth")
        return self._cam.sensor.adc_bits

    def get_detector_size(self) -> tuple[int, int]:
        self._check("GetDetector")
        return self._cam.get_detector_size()

    def get_pixel_size(self) -> tuple[float, float]:
        self._check("GetPixelSize")
        p = self._cam.get_pixel_size()
        return (p, p)

    # -- exposure, gain, amplifiers ---------------------------------------------------------

    def set_exposure(self, exposure: float) -> float:
        self._check("SetExposureTime")
        try:
            return self._cam.set_exposure(max(exposure, 1e-5))
        except Exception as exc:  # noqa: BLE001 - the SDK reports every refusal as a code
            raise self._pl.AndorSDK2LibError("SetExposureTime", 20066) from exc   # DRV_P1INVALID

    def get_exposure(self) -> float:
        self._check("GetAcquisitionTimings")
        return self._cam.get_exposure()

    def set_EMCCD_gain(self, gain: int, advanced: bool | None = None) -> None:  # noqa: N802
        self._check("SetEMCCDGain")
        gain = int(gain)
        if advanced is not None:
            self._advanced = bool(advanced)
        if gain > (1000 if self._advanced else 300) or gain < 0:
            raise self._pl.AndorSDK2LibError("SetEMCCDGain", 20066)
        self._cam.set_em_gain(max(1, gain))

    def get_EMCCD_gain(self) -> tuple[int, bool]:  # noqa: N802
        self._check("GetEMCCDGain")
        gain = self._cam.get_em_gain()
        return (0 if gain <= 1 else int(gain)), self._advanced

    def set_amp_mode(self, channel: int | None = None, oamp: int | None = None,
                     hsspeed: int | None = None, preamp: int | None = None) -> None:
        self._check("SetHSSpeed")
        if hsspeed is not None:
            if not 0 <= hsspeed < 4:
                raise self._pl.AndorSDK2LibError("SetHSSpeed", 20066)
            self._hsspeed = int(hsspeed)
        if preamp is not None:
            if not 0 <= preamp < 3:
                raise self._pl.AndorSDK2LibError("SetPreAmpGain", 20066)
            self._preamp = int(preamp)

    def get_preamp(self) -> int:
        return self._preamp

    def get_hsspeed(self) -> int:
        return self._hsspeed

    def get_hsspeed_frequency(self, hsspeed: int | None = None) -> float:
        self._check("GetHSSpeed")
        return (17e6, 10e6, 5e6, 1e6)[self._hsspeed if hsspeed is None else hsspeed]

    def get_preamp_gain(self, preamp: int | None = None) -> float:
        self._check("GetPreAmpGain")
        return (1.0, 2.4, 5.1)[self._preamp if preamp is None else preamp]

    # -- cooling ----------------------------------------------------------------------------

    def _apply_setpoint(self) -> None:
        target = float(self._setpoint)
        if self.fault == "temperature_not_reached":
            target = max(target, self._stall)
        self._cam.set_temperature(target, enable_cooler=self._cooler)

    def set_cooler(self, on: bool = True) -> bool:
        self._check("CoolerON" if on else "CoolerOFF")
        self._cooler = bool(on)
        self._apply_setpoint()
        return self._cooler

    def is_cooler_on(self) -> bool:
        self._check("IsCoolerOn")
        return self._cooler

    def set_temperature(self, temperature: float, enable_cooler: bool = True) -> int:
        self._check("SetTemperature")
        self._setpoint = int(min(max(temperature, -100), 20))   # GetTemperatureRange clamp
        self._requested = float(self._setpoint)
        if enable_cooler:
            self._cooler = True
        self._apply_setpoint()
        return self._setpoint

    def get_temperature_setpoint(self) -> int:
        return self._setpoint

    def get_temperature(self) -> float:
        self._check("GetTemperatureF")
        return self._cam.get_temperature()

    def get_temperature_status(self) -> str:
        self._check("GetTemperatureF")
        if not self._cooler:
            return "off"
        if self.fault == "temperature_not_reached" and self._setpoint < self._stall:
            return "not_reached"
        return self._cam.get_temperature_status()

    # -- read-out ---------------------------------------------------------------------------

    def _set_mode(self, mode: str) -> None:
        # Like the SDK: the image area (SetImage) applies in image mode only; FVB and tracks
        # are read over the full width.
        if mode == "image":
            self._cam.set_roi(*self._image[:4])
        else:
            self._cam.set_roi()
        self._cam.set_read_mode(mode)

    def set_read_mode(self, mode: str) -> str:
        self._check("SetReadMode")
        self._set_mode(mode)
        return mode

    def get_read_mode(self) -> str:
        return self._cam.get_read_mode()

    def setup_single_track_mode(self, center: int = 0, width: int = 1) -> tuple[int, int]:
        self._check("SetSingleTrack")
        try:
            self._cam.setup_single_track_mode(center, width)
        except Exception as exc:  # noqa: BLE001
            raise self._pl.AndorSDK2LibError("SetSingleTrack", 20066) from exc
        self._set_mode("single_track")
        return (center, width)

    def setup_multi_track_mode(self, number: int = 1, height: int = 1, offset: int = 0) -> tuple:
        self._check("SetMultiTrack")
        try:
            self._cam.setup_multi_track_mode(number, height, offset)
        except Exception as exc:  # noqa: BLE001
            raise self._pl.AndorSDK2LibError("SetMultiTrack", 20066) from exc
        self._set_mode("multi_track")
        return (number, height, offset, 0, 0)

    def setup_image_mode(self, hstart: int = 0, hend: int | None = None, vstart: int = 0,
                         vend: int | None = None, hbin: int = 1, vbin: int = 1) -> tuple:
        self._check("SetImage")
        w, h = self._cam.get_detector_size()
        hend = w if hend is None else hend
        vend = h if vend is None else vend
        if (hend - hstart) % hbin or (vend - vstart) % vbin:
            raise self._pl.AndorSDK2LibError("SetImage", 20066)
        try:
            self._cam.set_roi(hstart, hend, vstart, vend)
        except Exception as exc:  # noqa: BLE001
            raise self._pl.AndorSDK2LibError("SetImage", 20066) from exc
        self._image = (hstart, hend, vstart, vend, hbin, vbin)
        self._set_mode("image")
        return self._image

    def get_image_mode_parameters(self) -> tuple:
        return self._image

    # -- acquisition modes ------------------------------------------------------------------

    def set_acquisition_mode(self, mode: str, setup_params: bool = True) -> str:
        self._check("SetAcquisitionMode")
        n = {"single": 1, "accum": self._accum, "kinetic": self._kinetic[0], "cont": 1}
        if mode not in n:
            raise self._pl.AndorSDK2LibError("SetAcquisitionMode", 20066)
        self._cam.set_acquisition_mode(mode, n[mode])
        self._acq_mode = mode
        return mode

    def get_acquisition_mode(self) -> str:
        return self._acq_mode

    def setup_accum_mode(self, num_acc: int, cycle_time_acc: float = 0) -> None:
        self._accum = int(num_acc)
        self.set_acquisition_mode("accum")

    def setup_kinetic_mode(self, num_cycle: int, cycle_time: float = 0.0, num_acc: int = 1,
                           cycle_time_acc: float = 0, num_prescan: int = 0) -> None:
        self._kinetic = (int(num_cycle), float(cycle_time))
        self.set_acquisition_mode("kinetic")

    def get_kinetic_mode_parameters(self) -> tuple:
        return self._kinetic

    def setup_shutter(self, mode: str, ttl_mode: int = 0, open_time: Any = None,
                      close_time: Any = None) -> tuple:
        self._check("SetShutter")
        if mode not in ("auto", "open", "closed"):
            raise self._pl.AndorError(f"unknown shutter mode {mode!r}")
        self._shutter = mode
        return (mode, ttl_mode, open_time or 0, close_time or 0)

    def get_shutter(self) -> str:
        return self._shutter

    def get_cycle_timings(self) -> Any:
        self._check("GetAcquisitionTimings")
        cam = self._cam
        if cam._acq is not None:
            cycle = cam._acq[1]
        else:
            cycle = cam.get_exposure() + cam.sensor.n_columns / cam._pixel_rate + 1e-3
        kinetic = max(cycle, self._kinetic[1])
        return self._pl.TCycleTimings(cam.get_exposure(), cycle, kinetic)

    # -- acquisition ------------------------------------------------------------------------

    def start_acquisition(self) -> None:
        self._check("StartAcquisition")
        if self._cam.acquisition_in_progress():
            self._cam.stop_acquisition()
        self._cam.start_acquisition()
        self._first_unread = 0

    def stop_acquisition(self) -> None:
        self._check("AbortAcquisition")
        if self._cam.acquisition_in_progress():
            self._cam.stop_acquisition()

    def acquisition_in_progress(self) -> bool:
        self._check("GetStatus")
        return self._cam.acquisition_in_progress()

    def get_frames_status(self) -> tuple[int, int, int, int]:
        self._check("GetTotalNumberImagesAcquired")
        if self.fault == "acquisition_timeout":
            return (0, 0, 0, self._cam.BUFFER_FRAMES)
        acquired, unread = self._cam.get_frames_status()
        return (acquired, unread, max(0, acquired - self._first_unread - unread),
                self._cam.BUFFER_FRAMES)

    def wait_for_frame(self, since: str = "lastread", nframes: int = 1,
                       timeout: float | None = 20.0, error_on_stopped: bool = False) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._check("WaitForAcquisitionTimeOut")
            if self.fault != "acquisition_timeout":
                # "running" before the frames: a series that ends between the two readings
                # then has its last frames counted (read the other way round, they were not)
                running = self._cam.acquisition_in_progress()
                if self._cam.get_frames_status()[1] >= nframes:
                    return True
                if not running:
                    if error_on_stopped:
                        raise self._pl.AndorError("waiting for frames while stopped")
                    return False
            if deadline is not None and time.monotonic() > deadline:
                raise self._pl.AndorTimeoutError("timeout while waiting for a new frame")
            time.sleep(0.01)

    def read_multiple_images(self, rng: Any = None, peek: bool = False,
                             missing_frame: str = "skip", return_info: bool = False,
                             return_rng: bool = False) -> Any:
        self._check("GetImages16")
        if self.fault == "acquisition_timeout":
            frames = np.zeros((0, 1, 1), np.uint16)
        else:
            # frames and their indices from one clock reading (a frame may end between calls)
            frames, first = self._cam.read_frames_indexed()
            infos = [self._pl.TFrameInfo(first + i) for i in range(len(frames))]
            self._first_unread = first + len(frames)
        if frames.ndim == 2:                        # fvb / single track: one row per frame
            frames = frames[:, None, :]
        hbin, vbin = self._image[4], self._image[5]
        if self._cam.get_read_mode() == "image" and (hbin > 1 or vbin > 1):
            n, r, c = frames.shape
            frames = frames.astype(np.int64).reshape(n, r // vbin, vbin, c // hbin, hbin)
            frames = frames.sum(axis=(2, 4))
        images = list(frames)
        if self.fault == "acquisition_timeout":
            infos = []
        return (images, infos) if return_info else images
