"""Can Qt open a window here? Checked before the QApplication exists.

On Linux, Qt 5 opens its windows through the xcb platform plugin, which needs a few X11
libraries that a minimal Debian or Ubuntu installation lacks (``libxcb-icccm4``,
``libxcb-keysyms1``, ``libxcb-xinerama0``, …). Without them Qt prints "Could not load the Qt
platform plugin "xcb"" and aborts the process (exit 134), which no Python code can catch. So
``spad gui`` asks the dynamic loader first (``ldd`` on the plugin) and stops with one line that
names the missing libraries and the Debian/Ubuntu packages that hold them (the Qt
documentation's list of xcb requirements: https://doc.qt.io/qt-5/linux-requirements.html).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from spad.errors import SpadError

_PACKAGE_EXCEPTIONS = {"libglib-2.0.so.0": "libglib2.0-0"}
"""Libraries whose Debian package name does not follow the soname rule below."""


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package of a shared library, by the Debian policy's naming rule
    (library name and soname version; a ``-`` between them when the name ends in a digit):
    ``libxcb-icccm.so.4`` → ``libxcb-icccm4``, ``libxkbcommon-x11.so.0`` →
    ``libxkbcommon-x11-0``."""
    if soname in _PACKAGE_EXCEPTIONS:
        return _PACKAGE_EXCEPTIONS[soname]
    m = re.fullmatch(r"(.+?)\.so\.(\d+)(?:\..*)?", soname)
    if m is None:
        return soname
    name, version = m.group(1).lower(), m.group(2)
    return f"{name}-{version}" if name[-1].isdigit() else f"{name}{version}"


def xcb_plugin() -> Path | None:
    """The xcb platform plugin of the installed Qt, or None when it has none."""
    from PyQt5.QtCore import QLibraryInfo  # QtCore alone loads no platform plugin

    plugin = Path(QLibraryInfo.location(QLibraryInfo.PluginsPath)) / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def missing_libraries(library: Path) -> list[str]:
    """Shared libraries that ``library`` needs (directly or not) and the loader cannot find."""
    try:
        out = subprocess.run(["ldd", str(library)], capture_output=True, text=True,
                             timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return _first_missing(library)
    found = re.findall(r"^\s*(\S+)\s+=>\s+not found", out, flags=re.MULTILINE)
    return list(dict.fromkeys(found))        # each once, in the loader's order


def _first_missing(library: Path) -> list[str]:
    """Without ``ldd``: load the library; the loader names the first one it lacks."""
    import ctypes

    try:
        ctypes.CDLL(str(library))
    except OSError as exc:
        m = re.search(r"(\S+\.so[.\d]*): cannot open shared object file", str(exc))
        if m:
            return [m.group(1)]
    return []


def check_display(environ: dict[str, str] | None = None) -> None:
    """Raise :class:`SpadError` naming what is missing when Qt's xcb plugin could not start
    on this machine; return quietly elsewhere (other systems, other Qt platforms)."""
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return
    platform = env.get("QT_QPA_PLATFORM", "xcb").split(";")[0].split(":")[0].strip() or "xcb"
    if platform != "xcb":
        return
    plugin = xcb_plugin()
    if plugin is None:
        return
    missing = missing_libraries(plugin)
    if missing:
        packages = " ".join(dict.fromkeys(debian_package(m) for m in missing))
        raise SpadError(f"Qt's xcb platform plugin {plugin} cannot load: missing "
                        f"{', '.join(missing)}; install them (Debian/Ubuntu: sudo apt-get "
                        f"install {packages})")
    if not env.get("DISPLAY"):
        raise SpadError("no X display to open the window on (DISPLAY is not set): start "
                        "spad gui from a desktop session, or with ssh -X")
