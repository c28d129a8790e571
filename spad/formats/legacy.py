"""Legacy PicoQuant T3 files: ``.pt3`` (PicoHarp 300, format 2.0) and ``.ht3`` (HydraHarp,
formats 1.0 and 2.0).

Before PTU, each instrument wrote a fixed binary header of its own in front of the same kind of
32-bit records. Layouts (little-endian, packed, no alignment) follow PicoQuant's legacy demo
readers (``read_pt3.m``) and T. Bischof's ``libpicoquant`` (``hh_v20.h``, ``ph_v20.h``):

- common text block (328 bytes): Ident[16], FormatVersion[6], CreatorName[18],
  CreatorVersion[12], FileTime[18], CRLF[2], Comment[256];
- HydraHarp: measurement settings, hardware and module info, sync settings, then per input
  channel (ModuleIdx, CFDLevel, CFDZeroCross, Offset) and an InputRate each, then the TTTR block
  SyncRate, StopAfter, StopReason, ImgHdrSize, NumRecords (int64), ImgHdr[ImgHdrSize] (uint32);
- PicoHarp: measurement settings, per board the hardware, CFD and router settings with the
  TCSPC resolution (float32, ns), then ExtDevices, 2 reserved, CntRate0 (the sync rate),
  CntRate1, StopAfter, StopReason, NumRecords (uint32), ImgHdrSize, ImgHdr[ImgHdrSize].

HydraHarp format 1.0 files hold ``HydraHarpT3`` records (every overflow record is one wrap),
format 2.0 files ``HydraHarp2T3`` records (an overflow record counts its wraps). Legacy files
in T2 mode (``.pt2``/``.ht2``) and TimeHarp ``.t3r`` files are refused with a clear error:
this version has no real files of those kinds to check a reader against.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

from spad.errors import FormatError
from spad.formats.base import RecordFileReader, clean_text, count_records, parse_date, tcspc_bins
from spad.photons import Meta, Timing

PICOHARP_IDENT = "PicoHarp 300"
HYDRAHARP_IDENT = "HydraHarp"
TEXT_BLOCK = 328
"""Bytes of the common text block at the start of every legacy header."""

# Record type codes of the records that follow each header (see spad.formats.records).
_HT3_RECTYPE = {"1.0": 0x00010304, "2.0": 0x01010304}
_PT3_RECTYPE = 0x00010303


def identify(head: bytes) -> str | None:
    """``"PT3"`` or ``"HT3"`` if ``head`` (the first bytes of a file) is a legacy header."""
    ident = clean_text(head[:16], "ascii")
    if ident == PICOHARP_IDENT:
        return "PT3"
    if ident == HYDRAHARP_IDENT:
        return "HT3"
    return None


class _Fields:
    """Sequential unpacking of a packed little-endian header, with bounds checks."""

    def __init__(self, path: Path, data: bytes, offset: int = 0) -> None:
        self.path = path
        self.data = data
        self.offset = offset
        self.values: dict[str, Any] = {}

    def take(self, fmt: str, *names: str) -> tuple[Any, ...]:
        st = struct.Struct("<" + fmt)
        if self.offset + st.size > len(self.data):
            raise FormatError(self.path, f"file ends inside the header (at byte {len(self.data)}"
                                         f", reading {', '.join(names) or fmt})")
        out = st.unpack_from(self.data, self.offset)
        self.offset += st.size
        if len(names) == len(out):
            for name, value in zip(names, out, strict=True):
                self.values[name] = clean_text(value) if isinstance(value, bytes) else value
        elif names:  # one name for an array of values
            self.values[names[0]] = list(out)
        return out


def _text_block(path: Path, data: bytes) -> _Fields:
    f = _Fields(path, data)
    f.take("16s6s18s12s18s2s256s", "Ident", "FormatVersion", "CreatorName", "CreatorVersion",
           "FileTime", "CRLF", "Comment")
    del f.values["CRLF"]
    return f


def _check_count(path: Path, name: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise FormatError(path, f"header field {name} = {value} is outside {lo}-{hi} "
                                "(corrupt header)")


def _check_mode(path: Path, kind: str, mode: int) -> None:
    if mode == 3:
        return
    if mode == 2:
        raise FormatError(path, f"a legacy {kind} file in T2 mode; this version reads legacy "
                                "T3 files only (convert it to PTU with PicoQuant's software)")
    if mode == 0:
        raise FormatError(path, f"a legacy {kind} histogram (interactive mode) file, not "
                                "time-tagged data")
    raise FormatError(path, f"header field MeasurementMode = {mode} is not a TTTR mode")


def _read_head(path: Path, limit: int = 1 << 20) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(limit)


def _parse_ht3(path: Path, data: bytes, version: str) -> tuple[dict[str, Any], int]:
    f = _text_block(path, data)
    f.take("6i", "NumberOfCurves", "BitsPerRecord", "ActiveCurve", "MeasurementMode",
           "SubMode", "Binning")
    f.take("d", "Resolution")
    f.take("6i", "Offset", "AcquisitionTime", "StopAt", "StopOnOvfl", "Restart",
           "DispLinLog")
    f.take("4I", "DispTimeFrom", "DispTimeTo", "DispCountFrom", "DispCountTo")
    f.take("16i", "DispCurves")
    f.take("9f", "Params")
    f.take("4i", "RepeatMode", "RepeatsPerCurve", "RepeatTime", "RepeatWaitTime")
    f.take("20s16s8s", "ScriptName", "HardwareIdent", "HardwarePartNo")
    f.take("2i", "HardwareSerial", "NumberOfModules")
    f.take("20i", "ModuleInfo")
    f.take("dq", "BaseResolution", "InputsEnabled")
    (n_inputs,) = f.take("i", "InputChannelsPresent")
    _check_count(path, "InputChannelsPresent", n_inputs, 1, 64)
    f.take("7i", "RefClockSource", "ExtDevices", "MarkerSettings", "SyncDivider",
           "SyncCFDLevel", "SyncCFDZeroCross", "SyncOffset")
    f.take(f"{4 * n_inputs}i", "InputChannelSettings")
    f.take(f"{n_inputs}i", "InputRate")
    f.take("4iq", "SyncRate", "StopAfter", "StopReason", "ImgHdrSize", "NumRecords")
    img = f.values["ImgHdrSize"]
    _check_count(path, "ImgHdrSize", img, 0, (len(data) - f.offset) // 4)
    f.offset += 4 * img
    f.values["FormatVersion"] = version
    return f.values, f.offset


def _parse_pt3(path: Path, data: bytes, version: str) -> tuple[dict[str, Any], int]:
    f = _text_block(path, data)
    f.take("18i", "NumberOfCurves", "BitsPerRecord", "RoutingChannels", "NumberOfBoards",
           "ActiveCurve", "MeasurementMode", "SubMode", "RangeNo", "Offset", "AcquisitionTime",
           "StopAt", "StopOnOvfl", "Restart", "DispLinLog", "DispTimeFrom", "DispTimeTo",
           "DispCountFrom", "DispCountTo")
    f.take("16i", "DispCurves")
    f.take("9f", "Params")
    f.take("4i", "RepeatMode", "RepeatsPerCurve", "RepeatTime", "RepeatWaitTime")
    f.take("20s", "ScriptName")
    n_boards = f.values["NumberOfBoards"]
    _check_count(path, "NumberOfBoards", n_boards, 1, 4)
    boards = []
    for _ in range(n_boards):
        b = _Fields(path, data, f.offset)
        b.take("16s8s", "HardwareIdent", "HardwareVersion")
        b.take("6i", "HardwareSerial", "SyncDivider", "CFDZeroCross0", "CFDLevel0",
               "CFDZeroCross1", "CFDLevel1")
        b.take("f", "Resolution")
        b.take("2i", "RouterModelCode", "RouterEnabled")
        b.take("24i", "RouterChannels")
        boards.append(b.values)
        f.offset = b.offset
    f.values["Boards"] = boards
    f.take("9i", "ExtDevices", "Reserved1", "Reserved2", "CntRate0", "CntRate1", "StopAfter",
           "StopReason", "NumRecords", "ImgHdrSize")
    img = f.values["ImgHdrSize"]
    _check_count(path, "ImgHdrSize", img, 0, (len(data) - f.offset) // 4)
    f.offset += 4 * img
    f.values["FormatVersion"] = version
    return f.values, f.offset


class LegacyReader(RecordFileReader):
    """Reader of legacy ``.pt3`` (PicoHarp, format 2.0) and ``.ht3`` (HydraHarp, 1.0/2.0) files.

    Parameters
    ----------
    path
        The file; the header is parsed here, records are read by :meth:`chunks`.

    Raises
    ------
    FormatError
        Not a legacy PicoHarp/HydraHarp file, a format version or mode this reader does not
        know, a header cut short, or a header whose fields contradict themselves.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from spad.formats.records import record_type

        path = Path(path)
        size = os.path.getsize(path)
        data = _read_head(path)
        kind = identify(data)
        if kind is None:
            raise FormatError(path, f"not a legacy PicoHarp/HydraHarp file (starts with "
                                    f"{data[:16]!r})")
        version = clean_text(data[16:22], "ascii")
        if kind == "HT3":
            if version not in _HT3_RECTYPE:
                raise FormatError(path, f"HydraHarp file format version {version!r}; this "
                                        "version reads 1.0 and 2.0")
            fields, offset = _parse_ht3(path, data, version)
            rectype = record_type(_HT3_RECTYPE[version])
            res_s = fields["Resolution"] * 1e-12        # ps
            sync_rate = float(fields["SyncRate"])
            n_channels = fields["InputChannelsPresent"]
        else:
            if version != "2.0":
                raise FormatError(path, f"PicoHarp file format version {version!r}; this "
                                        "version reads 2.0")
            fields, offset = _parse_pt3(path, data, version)
            rectype = record_type(_PT3_RECTYPE)
            # float32 nanoseconds: round away the float32 noise (PicoHarp bins are 4 ps * 2^n).
            res_s = round(fields["Boards"][0]["Resolution"] * 1e-9, 16)
            sync_rate = float(fields["CntRate0"])
            n_channels = max(1, fields["RoutingChannels"])
        _check_mode(path, kind, fields["MeasurementMode"])
        if fields["BitsPerRecord"] not in (0, 32):
            raise FormatError(path, f"header field BitsPerRecord = {fields['BitsPerRecord']}; "
                                    "only 32-bit records exist")
        if not (res_s > 0 and res_s < 1e-6):
            raise FormatError(path, f"TCSPC resolution {res_s!r} s is zero or implausible")
        if not sync_rate > 0:
            raise FormatError(path, f"sync rate {sync_rate!r} Hz: without it the sync period "
                                    "of these T3 records is unknown")
        period = 1.0 / sync_rate
        if res_s > period:
            raise FormatError(path, f"TCSPC bin ({res_s:g} s) longer than the sync period "
                                    f"({period:g} s): header contradicts itself")
        timing = Timing("T3", period, res_s, period,
                        tcspc_bins(period, res_s, 1 << rectype.nanotime_bits))
        n_records, problems = count_records(path, size, offset, int(fields["NumRecords"]))
        meta = Meta(
            path=str(path), format=kind, record_type=rectype.name,
            record_type_code=int(rectype.code), mode="T3", timing=timing,
            global_resolution=period, resolution=res_s, sync_rate=sync_rate,
            acquisition_time=fields["AcquisitionTime"] * 1e-3, n_channels=n_channels,
            n_records=n_records, creation_time=parse_date(fields["FileTime"]),
            software=fields["CreatorName"] or None,
            software_version=fields["CreatorVersion"] or None,
            comment=fields["Comment"] or None, tags=fields)
        self._setup(path, meta, rectype, offset, problems)
