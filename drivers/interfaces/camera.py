"""The spectroscopy camera interface shared by the Andor iXon driver and the simulated EMCCD.

Modelled on pylablib's ``AndorSDK2Camera`` (pylablib docs, "Andor cameras") so that the real
driver is a thin wrapper, in the Qudi style of one abstract class per instrument kind. Units:
seconds, degrees Celsius for the sensor temperature (what the camera reports), pixels for
geometry, ADU for data.

Frames come out as numpy arrays, one per acquired frame, with columns along the spectrograph's
dispersion axis: ``(n_columns,)`` in ``"fvb"`` and ``"single_track"`` modes, ``(n_tracks,
n_columns)`` in ``"multi_track"``, ``(n_rows, n_columns)`` of the region of interest in
``"image"``. :meth:`CameraInterface.read_multiple_images` stacks them along a new first axis.

Every failure is a :class:`spad.errors.DeviceError` naming the camera.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Literal

import numpy as np
from spad.drivers.interfaces.base import Instrument

ReadMode = Literal["fvb", "single_track", "multi_track", "image"]
AcquisitionMode = Literal["single", "accum", "kinetic", "cont"]
TemperatureStatus = Literal["off", "not_reached", "not_stabilized", "stabilized", "drifted"]

READ_MODES: tuple[str, ...] = ("fvb", "single_track", "multi_track", "image")
ACQUISITION_MODES: tuple[str, ...] = ("single", "accum", "kinetic", "cont")


class CameraInterface(Instrument):
    """An (EM)CCD camera behind a spectrograph."""

    name: str = "camera"
    """Device name used in error messages."""


    @abstractmethod
    def get_device_info(self) -> dict[str, object]:
        """Model, serial number and anything else the camera reports about itself."""

    @abstractmethod
    def get_detector_size(self) -> tuple[int, int]:
        """Sensor size ``(n_columns, n_rows)`` in pixels (pylablib's ``(width, height)``)."""

    @abstractmethod
    def get_pixel_size(self) -> float:
        """Pixel pitch in metres."""

    # -- exposure, gain, cooling ------------------------------------------------------------

    @abstractmethod
    def set_exposure(self, exposure_s: float) -> float:
        """Set the exposure per frame; returns the exposure actually set (s)."""

    @abstractmethod
    def get_exposure(self) -> float:
        """Exposure per frame in seconds."""

    @abstractmethod
    def set_em_gain(self, gain: float) -> float:
        """Set the EM multiplication gain (1 = off); returns the gain actually set."""

    @abstractmethod
    def get_em_gain(self) -> float:
        """Current EM gain."""

    @abstractmethod
    def get_preamp_gain(self) -> float:
        """Electrons per ADU at the output (the pre-amplifier's sensitivity)."""

    @abstractmethod
    def set_temperature(self, celsius: float, enable_cooler: bool = True) -> None:
        """Set the sensor temperature set point and switch the cooler on (or off)."""

    @abstractmethod
    def get_temperature(self) -> float:
        """Current sensor temperature in °C."""

    @abstractmethod
    def get_temperature_status(self) -> TemperatureStatus:
        """``"off"``, ``"not_reached"``, ``"not_stabilized"``, ``"stabilized"`` or
        ``"drifted"`` (pylablib's values)."""

    # -- read-out geometry ------------------------------------------------------------------

    @abstractmethod
    def set_read_mode(self, mode: ReadMode) -> None:
        """``"fvb"``, ``"single_track"``, ``"multi_track"`` or ``"image"``."""

    @abstractmethod
    def get_read_mode(self) -> ReadMode:
        """Current read mode."""

    @abstractmethod
    def setup_single_track_mode(self, center: int, width: int) -> None:
        """Rows summed in single-track mode: ``width`` rows centred on row ``center``."""

    @abstractmethod
    def setup_multi_track_mode(self, number: int, height: int, offset: int = 0) -> None:
        """``number`` tracks of ``height`` rows spread over the chip, shifted by ``offset``."""

    @abstractmethod
    def set_roi(self, hstart: int = 0, hend: int | None = None, vstart: int = 0,
                vend: int | None = None) -> None:
        """Columns ``[hstart, hend)`` and rows ``[vstart, vend)`` read in image mode (the
        columns also limit the other modes)."""

    # -- acquisition ------------------------------------------------------------------------

    @abstractmethod
    def set_acquisition_mode(self, mode: AcquisitionMode, n_frames: int = 1) -> None:
        """``"single"`` (one frame), ``"accum"`` (``n_frames`` exposures summed into one frame),
        ``"kinetic"`` (a series of ``n_frames`` frames) or ``"cont"`` (until stopped)."""

    @abstractmethod
    def get_acquisition_mode(self) -> tuple[AcquisitionMode, int]:
        """Current acquisition mode and its frame count."""

    @abstractmethod
    def start_acquisition(self) -> None:
        """Start acquiring with the current settings (clears unread frames)."""

    @abstractmethod
    def stop_acquisition(self) -> None:
        """Stop acquiring (frames already acquired stay readable)."""

    @abstractmethod
    def acquisition_in_progress(self) -> bool:
        """True while frames are still to come."""

    @abstractmethod
    def wait_for_frame(self, timeout_s: float = 20.0) -> None:
        """Block until at least one unread frame is available; DeviceError on timeout or if the
        acquisition ended with nothing to read."""

    @abstractmethod
    def get_frames_status(self) -> tuple[int, int]:
        """``(acquired, unread)`` frame counts of the current acquisition."""

    @abstractmethod
    def read_multiple_images(self) -> np.ndarray:
        """All unread frames stacked along axis 0 (ADU); empty along axis 0 if none."""

    # -- conveniences built on the above ----------------------------------------------------

    def read_newest_image(self) -> np.ndarray | None:
        """The newest unread frame (older unread ones are discarded), or ``None``."""
        frames = self.read_multiple_images()
        return frames[-1] if len(frames) else None

    def snap(self, timeout_s: float = 20.0) -> np.ndarray:
        """Acquire one frame and return it (an accumulation mode set before is kept: the frame
        is then the sum of its exposures; any other mode becomes ``"single"``)."""
        if self.get_acquisition_mode()[0] != "accum":
            self.set_acquisition_mode("single")
        self.start_acquisition()
        self.wait_for_frame(timeout_s)
        return self.read_multiple_images()[0]

