"""spad.app.calibrate's checks of the stated probability: slopes of the log-odds fitted without
intercept, the two out-of-fold maps (Platt; a slope on all but the blinking evidence, which
keeps the blinking cap), and analysed populations cached in blocks that a new run resumes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spad.app import calibrate


def test_slopes_fit_recovers_known_slopes_with_an_offset() -> None:
    rng = np.random.default_rng(11)
    a = rng.normal(0.0, 3.0, 20000)
    b = rng.normal(0.0, 2.0, 20000)
    y = rng.random(a.size) < 1.0 / (1.0 + np.exp(-(0.6 * a + 2.0 * b)))
    both = calibrate.slopes_fit(np.column_stack([a, b]), y)
    assert both == pytest.approx([0.6, 2.0], abs=0.08)
    # the second kind of evidence taken as it is (an offset): only the first slope fitted
    y = rng.random(a.size) < 1.0 / (1.0 + np.exp(-(1.5 * a + b)))
    assert calibrate.slopes_fit(a[:, None], y, offset=b)[0] == pytest.approx(1.5, abs=0.08)


def test_the_map_on_the_rest_keeps_the_blinking_cap() -> None:
    """Blinking evidence alone goes through the slope-on-the-rest map unchanged (so an ON
    fraction alone stays below a verdict); the Platt map of the summed log-odds scales it."""
    blinking = {"on_fraction": 2.0, "intensity_excess_var": 0.59}
    rest = {"on_fraction": 2.0, "intensity_excess_var": 0.59, "g2_zero": 1.0}
    plain = 1.0 / (1.0 + math.exp(-2.59))
    assert calibrate.mapped_p(blinking, {"slope_other": 1.7}) == pytest.approx(plain)
    assert calibrate.mapped_p(rest, {"slope_other": 1.7}) == pytest.approx(
        1.0 / (1.0 + math.exp(-(2.59 + 1.7))))
    assert calibrate.mapped_p(blinking, {"slope": 1.47, "offset": -0.11}) > 0.95
    assert calibrate.mapped_p({}, {"slope_other": 1.7}) == 0.5


def test_a_population_is_cached_in_blocks_and_resumed(tmp_path, monkeypatch) -> None:
    """A population of 120 + 120 is analysed in blocks of 50 + 50: the blocks hold the seeds
    of the whole run, a second run reads them, and a run whose middle block was lost
    analyses only that block."""
    calls = []

    def fake(n_each, seed0, workers, folder, preset="lab", keep=False):
        calls.append((n_each, seed0))
        return [{"kind": k, "seed": seed0 + 2 * i + (k == "dimer")}
                for i in range(n_each) for k in ("monomer", "dimer")]

    monkeypatch.setattr(calibrate, "simulate_population", fake)
    pop = calibrate.load_population("lab", 120, 7000, 1, tmp_path)
    assert calls == [(50, 7000), (50, 7100), (20, 7200)]
    assert [p["seed"] for p in pop] == list(range(7000, 7240))
    assert calibrate.load_population("lab", 120, 7000, 1, tmp_path) == pop
    assert len(calls) == 3
    (tmp_path / "analysed_lab_7100_50.pkl").unlink()
    assert calibrate.load_population("lab", 120, 7000, 1, tmp_path) == pop
    assert calls[3:] == [(50, 7100)]
