"""Loading Swabian's ``TimeTagger`` module, with one clear message where it is missing."""

from __future__ import annotations

from typing import Any

from spad.errors import DeviceError

INSTALL_HINT = ("the Swabian Time Tagger software is not installed: install it from "
                "swabianinstruments.com or 'pip install swabian-timetagger' (the spad extra "
                "'spad[swabian]')")


def load_api(name: str) -> Any:
    """The ``TimeTagger`` module, or DeviceError naming ``name`` and how to install it."""
    try:
        import TimeTagger  # type: ignore[import-not-found]
    except ImportError:
        raise DeviceError(name, INSTALL_HINT) from None
    return TimeTagger
