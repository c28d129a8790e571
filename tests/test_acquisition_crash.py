"""kill -9 during a recording: the file opens, nothing flushed is lost, and nothing is held
unflushed for longer than the flush interval.

Two tests, neither of which depends on the machine's speed:

- ``spad acquire`` runs in a child process on the simulated rig. A reader in this process
  follows the file in SWMR mode, as another program at the microscope would, and the child is
  killed with SIGKILL once the reader has seen the file grow several times (a readiness
  signal, not a wall-clock moment). From the file alone: it opens with ``spad.open``, holds
  every photon the reader saw before the kill, and analyses like any other. How many seconds
  a kill loses on this machine is measured by ``make torture`` (README), not asserted here: a
  loaded machine makes both the writer and the reader late.
- The flush cadence, in this process with a simulated clock and photons fed as fast as they
  are simulated: no photon stays unflushed for more than ``flush_s`` (at most 1 s) of the clock
  plus one FIFO read, which is what bounds the seconds a kill -9 can lose.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np

import spad
from spad.app.acquisition import engine
from spad.app.acquisition.engine import Acquisition, AcquisitionSettings
from spad.app.acquisition.simrig import simulated_rig
from tests.fuzz.torture import visible_count

GROWTHS_BEFORE_KILL = 4
"""Times the reader sees the file grow before the kill: several flushes are in the file."""


def test_kill_9_leaves_a_valid_file_with_everything_flushed(tmp_path) -> None:
    path = tmp_path / "crash.h5"
    child = subprocess.Popen(
        [sys.executable, "-m", "spad.app.cli", "acquire", "-o", str(path), "--duration", "600",
         "--particle", "monomer", "--seed", "3", "--exposure", "0.5"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen: list[int] = []
    try:
        limit = time.monotonic() + 600     # a hang guard only, never reached when all is well
        f = None
        while (time.monotonic() < limit and child.poll() is None
               and len(seen) < GROWTHS_BEFORE_KILL):
            n, f = visible_count(path, f)
            if n and (not seen or n != seen[-1]):
                seen.append(n)
            time.sleep(0.02)
        if f is not None:
            f.close()
        assert child.poll() is None, child.stderr.read().decode()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(60)
    finally:
        if child.poll() is None:
            child.kill()
        child.stderr.close()
    assert len(seen) == GROWTHS_BEFORE_KILL
    with spad.open(path) as reader:           # the file is valid after kill -9
        m = reader.read()
    assert len(m.photons.timestamps) >= seen[-1]   # nothing that was flushed is lost
    assert np.all(np.diff(m.photons.timestamps) >= 0)
    assert any("not closed" in w for w in m.meta.warnings)
    from spad.app.cli import main
    assert main(["analyze", str(path), "--json"]) == 0     # and it analyses like any other


class _Clock:
    """A simulated monotonic clock: each reading is ``step_s`` later than the last."""

    def __init__(self, step_s: float) -> None:
        self.step_s = step_s
        self.now = 0.0

    def __call__(self) -> float:
        self.now += self.step_s
        return self.now


def test_no_photon_stays_unflushed_longer_than_the_flush_interval(tmp_path, monkeypatch) -> None:
    clock = _Clock(0.07)
    written: list[float] = []     # clock time of each chunk appended, until it is flushed
    ages: list[float] = []        # at each flush: how long its oldest chunk waited

    class Recorder(engine.ParticleRecorder):
        def write_photons(self, chunk) -> None:  # noqa: ANN001
            super().write_photons(chunk)
            written.append(clock.now)

        def flush(self) -> None:
            super().flush()
            if written:
                ages.append(clock.now - written[0])
            written.clear()

    monkeypatch.setattr(engine, "ParticleRecorder", Recorder)
    settings = AcquisitionSettings(duration_s=4.0, flush_s=0.5)
    with simulated_rig("monomer", seed=5, realtime=False, camera=False) as rig:
        out = Acquisition(rig, settings, path=tmp_path / "c.h5", analysis_worker=False,
                          clock=clock).run()
    assert out.stop_reason == "duration" and len(ages) >= 5
    # flushed at the first read at least flush_s after the last flush: a chunk waits at most
    # flush_s, plus the read it arrived in
    assert max(ages) <= settings.flush_s + clock.step_s + 1e-9, max(ages)
    assert written == []                      # the last chunks were flushed at the end
