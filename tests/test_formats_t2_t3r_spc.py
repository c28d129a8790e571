"""The remaining legacy formats: .ht2/.pt2 (legacy T2), TimeHarp 200 .t3r (and .thd refused),
Becker & Hickl .spc with its .set file -- each against an independent reader.

Independent readers: libpicoquant's decoded output of the same real files (tests/data/
libpicoquant/*.data, written by T. Bischof's C reader), ptufile (our raw records wrapped in a
minimal PTU header) and phconvert (``pqreader.load_t3r``, ``bhreader.load_spc``).
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import phconvert
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_formats_fuzz import FUZZ, check_damaged
from test_formats_legacy import pt3_header
from test_formats_ptu import assert_same_as_ptufile

import spad
from spad.app.cli import main
from spad.errors import FormatError
from spad.formats import bh_spc, detect
from spad.formats.ptu import TY_EMPTY8, TY_FLOAT8, TY_INT8, encode_tag
from spad.formats.records import Encoder, decode
from spad.photons import PhotonChunk, Timing

DATA = Path(__file__).parent / "data" / "picoquant-sample-data"
LIBPQ = Path(__file__).parent / "data" / "libpicoquant"
T3R = DATA / "v50.t3r"
T3R_HEADER = 592          # bytes before the first record of v50.t3r (format 5.0, 1 board)


def quietly(path: Path) -> spad.Measurement:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with spad.open(path) as f:
            return f.read()


def libpq(name: str) -> np.ndarray:
    return np.loadtxt(LIBPQ / f"{name}.data", delimiter=",", dtype=np.int64, ndmin=2)


def wrap_ptu(tmp_path: Path, raw: bytes, rectype: int, mode: int, glob: float,
             res: float) -> Path:
    """Raw records behind a minimal PTU header, for ptufile to decode."""
    tags = [encode_tag("Measurement_Mode", mode, TY_INT8),
            encode_tag("MeasDesc_GlobalResolution", glob, TY_FLOAT8),
            encode_tag("MeasDesc_Resolution", res, TY_FLOAT8),
            encode_tag("TTResultFormat_TTTRRecType", rectype, TY_INT8),
            encode_tag("TTResultFormat_BitsPerRecord", 32, TY_INT8),
            encode_tag("TTResult_NumberOfRecords", len(raw) // 4, TY_INT8),
            encode_tag("Header_End", None, TY_EMPTY8)]
    path = tmp_path / "wrapped.ptu"
    path.write_bytes(b"PQTTTR\0\0" + b"1.0.00\0\0" + b"".join(tags) + raw)
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------------------------
# HydraHarp .ht2 (real files: the headers and first records of longer recordings)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, rectype, unit, sync_rate", [
    ("v10.ht2", "HydraHarpT2", 0.5e-12, 522093),     # format 1.0 counts half picoseconds
    ("v20.ht2", "HydraHarp2T2", 1e-12, 998880),
])
def test_real_ht2_meta(name: str, rectype: str, unit: float, sync_rate: int) -> None:
    with pytest.warns(UserWarning, match="but the file holds 25"):   # cut to 900 bytes upstream
        f = spad.open(DATA / name)
    m = f.meta
    assert (m.format, m.mode, m.record_type) == ("HT2", "T2", rectype)
    assert m.timing.timestamp_unit == unit and m.timing.nanotime_unit is None
    assert m.sync_rate == sync_rate and m.timing.sync_period == pytest.approx(1 / sync_rate)
    assert m.n_records == 25 and m.n_channels == 4
    assert m.tags["HardwareIdent"] == "HydraHarp 400"


@pytest.mark.parametrize("name, ticks_per_ps", [("v10.ht2", 2), ("v20.ht2", 1)])
def test_real_ht2_matches_libpicoquant(name: str, ticks_per_ps: int) -> None:
    # libpicoquant prints channel,time[ps]; the sync is its channel 4 (= InputChannelsPresent)
    # and it halves format-1.0 ticks (rounding down) to picoseconds.
    ref = libpq(name)
    p = quietly(DATA / name).photons
    channel = np.where(p.detectors == 0, 4, p.detectors.astype(np.int64) - 1)
    assert len(p) == len(ref) > 0
    np.testing.assert_array_equal(channel, ref[:, 0])
    np.testing.assert_array_equal(p.timestamps // ticks_per_ps, ref[:, 1])


@pytest.mark.parametrize("name, code", [("v10.ht2", 0x00010204), ("v20.ht2", 0x01010204)])
def test_real_ht2_matches_ptufile(tmp_path: Path, name: str, code: int) -> None:
    raw = (DATA / name).read_bytes()[900 - 25 * 4:]
    p = quietly(DATA / name)
    wrapped = wrap_ptu(tmp_path, raw, code, 2, p.meta.timing.timestamp_unit,
                       p.meta.timing.timestamp_unit)
    assert_same_as_ptufile(wrapped, p.photons, p.meta.record_type)


def test_real_ht3_version_1_matches_libpicoquant() -> None:
    # a real format-1.0 HT3 file (HydraHarpT3 records); libpicoquant prints channel, sync
    # count and the TCSPC time in ps (bins of 4 ps)
    m = quietly(DATA / "v10.ht3")
    assert (m.meta.format, m.meta.record_type) == ("HT3", "HydraHarpT3")
    assert m.meta.resolution == pytest.approx(4e-12)
    p = m.photons
    ref = libpq("v10.ht3")
    ours = np.c_[p.detectors.astype(np.int64) - 1, p.timestamps, p.nanotimes.astype(np.int64) * 4]
    assert len(ours) == len(ref)
    np.testing.assert_array_equal(ours, ref)


# --------------------------------------------------------------------------------------------
# PicoHarp .pt2, synthesised after PicoQuant's read_pt2.m layout (no real .pt2 small enough)
# --------------------------------------------------------------------------------------------

def _pt2_photons(n: int = 3000) -> PhotonChunk:
    rng = np.random.default_rng(4)
    timing = Timing("T2", 4e-12, None, 1e-7, None)
    ts = np.sort(rng.integers(0, 2 * 10**9, n))          # spans ~9 wraps of 210698240
    mts = np.array([16 * 10**6 + 3, 7 * 10**8 + 5])      # low 4 bits = marker bits
    return PhotonChunk(timing, ts, rng.integers(0, 5, n), None, mts, mts & 15)


def test_pt2_read_and_matches_ptufile(tmp_path: Path) -> None:
    photons = _pt2_photons()
    words = Encoder("PicoHarpT2", photons.timing).encode(photons).astype("<u4")
    path = tmp_path / "x.pt2"
    path.write_bytes(pt3_header(n_records=words.size, mode=2, resolution_ns=0.128)
                     + words.tobytes())
    assert detect(path) == "PT2"
    f = spad.open(path)
    m = f.meta
    assert (m.format, m.mode, m.record_type) == ("PT2", "T2", "PicoHarpT2")
    # 4 ps tags whatever the histogram Resolution (0.128 ns) of the header says
    assert m.timing == photons.timing and m.resolution == 4e-12
    got = f.read().photons
    assert got.equals(photons)
    assert PhotonChunk.concatenate(f.chunks(101)).equals(photons)
    assert_same_as_ptufile(wrap_ptu(tmp_path, words.tobytes(), 0x00010203, 2, 4e-12, 4e-12),
                           got, "PicoHarpT2")


def test_pt2_without_sync_rate_has_no_sync_period(tmp_path: Path) -> None:
    path = tmp_path / "nosync.pt2"
    path.write_bytes(pt3_header(n_records=0, mode=2, sync_rate=0))
    assert spad.open(path).meta.timing.sync_period is None


# --------------------------------------------------------------------------------------------
# TimeHarp 200 .t3r (a real file, format 5.0) and .thd
# --------------------------------------------------------------------------------------------

def test_real_t3r_meta() -> None:
    with pytest.warns(UserWarning) as caught:
        f = spad.open(T3R)
    m = f.meta
    assert (m.format, m.mode, m.record_type, m.record_type_code) == (
        "T3R", "T3", "TimeHarp200T3", None)
    assert m.timing.timestamp_unit == pytest.approx(100e-9)     # TTTRGlobClock = 100 ns
    assert m.resolution == pytest.approx(70.237e-12)
    assert m.sync_rate == 4999168 and m.timing.sync_period == pytest.approx(1 / 4999168)
    assert m.timing.tcspc_num_bins == 4096       # the converter's range (reverse start-stop)
    assert m.n_records == 86997 and m.acquisition_time == 60.0
    assert m.creation_time == "2003-09-08T12:51:43"             # written "08/09/03 12:51:43"
    assert m.tags["StopAfter"] == 9344 and m.tags["HardwareVersion"] == "2.4"
    text = " ".join(str(w.message) for w in caught)
    assert "100 ns clock" in text and "not resolved" in text   # g2 caveat
    assert "dropped the last 1 byte" in text                   # the file has a stray byte


def test_real_t3r_matches_libpicoquant_and_phconvert() -> None:
    p = quietly(T3R).photons
    assert len(p) == 85571 and set(np.unique(p.detectors)) == {1}
    ref = libpq("v50.t3r")                                      # its first 100 photons
    # both references give the raw (reverse start-stop) bin; spad gives 4095 - bin
    np.testing.assert_array_equal(np.c_[p.detectors.astype(np.int64) - 1, p.timestamps,
                                        4095 - p.nanotimes.astype(np.int64)][:len(ref)], ref)
    ts, _, nt, meta = phconvert.pqreader.load_t3r(str(T3R))
    assert meta["timestamps_unit"] == pytest.approx(100e-9)
    # phconvert returns every record; valid photons have bit 30 set. It also counts every
    # special record as an overflow, where the TimeHarp's manual and libpicoquant count only
    # those with data bit 11: here the one marker record at the start (0x00070004).
    raw = np.fromfile(T3R, "<u4", count=86997, offset=T3R_HEADER)
    valid = (raw >> 30) & 1 == 1
    markers_before = np.cumsum(~valid & ((raw >> 27) & 1 == 0))[valid]
    np.testing.assert_array_equal(ts[valid] - 65536 * markers_before, p.timestamps)
    np.testing.assert_array_equal(nt[valid], 4095 - p.nanotimes.astype(np.int64))
    m = quietly(T3R).photons
    assert m.marker_channels.tolist() == [7] and m.marker_times.tolist() == [4]


def test_real_t3r_decay_runs_forward() -> None:
    # reverse start-stop: the raw bins of this real TimeHarp 200 recording rise slowly to a
    # sharp edge (a decay read backwards); spad's nanotimes rise sharply at the laser pulse
    # and then decay, like those of any other TCSPC device
    nt = quietly(T3R).photons.nanotimes
    h = np.convolve(np.bincount(nt, minlength=4096), np.ones(8), "same")  # 0.56 ns bins
    peak = int(np.argmax(h))
    ns = round(1e-9 / 70.237e-12)                                # bins per ns
    assert h[peak - 2 * ns] < 0.1 * h[peak]                      # rise within 2 ns
    assert h[peak + 2 * ns] > 0.5 * h[peak]                      # a decay of ns, not an edge
    after = h[peak:peak + 60 * ns:5 * ns]                        # then it falls, 60 ns on
    assert np.all(np.diff(after) < 0) and after[-1] < 0.2 * h[peak]


@pytest.mark.parametrize("n", [1000, 4096, 100_000])
def test_t3r_chunks(n: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = spad.open(T3R)
        assert PhotonChunk.concatenate(f.chunks(n)).equals(f.read().photons)


def _t3r_as_version(version: str) -> bytes:
    """v50.t3r rewritten with the header layout of another TimeHarp format version."""
    data = T3R.read_bytes()
    ident, text_rest = data[:16], data[22:304]            # HardwareVersion, FileTime, ...
    settings, board, tttr = data[304:516], data[516:540], data[540:588]
    records = data[T3R_HEADER:]
    hw, filetime_etc = text_rest[:6], text_rest[6:]
    if version == "6.0":
        text = (ident + b"6.0\0\0\0" + b"TimeHarp 200".ljust(18, b"\0")
                + b"6.0".ljust(12, b"\0") + filetime_etc)
        board = b"TimeHarp 200".ljust(16, b"\0") + hw.ljust(8, b"\0") + board
        return text + settings + board + tttr + struct.pack("<i", 2) + bytes(8) + records
    text = ident + version.encode().ljust(6, b"\0") + hw + filetime_etc
    return text + settings + board + tttr + records   # no SpecHeaderLength before 5.0


@pytest.mark.parametrize("version", ["2.0", "3.0", "6.0"])
def test_t3r_other_format_versions(tmp_path: Path, version: str) -> None:
    path = tmp_path / f"v{version}.t3r"
    path.write_bytes(_t3r_as_version(version))
    m = quietly(path)
    assert m.meta.tags["FormatVersion"] == version and m.meta.format == "T3R"
    assert m.photons.equals(quietly(T3R).photons)
    if version == "6.0":
        assert m.meta.software == "TimeHarp 200"
        assert m.meta.tags["Boards"][0]["HardwareIdent"] == "TimeHarp 200"


def test_t3r_routing_markers_and_invalid_records(tmp_path: Path) -> None:
    # route r -> detector r + 1; a special record with marker bits 0 is neither marker nor
    # overflow: skipped and announced
    words = np.array([
        (1 << 30) | (2 << 28) | (100 << 16) | 10,      # photon, route 2, bin 100, tag 10
        (0x800 << 16),                                 # overflow
        (5 << 16) | 20,                                # marker bits 5 at tag 20
        (0x0F0 << 16) | 30,                            # special, no marker bits: invalid
        (1 << 30) | (3 << 28) | (4095 << 16) | 40,     # photon, route 3
    ], dtype="<u4")
    data = bytearray(T3R.read_bytes()[:T3R_HEADER])
    data[T3R_HEADER - 8:T3R_HEADER - 4] = struct.pack("<i", words.size)
    path = tmp_path / "small.t3r"
    path.write_bytes(bytes(data) + words.tobytes())
    with pytest.warns(UserWarning) as caught:
        p = spad.open(path).read().photons
    assert any("1 record(s) are neither" in str(w.message) for w in caught)
    assert p.detectors.tolist() == [3, 4] and p.nanotimes.tolist() == [4095 - 100, 0]
    assert p.timestamps.tolist() == [10, 65536 + 40]
    assert p.marker_times.tolist() == [65536 + 20] and p.marker_channels.tolist() == [5]


@pytest.mark.parametrize("changes, problem", [
    ({16: b"4.0\0\0\0"}, "TimeHarp file format version '4.0'"),
    ({520 + 16: struct.pack("<f", 0.0)}, "resolution"),
    ({540: struct.pack("<i", 0)}, "TTTRGlobClock = 0"),
    ({568: struct.pack("<i", 0)}, "sync rate"),
    ({320: struct.pack("<i", 9)}, "NumberOfBoards = 9"),
    ({588: struct.pack("<i", 10**8)}, "SpecHeaderLength"),
])
def test_inconsistent_t3r_headers(tmp_path: Path, changes: dict[int, bytes],
                                  problem: str) -> None:
    data = bytearray(T3R.read_bytes())
    for offset, value in changes.items():
        data[offset:offset + len(value)] = value
    path = tmp_path / "bad.t3r"
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=problem):
        spad.open(path)


def test_t3r_cut_inside_header(tmp_path: Path) -> None:
    for cut in (340, 500, 530, 560, 591):
        path = tmp_path / f"cut{cut}.t3r"
        path.write_bytes(T3R.read_bytes()[:cut])
        with pytest.raises(FormatError, match="ends inside the header"):
            spad.open(path)


def test_thd_is_refused_as_histograms() -> None:
    with pytest.raises(FormatError, match="holds histograms, not time-tagged data"):
        spad.open(DATA / "v30.thd")


# --------------------------------------------------------------------------------------------
# Becker & Hickl .spc + .set, synthesised after the bh TCSPC Handbook's FIFO layout
# --------------------------------------------------------------------------------------------

INV, MTOV, GAP, MARK = 1 << 31, 1 << 30, 1 << 29, 1 << 28


def set_file(path: Path, module_code: int = 0x25, tac_range: str = "5.00000e-08",
             gain: int = 4) -> Path:
    """A .set file as the bh software writes it: binary header, IDENTIFICATION, SETUP."""
    head = struct.pack("<hihihihIihhHIHH", (module_code << 4) | 1, 42, 200, 300, 400,
                       0, 0, 0, 0, 0, 0, 0x5555, 0, 0, 0)
    text = ("\r\n*IDENTIFICATION\r\n  ID        : SPC Setup Script File\r\n"
            "  Title     : dot 7\r\n  Version   : 1  781 M\r\n  Date      : 03/14/2019\r\n"
            "  Time      : 12:34:56\r\n*END\r\n\r\n*SETUP\r\nSYS_PARA_BEGIN:\r\n"
            "#PR [PR_PDEV,I,18]\r\n"
            f"#SP [SP_TAC_R,F,{tac_range}]\r\n#SP [SP_TAC_G,I,{gain}]\r\n"
            "#SP [SP_ADC_RE,I,4096]\r\n#SP [SP_COL_T,F,10.000]\r\nSYS_PARA_END:\r\n*END\r\n")
    path.write_bytes(head + text.encode())
    return path


def spc_records(rng: np.random.Generator, n: int, *, clock_01ns: int = 500,
                extras: bool = True) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Header word and FIFO records for ``n`` photons, written record by record as the card
    does: one MTOV flag on a photon after one wrap, a multi-overflow record before longer gaps;
    with ``extras`` also invalid photons and markers (without MTOV)."""
    t = np.sort(rng.integers(0, 4096 * 3000, n))
    t[n // 2:] += 4096 * 50_000                       # a long dark gap: a multi-overflow
    rout = rng.integers(0, 4, n)
    adc = rng.integers(0, 4096, n)
    words = [(1 << 31) | (2 << 27) | clock_01ns]      # header: valid, 2 routing bits
    cur = 0
    markers_t, markers_c = [], []
    for i in range(n):
        wraps = int(t[i] // 4096) - cur
        flag = 0
        if wraps == 1:
            flag = MTOV
        elif wraps > 1:
            words.append(INV | MTOV | wraps)
        cur += wraps
        mt = int(t[i] % 4096)
        if extras and i % 97 == 5:
            words.append(INV | (int(adc[i]) << 16) | mt)              # invalid photon
        if extras and i % 211 == 7 and not flag:
            words.append(INV | MARK | (4 << 12) | mt)                  # frame marker
            markers_t.append(cur * 4096 + mt)
            markers_c.append(4)
        words.append(flag | (int(adc[i]) << 16) | (int(rout[i]) << 12) | mt)
    truth = {"t": t, "det": rout + 1, "nt": 4095 - adc,
             "mt": np.array(markers_t, np.int64), "mc": np.array(markers_c, np.int64)}
    return np.array(words, dtype="<u4"), truth


def spc_pair(tmp_path: Path, words: np.ndarray, name: str = "dot7") -> Path:
    path = tmp_path / f"{name}.spc"
    path.write_bytes(words.astype("<u4").tobytes())
    set_file(path.with_suffix(".set"))
    return path


def test_spc_meta_and_photons(tmp_path: Path) -> None:
    words, truth = spc_records(np.random.default_rng(1), 5000)
    path = spc_pair(tmp_path, words)
    assert detect(path) == "SPC"
    with pytest.warns(UserWarning, match="50 ns clock"):
        f = spad.open(path)
    m = f.meta
    assert (m.format, m.mode, m.record_type, m.record_type_code) == ("SPC", "T3", "BH-SPC",
                                                                      None)
    assert m.timing.timestamp_unit == pytest.approx(50e-9)
    assert m.timing.nanotime_unit == pytest.approx(50e-9 / 4 / 4096)   # TAC range / gain
    assert m.timing.sync_period is None and m.timing.tcspc_num_bins == 4096
    assert m.tags["Module"] == "SPC-830" and m.n_channels == 4
    assert (m.acquisition_time, m.comment, m.creation_time) == (10.0, "dot 7",
                                                                "03/14/2019 12:34:56")
    assert m.n_records == words.size - 1
    p = quietly(path).photons
    np.testing.assert_array_equal(p.timestamps, truth["t"])
    np.testing.assert_array_equal(p.detectors, truth["det"])
    np.testing.assert_array_equal(p.nanotimes, truth["nt"])
    np.testing.assert_array_equal(p.marker_times, truth["mt"])
    np.testing.assert_array_equal(p.marker_channels, truth["mc"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert PhotonChunk.concatenate(spad.open(path).chunks(333)).equals(p)


def test_spc_matches_phconvert(tmp_path: Path) -> None:
    words, _ = spc_records(np.random.default_rng(2), 20000)
    path = spc_pair(tmp_path, words)
    ref = phconvert.bhreader.load_spc(path)["photon_data"]
    assert ref["timestamps_unit"] == pytest.approx(50e-9)
    p = quietly(path).photons
    np.testing.assert_array_equal(ref["timestamps"].astype(np.int64), p.timestamps)
    np.testing.assert_array_equal(ref["detectors"].astype(np.int64) + 1, p.detectors)
    np.testing.assert_array_equal(ref["nanotimes"].astype(np.int64), p.nanotimes)


def test_spc_gap_marker_with_overflow_and_invalid_are_announced(tmp_path: Path) -> None:
    words = np.array([
        (1 << 31) | 500,
        (7 << 16) | (1 << 12) | 100,              # photon, rout 1 -> detector 2
        INV | MARK | MTOV | (2 << 12) | 5,        # line marker after one wrap
        GAP | (9 << 16) | 200,                    # photon after lost data
        INV | MTOV | 3,                           # three wraps
        INV | MARK | 7,                           # marker bits 0: invalid
        INV | (1 << 16) | 9,                      # invalid photon
        MTOV | 10,                                # photon after one more wrap
    ] + [(k << 16) | (500 + k) for k in range(8)], dtype="<u4")
    path = spc_pair(tmp_path, words)
    with pytest.warns(UserWarning) as caught:
        p = spad.open(path).read().photons
    text = " ".join(str(w.message) for w in caught)
    assert "1 record(s) carry the GAP flag" in text and "photons were lost" in text
    assert "2 record(s) are neither" in text
    assert p.timestamps.tolist()[:3] == [100, 4096 + 200, 5 * 4096 + 10]
    assert p.detectors.tolist()[:3] == [2, 1, 1]
    assert p.nanotimes.tolist()[:3] == [4095 - 7, 4095 - 9, 4095]
    assert p.marker_times.tolist() == [4096 + 5] and p.marker_channels.tolist() == [2]


def test_spc_without_set_file_is_refused(tmp_path: Path) -> None:
    words, _ = spc_records(np.random.default_rng(3), 100, extras=False)
    path = tmp_path / "alone.spc"
    path.write_bytes(words.tobytes())
    with pytest.raises(FormatError, match=r"alone\.set\) is not beside it.*TCSPC bin"):
        spad.open(path)
    upper = tmp_path / "alone.SET"                # the bh software writes either case
    set_file(upper)
    assert quietly(path).meta.format == "SPC"


@pytest.mark.parametrize("kw, problem", [
    ({"module_code": 0x22}, "SPC-630"),
    ({"tac_range": "0"}, "SP_TAC_R = 0.0"),
    ({"gain": 0}, "SP_TAC_G = 0"),
])
def test_spc_bad_settings(tmp_path: Path, kw: dict, problem: str) -> None:
    words, _ = spc_records(np.random.default_rng(3), 100, extras=False)
    path = tmp_path / "x.spc"
    path.write_bytes(words.tobytes())
    set_file(path.with_suffix(".set"), **kw)
    with pytest.raises(FormatError, match=problem):
        spad.open(path)


def test_spc_detection_has_no_false_positives(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    for _ in range(3000):
        size = int(rng.integers(0, 4000))
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        if size >= 4 and rng.random() < 0.5:      # give half of them a plausible header word
            data = struct.pack("<I", (1 << 31) | int(rng.integers(10, 100_000))) + data[4:]
        path = tmp_path / "r.bin"
        path.write_bytes(data)
        with open(path, "rb") as fh:
            assert not bh_spc.looks_like_spc(data[:256], fh, size)
    # every other kind of file spad knows, and the .set file itself
    others = [*DATA.glob("*"), set_file(tmp_path / "s.set")]
    for path in others:
        with open(path, "rb") as fh:
            assert not bh_spc.looks_like_spc(fh.read(256), fh, path.stat().st_size), path
    # an SPC file whose times go back is not one
    words, _ = spc_records(rng, 200, extras=False)
    words[1:] = rng.permutation(words[1:])
    path = tmp_path / "shuffled.spc"
    path.write_bytes(words.tobytes())
    with pytest.raises(FormatError, match="not a time-tag file"):
        spad.open(path)


@FUZZ
@given(bit=st.integers(0, 8 * T3R_HEADER - 1))
def test_t3r_header_bit_flips(tmp_path: Path, bit: int) -> None:
    damaged = bytearray(T3R.read_bytes())
    damaged[bit // 8] ^= 1 << (bit % 8)
    path = tmp_path / "flip.t3r"
    path.write_bytes(bytes(damaged))
    check_damaged(path, quietly(T3R))


@FUZZ
@given(garbage=st.binary(max_size=3000))
def test_spc_garbage_behind_a_header_word(tmp_path: Path, garbage: bytes) -> None:
    path = tmp_path / "g.spc"
    path.write_bytes(struct.pack("<I", (1 << 31) | 500) + garbage)
    set_file(path.with_suffix(".set"))
    try:
        m = quietly(path)
    except FormatError:
        return
    # accepted only if its events are in time order, and then read without a crash
    assert m.meta.format == "SPC" and np.all(np.diff(m.photons.timestamps) >= 0)


def test_decode_only_record_types_cannot_be_encoded() -> None:
    timing = Timing("T3", 1e-7, 1e-11, None, 4096)
    with pytest.raises(ValueError, match="does not write"):
        Encoder("BH-SPC", timing)
    words = np.array([(1 << 30) | 5], dtype=np.uint32)
    assert decode(words, "TimeHarp200T3", timing).timestamps.tolist() == [5]


# --------------------------------------------------------------------------------------------
# the command line: spad info and spad convert on each
# --------------------------------------------------------------------------------------------

def test_cli_info_on_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    words, _ = spc_records(np.random.default_rng(5), 500)
    for path, fmt in [(T3R, "T3R"), (DATA / "v10.ht2", "HT2"),
                      (spc_pair(tmp_path, words), "SPC")]:
        code, out, _ = run_cli(capsys, "info", path)
        assert code == 0 and out.splitlines()[1].split()[1] == fmt, out
    code, _, err = run_cli(capsys, "info", DATA / "v30.thd")
    assert code == 2 and "histograms" in err and "Traceback" not in err


def test_cli_convert_each_to_photon_hdf5(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    words, _ = spc_records(np.random.default_rng(6), 500)
    for src in (T3R, DATA / "v10.ht2", spc_pair(tmp_path, words)):
        out = tmp_path / f"{src.stem}.h5"
        code, _, err = run_cli(capsys, "convert", src, out)
        assert code == 0, err
        back, orig = quietly(out), quietly(src)
        assert back.photons.timestamps.tolist() == orig.photons.timestamps.tolist()
        assert back.photons.detectors.tolist() == orig.photons.detectors.tolist()
        if orig.photons.nanotimes is not None:
            assert back.photons.nanotimes.tolist() == orig.photons.nanotimes.tolist()
        assert back.meta.timing.timestamp_unit == pytest.approx(orig.meta.timing.timestamp_unit)
        # the laser period is kept where known and never invented (SPC files do not state it)
        assert back.meta.timing.sync_period == (
            None if orig.meta.timing.sync_period is None
            else pytest.approx(orig.meta.timing.sync_period))


def test_cli_convert_to_ptu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run_cli(capsys, "convert", DATA / "v10.ht2", tmp_path / "ht2.ptu")
    assert code == 0
    assert quietly(tmp_path / "ht2.ptu").photons.equals(quietly(DATA / "v10.ht2").photons)
    # TimeHarp 200 macrotimes count a 100 ns clock, not syncs: PTU T3 records cannot say so
    code, _, err = run_cli(capsys, "convert", T3R, tmp_path / "t3r.ptu")
    assert code == 2 and "write Photon-HDF5 instead" in err and "Traceback" not in err
    assert not (tmp_path / "t3r.ptu").exists()
