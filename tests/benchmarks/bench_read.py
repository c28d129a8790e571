"""``spad.open(path).read()`` against ptufile's ``PtuFile(path).decode_records()``, end to end.

Run: ``.venv/bin/python tests/benchmarks/bench_read.py [n_records]``

A 20 M-record HydraHarp v2 T3 file (the stream of ``bench_decode.py``), read from the page cache
as a user calls each library: open, read, decode, build the result. Median of interleaved runs
(after one warm-up of each), so that load changes on a shared machine hit both alike.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_decode import make_stream, write_ptu  # noqa: E402

import spad  # noqa: E402

RUNS = 7


def main(n_records: int = 20_000_000) -> None:
    import ptufile

    print(f"load: {os.getloadavg()}")
    words, _ = make_stream(n_records)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.ptu"
        write_ptu(path, words)

        def ours() -> int:
            with spad.open(path) as f:
                return len(f.read().photons.timestamps)

        def theirs() -> int:
            with ptufile.PtuFile(path) as f:
                return len(f.decode_records())

        ours(), theirs()
        t_ours, t_ptu = [], []
        for _ in range(RUNS):
            for fn, acc in ((ours, t_ours), (theirs, t_ptu)):
                t = time.perf_counter()
                fn()
                acc.append(time.perf_counter() - t)
        a, b = float(np.median(t_ours)), float(np.median(t_ptu))
        print(f"{n_records} records: spad.open().read() {a * 1e3:.0f} ms "
              f"({n_records / a / 1e6:.0f} M records/s), ptufile decode_records "
              f"{b * 1e3:.0f} ms ({n_records / b / 1e6:.0f} M records/s): {b / a:.2f}x ptufile")
    print(f"load: {os.getloadavg()}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000_000)
