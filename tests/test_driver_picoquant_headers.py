"""The PicoQuant driver against PicoQuant's published headers (tests/fake_picoquant/vendor/):
every function the driver declares through ctypes exists in hhlib.h / mhlib.h / phlib.h with
the same C argument types, its constants are the headers' values, and the fake library, built
against the headers, does not compile when a signature differs."""

from __future__ import annotations

import ctypes
import re
from ctypes import POINTER, c_char_p, c_double, c_int, c_uint
from pathlib import Path

import pytest
from spad.drivers.picoquant import constants as k
from spad.drivers.picoquant.library import _COMMON, _FAMILY, DEFAULT_NAMES

from tests.picoquant_fake import HEADERS, PREFIX, SOURCE, build

LIB_HEADER = {"hydraharp": "hhlib.h", "multiharp": "mhlib.h", "picoharp": "phlib.h"}
DEFIN_HEADER = {"hydraharp": "hhdefin.h", "multiharp": "mhdefin.h", "picoharp": "phdefin.h"}
C_TYPES = {"int": c_int, "int*": POINTER(c_int), "char*": c_char_p,
           "double*": POINTER(c_double), "unsignedint*": POINTER(c_uint)}


def prototypes(family: str) -> dict[str, list[str]]:
    """``{function: [C type of each argument]}`` declared in the family's library header."""
    text = (HEADERS / family / LIB_HEADER[family]).read_text("latin-1")
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
    text = (HEADERS / family / header).read_text("latin-1")
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


def test_a_fake_function_that_differs_from_the_header_does_not_build(tmp_path):
    source = SOURCE.read_text()
    wrong = source.replace("int P(SetBinning)(int devidx, int b)",
                           "int P(SetBinning)(int devidx, double b)")
    assert wrong != source
    bad = tmp_path / "fakepq_wrong.c"
    bad.write_text(wrong)
    with pytest.raises(RuntimeError, match="conflicting types for .HH_SetBinning"):
        build("hydraharp", tmp_path, source=bad)
    extra = tmp_path / "fakepq_extra.c"     # a function the vendor does not export
    extra.write_text(source + "\nint HH_SetTurbo(int devidx) { return devidx; }\n")
    with pytest.raises(RuntimeError, match="no previous prototype for .HH_SetTurbo"):
        build("hydraharp", tmp_path, source=extra)


@pytest.mark.parametrize("family", sorted(PREFIX))
def test_the_fake_built_against_the_headers_exports_what_the_driver_loads(family, tmp_path):
    lib = ctypes.CDLL(str(build(family, Path(tmp_path))))
    prefix = PREFIX[family]
    for name in {**_COMMON, **_FAMILY[prefix]}:
        assert hasattr(lib, f"{prefix}_{name}")
