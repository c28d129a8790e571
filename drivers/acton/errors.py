"""Errors of the Acton driver: every one is a :class:`spad.errors.DeviceError` naming the port."""

from __future__ import annotations

from spad.errors import DeviceError


class ActonError(DeviceError):
    """The spectrograph refused a command, did not answer, or answered something unreadable."""


class ActonTimeoutError(ActonError):
    """No complete reply (ending in ``ok``) within the timeout."""


class ActonDisconnectedError(ActonError):
    """The serial link went away (cable pulled, USB adapter gone)."""
