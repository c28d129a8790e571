"""Damaged and foreign files: spad.open must raise FormatError (a ValueError) or return the right
photons (announcing any doubt in meta.warnings) -- never crash, hang or return wrong data
silently."""

from __future__ import annotations

import functools
import struct
import warnings
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import spad
from spad.errors import FormatError
from spad.formats.ptu import read_ptu_header, write_ptu
from spad.formats.records import decode
from spad.photons import PhotonChunk, Timing

HT3 = Path(__file__).parent / "data" / "picoquant-sample-data" / "v20.ht3"
FUZZ = settings(max_examples=40, deadline=2000,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@functools.cache
def small_ptu() -> tuple[bytes, int]:
    """A small HydraHarp v2 T3 PTU written by spad (bytes, offset of the first record)."""
    import tempfile

    rng = np.random.default_rng(21)
    timing = Timing("T3", 2e-7, 64e-12, 2e-7, 3125)
    n = 60
    chunk = PhotonChunk(timing, np.sort(rng.integers(0, 3 * 10**6, n)), rng.integers(1, 3, n),
                        rng.integers(0, 3125, n), [1000, 90000], [1, 2])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "small.ptu"
        write_ptu(path, chunk, comment="fuzz me")
        return path.read_bytes(), read_ptu_header(path).data_offset


def read_quietly(path: Path) -> spad.Measurement:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with spad.open(path) as f:
            return f.read()


def same_photons(a: PhotonChunk, b: PhotonChunk) -> bool:
    def eq(x: np.ndarray | None, y: np.ndarray | None) -> bool:
        return (x is None and y is None) or (x is not None and y is not None
                                             and np.array_equal(x, y))
    return (eq(a.timestamps, b.timestamps) and eq(a.detectors, b.detectors)
            and eq(a.nanotimes, b.nanotimes) and eq(a.marker_times, b.marker_times)
            and eq(a.marker_channels, b.marker_channels))


def check_damaged(path: Path, original: spad.Measurement) -> str:
    """Outcome of reading a damaged copy of ``original``; fails the test on silent damage."""
    try:
        got = read_quietly(path)
    except FormatError:
        return "error"
    if same_photons(got.photons, original.photons):
        return "same"
    # Different photons are acceptable only when the reader says why: a warning, or the header
    # now claims another record type (one valid record type code flipped into another).
    assert got.meta.warnings or got.meta.record_type != original.meta.record_type, (
        "different photons returned without any warning")
    return "announced"


# --------------------------------------------------------------------------------------------
# truncation
# --------------------------------------------------------------------------------------------

def test_ptu_cut_anywhere_in_the_header_is_a_format_error(tmp_path: Path) -> None:
    data, offset = small_ptu()
    path = tmp_path / "cut.ptu"
    # every cut point: in the magic, the version, tag identifiers, values, and string data
    for cut in range(offset):
        path.write_bytes(data[:cut])
        with pytest.raises(FormatError):
            read_quietly(path)


def test_ptu_cut_inside_the_records_reads_the_whole_records_before(tmp_path: Path) -> None:
    data, offset = small_ptu()
    timing = read_quietly(_write(tmp_path / "orig.ptu", data)).meta.timing
    path = tmp_path / "cut.ptu"
    n_words = (len(data) - offset) // 4
    for cut in sorted({offset, offset + 1, offset + 3, offset + 4, offset + 4 * n_words // 2 + 2,
                       len(data) - 1}):
        path.write_bytes(data[:cut])
        with pytest.warns(UserWarning):
            f = spad.open(path)
        k = (cut - offset) // 4
        assert f.meta.n_records == k
        words = np.frombuffer(data[offset:offset + 4 * k], "<u4").copy()
        expected = decode(words, "HydraHarp2T3", timing)
        assert same_photons(read_quietly(path).photons, expected)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------------------------
# bit flips
# --------------------------------------------------------------------------------------------

@FUZZ
@given(bit=st.integers(0, 10**9))
def test_ptu_header_bit_flips(tmp_path: Path, bit: int) -> None:
    data, offset = small_ptu()
    original = read_quietly(_write(tmp_path / "orig.ptu", data))
    bit %= 8 * offset
    damaged = bytearray(data)
    damaged[bit // 8] ^= 1 << (bit % 8)
    check_damaged(_write(tmp_path / "flip.ptu", bytes(damaged)), original)


@FUZZ
@given(bit=st.integers(0, 8 * 800 - 1))
def test_ht3_header_bit_flips(tmp_path: Path, bit: int) -> None:
    data = HT3.read_bytes()
    original = read_quietly(HT3)
    damaged = bytearray(data)
    damaged[bit // 8] ^= 1 << (bit % 8)
    check_damaged(_write(tmp_path / "flip.ht3", bytes(damaged)), original)


def test_flips_in_critical_ptu_fields_are_caught(tmp_path: Path) -> None:
    # Every bit of the type and value fields of the record type, measurement mode and
    # bits-per-record tags, and of the Header_End name: an error, the same photons (e.g. a
    # bits-per-record of 0, which means 32), or another valid record type that meta then names.
    data, _ = small_ptu()
    original = read_quietly(_write(tmp_path / "orig.ptu", data))
    outcomes: dict[str, int] = {}
    spots = [(ident, range(8 * 36, 8 * 48)) for ident in (
        "TTResultFormat_TTTRRecType", "Measurement_Mode", "TTResultFormat_BitsPerRecord")]
    spots.append(("Header_End", range(8 * len("Header_End"))))
    for ident, bits in spots:
        at = data.index(ident.encode().ljust(32, b"\0"))
        for bit in bits:
            damaged = bytearray(data)
            damaged[at + bit // 8] ^= 1 << (bit % 8)
            outcome = check_damaged(_write(tmp_path / "flip.ptu", bytes(damaged)), original)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    # 368 flips: the Header_End name and nearly all value/type bits must give errors (the few
    # that do not turn Int8 into BitSet64/Color8, 32 into 0 bits, or HH v2 into v1 records)
    assert outcomes["error"] >= 350, outcomes


# --------------------------------------------------------------------------------------------
# garbage and foreign files
# --------------------------------------------------------------------------------------------

PREFIXES = [b"", b"PQTTTR\0\0", b"PQTTTR\0\x001.0.00\0\0", b"HydraHarp\0\0\0\0\0\0\x002.0\0\0\0",
            b"HydraHarp\0\0\0\0\0\0\x001.0\0\0\0", b"PicoHarp 300\0\0\0\x002.0\0\0\0",
            b"TimeHarp 200\0\0\0\x005.0\0\0\0", b"\xf4\x01\x00\x80"]   # last: an SPC header word


@FUZZ
@given(prefix=st.sampled_from(PREFIXES), garbage=st.binary(max_size=3000))
def test_random_garbage_is_a_format_error(tmp_path: Path, prefix: bytes,
                                          garbage: bytes) -> None:
    path = _write(tmp_path / "garbage.ptu", prefix + garbage)
    with pytest.raises(FormatError) as info:
        read_quietly(path)
    assert isinstance(info.value, ValueError)
    assert str(path) in str(info.value)


def _png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0\0")) + chunk(b"IEND", b""))


@pytest.mark.parametrize("name, content, found", [
    ("image.ptu", _png(), "a PNG image"),
    ("empty.ptu", b"", "the file is empty"),
    ("notes.ht3", b"particle 7: dimer?\nneck 4 nm\n", "a text file"),
    ("histo.ptu", b"PQHISTO\0" + bytes(100), "histogram file"),
    ("old.t3r", b"TimeHarp 200\0\0\0\0" + bytes(100), "TimeHarp"),
    ("binary.pt3", bytes(range(256)) * 4, "starts with"),
])
def test_foreign_files(tmp_path: Path, name: str, content: bytes, found: str) -> None:
    path = _write(tmp_path / name, content)
    with pytest.raises(FormatError, match=found) as info:
        spad.open(path)
    assert "not a time-tag file this version reads" in str(info.value)


def test_hdf5_that_is_not_photon_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as h:
        h["spectrum"] = np.arange(10.0)
    with pytest.raises(FormatError, match="HDF5"):
        spad.open(path)
    # an HDF5 file behind a 512-byte user block is still recognised as HDF5
    ub = tmp_path / "userblock.ptu"
    with h5py.File(ub, "w", userblock_size=512) as h:
        h["x"] = [1, 2, 3]
    assert spad.formats.detect(ub) == "Photon-HDF5"
    with pytest.raises(FormatError, match="HDF5"):
        spad.open(ub)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="no such file"):
        spad.open(tmp_path / "nothing.ptu")
    with pytest.raises(FormatError, match="directory"):
        spad.open(tmp_path)


def test_extension_is_ignored(tmp_path: Path) -> None:
    data, _ = small_ptu()
    f = spad.open(_write(tmp_path / "actually_a_ptu.h5", data))
    assert f.meta.format == "PTU"
    ht3 = _write(tmp_path / "actually_ht3.ptu", HT3.read_bytes())
    assert spad.open(ht3).meta.format == "HT3"


def test_photon_hdf5_is_dispatched_and_damage_is_caught(tmp_path: Path) -> None:
    from spad.formats.photon_hdf5_writer import write_photon_hdf5

    data, _ = small_ptu()
    m = read_quietly(_write(tmp_path / "src.ptu", data))
    h5 = tmp_path / "looks_like.ptu"         # the extension is ignored
    write_photon_hdf5(h5, m)
    f = spad.open(h5)
    assert f.meta.format == "Photon-HDF5"
    assert same_photons(f.read().photons, m.photons)
    whole = h5.read_bytes()
    for cut in (8, 100, len(whole) // 2, len(whole) - 1):
        with pytest.raises(FormatError):
            read_quietly(_write(tmp_path / "cut.h5", whole[:cut]))
