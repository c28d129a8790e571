"""Legacy PicoQuant time-tag files: ``.pt3``/``.pt2`` (PicoHarp 300, format 2.0), ``.ht3``/
``.ht2`` (HydraHarp, formats 1.0 and 2.0) and ``.t3r`` (TimeHarp 200, formats 2.0-6.0).

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

HydraHarp format 1.0 files hold ``HydraHarpT3``/``HydraHarpT2`` records (every overflow record
is one wrap), format 2.0 files ``HydraHarp2T3``/``HydraHarp2T2`` records (an overflow record
counts its wraps). PicoHarp files hold ``PicoHarpT3``/``PicoHarpT2`` records. In T2 the tag
unit of a PicoHarp is its base resolution of 4 ps, not the header's ``Resolution`` (the
histogram bin), as PicoQuant's ``read_pt2.m`` reads it; that of a HydraHarp is the header's
``Resolution``: 1 ps, but 0.5 ps in format 1.0 files, whose counter runs at twice the rate
(libpicoquant's ``hh_v10_tttr.c``). The sync input is detector 0.

TimeHarp 200 (``libpicoquant``'s ``th_v20.h``-``th_v60.h``, PicoQuant's ``read_t3r.m``):

- text block (304 bytes; 328 from format 6.0): Ident[16], FormatVersion[6], then
  HardwareVersion[6] (6.0: CreatorName[18], CreatorVersion[12]), FileTime[18], CRLF[2],
  Comment[256];
- 19 int32 settings (NumberOfChannels ... MeasurementMode = 2 for TTTR ...), 8 display curves,
  3 parameter triples, 4 repeat settings, ScriptName[20];
- per board (6.0: HardwareIdent[16], HardwareVersion[8]), BoardSerial, CFDZeroCross,
  CFDDiscriminatorMin, SYNCLevel, CurveOffset, Resolution (float32, ns);
- TTTR block: TTTRGlobClock (ns), 6 reserved (6.0: ExtDevices and 5 reserved), SyncRate,
  AverageCFDRate, StopAfter, StopReason, NumberOfRecords, and from format 5.0
  SpecHeaderLength, SpecHeader[SpecHeaderLength] (int32).

Careful with ``.t3r`` timing: the TimeHarp 200's time tag counts its own 100 ns clock
(``TTTRGlobClock``), not laser pulses. spad reads it as T3 data whose timestamp unit is that
clock; the TCSPC bin still times the photon against the sync. Arrival times are therefore
known to one clock tick only: correlations (g2) at lags below ~100 ns cannot be resolved and
the reader says so in ``meta.warnings``. ``.thd`` files (the TimeHarp's histogram mode) hold
histograms, not time tags, and are refused as such (see :mod:`spad.formats`).
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
TIMEHARP_IDENT = "TimeHarp 200"
TEXT_BLOCK = 328
"""Bytes of the common text block at the start of PicoHarp/HydraHarp headers."""
HEAD_BYTES = 512
"""Bytes :func:`identify` needs to see the measurement mode of every legacy header."""

# Record type codes of the records that follow each header (see spad.formats.records).
_HT3_RECTYPE = {"1.0": 0x00010304, "2.0": 0x01010304}
_HT2_RECTYPE = {"1.0": 0x00010204, "2.0": 0x01010204}
_PT3_RECTYPE = 0x00010303
_PT2_RECTYPE = 0x00010203
# T2 tag unit (base resolution) of the PicoHarp 300 in seconds.
_PT2_UNIT = 4e-12
_TIMEHARP_VERSIONS = ("2.0", "3.0", "5.0", "6.0")

# Byte offset of MeasurementMode (int32) in each header.
_MODE_OFFSET = {PICOHARP_IDENT: TEXT_BLOCK + 20, HYDRAHARP_IDENT: TEXT_BLOCK + 12}


def _int_at(head: bytes, offset: int) -> int | None:
    if len(head) < offset + 4:
        return None
    return int(struct.unpack_from("<i", head, offset)[0])


def timeharp_mode(head: bytes) -> int | None:
    """MeasurementMode of a TimeHarp 200 header (0 histogram, 1 continuous, 2 TTTR), or None."""
    if clean_text(head[:16], "ascii") != TIMEHARP_IDENT:
        return None
    version = clean_text(head[16:22], "ascii")
    return _int_at(head, (328 if version == "6.0" else 304) + 24)


def identify(head: bytes) -> str | None:
    """The kind of legacy file ``head`` (its first :data:`HEAD_BYTES` bytes) starts, or None.

    ``"PT2"``/``"HT2"`` for PicoHarp/HydraHarp headers in T2 mode, ``"PT3"``/``"HT3"`` for any
    other mode (the reader then checks the mode and says what is wrong), ``"T3R"`` for a
    TimeHarp 200 header in TTTR mode (other TimeHarp files are histograms).
    """
    ident = clean_text(head[:16], "ascii")
    if ident in (PICOHARP_IDENT, HYDRAHARP_IDENT):
        base = "PT" if ident == PICOHARP_IDENT else "HT"
        return base + ("2" if _int_at(head, _MODE_OFFSET[ident]) == 2 else "3")
    if ident == TIMEHARP_IDENT and timeharp_mode(head) == 2:
        return "T3R"
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
    """``kind`` (``"PT3"``, ``"HT2"``, ...) was identified from the header; check its mode."""
    if mode in (2, 3):
        # identify() named the kind from this very field: they agree
        return
    if mode == 0:
        raise FormatError(path, f"a legacy {kind[:2]} histogram (interactive mode) file, not "
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


def _parse_t3r(path: Path, data: bytes, version: str) -> tuple[dict[str, Any], int]:
    f = _Fields(path, data)
    if version == "6.0":
        f.take("16s6s18s12s18s2s256s", "Ident", "FormatVersion", "CreatorName", "CreatorVersion",
               "FileTime", "CRLF", "Comment")
    else:
        f.take("16s6s6s18s2s256s", "Ident", "FormatVersion", "HardwareVersion", "FileTime",
               "CRLF", "Comment")
    del f.values["CRLF"]
    f.take("19i", "NumberOfChannels", "NumberOfCurves", "BitsPerChannel", "RoutingChannels",
           "NumberOfBoards", "ActiveCurve", "MeasurementMode", "SubMode", "RangeNo", "Offset",
           "AcquisitionTime", "StopAt", "StopOnOvfl", "Restart", "DispLinLog", "DispTimeFrom",
           "DispTimeTo", "DispCountFrom", "DispCountTo")
    f.take("16i", "DispCurves")
    f.take("9f", "Params")
    f.take("4i", "RepeatMode", "RepeatsPerCurve", "RepeatTime", "RepeatWaitTime")
    f.take("20s", "ScriptName")
    n_boards = f.values["NumberOfBoards"]
    _check_count(path, "NumberOfBoards", n_boards, 1, 4)
    boards = []
    for _ in range(n_boards):
        b = _Fields(path, data, f.offset)
        if version == "6.0":
            b.take("16s8s", "HardwareIdent", "HardwareVersion")
        b.take("5if", "BoardSerial", "CFDZeroCross", "CFDDiscriminatorMin", "SYNCLevel",
               "CurveOffset", "Resolution")
        boards.append(b.values)
        f.offset = b.offset
    f.values["Boards"] = boards
    f.take("i", "TTTRGlobClock")
    f.take("6i", "Reserved")
    f.take("5i", "SyncRate", "AverageCFDRate", "StopAfter", "StopReason", "NumRecords")
    if version in ("5.0", "6.0"):
        (spec,) = f.take("i", "SpecHeaderLength")
        _check_count(path, "SpecHeaderLength", spec, 0, (len(data) - f.offset) // 4)
        f.offset += 4 * spec
    f.values["FormatVersion"] = version
    return f.values, f.offset


def _check_rates(path: Path, res_s: float, sync_rate: float) -> float:
    """The sync period; checks the TCSPC bin and the sync rate of a T3 header."""
    if not (res_s > 0 and res_s < 1e-6):
        raise FormatError(path, f"TCSPC resolution {res_s!r} s is zero or implausible")
    if not sync_rate > 0:
        raise FormatError(path, f"sync rate {sync_rate!r} Hz: without it the sync period "
                                "of these T3 records is unknown")
    period = 1.0 / sync_rate
    if res_s > period:
        raise FormatError(path, f"TCSPC bin ({res_s:g} s) longer than the sync period "
                                f"({period:g} s): header contradicts itself")
    return period


class LegacyReader(RecordFileReader):
    """Reader of legacy PicoHarp ``.pt3``/``.pt2`` (format 2.0), HydraHarp ``.ht3``/``.ht2``
    (1.0/2.0) and TimeHarp 200 ``.t3r`` (2.0-6.0) files.

    Parameters
    ----------
    path
        The file; the header is parsed here, records are read by :meth:`chunks`.

    Raises
    ------
    FormatError
        Not a legacy PicoQuant time-tag file, a format version or mode this reader does not
        know, a header cut short, or a header whose fields contradict themselves.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from spad.formats.records import record_type

        path = Path(path)
        size = os.path.getsize(path)
        data = _read_head(path)
        kind = identify(data)
        if kind is None:
            raise FormatError(path, f"not a legacy PicoHarp/HydraHarp/TimeHarp time-tag file "
                                    f"(starts with {data[:16]!r})")
        version = clean_text(data[16:22], "ascii")
        problems: list[str] = []
        n_channels: int
        if kind == "T3R":
            if version not in _TIMEHARP_VERSIONS:
                raise FormatError(path, f"TimeHarp file format version {version!r}; this "
                                        f"version reads {', '.join(_TIMEHARP_VERSIONS)}")
            fields, offset = _parse_t3r(path, data, version)
            rectype = record_type("TimeHarp200T3")
            res_s = round(fields["Boards"][0]["Resolution"] * 1e-9, 15)   # float32 ns
            sync_rate = float(fields["SyncRate"])
            period = _check_rates(path, res_s, sync_rate)
            clock = fields["TTTRGlobClock"] * 1e-9
            if not 0 < clock < 1e-3:
                raise FormatError(path, f"header field TTTRGlobClock = "
                                        f"{fields['TTTRGlobClock']} ns is zero or implausible")
            # reverse start-stop bins (spad.formats.records) are referenced to the end of the
            # converter's range, not to the sync: any of its bins can hold a photon
            timing = Timing("T3", clock, res_s, period, 1 << rectype.nanotime_bits)
            n_channels = max(1, fields["RoutingChannels"])
            mode = "T3"
            problems.append(
                f"TimeHarp 200 time tags count its {fields['TTTRGlobClock']} ns clock, not "
                "laser pulses: photon arrival times are known to one clock tick, and "
                "correlations (g2) at shorter lags are not resolved")
        else:
            family = kind[:2]
            mode = "T" + kind[2]
            if family == "HT":
                codes = _HT3_RECTYPE if mode == "T3" else _HT2_RECTYPE
                if version not in codes:
                    raise FormatError(path, f"HydraHarp file format version {version!r}; this "
                                            "version reads 1.0 and 2.0")
                fields, offset = _parse_ht3(path, data, version)
                rectype = record_type(codes[version])
                res_s = fields["Resolution"] * 1e-12        # ps
                sync_rate = float(fields["SyncRate"])
                n_channels = fields["InputChannelsPresent"]
                # the tag unit is the header's Resolution: 1 ps, but 0.5 ps in format 1.0
                # files (libpicoquant's hh_v10_tttr.c: the v1 counter runs at twice the rate)
                t2_unit = res_s
            else:
                if version != "2.0":
                    raise FormatError(path, f"PicoHarp file format version {version!r}; this "
                                            "version reads 2.0")
                fields, offset = _parse_pt3(path, data, version)
                rectype = record_type(_PT3_RECTYPE if mode == "T3" else _PT2_RECTYPE)
                # float32 nanoseconds: round away the float32 noise (bins are 4 ps * 2^n).
                res_s = round(fields["Boards"][0]["Resolution"] * 1e-9, 16)
                sync_rate = float(fields["CntRate0"])
                n_channels = max(1, fields["RoutingChannels"])
                t2_unit = _PT2_UNIT
            _check_mode(path, kind, fields["MeasurementMode"])
            if fields["BitsPerRecord"] not in (0, 32):
                raise FormatError(path, f"header field BitsPerRecord = "
                                        f"{fields['BitsPerRecord']}; only 32-bit records exist")
            if mode == "T3":
                period = _check_rates(path, res_s, sync_rate)
                timing = Timing("T3", period, res_s, period,
                                tcspc_bins(period, res_s, 1 << rectype.nanotime_bits))
            else:
                if sync_rate < 0:
                    raise FormatError(path, f"sync rate {sync_rate!r} Hz is negative")
                if not 1e-13 <= t2_unit <= 1e-9:
                    raise FormatError(path, f"T2 tag resolution {t2_unit!r} s is zero or "
                                            "implausible")
                # the sync input may be unused (rate 0) or carry a detector in T2
                timing = Timing("T2", t2_unit, None,
                                1.0 / sync_rate if sync_rate > 0 else None, None)
                res_s = t2_unit
        n_records, counted = count_records(path, size, offset, int(fields["NumRecords"]))
        meta = Meta(
            path=str(path), format=kind, record_type=rectype.name,
            record_type_code=rectype.code, mode=mode, timing=timing,
            global_resolution=timing.timestamp_unit, resolution=res_s,
            sync_rate=sync_rate or None,
            acquisition_time=fields["AcquisitionTime"] * 1e-3, n_channels=n_channels,
            n_records=n_records, creation_time=parse_date(fields["FileTime"]),
            software=fields.get("CreatorName") or None,
            software_version=fields.get("CreatorVersion") or None,
            comment=fields["Comment"] or None, tags=fields)
        self._setup(path, meta, rectype, offset, problems + counted)
