"""Start-up latency (issue 21, item 6): what a command imports. The times themselves are
measured by tests/benchmarks/bench_latency.py, never asserted (they depend on the machine)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spad.startup import BLAS_THREAD_VARIABLES as BLAS_VARIABLES
from spad.startup import one_blas_thread

HEAVY = ("numba", "h5py", "lmfit", "scipy.optimize", "scipy.stats", "scipy.signal",
         "scipy.interpolate", "tqdm", "pandas", "matplotlib")


def _imported_after(code: str) -> list[str]:
    probe = (f"import sys\n{code}\n"
             f"print('imported:', *(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                         text=True)
    last = out.stdout.splitlines()[-1]   # after what the command printed
    assert last.startswith("imported:")
    return last.split()[1:]


def test_building_the_command_line_imports_no_heavy_module():
    # every spad command builds the whole parser: a command module that imports numba or
    # h5py at its top makes all of them pay for it
    assert _imported_after("from spad.app.cli import build_parser; build_parser()") == []


def test_spad_help_imports_no_heavy_module():
    code = ("from spad.app.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass")
    assert _imported_after(code) == []


PTU = str(Path(__file__).parent / "data" / "picoquant-sample-data" / "v20_t3.ptu")


def _command_imports(args: list[str]) -> list[str]:
    return _imported_after("from spad.app.cli import main\n"
                           "import contextlib, io\n"
                           "with contextlib.redirect_stdout(io.StringIO()):\n"
                           f"    main({args!r})")


def test_spad_info_of_a_ptu_imports_no_heavy_module():
    # info decodes a small file's records with numpy (loading numba's kernels would take
    # longer than decoding them) and needs nothing of the analysis or HDF5
    assert _command_imports(["info", PTU]) == []
    assert _command_imports(["info", str(Path(PTU).with_name("v20.ht3"))]) == []


def test_spad_analyze_of_one_file_imports_no_progress_bar_or_plotting():
    # tqdm is imported only where its bar may show (more than three files); pandas and
    # matplotlib never (lmfit's optional imports are hidden by spad.analysis.lmfit_lean)
    imported = _command_imports(["analyze", "--jobs", "1", PTU])
    assert not {"tqdm", "pandas", "matplotlib"} & set(imported)
    assert "numba" in imported   # the probe sees the analysis' own imports


def test_spad_analyze_of_a_photon_particle_imports_no_scipy_stats_or_signal():
    # scipy.stats and scipy.signal (~0.3-0.6 s together) only wrap special functions and FFTs
    # the analysis calls (spad.analysis.distributions, g2.full_convolution), and lmfit's own
    # scipy.stats names are deferred (spad.analysis.lmfit_lean)
    imported = _command_imports(["analyze", "--jobs", "1", "--json", PTU])
    assert "lmfit" in imported   # the lifetime was fitted: lmfit's import was the one probed
    assert not {"scipy.stats", "scipy.signal", "scipy.interpolate", "pandas"} & set(imported)


def test_spad_analyze_of_t2_photons_imports_no_fitting_library():
    # T2 records have no laser sync: no decay, no lifetime fit, so neither lmfit nor
    # scipy.optimize (this file's single intensity level has no dwell times to fit either)
    t2 = str(Path(PTU).with_name("v20_t2.ptu"))
    imported = _command_imports(["analyze", "--jobs", "1", "--json", t2])
    assert "numba" in imported
    assert not {"lmfit", "scipy.optimize", "scipy.stats", "scipy.signal"} & set(imported)


def _run(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True)
    return out.stdout.split()


def test_lmfit_defers_scipy_stats_to_its_first_use():
    code = """
import sys
from spad.analysis.lmfit_lean import Deferred, lmfit
print('loaded' if 'scipy.stats' in sys.modules else 'deferred')
# no stand-in is left anywhere but in lmfit's own modules
leaks = [n for n, m in list(sys.modules.items()) if not n.startswith('lmfit') and m is not None
         and any(isinstance(v, Deferred) for v in list(vars(m).values()))]
print('leaks:' + ','.join(leaks))
print(lmfit.minimizer.norm_dist.pdf(0.0))   # lmfit's name works: imports scipy.stats now
import scipy.stats
print(type(sys.modules['scipy.stats']).__name__,
      scipy.stats.norm is lmfit.minimizer.norm_dist.resolve())
print(lmfit.confidence.f.sf(2.0, 3, 40) == scipy.stats.f.sf(2.0, 3, 40))
"""
    assert _run(code) == ["deferred", "leaks:", "0.3989422804014327", "module", "True", "True"]


def test_lmfit_uses_scipy_stats_itself_when_it_is_loaded_already():
    code = ("import sys, scipy.stats\nfrom spad.analysis.lmfit_lean import lmfit\n"
            "print(lmfit.minimizer.norm_dist is scipy.stats.norm)")
    assert _run(code) == ["True"]


def test_the_spad_program_gets_one_blas_thread_unless_the_user_chose():
    env: dict[str, str] = {}
    assert one_blas_thread("/home/lab/.venv/bin/spad", env)
    assert env == {"OPENBLAS_NUM_THREADS": "1"}
    assert one_blas_thread(r"C:\lab\venv\Scripts\spad.exe", {})
    for chosen in ({"OMP_NUM_THREADS": "4"}, {"OPENBLAS_NUM_THREADS": "8"}):
        env = dict(chosen)
        assert not one_blas_thread("/usr/bin/spad", env)
        assert env == chosen
    env = {}
    assert not one_blas_thread("/usr/bin/python3", env)   # spad imported as a library
    assert env == {}


def test_blas_has_one_thread_in_the_spad_program_as_numpy_loads():
    # spad/__init__ must make the setting before numpy (imported by spad.photons) loads
    # OpenBLAS, which reads it only then
    pytest.importorskip("threadpoolctl")
    probe = ("import sys\nsys.argv[0] = '/venv/bin/spad'\nimport spad\nimport scipy.linalg\n"
             "import threadpoolctl\n"
             "print(sorted({i['num_threads'] for i in threadpoolctl.threadpool_info()}))")
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARIABLES}
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                         text=True, env=env)
    assert out.stdout.split("\n")[-2] == "[1]"


# --- the first run's compilation on two cores (spad.analysis.kernels_warmup) ----------------

CALL_ORDER_PROBE = """
import contextlib, io, sys, threading
import numba.core.dispatcher as dispatcher
import spad.analysis.kernels_warmup as warmup
from spad.app.cli import main

warmup._can_fork = lambda: False   # every kernel compiled or loaded here, as called
calls, local = [], threading.local()
compile_ = dispatcher.Dispatcher.compile


def recorded(self, sig):
    # the pair counts run on a second thread (photon_analysis.PairCounts): depth per thread
    local.depth = getattr(local, "depth", 0) + 1
    try:
        return compile_(self, sig)
    finally:
        local.depth -= 1
        if local.depth == 0 and self.py_func.__module__.startswith("spad.analysis."):
            calls.append((threading.current_thread().name,
                          (self.py_func.__module__, self.py_func.__name__, tuple(sig))))


dispatcher.Dispatcher.compile = recorded
with contextlib.redirect_stdout(io.StringIO()):
    main(["analyze", "--jobs", "1", sys.argv[1]])
listed = [(m, k, tuple(sig)) for m, k, sig in warmup.KERNELS]
made = [c for _, c in calls]
print("missing from the list:", [c[:2] for c in made if c not in listed])
print("never called:", [e[:2] for e in listed if e not in made])
# each thread needs its kernels in the list's order (the child compiles them so)
order = {}
for thread, c in calls:
    if c in listed:
        order.setdefault(thread, []).append(listed.index(c))
print("in call order:", all(v == sorted(v) for v in order.values()) and len(made) == len(set(made)))
"""


def test_the_warm_up_list_is_what_a_t3_analysis_calls_in_call_order(tmp_path):
    # a kernel or argument type missing from KERNELS would be compiled on one core, a wrong
    # type would compile a specialisation never used, and the child compiles its share in the
    # list's order, which must be the order the analysis needs them in (numba compiles, or
    # loads from its cache, on a kernel's first call for each type: what is recorded here)
    path = tmp_path / "p.h5"
    spad = str(Path(sys.executable).with_name("spad"))
    subprocess.run([spad, "simulate", "--duration", "10", "--seed", "2", "--spectrum-s", "0",
                    "-o", str(path)], check=True, capture_output=True)
    out = subprocess.run([sys.executable, "-c", CALL_ORDER_PROBE, str(path)], check=True,
                         capture_output=True, text=True)
    assert out.stdout.splitlines()[-3:] == ["missing from the list: []", "never called: []",
                                            "in call order: True"]


FORK_PROBE = """
import os, sys
from spad.analysis.kernels_warmup import compile_kernels, compiling_kernels

parent = os.getpid()
folder = sys.argv[1]
cached = sys.argv[2] == "cached"
block = sys.argv[3] == "block"
ahead = sys.argv[4] == "ahead"
entries = [("m", f"k{i}", ()) for i in range(5)]


def compile_(share):
    who = "parent" if os.getpid() == parent else "child"
    with open(os.path.join(folder, who), "a") as f:
        f.write(" ".join(e[1] for e in share) + "\\n")
    if block and who == "child":
        import time
        time.sleep(600)
    return 0 if cached else len(share)


def held(entry):
    return cached


if ahead:
    pid = compile_kernels(entries, {"k3", "k4"}, compile_, held)
else:
    with compiling_kernels(entries, {"k3", "k4"}, compile_, held) as pid:
        print("block")
print("child", pid)
if pid is not None:
    try:
        os.waitpid(pid, os.WNOHANG)
        print("not reaped")
    except ChildProcessError:
        print("reaped")
"""


def _fork_probe(folder: Path, *args: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", FORK_PROBE, str(folder), *args], check=True,
                         capture_output=True, text=True)
    return out.stdout.split()


@pytest.mark.skipif(sys.platform != "linux", reason="the child is forked on Linux only")
def test_a_cold_cache_is_compiled_in_two_processes_ahead_of_workers(tmp_path):
    out = _fork_probe(tmp_path, "cold", "go", "ahead")
    assert out[0] == "child" and out[1] != "None" and out[2] == "reaped"
    # the first entry before the fork (numba's set-up, once), then this process's share;
    # the child its share, one entry at a time (each reported when done)
    assert (tmp_path / "parent").read_text().splitlines() == ["k0", "k1 k2"]
    assert (tmp_path / "child").read_text().splitlines() == ["k3", "k4"]


@pytest.mark.skipif(sys.platform != "linux", reason="the child is forked on Linux only")
def test_around_the_analysis_this_process_leaves_its_share_to_the_calls(tmp_path):
    out = _fork_probe(tmp_path, "cold", "go", "block")
    assert out[0] == "block" and out[1] == "child" and out[2] != "None" and out[3] == "reaped"
    assert (tmp_path / "parent").read_text().splitlines() == ["k0"]
    assert (tmp_path / "child").read_text().splitlines() == ["k3", "k4"]


def test_a_filled_cache_forks_nothing(tmp_path):
    for mode in ("ahead", "block"):
        assert _fork_probe(tmp_path, "cached", "go", mode)[-2:] == ["child", "None"]
    assert not (tmp_path / "parent").exists()
    assert not (tmp_path / "child").exists()


OVERLAP_PROBE = """
import gc
import numpy as np
from numba import types
from spad.analysis import blinking
from spad.analysis.kernels_warmup import compiling_kernels, index_holds

F, I = types.float64[::1], types.int64[::1]
entries = [("spad.analysis.accumulators", "first_decrease", (I, types.int64)),
           ("spad.analysis.blinking", "add_to_bins", (F, types.float64, types.float64, I))]
print("held before:", index_holds(entries[1]))
with compiling_kernels(entries, {"add_to_bins"}) as pid:
    counts = np.zeros(3, dtype=np.int64)
    blinking.add_to_bins(np.array([0.5, 1.5, 1.7, 9.0]), 0.0, 1.0, counts)
    print("counts:", counts.tolist())
    stats = blinking.add_to_bins.stats
    print("forked:", pid is not None, "compiled here:", sum(stats.cache_misses.values()),
          "loaded:", sum(stats.cache_hits.values()))
print("hook left:", "compile" in vars(blinking.add_to_bins), "frozen left:", gc.get_freeze_count())
print("held after:", index_holds(entries[1]))
with compiling_kernels(entries, {"add_to_bins"}) as pid:
    print("forked again:", pid is not None)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the child is forked on Linux only")
def test_a_kernel_of_the_childs_share_is_loaded_from_its_work_not_compiled_twice(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba_cache")}
    out = subprocess.run([sys.executable, "-c", OVERLAP_PROBE], check=True,
                         capture_output=True, text=True, env=env)
    assert out.stdout.splitlines() == [
        "held before: False", "counts: [1, 2, 0]",
        "forked: True compiled here: 0 loaded: 1",   # it waited for the child's report
        "hook left: False frozen left: 0", "held after: True", "forked again: False"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"   # a zombie has ended, it waits only for its parent to read it


@pytest.mark.skipif(sys.platform != "linux", reason="the child is forked on Linux only")
def test_the_compiling_child_dies_with_a_killed_parent(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", FORK_PROBE, str(tmp_path), "cold", "block",
                             "ahead"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # both are compiling (the child blocked in the fake compiler) once both have written
        for _ in range(600):
            if (tmp_path / "child").exists() and len(
                    (tmp_path / "parent").read_text().splitlines()) == 2:
                break
            assert proc.poll() is None
            time.sleep(0.05)
        children = [int(p) for p in
                    Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        assert len(children) == 1
    finally:
        proc.kill()
        proc.wait()
    for _ in range(600):   # the kernel sends the child SIGKILL as the parent dies
        if not _alive(children[0]):
            break
        time.sleep(0.05)
    assert not _alive(children[0])


def test_the_warm_up_does_nothing_with_numba_jit_disabled():
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    code = ("from spad.analysis.kernels_warmup import compile_kernels, compiling_kernels\n"
            "print(compile_kernels())\n"
            "with compiling_kernels() as pid:\n    print(pid)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, env=env)
    assert out.stdout.split() == ["None", "None"]


def test_two_threads_waiting_for_the_child_each_see_the_reports_the_other_read():
    """The analysis waits for the compiling child's reports from two threads (the pair
    counts run on a second one): a report one thread reads is seen by the other, which
    would otherwise stay blocked on the pipe until the child ended. Here the child's pipe
    stays open after its two reports, so a missed report would block to the join's limit."""
    import threading

    from spad.analysis.kernels_warmup import _Reports

    read_end, write_end = os.pipe()
    try:
        reports = _Reports(read_end)
        os.write(write_end, bytes([3, 7]))
        waiters = [threading.Thread(target=reports.wait_for, args=(i,)) for i in (3, 7)]
        for w in waiters:
            w.start()
        for w in waiters:
            w.join(timeout=60)
        assert not any(w.is_alive() for w in waiters)
        assert reports.done == {3, 7} and reports.open
    finally:
        os.close(write_end)   # releases a waiter left blocked, so the test run ends
        os.close(read_end)
