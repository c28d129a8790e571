"""Memory of the ``spad`` process: large freed arrays go back to the system (a fixed glibc
mmap threshold), and the start-up is left out of the garbage collections
(:func:`hold_collection`).

glibc serves each allocation above a threshold (128 kB by default) with a mapping of its own,
returned to the system as soon as it is freed. The threshold is dynamic, though: whenever such
a block is freed it rises to that block's size (up to 32 MB on 64-bit systems), and later
blocks up to that size come from the heap instead, which keeps them once freed (glibc's
``mallopt(3)`` manual page, ``M_MMAP_THRESHOLD``). Fixing the threshold with ``mallopt`` also
switches the dynamic adjustment off. Measured in the hour-long soak at 2 M photons/s
(``tests/benchmarks/soak_acquire.py``): once the live photon list (~220 MB) is let go, the
resident memory falls back (377 MB after the first minute in the last hour-long run, 628 MB
in the run before this was set). The hour's growth went from 57 to 31 MB with this and two
other changes made at the same time (README, "Development"); this one's share of it was not
measured on its own.

Elsewhere than Linux with glibc (macOS, Windows, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import gc
import sys

M_MMAP_THRESHOLD = -3
"""``mallopt`` parameter number of the mmap threshold (glibc's ``malloc.h``)."""

MMAP_THRESHOLD_BYTES = 128 * 1024
"""glibc's default threshold, kept but no longer raised."""


def fix_mmap_threshold(threshold_bytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold for this process; ``True`` if it was set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):    # not glibc
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, int(threshold_bytes)))


_held = False
"""Whether automatic garbage collection is held off for the start-up."""


def hold_collection() -> None:
    """Hold automatic garbage collection off for a command's start-up (the ``spad`` program
    calls this first; no-op where collection is already off).

    What a command allocates while it loads its modules and numba sets up (the typing and
    lowering registries, the cached kernels) stays alive until it exits, and the collections
    it triggered went over all of it again and again: 0.12 s of about 1.05 s for ``spad
    analyze`` of a 30 s particle. :func:`resume_collection` ends the hold.
    """
    global _held
    if gc.isenabled():
        gc.disable()
        _held = True


def resume_collection() -> None:
    """End the hold of :func:`hold_collection` (no-op when none is held): everything alive is
    frozen, i.e. moved out of the collector's generations for good (:func:`gc.freeze`), and
    automatic collection resumes for the work that follows.

    The CLI resumes it before a command runs, unless the command sets ``collect_late`` among
    its parser's defaults and calls this itself once its start-up is over (``spad analyze``
    after its first particle, and before it forks worker processes, which would inherit the
    hold).
    """
    global _held
    if _held:
        _held = False
        gc.freeze()
        gc.enable()
