"""Speed of analyze_photons on a 60 s, 50 kcps simulated monomer (~3e6 photons), one core.

    .venv/bin/python tests/benchmarks/bench_analysis.py [--profile]

Prints the wall and CPU time (``time.process_time``; the machine may be shared) of the best of
three runs after a warm-up run (numba compilation), the CPU time of the main stages (best of
three, each stage run alone on the same photons), and with ``--profile`` the top of a cProfile
of one run. Target: < 1 s.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from spad.analysis.blinking import analyse_blinking  # noqa: E402
from spad.analysis.lifetimes import fit_decay, fit_states, state_decay_histograms  # noqa: E402
from spad.analysis.photon_analysis import analyze_photons  # noqa: E402
from spad.analysis.photon_collector import PhotonCollector  # noqa: E402
from spad.simulators.recipe import build  # noqa: E402
from spad.simulators.stream import simulate  # noqa: E402


def _cpu(fn: Callable[[], Any]) -> float:
    """Best CPU time of three calls (after one warm-up call)."""
    fn()
    best = np.inf
    for _ in range(3):
        c0 = time.process_time()
        fn()
        best = min(best, time.process_time() - c0)
    return best


def stages(photons: Any, res: Any) -> None:
    """CPU time of the stages the issue named, on the photons of this run."""
    collector = PhotonCollector((1, 2))
    collector.update(photons)
    pl = collector.result()
    times_all = pl.times_s()
    order = np.argsort(times_all, kind="stable")
    times = times_all[order]
    delays = pl.delays[order] * pl.delay_unit_s
    period = res.sync_period_s
    # the decay exactly as analyze_photons fitted it (detectors aligned, one period)
    counts, edges = res.decay_fitted, res.decay_fitted_edges_s
    b = res.blinking
    on = b.level_on.astype(np.int64)
    figures = {
        "times + stable argsort": lambda: np.argsort(pl.times_s(), kind="stable"),
        "analyse_blinking": lambda: analyse_blinking(times, bin_width=0.010, confidence=0.99),
        "fit_decay (2 exp, whole decay)": lambda: fit_decay(counts, edges, period, n_exp=2),
        "state_decay_histograms": lambda: state_decay_histograms(
            times, delays, edges, b.level_start, b.level_end, on),
        "fit_states (incl. histograms)": lambda: fit_states(
            times, delays, edges, period, b.level_start, b.level_end, on, n_exp=1,
            irf="gaussian"),
    }
    for name, fn in figures.items():
        print(f"  {name:32s} cpu {_cpu(fn):.3f} s")


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
          f"{res.lifetime_ns:.2f} +/- {res.lifetime_err_ns:.2f} ns, whole-decay lifetime "
          f"{res.lifetime_all_ns:.2f} +/- {res.lifetime_all.tau_intensity_mean_err * 1e9:.2f} ns")
    print("stages:")
    stages(photons, res)
    if "--profile" in sys.argv:
        prof = cProfile.Profile()
        prof.runcall(analyze_photons, photons)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
