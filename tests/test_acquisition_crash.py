"""kill -9 during a recording: the file opens, and at most the last second is lost.

``spad acquire`` runs in a child process on the simulated rig (real time). A reader in this
process follows the file in SWMR mode, as another program at the microscope would, noting when
each photon count became visible; then the child is killed with SIGKILL at a random moment.
Everything is checked from the file alone: it opens with ``spad.open``, it holds every photon
that was visible before the kill (flushed data is durable), and visible updates never lagged
more than 1 s apart (so no more than 1 s of photons was ever unflushed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np

import spad
from tests.fuzz.torture import visible_count


def test_kill_9_leaves_a_valid_file_losing_at_most_one_second(tmp_path) -> None:
    path = tmp_path / "crash.h5"
    child = subprocess.Popen(
        [sys.executable, "-m", "spad.app.cli", "acquire", "-o", str(path), "--duration", "60",
         "--particle", "monomer", "--seed", "3", "--exposure", "0.5"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.exists(), child.stderr.read().decode() if child.poll() is not None else ""
        seen: list[tuple[float, int]] = []
        kill_after = 3.0 + np.random.default_rng().uniform(0, 2)
        t_first = None
        f = None
        while time.monotonic() < deadline:
            n, f = visible_count(path, f)
            now = time.monotonic()
            if n and (not seen or n != seen[-1][1]):
                seen.append((now, n))
                t_first = t_first or now
            if t_first is not None and now - t_first > kill_after:
                break
            time.sleep(0.02)
        if f is not None:
            f.close()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    assert len(seen) >= 3
    gaps = np.diff([t for t, _ in seen])
    assert gaps.max() <= 1.0, gaps            # flushed at least once a second
    with spad.open(path) as reader:           # the file is valid after kill -9
        m = reader.read()
    n = len(m.photons.timestamps)
    assert n >= seen[-1][1]                    # nothing that was flushed is lost
    assert np.all(np.diff(m.photons.timestamps) >= 0)
    span = (m.photons.timestamps[-1] - m.photons.timestamps[0]) * m.timing.timestamp_unit
    assert span >= seen[-1][0] - seen[0][0] - 1.0
    assert any("not closed" in w for w in m.meta.warnings)
    from spad.app.cli import main
    assert main(["analyze", str(path), "--json"]) == 0     # and it analyses like any other
