"""The first run after an install: the analysis kernels compiled on two cores.

numba compiles each kernel the first time it is called and keeps it in its cache
(``cache=True``), so every later run loads it in milliseconds; but the first run compiles them
all, one after the other, which takes several seconds of one core (numba holds the GIL while it
compiles, so threads would not help). :func:`compile_kernels` compiles them ahead of the
analysis, when numba's cache does not hold them yet: a forked child process compiles one share
of :data:`KERNELS` and writes them to the cache while this process compiles the other; the
analysis then loads the child's share from the cache. With the cache filled it only loads one
kernel (to find out) and returns.

The child ends with its work, and also the moment its parent dies, however it dies
(``prctl(PR_SET_PDEATHSIG)``, Linux); where that or ``fork`` is not available, or the process
has other threads (forking them is unsafe), nothing is forked and the kernels compile as they
are first called. So do the kernels that are not in the list: those only other recordings
need (T2 correlations, spectra, the PicoQuant record decoders). The list names each module's
own kernels as strings: they are private to their modules, and only compiled from here.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from numba import types

__all__ = ["KERNELS", "CHILD_SHARE", "compile_kernels", "compile_share"]

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
    # the types it calls them with (tests/test_latency.py checks the list against a run; the
    # types must be numba's objects, not strings: numba's cache keys on what it is given)
    ("spad.analysis.accumulators", "first_decrease", (_I, _i)),
    ("spad.analysis.accumulators", "first_decrease", (_F, _f)),
    ("spad.analysis.accumulators", "selected_range", (_I, _U8, _I, _i)),
    ("spad.analysis.accumulators", "_fill_trace", (_I, _U8, _I, _i, _i, _I2)),
    ("spad.analysis.accumulators", "_fill_decay", (_U8, _U16, _I, _i, _I2)),
    ("spad.analysis.accumulators", "_correlate",
     (_I, _U8, _U16, _b, _i, _i, _i, _f, _f, _f, _f, _I, _I, _I, _B, _I)),
    ("spad.analysis.changepoints", "_search_kernel",
     (_F, _i, _i, _i, _i, _R, _R, _R, _b, _b, _F, _F, _F, _B, _I, _I, _I)),
    ("spad.analysis.g2_pairs", "_count_sync_pairs", (_I, _U8, _i, _i, _I, _I, _I, _I)),
    ("spad.analysis.flid", "_flid_hist", (_I, _I, _i, _i, _I2)),
    ("spad.analysis.flid", "_fill_flid", (_I, _U8, _U16, _I, _i, _i, _I2)),
    ("spad.analysis.g2_pairs", "_count_self_pairs",
     (_I, _I, _U8, _F, _I32, _i, _i, _i, _I, _I, _i, _i, _i, _i, _I2, _I2, _I2, _I, _I, _I3,
      _I, _I)),
    # the child's share, compiled while this process compiles the above
    ("spad.analysis.level_grouping", "_em_iterations",
     (_F, _F, _F, _I, _i, _f, _F2, _F2, _F2, _I, _F)),
    ("spad.analysis.blinking", "_ks_scan_kernel", (_F, _f, _i, _F, _F)),
    ("spad.analysis.blinking", "add_to_bins", (_F, _f, _f, _I)),
    ("spad.analysis.lifetimes", "_label_histograms", (_F, _I, _F, _i)),
    ("spad.analysis.lifetimes", "_level_labels", (_F, _F, _F, _I)),
    ("spad.analysis.g2_pairs", "_same_sync_steps", (_I, _I, _U8, _i, _i, _I, _I, _I)),
)

CHILD_SHARE = 11
"""Entries of :data:`KERNELS` from this index on are compiled by the child: the two shares take
about equal compile time (from tests/benchmarks/bench_latency.py ``--kernels`` on a quiet
machine: 3.3 s of CPU here, the first entry included, and 3.0 s in the child; the child's share
includes numba's array constructors, first compiled there by the lifetime kernels). The
afterpulse pair counter, 0.8 s, was added to the child's share when it came and left it a
second longer than this one's, which the whole first run waited for."""

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


def compile_kernels(entries: Sequence[Entry] = KERNELS,
                    child_share: int = CHILD_SHARE,
                    compile_: Callable[[Sequence[Entry]], int] = compile_share
                    ) -> int | None:
    """Compile the analysis kernels before the analysis, on two cores if they are not cached.

    The first entry is loaded or compiled here; if numba's cache held it, the cache is taken
    to be filled and nothing more is done (the analysis loads each kernel as it needs it).
    Otherwise a forked child compiles ``entries[child_share:]`` while this process compiles
    the rest, and this process waits for the child (on an error or an interruption here the
    child is killed). ``compile_`` does the compiling (a test passes its own).

    Returns
    -------
    int or None
        The forked child's process id (already ended), or None when nothing was forked.
    """
    if compile_(entries[:1]) == 0:
        return None
    if not _can_fork():
        return None      # compiled as called
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:   # the child: compile its share into the cache, then leave without cleanup
        code = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's to handle
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _die_with_parent(parent)
            compile_(entries[child_share:])
            code = 0
        finally:
            os._exit(code)
    try:
        compile_(entries[1:child_share])
        os.waitpid(pid, 0)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    return pid
