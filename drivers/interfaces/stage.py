"""Sample stage: moves the slide so that a chosen spot sits in the laser focus.

Positions are in metres, in the stage's own frame (the controller's axes, not the image's).
A move may return before the stage is there (``wait=False``); :meth:`StageInterface.wait_settled`
then waits until every moved axis is on target, and raises a
:class:`~spad.errors.DeviceError` naming the stage if it is not within the timeout.
"""

from __future__ import annotations

from abc import abstractmethod

from spad.drivers.interfaces.base import Instrument

AXES = ("x", "y", "z")
"""Axis names of the interface (the driver maps them to the controller's axis identifiers)."""


class StageInterface(Instrument):
    """A closed-loop sample stage (x, y and optionally z)."""

    name = "stage"

    @property
    @abstractmethod
    def axes(self) -> tuple[str, ...]:
        """The axes this stage has, from :data:`AXES` (``("x", "y")`` or ``("x", "y", "z")``)."""

    @abstractmethod
    def get_range(self) -> dict[str, tuple[float, float]]:
        """Travel range per axis, (min, max) in metres."""

    @abstractmethod
    def get_position(self) -> dict[str, float]:
        """Current (measured) position per axis, metres."""

    @abstractmethod
    def move_to(self, x_m: float | None = None, y_m: float | None = None,
                z_m: float | None = None, wait: bool = True, timeout_s: float = 5.0) -> None:
        """Move the given axes (``None``: leave it) to absolute positions.

        Raises
        ------
        DeviceError
            A target outside the range, a controller error, or (``wait=True``) a position that
            has not settled within ``timeout_s``.
        """

    @abstractmethod
    def is_settled(self) -> bool:
        """True when every axis is on target (the controller's on-target state)."""

    @abstractmethod
    def wait_settled(self, timeout_s: float = 5.0) -> None:
        """Wait until :meth:`is_settled`; a :class:`~spad.errors.DeviceError` after
        ``timeout_s``."""

    def check_target(self, target: dict[str, float]) -> None:
        """Raise a :class:`~spad.errors.DeviceError` for a target outside the travel range
        (before anything moves)."""
        from spad.errors import DeviceError

        rng = self.get_range()
        for axis, value in target.items():
            if axis not in rng:
                raise DeviceError(self.name, f"no axis {axis!r} (have {', '.join(rng)})")
            lo, hi = rng[axis]
            if not lo <= value <= hi:
                raise DeviceError(self.name, f"{axis} = {value * 1e6:.3f} µm outside the travel "
                                             f"range {lo * 1e6:g}..{hi * 1e6:g} µm")
