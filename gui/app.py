"""Start the desktop app: ``spad gui [--config rig.toml] [FILE...]``."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from PyQt5 import QtCore, QtWidgets
from spad.gui.main_window import MainWindow

SIGNAL_POLL_MS = 200
"""How often the Qt event loop hands control to Python, which runs signal handlers only then."""


def make_window(files: list[str], config: Path | None = None, settings=None) -> MainWindow:  # noqa: ANN001
    """The main window: recordings open in the analysis mode; without any, the live mode on
    the rig of ``config`` (the simulated rig by default) with the Survey tab."""
    w = MainWindow(settings)
    if files:
        w.open_paths(files)
    else:
        from spad.gui.live_mode import attach_live
        from spad.gui.survey import attach_survey

        attach_live(w, config)
        attach_survey(w, config)
    return w


def run_app(files: list[str], config: Path | None = None) -> int:
    """Run the app until its window closes; returns the exit code. Raises
    :class:`~spad.errors.SpadError` (one line) where Qt could not open a window.

    SIGTERM and Ctrl-C (SIGINT) close the window as its close button does, except that a
    recording in progress is aborted rather than analysed (its file finalised with everything
    acquired) and an analysis of recorded files in progress is abandoned rather than waited
    for (it only reads its files, and may take minutes): the app ends within a second or two
    with one line and exit code 143 / 130. Where an abandoned analysis is still running then,
    the process ends here with :func:`os._exit` (Python cannot shut down under a running
    QThread). A second signal ends it at once. The handlers raise nothing: an exception raised
    inside a Qt slot could only be printed and dropped by PyQt.
    """
    from spad.gui.platform_check import check_display

    from spad.app.acquisition.engine import shutdown_workers

    if QtWidgets.QApplication.instance() is None:
        check_display()      # before Qt: it aborts the process where it cannot load

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("spad gui")
    app.setOrganizationName("spad")
    w = make_window(files, config)
    received: list[int] = []
    abandoned: list[QtCore.QThread] = []

    def on_signal(signum: int, frame: object) -> None:  # noqa: ARG001
        if received:
            os._exit(128 + received[0])
        received.append(signum)
        live = getattr(w, "live", None)
        if live is not None and getattr(live, "acq", None) is not None:
            live.acq.abort("SIGTERM" if signum == signal.SIGTERM else "interrupted")
        worker = getattr(w, "worker", None)
        if worker is not None and worker.isRunning():
            # read-only work: stop it at the next particle and do not wait for this one
            # (closing the window waits for w.worker); its results would go to a closed window
            worker.interrupted = True
            worker.blockSignals(True)
            abandoned.append(worker)
            w.worker = None
        QtCore.QTimer.singleShot(0, w.close)
        QtCore.QTimer.singleShot(0, app.quit)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    tick = QtCore.QTimer()
    tick.timeout.connect(lambda: None)
    tick.start(SIGNAL_POLL_MS)
    try:
        w.show()
        code = int(app.exec_())
    finally:
        tick.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
        shutdown_workers()
    if received:
        live = getattr(w, "live", None)
        acq = getattr(live, "acq", None)
        kept = (f": {acq.path}: recording stopped and kept" if acq is not None
                and acq.path.exists() else "")
        sig = received[0]
        print("spad: interrupted" + (" (SIGTERM)" if sig == signal.SIGTERM else "") + kept,
              file=sys.stderr, flush=True)
        if any(t.isRunning() for t in abandoned):
            sys.stdout.flush()
            os._exit(128 + sig)
        return 128 + sig
    return code
