"""Screenshot of the analysis mode for the README (offscreen, no display needed).

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshot_analysis.py SESSION_DIR OUT.png \
        [--particle NAME] [--decay INDEX | --decay TEXT]

Opens the session in the desktop app, waits for the analysis, selects a particle and one of
the decays the Decay panel offers, and saves the window. Look at the picture: labels, units,
nothing clipped.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt5 import QtCore, QtWidgets  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("session", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--particle", default="monomer_1.h5")
    ap.add_argument("--decay", default="0",
                    help="index in the Decay panel's list, or the start of a name in it (the "
                         "first match: 'level 12', 'state 2')")
    ap.add_argument("--size", default="1366x688", help="window size (default: as it opens on a "
                    "1366x768 screen with a task bar)")
    a = ap.parse_args()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    from spad.gui.main_window import MainWindow

    with tempfile.TemporaryDirectory() as tmp:
        settings = QtCore.QSettings(str(Path(tmp) / "gui.ini"), QtCore.QSettings.IniFormat)
        w = MainWindow(settings)
        w.resize(*map(int, a.size.split("x")))     # the offscreen screen is 800x600
        w.arrange()
        w.default_layout()
        w.show()
        w.open_paths([a.session])
        while w.worker is None or not w.worker.isFinished():
            app.processEvents()
        for _ in range(20):
            app.processEvents()
        w.particles.set_current(str(a.session / a.particle))
        choice = w.decay.choice
        names = [choice.itemText(i) for i in range(choice.count())]
        index = (int(a.decay) if a.decay.isdigit()
                 else next(i for i, n in enumerate(names) if n.startswith(a.decay)))
        choice.setCurrentIndex(index)
        for _ in range(20):
            app.processEvents()
        w.grab().save(str(a.out))
        w.close()


if __name__ == "__main__":
    main()
