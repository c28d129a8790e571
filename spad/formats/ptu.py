"""PicoQuant unified time-tag files (``.ptu``): tag header, reader and writer.

A PTU file is the magic ``b"PQTTTR\\0\\0"``, an 8-byte version string, a list of 48-byte tags
(32-byte identifier, int32 index, uint32 type, 8-byte value; strings, arrays and blobs follow
their tag, the value holding their length) ending with ``Header_End``, and then the TTTR records
as little-endian uint32 words. Records are decoded by :mod:`spad.formats.records`; this module
reads and writes the container around them.

The record block is streamed by :class:`spad.formats.base.RecordFileReader`, shared with the
legacy containers.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import struct
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np

from spad.errors import FormatError
from spad.formats.base import (
    RecordFileReader,
    clean_text,
    count_records,
    dtime_limit,
    parse_date,
    tcspc_bins,
)
from spad.photons import Measurement, Meta, PhotonChunk, Timing

PTU_MAGIC = b"PQTTTR\0\0"
"""First 8 bytes of every PTU file."""

PTU_VERSION = "1.0.00"
"""Version string written into the files :class:`PtuWriter` creates."""

# Tag types of the PicoQuant unified tag dictionary.
TY_EMPTY8 = 0xFFFF0008
TY_BOOL8 = 0x00000008
TY_INT8 = 0x10000008
TY_BITSET64 = 0x11000008
TY_COLOR8 = 0x12000008
TY_FLOAT8 = 0x20000008
TY_TDATETIME = 0x21000008
TY_FLOAT8ARRAY = 0x2001FFFF
TY_ANSISTRING = 0x4001FFFF
TY_WIDESTRING = 0x4002FFFF
TY_BINARYBLOB = 0xFFFFFFFF

_TAG = struct.Struct("<32siI8s")
_TDATETIME_EPOCH = dt.datetime(1899, 12, 30)
_SECONDS_PER_DAY = 86400.0

# spad's own tags: they make a write -> read round trip give back the exact Timing (PicoQuant's
# tags only carry the sync rate as an integer in Hz and no TCSPC bin count).
TAG_SYNC_PERIOD = "Spad_SyncPeriod"
TAG_TCSPC_NUM_BINS = "Spad_TCSPCNumBins"


# --------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------

def tdatetime_to_iso(days: float) -> str | None:
    """Convert a Delphi TDateTime (days since 1899-12-30) to ISO 8601, ``None`` if impossible."""
    if not math.isfinite(days) or not -1e6 < days < 1e6:
        return None
    try:
        stamp = _TDATETIME_EPOCH + dt.timedelta(seconds=round(days * _SECONDS_PER_DAY, 3))
    except OverflowError:
        return None
    return stamp.isoformat(timespec="milliseconds" if stamp.microsecond else "seconds")


def iso_to_tdatetime(stamp: dt.datetime) -> float:
    """Days since 1899-12-30 (Delphi TDateTime) of a naive local ``datetime``."""
    return (stamp - _TDATETIME_EPOCH).total_seconds() / _SECONDS_PER_DAY


# --------------------------------------------------------------------------------------------
# Tag header
# --------------------------------------------------------------------------------------------

@dataclass
class PtuHeader:
    """The parsed tag header of a PTU file.

    Attributes
    ----------
    version
        The file's format version string (NUL/space padding removed).
    tags
        Tag values by identifier. Tags written with index -1 map to their value; indexed tags
        (index >= 0) map to a ``{index: value}`` dict. TDateTime values are ISO 8601 strings
        (the raw day count if it is not a valid date), strings are ``str``, blobs ``bytes``.
    types
        Tag type code by identifier.
    data_offset
        Byte offset of the first record (just after ``Header_End``).
    """

    version: str
    tags: dict[str, Any]
    types: dict[str, int]
    data_offset: int


def _decode_value(path: object, ident: str, typ: int, raw: bytes, fh: BinaryIO, pos: int,
                  size: int) -> tuple[Any, int]:
    """The value of one tag and the bytes that followed the 48-byte tag for it."""
    if typ == TY_EMPTY8:
        return None, 0
    if typ in (TY_BOOL8, TY_INT8, TY_BITSET64, TY_COLOR8):
        value = struct.unpack("<q", raw)[0]
        return (value != 0 if typ == TY_BOOL8 else value), 0
    if typ in (TY_FLOAT8, TY_TDATETIME):
        value = struct.unpack("<d", raw)[0]
        if typ == TY_TDATETIME:
            iso = tdatetime_to_iso(value)
            return (iso if iso is not None else value), 0
        return value, 0
    if typ in (TY_FLOAT8ARRAY, TY_ANSISTRING, TY_WIDESTRING, TY_BINARYBLOB):
        n = struct.unpack("<q", raw)[0]
        if n < 0 or pos + n > size:
            raise FormatError(path, f"tag {ident!r} at byte {pos - _TAG.size} claims {n} bytes of "
                                    f"data, past the end of the file ({size} bytes)")
        data = fh.read(n)
        if typ == TY_ANSISTRING:
            return data.split(b"\0", 1)[0].decode("windows-1252", errors="replace"), n
        if typ == TY_WIDESTRING:
            return data.decode("utf-16-le", errors="replace").split("\0", 1)[0], n
        if typ == TY_FLOAT8ARRAY:
            if n % 8:
                raise FormatError(path, f"tag {ident!r}: float array of {n} bytes, "
                                        "not a multiple of 8")
            return tuple(np.frombuffer(data, "<f8").tolist()), n
        return data, n
    raise FormatError(path, f"tag {ident!r} at byte {pos - _TAG.size} has unknown type "
                            f"0x{typ:08X} (corrupt tag list)")


def read_ptu_header(path: str | os.PathLike[str]) -> PtuHeader:
    """Parse the tag header of a PTU file.

    Raises
    ------
    FormatError
        Not a PTU file, a tag of unknown type, a tag whose data runs past the end of the file,
        or no ``Header_End`` before the end of the file.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        magic = fh.read(8)
        if magic != PTU_MAGIC:
            raise FormatError(path, f"not a PTU file (starts with {magic!r}, not {PTU_MAGIC!r})")
        raw_version = fh.read(8)
        if len(raw_version) < 8:
            raise FormatError(path, "file ends inside the PTU version string")
        version = clean_text(raw_version, "ascii")
        tags: dict[str, Any] = {}
        types: dict[str, int] = {}
        pos = 16
        while True:
            block = fh.read(_TAG.size)
            if len(block) < _TAG.size:
                raise FormatError(path, f"tag list runs past the end of the file at byte {pos} "
                                        "without a Header_End tag (truncated or corrupt header)")
            raw_ident, index, typ, raw = _TAG.unpack(block)
            ident = clean_text(raw_ident, "ascii")
            pos += _TAG.size
            if ident == "Header_End":
                break
            value, extra = _decode_value(path, ident, typ, raw, fh, pos, size)
            pos += extra
            types[ident] = typ
            if index < 0:
                tags[ident] = value
            else:
                slot = tags.setdefault(ident, {})
                if not isinstance(slot, dict):  # same ident seen before without an index
                    slot = tags[ident] = {-1: slot}
                slot[index] = value
    return PtuHeader(version, tags, types, pos)


def encode_tag(ident: str, value: Any, typ: int, index: int = -1) -> bytes:
    """One tag (and its trailing data) in the PTU binary layout.

    Parameters
    ----------
    ident
        Tag identifier, at most 31 ASCII characters.
    value
        The value; for TDateTime a ``datetime`` or a day count; strings are padded with NULs to a
        multiple of 8 bytes.
    typ
        One of the ``TY_*`` type codes.
    index
        -1 for a plain tag, >= 0 for an element of an indexed tag.
    """
    name = ident.encode("ascii")
    if len(name) > 31:
        raise ValueError(f"tag identifier {ident!r} is longer than 31 characters")
    payload = b""
    if typ == TY_EMPTY8:
        raw = bytes(8)
    elif typ in (TY_BOOL8, TY_INT8, TY_BITSET64, TY_COLOR8):
        raw = struct.pack("<q", int(bool(value)) if typ == TY_BOOL8 else int(value))
    elif typ == TY_FLOAT8:
        raw = struct.pack("<d", float(value))
    elif typ == TY_TDATETIME:
        days = iso_to_tdatetime(value) if isinstance(value, dt.datetime) else float(value)
        raw = struct.pack("<d", days)
    elif typ in (TY_ANSISTRING, TY_WIDESTRING, TY_BINARYBLOB, TY_FLOAT8ARRAY):
        if typ == TY_ANSISTRING:
            payload = str(value).encode("windows-1252") + b"\0"
        elif typ == TY_WIDESTRING:
            payload = (str(value) + "\0").encode("utf-16-le")
        elif typ == TY_FLOAT8ARRAY:
            payload = np.asarray(value, "<f8").tobytes()
        else:
            payload = bytes(value)
        payload += bytes(-len(payload) % 8)
        raw = struct.pack("<q", len(payload))
    else:
        raise ValueError(f"unknown tag type 0x{typ:08X}")
    return _TAG.pack(name, index, typ, raw) + payload


# --------------------------------------------------------------------------------------------
# PTU reader
# --------------------------------------------------------------------------------------------

def _tag_number(path: object, tags: dict[str, Any], name: str, kind: type,
                required: bool = False) -> Any:
    value = tags.get(name)
    if value is None:
        if required:
            raise FormatError(path, f"the header has no {name} tag")
        return None
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and (kind is float or isinstance(value, int)))
    if not ok:
        raise FormatError(path, f"tag {name} holds {value!r}, not a number (corrupt header)")
    return kind(value)


def _positive_seconds(path: object, name: str, value: float | None) -> float | None:
    if value is None or value == 0:
        return None
    if not (math.isfinite(value) and 0 < value < 1.0):
        raise FormatError(path, f"{name} = {value!r} s is not a plausible time resolution")
    return value


class PtuReader(RecordFileReader):
    """Reader of PicoQuant unified TTTR (``.ptu``) files.

    Parameters
    ----------
    path
        The file. Its header is parsed here; records are read by :meth:`chunks`.

    Notes
    -----
    ``meta.tags`` holds every tag of the header (see :class:`PtuHeader`) plus ``PTU_Version``,
    the format version string. The T3 sync period is MeasDesc_GlobalResolution (else
    1/TTResult_SyncRate); ``tcspc_num_bins`` is ceil(sync period / MeasDesc_Resolution), capped
    by the width of the record type's dtime field.

    Raises
    ------
    FormatError
        The header is corrupt or contradicts itself (see :func:`read_ptu_header`, unknown record
        type, zero resolution, Measurement_Mode disagreeing with the record type, ...).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from spad.formats.records import record_type

        path = Path(path)
        header = read_ptu_header(path)
        tags = header.tags
        code = _tag_number(path, tags, "TTResultFormat_TTTRRecType", int, required=True)
        try:
            rectype = record_type(code)
        except ValueError:
            raise FormatError(path, f"unknown TTTR record type 0x{code & 0xFFFFFFFF:08X}") \
                from None
        bits = _tag_number(path, tags, "TTResultFormat_BitsPerRecord", int)
        if bits not in (None, 0, 32):
            raise FormatError(path, f"TTResultFormat_BitsPerRecord = {bits}; only 32-bit "
                                    "records exist")
        mode_tag = _tag_number(path, tags, "Measurement_Mode", int)
        mode = rectype.mode
        if mode_tag is not None:
            if mode_tag not in (2, 3):
                raise FormatError(path, f"Measurement_Mode = {mode_tag} is not a TTTR mode "
                                        "(2 = T2, 3 = T3)")
            if f"T{mode_tag}" != mode:
                raise FormatError(path, f"Measurement_Mode = {mode_tag} (T{mode_tag}) contradicts "
                                        f"record type {rectype.name} ({mode})")
        glob = _positive_seconds(path, "MeasDesc_GlobalResolution",
                                 _tag_number(path, tags, "MeasDesc_GlobalResolution", float))
        res = _tag_number(path, tags, "MeasDesc_Resolution", float)
        sync_rate = _tag_number(path, tags, "TTResult_SyncRate", float)
        if sync_rate is not None and not (math.isfinite(sync_rate) and sync_rate >= 0):
            raise FormatError(path, f"TTResult_SyncRate = {sync_rate!r} is not a rate")
        sync_period_tag = _positive_seconds(path, TAG_SYNC_PERIOD,
                                            _tag_number(path, tags, TAG_SYNC_PERIOD, float))
        try:
            if mode == "T3":
                period = glob or sync_period_tag or (1.0 / sync_rate if sync_rate else None)
                if period is None:
                    raise FormatError(path, "no sync period: MeasDesc_GlobalResolution and "
                                            "TTResult_SyncRate are missing or zero")
                if res is None or res == 0:
                    raise FormatError(path, "MeasDesc_Resolution (TCSPC bin width) is missing "
                                            "or zero")
                res = _positive_seconds(path, "MeasDesc_Resolution", res)
                if res > period:
                    raise FormatError(path, f"TCSPC bin ({res:g} s) longer than the sync period "
                                            f"({period:g} s): header contradicts itself")
                nbins = _tag_number(path, tags, TAG_TCSPC_NUM_BINS, int)
                if nbins is None or not 0 < nbins <= dtime_limit(rectype):
                    nbins = tcspc_bins(period, res, dtime_limit(rectype))
                timing = Timing("T3", period, res, period, nbins)
            else:
                if glob is None:
                    raise FormatError(path, "MeasDesc_GlobalResolution (T2 tag resolution) is "
                                            "missing or zero")
                period = sync_period_tag or (1.0 / sync_rate if sync_rate else None)
                timing = Timing("T2", glob, None, period, None)
        except FormatError:
            raise
        except ValueError as exc:  # Timing refused the combination
            raise FormatError(path, f"inconsistent timing in the header: {exc}") from None

        stated = _tag_number(path, tags, "TTResult_NumberOfRecords", int)
        n_records, problems = count_records(path, os.path.getsize(path), header.data_offset,
                                            stated)
        if stated == 0 and n_records:
            # An aborted or still-running acquisition: say so plainly.
            problems = [p for p in problems if "states" not in p] + [
                f"TTResult_NumberOfRecords is 0; the file holds {n_records} records"]
        acq_ms = _tag_number(path, tags, "MeasDesc_AcquisitionTime", float)
        created = tags.get("File_CreatingTime")
        if isinstance(created, str):
            created = _iso_or_parsed(created)
        elif created is not None:
            created = str(created)
        comment = tags.get("File_Comment")
        n_channels = _tag_number(path, tags, "HW_InpChannels", int)
        meta = Meta(
            path=str(path), format="PTU", record_type=rectype.name,
            record_type_code=int(rectype.code), mode=mode, timing=timing,
            global_resolution=glob, resolution=res if mode == "T3" else (res or None),
            sync_rate=sync_rate if sync_rate else None,
            acquisition_time=None if acq_ms is None else acq_ms * 1e-3,
            n_channels=n_channels, n_records=n_records, creation_time=created,
            software=_text_or_none(tags.get("CreatorSW_Name")),
            software_version=_text_or_none(tags.get("CreatorSW_Version")),
            comment=_text_or_none(comment), tags=dict(tags, PTU_Version=header.version))
        self._setup(path, meta, rectype, header.data_offset, problems)


def _iso_or_parsed(text: str) -> str | None:
    try:
        dt.datetime.fromisoformat(text.strip())
        return text.strip()
    except ValueError:
        return parse_date(text)


def _text_or_none(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


# --------------------------------------------------------------------------------------------
# PTU writer
# --------------------------------------------------------------------------------------------

class PtuWriter:
    """Stream photons into a new PTU file.

    The header is written when the writer is created, records are appended by :meth:`write`,
    and :meth:`close` patches ``TTResult_NumberOfRecords`` (and the acquisition time if it was
    not given), so a long acquisition can stream straight into the file.

    Parameters
    ----------
    path
        The file to create (overwritten if it exists).
    rectype
        Record type name or code, e.g. ``"HydraHarp2T3"`` or ``"HydraHarp2T2"``; its mode must
        match ``timing.mode``.
    timing
        Units of the photons that will be written; every chunk must carry this timing.
        T3: ``timestamp_unit`` is the sync period.
    comment
        Free text (File_Comment).
    acquisition_time
        Measurement duration in seconds; by default the time of the last event written.
    n_channels
        HW_InpChannels, the number of detector inputs; by default the highest detector written.
    creation_time
        File_CreatingTime; by default now (local time, as PicoQuant software writes it).
    tags
        Extra tags ``{ident: (type code, value)}`` written before Header_End.

    Examples
    --------
    >>> with PtuWriter("out.ptu", "HydraHarp2T3", timing) as w:   # doctest: +SKIP
    ...     for chunk in source:
    ...         w.write(chunk)
    """

    def __init__(self, path: str | os.PathLike[str], rectype: int | str, timing: Timing, *,
                 comment: str = "", acquisition_time: float | None = None,
                 n_channels: int | None = None, creation_time: dt.datetime | None = None,
                 tags: dict[str, tuple[int, Any]] | None = None) -> None:
        from spad.formats.records import Encoder, record_type
        from spad.version import VERSION

        self.rectype = record_type(rectype)
        if self.rectype.mode != timing.mode:
            raise ValueError(f"record type {self.rectype.name} is {self.rectype.mode}, "
                             f"the photons are {timing.mode}")
        if timing.is_t3 and (timing.sync_period is None or not math.isclose(
                timing.sync_period, timing.timestamp_unit, rel_tol=1e-6)):
            # PTU T3 records count laser pulses; a TimeHarp 200 or B&H SPC macrotime counts a
            # clock of its own, and writing it as sync counts would state a false laser rate
            raise FormatError(
                path, "cannot be written as PTU: the macrotime of these T3 photons counts a "
                f"{timing.timestamp_unit:g} s clock"
                f" that is not the laser sync (period {timing.sync_period or 'unknown'} s); PTU "
                "T3 records count sync pulses: write Photon-HDF5 instead")
        self.path = Path(path)
        self.timing = timing
        self.n_records = 0
        self._encoder = Encoder(self.rectype, timing)
        self._acquisition_time = acquisition_time
        self._n_channels = n_channels
        self._last_time = 0
        self._max_detector = 0
        sync_period = timing.timestamp_unit if timing.is_t3 else timing.sync_period
        entries: list[tuple[str, int, Any]] = [
            ("File_GUID", TY_ANSISTRING, "{" + str(uuid.uuid4()).upper() + "}"),
            ("File_CreatingTime", TY_TDATETIME, creation_time or dt.datetime.now()),
            ("File_Comment", TY_ANSISTRING, comment),
            ("CreatorSW_Name", TY_ANSISTRING, "spad"),
            ("CreatorSW_Version", TY_ANSISTRING, VERSION),
            ("Measurement_Mode", TY_INT8, 3 if timing.is_t3 else 2),
            ("Measurement_SubMode", TY_INT8, 0),
            ("MeasDesc_GlobalResolution", TY_FLOAT8, timing.timestamp_unit),
            ("MeasDesc_Resolution", TY_FLOAT8,
             timing.nanotime_unit if timing.is_t3 else timing.timestamp_unit),
            ("TTResult_SyncRate", TY_INT8, round(1.0 / sync_period) if sync_period else 0),
            ("HW_InpChannels", TY_INT8, 0),
            ("MeasDesc_AcquisitionTime", TY_INT8, 0),
            ("TTResultFormat_TTTRRecType", TY_INT8, int(self.rectype.code)),
            ("TTResultFormat_BitsPerRecord", TY_INT8, 32),
            ("TTResult_NumberOfRecords", TY_INT8, 0),
        ]
        if sync_period:
            entries.append((TAG_SYNC_PERIOD, TY_FLOAT8, sync_period))
        if timing.is_t3 and timing.tcspc_num_bins:
            entries.append((TAG_TCSPC_NUM_BINS, TY_INT8, int(timing.tcspc_num_bins)))
        own = {name for name, _, _ in entries}
        for name, (typ, value) in (tags or {}).items():
            if name in own or name == "Header_End":
                raise ValueError(f"tag {name} is written by PtuWriter itself")
            entries.append((name, typ, value))
        header = bytearray(PTU_MAGIC + PTU_VERSION.encode("ascii").ljust(8, b"\0"))
        self._patch: dict[str, int] = {}
        for name, typ, value in entries:
            self._patch[name] = len(header) + 40  # offset of the 8-byte value field
            header += encode_tag(name, value, typ)
        header += encode_tag("Header_End", None, TY_EMPTY8)
        self._fh: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._fh.write(header)

    def write(self, chunk: PhotonChunk) -> None:
        """Append the records of one chunk (chunks must come in time order)."""
        if self._fh is None:
            raise ValueError(f"{self.path}: writer is closed")
        if chunk.timing != self.timing:
            raise ValueError(f"{self.path}: chunk timing {chunk.timing} differs from the "
                             f"writer's {self.timing}")
        words = np.ascontiguousarray(self._encoder.encode(chunk), dtype="<u4")
        self._fh.write(words.tobytes())
        self.n_records += int(words.size)
        if len(chunk):
            self._last_time = max(self._last_time, int(chunk.timestamps[-1]))
            self._max_detector = max(self._max_detector, int(chunk.detectors.max()))
        if chunk.marker_times.size:
            self._last_time = max(self._last_time, int(chunk.marker_times.max()))

    def close(self) -> None:
        """Patch the record count, acquisition time and channel count, and close the file."""
        if self._fh is None:
            return
        fh, self._fh = self._fh, None
        try:
            acq = self._acquisition_time
            if acq is None:
                acq = self._last_time * self.timing.timestamp_unit
            channels = self._n_channels if self._n_channels is not None else self._max_detector
            for name, value in (("TTResult_NumberOfRecords", self.n_records),
                                ("MeasDesc_AcquisitionTime", math.ceil(acq * 1e3 - 1e-9)),
                                ("HW_InpChannels", channels)):
                fh.seek(self._patch[name])
                fh.write(struct.pack("<q", int(value)))
        finally:
            fh.close()

    def __enter__(self) -> PtuWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def write_ptu(path: str | os.PathLike[str],
              data: Measurement | PhotonChunk | Iterable[PhotonChunk],
              rectype: int | str | None = None, timing: Timing | None = None, *,
              comment: str | None = None, acquisition_time: float | None = None,
              n_channels: int | None = None, creation_time: dt.datetime | None = None,
              tags: dict[str, tuple[int, Any]] | None = None) -> int:
    """Write photons to a PTU file in one call.

    Parameters
    ----------
    path
        The file to create.
    data
        A :class:`Measurement` (its metadata supplies the comment, acquisition time and channel
        count unless given), one chunk, or an iterable of chunks of one stream.
    rectype
        Record type; by default ``"HydraHarp2T3"`` for T3 and ``"HydraHarp2T2"`` for T2 data.
    timing
        Timing of the chunks; needed only when ``data`` is an empty iterable.
    comment, acquisition_time, n_channels, creation_time, tags
        As for :class:`PtuWriter`.

    Returns
    -------
    int
        Number of records written.
    """
    if isinstance(data, Measurement):
        meta = data.meta
        comment = meta.comment if comment is None else comment
        acquisition_time = meta.acquisition_time if acquisition_time is None \
            else acquisition_time
        n_channels = meta.n_channels if n_channels is None else n_channels
        chunks: Iterable[PhotonChunk] = [data.photons]
    elif isinstance(data, PhotonChunk):
        chunks = [data]
    else:
        chunks = data
    iterator = iter(chunks)
    first = next(iterator, None)
    if timing is None:
        if first is None:
            raise ValueError("no photons and no timing given")
        timing = first.timing
    if rectype is None:
        rectype = "HydraHarp2T3" if timing.is_t3 else "HydraHarp2T2"
    with PtuWriter(path, rectype, timing, comment=comment or "",
                   acquisition_time=acquisition_time, n_channels=n_channels,
                   creation_time=creation_time, tags=tags) as writer:
        if first is not None:
            writer.write(first)
        for chunk in iterator:
            writer.write(chunk)
    return writer.n_records
