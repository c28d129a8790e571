"""The four latency figures of issue 21, each against its target (nothing asserted: the times
depend on the machine and its load; run it on a quiet one).

    .venv/bin/python tests/benchmarks/bench_latency.py [--only 1 2 3 4] [--repeat N]

1. the whole analysis of a 60 s particle in process (``analyze_photons``, after a warm-up
   run that compiles or loads the kernels): target <= 0.4 s;
2. ``spad analyze`` of a 30 s particle, the whole command (imports included), compile cache
   warm: target < 1 s;
3. ``spad info`` of a PTU file (the public v20_t3.ptu), the whole command: target < 0.3 s;
4. the first ``spad analyze`` after an install: the same command with an empty numba cache
   (``NUMBA_CACHE_DIR`` pointed at an empty folder): target < 5 s.

Figures are the best wall time of ``--repeat`` runs (default 3; figure 4 is run once, as a
second run would find its cache), with the CPU time of the same run (the machine's load shows
as wall time above CPU time). The particles are simulated into a temporary folder.

``--kernels`` breaks figure 4 down: the same first ``spad analyze`` in a child process that
times every numba compilation it starts (CPU seconds, nested compilations counted in the kernel
that needed them), printed worst first. There the kernels all compile in that one process
(:mod:`spad.analysis.kernels_warmup` forks no second one), so the sum is the compile CPU of
both processes of the real first run. Then the real first run once more, with the CPU time
of each of its two processes: the analysing one before the fork and in all, the compiling
child's, and how long the analysis waited for the child's kernels (wall time). The shares are
balanced (``kernels_warmup.CHILD_SHARE``) when the child ends about as the analysis does and
the waits are short.

``--imports`` breaks figure 2 down: the same ``spad analyze`` under ``python -X importtime``,
the import time of each package summed over its modules (scipy's and spad's by sub-package),
largest first.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PTU = HERE.parent / "data" / "picoquant-sample-data" / "v20_t3.ptu"
SPAD = str(Path(sys.executable).with_name("spad"))
TARGETS = {1: 0.4, 2: 1.0, 3: 0.3, 4: 5.0}
NAMES = {1: "whole analysis of a 60 s particle, in process",
         2: "spad analyze of a 30 s particle",
         3: "spad info of a PTU file",
         4: "first spad analyze (empty compile cache)"}


CPU: dict[int, float] = {}
"""CPU seconds (user + system) of the run whose wall time is reported, by figure."""


def _command(args: list[str], repeat: int, env: dict[str, str] | None = None
             ) -> tuple[float, float]:
    """Best wall time of ``repeat`` runs of ``spad args`` and that run's CPU time."""
    best, cpu = float("inf"), float("nan")
    for _ in range(repeat):
        before = os.times()
        t0 = time.perf_counter()
        subprocess.run([SPAD, *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=env)
        wall = time.perf_counter() - t0
        after = os.times()
        if wall < best:
            best = wall
            cpu = (after.children_user - before.children_user
                   + after.children_system - before.children_system)
    return best, cpu


KERNEL_TIMER = """
import sys, time
import numba.core.dispatcher as dispatcher

spent, depth = {}, [0]
compile_ = dispatcher.Dispatcher.compile


def timed(self, sig):
    depth[0] += 1
    t0 = time.process_time()
    try:
        return compile_(self, sig)
    finally:
        depth[0] -= 1
        if depth[0] == 0:
            f = self.py_func
            key = f.__module__ + "." + f.__qualname__
            spent[key] = spent.get(key, 0.0) + time.process_time() - t0


dispatcher.Dispatcher.compile = timed
import spad.analysis.kernels_warmup as warmup
warmup._can_fork = lambda: False   # all in this process, where they are timed
from spad.app.cli import main
try:
    main(sys.argv[1:])
finally:
    for key, t in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"{t:6.2f} s  {key}")
    print(f"{sum(spent.values()):6.2f} s  all compilations")
"""
"""Run in a child with an empty numba cache: CPU time of each top-level compilation."""


TWO_PROCESSES = """
import os, sys, time
import spad.analysis.kernels_warmup as warmup
from spad.app.cli import main

waited, at_fork = [0.0], [float("nan")]
wait_for, fork = warmup._Reports.wait_for, os.fork


def timed_wait(self, index):
    t0 = time.perf_counter()
    try:
        return wait_for(self, index)
    finally:
        waited[0] += time.perf_counter() - t0


def timed_fork():
    t = os.times()
    at_fork[0] = t.user + t.system
    return fork()


warmup._Reports.wait_for = timed_wait
os.fork = timed_fork
try:
    main(sys.argv[1:])
finally:
    t = os.times()
    print(f"analysing process {t.user + t.system:5.2f} s CPU ({at_fork[0]:4.2f} s before the "
          f"fork), compiling child {t.children_user + t.children_system:5.2f} s CPU, "
          f"waits for the child {waited[0]:4.2f} s")
"""
"""Run with an empty numba cache: the CPU time of the two processes of the first run."""


def kernels(path: Path, cache: Path) -> None:
    """Print the compile time of each kernel the first ``spad analyze`` compiles, then the
    CPU time of each process of a real first run."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-c", KERNEL_TIMER, "analyze", "--jobs", "1",
                          str(path)], check=True, capture_output=True, text=True, env=env)
    print("compile time (CPU) per kernel of the first spad analyze:")
    lines = out.stdout.splitlines()
    print("\n".join(line for line in lines if " s  " in line))
    env["NUMBA_CACHE_DIR"] = str(cache.with_name(cache.name + "_two"))
    out = subprocess.run([sys.executable, "-c", TWO_PROCESSES, "analyze", "--jobs", "1",
                          str(path)], check=True, capture_output=True, text=True, env=env)
    print("the first spad analyze on two cores:", out.stdout.splitlines()[-1])


def imports(path: Path) -> None:
    """Print the import time of each package that ``spad analyze`` of ``path`` imports."""
    code = ("from spad.app.cli import main\n"
            f"main(['analyze', '--jobs', '1', {str(path)!r}])")
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], check=True,
                         capture_output=True, text=True)
    spent: dict[str, float] = {}
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        own, _, name = line[len("import time:"):].split("|")
        if not own.strip().isdigit():
            continue   # the header
        parts = name.strip().split(".")
        package = ".".join(parts[:2]) if parts[0] in ("scipy", "spad") else parts[0]
        spent[package] = spent.get(package, 0.0) + int(own) * 1e-6
    print("import time (s, wall, own time of each package's modules) of spad analyze:")
    for package, t in sorted(spent.items(), key=lambda kv: -kv[1])[:20]:
        print(f"{t:6.3f} s  {package}")
    print(f"{sum(spent.values()):6.3f} s  all imports")


def in_process(path: Path, repeat: int) -> float:
    """Figure 1: analyze_photons on a file's photons (read once into memory)."""
    from spad.analysis.photon_analysis import analyze_photons

    import spad

    with spad.open(path) as reader:
        chunk = reader.read().photons
    analyze_photons(chunk)   # warm-up: compiles or loads the kernels
    best = float("inf")
    for _ in range(repeat):
        c0 = time.process_time()
        t0 = time.perf_counter()
        analyze_photons(chunk)
        wall = time.perf_counter() - t0
        if wall < best:
            best, CPU[1] = wall, time.process_time() - c0
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", type=int, nargs="+", choices=sorted(TARGETS), default=None)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--kernels", action="store_true",
                   help="also time each kernel's compilation in the first spad analyze")
    p.add_argument("--imports", action="store_true",
                   help="also break the imports of spad analyze down by package")
    args = p.parse_args()
    todo = args.only or sorted(TARGETS)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        p30, p60 = d / "p30.h5", d / "p60.h5"
        if 2 in todo or 4 in todo or args.kernels or args.imports:
            _command(["simulate", "--duration", "30", "--seed", "1", "--spectrum-s", "0",
                      "-o", str(p30)], 1)
        if 1 in todo:
            _command(["simulate", "--duration", "60", "--seed", "1", "--spectrum-s", "0",
                      "-o", str(p60)], 1)
        figures: dict[int, float] = {}
        if 1 in todo:
            figures[1] = in_process(p60, args.repeat)
        if 2 in todo:
            _command(["analyze", "--jobs", "1", str(p30)], 1)   # the cache warm
            figures[2], CPU[2] = _command(["analyze", "--jobs", "1", str(p30)], args.repeat)
        if 3 in todo:
            figures[3], CPU[3] = _command(["info", str(PTU)], args.repeat)
        if 4 in todo:
            env = {**os.environ, "NUMBA_CACHE_DIR": str(d / "empty_numba_cache")}
            figures[4], CPU[4] = _command(["analyze", "--jobs", "1", str(p30)], 1, env)
        if args.kernels:
            kernels(p30, d / "empty_numba_cache_kernels")
        if args.imports:
            if 2 not in todo:
                _command(["analyze", "--jobs", "1", str(p30)], 1)   # the cache warm
            imports(p30)
    load = os.getloadavg()[0]
    print(f"load average (1 min) at the end: {load:.1f} on {os.cpu_count()} CPUs")
    for k in todo:
        v, t = figures[k], TARGETS[k]
        print(f"{k}. {NAMES[k]:48s} {v:6.2f} s (CPU {CPU[k]:5.2f} s)   target "
              f"{'<=' if k == 1 else '<'} {t:g} s   {'met' if v <= t else 'NOT met'}")


if __name__ == "__main__":
    main()
