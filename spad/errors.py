"""Exceptions raised by spad.

Every error a user can cause (a bad file, a wrong unit, a device that does not answer) is one of
these, so the CLI can print a single line and exit non-zero instead of a traceback.
"""

from __future__ import annotations


class SpadError(Exception):
    """Base class of all errors spad raises on purpose."""


class FormatError(SpadError, ValueError):
    """A file is corrupt, truncated, of a foreign format, or inconsistent with itself.

    Parameters
    ----------
    path
        The file concerned (shown first in the message), or ``None``.
    problem
        What is wrong, in one line.
    """

    def __init__(self, path: object, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class DeviceError(SpadError):
    """An instrument reported an error or did not answer.

    Parameters
    ----------
    device
        Name of the device (e.g. ``"HydraHarp 400 #0"`` or ``"Acton SP2300 on COM3"``).
    problem
        What went wrong, in one line.
    """

    def __init__(self, device: str, problem: str) -> None:
        self.device = device
        self.problem = problem
        super().__init__(f"{device}: {problem}")
