"""g2(0) of pulsed T3 recordings at 15-64 MHz with decays of 10-40 ns, against simulated truth
(issue 19): where the decay runs past the next sync, photons of neighbouring pulses share a
sync label, and where the period holds few lifetimes the lag windows' tails leak; neither may
turn a monomer into a dimer-like g2(0)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from spad.analysis.g2_pairs import MAX_LABEL_BIAS, label_bias
from spad.analysis.g2_timing import OVERLAP_LIFETIMES
from spad.analysis.photon_analysis import AnalysisSettings, analyze_photons
from spad.simulators.emitter import g2_zero
from spad.simulators.stream import simulate

from spad.app.calibrate import build_particle


def test_label_bias_is_twice_the_share_of_photons_past_the_next_sync():
    # 50 MHz, 40 ns decay, pulse 2 ns after the sync: q = exp(-18/40)
    q = math.exp(-18.0 / 40.0)
    assert label_bias(20e-9, {1: 2e-9, 2: 1e-9}, 40e-9) == pytest.approx(min(1.0, 2 * q))
    # 5 MHz, 30 ns: negligible; no decay known: no bound
    assert label_bias(200e-9, {1: 2e-9}, 30e-9) < 1e-2
    assert label_bias(20e-9, {1: 2e-9}, None) is None
    assert label_bias(20e-9, {}, 10e-9) is None


# (kind, repetition rate, bright-state lifetime, detected rate, background share, seed)
CASES = [
    ("monomer", 17.0e6, 17.1, 63e3, 0.02, 3000),   # windows read 0.205 +/- 0.033 (true 0.082)
    ("monomer", 30.0e6, 10.0, 40e3, 0.05, 3001),   # sync pairs read 0.31 (label bias 0.11)
    ("monomer", 15.0e6, 20.0, 40e3, 0.03, 3002),
    ("monomer", 50.0e6, 40.0, 60e3, 0.00, 3003),
    ("monomer", 64.0e6, 25.0, 50e3, 0.02, 3004),
    ("dimer", 20.0e6, 30.0, 50e3, 0.03, 3005),
    ("dimer", 40.0e6, 12.0, 60e3, 0.05, 3006),
]


@pytest.mark.parametrize(("kind", "rep", "tau_ns", "rate", "bg", "seed"), CASES)
def test_fast_t3_g2_against_truth(kind, rep, tau_ns, rate, bg, seed):
    cond = {"rate_cps": rate, "duration_s": 10.0, "rep_rate_hz": rep, "lifetime_ns": tau_ns,
            "background": bg, "irf_fwhm_s": 100e-12, "mode": "T3"}
    emitter, detection = build_particle(kind, seed, cond)
    truth = g2_zero(emitter)
    res = analyze_photons(simulate(emitter, detection, 10.0, seed, chunk_s=1.0).chunks(),
                          AnalysisSettings())
    if res.g2 is not None and res.g2.correction.startswith("sync pairs"):
        # pairs counted by label only where mislabelled photons cannot bias them
        tau = res.lifetime_all.tau_intensity_mean
        assert label_bias(res.g2_period_s, res.pulse_delay_s, tau) <= MAX_LABEL_BIAS
        assert res.g2_period_s >= OVERLAP_LIFETIMES * tau
    if res.g2_zero is None:
        assert any("g2(0)" in n for n in res.notes)     # withheld, and said why
        return
    err = res.g2_zero_err
    assert abs(res.g2_zero - truth) < 3 * err + 0.02, (res.g2_zero, err, truth,
                                                        res.g2.correction)
    if kind == "monomer":
        # never a monomer with a dimer's g2(0) at a dimer's precision
        assert res.g2_zero - 2 * err < 0.3


def test_fast_t3_monomers_mostly_get_a_g2():
    """Nulls are allowed where the evidence is thin, not as the rule: of a grid of monomers at
    15-30 MHz with 10-30 ns decays at 50 kcps, most get a g2(0) (all within 3 standard errors
    of the truth, checked above on their kin)."""
    got = 0
    grid = [(15e6, 10.0), (15e6, 30.0), (22e6, 20.0), (30e6, 10.0), (30e6, 30.0)]
    for i, (rep, tau) in enumerate(grid):
        cond = {"rate_cps": 50e3, "duration_s": 10.0, "rep_rate_hz": rep, "lifetime_ns": tau,
                "background": 0.02, "irf_fwhm_s": 100e-12, "mode": "T3"}
        emitter, detection = build_particle("monomer", 3100 + i, cond)
        res = analyze_photons(simulate(emitter, detection, 10.0, 3100 + i,
                                       chunk_s=1.0).chunks(), AnalysisSettings())
        if res.g2_zero is not None and np.isfinite(res.g2_zero):
            got += 1
            assert abs(res.g2_zero - g2_zero(emitter)) < 3 * res.g2_zero_err + 0.02
    assert got >= 4
