"""Soak: a long simulated acquisition at 2 M photons/s — resident memory and photons kept.

Run: ``make soak`` (one hour) or ``.venv/bin/python tests/benchmarks/soak_acquire.py
--hours 0.02``.

A block of records from the simulated tagger (10 s of a bright dimer, at its own rate) is
served again and again, each repetition closed by an overflow record so that time keeps
increasing, at 2 M records/s of wall time (FIFO reads of 131072 records), to the whole
:class:`Acquisition` (decode, accumulators, Photon-HDF5 writing, live analysis in its worker).
Prints the resident memory every minute and, at the end, the photons in the file against the
photons served.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_acquire import ReplayTagger, _records  # noqa: E402

import spad  # noqa: E402
from simulators.tagger import FIFO_RECORDS  # noqa: E402
from spad.app.acquisition import Acquisition, AcquisitionSettings  # noqa: E402

OVERFLOW = np.uint32((1 << 31) | (63 << 25) | 1)
"""HydraHarp v2 T3 overflow record (special bit, channel 63, one overflow)."""


class LoopTagger(ReplayTagger):
    def __init__(self, source, block: np.ndarray, rate_hz: float, total: int) -> None:
        super().__init__(source, block, rate_hz)
        self._block = np.append(block, OVERFLOW)
        self._total, self.served = total, 0

    def read(self) -> np.ndarray | None:
        if self.served >= self._total:
            return None
        start = self.served % self._block.size
        end = min(start + FIFO_RECORDS, self._block.size)
        due = self._t0 + (self.served + end - start) / self._rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        self.served += end - start
        return self._block[start:end]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--rate", type=float, default=2e6)
    args = ap.parse_args()
    print(f"load: {os.getloadavg()}")
    source, block = _records(int(10 * 2e5))
    total = int(args.hours * 3600 * args.rate)
    tagger = LoopTagger(source, block, args.rate, total)
    rig = type("Rig", (), {"tagger": tagger, "camera": None, "spectrograph": None})()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "soak.h5"
        acq = Acquisition(rig, AcquisitionSettings(duration_s=1e9), path=path)
        rss0 = rss_mb()
        thread = threading.Thread(target=acq.run)
        t0 = time.perf_counter()
        thread.start()
        while thread.is_alive():
            thread.join(60)
            s = acq.snapshot()
            print(f"{(time.perf_counter() - t0) / 60:5.1f} min: RSS {rss_mb():.0f} MB "
                  f"(+{rss_mb() - rss0:.0f}), {s.photons} photons, served {tagger.served}",
                  flush=True)
        with spad.open(path) as reader:
            n_file = sum(len(c.timestamps) for c in reader.chunks())
        print(f"file holds {n_file} photons; the pipeline counted {acq.snapshot().photons}")
    print(f"load: {os.getloadavg()}")


if __name__ == "__main__":
    main()
