"""Benchmark: what the correlogram fit and the classifier add to the analysis of a 60 s particle.

Simulates one fused dimer for 60 s (T3, 40 MHz laser, 25 ns bright-state decay so that the
coincidence peaks overlap and g2(0) comes from the correlogram fit; 20 kcps, 5 % background),
writes its particle file and times, as a user calls the code:

- the whole analysis, ``spad.analysis.particle.analyze_particle`` (what ``spad analyze`` runs);
- inside it, the correlogram fit with the peak shape from the measured delay histograms
  (``spad.analysis.g2_fit.measured_shape`` + ``fit_correlogram``) and with the fitted
  exponential shape (T2 without sync; in T3 it is run too, as the check that the measured
  shape fits at least as well);
- the verdict, ``spad.analysis.particle.classify_session`` on the one particle (the
  classifier; the session mixture needs several particles and is skipped for one).

Wall and CPU times are printed (best of ``--repeat``); nothing is asserted. The target of
issue 19: the fit and the classifier add at most 0.1 s.

Run: ``.venv/bin/python tests/benchmarks/bench_verdict.py [--repeat N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any


def timed(fn: Any, repeat: int) -> tuple[float, float, Any]:
    """Best wall and CPU seconds of ``repeat`` calls, and the last result."""
    best_wall, best_cpu, out = float("inf"), float("inf"), None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        best_wall = min(best_wall, time.perf_counter() - w)
        best_cpu = min(best_cpu, time.process_time() - c)
    return best_wall, best_cpu, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()

    from spad.analysis.g2 import decay_rows
    from spad.analysis.g2_fit import fit_correlogram, floor_rate, measured_shape
    from spad.analysis.particle import analyze_particle, classify_session
    from spad.simulators.stream import simulate

    from spad.app.calibrate import build_particle
    from spad.particle import write_particle

    cond = {"rate_cps": 20e3, "duration_s": 60.0, "rep_rate_hz": 40e6, "lifetime_ns": 25.0,
            "background": 0.05, "irf_fwhm_s": 200e-12, "mode": "T3"}
    emitter, detection = build_particle("dimer", a.seed, cond)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "dimer.h5"
        t0 = time.perf_counter()
        sim = simulate(emitter, detection, cond["duration_s"], a.seed, chunk_s=1.0)
        write_particle(path, sim.chunks(), sim.timing, None, {"particle": "dimer"},
                       description="bench_verdict", overwrite=True)
        print(f"simulated 60 s dimer in {time.perf_counter() - t0:.1f} s")
        analyze_particle(path)   # compile the numba kernels and warm caches once
        wall, cpu, result = timed(lambda: analyze_particle(path), a.repeat)
    ph = result.photons
    print(f"photons {ph.n_photons}, g2(0) = {ph.g2_zero} +/- {ph.g2_zero_err}, "
          f"lifetime {ph.lifetime_all_ns} ns")
    print(f"whole analysis (analyze_particle):       wall {wall:7.3f} s  cpu {cpu:7.3f} s")

    g = ph.g2_analysis
    period, centre = g.period_s, g.zero.lag_s
    corr, decay = ph.correlation, ph.decay
    floor = floor_rate(corr, None)
    tau = ph.lifetime_all_ns * 1e-9

    def measured() -> Any:
        h_a, h_b, w_d = decay_rows(decay, corr.det_a, corr.det_b)
        shape = measured_shape(h_a, h_b, w_d, period, tau)
        return fit_correlogram(corr, period, centre, floor, tau, shape)

    w_m, c_m, fit_m = timed(measured, a.repeat)
    w_e, c_e, fit_e = timed(lambda: fit_correlogram(corr, period, centre, floor, None),
                            a.repeat)
    print(f"correlogram fit, measured peak shape:    wall {w_m:7.3f} s  cpu {c_m:7.3f} s  "
          f"(g2 {fit_m.g2:.3f} +/- {fit_m.g2_err:.3f})")
    print(f"correlogram fit, exponential shape:      wall {w_e:7.3f} s  cpu {c_e:7.3f} s  "
          f"(g2 {fit_e.g2:.3f} +/- {fit_e.g2_err:.3f})")
    w_c, c_c, _ = timed(lambda: classify_session([result]), a.repeat)
    c = result.classification
    print(f"verdict (classify_session, 1 particle):  wall {w_c:7.3f} s  cpu {c_c:7.3f} s  "
          f"({c.label}, P(dimer) = {c.p_dimer:.3f})")
    # the analysis runs both fits where the peaks overlap: the exponential one checks that
    # the measured shape describes the correlogram at least as well
    added = w_m + w_e + w_c
    print(f"fits + verdict, as the analysis runs them: {added:.3f} s wall of {wall:.3f} s "
          f"({100 * added / wall:.1f} %); target <= 0.1 s")


if __name__ == "__main__":
    main()
