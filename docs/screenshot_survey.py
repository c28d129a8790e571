"""Screenshot of the Survey tab for the README (offscreen, no display needed).

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshot_survey.py OUT.png \
        [--particles 12] [--seed 3] [--size 1366x768]

Runs a survey of a simulated slide (``--particles`` particles, some fragile so that a skipped
one shows) in the Survey tab, as fast as simulated, recordings capped at 8 s, and saves the
Survey tab (floated off the window, at ``--size``) once it has finished. Look at the picture:
the scan with its candidates coloured by verdict, the queue, the population; labels, units,
nothing clipped. It is the README's docs/gui_survey.png.
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
    ap.add_argument("out", type=Path)
    ap.add_argument("--particles", type=int, default=12)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--size", default="1366x720")
    a = ap.parse_args()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    from spad.gui.main_window import MainWindow
    from spad.gui.survey import attach_survey

    from spad.app.rig import open_rig
    from spad.config import Rig, SlideSettings, StageSettings

    with tempfile.TemporaryDirectory() as tmp:
        settings = QtCore.QSettings(str(Path(tmp) / "gui.ini"), QtCore.QSettings.IniFormat)
        w = MainWindow(settings)
        w.resize(*map(int, a.size.split("x")))
        panel = attach_survey(w)
        size = max(4e-6, 1e-6 * (a.particles / 0.3) ** 0.5)

        def factory():  # noqa: ANN202
            cm = open_rig(Rig(stage=StageSettings(), slide=SlideSettings(
                n_particles=a.particles, size_m=size, seed=a.seed, fragile_fraction=0.15)),
                realtime=False)
            return cm.__enter__(), lambda: cm.__exit__(None, None, None)

        panel.rig_factory = factory
        panel.folder.setText(str(Path(tmp) / "survey"))
        panel.cap.setValue(8)
        dock = w.docks["Survey"]
        dock.setFloating(True)             # the tab on its own, as on a second monitor
        dock.resize(*map(int, a.size.split("x")))
        w.show()
        dock.show()
        done = []
        panel.finished.connect(done.append)
        panel.start()
        while not done:
            app.processEvents()
            QtCore.QThread.msleep(50)
        for _ in range(20):
            app.processEvents()
        dock.grab().save(str(a.out))
        print(panel.status.text())
        panel.shutdown()
        w.close()


if __name__ == "__main__":
    main()
