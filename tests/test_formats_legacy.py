"""Legacy .ht3/.pt3 containers: the real HT3 file, synthesised PT3 and HT3 v1.0 files, quirks."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import ptufile
import pytest

import spad
from spad.errors import FormatError
from spad.formats import legacy
from spad.formats.ptu import TY_EMPTY8, TY_FLOAT8, TY_INT8, encode_tag
from spad.formats.records import Encoder, decode
from spad.photons import PhotonChunk, Timing

HT3 = Path(__file__).parent / "data" / "picoquant-sample-data" / "v20.ht3"
HT3_HEADER = 800          # bytes before the first record in v20.ht3 (4 input channels)

# Byte offsets of fields in a HydraHarp header (see spad.formats.legacy for the layout).
HH_VERSION = 16
HH_FILETIME = 52
HH_MODE = 340
HH_RESOLUTION = 352
HH_SYNCRATE = 776
HH_NUMRECORDS = 792


def patched(tmp_path: Path, changes: dict[int, bytes], data: bytes | None = None,
            name: str = "p.ht3") -> Path:
    buf = bytearray(HT3.read_bytes() if data is None else data)
    for offset, value in changes.items():
        buf[offset:offset + len(value)] = value
    path = tmp_path / name
    path.write_bytes(bytes(buf))
    return path


# --------------------------------------------------------------------------------------------
# the real HT3 file
# --------------------------------------------------------------------------------------------

def test_real_ht3_meta() -> None:
    f = spad.open(HT3)
    assert isinstance(f, legacy.LegacyReader)
    m = f.meta
    assert (m.format, m.record_type, m.record_type_code, m.mode) == (
        "HT3", "HydraHarp2T3", 0x01010304, "T3")
    assert m.sync_rate == 998898                              # ~1 MHz
    assert m.resolution == pytest.approx(16e-12)              # Resolution = 16 ps
    assert m.timing.timestamp_unit == pytest.approx(1 / 998898)
    assert m.timing.tcspc_num_bins == 32768                   # 1 us / 16 ps, capped by 15 bits
    assert m.acquisition_time == 10.0
    assert m.n_channels == 4                                  # 4 routing/input channels
    assert m.n_records == 53606
    assert m.creation_time == "2012-11-28T10:45:06"           # written "28/11/12 10:45:06"
    assert (m.software, m.software_version, m.comment) == ("HydraHarp AcqUI", "2.0.0.0",
                                                           "T3 Mode")
    assert m.tags["FormatVersion"] == "2.0"
    assert m.tags["HardwareIdent"] == "HydraHarp 400"
    assert m.tags["InputRate"] == [1160, 1116, 404, 480]
    assert m.tags["SyncDivider"] == 1 and m.tags["ImgHdrSize"] == 0
    assert m.warnings == []


def test_real_ht3_decodes_like_ptufile(tmp_path: Path) -> None:
    # ptufile reads only PTU: wrap the untouched record bytes of the HT3 file in a minimal PTU
    # header and let ptufile decode them. Channel mapping as in test_formats_ptu: ptufile's
    # 0-based channel c is spad detector c + 1.
    raw = HT3.read_bytes()[HT3_HEADER:]
    tags = [encode_tag("Measurement_Mode", 3, TY_INT8),
            encode_tag("MeasDesc_GlobalResolution", 1 / 998898, TY_FLOAT8),
            encode_tag("MeasDesc_Resolution", 16e-12, TY_FLOAT8),
            encode_tag("TTResultFormat_TTTRRecType", 0x01010304, TY_INT8),
            encode_tag("TTResultFormat_BitsPerRecord", 32, TY_INT8),
            encode_tag("TTResult_NumberOfRecords", len(raw) // 4, TY_INT8),
            encode_tag("Header_End", None, TY_EMPTY8)]
    wrapped = tmp_path / "wrapped.ptu"
    wrapped.write_bytes(b"PQTTTR\0\0" + b"1.0.00\0\0" + b"".join(tags) + raw)
    rec = ptufile.PtuFile(wrapped).decode_records()
    ph = rec[rec["channel"] >= 0]
    ours = spad.open(HT3).read().photons
    assert len(ours) == len(ph) == 44141
    np.testing.assert_array_equal(ph["time"].astype(np.int64), ours.timestamps)
    np.testing.assert_array_equal(ph["channel"].astype(np.int64) + 1, ours.detectors)
    np.testing.assert_array_equal(ph["dtime"].astype(np.int64), ours.nanotimes)
    assert len(ours.marker_times) == np.count_nonzero(rec["marker"]) == 0
    # the same photons through the PTU reader of the wrapped file
    assert spad.open(wrapped).read().photons.timestamps.tolist() == ours.timestamps.tolist()


@pytest.mark.parametrize("n", [1, 4096, 10**6])
def test_ht3_chunks_concatenate_to_read(n: int) -> None:
    f = spad.open(HT3)
    whole = f.read().photons
    # chunks of 1: only the first 100 records (each decode call has a fixed cost of ~ms)
    records = f.meta.n_records if n > 1 else 100
    parts = []
    for part in f.chunks(n):
        parts.append(part)
        records -= n
        if records <= 0:
            break
    got = PhotonChunk.concatenate(parts)
    if n > 1:
        assert got.equals(whole)
    else:
        k = len(got)
        assert k > 0 and got.timestamps.tolist() == whole.timestamps[:k].tolist()
        assert got.nanotimes.tolist() == whole.nanotimes[:k].tolist()


# --------------------------------------------------------------------------------------------
# HT3 format 1.0 and quirks, by patching the real header
# --------------------------------------------------------------------------------------------

def test_ht3_version_1_uses_hydraharp_v1_records(tmp_path: Path) -> None:
    # Format 1.0 files carry HydraHarpT3 records, where each overflow record is one wrap.
    src = spad.open(HT3).read().photons
    words = Encoder("HydraHarpT3", src.timing).encode(src)
    header = bytearray(HT3.read_bytes()[:HT3_HEADER])
    header[HH_NUMRECORDS:HH_NUMRECORDS + 8] = struct.pack("<q", words.size)
    path = patched(tmp_path, {HH_VERSION: b"1.0\0\0\0"},
                   bytes(header) + words.astype("<u4").tobytes(), "v10.ht3")
    f = spad.open(path)
    assert (f.meta.record_type, f.meta.tags["FormatVersion"]) == ("HydraHarpT3", "1.0")
    assert f.read().photons.equals(src)


@pytest.mark.parametrize("version", [b"2.0   ", b" 2.0\0\0", b"2.0\0 \0"])
def test_padded_version_strings(tmp_path: Path, version: bytes) -> None:
    f = spad.open(patched(tmp_path, {HH_VERSION: version}))
    assert f.meta.tags["FormatVersion"] == "2.0" and f.meta.n_records == 53606


@pytest.mark.parametrize("written, iso", [
    (b"28/11/2012 10:45\0\0", "2012-11-28T10:45:00"),
    (b"28/11/12 10:45:06\0", "2012-11-28T10:45:06"),
    (b"Wed Nov 28 10:45:0", "Wed Nov 28 10:45:0"),     # cut short by the 18-byte field
    (b"\0" * 18, None),
])
def test_file_time_formats(tmp_path: Path, written: bytes, iso: str | None) -> None:
    assert spad.open(patched(tmp_path, {HH_FILETIME: written})).meta.creation_time == iso


@pytest.mark.parametrize("stated", [0, 53606 + 17, 12])
def test_wrong_record_count_uses_file_size(tmp_path: Path, stated: int) -> None:
    path = patched(tmp_path, {HH_NUMRECORDS: struct.pack("<q", stated)})
    with pytest.warns(UserWarning, match=f"states {stated} records but the file holds 53606"):
        f = spad.open(path)
    assert f.meta.n_records == 53606
    assert f.read().photons.equals(spad.open(HT3).read().photons)


def test_truncated_ht3_keeps_whole_records(tmp_path: Path) -> None:
    data = HT3.read_bytes()
    path = tmp_path / "cut.ht3"
    path.write_bytes(data[:-4001])            # 1000 records and 1 byte short
    with pytest.warns(UserWarning, match="truncated"):
        f = spad.open(path)
    assert f.meta.n_records == 53606 - 1001
    words = np.frombuffer(data[HT3_HEADER:HT3_HEADER + 4 * f.meta.n_records], "<u4").copy()
    assert f.read().photons.equals(decode(words, "HydraHarp2T3", f.meta.timing))


@pytest.mark.parametrize("changes, problem", [
    ({HH_VERSION: b"3.0\0\0\0"}, "format version '3.0'"),
    ({HH_MODE: struct.pack("<i", 0)}, "histogram"),
    ({HH_MODE: struct.pack("<i", 9)}, "MeasurementMode = 9"),
    ({HH_MODE: struct.pack("<i", 1)}, "MeasurementMode = 1"),
    ({HH_RESOLUTION: struct.pack("<d", 0.0)}, "resolution"),
    ({HH_RESOLUTION: struct.pack("<d", float("nan"))}, "resolution"),
    ({HH_SYNCRATE: struct.pack("<i", 0)}, "sync rate"),
    ({HH_SYNCRATE: struct.pack("<i", 10**8), HH_RESOLUTION: struct.pack("<d", 5e4)},
     "longer than the sync period"),                      # 50 ns bins, 10 ns period
    ({664: struct.pack("<i", 1000)}, "InputChannelsPresent = 1000"),
    ({788: struct.pack("<i", 10**8)}, "ImgHdrSize"),
])
def test_inconsistent_ht3_headers(tmp_path: Path, changes: dict[int, bytes],
                                  problem: str) -> None:
    with pytest.raises(FormatError, match=problem):
        spad.open(patched(tmp_path, changes))


def test_ht3_cut_inside_header(tmp_path: Path) -> None:
    for cut in (10, 200, 500, 700, 790, 799):
        path = tmp_path / f"cut{cut}.ht3"
        path.write_bytes(HT3.read_bytes()[:cut])
        with pytest.raises(FormatError, match="ends inside the header|format version"):
            spad.open(path)


# --------------------------------------------------------------------------------------------
# PicoHarp .pt3 (format 2.0), synthesised after PicoQuant's read_pt3.m layout
# --------------------------------------------------------------------------------------------

def pt3_header(*, n_records: int, sync_rate: int = 10_000_000, resolution_ns: float = 0.004,
               mode: int = 3, version: bytes = b"2.0", routing: int = 4,
               file_time: bytes = b"18/03/13 11:35:20", img_words: int = 0) -> bytes:
    """A PicoHarp 300 T3 file header, field by field as read_pt3.m reads it."""
    text = (b"PicoHarp 300".ljust(16, b"\0") + version.ljust(6, b"\0")
            + b"PicoHarp Software".ljust(18, b"\0") + b"2.3.0.0".ljust(12, b"\0")
            + file_time.ljust(18, b"\0") + b"\r\n" + b"dimer 12, 405 nm".ljust(256, b"\0"))
    settings = struct.pack("<18i", 0, 32, routing, 1, 0, mode, 0, 0, 0, 3000, 0, 0, 0, 0, 0,
                           0, 0, 0)
    display = struct.pack("<16i", *range(16)) + struct.pack("<9f", *([0.0] * 9))
    repeat = struct.pack("<4i", 0, 1, 0, 0) + b"TTTR Mode".ljust(20, b"\0")
    board = (b"PicoHarp 300".ljust(16, b"\0") + b"2.0".ljust(8, b"\0")
             + struct.pack("<6i", 1000123, 8, 10, 50, 10, 50)
             + struct.pack("<f", resolution_ns) + struct.pack("<2i", 1, 1)
             + struct.pack("<24i", *([0] * 24)))
    tttr = struct.pack("<7iIi", 0, 0, 0, sync_rate, 20000, 3000, 0, n_records, img_words)
    return text + settings + display + repeat + board + tttr + bytes(4 * img_words)


def pt3_file(tmp_path: Path, photons: PhotonChunk, **kw: object) -> Path:
    words = Encoder("PicoHarpT3", photons.timing).encode(photons)
    path = tmp_path / "x.pt3"
    path.write_bytes(pt3_header(n_records=words.size, **kw) + words.astype("<u4").tobytes())
    return path


def _pt3_photons(n: int = 2000) -> PhotonChunk:
    rng = np.random.default_rng(8)
    timing = Timing("T3", 1e-7, 4e-12, 1e-7, 4096)      # 10 MHz; 100 ns / 4 ps > 4096: capped
    return PhotonChunk(timing, np.sort(rng.integers(0, 5 * 10**6, n)), rng.integers(1, 5, n),
                       rng.integers(0, 4096, n), [100, 2000], [1, 4])


def test_pt3_round_trip(tmp_path: Path) -> None:
    photons = _pt3_photons()
    path = pt3_file(tmp_path, photons, img_words=3)
    f = spad.open(path)
    m = f.meta
    assert (m.format, m.record_type, m.mode) == ("PT3", "PicoHarpT3", "T3")
    assert m.resolution == 4e-12                        # float32 0.004 ns rounded to 4 ps
    assert m.sync_rate == 1e7 and m.timing == photons.timing
    assert m.acquisition_time == 3.0 and m.n_channels == 4
    assert m.creation_time == "2013-03-18T11:35:20"
    assert (m.software, m.comment) == ("PicoHarp Software", "dimer 12, 405 nm")
    assert m.tags["Boards"][0]["SyncDivider"] == 8
    assert m.tags["CntRate1"] == 20000
    assert f.read().photons.equals(photons)
    assert PhotonChunk.concatenate(f.chunks(97)).equals(photons)


@pytest.mark.parametrize("kw, problem", [
    ({"version": b"1.0"}, "PicoHarp file format version '1.0'"),
    ({"sync_rate": 0}, "sync rate"),
    ({"resolution_ns": 0.0}, "resolution"),
])
def test_inconsistent_pt3_headers(tmp_path: Path, kw: dict, problem: str) -> None:
    path = tmp_path / "bad.pt3"
    path.write_bytes(pt3_header(n_records=0, **kw))
    with pytest.raises(FormatError, match=problem):
        spad.open(path)


def test_pt3_board_count_is_checked(tmp_path: Path) -> None:
    data = bytearray(pt3_header(n_records=0))
    data[328 + 12:328 + 16] = struct.pack("<i", 77)      # NumberOfBoards
    path = tmp_path / "boards.pt3"
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="NumberOfBoards = 77"):
        spad.open(path)


def test_identify() -> None:
    assert legacy.identify(HT3.read_bytes()[:64]) == "HT3"
    assert legacy.identify(pt3_header(n_records=0)[:64]) == "PT3"
    assert legacy.identify(b"TimeHarp 200\0\0\0\0") is None
    assert legacy.identify(b"") is None
