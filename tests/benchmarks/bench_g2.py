"""Benchmark: exact cross-correlation (analysis.accumulators.CrossCorrelation) vs tttrlib.

Both correlate the same 5 M photons (two detectors, 2.5 M each) of a pulsed single-emitter-like
stream (5 MHz laser, 50 kcps detected, 20 ns decay) over +/- 500 ns in 1 ns bins.

tttrlib's ``Correlator`` with method ``'felekyan'``, ``n_casc=1`` and ``n_bins=500`` counts
pairs at integer lags 0..500 of its integer macrotimes, for positive lags only; it is run twice
(a->b and b->a) to get the negative lags. For it the times are given in whole nanoseconds, and
for the comparison ours gets the same nanosecond-quantised stream (a T2 stream with a 1 ns
tick and 1 ns bins centred on the integer lags), so both histograms must agree bin for bin.
Ours is also timed on the picosecond stream (1 ps ticks, 1 ns bins), fed in 1 M-photon chunks.

Run: ``.venv/bin/python tests/benchmarks/bench_g2.py [--photons N] [--rate HZ]``.
tttrlib is a benchmark-only dependency (``pip install tttrlib``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from spad.analysis.accumulators import CrossCorrelation

from spad.photons import PhotonChunk, Timing


def make_stream(n: int, rate_hz: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Picosecond times (sorted int64) and detectors (1/2) of a pulsed emitter."""
    rng = np.random.default_rng(seed)
    period_ps = 200_000  # 5 MHz
    n_pulses = int(n / rate_hz * 5e6)
    pulses = np.sort(rng.integers(0, n_pulses, n))
    t = pulses * period_ps + rng.exponential(20_000, n).astype(np.int64) + 1_000
    t.sort()
    det = rng.integers(1, 3, n).astype(np.uint8)
    return t, det


def ours(times: np.ndarray, det: np.ndarray, timing: Timing, chunk: int
         ) -> tuple[float, np.ndarray]:
    acc = CrossCorrelation(1, 2, max_lag_s=500e-9, bin_width_s=1e-9)
    t0 = time.perf_counter()
    for a in range(0, times.size, chunk):
        acc.update(PhotonChunk(timing, times[a:a + chunk], det[a:a + chunk]))
    counts = acc.result().counts
    return time.perf_counter() - t0, counts


def tttrlib_both_ways(t_ns: np.ndarray, det: np.ndarray) -> tuple[float, np.ndarray]:
    import tttrlib

    ta = t_ns[det == 1].astype(np.uint64)
    tb = t_ns[det == 2].astype(np.uint64)
    t0 = time.perf_counter()
    halves = []
    for first, second in ((ta, tb), (tb, ta)):
        c = tttrlib.Correlator(method="felekyan", n_bins=500, n_casc=1)
        # set_events, not set_macrotimes + set_weights: in tttrlib 0.26.2 the latter pair
        # corrupts the heap ("malloc(): corrupted top size") above ~1 M events
        c.set_events(first, np.ones(first.size), second, np.ones(second.size))
        halves.append(np.asarray(c.get_corr())[:501].astype(np.int64))
    elapsed = time.perf_counter() - t0
    # lags -500..-1 from b->a (reversed), 0..500 from a->b
    return elapsed, np.concatenate((halves[1][1:][::-1], halves[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photons", type=int, default=5_000_000)
    parser.add_argument("--rate", type=float, default=50e3, help="detected rate in Hz")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    t_ps, det = make_stream(args.photons, args.rate)
    t_ns = t_ps // 1000
    n = t_ps.size
    print(f"{n:,} photons ({np.count_nonzero(det == 1):,} + {np.count_nonzero(det == 2):,}), "
          f"{args.rate / 1e3:g} kcps, {t_ps[-1] * 1e-12:.1f} s; +/- 500 ns in 1 ns bins")

    ns_timing = Timing("T2", 1e-9)
    ps_timing = Timing("T2", 1e-12)
    ours(t_ns[:1000], det[:1000], ns_timing, n)  # compile outside the timing
    best = {}
    for name, fn in (("ours, ns stream, one chunk", lambda: ours(t_ns, det, ns_timing, n)),
                     ("ours, ps stream, 1 M chunks", lambda: ours(t_ps, det, ps_timing,
                                                                  1_000_000)),
                     ("tttrlib felekyan x2, ns stream", lambda: tttrlib_both_ways(t_ns, det))):
        try:
            runs = [fn() for _ in range(args.repeat)]
        except ImportError as exc:
            print(f"{name}: not run ({exc}); pip install tttrlib")
            continue
        best[name] = min(r[0] for r in runs), runs[0][1]
        sec = best[name][0]
        print(f"{name:34s} {sec * 1e3:9.1f} ms  {n / sec / 1e6:8.1f} M photons/s  "
              f"{best[name][1].sum():,} pairs")

    mine = best["ours, ns stream, one chunk"]
    if "tttrlib felekyan x2, ns stream" in best:
        theirs = best["tttrlib felekyan x2, ns stream"]
        print(f"throughput ratio ours / tttrlib: {theirs[0] / mine[0]:.1f}x")
        diff = mine[1] - theirs[1]
        print(f"histograms (ns stream, lags -500..500 ns): {np.count_nonzero(diff)} of "
              f"{diff.size} bins differ, max |difference| {np.abs(diff).max()}")


if __name__ == "__main__":
    main()
