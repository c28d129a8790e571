"""The first run after an install: the analysis kernels compiled on two cores.

numba compiles each kernel the first time it is called and keeps it in its cache
(``cache=True``), so every later run loads it in milliseconds; but the first run compiles them
all, one after the other, which takes several seconds of one core (numba holds the GIL while it
compiles, so threads would not help). :func:`compiling_kernels`, around the analysis, hands
part of the work to a second process when numba's cache does not hold it yet: a forked child
compiles the kernels of :data:`CHILD_SHARE` into the cache, in the order the analysis first
calls them, and reports each one done on a pipe; meanwhile this process runs the analysis,
compiling its own kernels as it calls them, and the first time it calls one of the child's it
waits for the child's report (if the child is not done with it yet) and loads it from the cache
instead of compiling it a second time. The child's share is the kernels the analysis calls
last, so that both processes are busy until the analysis ends. With the cache filled nothing
is forked: the cache's index files are read (no kernel is loaded or compiled to find out).

The child ends with its work, and also the moment its parent dies, however it dies
(``prctl(PR_SET_PDEATHSIG)``, Linux); where that or ``fork`` is not available, or the process
has other threads (forking them is unsafe), nothing is forked and the kernels compile as they
are first called. So do the kernels that are not in the list: those only other recordings
need (T2 correlations, spectra, the PicoQuant record decoders). The list names each module's
own kernels as strings: they are private to their modules, and only compiled from here.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

from numba import types

__all__ = ["KERNELS", "CHILD_SHARE", "compiling_kernels", "compile_kernels", "compile_share",
           "index_holds"]

_A1 = {dtype: getattr(types, dtype)[::1] for dtype in ("float64", "int64", "int32", "uint8",
                                                     "uint16", "boolean")}
_F, _I, _U8, _U16, _B = _A1["float64"], _A1["int64"], _A1["uint8"], _A1["uint16"], _A1["boolean"]
_I32 = _A1["int32"]
_I2, _F2 = types.int64[:, ::1], types.float64[:, ::1]
_I3 = types.int64[:, :, ::1]
_R = types.Array(types.float64, 1, "C", readonly=True)   # changepoints.search_tables
_f, _i, _b = types.float64, types.int64, types.boolean

Entry = tuple[str, str, tuple[Any, ...]]
"""(module, kernel name, argument types)."""

KERNELS: tuple[Entry, ...] = (
    # (module, kernel, argument types): those the photon analysis of a T3 particle calls, with
    # the types it calls them with, in the order it first calls them (tests/test_latency.py
    # checks the list against a run; the types must be numba's objects, not strings: numba's
    # cache keys on what it is given)
    ("spad.analysis.accumulators", "first_decrease", (_I, _i)),
    ("spad.analysis.trace", "selected_range", (_I, _U8, _I, _i)),
    ("spad.analysis.trace", "_fill_trace", (_I, _U8, _I, _i, _i, _I2)),
    ("spad.analysis.accumulators", "_fill_decay", (_U8, _U16, _I, _i, _I2)),
    ("spad.analysis.accumulators", "_correlate",
     (_I, _U8, _U16, _b, _i, _i, _i, _f, _f, _f, _f, _I, _I, _I, _B, _I)),
    ("spad.analysis.flid", "_fill_flid", (_I, _U8, _U16, _I, _i, _i, _I2)),
    ("spad.analysis.accumulators", "first_decrease", (_F, _f)),
    ("spad.analysis.changepoints", "_search_kernel",
     (_F, _i, _i, _i, _i, _R, _R, _R, _b, _b, _F, _F, _F, _B, _I, _I, _I)),
    ("spad.analysis.blinking", "add_to_bins", (_F, _f, _f, _I)),
    ("spad.analysis.level_grouping", "_em_iterations",
     (_F, _F, _F, _I, _i, _f, _F2, _F2, _F2, _I, _F)),
    ("spad.analysis.power_law", "_ks_scan_kernel", (_F, _f, _i, _F, _F)),
    ("spad.analysis.lifetimes", "_level_labels", (_F, _F, _F, _I)),
    ("spad.analysis.lifetimes", "_label_histograms", (_F, _I, _F, _i)),
    ("spad.analysis.g2_pairs", "_same_sync_steps", (_I, _I, _U8, _i, _i, _I, _I, _I, _I)),
    ("spad.analysis.g2_pairs", "_count_self_pairs",
     (_I, _I, _U8, _F, _I32, _i, _i, _i, _I, _I, _i, _i, _i, _i, _I2, _I2, _I2, _I, _I, _I3,
      _I, _I)),
    ("spad.analysis.g2_pairs", "_count_sync_pairs", (_I, _U8, _i, _i, _I, _I, _I, _I, _I)),
    ("spad.analysis.flid", "_flid_hist", (_I, _I, _i, _i, _I2)),
)

CHILD_SHARE: frozenset[str] = frozenset({
    "_fill_flid", "_em_iterations", "_level_labels", "_label_histograms", "_same_sync_steps",
    "_count_self_pairs", "_count_sync_pairs", "_flid_hist"})
"""The kernels of :data:`KERNELS` the child compiles (in the list's order); this process
compiles the rest as the analysis calls them, and runs the analysis.

Chosen by the CPU time of each process of a 30 s particle's first run
(tests/benchmarks/bench_latency.py ``--kernels``; the child's kernels must be in the cache
about when the analysis reaches them). This process compiles the kernels the analysis calls
first but the FLID fill (2.2 s, the change-point search the largest) and the KS scan of the
power-law fits (0.6 s); the child the FLID fill (0.2 s, first: the analysis calls it early),
the level grouping's EM (1.2 s), the lifetimes' level labels and histograms (0.9 s) and the
four kernels the analysis calls last, within a tenth of a second of each other (the g2 pair
counters, the afterpulse one 0.9 s, and the FLID histogram: 1.5 s). With the KS scan in the
child's share and the afterpulse counter here, the child was late for the pair counters and
this process compiled the afterpulse counter after it had waited (0.15-0.25 s of CPU more on
its path); with the blinking trace's binning in the child's share too, it waited for the EM
(~0.4 s)."""

_PR_SET_PDEATHSIG = 1   # prctl(2): the signal the kernel sends a process when its parent dies


def _kernel(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def compile_share(entries: Sequence[Entry]) -> int:
    """Compile (or load from numba's cache) each kernel for its signature; returns how many
    were not in the cache."""
    misses = 0
    for module, name, signature in entries:
        kernel = _kernel(module, name)
        if not hasattr(kernel, "compile"):
            continue   # NUMBA_DISABLE_JIT: the kernels run as Python
        before = sum(kernel.stats.cache_misses.values())
        kernel.compile(signature)
        misses += sum(kernel.stats.cache_misses.values()) - before
    return misses


def index_holds(entry: Entry) -> bool | None:
    """Whether numba's cache holds ``entry``'s kernel for its argument types, read from the
    kernel's cache index alone: no compiler is initialised and nothing is loaded (the first
    compilation or load in a process costs a third of a second of numba's own set-up, which
    the first run would spend before the fork). None where the index cannot be read so
    (JIT disabled, numba's cache internals changed): then the caller finds out by compiling.

    An index of this numba version and this source file that lists the types counts as held;
    a machine with another CPU sharing the cache folder would then compile as it calls.
    """
    try:
        kernel = _kernel(entry[0], entry[1])
        overloads = kernel._cache._cache_file._load_index()
        return any(key[0] == tuple(entry[2]) for key in overloads)
    except Exception:   # an optimisation only: compiling the entry tells the same
        return None


def _can_fork() -> bool:
    return (sys.platform == "linux" and hasattr(os, "fork")
            and threading.active_count() == 1)


def _die_with_parent(parent: int) -> None:
    """In the forked child: SIGKILL from the kernel when the parent dies (kill -9 included)."""
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong]
    if prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL)) != 0 or os.getppid() != parent:
        os._exit(1)   # no guard, or the parent is already gone


class _Reports:
    """This process's end of the child's pipe: the entries (indices into the list, one byte
    each) the child has written to the cache. Two threads of the analysis may wait at once
    (spad.analysis.photon_analysis.PairCounts): one reads the pipe at a time, and each sees
    what the other read (else a report read by one would leave the other blocked until the
    child ends)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.done: set[int] = set()
        self.open = True
        self._lock = threading.Lock()

    def wait_for(self, index: int) -> None:
        """Block until the child reports entry ``index`` done, or ends (then the caller
        compiles it, whether the child got to write it or not)."""
        while True:
            with self._lock:
                if index in self.done or not self.open:
                    return
                data = os.read(self.fd, 256)
                if not data:
                    self.open = False
                self.done.update(data)


def _hold(kernel: Any, waits: dict[tuple[Any, ...], int], reports: _Reports,
          parent: int) -> None:
    """Make this process's first compilation of ``kernel`` for a signature in ``waits`` (its
    types -> the entry's index) wait for the child's report first: it then loads the child's
    work from the cache. The hook is an attribute of this dispatcher object only, gone with
    its last signature (or :func:`_release`); numba calls ``self.compile`` to compile on a
    call."""
    def compile_(signature: Any) -> Any:
        index = waits.pop(tuple(signature), None)
        if index is not None and os.getpid() == parent:   # not in a forked worker
            reports.wait_for(index)
        if not waits:
            _release(kernel)
        return type(kernel).compile(kernel, signature)

    kernel.compile = compile_


def _release(kernel: Any) -> None:
    kernel.__dict__.pop("compile", None)


def _missing(child: Sequence[Entry], cached: Callable[[Entry], bool | None],
             compile_: Callable[[Sequence[Entry]], int]) -> list[Entry]:
    """The entries of ``child`` numba's cache does not hold. Where ``cached`` cannot tell, the
    first is compiled here to find out: on a hit all are taken as held."""
    held = [cached(entry) for entry in child]
    if None not in held:
        return [entry for entry, h in zip(child, held, strict=True) if not h]
    return [] if compile_(child[:1]) == 0 else list(child[1:])


@contextlib.contextmanager
def compiling_kernels(entries: Sequence[Entry] = KERNELS,
                      child_share: Collection[str] = CHILD_SHARE,
                      compile_: Callable[[Sequence[Entry]], int] = compile_share,
                      cached: Callable[[Entry], bool | None] = index_holds,
                      ahead: bool = False) -> Iterator[int | None]:
    """Compile the analysis kernels on two cores around the analysis, if they are not cached.

    If numba's cache holds the child's share (the entries whose kernel is named in
    ``child_share``, :func:`index_holds`), nothing is done: the analysis loads each kernel as
    it needs it. Otherwise the first entry is compiled here (with numba's own set-up, which
    both processes need: done once, before the fork), and a child is forked that compiles the
    missing entries of its share in the list's order, reporting each on a pipe. Then the
    block runs here, and this process's first call of one of the child's kernels waits for
    its report (:func:`_hold`); the rest compile as called. As the block ends, the child is
    waited for; on an error or an interruption it is killed.

    With ``ahead``, this process compiles its own share and waits for the child before the
    block instead: for an analysis run by worker processes, which would each compile what
    is missing.

    ``compile_`` does the compiling and ``cached`` the probe (tests pass their own).

    Yields
    ------
    int or None
        The forked child's process id (ended when the block has ended), or None when nothing
        was forked.
    """
    if len(entries) > 256:
        raise ValueError("the child reports an entry in one byte: at most 256 entries")
    child = [e for e in entries if e[1] in child_share]
    own = [e for e in entries if e[1] not in child_share]
    todo = _missing(child, cached, compile_)
    if not todo or not _can_fork():
        yield None       # cached, or compiled as called
        return
    # what is alive now (the imports), and then numba's set-up, stays alive: left out of the
    # garbage collections until the block ends, which numba's compilations trigger in both
    # processes and which went over all of it (~0.2 s in each); a caller's own freeze is left
    # as it is
    thaw = gc.get_freeze_count() == 0
    gc.freeze()
    compile_(entries[:1])
    gc.freeze()
    parent = os.getpid()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: compile its share into the cache, then leave without cleanup
        code = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's to handle
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _die_with_parent(parent)
            os.close(read_end)
            for entry in todo:
                compile_([entry])
                os.write(write_end, bytes([entries.index(entry)]))
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    reports = _Reports(read_end)
    held: list[Any] = []
    running = True
    try:
        if ahead:
            compile_([entry for entry in own if entry != entries[0]])   # that one is done
            os.waitpid(pid, 0)
            running = False
        else:
            waits: dict[Any, dict[tuple[Any, ...], int]] = {}
            for entry in todo:
                try:
                    kernel = _kernel(entry[0], entry[1])
                except ImportError:   # nothing here to hold (the analysis fails to import it)
                    continue
                if hasattr(kernel, "compile"):
                    waits.setdefault(kernel, {})[tuple(entry[2])] = entries.index(entry)
            for kernel, signatures in waits.items():
                _hold(kernel, signatures, reports, parent)
                held.append(kernel)
        yield pid
        for kernel in held:
            _release(kernel)
        if running:
            os.waitpid(pid, 0)
            running = False
    except BaseException:
        for kernel in held:
            _release(kernel)
        if running:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        raise
    finally:
        os.close(read_end)
        if thaw:
            gc.unfreeze()


def compile_kernels(entries: Sequence[Entry] = KERNELS,
                    child_share: Collection[str] = CHILD_SHARE,
                    compile_: Callable[[Sequence[Entry]], int] = compile_share,
                    cached: Callable[[Entry], bool | None] = index_holds
                    ) -> int | None:
    """Compile the kernels before an analysis (:func:`compiling_kernels` with ``ahead``):
    returns the forked child's process id (already ended), or None when nothing was
    forked."""
    with compiling_kernels(entries, child_share, compile_, cached, ahead=True) as pid:
        pass
    return pid
