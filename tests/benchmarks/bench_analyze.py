"""Speed of ``spad analyze`` on a session of particles (issue 5: 100 x 60 s in < 60 s).

Run as a script from the repository root::

    .venv/bin/python tests/benchmarks/bench_analyze.py [--n 100] [--duration 60] [--dir DIR]

Simulates ``n`` particle files (half monomers, half fused dimers, ``--vary``, 10-50 kcps) into
DIR (kept, so a second run skips the simulation), then times the command exactly as a user runs
it, ``spad analyze DIR/*.h5 --json`` with its default of one worker per core, as a subprocess
(wall time, including start-up and numba cache loading), and prints the accuracy of the verdicts
against the files' ground truth.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

BIN = Path(sys.executable).parent


def simulate(folder: Path, n: int, duration: float) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        kind = "monomer" if i % 2 == 0 else "dimer"
        path = folder / f"{kind}_{i:03d}.h5"
        paths.append(path)
        if path.exists():
            continue
        rate = float(np.exp(np.random.default_rng([i, 5]).uniform(np.log(10e3), np.log(50e3))))
        subprocess.run([BIN / "spad", "simulate", "--particle", kind, "--duration",
                        str(duration), "--seed", str(5000 + i), "--vary", "--count-rate",
                        f"{rate:.0f}", "-o", str(path)], check=True, stdout=subprocess.DEVNULL)
    return paths


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/spad_bench_analyze"))
    a = ap.parse_args()
    t0 = time.perf_counter()
    paths = simulate(a.dir, a.n, a.duration)
    print(f"{len(paths)} particle files ready in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    out = subprocess.run([BIN / "spad", "analyze", *map(str, paths), "--json"],
                         check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    recs = [json.loads(line) for line in out.stdout.splitlines()]
    right = 0
    for r in recs:
        with h5py.File(r["file"], "r") as f:
            truth = f["user/ground_truth/particle"][()].decode()
        right += r["classification"]["label"] == truth
    print(f"spad analyze on {len(recs)} files of {a.duration:g} s: {wall:.1f} s wall "
          f"({wall / len(recs):.2f} s per file, {os.cpu_count()} cores); "
          f"verdicts right: {right}/{len(recs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
