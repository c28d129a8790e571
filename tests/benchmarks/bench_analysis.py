"""Speed of analyze_photons on a 60 s, 50 kcps simulated monomer (~3e6 photons), one core.

    .venv/bin/python tests/benchmarks/bench_analysis.py [--profile]

Prints the wall and CPU time (``time.process_time``; the machine may be shared) of the best of
three runs after a warm-up run (numba compilation), and with ``--profile`` the top of a
cProfile of one run. Target: < 1 s.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

from analysis.photon_analysis import analyze_photons  # noqa: E402
from simulators.stream import simulate  # noqa: E402
from spad.commands.simulate import build  # noqa: E402


def main() -> None:
    emitters, detection = build("monomer", 3, count_rate=50e3)
    photons = simulate(emitters, detection, 60.0, 3, chunk_s=1.0).run()
    print(f"photons: {len(photons):,} (incl. all detectors) over 60 s")
    analyze_photons(photons)  # compile
    walls, cpus = [], []
    for _ in range(3):
        w0, c0 = time.perf_counter(), time.process_time()
        res = analyze_photons(photons)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    print(f"analyze_photons: wall {min(walls):.2f} s, cpu {min(cpus):.2f} s (best of 3); "
          f"g2(0) {res.g2_zero:.3f} +/- {res.g2_zero_err:.3f}, ON lifetime "
          f"{res.lifetime_ns:.1f} ns")
    if "--profile" in sys.argv:
        prof = cProfile.Profile()
        prof.runcall(analyze_photons, photons)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
