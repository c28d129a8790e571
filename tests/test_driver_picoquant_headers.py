"""The PicoQuant driver against PicoQuant's published headers, on a machine that has them.

Opt-in: set ``SPAD_PICOQUANT_HEADERS`` to a folder of PicoQuant's headers, either one family's
(the folder of an installed HHLib / MHLib / PHLib holding ``hhlib.h``, ``hhdefin.h`` and
``errorcodes.h``, and so on) or one with a sub-folder per family (``hydraharp/``,
``multiharp/``, ``picoharp/``). Then every function the driver declares through ctypes must
exist in hhlib.h / mhlib.h / phlib.h with the same C argument types, its constants must be the
headers' values, and the fake library (tests/fake_picoquant/fakepq.c), compiled against the
headers instead of the project's own fakepq_decl.h, must build (a signature that differs does
not). Without the variable those tests skip, naming it; the tests of the fake against the
project's declarations (it builds, exports what the driver loads, refuses what its limits
refuse) run either way.
"""

from __future__ import annotations

import ctypes
import os
import re
from ctypes import POINTER, c_char_p, c_double, c_int, c_uint
from pathlib import Path

import pytest
from spad.drivers.picoquant import constants as k
from spad.drivers.picoquant.library import _COMMON, _FAMILY, DEFAULT_NAMES

from tests.picoquant_fake import ENV_HEADERS, LIB_HEADER, PREFIX, SOURCE, build, vendor_headers

DEFIN_HEADER = {"hydraharp": "hhdefin.h", "multiharp": "mhdefin.h", "picoharp": "phdefin.h"}
C_TYPES = {"int": c_int, "int*": POINTER(c_int), "char*": c_char_p,
           "double*": POINTER(c_double), "unsignedint*": POINTER(c_uint)}


def headers_of(family: str) -> Path:
    """The folder of PicoQuant's headers of ``family``; skips the test when
    $SPAD_PICOQUANT_HEADERS is not set or holds none for this family, fails when it names a
    folder that does not exist (a typo must not pass as a skip)."""
    try:
        folder = vendor_headers(family)
    except FileNotFoundError as exc:
        if not Path(os.environ[ENV_HEADERS]).is_dir():
            pytest.fail(f"${ENV_HEADERS}={os.environ[ENV_HEADERS]} is not a folder")
        pytest.skip(str(exc))
    if folder is None:
        pytest.skip(f"PicoQuant's headers not available: set {ENV_HEADERS} to the folder of an "
                    f"installed PicoQuant SDK's {LIB_HEADER[family]} (or one with a "
                    f"{family}/ sub-folder) to check the driver against them")
    return folder


@pytest.fixture(params=["project", "vendor"])
def declarations(request):
    """Build against the project's fakepq_decl.h, or (opt-in) PicoQuant's headers:
    ``declarations(family)`` gives the ``headers`` argument of ``build``."""
    if request.param == "project":
        return lambda family: None
    return headers_of


def prototypes(family: str) -> dict[str, list[str]]:
    """``{function: [C type of each argument]}`` declared in the family's library header."""
    text = (headers_of(family) / LIB_HEADER[family]).read_text("latin-1")
    out = {}
    for name, args in re.findall(r"extern\s+int\s+_stdcall\s+(\w+)\s*\(([^)]*)\)", text):
        types = []
        for arg in filter(None, (a.strip() for a in args.split(","))):
            if arg == "void":
                continue
            decl = re.sub(r"\s*\*\s*", "* ", arg).split()      # "char *x" -> "char* x"
            types.append("".join(decl[:-1]))                    # drop the parameter name
        out[name] = types
    return out


def defines(family: str, header: str) -> dict[str, int]:
    """Integer ``#define``s of a header."""
    text = (headers_of(family) / header).read_text("latin-1")
    return {name: int(value, 0) for name, value in
            re.findall(r"^#define\s+(\w+)\s+(-?(?:0x[0-9A-Fa-f]+|\d+))\b", text, re.M)}


@pytest.mark.parametrize("family", sorted(PREFIX))
def test_every_ctypes_signature_of_the_driver_is_the_headers(family):
    prefix = DEFAULT_NAMES[family][0]
    declared = prototypes(family)
    assert len(declared) > 20                       # the header was read
    problems = []
    for name, argtypes in {**_COMMON, **_FAMILY[prefix]}.items():
        full = f"{prefix}_{name}"
        if full not in declared:
            problems.append(f"{full}: not declared in {LIB_HEADER[family]}")
            continue
        unknown = [t for t in declared[full] if t not in C_TYPES]
        assert not unknown, f"{full}: C types {unknown} not mapped"
        want = [C_TYPES[t] for t in declared[full]]
        if argtypes != want:
            problems.append(f"{full}: the driver declares {argtypes}, {LIB_HEADER[family]} "
                            f"{declared[full]}")
    assert not problems, "\n".join(problems)


# (constant of drivers/picoquant/constants.py, header, name there) for each family
COMMON_DEFINES = [("MAXDEVNUM", "MAXDEVNUM"), ("MODE_T2", "MODE_T2"), ("MODE_T3", "MODE_T3")]
FAMILY_DEFINES = {
    "hydraharp": [("TTREADMAX_HH", "TTREADMAX"), ("FLAG_FIFOFULL", "FLAG_FIFOFULL"),
                  ("FLAG_SYNC_LOST", "FLAG_SYNC_LOST"), ("FLAG_REF_LOST", "FLAG_REF_LOST"),
                  ("FLAG_SYSERROR", "FLAG_SYSERROR"), ("FLAG_ACTIVE", "FLAG_ACTIVE"),
                  ("EDGE_RISING", "EDGE_RISING"), ("EDGE_FALLING", "EDGE_FALLING"),
                  ("CHANOFFS_PS", "CHANOFFSMAX"), ("ACQTMAX_MS", "ACQTMAX")],
    "multiharp": [("TTREADMAX_MH", "TTREADMAX"), ("FLAG_FIFOFULL", "FLAG_FIFOFULL"),
                  ("FLAG_SYNC_LOST", "FLAG_SYNC_LOST"), ("FLAG_REF_LOST", "FLAG_REF_LOST"),
                  ("FLAG_SYSERROR", "FLAG_SYSERROR"), ("FLAG_ACTIVE", "FLAG_ACTIVE"),
                  ("FLAG_CNTS_DROPPED", "FLAG_CNTS_DROPPED"), ("EDGE_RISING", "EDGE_RISING"),
                  ("EDGE_FALLING", "EDGE_FALLING"), ("REFSRC_INTERNAL", "REFSRC_INTERNAL"),
                  ("REFSRC_EXTERNAL", "REFSRC_EXTERNAL_10MHZ"), ("CHANOFFS_PS", "CHANOFFSMAX"),
                  ("ACQTMAX_MS", "ACQTMAX")],
    "picoharp": [("TTREADMAX_PH", "TTREADMAX"), ("PH_FLAG_FIFOFULL", "FLAG_FIFOFULL"),
                 ("PH_FLAG_SYSERROR", "FLAG_SYSERROR"), ("CHANOFFS_PS", "SYNCOFFSMAX"),
                 ("ACQTMAX_MS", "ACQTMAX")],
}
ERROR_PREFIX = {"hydraharp": "HH_", "multiharp": "MH_", "picoharp": ""}


@pytest.mark.parametrize("family", sorted(PREFIX))
def test_the_driver_constants_are_the_headers(family):
    values = defines(family, DEFIN_HEADER[family])
    errors = defines(family, "errorcodes.h")
    wrong = [f"{ours} = {getattr(k, ours)}, {DEFIN_HEADER[family]} {theirs} = {values[theirs]}"
             for ours, theirs in COMMON_DEFINES + FAMILY_DEFINES[family]
             if getattr(k, ours) != values[theirs]]
    assert k.SYNCDIVMAX[family] == values["SYNCDIVMAX"]
    e = ERROR_PREFIX[family]
    assert k.ERROR_DEVICE_OPEN_FAIL == errors[f"{e}ERROR_DEVICE_OPEN_FAIL"]
    assert k.ERROR_USB_BULKRD_FAIL == errors[f"{e}ERROR_USB_BULKRD_FAIL"]
    assert not wrong, "\n".join(wrong)


def test_the_picoharp_header_has_none_of_the_flags_the_driver_skips_for_it():
    # the driver reads sync-lost, reference-lost and counts-dropped only for HH/MH: the
    # PicoHarp's flags word has other meanings at those bits
    values = defines("picoharp", "phdefin.h")
    assert not {"FLAG_SYNC_LOST", "FLAG_REF_LOST", "FLAG_CNTS_DROPPED"} & set(values)


def test_a_fake_function_that_differs_from_its_declaration_does_not_build(tmp_path,
                                                                        declarations):
    headers = declarations("hydraharp")
    source = SOURCE.read_text()
    wrong = source.replace("int P(SetBinning)(int devidx, int b)",
                           "int P(SetBinning)(int devidx, double b)")
    assert wrong != source
    bad = tmp_path / "fakepq_wrong.c"
    bad.write_text(wrong)
    with pytest.raises(RuntimeError, match="conflicting types for .HH_SetBinning"):
        build("hydraharp", tmp_path, source=bad, headers=headers)
    extra = tmp_path / "fakepq_extra.c"     # a function the library does not export
    extra.write_text(source + "\nint HH_SetTurbo(int devidx) { return devidx; }\n")
    with pytest.raises(RuntimeError, match="no previous prototype for .HH_SetTurbo"):
        build("hydraharp", tmp_path, source=extra, headers=headers)


@pytest.mark.parametrize("family", sorted(PREFIX))
def test_the_fake_exports_what_the_driver_loads(family, tmp_path, declarations):
    lib = ctypes.CDLL(str(build(family, Path(tmp_path), headers=declarations(family))))
    prefix = PREFIX[family]
    for name in {**_COMMON, **_FAMILY[prefix]}:
        assert hasattr(lib, f"{prefix}_{name}")


@pytest.mark.parametrize("family", sorted(PREFIX))
def test_the_fake_takes_the_sync_divider_the_driver_allows_and_no_more(family, tmp_path,
                                                                      declarations):
    # the PicoHarp's limit is 8, not the 16 of the HydraHarp and MultiHarp
    path = build(family, Path(tmp_path), headers=declarations(family))
    lib = ctypes.CDLL(str(path))
    fn = {name: getattr(lib, f"{PREFIX[family]}_{name}") for name in
          ("OpenDevice", "Initialize", "SetSyncDiv", "CloseDevice")}
    lib.PQFAKE_Reset()
    assert fn["OpenDevice"](0, ctypes.create_string_buffer(8)) == 0
    init = (0, k.MODE_T3) if family == "picoharp" else (0, k.MODE_T3, k.REFSRC_INTERNAL)
    assert fn["Initialize"](*init) == 0
    assert fn["SetSyncDiv"](0, k.SYNCDIVMAX[family]) == 0
    assert fn["SetSyncDiv"](0, k.SYNCDIVMAX[family] + 1) == -17     # ERROR_INVALID_ARGUMENT
    fn["CloseDevice"](0)
