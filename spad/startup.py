"""What the ``spad`` program sets up before numpy loads (``spad/__init__`` runs it first)."""

from __future__ import annotations

import ntpath
from collections.abc import MutableMapping

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
"""Environment variables by which a user chooses OpenBLAS's thread count (in its order)."""

PROGRAM_NAMES = ("spad", "spad.exe", "spad-script.py")
"""Names of the ``spad`` console script as ``sys.argv[0]`` shows it (Linux, macOS, Windows)."""


def one_blas_thread(program: str, environ: MutableMapping[str, str]) -> bool:
    """Give the ``spad`` program one OpenBLAS thread, unless the user chose a thread count.

    numpy's and scipy's OpenBLAS each start a pool of threads as they load, which costs a spad
    command about a tenth of a second of CPU on two cores (measured: ``spad info`` of a PTU
    0.68 -> 0.56 s, ``spad analyze`` of a 30 s particle 1.88 -> 1.68 s), while spad's BLAS calls
    are on small arrays (its ``spad analyze --json`` output is byte-identical either way).
    Worker processes inherit the setting. A program that imports spad as a library is left
    alone. Returns whether the setting was made.

    Parameters
    ----------
    program
        ``sys.argv[0]`` of the running process.
    environ
        The process environment (``os.environ``); changed in place.
    """
    name = ntpath.basename(program).lower()   # either separator, on any system
    if name not in PROGRAM_NAMES or any(v in environ for v in BLAS_THREAD_VARIABLES):
        return False
    environ["OPENBLAS_NUM_THREADS"] = "1"
    return True
