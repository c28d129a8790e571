"""The spectrograph interface shared by the Acton SpectraPro driver and the simulated one.

Wavelengths are metres in this API (the Acton speaks nanometres over the wire; the driver
converts). Gratings are numbered from 1 as on the Acton (``?GRATINGS``, ``2 GRATING``). Every
failure (an impossible wavelength, an unknown grating, no answer) is a
:class:`spad.errors.DeviceError` naming the spectrograph.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

from spad.drivers.interfaces.base import Instrument

from spad.optics import Spectrograph


@dataclass(frozen=True)
class Grating:
    """One grating of the turret.

    Parameters
    ----------
    index
        Turret position, from 1.
    groove_density_per_m
        Grooves per metre (300 g/mm = 3e5).
    blaze
        Blaze as the instrument labels it (e.g. ``"500NM"``), informational.
    """

    index: int
    groove_density_per_m: float
    blaze: str = ""


class SpectrographInterface(Instrument):
    """A scanning grating spectrograph with a camera at its exit port."""

    name: str = "spectrograph"
    """Device name used in error messages."""


    @abstractmethod
    def get_centre_wavelength(self) -> float:
        """Wavelength on the exit axis, metres (during a move: where the grating is now)."""

    @abstractmethod
    def set_centre_wavelength(self, wavelength_m: float, wait: bool = True,
                              timeout_s: float = 60.0) -> None:
        """Move to ``wavelength_m``; with ``wait`` block until the move is done."""

    @abstractmethod
    def is_moving(self) -> bool:
        """True while the grating turns (wavelength move or grating change)."""

    @abstractmethod
    def wait_until_idle(self, timeout_s: float = 60.0) -> None:
        """Block until no move is in progress; DeviceError on timeout."""

    @abstractmethod
    def get_gratings(self) -> list[Grating]:
        """The gratings installed in the turret."""

    @abstractmethod
    def get_grating(self) -> int:
        """Index (from 1) of the grating in use."""

    @abstractmethod
    def set_grating(self, index: int, wait: bool = True, timeout_s: float = 60.0) -> None:
        """Turn the turret to grating ``index`` (keeps the centre wavelength)."""

    @abstractmethod
    def get_focal_length(self) -> float:
        """Focal length of the focusing mirror, metres."""

    def get_optics(self) -> Spectrograph:
        """The :class:`spad.optics.Spectrograph` of the current grating (for calibration)."""
        grating = next(g for g in self.get_gratings() if g.index == self.get_grating())
        return Spectrograph(groove_density_per_m=grating.groove_density_per_m,
                            focal_length_m=self.get_focal_length())

