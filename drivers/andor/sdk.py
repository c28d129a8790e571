"""Connecting to an Andor SDK2 camera through pylablib, with one clear error when the SDK is
missing.

Importing this module (or pylablib's Andor package) never needs the SDK; connecting does:
pylablib then loads ``atmcd64d.dll`` (Windows; from the Andor SDK or Solis installation).
Connecting resets the camera's settings, and a camera left unclosed can hold the SDK until the
computer restarts (pylablib's documentation): the driver always closes.
"""

from __future__ import annotations

from typing import Any

from spad.drivers.andor.errors import AndorCameraError, translated


def connect_sdk2(name: str, index: int = 0, temperature: float | None = None,
                 fan_mode: str = "full") -> Any:
    """Open camera ``index`` with pylablib's ``AndorSDK2Camera``."""
    try:
        from pylablib.devices import Andor
    except ImportError:
        raise AndorCameraError(name, "pylablib is not installed (pip install pylablib)"
                               ) from None
    try:
        with translated(name, "connecting"):
            return Andor.AndorSDK2Camera(idx=index, temperature=temperature, fan_mode=fan_mode)
    except OSError as exc:
        raise AndorCameraError(name, f"the Andor SDK (atmcd64d.dll) cannot be loaded ({exc}); "
                                     "install Andor SDK2 or Solis on this PC") from None
