"""Errors of the Andor driver: pylablib's Andor exceptions become DeviceErrors naming the camera.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from spad.errors import DeviceError


class AndorCameraError(DeviceError):
    """The camera or its SDK refused a setting or failed."""


class AndorCameraTimeout(AndorCameraError):
    """No frame within the timeout."""


class AndorCameraLost(AndorCameraError):
    """The camera stopped answering (``DRV_ERROR_ACK``: cable or power)."""


# SDK2 codes meaning the camera is no longer reachable (atmcd32d.h).
LOST_CODES = {20013: "DRV_ERROR_ACK", 20075: "DRV_NOT_INITIALIZED"}


def _andor_exceptions() -> tuple[type[BaseException], type[BaseException]]:
    from pylablib.devices.Andor.base import AndorError, AndorTimeoutError
    return AndorError, AndorTimeoutError


@contextmanager
def translated(name: str, what: str) -> Iterator[None]:
    """Turn pylablib's Andor errors raised inside the block into AndorCameraError subclasses."""
    andor_error, andor_timeout = _andor_exceptions()
    try:
        yield
    except andor_timeout as exc:
        raise AndorCameraTimeout(name, f"{what}: {exc}") from None
    except andor_error as exc:
        code = getattr(exc, "code", None)
        if code in LOST_CODES:
            raise AndorCameraLost(name, f"{what}: camera not answering ({LOST_CODES[code]}; "
                                        "cable or power?)") from None
        raise AndorCameraError(name, f"{what}: {exc}") from None
