"""Start the desktop app: ``spad gui [--config rig.toml] [FILE...]``."""

from __future__ import annotations

import sys
from pathlib import Path

from PyQt5 import QtWidgets
from spad.gui.main_window import MainWindow


def make_window(files: list[str], config: Path | None = None, settings=None) -> MainWindow:  # noqa: ANN001
    """The main window: recordings open in the analysis mode; without any, the live mode on
    the rig of ``config`` (the simulated rig by default)."""
    w = MainWindow(settings)
    if files:
        w.open_paths(files)
    else:
        from spad.gui.live_mode import attach_live

        attach_live(w, config)
    return w


def run_app(files: list[str], config: Path | None = None) -> int:
    """Run the app until its window closes; returns the exit code. Raises
    :class:`~spad.errors.SpadError` (one line) where Qt could not open a window."""
    from spad.gui.platform_check import check_display

    if QtWidgets.QApplication.instance() is None:
        check_display()      # before Qt: it aborts the process where it cannot load
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("spad gui")
    app.setOrganizationName("spad")
    w = make_window(files, config)
    w.show()
    return int(app.exec_())
