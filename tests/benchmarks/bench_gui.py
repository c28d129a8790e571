"""Benchmark: refresh rate of the desktop app's live views while the simulated tagger delivers
about 1 M photons/s.

The app runs as at the microscope (the main window, the live mode, the acquisition engine in
its own thread) on a simulated tagger in real time: a non-blinking dot at a 20 MHz laser,
<N> = 0.5, so that one dot reaches 1 M photons/s. No camera (the EMCCD simulation would
compete for the CPU with the photon simulation, which a real rig does not do). The display
timer asks for a refresh every REFRESH_MS (80 ms, 12.5 Hz); the figures are the refreshes
achieved per second of wall time, the timer intervals missed ("dropped frames": a refresh
or the event loop took longer than the interval), the cost of one refresh, and the photon
rate that actually arrived (the simulator itself may not reach 1 M/s in real time on a loaded
machine; with ``--paced`` the records are simulated first and then served at the wall-clock pace).

Run: ``QT_QPA_PLATFORM=offscreen .venv/bin/python tests/benchmarks/bench_gui.py
[--rate CPS] [--seconds S] [--paced]``. Figures printed, nothing asserted.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from types import SimpleNamespace
from typing import Any

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def bright_rig(rate_hz: float) -> SimpleNamespace:
    """A simulated tagger seeing a non-blinking dot (20 MHz laser, <N> = 0.5), collected so that
    about ``rate_hz`` photons/s are detected (one dot at 5 MHz, <N> = 0.1 gives ~0.2 M/s)."""
    from spad.simulators.detection import Detection
    from spad.simulators.emitter import monomer
    from spad.simulators.tagger import SimulatedTagger

    dot = monomer(blinking=False, rep_rate_hz=20e6, mean_excitations=0.5)
    det = Detection()
    bright = float(dot.state_moments(det.efficiency)[0].max() * dot.rep_rate_hz)
    collection = det.collection_efficiency * rate_hz / bright
    if collection > 1:
        raise SystemExit(f"{rate_hz:g} counts/s is out of reach of the simulated dot")
    det = det.replace(collection_efficiency=collection)
    tagger = SimulatedTagger(dot, det, seed=1, realtime=True)
    tagger.open()  # instruments are opened before use, as open_rig does
    return SimpleNamespace(tagger=tagger, camera=None, spectrograph=None)


class PacedTagger:
    """Records simulated beforehand, served at the wall-clock pace they were recorded at: the
    tagger delivers its rate whatever the machine's load, and the CPU goes to the app, as with
    a real tagger (``--paced``). Everything else is the simulated tagger's."""

    def __init__(self, tagger: Any, seconds: float) -> None:
        from spad.formats.records import Decoder

        self._t = tagger
        tagger.realtime = False
        tagger.start(seconds)
        parts = []
        while (w := tagger.read()) is not None:
            parts.append(w)
        tagger.stop()
        self._words = np.concatenate(parts)
        # each record's time, to hand them out when the wall clock has reached it
        chunk = Decoder(tagger.record_type, tagger.timing).decode(self._words)
        self._span_s = float(chunk.times_s()[-1]) if len(chunk) else 0.0
        self._n = self._words.size
        self._pos = 0
        self._t0: float | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._t, name)

    def start(self, duration_s: float) -> None:
        self._pos, self._t0 = 0, time.perf_counter()

    def read(self) -> np.ndarray | None:
        if self._pos >= self._n:
            return None
        frac = min(1.0, (time.perf_counter() - self._t0) / max(self._span_s, 1e-9))
        end = min(self._n, max(self._pos, int(frac * self._n)), self._pos + 131072)
        if end == self._pos:
            time.sleep(0.002)      # like a FIFO poll that found nothing yet
        out = self._words[self._pos:end]
        self._pos = end
        return out

    def stop(self) -> None:
        self._pos = self._n

    def close(self) -> None:
        self._t.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=1e6, help="detected count rate, counts/s")
    ap.add_argument("--seconds", type=float, default=15.0, help="recorded time, s")
    ap.add_argument("--screenshot", metavar="PNG", help="save the window at the end")
    ap.add_argument("--paced", action="store_true",
                    help="simulate the records first, then serve them at wall-clock pace")
    args = ap.parse_args()

    from PyQt5 import QtCore, QtWidgets

    app = QtWidgets.QApplication([])
    from spad.gui.live_mode import REFRESH_MS, attach_live
    from spad.gui.main_window import MainWindow
    with tempfile.TemporaryDirectory() as tmp:
        rig = bright_rig(args.rate)
        if args.paced:
            rig.tagger = PacedTagger(rig.tagger, args.seconds)
        settings = QtCore.QSettings(os.path.join(tmp, "gui.ini"), QtCore.QSettings.IniFormat)
        w = MainWindow(settings)
        w.resize(1600, 1000)
        w.show()
        live = attach_live(w, rig=rig)
        live.recorder.folder.setText(os.path.join(tmp, "session"))
        live.recorder.duration.setValue(args.seconds)
        done = QtCore.QTimer()
        done.setInterval(50)
        done.timeout.connect(lambda: None if live.recording else app.quit())
        t0 = time.perf_counter()
        live.record()
        done.start()
        app.exec_()
        wall = time.perf_counter() - t0
        st = live.stats.summary()
        state = live.acq.snapshot()
        rec_s = live.acq.wait(10).recording_wall_s   # start to file closed
        if args.screenshot:
            w.grab().save(args.screenshot)
        w.close()
        rig.tagger.close()
    load = os.getloadavg()
    print(f"asked: {args.rate:.3g} counts/s for {args.seconds:g} s of recorded time; "
          f"refresh every {REFRESH_MS} ms ({1e3 / REFRESH_MS:.1f} Hz)")
    print(f"recorded {state.photons} photons in {state.elapsed_s:.1f} s recorded time, "
          f"{wall:.1f} s wall ({rec_s:.1f} s recording, then the final analysis): "
          f"{state.photons / rec_s / 1e6:.2f} M photons/s arrived while recording")
    print(f"refreshes {st['refreshes']}, rate {st['rate_hz']:.1f} Hz, dropped frames "
          f"{st['dropped']}, refresh cost mean {st['mean_cost_ms']:.1f} ms, "
          f"max {st['max_cost_ms']:.1f} ms")
    print(f"ended: {state.status}; {state.stop_reason or ''} {state.error or ''}")
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
