"""Speed of change-point detection + level grouping and of IRF-convolved decay fits.

Run: ``.venv/bin/python tests/benchmarks/bench_blinking_lifetimes.py [particle.h5 ...]``. Prints
the best of a few runs after a warm-up call (numba compilation and critical values are one-off
costs, printed separately). Each file given (e.g. ``spad simulate --particle dimer --duration 60
--seed 4 --vary -o /tmp/blink_d4.h5``) gets the CPU time of each stage of ``analyse_blinking``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from spad.analysis.blinking import analyse_blinking
from spad.analysis.changepoints import find_change_points, levels_from_change_points
from spad.analysis.level_grouping import _adjacent_ahc, _poisson_mixture_em, group_levels
from spad.analysis.lifetimes import fit_decay
from spad.analysis.power_law import _ks_scan

NS = 1e-9


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def best_cpu(fn, repeat: int = 3) -> float:
    """Least CPU time (s) of a few calls: robust to other processes on the machine."""
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def stages(path: str) -> None:
    """CPU time of each stage of analyse_blinking on one particle's photons (all detectors)."""
    import spad  # noqa: PLC0415 - only needed for files

    with spad.open(path) as reader:
        chunks = list(reader.chunks())
    ts = np.concatenate([c.timestamps[c.detectors != 0] for c in chunks])
    t = np.sort(ts * chunks[0].timing.timestamp_unit, kind="stable")
    blink = analyse_blinking(t, 0.01, 0.99)  # warm-up (compilation, critical values)
    cps = find_change_points(t, 0.99)
    lv = levels_from_change_points(t, cps)
    n = lv.n_photons.astype(np.float64)
    d = np.maximum(lv.duration, np.finfo(float).tiny)
    order = np.argsort(n / d, kind="stable")
    ahc = _adjacent_ahc(n[order], d[order], 10)

    def em() -> None:
        for g in range(1, 11):
            labels = np.empty(n.size, dtype=np.int64)
            labels[order] = ahc[g - 1]
            _poisson_mixture_em(n, d, labels, g)

    dwells = [np.sort(blink.on_dwells), np.sort(blink.off_dwells)]
    figures = {
        "analyse_blinking": best_cpu(lambda: analyse_blinking(t, 0.01, 0.99)),
        "find_change_points": best_cpu(lambda: find_change_points(t, 0.99)),
        "group_levels": best_cpu(lambda: group_levels(lv, 10)),
        "  clustering": best_cpu(lambda: _adjacent_ahc(n[order], d[order], 10)),
        "  EM x10": best_cpu(em),
        "KS t_min scan x2": best_cpu(lambda: [_ks_scan(x, 0.0, 10) for x in dwells]),
    }
    print(f"{path}: {t.size} photons, {len(lv)} levels, {blink.n_states} states, "
          f"{dwells[0].size}/{dwells[1].size} ON/OFF dwells (CPU s, best of 3)")
    for name, sec in figures.items():
        print(f"  {name:22s} {sec:.3f}")


def blinking_stream(rng: np.random.Generator, total: float = 60.0) -> np.ndarray:
    """60 s of a blinking particle: ON 50 kcps / OFF 2 kcps, power-law dwells (alpha 1.5)."""
    out, t, on = [], 0.0, True
    while t < total:
        d = min(1e-3 * (1 - rng.random()) ** -2.0, 5.0, total - t)
        rate = 50e3 if on else 2e3
        out.append(t + np.sort(rng.random(rng.poisson(rate * d))) * d)
        t += d
        on = not on
    return np.concatenate(out)


def main() -> None:
    rng = np.random.default_rng(0)
    constant = np.cumsum(rng.exponential(1 / 50e3, 3_000_000))
    blinking = blinking_stream(rng)

    def cpa(t: np.ndarray) -> tuple[int, int]:
        cps = find_change_points(t, 0.95)
        g = group_levels(levels_from_change_points(t, cps))
        return cps.size, g.n_states

    t0 = time.perf_counter()
    cpa(constant[:10_000])
    print(f"first call (numba compile or cache load): {time.perf_counter() - t0:.2f} s")
    for name, t in (("constant 50 kcps", constant), ("blinking", blinking)):
        n_cp, n_states = cpa(t)
        s = best_of(lambda t=t: cpa(t))
        print(f"change points + grouping, {name}, {t.size:.2e} photons: {s:.3f} s "
              f"({n_cp} change points, {n_states} states)")
    t0 = time.perf_counter()
    find_change_points(constant[:100_000], 0.97)
    print(f"critical values simulated for an untabulated confidence (0.97): "
          f"{time.perf_counter() - t0:.2f} s, once per confidence and process")

    period, n_bins = 100 * NS, 2000
    edges = np.linspace(0, period, n_bins + 1)
    irf = np.histogram(5 * NS + rng.normal(0, 0.15 * NS, 200_000), edges)[0]
    for taus, fr in (([20 * NS], [1.0]), ([2 * NS, 20 * NS], [0.4, 0.6])):
        n_exp = len(taus)
        comp = rng.choice(len(taus), 100_000, p=fr)
        delay = (5 * NS + rng.normal(0, 0.15 * NS, comp.size)
                 + rng.exponential(np.asarray(taus)[comp])) % period
        counts = np.histogram(delay, edges)[0] + rng.poisson(0.5, n_bins)
        for irf_arg, label in ((irf, "measured IRF"), ("gaussian", "Gaussian IRF")):
            s = best_of(lambda c=counts, a=irf_arg, n=n_exp: fit_decay(c, edges, period, n,
                                                                      irf=a))
            r = fit_decay(counts, edges, period, n_exp, irf=irf_arg)
            taus_ns = ", ".join(f"{x / NS:.2f}" for x in r.taus)
            print(f"{n_exp}-exp fit, {label}, 1e5 photons, {n_bins} bins: {s * 1e3:.0f} ms "
                  f"(tau = {taus_ns} ns)")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        stages(arg)
    main()
