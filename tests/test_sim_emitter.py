"""Tests of the emitter model, its presets and the blinking timeline."""

from __future__ import annotations

import math

import numpy as np
import pytest
from spad.simulators.blinking import Timeline, sample_dwells
from spad.simulators.emitter import (
    Emitter,
    PowerLaw,
    State,
    dimer,
    dimer_shift_ev,
    g2_zero,
    monomer,
    pair,
    pulse_moments,
)


def _alpha_mle(t: np.ndarray, t_min: float) -> tuple[float, float]:
    """Clauset et al. MLE of a power-law exponent and its standard error."""
    a = 1 + t.size / np.log(t / t_min).sum()
    return a, (a - 1) / math.sqrt(t.size)


# -- photon statistics per pulse ----------------------------------------------------------------

def test_low_excitation_g2_tends_to_bx_ratio() -> None:
    e = monomer(blinking=False, mean_excitations=1e-4)
    assert g2_zero(e) == pytest.approx(e.bx_qy_ratio, rel=1e-3)


def test_pulse_moments_match_direct_enumeration() -> None:
    n, qx, qb, eta = 0.3, 0.8, 0.1, 0.2
    # Sum over the Poisson number of excitons: 0, 1, >= 2 (cascade of BX then X).
    p0, p1 = math.exp(-n), n * math.exp(-n)
    p2 = 1 - p0 - p1
    pk2 = p2 * qb * eta * qx * eta                      # two photons detected
    pk1 = p1 * qx * eta + p2 * (qb * eta * (1 - qx * eta) + (1 - qb * eta) * qx * eta)
    mu, m2 = pulse_moments(n, qx, qb, eta)
    assert mu == pytest.approx(pk1 + 2 * pk2)
    assert m2 == pytest.approx(2 * pk2)


def test_two_equal_emitters_give_the_domain_formula() -> None:
    # docs/physics.md, "Two emitters in one focus":
    # (I1^2 g1 + I2^2 g2 + 2 I1 I2)/(I1+I2)^2 = 0.55 for equal emitters, g = 0.1.
    e = monomer(blinking=False, mean_excitations=1e-4, bx_qy_ratio=0.1)
    assert g2_zero([e, e]) == pytest.approx(0.55, abs=1e-3)
    # Unequal brightness: the formula with the single-emitter g2 values.
    f = monomer(blinking=False, mean_excitations=3e-4, bx_qy_ratio=0.1)
    i1, i2 = e.state_moments()[0][0], f.state_moments()[0][0]
    g1, g2 = g2_zero(e), g2_zero(f)
    want = (i1 ** 2 * g1 + i2 ** 2 * g2 + 2 * i1 * i2) / (i1 + i2) ** 2
    assert g2_zero([e, f]) == pytest.approx(want, rel=1e-9)


# -- presets ------------------------------------------------------------------------------------

def test_monomer_preset_follows_domain_numbers() -> None:
    m = monomer()
    on, off = m.states
    assert on.qy == 0.9 and on.lifetimes_s == (30e-9,)
    assert off.qy == 0.05 and off.lifetimes_s == (2e-9,)
    assert m.bx_qy_ratio == 0.08
    assert 1240 / m.peak_ev == pytest.approx(620, abs=5)  # nm
    assert m.fwhm_ev == pytest.approx(0.070)
    assert m.stationary_fractions()[0] > 0.8  # high ON fraction
    assert 0.07 < g2_zero(m) < 0.1


def test_dimer_preset_shift_width_lifetime_and_g2() -> None:
    m, d = monomer(), dimer(6.0)
    assert dimer_shift_ev(2.0) == 0 and dimer_shift_ev(1.0) == 0
    assert 0.025 <= m.peak_ev - d.peak_ev <= 0.030
    assert dimer_shift_ev(4.0) == pytest.approx(0.5 * dimer_shift_ev(6.0))  # linear in neck
    assert d.fwhm_ev > m.fwhm_ev
    assert max(s.mean_lifetime_s for s in d.states) < m.states[0].mean_lifetime_s
    assert all(len(s.lifetimes_s) > 1 for s in d.states)
    assert len(d.states) >= 4 and max(s.dwell.t_cut_s for s in d.states) < 0.1  # flickering
    assert 0.5 <= g2_zero(d) <= 0.6
    assert d.emission_rate_hz().max() > m.emission_rate_hz().max()  # brighter


def test_pair_is_two_independent_monomers() -> None:
    a, b = pair(rng=7)
    assert a.peak_ev != b.peak_ev
    assert 0.45 < g2_zero((a, b)) < 0.6


def test_overrides_and_unknown_override() -> None:
    m = monomer(mean_excitations=0.05, rep_rate_hz=2.5e6)
    assert m.mean_excitations == 0.05 and m.rep_rate_hz == 2.5e6
    with pytest.raises(TypeError, match="rep_rate"):
        monomer(rep_rate=5e6)


def test_population_spread_from_rng() -> None:
    rng = np.random.default_rng(11)
    peaks = np.array([monomer(rng=rng).peak_ev for _ in range(400)])
    taus = np.array([monomer(rng=rng).states[0].lifetimes_s[0] for _ in range(400)])
    # sd of a 400-sample standard deviation is ~3.5 %; allow 15 %.
    assert np.std(peaks) == pytest.approx(0.025, rel=0.15)
    assert np.mean(peaks) == pytest.approx(2.0, abs=4 * 0.025 / 20)
    assert np.std(np.log(taus)) == pytest.approx(0.10, rel=0.15)
    # The same seed gives the same particle.
    assert monomer(rng=5) == monomer(rng=5)


@pytest.mark.parametrize("bad", [
    dict(qy=1.2), dict(lifetimes_s=(-1e-9,)), dict(amplitudes=(0.5,)),
    dict(lifetimes_s=(1e-9, 2e-9), amplitudes=(0.5, 0.6))])
def test_bad_state_raises(bad: dict) -> None:
    kw = dict(name="X", qy=0.5, lifetimes_s=(1e-9,))
    kw.update(bad)
    with pytest.raises(ValueError, match="state 'X'"):
        State(**kw)


def test_bad_emitter_raises() -> None:
    on = State("ON", 0.9, (30e-9,))
    with pytest.raises(ValueError, match="row-stochastic"):
        Emitter("e", (on, on), transitions=((0.5, 0.5), (1.0, 0.0)))
    with pytest.raises(ValueError, match="biexciton"):
        Emitter("e", (on,), bx_qy_ratio=2.0)
    with pytest.raises(ValueError, match="alpha"):
        PowerLaw(alpha=1.0)


# -- dwell times --------------------------------------------------------------------------------

def test_power_law_exponent_recovered_by_mle() -> None:
    for alpha in (1.3, 1.5, 1.8):
        t = sample_dwells(alpha, 1e-3, None, 20000, seed=int(alpha * 10))
        assert t.min() >= 1e-3
        a, se = _alpha_mle(t, 1e-3)
        assert abs(a - alpha) < 4 * se  # se ~ 0.004


def test_truncated_power_law_mean() -> None:
    law = PowerLaw(1.5, 1e-3, 0.5)
    t = sample_dwells(law.alpha, law.t_min_s, law.t_cut_s, 40000, seed=3)
    assert t.mean() == pytest.approx(law.mean_s(), abs=4 * t.std() / math.sqrt(t.size))
    # The cut-off suppresses long dwells: none beyond 30 cut-off times.
    assert t.max() < 30 * law.t_cut_s
    assert PowerLaw(3.0, 1e-3).mean_s() == pytest.approx(2e-3)
    assert PowerLaw(1.5).mean_s() == math.inf


def test_timeline_exponents_and_alternation() -> None:
    on = State("ON", 0.9, (30e-9,), dwell=PowerLaw(1.5, 1e-3))
    off = State("OFF", 0.05, (2e-9,), dwell=PowerLaw(1.7, 1e-3))
    tl = Timeline(Emitter("m", (on, off)), seed=4)
    tl.extend_to(0.0)
    starts, states = tl.arrays()
    dwells = np.diff(starts)
    st = states[1:-1]  # drop the first and the censored last dwell
    d = dwells[1:]
    assert np.all(np.diff(states) != 0)  # two states: strict alternation
    for k, alpha in ((0, 1.5), (1, 1.7)):
        a, se = _alpha_mle(d[st == k], 1e-3)
        assert abs(a - alpha) < max(4 * se, 0.05)


def test_timeline_is_independent_of_how_far_ahead_it_is_drawn() -> None:
    m = dimer()
    a, b = Timeline(m, seed=9, key=(1, 0)), Timeline(m, seed=9, key=(1, 0))
    for t in np.linspace(0.01, 5.0, 50):
        a.extend_to(t)
    b.extend_to(5.0)
    assert np.array_equal(a.arrays()[0], b.arrays()[0])
    assert np.array_equal(a.arrays()[1], b.arrays()[1])
    c = Timeline(m, seed=9, key=(1, 1))
    c.extend_to(5.0)
    assert not np.array_equal(c.arrays()[0][:10], b.arrays()[0][:10])


def test_stationary_fractions_match_a_long_timeline() -> None:
    # Finite-variance dwells (alpha > 3) so the time fraction converges quickly.
    on = State("ON", 0.9, (30e-9,), dwell=PowerLaw(3.5, 1e-3))
    off = State("OFF", 0.05, (2e-9,), dwell=PowerLaw(4.0, 1e-3))
    grey = State("G", 0.3, (10e-9,), dwell=PowerLaw(4.0, 2e-3))
    e = Emitter("m", (on, off, grey), transitions=((0, 0.7, 0.3), (1, 0, 0), (0.5, 0.5, 0)))
    tl = Timeline(e, seed=2)
    f = tl.fractions(30.0)
    # ~15000 dwells: the fractions are known to well under 0.01.
    assert f == pytest.approx(e.stationary_fractions(), abs=0.01)
    starts, states, dw = tl.dwells(30.0)
    assert starts[0] == 0 and dw.sum() == pytest.approx(30.0)
