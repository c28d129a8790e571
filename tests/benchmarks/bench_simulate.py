"""Speed of the photon simulator and the simulated time tagger.

Run as a script: ``.venv/bin/python tests/benchmarks/bench_simulate.py``. Prints

1. a 60 s blinking monomer at ~50 kcps detected, simulated and encoded to HydraHarp T3 records
   (goal: < 3 s on one core, i.e. >= 20x real time);
2. the simulated tagger's record output for a very bright configuration (80 MHz laser,
   <N> = 2, 50 % detection, no blinking, ~25 Mcps after dead time; goal: >= 10 M detected
   photons per second).

Compilation is excluded (a short warm-up first). Each figure is the best of ``REPEATS`` runs,
as wall-clock time and as this process's CPU time (the simulator is single-threaded, so on a
busy shared machine the CPU time is the fairer number).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from spad.simulators.detection import Detection
from spad.simulators.emitter import monomer
from spad.simulators.stream import simulate
from spad.simulators.tagger import SimulatedTagger

REPEATS = 3


def _best(run: Callable[[int], int]) -> tuple[float, float, int]:
    """Best wall and CPU seconds of ``run(seed)`` over the repeats, and its last result."""
    wall = cpu = float("inf")
    result = 0
    for seed in range(REPEATS):
        w, c = time.perf_counter(), time.process_time()
        result = run(seed)
        wall = min(wall, time.perf_counter() - w)
        cpu = min(cpu, time.process_time() - c)
    return wall, cpu, result


def bench_monomer(duration_s: float = 60.0) -> None:
    det = Detection(collection_efficiency=0.27)  # ~53 kcps ON, ~47-52 kcps on average
    for _ in simulate(monomer(), det, 0.5, seed=0).records():
        pass  # compile

    def run(seed: int) -> int:
        sim = simulate(monomer(), det, duration_s, seed=seed, chunk_s=1.0)
        n_words = sum(w.size for w in sim.records())
        return sum(sim.counts["registered"]) if n_words else 0

    wall, cpu, n = _best(run)
    print(f"monomer {duration_s:g} s at {n / duration_s / 1e3:.1f} kcps detected, simulated + "
          f"HydraHarp2T3 records: {wall:.2f} s wall ({duration_s / wall:.0f}x real time), "
          f"{cpu:.2f} s CPU ({duration_s / cpu:.0f}x)")


def bench_tagger(duration_s: float = 1.0) -> None:
    bright = monomer(blinking=False, rep_rate_hz=80e6, mean_excitations=2.0)
    det = Detection(collection_efficiency=1.0, detector_efficiency=0.5)

    def run(seed: int, duration: float = duration_s) -> int:
        tagger = SimulatedTagger(bright, det, seed=seed)
        tagger.open()
        tagger.configure("T3", binning=0)  # 1 ps bins: 12.5 ns period = 12500 bins
        tagger.start(duration)
        while tagger.read() is not None:
            pass
        return sum(tagger.simulation.counts["registered"])

    run(0, 0.02)  # compile
    wall, cpu, n = _best(run)
    print(f"simulated tagger, 80 MHz bright emitter, T3: {n / duration_s / 1e6:.1f} Mcps "
          f"detected; records for {duration_s:g} s in {wall:.2f} s wall = {n / wall / 1e6:.1f} M "
          f"photons/s, {cpu:.2f} s CPU = {n / cpu / 1e6:.1f} M photons/s")


if __name__ == "__main__":
    bench_monomer()
    bench_tagger()
