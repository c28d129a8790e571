"""The ctypes layer over hhlib / mhlib / phlib: load the library, declare the signatures the
driver uses (as in the vendor headers hhlib.h, mhlib.h, phlib.h: checked against them by
tests/test_driver_picoquant_headers.py), call and check return codes.

A negative return code becomes a :class:`~spad.drivers.picoquant.errors.PicoQuantError` with the
library's own text from ``GetErrorString`` and the function's name.

Where the library is found: the path given (rig file ``library = ...``), else the environment
variable ``SPAD_PICOQUANT_LIBRARY``, else the vendor's default name on the system search path
(``hhlib64.dll`` / ``libhh400.so`` and so on).
"""

from __future__ import annotations

import ctypes
import os
import sys
from ctypes import POINTER, c_char_p, c_double, c_int, c_uint
from typing import Any

from spad.drivers.picoquant.errors import PicoQuantError, PicoQuantLibraryError

ENV_LIBRARY = "SPAD_PICOQUANT_LIBRARY"

DEFAULT_NAMES = {
    "hydraharp": ("HH", "hhlib64.dll" if sys.platform == "win32" else "libhh400.so"),
    "multiharp": ("MH", "mhlib64.dll" if sys.platform == "win32" else "libmh150.so"),
    "picoharp": ("PH", "phlib64.dll" if sys.platform == "win32" else "libph300.so"),
}

_I, _PI, _S, _PD = c_int, POINTER(c_int), c_char_p, POINTER(c_double)

# Signatures common to the three libraries (all return int).
_COMMON: dict[str, list[Any]] = {
    "GetLibraryVersion": [_S],
    "GetErrorString": [_S, _I],
    "OpenDevice": [_I, _S],
    "CloseDevice": [_I],
    "GetHardwareInfo": [_I, _S, _S, _S],
    "GetSerialNumber": [_I, _S],
    "GetBaseResolution": [_I, _PD, _PI],
    "SetSyncDiv": [_I, _I],
    "SetBinning": [_I, _I],
    "SetOffset": [_I, _I],
    "GetResolution": [_I, _PD],
    "GetCountRate": [_I, _I, _PI],
    "GetWarnings": [_I, _PI],
    "GetWarningsText": [_I, _S, _I],
    "StartMeas": [_I, _I],
    "StopMeas": [_I],
    "CTCStatus": [_I, _PI],
    "GetFlags": [_I, _PI],
}
_FAMILY: dict[str, dict[str, list[Any]]] = {
    "HH": {"Initialize": [_I, _I, _I], "GetNumOfInputChannels": [_I, _PI], "Calibrate": [_I],
           "SetSyncCFD": [_I, _I, _I], "SetSyncChannelOffset": [_I, _I],
           "SetInputCFD": [_I, _I, _I, _I], "SetInputChannelOffset": [_I, _I, _I],
           "GetSyncRate": [_I, _PI], "ReadFiFo": [_I, POINTER(c_uint), _I, _PI]},
    "MH": {"Initialize": [_I, _I, _I], "GetNumOfInputChannels": [_I, _PI],
           "SetSyncEdgeTrg": [_I, _I, _I], "SetSyncChannelOffset": [_I, _I],
           "SetInputEdgeTrg": [_I, _I, _I, _I], "SetInputChannelOffset": [_I, _I, _I],
           "GetSyncRate": [_I, _PI], "ReadFiFo": [_I, POINTER(c_uint), _PI]},
    "PH": {"Initialize": [_I, _I], "Calibrate": [_I], "SetInputCFD": [_I, _I, _I, _I],
           "SetSyncOffset": [_I, _I], "ReadFiFo": [_I, POINTER(c_uint), _I, _PI]},
}


class Library:
    """One loaded vendor library.

    Parameters
    ----------
    family
        ``"hydraharp"``, ``"multiharp"`` or ``"picoharp"``.
    path
        Library file; ``None`` or ``""``: ``$SPAD_PICOQUANT_LIBRARY`` or the default name.
    device
        Name used in errors.
    """

    def __init__(self, family: str, path: str | None, device: str) -> None:
        self.prefix, default = DEFAULT_NAMES[family]
        self.device = device
        self.path = path or os.environ.get(ENV_LIBRARY) or default
        loader = ctypes.WinDLL if sys.platform == "win32" else ctypes.CDLL  # type: ignore[attr-defined]
        try:
            self._lib = loader(self.path)
        except OSError as exc:
            raise PicoQuantLibraryError(
                device, f"cannot load the vendor library {self.path!r} ({exc}); install "
                f"PicoQuant's {self.prefix}Lib and give its path as 'library' in the rig file "
                f"or in ${ENV_LIBRARY}") from None
        self._funcs: dict[str, Any] = {}
        for name, args in {**_COMMON, **_FAMILY[self.prefix]}.items():
            full = f"{self.prefix}_{name}"
            try:
                f = getattr(self._lib, full)
            except AttributeError:
                raise PicoQuantLibraryError(device, f"{self.path} has no function {full} "
                                                    "(wrong library for this device?)") from None
            f.argtypes, f.restype = args, c_int
            self._funcs[name] = f

    def raw(self, name: str, *args: Any) -> int:
        """Call ``<prefix>_<name>`` and return its code unchecked."""
        return int(self._funcs[name](*args))

    def error_string(self, code: int) -> str:
        buf = ctypes.create_string_buffer(64)     # the headers ask for at least 40 bytes
        if self.raw("GetErrorString", buf, code) < 0:
            return f"error code {code}"
        return buf.value.decode("ascii", "replace")

    def __call__(self, name: str, *args: Any) -> int:
        """Call ``<prefix>_<name>``; a negative return code raises PicoQuantError."""
        code = self.raw(name, *args)
        if code < 0:
            full = f"{self.prefix}_{name}"
            raise PicoQuantError(self.device, f"{full} failed: {self.error_string(code)} "
                                              f"({code})", full, code)
        return code

    def has(self, name: str) -> bool:
        return name in self._funcs
