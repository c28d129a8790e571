"""Soak: a long simulated acquisition at 2 M photons/s — resident memory and photons kept.

Run: ``make soak`` (one hour) or ``.venv/bin/python tests/benchmarks/soak_acquire.py
--hours 0.02``.

A block of records from the simulated tagger (a bright dimer, 400 kcps, with its sync counts
divided so that it holds 2 M photons per second of recorded time: the recorded time runs as
fast as the wall clock, as at the microscope) is served again and again, each repetition
closed by an overflow record so that time keeps increasing, at 2 M records/s of wall time
(FIFO reads of 131072 records), to the whole :class:`Acquisition` (decode, accumulators,
Photon-HDF5 writing with ``compress`` — an hour uncompressed is 79 GB —, live analysis in its
worker). Prints the resident memory every minute: the figure is its growth from the first
minute (by then the live photon list has passed its budget and been let go) to the end, with
the peak. At the end the recording is aborted (the final analysis of billions of photons is
the windowed path that bench_memory measures) and the photons in the file are counted against
the photons served.
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
import h5py  # noqa: E402
from bench_acquire import ReplayTagger, _records  # noqa: E402
from spad.simulators.tagger import FIFO_RECORDS  # noqa: E402

from spad.app.acquisition import Acquisition, AcquisitionSettings  # noqa: E402
from spad.app.memory import fix_mmap_threshold  # noqa: E402
from spad.formats.records import Decoder, encode  # noqa: E402

OVERFLOW = np.uint32((1 << 31) | (63 << 25) | 1)
"""HydraHarp v2 T3 overflow record (special bit, channel 63, one overflow)."""


class LoopTagger(ReplayTagger):
    """Serves ``block`` (then one overflow record) again and again at ``rate_hz`` records/s
    of wall time until ``total`` records, then nothing more (the soak aborts)."""

    def __init__(self, source, block: np.ndarray, rate_hz: float, total: int) -> None:
        super().__init__(source, block, rate_hz)
        self._block = np.append(block, OVERFLOW)
        self._total, self.served = total, 0

    @property
    def done(self) -> bool:
        return self.served >= self._total

    def read(self) -> np.ndarray | None:
        if self.done:
            time.sleep(0.01)
            return self._block[:0]
        start = self.served % self._block.size
        end = min(start + FIFO_RECORDS, self._block.size, start + self._total - self.served)
        due = self._t0 + (self.served + end - start) / self._rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        self.served += end - start
        return self._block[start:end]

    def photons_served(self) -> int:
        """Photon records among those served (the overflow records are not photons)."""
        is_photon = self._block != OVERFLOW
        per_block = int(np.count_nonzero(is_photon))
        full, rest = divmod(self.served, self._block.size)
        return full * per_block + int(np.count_nonzero(is_photon[:rest]))


def block_at(rate: float) -> tuple[object, np.ndarray]:
    """Records of a 400 kcps dimer with time divided so as to hold ``rate`` photons/s on
    average."""
    source, words = _records(int(4e6), count_rate=4e5)
    chunk = Decoder(source.record_type, source.timing).decode(words)
    span_s = float(chunk.timestamps[-1] - chunk.timestamps[0]) * chunk.timing.timestamp_unit
    k = rate / (len(chunk) / span_s)  # the dimer blinks: its mean rate is below 400 kcps
    fast = type(chunk)(chunk.timing, (chunk.timestamps / k).astype(np.int64),
                       chunk.detectors, chunk.nanotimes)
    return source, encode(fast, source.record_type)


def status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    return status_mb("VmRSS")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--rate", type=float, default=2e6)
    ap.add_argument("--no-compress", action="store_true", help="photons uncompressed (11 B each)")
    ap.add_argument("--dir", default=None, help="folder of the file (default: a temporary one)")
    args = ap.parse_args()
    print(f"load: {os.getloadavg()}")
    # as `spad acquire` and `spad gui` do (spad.app.cli.main)
    print(f"glibc mmap threshold fixed: {fix_mmap_threshold()}")
    source, block = block_at(args.rate)
    total = int(args.hours * 3600 * args.rate)
    tagger = LoopTagger(source, block, args.rate, total)
    rig = type("Rig", (), {"tagger": tagger, "camera": None, "spectrograph": None})()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "soak.h5"
        settings = AcquisitionSettings(duration_s=1e9, compress=not args.no_compress)
        acq = Acquisition(rig, settings, path=path)
        rss0, rss1 = rss_mb(), None
        print(f"before: RSS {rss0:.0f} MB", flush=True)
        thread = threading.Thread(target=acq.run)
        t0 = time.perf_counter()
        thread.start()
        next_print = 60.0
        while not tagger.done and thread.is_alive():
            time.sleep(1)
            t = time.perf_counter() - t0
            if t >= next_print:
                next_print += 60
                rss = rss_mb()
                rss1 = rss if rss1 is None else rss1
                s = acq.snapshot()
                print(f"{t / 60:5.1f} min: RSS {rss:.0f} MB (+{rss - rss1:.0f} since 1 min), "
                      f"{s.photons} photons, {s.elapsed_s:.0f} s recorded, "
                      f"{tagger.served} records served", flush=True)
        wall = time.perf_counter() - t0
        end_rss = rss_mb()
        acq.abort()
        thread.join()
        served = tagger.photons_served()
        with h5py.File(path, "r") as f:
            n_file = f["photon_data/timestamps"].shape[0]
        print(f"{wall / 60:.1f} min at {served / wall / 1e6:.2f} M photons/s: RSS at 1 min "
              f"{rss1} MB, at the end {end_rss:.0f} MB, peak {status_mb('VmHWM'):.0f} MB")
        print(f"file: {n_file} photons, {path.stat().st_size / max(n_file, 1):.2f} B/photon; "
              f"served {served}; pipeline counted {acq.snapshot().photons}"
              f" -> {'every photon kept' if n_file == served else 'PHOTONS MISSING'}")
    print(f"load: {os.getloadavg()}")


if __name__ == "__main__":
    main()
