"""Recording time saved by ``--until-confident P`` against a fixed 60 s, and the accuracy of both.

Run: ``.venv/bin/python tests/benchmarks/bench_until_confident.py [--n 10] [--p 0.95]``

Simulates ``n`` monomers and ``n`` fused dimers (``spad simulate --vary``, 60 s each, seeds
1000+), replays each through the live pipeline of ``spad acquire`` (verdict every 1 s of
recording) and notes when the stop-when-sure rule (probability >= P for 3 consecutive updates,
g2(0) error <= 0.05) would have ended it, and the live verdict then; compares with the verdict
of the full 60 s (``spad analyze``, photon model as live). Prints the median recording time
and both accuracies against the simulated truth.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
from spad.analysis.particle import analyze_particle, classify_session

import spad
from spad.app.acquisition import AcquisitionSettings
from spad.app.acquisition.engine import LivePipeline
from spad.app.cli import main as spad_main


def stop_time(path: Path, p: float) -> tuple[float, str | None]:
    live = LivePipeline(AcquisitionSettings(until_confident=p))
    label = None
    with spad.open(path) as reader:
        for chunk in reader.chunks(n_records=1 << 17):
            live.feed(chunk)
            if live.due():
                label = live.update().get("verdict")
                if live.confident:
                    return live.elapsed_s, label
    return live.elapsed_s, label


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--p", type=float, default=0.95)
    ap.add_argument("--duration", type=float, default=60.0)
    args = ap.parse_args()
    print(f"load: {os.getloadavg()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("monomer", "dimer"):
            for i in range(args.n):
                seed = 1000 + i + (500 if kind == "dimer" else 0)
                path = Path(tmp) / f"{kind}_{seed}.h5"
                spad_main(["simulate", "--particle", kind, "--vary", "--seed", str(seed),
                           "--duration", str(args.duration), "--spectrum-s", "0", "-o",
                           str(path)])
                t, live_label = stop_time(path, args.p)
                r = analyze_particle(path)
                classify_session([r])
                full = r.classification.label
                rows.append((kind, t, live_label, full))
                print(f"{kind} seed {seed}: stop at {t:.0f} s ({live_label}); "
                      f"{args.duration:g} s: {full}", flush=True)
    times = np.array([r[1] for r in rows])
    acc_live = np.mean([r[0] == r[2] for r in rows])
    acc_full = np.mean([r[0] == r[3] for r in rows])
    print(f"{len(rows)} particles, P = {args.p}: median recording {np.median(times):.0f} s "
          f"(range {times.min():.0f}-{times.max():.0f} s) against {args.duration:g} s, "
          f"median saved {args.duration - np.median(times):.0f} s; accuracy "
          f"{acc_live:.0%} stopping when sure, {acc_full:.0%} at {args.duration:g} s")
    print(f"load: {os.getloadavg()}")


if __name__ == "__main__":
    main()
