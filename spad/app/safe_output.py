"""The CLI's error contract: exit codes, one-line messages, interruption, safe output.

Every ``spad`` command keeps one contract, enforced by :func:`spad.app.cli.main` with the
helpers here (``tests/test_cli_contract.py`` runs every command against each class of bad
input):

==========  ==================================================================================
exit code   meaning
==========  ==================================================================================
0           success
1           some inputs failed while others succeeded (batch-like commands: ``analyze``)
2           bad usage or unusable input (no such file, corrupt or foreign file, bad option,
            output that cannot be written, not enough disk)
130 / 143   interrupted by Ctrl-C (SIGINT) / SIGTERM
70          internal error, a bug (the traceback is printed: please report it)
==========  ==================================================================================

Messages are one line on stderr, ``spad: error: <file or device>: <what is wrong>``, in the
user's terms: no library internals, no temporary file names, no traceback.

For a new command
-----------------
- raise :class:`spad.errors.SpadError` (``FormatError(path, problem)``,
  ``DeviceError(device, problem)``) for anything the user can cause; an :class:`OSError` with
  ``filename`` set is turned into the same one line;
- write every output through :func:`replacing` (temporary file + rename: an error or an
  interruption leaves no half-written output and never destroys an existing file), and check
  the output is writable before long work (:func:`check_writable`);
- refuse impossible option values up front with :func:`check_range` (one line naming the
  option and its accepted range);
- start worker processes with ``initializer=worker_init`` (workers leave Ctrl-C to the main
  process, and end by themselves when it dies, ``kill -9`` included), inside
  :func:`signals_held` (the call that starts them: the first ``submit`` or ``map``), and shut
  them down with :func:`shutdown_pool` in a ``finally``;
- long compiled (numba) loops need nothing special: a signal that arrives inside one is
  recognised afterwards (:func:`interrupted`), however the compiled code re-raised it.

Signals: :func:`install` makes SIGTERM raise :class:`Terminated` (a KeyboardInterrupt) like
Ctrl-C does, so ``finally`` blocks and :func:`replacing` clean up either way; a second signal
during the clean-up exits at once.
"""

from __future__ import annotations

import _thread
import contextlib
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from spad.errors import SpadError
from spad.output import check_folder, check_writable, replacing, user_os_error

__all__ = ["install", "interrupted", "catching", "acknowledge", "worker_init", "signals_held",
           "shutdown_pool",
           "error_line", "check_range",
           "Terminated", "replacing", "check_writable", "check_folder", "EXIT_OK",
           "EXIT_SOME_FAILED",
           "EXIT_USAGE", "EXIT_BUG"]

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_BUG = 0, 1, 2, 70

_signal_received: int | None = None


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM (a KeyboardInterrupt, so clean-up code treats it
    like Ctrl-C)."""


_acknowledged = threading.Event()

REDELIVER_AFTER_S = 1.0
"""How long :func:`_watchdog` waits for :func:`acknowledge` before delivering a signal again."""

_catching = 0          # depth of :func:`catching` blocks the main thread is in


@contextlib.contextmanager
def catching() -> Iterator[None]:
    """Declare that the main thread catches every interruption in this block itself and calls
    :func:`acknowledge` when it does (``spad acquire``'s loop, ``spad batch``'s).

    A signal that arrives inside such a block is not delivered again by the watchdog. On a
    busy machine the main thread may wait more than a second for the GIL (another thread in
    a long HDF5 or compiled call) between the handler and its ``except`` clause; a second
    delivery would then land inside that clause, before it could finalise the recording or
    write the table, and the command would end with a bare "interrupted". Interruptions
    dropped in a ``__del__`` or weakref callback are still delivered again
    (:func:`_unraisable`)."""
    global _catching
    _catching += 1
    try:
        yield
    finally:
        _catching -= 1


def _handler(signum: int, frame: Any) -> None:  # noqa: ARG001
    global _signal_received
    if _signal_received is None:
        _signal_received = signum
        _acknowledged.clear()
        if not _catching:
            threading.Thread(target=_watchdog, args=(signum,), daemon=True).start()
    elif _acknowledged.is_set():  # a second signal while cleaning up: stop now
        os._exit(128 + _signal_received)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _watchdog(signum: int) -> None:
    """Make sure an interruption ends the command.

    The exception the handler raises can land where Python only reports and drops it (a
    weakref callback, a ``__del__``): then the command would go on. If :func:`acknowledge`
    has not been called after a second the signal is delivered again, and after three more
    the process exits with the interruption's code.
    """
    if _acknowledged.wait(REDELIVER_AFTER_S):
        return
    _thread.interrupt_main(signum)
    if _acknowledged.wait(3.0):
        return
    print("spad: interrupted", file=sys.stderr, flush=True)
    os._exit(128 + signum)


def _unraisable(info: Any) -> None:
    """An interruption raised where Python can only drop it (weakref callback, ``__del__``):
    deliver it again at once, without the "Exception ignored" report."""
    if isinstance(info.exc_value, KeyboardInterrupt) and _signal_received is not None:
        if not _acknowledged.is_set():  # from another thread: not inside this hook
            threading.Timer(0.01, _thread.interrupt_main, (_signal_received,)).start()
        return
    sys.__unraisablehook__(info)


def acknowledge() -> None:
    """Called by the dispatcher once an interruption has reached it (see :func:`_watchdog`)."""
    _acknowledged.set()


def install() -> dict[int, Any]:
    """Handle SIGINT and SIGTERM in the main thread (see the module docstring); returns the
    previous handlers for :func:`restore` (nothing is changed outside the main thread)."""
    global _signal_received
    _signal_received = None
    if threading.current_thread() is not threading.main_thread():
        return {}
    sys.unraisablehook = _unraisable
    return {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}


def restore(previous: dict[int, Any]) -> None:
    """Put back the handlers :func:`install` replaced."""
    for signum, handler in previous.items():
        signal.signal(signum, handler)
    if previous:
        sys.unraisablehook = sys.__unraisablehook__


def interrupted(exc: BaseException | None = None) -> int | None:
    """The exit code of an interruption (130 / 143), or ``None``.

    True once a signal was received, or when ``exc`` is (or was caused by) a
    KeyboardInterrupt: numba's dispatcher turns an interrupt inside compiled code into
    ``SystemError: CPUDispatcher(...) returned a result with an exception set``.
    """
    if _signal_received is not None:
        return 128 + _signal_received
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, KeyboardInterrupt):
            return 143 if isinstance(exc, Terminated) else 130
        exc = exc.__cause__ or exc.__context__
    return None


PARENT_POLL_S = 0.2
"""How often a worker looks whether the process that started it is still there."""


def worker_init(parent_pid: int | None = None, background: bool = False) -> None:
    """Initializer of worker processes: Ctrl-C goes to the whole process group, but only the
    main process acts on it (it then stops the workers); SIGTERM ends a worker quietly.

    The worker also ends by itself, within :data:`PARENT_POLL_S` of it, once its parent is
    gone, whatever ended the parent (``kill -9`` included, which leaves no chance to stop the
    workers): a daemon thread watches the parent's process id (``parent_pid``, default the
    current parent). An orphaned worker would hold its memory, a CPU and the parent's stdout
    (a ``spad ... | tail`` would never end) for as long as its work lasts. Keep this module
    light: a spawned worker imports it before the initializer runs.

    ``background`` (the live analysis of a recording) lowers the worker's priority: on a busy
    machine the file and the views come first, the live verdict after them (it waits, nothing
    is lost); and its freed arrays go back to the system (:mod:`spad.app.memory`).
    """
    parent = os.getppid() if parent_pid is None else parent_pid
    threading.Thread(target=_watch_parent, args=(parent,), name="watch parent",
                     daemon=True).start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):   # held since the start (signals_held): now ignored
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    if background:
        from spad.app.memory import fix_mmap_threshold

        if hasattr(os, "nice"):
            os.nice(10)
        fix_mmap_threshold()


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Start worker processes inside this block: SIGINT and SIGTERM are held (blocked, not
    lost) in the calling thread, and a process started here inherits the block, so a Ctrl-C
    sent to the whole process group cannot reach a worker before :func:`worker_init` has set
    it to ignore it (it would print a KeyboardInterrupt traceback from multiprocessing's
    start-up code). This process gets a held signal as soon as the block ends; other threads
    receive signals as before."""
    if (not hasattr(signal, "pthread_sigmask")
            or threading.current_thread() is not threading.main_thread()):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _watch_parent(parent: int) -> None:
    """Exit once ``parent`` is no longer this process's parent (it died: the process was
    re-parented to init or a subreaper)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(0)


def shutdown_pool(pool: Any, abort: bool) -> None:
    """Shut a :class:`concurrent.futures.ProcessPoolExecutor` down, always.

    ``abort`` (an error or an interruption in the main process): pending work is cancelled and
    the workers are terminated instead of being waited for, so the command ends at once.
    """
    if abort:
        # The executor has no public "terminate": its worker processes are in _processes.
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def error_line(exc: BaseException) -> tuple[int, str] | None:
    """Exit code and one-line message for an exception the contract covers, or ``None``
    (a bug: let the traceback show)."""
    code = interrupted(exc)
    if code is not None:
        acknowledge()
        # an interruption may say what was kept (spad acquire: the file, finalised)
        said = str(exc) if isinstance(exc, KeyboardInterrupt) and str(exc) else ""
        return code, ("spad: interrupted" + (" (SIGTERM)" if code == 143 else "")
                      + (f": {said}" if said else ""))
    if isinstance(exc, SpadError):
        return EXIT_USAGE, f"spad: error: {exc}"
    if isinstance(exc, OSError):
        exc = user_os_error(exc, {})
        name = f"{exc.filename}: " if exc.filename is not None else ""
        return EXIT_USAGE, f"spad: error: {name}{exc.strerror or exc}"
    if isinstance(exc, MemoryError):
        return EXIT_USAGE, "spad: error: out of memory"
    return None


def check_range(option: str, value: float | None, low: float, high: float,
                unit: str = "") -> None:
    """Refuse an option value outside ``[low, high]`` (NaN and infinities included) with one
    line naming the option and the accepted range."""
    if value is None:
        return
    if not (math.isfinite(value) and low <= value <= high):
        unit = f" {unit}" if unit else ""
        raise SpadError(f"{option} must be within {low:g}-{high:g}{unit}, not {value:g}")


def print_error(message: str) -> None:
    """Print ``message`` on stderr as one line."""
    print(message.replace("\n", " "), file=sys.stderr, flush=True)
