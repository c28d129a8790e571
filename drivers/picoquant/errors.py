"""Errors of the PicoQuant driver, each a :class:`spad.errors.DeviceError` naming the device."""

from __future__ import annotations

from spad.errors import DeviceError


class PicoQuantError(DeviceError):
    """A library call failed (negative return code) or the device flagged a problem.

    Attributes
    ----------
    function
        The library function (``"HH_ReadFiFo"``), or ``None`` for flags.
    code
        The library's return code, or ``None``.
    """

    def __init__(self, device: str, problem: str, function: str | None = None,
                 code: int | None = None) -> None:
        super().__init__(device, problem)
        self.function = function
        self.code = code


class PicoQuantLibraryError(PicoQuantError):
    """The vendor library cannot be found or loaded, or lacks a function the driver needs."""


class FifoOverrunError(PicoQuantError):
    """The device FIFO overflowed: records were lost, the measurement was stopped."""
