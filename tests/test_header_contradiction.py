"""A header that contradicts the data (issue 23, item 7): a T3 file whose TCSPC delays occupy
far more than its stated sync period is warned about by the reader (so by ``spad info`` and
``spad analyze``), and the lifetime is fitted over the delays' range, not the stated period."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from spad.app.cli import main
from spad.app.commands.info import summarise
from spad.formats.base import delay_problem
from spad.formats.ptu import PtuWriter
from spad.photons import PhotonChunk, Timing

DATA = Path(__file__).parent / "data" / "picoquant-sample-data"
NS = 1e-9


def _contradicting_ptu(path: Path, n: int = 60_000) -> Path:
    """A HydraHarp T3 file stating an 80 MHz sync (12.51 ns, 783 bins of 16 ps) whose photons
    decay with 40 ns over 524 ns of delays, as the public recording the issue names."""
    rng = np.random.default_rng(7)
    unit, period = 16e-12, 12.51e-9
    timing = Timing("T3", period, unit, period, 783)
    delay = 3 * NS + rng.normal(0, 0.2 * NS, n) + rng.exponential(40 * NS, n)
    keep = (delay > 0) & (delay < 32768 * unit)
    delay = delay[keep]
    syncs = np.sort(rng.choice(2_000_000_000, size=delay.size, replace=False))
    chunk = PhotonChunk(timing, syncs, rng.integers(1, 3, delay.size).astype(np.uint8),
                        (delay / unit).astype(np.uint16))
    with PtuWriter(path, "HydraHarp2T3", timing) as w:
        w.write(chunk)
    return path


def test_delay_problem_rule():
    t = Timing("T3", 200 * NS, 0.1 * NS, 200 * NS, 2000)
    ok = np.zeros(2800)
    ok[700:2640] = 10.0                # 194 ns of a 200 ns period, past the stated bins
    assert delay_problem(ok, t) is None
    bad = np.zeros(5000)
    bad[:5000] = 10.0                  # 500 ns of delays at a 200 ns period
    msg = delay_problem(bad, t)
    assert msg and "contradicts" in msg and "60% of them beyond the stated 2000" in msg
    assert delay_problem(bad, Timing("T2", 1e-12, None, 200 * NS)) is None


@pytest.mark.parametrize("name", ["v50.t3r", "v20_t3.ptu", "v20.ht3"])
def test_real_files_raise_no_contradiction(name):
    s = summarise(str(DATA / name))
    assert not any("contradicts" in w for w in s["warnings"])


def test_info_and_analyze_warn_and_lifetime_uses_the_data(tmp_path, capsys):
    path = _contradicting_ptu(tmp_path / "contradicting.ptu")
    s = summarise(str(path))
    assert any("contradicts the data" in w and "beyond the stated 783 TCSPC bins" in w
               for w in s["warnings"])
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main(["analyze", "--jobs", "1", "--json", str(path)])
    out = capsys.readouterr()
    rec = json.loads(out.out.splitlines()[0])
    assert any("header contradicts the data" in n for n in rec["notes"])
    assert rec["lifetime_ns"] is not None
    assert rec["lifetime_ns"] == pytest.approx(40, abs=2)
