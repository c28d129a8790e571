"""The numpy decoder (``Decoder(..., compiled=False)``, spad.formats.records_numpy) against the
compiled kernels: the same photons, markers, counts and carried state, bit for bit, on arbitrary
words of every record type and on the real files; and ``spad info`` the same either way."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_formats_legacy import pt3_file
from test_formats_t2_t3r_spc import GAP, INV, MARK, MTOV, spc_pair, spc_records

import spad
from spad.app.cli import main
from spad.app.commands import info
from spad.formats import records_numpy
from spad.formats.base import RecordFileReader
from spad.formats.records import DECODE_ONLY, RECORD_TYPES, Decoder, RecordType
from spad.photons import PhotonChunk, Timing

DATA = Path(__file__).parent / "data" / "picoquant-sample-data"
REAL = sorted(p for p in DATA.iterdir() if p.suffix in (".ptu", ".ht2", ".ht3", ".t3r"))
assert len(REAL) == 8
TYPES = sorted(RECORD_TYPES.values(), key=lambda rt: rt.code) + list(DECODE_ONLY.values())

T3 = Timing("T3", 100e-9, 4e-12, 100e-9, 25000)
T2 = Timing("T2", 1e-12)


def timing_of(rt: RecordType) -> Timing:
    return T3 if rt.mode == "T3" else T2


def assert_identical(a: PhotonChunk, b: PhotonChunk) -> None:
    """Same values and dtypes in every array."""
    assert a.timing == b.timing
    for name in ("timestamps", "detectors", "nanotimes", "marker_times", "marker_channels"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype, name
            np.testing.assert_array_equal(x, y, err_msg=name)


# Bits above the fields that decide what a record is, drawn often: (shift, patterns). Between
# them every class of record of each family (photon, sync, overflow, multi-wrap overflow,
# marker, invalid; B&H MTOV on photons and markers, GAP).
SPECIAL = {
    "PicoHarp": (28, [15, 0, 1, 4, 5, 14]),
    "HydraHarp": (25, [127, 64, 65, 79, 80, 0, 63]),
    "TimeHarp200": (16, [0x800, 0x801, 0x807, 0x000, 0x4000, 0x4FFF, 0x3800]),
    "BH-SPC": (28, list(range(16))),
}


def arbitrary_words(rt: RecordType, n: int, seed: int) -> np.ndarray:
    """Any 32-bit words, with the special patterns of the type's family often and time fields
    (the wrap counts of multi-wrap overflow records) often 0 or small."""
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 2**32, n, dtype=np.uint32)
    shift, patterns = SPECIAL[rt.family]
    pick = rng.random(n) < 0.6
    top = rng.choice(np.array(patterns, dtype=np.uint32), n)
    w[pick] = (top[pick] << np.uint32(shift)) | (w[pick] & np.uint32((1 << shift) - 1))
    if rt.family == "TimeHarp200":
        w[pick] &= np.uint32(0x4FFFFFFF)      # the pattern is the valid bit and data bits
    # below the pattern all 0 but a small time: PicoHarp T3 overflows (dtime 0), multi-wrap
    # overflows of 0-2 wraps
    small = rng.random(n) < 0.2
    w[small] &= np.uint32(~((1 << shift) - 1) & 0xFFFFFFFF)
    w[small] |= rng.integers(0, 3, n, dtype=np.uint32)[small]
    if rt.family == "PicoHarp":
        w[rng.random(n) < 0.2] &= np.uint32(0xF00FFFFF)    # dtime < 16: T3 markers
    return w


def decode_both(rt: RecordType, words: np.ndarray, sizes: list[int]
                ) -> tuple[Decoder, Decoder, list[PhotonChunk], list[PhotonChunk]]:
    """Decode ``words`` with both decoders, in chunks of the given sizes (cycled)."""
    comp, nump = Decoder(rt, timing_of(rt)), Decoder(rt, timing_of(rt), compiled=False)
    a, b = [], []
    lo, i = 0, 0
    while lo < words.size:
        hi = lo + sizes[i % len(sizes)]
        a.append(comp.decode(words[lo:hi]))
        b.append(nump.decode(words[lo:hi]))
        lo, i = hi, i + 1
    return comp, nump, a, b


def assert_same_state(comp: Decoder, nump: Decoder) -> None:
    assert (comp.n_invalid, comp.n_overflows, comp.n_gaps, comp.n_records) == (
        nump.n_invalid, nump.n_overflows, nump.n_gaps, nump.n_records)


@pytest.mark.parametrize("rt", TYPES, ids=lambda rt: rt.name)
@pytest.mark.parametrize("sizes", [[1, 2, 3, 5, 8, 13], [1000, 7, 4999], [70_001],
                                   [200_000]], ids=["tiny", "small", "over-a-block", "all"])
def test_arbitrary_words_as_compiled(rt: RecordType, sizes: list[int]) -> None:
    words = arbitrary_words(rt, 20_000 if sizes[0] < 10 else 200_000, seed=rt.kernel)
    comp, nump, a, b = decode_both(rt, words, sizes)
    for x, y in zip(a, b, strict=True):
        assert_identical(x, y)
    assert_same_state(comp, nump)
    # every class of record was there
    whole = PhotonChunk.concatenate(b)
    assert comp.n_invalid and comp.n_overflows and whole.marker_times.size
    if rt.mode == "T2":
        assert np.any(whole.detectors == 0)    # syncs
    if rt.family == "BH-SPC":
        assert comp.n_gaps


@pytest.mark.parametrize("rt", [rt for rt in TYPES if rt.multi_wrap], ids=lambda rt: rt.name)
def test_multi_wrap_records_carried_across_chunks(rt: RecordType) -> None:
    # overflow records of many wraps (and of 0, one wrap or none for B&H) between photons, a
    # chunk boundary after each record
    if rt.family == "BH-SPC":
        ofl = [INV | MTOV | 0, INV | MTOV | 5, INV | MTOV | 0xFFFFFFF]
        photon = [MTOV | (3 << 16) | 7, (1 << 12) | 9, INV | MARK | MTOV | (2 << 12) | 4,
                  GAP | 11]
    else:
        mask = 0x1FFFFFF if rt.mode == "T2" else 0x3FF
        ofl = [0xFE000000, 0xFE000000 | 1, 0xFE000000 | mask]
        photon = [(2 << 25) | 7, (1 << 31) | (3 << 25) | 4, 9]
    words = np.array([x for pair in zip(ofl * 4, photon * 3, strict=False) for x in pair],
                     dtype=np.uint32)
    comp, nump, a, b = decode_both(rt, words, [1])
    for x, y in zip(a, b, strict=True):
        assert_identical(x, y)
    assert_same_state(comp, nump)
    assert comp.n_overflows > len(ofl)


@pytest.mark.parametrize("rt", TYPES, ids=lambda rt: rt.name)
def test_empty_and_overflow_only_chunks(rt: RecordType) -> None:
    words = arbitrary_words(rt, 5000, seed=1)
    shift, patterns = SPECIAL[rt.family]
    only = np.full(300, patterns[0] << shift, dtype=np.uint32)   # the first pattern: overflow
    words = np.concatenate([words[:100], only, words[100:], only])
    comp, nump, a, b = decode_both(rt, words, [0, 100, 0, 300, 4900, 300])
    for x, y in zip(a, b, strict=True):
        assert_identical(x, y)
    assert_same_state(comp, nump)


def test_blocks_within_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    # small blocks: many per call, each carrying the wraps of the ones before
    monkeypatch.setattr(records_numpy, "BLOCK", 97)
    for rt in TYPES:
        words = arbitrary_words(rt, 30_000, seed=5)
        comp, nump, a, b = decode_both(rt, words, [10_000])
        for x, y in zip(a, b, strict=True):
            assert_identical(x, y)
        assert_same_state(comp, nump)


def quiet_chunks(path: Path, n: int, compiled: bool) -> tuple[list[PhotonChunk], list[str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with spad.open(path) as reader:
            assert isinstance(reader, RecordFileReader)
            chunks = list(reader.chunks(n, compiled=compiled))
            return chunks, list(reader.meta.warnings)


def spc_files(tmp_path: Path) -> list[Path]:
    words, _ = spc_records(np.random.default_rng(4), 20_000)
    odd = np.array([(1 << 31) | 500, (7 << 16) | (1 << 12) | 100, INV | MARK | MTOV | (2 << 12),
                    GAP | (9 << 16) | 200, INV | MTOV | 3, INV | MARK | 7, INV | (1 << 16) | 9,
                    MTOV | 10] + [(k << 16) | (500 + k) for k in range(8)], dtype="<u4")
    return [spc_pair(tmp_path, words, "a"), spc_pair(tmp_path, odd, "b")]


def pt3(tmp_path: Path) -> Path:
    rng = np.random.default_rng(8)
    n = 5000
    timing = Timing("T3", 1e-7, 4e-12, 1e-7, 4096)
    photons = PhotonChunk(timing, np.sort(rng.integers(0, 10**8, n)), rng.integers(1, 5, n),
                          rng.integers(0, 4096, n), [100, 2000, 10**7], [1, 4, 15])
    return pt3_file(tmp_path, photons)


def record_files(tmp_path: Path) -> list[Path]:
    """The real files of tests/data, a PT3 and two B&H SPC files (synthesised)."""
    return [*REAL, pt3(tmp_path), *spc_files(tmp_path)]


@pytest.mark.parametrize("n", [1 << 22, 4099])
def test_files_decode_as_compiled(tmp_path: Path, n: int) -> None:
    for path in record_files(tmp_path):
        comp, comp_warnings = quiet_chunks(path, n, compiled=True)
        nump, nump_warnings = quiet_chunks(path, n, compiled=False)
        assert len(comp) == len(nump) > 0, path
        for x, y in zip(comp, nump, strict=True):
            assert_identical(x, y)
        assert comp_warnings == nump_warnings, path


def info_json(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, path: Path,
              compiled: bool) -> str:
    monkeypatch.setattr(info, "decode_compiled", lambda n: compiled)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["info", "--json", str(path)]) == 0
    return capsys.readouterr().out


def test_info_json_the_same_either_way(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for path in record_files(tmp_path):
        comp = info_json(capsys, monkeypatch, path, True)
        nump = info_json(capsys, monkeypatch, path, False)
        assert comp == nump, path
        assert json.loads(comp)["n_records"] > 0
    # the odd SPC file's warnings came through both ways
    assert "GAP flag" in comp and "neither photon" in comp


def test_info_decodes_with_numpy_below_the_break_even(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "spad.formats.kernels", raising=False)
    assert not info.decode_compiled(10**6)
    assert info.decode_compiled(info.COMPILED_FROM_RECORDS)
    # where the kernels are loaded already, they are the faster decoder at any size
    monkeypatch.setitem(sys.modules, "spad.formats.kernels", object())
    assert info.decode_compiled(10)
