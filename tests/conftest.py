"""Shared test fixtures, and no process left behind by a test run that is killed."""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"

_PR_SET_PDEATHSIG = 1   # prctl(2): a signal the kernel sends the child when its parent dies
_SIGTERM = int(signal.SIGTERM)


def _popen_ends_with_the_tests() -> None:
    """Programs the tests start (``spad acquire`` for minutes, a dask scheduler, ...) get
    SIGTERM from the kernel when the test process dies, kill -9 included: a killed test run
    leaves no process behind. (The spad workers watch their parent on their own.) Only for
    programs started from the main thread: the kernel sends the signal when the starting
    *thread* ends."""
    # looked up here: the child, forked from a process with threads, only makes the call
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong]
    popen_init = subprocess.Popen.__init__

    def init(self, *args, preexec_fn=None, **kwargs) -> None:  # noqa: ANN001, ANN002, ANN003
        if threading.current_thread() is not threading.main_thread():
            popen_init(self, *args, preexec_fn=preexec_fn, **kwargs)
            return

        def in_child() -> None:
            prctl(_PR_SET_PDEATHSIG, _SIGTERM)
            if preexec_fn is not None:
                preexec_fn()

        popen_init(self, *args, preexec_fn=in_child, **kwargs)

    subprocess.Popen.__init__ = init


def _end_with_the_controller() -> None:
    """A pytest-xdist worker ends, within a fraction of a second, once the pytest process that
    started it is gone (kill -9 of ``pytest -n 2``): it would otherwise go on running tests,
    with their workers, for minutes. Its children then get SIGTERM (see above)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="watch the pytest controller", daemon=True).start()


def pytest_configure(config) -> None:  # noqa: ANN001, ARG001
    if hasattr(os, "fork"):
        _popen_ends_with_the_tests()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        _end_with_the_controller()


def pytest_sessionfinish(session, exitstatus) -> None:  # noqa: ANN001, ARG001
    """The suite leaves no process behind: the live-analysis worker some tests started is
    stopped (it would also end by itself when this process ends: it watches its parent)."""
    import sys

    engine = sys.modules.get("spad.app.acquisition.engine")
    if engine is not None:
        engine.shutdown_workers()


@pytest.fixture(autouse=True)
def _qt_windows_deleted_top_down(request):  # noqa: ANN001, ANN202
    """A GUI test's windows are deleted by Qt, from the window down, before the next test.

    pytest-qt closes them and calls ``deleteLater``, which nothing processes outside an event
    loop; a window is held in reference cycles (signals to its own methods), so it was
    deleted whenever Python's cyclic collector ran, wrapper by wrapper in any order. A
    pyqtgraph ViewBox deleted before its plot then emitted ``geometryChanged`` into a
    legend's anchor, and the xdist worker crashed in a later test's event processing
    (``LegendItem has been deleted``, then a segmentation fault). So the collector waits
    during a GUI test, and the deferred deletions are run here, before it resumes."""
    if "qtbot" not in request.fixturenames:
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        from PyQt5 import QtCore

        QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.DeferredDelete)
        if was_enabled:
            gc.enable()
        gc.collect()


@pytest.fixture
def data_dir() -> Path:
    """Folder of test files shipped with the project (see tests/data/README.md)."""
    return DATA


def simulated_photon_list(emitters, detection, duration_s, seed):
    """A simulated T3 stream, whole, as the in-memory photon list the g2 steps read."""
    import numpy as np
    from spad.analysis.photon_collector import PhotonList
    from spad.simulators.stream import simulate

    from spad.photons import PhotonChunk

    c = PhotonChunk.concatenate(simulate(emitters, detection, duration_s, seed,
                                         chunk_s=1.0).chunks())
    return PhotonList(c.timestamps, c.nanotimes.astype(np.int64), c.detectors,
                      c.timing.nanotime_unit, c.timing)


def chunk_with_bursts(chunks, bursts, rate_hz, seed):
    """A T3 stream as one chunk, with burst photons (``rate_hz``, random detector 1-2 and
    nanotime) added at each ``(start_s, duration_s)`` of ``bursts``."""
    import numpy as np

    from spad.photons import PhotonChunk

    chunks = list(chunks)
    timing = chunks[0].timing
    ts = np.concatenate([c.timestamps for c in chunks])
    det = np.concatenate([c.detectors for c in chunks])
    nt = np.concatenate([c.nanotimes for c in chunks])
    rng = np.random.default_rng(seed)
    for s, d in bursts:
        n = int(rate_hz * d)
        t = np.sort(rng.uniform(s, s + d, n))
        ts = np.concatenate([ts, np.round(t / timing.timestamp_unit).astype(ts.dtype)])
        det = np.concatenate([det, rng.integers(1, 3, n).astype(det.dtype)])
        nt = np.concatenate([nt, rng.integers(0, int(timing.tcspc_num_bins), n)
                             .astype(nt.dtype)])
    order = np.argsort(ts, kind="stable")
    return PhotonChunk(timing, ts[order], det[order], nt[order])
