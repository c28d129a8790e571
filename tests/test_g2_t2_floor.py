"""T2 without sync at the study's conditions (issue 19): the correlogram fit measures the
uncorrelated floor itself (no decay floor, and the OFF level's rate is only an upper bound),
g2(0)'s error carries the floor's, and the fitted systematic of an unmeasured background is
dropped; the period search does not lock onto half the laser's frequency."""

from __future__ import annotations

import numpy as np
import pytest
from spad.analysis.classify import background_measured
from spad.analysis.photon_analysis import AnalysisSettings, analyze_photons
from spad.simulators.emitter import g2_zero
from spad.simulators.stream import simulate

from spad.app.calibrate import build_particle, study_conditions


def _study_t2(kind, seed, duration_s=30.0):
    cond = dict(study_conditions(np.random.default_rng([seed, 77])), mode="T2",
                duration_s=duration_s)
    emitter, detection = build_particle(kind, seed, cond)
    sim = simulate(emitter, detection, duration_s, seed, chunk_s=1.0)
    return g2_zero(emitter), analyze_photons(sim.chunks(), AnalysisSettings())


@pytest.mark.parametrize(("kind", "seed"), [("monomer", 6007), ("monomer", 6011),
                                            ("dimer", 6003), ("dimer", 6005)])
def test_t2_study_g2_with_the_fitted_floor_against_truth(kind, seed):
    truth, res = _study_t2(kind, seed)
    assert res.g2_period_s == pytest.approx(200e-9, rel=1e-3)   # 6003 was read at 400 ns
    assert "fitted floor" in res.g2_correction and "off level" not in res.g2_correction
    assert background_measured(res.g2_correction)
    assert abs(res.g2_zero - truth) < 3 * res.g2_zero_err + 0.02, (res.g2_zero,
                                                                    res.g2_zero_err, truth)
    assert res.g2_zero_err < 0.1
    assert any("floor fitted" in n for n in res.notes)


def test_background_measured_strings():
    assert background_measured("sync pairs+decay floor")
    assert background_measured("correlogram fit+fitted floor")
    assert not background_measured("off level+correlogram fit")
    assert not background_measured("none")
