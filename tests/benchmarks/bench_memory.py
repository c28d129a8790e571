"""Peak resident memory of ``spad simulate``, ``spad convert`` and ``spad analyze`` on a large
recording, end to end as a user runs them (figures printed, nothing asserted).

    python tests/benchmarks/bench_memory.py [--photons 5e8] [--folder /tmp/spad-bench-memory]

The recording is built by ``spad simulate`` (a monomer at ~30 kcps: 5e8 photons is ~4.6 h of
measurement, ~5.5 GB of Photon-HDF5) on the first run and reused afterwards. Each command runs
in its own process; its peak RSS is the child's ``ru_maxrss``. The goal (issue 13): under 2 GB
for 5e8 photons. Run on an idle machine: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

SPAD = str(Path(sys.executable).with_name("spad"))
RATE_CPS = 30e3  # detected rate of the default monomer, both detectors (approximately)


def peak(argv: list[str]) -> tuple[float, float, int]:
    """Run ``argv`` in a fresh process: (peak RSS in MB, wall seconds, exit code)."""
    code = ("import resource, subprocess, sys, time; t = time.monotonic(); "
            "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
            "time.monotonic() - t, rc)")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]) / 1024, float(out[1]), int(out[2])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photons", type=float, default=5e8)
    p.add_argument("--folder", type=Path, default=Path("/tmp/spad-bench-memory"))
    args = p.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    duration = args.photons / RATE_CPS
    src = args.folder / f"monomer_{args.photons:.0e}.h5"
    print(f"load average {os.getloadavg()}, {os.cpu_count()} cores")
    if not src.exists():
        rss, wall, rc = peak([SPAD, "simulate", "--duration", f"{duration:.0f}", "--seed", "1",
                              "-o", str(src)])
        print(f"simulate  {duration:8.0f} s of photons: peak RSS {rss:7.0f} MB, {wall:6.0f} s, "
              f"exit {rc}, file {src.stat().st_size / 1e9:.2f} GB")
    out = args.folder / "converted.ptu"
    rss, wall, rc = peak([SPAD, "convert", str(src), str(out)])
    print(f"convert   -> PTU: peak RSS {rss:7.0f} MB, {wall:6.0f} s, exit {rc}")
    out.unlink(missing_ok=True)
    rss, wall, rc = peak([SPAD, "analyze", str(src), "--jobs", "1", "--json"])
    print(f"analyze   peak RSS {rss:7.0f} MB, {wall:6.0f} s, exit {rc}")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
