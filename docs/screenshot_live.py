"""Screenshot of the live mode for the README (offscreen, no display needed).

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshot_live.py OUT.png \
        [--session DIR] [--at S] [--particle dimer]

Simulates a few particles (monomers and dimers, with spectra) into a session directory and
opens it, so that the session table, the peak histograms and the population plot have
something to show, then records one more particle on the simulated rig in real time (photons
and EMCCD spectra) and saves the window ``--at`` seconds into the recording. Look at the
picture: labels, units, nothing clipped. The README shows docs/gui_live_1366.png and
docs/gui_live_1920.png (``--size 1920x1000``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt5 import QtCore, QtWidgets  # noqa: E402


def simulate_session(folder: Path) -> None:
    """Two monomers and two dimers, 10 s each, with spectra (spad simulate --vary)."""
    from spad.app.cli import main as spad

    folder.mkdir(parents=True, exist_ok=True)
    for i, particle in enumerate(("monomer", "dimer", "monomer", "dimer")):
        out = folder / f"{particle}_{i + 1}.h5"
        if not out.exists():
            spad(["simulate", "--particle", particle, "--seed", str(i + 1), "--vary",
                  "--duration", "10", "-o", str(out)])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--session", type=Path, help="where the simulated particles go "
                    "(default: a temporary folder)")
    ap.add_argument("--at", type=float, default=8.0, help="seconds into the recording")
    ap.add_argument("--particle", default="dimer", help="what the simulated rig sees")
    ap.add_argument("--size", default="1366x688", help="window size (default: as it opens on a "
                    "1366x768 screen with a task bar)")
    a = ap.parse_args()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    from spad.gui.live_mode import attach_live
    from spad.gui.main_window import MainWindow

    from spad.app.acquisition.simrig import simulated_rig

    with tempfile.TemporaryDirectory() as tmp:
        session = a.session or Path(tmp) / "session"
        simulate_session(session)
        settings = QtCore.QSettings(str(Path(tmp) / "gui.ini"), QtCore.QSettings.IniFormat)
        w = MainWindow(settings)
        w.resize(*map(int, a.size.split("x")))
        w.show()
        w.open_paths([session])
        while w.worker is None or not w.worker.isFinished():
            app.processEvents()
        with simulated_rig(a.particle, seed=7) as rig:
            live = attach_live(w, rig=rig)
            w.resize(*map(int, a.size.split("x")))   # the offscreen screen is 800x600
            w.arrange()
            w.default_layout()
            live.recorder.folder.setText(str(Path(tmp) / "live"))
            live.recorder.duration.setValue(60)
            while not live.recorder.ready:      # the kernels' warm-up, as a user waits for it
                app.processEvents()
                time.sleep(0.01)
            live.record()
            t0 = time.perf_counter()
            # at --at seconds, once a live analysis has been drawn (on a loaded machine the
            # analysis worker's first start can take several seconds)
            while time.perf_counter() - t0 < a.at + 600 and (
                    live.acq.snapshot().elapsed_s < a.at or live.acq.analysed is None):
                app.processEvents()
                time.sleep(0.005)
            for _ in range(20):
                app.processEvents()
            w.grab().save(str(a.out))
            if os.environ.get("SPAD_DEBUG"):
                print(w.minimumSizeHint(), w.minimumSize(), w.centralWidget().minimumSizeHint())
                for n, d in w.docks.items():
                    print(n, d.minimumSizeHint(), d.size())
            live.abort()
            while live.recording:
                app.processEvents()
            live.shutdown()
        w.close()


if __name__ == "__main__":
    main()
