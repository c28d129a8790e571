"""Read speed of the TimeHarp 200 (.t3r) and Becker & Hickl (.spc) readers against phconvert.

Run: ``.venv/bin/python tests/benchmarks/bench_decode_legacy.py [n_photons]``

Writes a .t3r (the header of tests/data/picoquant-sample-data/v50.t3r, records synthesised:
~100 kcps on a 100 ns clock, one overflow record per wrap) and a .spc + .set (~100 kcps on a 50
ns clock, MTOV flags and multi-overflow records), checks that spad and phconvert agree on the
photons, then prints the best of several end-to-end reads as a user calls them:
``spad.open(path).read()`` against ``phconvert.pqreader.load_t3r`` /
``phconvert.bhreader.load_spc``.
"""

from __future__ import annotations

import struct
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import phconvert

import spad

T3R = Path(__file__).parents[1] / "data" / "picoquant-sample-data" / "v50.t3r"
REPEATS = 5


def _best(fn: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _insert_overflows(words: np.ndarray, record: np.ndarray) -> np.ndarray:
    """Insert ``record[i]`` before photon i for each photon with wraps > 0 (vectorised)."""
    at = np.flatnonzero(record != 0)
    return np.insert(words, at, record[at])


def t3r_file(path: Path, n: int, rng: np.random.Generator) -> None:
    tags = np.cumsum(rng.exponential(100.0, n)).astype(np.int64)     # 100 ns ticks, ~100 kcps
    wraps = np.diff(tags // 65536, prepend=0)
    photons = ((1 << 30) | (rng.integers(0, 4096, n) << 16) | (tags & 0xFFFF)).astype(np.uint32)
    # one overflow record per wrap: repeat the insertion point for multi-wrap gaps
    at = np.repeat(np.arange(n), wraps)
    words = np.insert(photons, at, np.uint32(0x800 << 16))
    header = bytearray(T3R.read_bytes()[:592])
    header[584:588] = struct.pack("<i", words.size)
    path.write_bytes(bytes(header) + words.astype("<u4").tobytes())


def spc_file(path: Path, n: int, rng: np.random.Generator) -> None:
    t = np.cumsum(rng.exponential(200.0, n)).astype(np.int64)        # 50 ns ticks, ~100 kcps
    wraps = np.diff(t // 4096, prepend=0)
    photons = ((rng.integers(0, 4096, n) << 16) | (rng.integers(0, 2, n) << 12)
               | (t & 0xFFF)).astype(np.uint32)
    photons[wraps == 1] |= np.uint32(1 << 30)
    multi = np.where(wraps > 1, (3 << 30) | wraps, 0).astype(np.uint32)
    words = _insert_overflows(photons, multi)
    header = np.array([(1 << 31) | (1 << 27) | 500], dtype=np.uint32)
    path.write_bytes(np.concatenate([header, words]).astype("<u4").tobytes())
    setup = ("*IDENTIFICATION\r\n  ID : SPC Setup Script File\r\n*END\r\n*SETUP\r\n"
             "SYS_PARA_BEGIN:\r\n#SP [SP_TAC_R,F,5e-08]\r\n#SP [SP_TAC_G,I,4]\r\n"
             "SYS_PARA_END:\r\n*END\r\n")
    head = struct.pack("<hihihihIihhHIHH", (0x25 << 4) | 1, 42, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                       0x5555, 0, 0, 0)
    path.with_suffix(".set").write_bytes(head + setup.encode())


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000_000
    rng = np.random.default_rng(1)
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, make, ref in (
            ("t3r", t3r_file, lambda p: phconvert.pqreader.load_t3r(str(p))),
            ("spc", spc_file, lambda p: phconvert.bhreader.load_spc(p)),
        ):
            path = Path(tmp) / f"bench.{kind}"
            make(path, n, rng)
            ours = spad.open(path).read().photons
            got = ref(path)
            ts = got[0][got[1] == 1] if kind == "t3r" else got["photon_data"]["timestamps"]
            assert np.array_equal(np.asarray(ts, np.int64), ours.timestamps), kind
            n_rec = spad.open(path).meta.n_records
            t_spad = _best(lambda p=path: spad.open(p).read())
            t_ref = _best(lambda p=path, r=ref: r(p))
            print(f"{kind}: {n_rec / 1e6:.1f} M records, {len(ours) / 1e6:.1f} M photons: "
                  f"spad {t_spad:.3f} s ({n_rec / t_spad / 1e6:.0f} M rec/s), "
                  f"phconvert {t_ref:.3f} s ({n_rec / t_ref / 1e6:.0f} M rec/s)")


if __name__ == "__main__":
    main()
