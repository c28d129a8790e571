"""Becker & Hickl FIFO files (``.spc``) of the SPC-130/134/140/150/160/830 cards, read with the
``.set`` settings file that the bh software writes beside them.

Layout (W. Becker, *The bh TCSPC Handbook*, "FIFO files"; the same fields as libtcspc's
``bh_spc_event`` and phconvert's ``bhreader``), all little-endian 32-bit words:

- word 0, the file header: macrotime clock in units of 0.1 ns (bits 0-23), number of routing
  bits (27-30), data valid (31);
- then one record per event: macrotime (bits 0-11, wraps every 4096 ticks), routing signals
  (12-15, the detector), ADC value (16-27), MARK (28), GAP (29), MTOV (30), INVALID (31). See
  :mod:`spad.formats.records` for what each flag combination means. The TAC runs
  photon-start/sync-stop, so the delay after the laser pulse is ``4095 - ADC`` bins.

What the ``.spc`` file does not hold, its ``.set`` file does: the TCSPC bin is the TAC range
over its gain over the 4096 ADC values (``SP_TAC_R / SP_TAC_G / 4096``, as phconvert computes
it), the module (SPC-130, -830, ...) is in the binary header's revision field. spad looks for
``<name>.set`` (or ``.SET``) beside the ``.spc`` file; without it the file is refused, because
no TCSPC bin width would be anything but a guess.

The macrotime clock is the card's own clock (e.g. 50 ns), or the laser sync when the
measurement was set up so: spad reads the macrotime as the timestamp and its clock as the
timestamp unit, and cannot tell which clock it was. As for the TimeHarp 200, photon arrival
times are then known to one macrotime tick, and the reader warns that correlations (g2) at
shorter lags are not resolved. The laser period is not in either file: ``timing.sync_period``
is ``None`` and the TCSPC window spans the 4096 ADC bins.

SPC files have no magic number. :func:`looks_like_spc` recognises one by its content: the
header word (data-valid flag set, a macrotime clock between 1 ns and 10 us, at most 4 routing
bits) and records whose event times never go back within the first 64 Ki records (at least 8
photons). ASCII text can never pass (bit 31 of the first word is clear), nor can any other
format spad reads, which are all tried first.

Config example (none needed)::

    spad info particle7.spc        # particle7.set beside it
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np

from spad.errors import FormatError
from spad.formats.base import RecordFileReader, count_records
from spad.photons import Meta, Timing

_SNIFF_RECORDS = 1 << 16
_MIN_PHOTONS = 8

# Module codes of the .set header's revision field (bits 4-11), after bh's
# SPC_data_file_structure.h as phconvert lists them: the cards whose FIFO records this reads.
_FIFO32_MODULES = {
    0x20: "SPC-130", 0x25: "SPC-830", 0x26: "SPC-140", 0x28: "SPC-150", 0x2A: "SPC-130EM",
    0x2B: "SPC-160", 0x2E: "SPC-150N", 0x80: "SPC-150NX", 0x81: "SPC-160X",
    0x82: "SPC-160PCIE", 0x83: "SPC-130EMN", 0x84: "SPC-180N", 0x85: "SPC-180NX",
    0x86: "SPC-180NXX", 0x87: "SPC-180N-USB", 0x88: "SPC-130IN", 0x89: "SPC-130INX",
    0x8A: "SPC-130INXX",
}
_OTHER_MODULES = {
    0x21: "SPC-600", 0x22: "SPC-630", 0x23: "SPC-700", 0x24: "SPC-730", 0x27: "SPC-930",
    0x29: "DPC-230", 0x8B: "SPC-QC-104", 0x8C: "SPC-QC-004", 0x8D: "SPC-QC-106",
    0x8E: "SPC-QC-006",
}


def _header_fields(word: int) -> tuple[int, int, bool]:
    """Macrotime clock (0.1 ns), number of routing bits, data-valid flag of header word 0."""
    return word & 0xFFFFFF, (word >> 27) & 15, bool(word >> 31)


def _header_ok(word: int) -> bool:
    clock, routing_bits, valid = _header_fields(word)
    return valid and 10 <= clock <= 100_000 and routing_bits <= 4


def event_order_ok(words: np.ndarray) -> tuple[int, bool]:
    """Photons in ``words`` (records after the header) and whether event times never go back."""
    w = words.astype(np.int64)
    inv = w >> 31
    mtov = (w >> 30) & 1
    mark = (w >> 28) & 1
    multi = inv & mtov & (1 - mark)
    wraps = np.cumsum(multi * (w & 0xFFFFFFF) + (1 - multi) * mtov)
    event = (inv == 0) | ((inv == 1) & (mark == 1))
    t = wraps[event] * 4096 + (w[event] & 0xFFF)
    return int(np.count_nonzero(inv == 0)), bool(np.all(t[1:] >= t[:-1]))


def looks_like_spc(head: bytes, fh: Any, size: int) -> bool:  # noqa: ANN401 - open binary file
    """True if the file's content is a B&H SPC-1xx/8xx FIFO file (see the module docstring)."""
    if size < 4 * (1 + _MIN_PHOTONS) or len(head) < 4:
        return False
    (word,) = struct.unpack_from("<I", head)
    if not _header_ok(word):
        return False
    fh.seek(4)
    raw = fh.read(4 * _SNIFF_RECORDS)
    words = np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<u4")
    n_photons, ordered = event_order_ok(words)
    return ordered and n_photons >= _MIN_PHOTONS


_PARAM = re.compile(rb"#(\w\w) \[(\w+),(\w),([^\]\r\n]*)\]")


def find_settings(path: Path) -> Path | None:
    """The ``.set`` file written beside ``path`` (same name, ``.set`` or ``.SET``), or None."""
    for suffix in (".set", ".SET", ".Set"):
        candidate = path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def read_settings(path: Path) -> dict[str, Any]:
    """The parameters of a bh ``.set`` file.

    Returns
    -------
    dict
        ``"module_code"`` (the revision field's module code, or None), ``"identification"``
        (the ``*IDENTIFICATION`` block's ``key: value`` lines) and ``"parameters"`` (every
        ``#XX [KEY,T,VALUE]`` line of the ``*SETUP`` block, ``I``/``L``/``U`` as int, ``F`` as
        float, others as text).
    """
    data = path.read_bytes()[: 1 << 20]
    module = None
    if len(data) >= 2:
        module = (struct.unpack_from("<H", data)[0] & 0x0FF0) >> 4
    ident: dict[str, str] = {}
    start, end = data.find(b"*IDENTIFICATION"), data.find(b"*END")
    if 0 <= start < end:
        for line in data[start:end].decode("latin-1").splitlines()[1:]:
            key, sep, value = line.partition(":")
            if sep:
                ident[key.strip()] = value.strip()
    params: dict[str, Any] = {}
    setup = data.find(b"*SETUP")
    stop = data.find(b"SYS_PARA_END", max(setup, 0))
    block = data[setup:stop if stop > 0 else len(data)] if setup >= 0 else b""
    for _prefix, key, kind, raw in _PARAM.findall(block):
        text = raw.decode("latin-1").strip()
        value: Any = text
        try:
            if kind in (b"I", b"L", b"U"):
                value = int(text)
            elif kind == b"F":
                value = float(text)
        except ValueError:
            pass
        params[key.decode("latin-1")] = value
    return {"module_code": module, "identification": ident, "parameters": params}


def _number(path: Path, params: dict[str, Any], key: str) -> float:
    value = params.get(key)
    if not isinstance(value, int | float) or not np.isfinite(value) or value <= 0:
        raise FormatError(path, f"{key} = {value!r} in the settings file: the TCSPC bin width "
                                "cannot be known without a positive TAC range and gain")
    return float(value)


class SpcReader(RecordFileReader):
    """Reader of Becker & Hickl SPC-130/134/140/150/160/830 FIFO ``.spc`` files.

    Parameters
    ----------
    path
        The ``.spc`` file; its ``.set`` file must lie beside it.

    Raises
    ------
    FormatError
        Not an SPC FIFO file, no ``.set`` file, a ``.set`` file of another card family
        (SPC-600/630, QC, DPC), or TAC settings that give no TCSPC bin width.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from spad.formats.records import record_type

        path = Path(path)
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(4)
            if not looks_like_spc(head, fh, size):
                raise FormatError(path, "not a Becker & Hickl SPC FIFO file")
        (word,) = struct.unpack_from("<I", head)
        clock_01ns, routing_bits, _ = _header_fields(word)
        settings_path = find_settings(path)
        if settings_path is None:
            raise FormatError(path, f"a Becker & Hickl SPC file, but its settings file "
                                    f"({path.with_suffix('.set').name}) is not beside it: "
                                    "without the TAC range and gain the TCSPC bin width is "
                                    "unknown; copy the .set file written with it next to it")
        settings = read_settings(settings_path)
        code = settings["module_code"]
        module = _FIFO32_MODULES.get(code)
        problems = []
        if code in _OTHER_MODULES:
            raise FormatError(path, f"recorded by an {_OTHER_MODULES[code]} (per "
                                    f"{settings_path.name}), whose records this version does "
                                    "not read (it reads SPC-130/134/140/150/160/830 files)")
        if module is None:
            problems.append(f"{settings_path.name} names module code {code!r}, unknown to "
                            "spad; read as SPC-130/830-family FIFO records")
        params = settings["parameters"]
        tac_range = _number(path, params, "SP_TAC_R")
        if tac_range > 1e-3:        # some files state it in ns (as phconvert allows)
            tac_range *= 1e-9
        gain = _number(path, params, "SP_TAC_G")
        unit = tac_range / gain / 4096
        if not 1e-14 < unit < 1e-8:
            raise FormatError(path, f"TCSPC bin {unit:g} s from SP_TAC_R = {tac_range:g} s and "
                                    f"SP_TAC_G = {gain:g} is implausible")
        clock = clock_01ns * 1e-10
        rectype = record_type("BH-SPC")
        timing = Timing("T3", clock, unit, None, 4096)
        n_records, counted = count_records(path, size, 4, (size - 4) // 4)
        problems.append(
            f"SPC macrotimes count a {clock * 1e9:g} ns clock (the card's or the laser sync; "
            "the file does not say which): photon arrival times are known to one tick, "
            "correlations (g2) at shorter lags are not resolved; the laser period is unknown")
        ident = settings["identification"]
        date = " ".join(x for x in (ident.get("Date"), ident.get("Time")) if x)
        collection = params.get("SP_COL_T")
        tags: dict[str, Any] = {
            "MacroTimeClock_01ns": clock_01ns, "RoutingBits": routing_bits,
            "Module": module, "ModuleCode": code, "SettingsFile": str(settings_path),
            "Identification": ident, "Parameters": params}
        meta = Meta(
            path=str(path), format="SPC", record_type=rectype.name, record_type_code=None,
            mode="T3", timing=timing, global_resolution=clock, resolution=unit,
            sync_rate=None,
            acquisition_time=float(collection) if isinstance(collection, int | float) else None,
            n_channels=1 << routing_bits, n_records=n_records,
            creation_time=date or None,      # as written: bh's date order is not documented
            software=ident.get("Software") or None, software_version=None,
            comment=ident.get("Title") or None, tags=tags)
        self._setup(path, meta, rectype, 4, problems + counted)

