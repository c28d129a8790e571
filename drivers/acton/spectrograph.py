"""Acton SpectraPro spectrograph (SP-2150/2300/2500) behind :class:`SpectrographInterface`.

Commands used (Acton SpectraPro manual, "Remote operation"): ``?NM`` (wavelength now),
``<nm> >NM`` (start a move) polled with ``MONO-?DONE`` (1 = done), ``MONO-STOP``,
``?GRATINGS`` (the turret, the active grating marked), ``?GRATING``, ``<n> GRATING``,
``?TURRET``, ``MODEL`` and ``SERIAL``. Wavelengths are metres in the API and nanometres on the
wire. ``<nm> GOTO`` (move, answer when there) is not used for
moves: while it waits, a pulled cable goes unnoticed until the move's timeout, whereas polling
``MONO-?DONE`` notices it within one poll.

The groove densities come from the controller (``?GRATINGS``); the focal length, inclusion
angle and pixel size are calibration constants of the rig file and feed
:class:`spad.optics.Spectrograph` (:meth:`ActonSpectrograph.get_optics`).

Rig file (Qudi-style config example)::

    [spectrograph]
    backend = "acton"
    port = "/dev/ttyUSB0"      # COM3 on Windows
    link = "usb"               # "rs232": the controller echoes each command
    timeout_s = 5.0
    focal_length_m = 0.300
    inclusion_angle_deg = 30.0
    pixel_size_m = 16e-6

Use::

    with ActonSpectrograph("/dev/ttyUSB0") as mono:
        mono.set_centre_wavelength(630e-9)
        print(mono.get_gratings(), mono.get_grating())
"""

from __future__ import annotations

import math
import re
import time

import numpy as np
from spad.drivers.acton.errors import ActonError
from spad.drivers.acton.protocol import ActonLink
from spad.drivers.interfaces.spectrograph import Grating, SpectrographInterface

from spad.optics import Spectrograph

_GRATING_LINE = re.compile(r"(\x1a|>)?\s*(\d+)\s+(\d+(?:\.\d*)?)\s*g/mm\s*(?:BLZ=\s*(\S+))?",
                           re.IGNORECASE)
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d*)?")


def parse_gratings(text: str) -> tuple[list[Grating], int | None]:
    """The gratings of a ``?GRATINGS`` answer and the active one (marked with an arrow).

    Lines read like ``\\x1a 1  300 g/mm BLZ=  500NM`` (active) or `` 2  Not Installed``.
    """
    gratings, active = [], None
    for line in text.splitlines():
        m = _GRATING_LINE.search(line)
        if not m:
            continue
        index = int(m.group(2))
        gratings.append(Grating(index, float(m.group(3)) * 1e3, (m.group(4) or "").upper()))
        if m.group(1):
            active = index
    return gratings, active


class ActonSpectrograph(SpectrographInterface):
    """A SpectraPro on a serial port.

    Parameters
    ----------
    port
        Serial port.
    link
        ``"rs232"`` (echo) or ``"usb"`` (no echo).
    timeout_s
        Longest wait for an ordinary reply.
    focal_length_m, inclusion_angle_deg, pixel_size_m
        Calibration constants (rig file).
    poll_s
        Interval of ``MONO-?DONE`` polling during a move.
    """

    def __init__(self, port: str, link: str = "usb", timeout_s: float = 5.0,
                 focal_length_m: float = 0.300, inclusion_angle_deg: float = 30.0,
                 pixel_size_m: float = 16e-6, poll_s: float = 0.05) -> None:
        if link not in ("rs232", "usb"):
            raise ValueError(f"link must be 'rs232' or 'usb', not {link!r}")
        self.name = f"Acton spectrograph on {port}"
        self.port = port
        self._link = ActonLink(port, echo=link == "rs232", timeout_s=timeout_s, name=self.name)
        self._focal = float(focal_length_m)
        self._inclusion = math.radians(inclusion_angle_deg)
        self.pixel_size_m = float(pixel_size_m)
        self._poll = float(poll_s)
        self._gratings: list[Grating] | None = None

    # -- connection -------------------------------------------------------------------------

    def open(self) -> None:
        if self._link.is_open:
            return
        self._link.open()
        try:
            self.get_gratings()
        except Exception:
            self._link.close()
            raise

    def close(self) -> None:
        self._link.close()
        self._gratings = None

    def is_opened(self) -> bool:
        return self._link.is_open

    def _query(self, command: str, timeout_s: float | None = None) -> str:
        return self._link.query(command, timeout_s)

    def _number(self, command: str) -> float:
        answer = self._query(command)
        m = _NUMBER.search(answer)
        if not m:
            raise ActonError(self.name, f"no number in the reply to {command!r}: {answer!r}")
        return float(m.group())

    # -- identity ---------------------------------------------------------------------------

    def get_device_info(self) -> dict[str, object]:
        """Model and serial number as the controller reports them."""
        return {"model": self._query("MODEL"), "serial_number": self._query("SERIAL"),
                "port": self.port, "turrets": int(self._number("?TURRET"))}

    # -- wavelength -------------------------------------------------------------------------

    def get_centre_wavelength(self) -> float:
        return self._number("?NM") * 1e-9

    def _check_target(self, wavelength_m: float) -> float:
        nm = float(wavelength_m) * 1e9
        if not (math.isfinite(nm) and 0.0 <= nm <= 1400e0 * 1200e3
                / self._current().groove_density_per_m):
            raise ActonError(self.name, f"{nm:g} nm outside the drive's range for grating "
                                        f"{self.get_grating()}")
        return nm

    def set_centre_wavelength(self, wavelength_m: float, wait: bool = True,
                              timeout_s: float = 60.0) -> None:
        nm = self._check_target(wavelength_m)
        self._query(f"{nm:.3f} >NM")
        if wait:
            self.wait_until_idle(timeout_s)

    def is_moving(self) -> bool:
        return self._number("MONO-?DONE") == 0

    def wait_until_idle(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.is_moving():
            if time.monotonic() > deadline:
                try:
                    self._query("MONO-STOP")
                finally:
                    raise ActonError(self.name, f"move not finished within {timeout_s:g} s "
                                                "(stopped)")
            time.sleep(self._poll)

    # -- gratings ---------------------------------------------------------------------------

    def get_gratings(self) -> list[Grating]:
        if self._gratings is None:
            gratings, _ = parse_gratings(self._query("?GRATINGS"))
            if not gratings:
                raise ActonError(self.name, "?GRATINGS listed no grating")
            self._gratings = gratings
        return list(self._gratings)

    def get_grating(self) -> int:
        return int(self._number("?GRATING"))

    def _current(self) -> Grating:
        index = self.get_grating()
        for g in self.get_gratings():
            if g.index == index:
                return g
        raise ActonError(self.name, f"grating {index} in use is not in the ?GRATINGS list")

    def set_grating(self, index: int, wait: bool = True, timeout_s: float = 60.0) -> None:
        index = int(index)
        if index not in [g.index for g in self.get_gratings()]:
            raise ActonError(self.name, f"no grating {index} in the turret "
                                        f"(have {[g.index for g in self.get_gratings()]})")
        # GRATING answers when the turret has turned, so it gets the move timeout.
        self._query(f"{index} GRATING", timeout_s=timeout_s)
        if wait:
            self.wait_until_idle(timeout_s)

    def get_focal_length(self) -> float:
        return self._focal

    def get_optics(self) -> Spectrograph:
        """The calibrated :class:`spad.optics.Spectrograph` of the grating in use."""
        return Spectrograph(groove_density_per_m=self._current().groove_density_per_m,
                            focal_length_m=self._focal, inclusion_angle_rad=self._inclusion)

    def wavelengths(self, n_pixels: int, centre_pixel: float | None = None) -> np.ndarray:
        """Wavelength (m) of each camera column at the current position."""
        return self.get_optics().wavelengths(self.get_centre_wavelength(), n_pixels,
                                             self.pixel_size_m, centre_pixel)
