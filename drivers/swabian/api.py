"""Loading Swabian's Time Tagger API, with one clear message where it is missing.

Swabian ships the same API two ways: the package on PyPI (``pip install swabian-timetagger``,
2.22 and later) installs it as ``Swabian.TimeTagger``; Swabian's installer for Windows and
Linux puts a top-level ``TimeTagger`` module on the Python path. Either serves the driver.
"""

from __future__ import annotations

import importlib
from typing import Any

from spad.errors import DeviceError

MODULES = ("Swabian.TimeTagger", "TimeTagger")
"""Where the API is looked for, in order: the PyPI wheel, then the installer's module."""

INSTALL_HINT = ("the Swabian Time Tagger software is not installed: 'pip install "
                "swabian-timetagger' (the spad extra 'spad[swabian]') or Swabian's installer "
                "from swabianinstruments.com")


def load_api(name: str) -> Any:
    """The Time Tagger API module, or DeviceError naming ``name`` and how to install it.

    A module that is present but fails to load (for instance its shared library cannot be
    loaded) is reported with its own error, not as missing software.
    """
    broken: list[str] = []
    for module in MODULES:
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module.startswith(exc.name):
                continue                # this spelling is not installed: try the next
            broken.append(f"{module}: {exc}")
        except (ImportError, OSError) as exc:
            broken.append(f"{module}: {exc}")
    if broken:
        raise DeviceError(name, "the Swabian Time Tagger software is installed but does not "
                                "load (" + "; ".join(broken) + ")")
    raise DeviceError(name, INSTALL_HINT)
