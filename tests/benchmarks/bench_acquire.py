"""Throughput of the live acquisition pipeline, and its CPU use at 1 M photons/s.

Run: ``.venv/bin/python tests/benchmarks/bench_acquire.py [--photons N]``

The records come from the simulated HydraHarp (:class:`spad.simulators.tagger.SimulatedTagger`,
a bright dimer), generated once beforehand and then served FIFO read by FIFO read (131072
records) by a tagger that replays them, so that the figure is the pipeline's and not the photon
simulator's (which makes ~3 M records/s). Each run is the whole :class:`Acquisition` as
``spad acquire`` runs it: decode, accumulators, Photon-HDF5 writing with flushes, and the live
analysis in its worker thread.

1. As fast as possible: photons / wall time.
2. Paced at 1 M photons/s of wall time for 20 s: process CPU time / wall time (1.0 = one core
   busy; the machine has 2).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from spad.drivers.interfaces.tagger import TimeTagger
from spad.simulators.tagger import FIFO_RECORDS

from spad.app.acquisition import Acquisition, AcquisitionSettings
from spad.app.acquisition.simrig import simulated_rig


class ReplayTagger(TimeTagger):
    """Serves pre-generated records of another tagger, optionally at a fixed photon rate."""

    name = "replayed simulated HydraHarp"

    def __init__(self, source: TimeTagger, words: np.ndarray, rate_hz: float | None = None):
        self._src, self._words, self._rate = source, words, rate_hz
        self._pos, self._t0, self._running = 0, 0.0, False

    n_channels = property(lambda self: self._src.n_channels)
    base_resolution_s = property(lambda self: self._src.base_resolution_s)
    config = property(lambda self: self._src.config)
    timing = property(lambda self: self._src.timing)
    record_type = property(lambda self: self._src.record_type)
    running = property(lambda self: self._running)

    def open(self) -> None:
        pass

    def close(self) -> None:
        self._running = False

    def is_opened(self) -> bool:
        return True

    def configure(self, *a, **k):  # noqa: ANN002, ANN003, ANN201
        return self._src.configure(*a, **k)

    def start(self, duration_s: float) -> None:
        self._pos, self._t0, self._running = 0, time.perf_counter(), True

    def read(self) -> np.ndarray | None:
        if self._pos >= self._words.size:
            self._running = False
            return None
        end = min(self._pos + FIFO_RECORDS, self._words.size)
        if self._rate:
            due = self._t0 + end / self._rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        out = self._words[self._pos:end]
        self._pos = end
        return out

    def stop(self) -> None:
        self._running = False

    def sync_rate_hz(self) -> float:
        return self._src.sync_rate_hz()

    def count_rates_hz(self) -> list[float]:
        return self._src.count_rates_hz()


def _records(n: int, count_rate: float | None = None) -> tuple[TimeTagger, np.ndarray]:
    with simulated_rig("dimer", seed=1, realtime=False, camera=False, vary=False,
                       count_rate=count_rate) as rig:
        tagger = rig.tagger
        tagger.start(1e6)
        parts, total = [], 0
        while total < n and (w := tagger.read()) is not None:
            parts.append(w.copy())
            total += w.size
        tagger.stop()
    return tagger, np.concatenate(parts)[:n]


def _run(source: TimeTagger, words: np.ndarray, rate: float | None, folder: Path,
         name: str) -> tuple[float, float, int, float, float]:
    rig = type("Rig", (), {"tagger": ReplayTagger(source, words, rate), "camera": None,
                           "spectrograph": None})()
    settings = AcquisitionSettings(duration_s=1e6)
    acq = Acquisition(rig, settings, path=folder / f"{name}.h5")
    w0, c0 = time.perf_counter(), time.process_time()
    last = [w0, c0]

    def note(ev: object) -> None:          # CPU and wall time at the last live update
        if ev.kind == "progress":
            last[:] = [time.perf_counter(), time.process_time()]

    acq.add_callback(note)
    out = acq.run()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    global RECORDING_CPU
    RECORDING_CPU = (last[1] - c0) / max(last[0] - w0, 1e-9)
    return wall, cpu, out.state.photons, out.state.elapsed_s, out.recording_wall_s


RECORDING_CPU = 0.0
"""Cores used by this process while recording (up to the last live update) in the last run."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--photons", type=float, default=20e6)
    args = ap.parse_args()
    print(f"load: {os.getloadavg()}")
    t = time.perf_counter()
    source, words = _records(int(args.photons))
    print(f"generated {words.size} records from the simulated tagger in "
          f"{time.perf_counter() - t:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _run(source, words[:FIFO_RECORDS * 8], None, folder, "warm")   # compile, caches
        wall, cpu, n, span, rec = _run(source, words, None, folder, "fast")
        print(f"as fast as possible: {n} photons ({span:.0f} s of recording) recorded in "
              f"{rec:.2f} s = {n / rec / 1e6:.1f} M photons/s; then the final analysis: "
              f"{wall - rec:.1f} s; CPU of this process {cpu:.1f} s = "
              f"{n / cpu / 1e6:.1f} M photons per CPU second (live fits run in the worker)")
        n1 = min(words.size, 20_000_000)
        wall, cpu, n, span, rec = _run(source, words[:n1], 1e6, folder, "paced")
        print(f"paced at 1 M records/s: {n} photons recorded in {rec:.1f} s; CPU of this "
              f"process while recording {RECORDING_CPU:.2f} cores = {RECORDING_CPU * 50:.0f} % "
              f"of the 2-core machine (the live fits' worker process comes on top)")
    print(f"load: {os.getloadavg()}")


if __name__ == "__main__":
    main()
