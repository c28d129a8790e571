"""Tests of spad.formats.records: PicoQuant TTTR record decoding and encoding."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spad.formats.records import (
    RECORD_TYPES,
    Decoder,
    Encoder,
    RecordType,
    _bounds,
    decode,
    encode,
    record_type,
)
from spad.photons import SYNC, PhotonChunk, Timing

T3 = Timing("T3", 100e-9, 4e-12, 100e-9, 25000)
T2 = Timing("T2", 1e-12)
ALL = sorted(RECORD_TYPES.values(), key=lambda rt: rt.code)


def timing_of(rt: RecordType) -> Timing:
    return T3 if rt.mode == "T3" else T2


# ---------------------------------------------------------------- record words built by hand

def ph_t3(ch: int, dtime: int, nsync: int) -> int:
    return (ch << 28) | (dtime << 16) | nsync


def ph_t2(ch: int, time: int) -> int:
    return (ch << 28) | time


def hh_t3(special: int, ch: int, dtime: int, nsync: int) -> int:
    return (special << 31) | (ch << 25) | (dtime << 10) | nsync


def hh_t2(special: int, ch: int, time: int) -> int:
    return (special << 31) | (ch << 25) | time


def words(*w: int) -> np.ndarray:
    return np.array(w, dtype=np.uint32)


# ---------------------------------------------------------------- record type table

def test_record_type_lookup():
    assert len(RECORD_TYPES) == 12
    assert record_type(0x01010304).name == "HydraHarp2T3"
    assert record_type("hydraharp2t3") is record_type(0x01010304)
    assert record_type(np.int64(0x00010203)).name == "PicoHarpT2"
    assert record_type("MultiHarpT2") is record_type("GenericT2")
    assert record_type(record_type("PicoHarpT3")).wrap == 65536
    for bad in (0x12345678, "NoSuchHarpT3", None):
        with pytest.raises(ValueError):
            record_type(bad)


def test_record_type_wraps():
    assert record_type("PicoHarpT2").wrap == 210698240
    assert record_type("HydraHarpT3").wrap == 1024
    assert record_type("HydraHarpT2").wrap == 33552000
    assert not record_type("HydraHarpT2").multi_wrap
    for name in ("HydraHarp2T2", "TimeHarp260NT2", "TimeHarp260PT2", "GenericT2"):
        assert record_type(name).wrap == 33554432 and record_type(name).multi_wrap


# ---------------------------------------------------------------- known records, per family

def test_picoharp_t3_known_records():
    w = words(ph_t3(2, 100, 500), ph_t3(15, 0, 0), ph_t3(1, 4095, 3), ph_t3(15, 4, 7),
              ph_t3(15, 0, 1234), ph_t3(4, 0, 65535))
    dec = Decoder("PicoHarpT3", T3)
    c = dec.decode(w)
    assert c.timestamps.tolist() == [500, 65536 + 3, 2 * 65536 + 65535]
    assert c.detectors.tolist() == [2, 1, 4]
    assert c.nanotimes.tolist() == [100, 4095, 0]
    assert c.marker_times.tolist() == [65536 + 7]
    assert c.marker_channels.tolist() == [4]
    assert dec.n_overflows == 2 and dec.n_invalid == 0 and dec.n_records == 6


def test_picoharp_t2_known_records():
    w = words(ph_t2(0, 123), ph_t2(3, 0x0FFFFFFF), ph_t2(15, 0), ph_t2(15, 0x1230),
              ph_t2(15, 0x25), ph_t2(1, 5))
    c = decode(w, "PicoHarpT2", T2)
    wrap = 210698240
    # Channel 0 (the sync input) is detector 0; the time field may exceed the wrap.
    assert c.timestamps.tolist() == [123, 0x0FFFFFFF, 2 * wrap + 5]
    assert c.detectors.tolist() == [0, 3, 1]
    assert c.nanotimes is None
    # Marker bits are the low 4 bits; the time keeps them, as in the reference reader.
    assert c.marker_times.tolist() == [2 * wrap + 0x25]
    assert c.marker_channels.tolist() == [5]


@pytest.mark.parametrize("name", ["HydraHarpT3", "HydraHarp2T3", "TimeHarp260NT3",
                                  "TimeHarp260PT3", "GenericT3"])
def test_hydraharp_family_t3_known_records(name):
    v1 = name == "HydraHarpT3"
    w = words(hh_t3(0, 0, 32767, 1023), hh_t3(1, 63, 0, 5), hh_t3(0, 1, 7, 2),
              hh_t3(1, 63, 0, 0), hh_t3(1, 3, 0, 9), hh_t3(0, 63, 1, 0))
    dec = Decoder(name, T3)
    c = dec.decode(w)
    first = 1024 if v1 else 5 * 1024   # v1 ignores the count in the overflow record
    second = first + 1024              # a count of 0 means one wrap
    assert c.timestamps.tolist() == [1023, first + 2, second]
    assert c.detectors.tolist() == [1, 2, 64]
    assert c.nanotimes.tolist() == [32767, 7, 1]
    assert c.marker_times.tolist() == [second + 9]
    assert c.marker_channels.tolist() == [3]
    assert dec.n_overflows == (2 if v1 else 6)


@pytest.mark.parametrize("name", ["HydraHarpT2", "HydraHarp2T2", "TimeHarp260NT2",
                                  "TimeHarp260PT2", "GenericT2"])
def test_hydraharp_family_t2_known_records(name):
    v1 = name == "HydraHarpT2"
    wrap = 33552000 if v1 else 33554432
    w = words(hh_t2(1, 0, 10), hh_t2(0, 0, 20), hh_t2(1, 63, 3), hh_t2(0, 1, 0x1FFFFFF),
              hh_t2(1, 15, 40), hh_t2(1, 63, 0), hh_t2(1, 0, 50))
    c = decode(w, name, T2)
    first = wrap if v1 else 3 * wrap
    assert c.timestamps.tolist() == [10, 20, first + 0x1FFFFFF, first + wrap + 50]
    assert c.detectors.tolist() == [SYNC, 1, 2, SYNC]
    assert c.nanotimes is None
    assert c.marker_times.tolist() == [first + 40]
    assert c.marker_channels.tolist() == [15]


# ---------------------------------------------------------------- invalid records

@pytest.mark.parametrize("name, bad, good", [
    # channel 0, 5-14 and markers with bits above the 4 marker inputs
    ("PicoHarpT3", [ph_t3(0, 1, 1), ph_t3(7, 1, 1), ph_t3(15, 0x20, 1)], ph_t3(1, 2, 3)),
    ("PicoHarpT2", [ph_t2(5, 1), ph_t2(14, 1)], ph_t2(2, 3)),
    ("HydraHarp2T3", [hh_t3(1, 0, 0, 1), hh_t3(1, 16, 0, 1), hh_t3(1, 62, 5, 1)],
     hh_t3(0, 0, 2, 3)),
    ("HydraHarpT2", [hh_t2(1, 16, 1), hh_t2(1, 62, 1)], hh_t2(0, 1, 3)),
])
def test_invalid_records_are_counted_not_decoded(name, bad, good):
    ofl = words(0xF0000000 if name.startswith("Pico") else 0xFE000001)  # one wrap
    dec = Decoder(name, timing_of(record_type(name)))
    c = dec.decode(np.concatenate([words(*bad), ofl, words(good, *bad)]))
    assert dec.n_invalid == 2 * len(bad)
    assert len(c) == 1 and len(c.marker_times) == 0
    # The invalid records do not disturb the overflow correction.
    assert c.timestamps[0] == record_type(name).wrap + 3


# ---------------------------------------------------------------- round trips

@st.composite
def streams(draw, rt: RecordType) -> PhotonChunk:
    """A stream the record type can represent: gaps from zero to many wraps."""
    wrap = rt.wrap
    # Single-wrap types spend one record per wrap: keep their long gaps to tens of wraps.
    max_long = 3000 * wrap if rt.multi_wrap else 30 * wrap
    gap = st.one_of(st.integers(0, 50), st.integers(0, 2 * wrap), st.integers(0, max_long))
    n = draw(st.integers(0, 40))
    ts = np.cumsum(np.array(draw(st.lists(gap, min_size=n, max_size=n)), dtype=np.int64))
    det = draw(st.lists(st.integers(rt.min_detector, rt.max_detector), min_size=n,
                        max_size=n))
    nt = None
    if rt.mode == "T3":
        nt = draw(st.lists(st.integers(0, (1 << rt.nanotime_bits) - 1), min_size=n,
                           max_size=n))
    m = draw(st.integers(0, 8))
    mts = np.cumsum(np.array(draw(st.lists(gap, min_size=m, max_size=m)), dtype=np.int64))
    mch = np.array(draw(st.lists(st.integers(1, 15), min_size=m, max_size=m)), dtype=np.int64)
    if rt.name == "PicoHarpT2":
        # The record keeps the marker bits in the low 4 bits of the time.
        mts = (mts & ~np.int64(15)) | mch
        mts.sort()
        mch = mts & 15
    return PhotonChunk(timing_of(rt), ts, det, nt, mts, mch)


@pytest.mark.parametrize("rt", ALL, ids=lambda rt: rt.name)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_round_trip(rt, data):
    chunk = data.draw(streams(rt))
    w = encode(chunk, rt)
    assert w.dtype == np.uint32
    back = decode(w, rt, chunk.timing)
    assert back.equals(chunk)


@pytest.mark.parametrize("rt", ALL, ids=lambda rt: rt.name)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_chunked_encode_and_decode_equal_one_shot(rt, data):
    chunk = data.draw(streams(rt))
    w = encode(chunk, rt)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(w)), max_size=5)))
    dec = Decoder(rt, chunk.timing)
    parts = [dec.decode(p) for p in np.split(w, cuts)]
    assert PhotonChunk.concatenate(parts).equals(decode(w, rt, chunk.timing))
    # Encoding in pieces split at arbitrary times gives a stream that decodes the same.
    end = max(int(chunk.timestamps.max(initial=0)), int(chunk.marker_times.max(initial=0)))
    cut_times = sorted(data.draw(st.lists(st.integers(0, end + 1), max_size=3)))
    enc = Encoder(rt, chunk.timing)
    pieces = []
    for a, b in zip([0, *cut_times], [*cut_times, None], strict=True):
        p = chunk.select((chunk.timestamps >= a) & (b is None or chunk.timestamps < b))
        mk = (chunk.marker_times >= a) & (b is None or chunk.marker_times < b)
        pieces.append(enc.encode(PhotonChunk(p.timing, p.timestamps, p.detectors, p.nanotimes,
                                             chunk.marker_times[mk], chunk.marker_channels[mk])))
    assert decode(np.concatenate(pieces), rt, chunk.timing).equals(chunk)


@pytest.mark.parametrize("name", ["HydraHarp2T3", "PicoHarpT3", "HydraHarpT2"])
def test_large_stream_parallel_blocks_match_small_chunks(name):
    """Enough records for several parallel blocks; block offsets must join up exactly."""
    rt = record_type(name)
    rng = np.random.default_rng(7)
    n = 600_000
    gaps = rng.geometric(1 / 40, n) - 1
    gaps[rng.random(n) < 0.001] += rng.integers(0, 5000 * rt.wrap // 1024, 600)[:1]
    ts = np.cumsum(gaps) * (1 if rt.mode == "T3" else 997)
    det = rng.integers(rt.min_detector, min(rt.max_detector, 4) + 1, n)
    nt = rng.integers(0, 4096, n) if rt.mode == "T3" else None
    mts = np.sort(rng.choice(ts[-1], 300, replace=False))
    chunk = PhotonChunk(timing_of(rt), ts, det, nt, mts, rng.integers(1, 16, 300))
    w = encode(chunk, rt)
    # Sprinkle invalid records; they must be dropped in every block alike.
    bad = {"HydraHarp2T3": hh_t3(1, 20, 0, 0), "PicoHarpT3": ph_t3(9, 0, 0),
           "HydraHarpT2": hh_t2(1, 30, 0)}[name]
    w = np.insert(w, rng.integers(0, len(w), 50), np.uint32(bad))
    assert len(_bounds(len(w))) > 3   # really split into blocks
    one = Decoder(rt, chunk.timing)
    whole = one.decode(w)
    assert whole.equals(chunk)
    assert one.n_invalid == 50
    small = Decoder(rt, chunk.timing)
    parts = [small.decode(w[i:i + 40_000]) for i in range(0, len(w), 40_000)]
    assert PhotonChunk.concatenate(parts).equals(whole)
    assert small.n_overflows == one.n_overflows and small.n_invalid == 50


def test_multi_wrap_records_are_used():
    rt = record_type("HydraHarp2T3")
    w = encode(PhotonChunk(T3, [1023 * 1024 * 3 + 5], [1]), rt)
    assert len(w) == 4      # three full 1023-wrap overflow records, then the photon
    w1 = encode(PhotonChunk(T3, [10 * 1024 + 5], [1]), "HydraHarpT3")
    assert len(w1) == 11    # v1: one record per wrap


# ---------------------------------------------------------------- cross-check with ptufile

def _ptu_file(path, rt: RecordType, w: np.ndarray) -> None:
    def tag(ident, typ, raw):
        return struct.pack("<32siI", ident.encode(), -1, typ) + raw
    i8, f8 = 0x10000008, 0x20000008
    head = [tag("TTResultFormat_TTTRRecType", i8, struct.pack("<q", rt.code)),
            tag("TTResultFormat_BitsPerRecord", i8, struct.pack("<q", 32)),
            tag("TTResult_NumberOfRecords", i8, struct.pack("<q", len(w))),
            tag("MeasDesc_GlobalResolution", f8, struct.pack("<d", 1e-7 if rt.mode == "T3"
                                                              else 1e-12)),
            tag("MeasDesc_Resolution", f8, struct.pack("<d", 4e-12)),
            tag("TTResult_SyncRate", i8, struct.pack("<q", 10_000_000)),
            tag("Measurement_Mode", i8, struct.pack("<q", 3 if rt.mode == "T3" else 2)),
            tag("Measurement_SubMode", i8, struct.pack("<q", 0)),
            tag("Header_End", 0xFFFF0008, bytes(8))]
    path.write_bytes(b"PQTTTR\0\0" + b"1.0.00\0\0" + b"".join(head) + w.astype("<u4").tobytes())


@pytest.mark.parametrize("rt", ALL, ids=lambda rt: rt.name)
def test_photons_agree_with_ptufile(rt, tmp_path):
    import ptufile
    rng = np.random.default_rng(rt.code & 0xFFFF)
    n = 3000
    ts = np.cumsum(rng.integers(0, rt.wrap // 4, n) + (rng.random(n) < 0.02) * 3 * rt.wrap)
    det = rng.integers(max(rt.min_detector, 1), min(rt.max_detector, 8) + 1, n)
    nt = rng.integers(0, 1 << rt.nanotime_bits, n) if rt.mode == "T3" else None
    chunk = PhotonChunk(timing_of(rt), ts, det, nt)
    w = encode(chunk, rt)
    _ptu_file(tmp_path / "x.ptu", rt, w)
    with ptufile.PtuFile(tmp_path / "x.ptu") as f:
        ref = f.decode_records()
    ph = ref["channel"] >= 0
    assert np.array_equal(ref["time"][ph].astype(np.int64), chunk.timestamps)
    # ptufile numbers channels from 0 except in PicoHarp T2 (where 0 is the sync input).
    offset = 0 if rt.name == "PicoHarpT2" else 1
    assert np.array_equal(ref["channel"][ph].astype(np.int64) + offset, det)
    if nt is not None:
        assert np.array_equal(ref["dtime"][ph].astype(np.int64), nt)


# ---------------------------------------------------------------- what cannot be encoded

@pytest.mark.parametrize("name, chunk, match", [
    ("PicoHarpT3", PhotonChunk(T3, [1], [5], [0]), "detector 5"),
    ("HydraHarp2T3", PhotonChunk(T3, [1], [0], [0]), "detector 0"),
    ("PicoHarpT3", PhotonChunk(T3, [1], [1], [4096]), "nanotime 4096"),
    ("HydraHarp2T3", PhotonChunk(T3, [1], [1], [32768]), "nanotime 32768"),
    ("HydraHarp2T2", PhotonChunk(T2, [1], [65]), "detector 65"),
    ("HydraHarp2T2", PhotonChunk(T2, [5, 4], [1, 1]), "time order"),
    ("HydraHarp2T2", PhotonChunk(T2, [-1], [1]), "negative"),
    ("HydraHarp2T2", PhotonChunk(T2, [], [], None, [3], [16]), "marker channel 16"),
    ("HydraHarp2T2", PhotonChunk(T2, [], [], None, [3], [0]), "marker channel 0"),
    ("PicoHarpT2", PhotonChunk(T2, [], [], None, [0x20], [1]), "low 4 bits"),
])
def test_encode_rejects_what_the_type_cannot_hold(name, chunk, match):
    with pytest.raises(ValueError, match=match):
        encode(chunk, name)


def test_encoder_rejects_time_going_back_across_calls():
    enc = Encoder("HydraHarp2T3", T3)
    enc.encode(PhotonChunk(T3, [5000], [1], [0]))
    with pytest.raises(ValueError, match="back"):
        enc.encode(PhotonChunk(T3, [4000], [1], [0]))
    with pytest.raises(ValueError, match="back"):  # a marker before the last overflow
        enc.encode(PhotonChunk(T3, [], [], [], [1000], [1]))


def test_mode_and_dtype_mismatches_raise():
    with pytest.raises(ValueError, match="T3"):
        Decoder("HydraHarp2T3", T2)
    with pytest.raises(ValueError, match="T2"):
        Encoder("GenericT2", T3)
    with pytest.raises(ValueError, match="uint32"):
        decode(np.zeros(4, dtype=np.int64), "GenericT3", T3)
    with pytest.raises(ValueError, match="1-D"):
        decode(np.zeros((2, 2), dtype=np.uint32), "GenericT3", T3)


def test_big_endian_words_are_accepted():
    w = encode(PhotonChunk(T3, [1, 2000], [1, 2], [3, 4]), "GenericT3")
    assert decode(w.astype(">u4"), "GenericT3", T3).equals(decode(w, "GenericT3", T3))


def test_empty_input():
    c = decode(np.empty(0, np.uint32), "PicoHarpT3", T3)
    assert len(c) == 0 and len(c.marker_times) == 0
    assert len(encode(PhotonChunk(T2), "GenericT2")) == 0


def test_read_only_records_from_a_buffer():
    w = encode(PhotonChunk(T3, [1, 5000], [1, 2], [3, 4]), "HydraHarp2T3")
    ro = np.frombuffer(w.tobytes(), dtype="<u4")
    assert not ro.flags.writeable
    assert decode(ro, "HydraHarp2T3", T3).timestamps.tolist() == [1, 5000]


# ---------------------------------------------------------------- arbitrary words vs a reference

def reference_decode(w: list[int], rt: RecordType):
    """Record by record, as PicoQuant's Read_PTU.py, with spad's numbering and invalid rules."""
    ofl, ph, mk, invalid = 0, [], [], 0
    for r in w:
        if rt.family == "PicoHarp":
            ch = r >> 28
            if rt.mode == "T3":
                dtime, nsync = (r >> 16) & 0xFFF, r & 0xFFFF
                if ch == 15:
                    if dtime == 0:
                        ofl += rt.wrap
                    elif dtime <= 15:
                        mk.append((ofl + nsync, dtime))
                    else:
                        invalid += 1
                elif 1 <= ch <= 4:
                    ph.append((ofl + nsync, ch, dtime))
                else:
                    invalid += 1
            else:
                t = r & 0x0FFFFFFF
                if ch == 15:
                    if t & 15 == 0:
                        ofl += rt.wrap
                    else:
                        mk.append((ofl + t, t & 15))
                elif ch <= 4:
                    ph.append((ofl + t, ch, None))
                else:
                    invalid += 1
            continue
        special, ch = r >> 31, (r >> 25) & 63
        f = r & (0x3FF if rt.mode == "T3" else 0x1FFFFFF)
        dtime = (r >> 10) & 0x7FFF if rt.mode == "T3" else None
        if not special:
            ph.append((ofl + f, ch + 1, dtime))
        elif ch == 63:
            ofl += rt.wrap * (f if rt.multi_wrap and f else 1)
        elif 1 <= ch <= 15:
            mk.append((ofl + f, ch))
        elif ch == 0 and rt.mode == "T2":
            ph.append((ofl + f, SYNC, None))
        else:
            invalid += 1
    return ph, mk, invalid


def record_words(rt: RecordType):
    """Any 32-bit word, with special/overflow/marker patterns drawn often."""
    top = st.sampled_from([0xF, 0x0, 0x1, 0x4, 0x5] if rt.family == "PicoHarp"
                          else [0x7F, 0x40, 0x41, 0x4F, 0x50, 0x00, 0x3F])
    shift = 28 if rt.family == "PicoHarp" else 25
    low = st.one_of(st.integers(0, 15), st.integers(0, (1 << shift) - 1))
    return st.one_of(st.integers(0, 2**32 - 1),
                     st.builds(lambda t, x: (t << shift) | x, top, low))


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize("rt", ALL, ids=lambda rt: rt.name)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_arbitrary_words_decode_as_the_reference(rt, compiled, data):
    w = data.draw(st.lists(record_words(rt), max_size=60))
    ph, mk, invalid = reference_decode(w, rt)
    dec = Decoder(rt, timing_of(rt), compiled)
    arr = np.array(w, dtype=np.uint32)
    cut = data.draw(st.integers(0, len(w)))
    c = PhotonChunk.concatenate([dec.decode(arr[:cut]), dec.decode(arr[cut:])])
    assert c.timestamps.tolist() == [p[0] for p in ph]
    assert c.detectors.tolist() == [p[1] for p in ph]
    if rt.mode == "T3":
        assert c.nanotimes.tolist() == [p[2] for p in ph]
    assert c.marker_times.tolist() == [m[0] for m in mk]
    assert c.marker_channels.tolist() == [m[1] for m in mk]
    assert dec.n_invalid == invalid


@pytest.mark.parametrize("name", ["PicoHarpT2", "GenericT3"])
def test_arbitrary_words_in_parallel_blocks_match_small_chunks(name):
    rt = record_type(name)
    rng = np.random.default_rng(3)
    w = rng.integers(0, 2**32, 800_000, dtype=np.uint32)
    # Make a quarter of the records special ones, a third of those overflows.
    special = rng.random(len(w)) < 0.25
    top = np.uint32(0xF0000000 if rt.family == "PicoHarp" else 0xFE000000)
    w[special] |= top
    w[special & (rng.random(len(w)) < 0.3)] &= top
    one = Decoder(rt, timing_of(rt))
    whole = one.decode(w)
    small = Decoder(rt, timing_of(rt))
    parts = [small.decode(w[i:i + 50_000]) for i in range(0, len(w), 50_000)]
    assert PhotonChunk.concatenate(parts).equals(whole)
    assert (one.n_invalid, one.n_overflows) == (small.n_invalid, small.n_overflows)
    assert one.n_invalid > 0 and len(whole.marker_times) > 0
