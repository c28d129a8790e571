"""Build the fake Andor SDK2 library of tests/fake_andor and point pylablib at it, so that
pylablib's real ``AndorSDK2Camera`` runs over it (shared by the tests)."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SOURCE = Path(__file__).parent / "fake_andor" / "fakesdk2.c"


C_TYPES = {"ctypes.c_int": "int", "ctypes.c_uint": "unsigned int", "ctypes.c_long": "long",
           "ctypes.c_ulong": "unsigned long", "ctypes.c_float": "float",
           "ctypes.c_char_p": "char*", "WORD": "unsigned short",
           "AndorCapabilities": "AndorCapabilities"}


def _capabilities() -> str:
    """The AndorCapabilities struct laid out as pylablib's ctypes structure is (its ULONG is
    the platform's C ``unsigned long``)."""
    from pylablib.devices.Andor.atmcd32d_defs import AndorCapabilities
    c_names = {ctypes.sizeof(ctypes.c_uint): "unsigned int",
               ctypes.sizeof(ctypes.c_ulong): "unsigned long"}
    fields = [f"    {c_names[ctypes.sizeof(t)]} {n};" for n, t in AndorCapabilities._fields_]
    return "typedef struct {\n" + "\n".join(fields) + "\n} AndorCapabilities;\n"


def _c_type(ctype: str) -> str:
    pointer = re.fullmatch(r"ctypes\.POINTER\((.+)\)", ctype)
    return f"{_c_type(pointer.group(1))}*" if pointer else C_TYPES[ctype]


def pylablib_header(names: set[str]) -> str:
    """C prototypes of the SDK functions ``names`` as pylablib declares them for ctypes
    (the signature comments of pylablib/devices/Andor/atmcd32d_defs.py)."""
    from pylablib.devices.Andor import atmcd32d_defs
    text = Path(atmcd32d_defs.__file__).read_text()
    lines = ["/* written by tests/andor_fake.py from pylablib's atmcd32d_defs.py */",
             _capabilities()]
    for name, args in re.findall(r"#  ctypes\.c_uint (\w+)\((.*)\)", text):
        if name in names:
            params = [_c_type(a.rsplit(" ", 1)[0]) for a in filter(None, args.split(", "))]
            lines.append(f"unsigned int {name}({', '.join(params) or 'void'});")
            names = names - {name}
    if names:
        raise RuntimeError(f"pylablib declares no SDK function {sorted(names)}")
    return "\n".join(lines) + "\n"


def build(outdir: Path, source: Path = SOURCE) -> Path:
    """Compile the fake SDK as ``atmcd64d.dll`` (the name pylablib loads; the ELF loader does
    not mind the suffix) against pylablib's declarations, with pylablib's values of the SDK's
    return codes."""
    from pylablib.devices.Andor.atmcd32d_defs import DRV_STATUS
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler (cc) on this machine")
    text = source.read_text()
    sdk = set(re.findall(r"^unsigned int (\w+)\(", text, re.M))
    (outdir / "pylablib_sdk2.h").write_text(pylablib_header(sdk))
    codes = sorted(set(re.findall(r"\bDRV_[A-Z0-9_]+", text)))
    defines = [f"-D{name}={int(getattr(DRV_STATUS, name))}" for name in codes]
    out = outdir / "atmcd64d.dll"
    done = subprocess.run([cc, "-shared", "-fPIC", "-O1", "-Wall", "-Wmissing-prototypes",
                           "-Werror", f"-I{outdir}", *defines, "-o", str(out), str(source),
                           "-lm"], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the fake Andor SDK does not compile:\n{done.stderr}")
    return out


@contextmanager
def pylablib_on(path: Path) -> Iterator[ctypes.CDLL]:
    """pylablib's Andor SDK2 layer loading ``path``; its test controls as a CDLL. Restores
    pylablib's settings (and forgets the library) on leaving."""
    import pylablib
    from pylablib.devices.Andor import AndorSDK2, atmcd32d_lib
    keys = ("devices/only_windows_dlls", "devices/dlls/andor_sdk2")
    saved = {}
    for k in keys:
        try:
            saved[k] = pylablib.par[k]
        except KeyError:
            pass
    pylablib.par["devices/only_windows_dlls"] = False     # pylablib's switch for Linux
    pylablib.par["devices/dlls/andor_sdk2"] = str(path)
    controls = ctypes.CDLL(str(path))                     # the same loaded object as pylablib's
    controls.FAKEANDOR_Reset()
    try:
        yield controls
    finally:
        # forget the loaded library: the next use loads again (or fails without an SDK)
        atmcd32d_lib.wlib._initialized = False
        AndorSDK2.libctl.initialized = False
        for k in keys:
            if k in saved:
                pylablib.par[k] = saved[k]
            else:
                del pylablib.par[k]


def call_log(controls: ctypes.CDLL) -> list[str]:
    buf = ctypes.create_string_buffer(65536)
    controls.FAKEANDOR_GetCallLog(buf, len(buf))
    return buf.value.decode().split()
