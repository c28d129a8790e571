"""Decay fits on simulated TCSPC histograms with known lifetimes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import norm
from spad.analysis.lifetimes import (
    _Decay,
    fit_decay,
    fit_states,
    fit_tail,
    periodic_decay_bins,
    state_decay_histograms,
)

NS = 1e-9


def simulate(rng, n, taus, fractions, period, n_bins, t0=5 * NS, sigma=0.15 * NS, bg=0.0):
    """Photon delays of a periodically excited emitter (photons of earlier pulses wrap around
    because the delay is taken modulo the period), histogrammed, with Poisson background per
    bin; also a measured IRF (2e5 photons) on the same bins."""
    comp = rng.choice(len(taus), size=n, p=fractions)
    delay = t0 + rng.normal(0, sigma, n) + rng.exponential(np.asarray(taus)[comp])
    edges = np.linspace(0, period, n_bins + 1)
    counts = np.histogram(delay % period, edges)[0] + rng.poisson(bg, n_bins)
    irf = np.histogram((t0 + rng.normal(0, sigma, 200_000)) % period, edges)[0]
    return counts, edges, irf


def test_periodic_decay_bins_match_sum_over_pulses():
    period, tau = 50 * NS, 40 * NS
    edges = np.linspace(-20 * NS, 30 * NS, 101)
    got = periodic_decay_bins(edges, tau, period)
    # brute force: fine-grid integral of the sum of decays of the 200 previous pulses
    fine = np.linspace(edges[0], edges[-1], 100 * 500 + 1)
    mid = 0.5 * (fine[1:] + fine[:-1])
    k = np.arange(200)[:, None]
    age = mid[None, :] - (np.floor(mid / period)[None, :] - k) * period
    dens = (np.exp(-age / tau) / tau).sum(axis=0)
    want = (dens * np.diff(fine)).reshape(100, 500).sum(axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-4)
    assert periodic_decay_bins(np.linspace(0, period, 11), tau, period).sum() == pytest.approx(1)


@pytest.mark.parametrize("irf_kind", ["gaussian", "measured"])
def test_mono_exponential_with_irf(irf_kind):
    rng = np.random.default_rng(1)
    counts, edges, irf = simulate(rng, 100_000, [20 * NS], [1.0], 100 * NS, 2000, bg=0.5)
    r = fit_decay(counts, edges, 100 * NS, irf="gaussian" if irf_kind == "gaussian" else irf)
    assert r.success
    assert r.taus[0] == pytest.approx(20 * NS, rel=0.03)
    # 1e5 photons: sigma(tau)/tau >= 1/sqrt(N) = 0.3 %, more with a free background
    assert 1 < r.tau_errs[0] / (20 * NS / np.sqrt(1e5)) < 3
    assert abs(r.taus[0] - 20 * NS) < 4 * r.tau_errs[0]
    assert r.background == pytest.approx(0.5, abs=0.1)
    assert r.deviance_per_dof == pytest.approx(1.0, abs=0.1)
    if irf_kind == "gaussian":
        assert r.irf_center == pytest.approx(5 * NS, abs=0.05 * NS)
        assert r.irf_fwhm == pytest.approx(0.15 * NS * 2.3548, rel=0.2)
    else:
        assert abs(r.shift) < 0.05 * NS


def test_measured_irf_shift_is_found():
    rng = np.random.default_rng(2)
    counts, edges, _ = simulate(rng, 100_000, [10 * NS], [1.0], 100 * NS, 2000)
    # the IRF recorded 0.8 ns earlier than the decay's excitation (cable delay)
    _, _, irf = simulate(rng, 10, [10 * NS], [1.0], 100 * NS, 2000, t0=4.2 * NS)
    r = fit_decay(counts, edges, 100 * NS, irf=irf)
    assert r.shift == pytest.approx(0.8 * NS, abs=0.05 * NS)
    assert r.taus[0] == pytest.approx(10 * NS, rel=0.03)


def test_wrap_around_when_lifetime_is_comparable_to_period():
    rng = np.random.default_rng(3)
    period = 50 * NS
    counts, edges, _ = simulate(rng, 100_000, [40 * NS], [1.0], period, 1000)
    # No background here: with tau near T a free background trades off against tau (the decay
    # falls only by e^-1.25 over a period), which costs precision, not accuracy.
    r = fit_decay(counts, edges, period, irf="gaussian", background=False)
    assert r.taus[0] == pytest.approx(40 * NS, rel=0.03)
    assert abs(r.taus[0] - 40 * NS) < 4 * r.tau_errs[0]
    assert r.deviance_per_dof == pytest.approx(1.0, abs=0.1)
    free = fit_decay(counts, edges, period, irf="gaussian")
    assert abs(free.taus[0] - 40 * NS) < 4 * free.tau_errs[0]


def test_tail_fit():
    rng = np.random.default_rng(4)
    counts, edges, _ = simulate(rng, 100_000, [5 * NS], [1.0], 100 * NS, 2000, bg=0.2)
    r = fit_tail(counts, edges, 100 * NS, start=6.5 * NS)
    assert r.irf == "none"
    assert r.taus[0] == pytest.approx(5 * NS, rel=0.03)
    assert r.fit_start == pytest.approx(6.5 * NS)
    with pytest.raises(ValueError, match="before the peak"):
        fit_tail(counts, edges, 100 * NS, start=1 * NS)


def test_bi_exponential_recovery_and_mean_lifetimes():
    rng = np.random.default_rng(5)
    taus, fr = np.array([2 * NS, 20 * NS]), np.array([0.4, 0.6])
    counts, edges, irf = simulate(rng, 100_000, taus, fr, 100 * NS, 2000, bg=0.5)
    r = fit_decay(counts, edges, 100 * NS, n_exp=2, irf=irf)
    np.testing.assert_allclose(r.taus, taus, rtol=0.05)
    assert np.all(np.abs(r.taus - taus) < 4 * r.tau_errs)
    # simulated fractions are photon (intensity) fractions
    np.testing.assert_allclose(r.intensity_fractions, fr, atol=0.02)
    alpha = fr / taus / np.sum(fr / taus)
    np.testing.assert_allclose(r.amplitudes, alpha, atol=0.02)
    tau_int = np.sum(fr * taus)
    tau_amp = 1 / np.sum(fr / taus)
    assert r.tau_intensity_mean == pytest.approx(tau_int, rel=0.03)
    assert r.tau_amplitude_mean == pytest.approx(tau_amp, rel=0.03)
    assert abs(r.tau_intensity_mean - tau_int) < 4 * r.tau_intensity_mean_err
    assert abs(r.tau_amplitude_mean - tau_amp) < 4 * r.tau_amplitude_mean_err


def test_uncertainty_matches_scatter():
    # 24 independent 1e4-photon decays: the spread of tau must agree with the reported error.
    # The sample SD of 24 values is known to ~15 %, so 0.65-1.5 is a > 3 sigma band.
    rng = np.random.default_rng(6)
    est, err = [], []
    for _ in range(24):
        counts, edges, _ = simulate(rng, 10_000, [15 * NS], [1.0], 100 * NS, 500, bg=0.3)
        r = fit_decay(counts, edges, 100 * NS, irf="gaussian")
        est.append(r.taus[0])
        err.append(r.tau_errs[0])
    assert 0.65 < np.std(est, ddof=1) / np.mean(err) < 1.5


def test_per_state_histograms_and_fits():
    rng = np.random.default_rng(7)
    period = 100 * NS
    # levels alternate ON (tau 25 ns) and OFF (tau 3 ns), 0.5 s each, 10 levels
    start = np.arange(10) * 0.5
    end = start + 0.5
    state = np.arange(10) % 2  # 0 = ON here, 1 = OFF: labels are the caller's choice
    times, nano = [], []
    for s0, st in zip(start, state, strict=True):
        n = 20_000 if st == 0 else 8_000
        times.append(np.sort(s0 + 0.5 * rng.random(n)))
        tau = 25 * NS if st == 0 else 3 * NS
        nano.append((5 * NS + rng.normal(0, 0.15 * NS, n) + rng.exponential(tau, n)) % period)
    times, nano = np.concatenate(times), np.concatenate(nano)
    edges = np.linspace(0, period, 1001)
    hists = state_decay_histograms(times, nano, edges, start, end, state)
    assert hists[0].sum() == 100_000 and hists[1].sum() == 40_000
    fits = fit_states(times, nano, edges, period, start, end, state, irf="gaussian")
    assert fits[0].taus[0] == pytest.approx(25 * NS, rel=0.03)
    assert fits[1].taus[0] == pytest.approx(3 * NS, rel=0.03)


def test_result_serialises_and_bad_input_is_refused():
    rng = np.random.default_rng(8)
    counts, edges, _ = simulate(rng, 20_000, [10 * NS], [1.0], 100 * NS, 500)
    d = fit_decay(counts, edges, 100 * NS).to_dict()
    json.dumps(d, allow_nan=False)
    assert d["shift"] is None and d["n_exp"] == 1
    with pytest.raises(ValueError, match="uniform"):
        fit_decay(counts, np.geomspace(1e-12, 100 * NS, 501), 100 * NS)
    with pytest.raises(ValueError, match="more than one sync period"):
        fit_decay(counts, edges, 50 * NS)
    with pytest.raises(ValueError, match="n_exp"):
        fit_decay(counts, edges, 100 * NS, n_exp=4)
    with pytest.raises(ValueError, match="IRF"):
        fit_decay(counts, edges, 100 * NS, irf=np.ones(3))


def _brute_components(edges, period, taus, irf_mass, offset):
    """Model components by direct (not FFT) convolution: bin i gets sum_j irf_j times the decay
    share of the bin (i - j) bins after IRF bin j."""
    n = edges.size - 1
    dt = edges[1] - edges[0]
    out = np.zeros((len(taus), n))
    for r, tau in enumerate(taus):
        grid = (np.arange(2 * n + 1) - n) * dt - offset
        comp = periodic_decay_bins(grid, tau, period)  # offset k - n bins at index k
        for i in range(n):
            out[r, i] = np.dot(irf_mass, comp[n + i - np.arange(n)])
    return out


@pytest.mark.parametrize("kind", ["gaussian", "measured"])
def test_model_components_equal_direct_convolution_after_cached_calls(kind):
    # The model caches FFTs between calls and convolves on a 2n-point FFT: after a run of calls
    # with changing parameters, each call must still equal a direct convolution.
    rng = np.random.default_rng(11)
    period, n = 50 * NS, 97
    edges = np.linspace(0, period, n + 1)
    irf = rng.random(n) ** 8
    irf /= irf.sum()
    model = _Decay(edges, period, kind, irf if kind == "measured" else None, None)
    calls = [((3 * NS, 20 * NS), 0.0, 4 * NS, 0.3 * NS), ((3 * NS, 21 * NS), 0.0, 4 * NS, 0.3 * NS),
             ((3 * NS, 21 * NS), 0.1 * NS, 4.2 * NS, 0.3 * NS),
             ((3 * NS, 21 * NS), 0.1 * NS, 4.2 * NS, 0.5 * NS),
             ((3 * NS, 20 * NS), 0.0, 4 * NS, 0.3 * NS)]
    for taus, shift, centre, sigma in calls:
        got = model.components(np.array(taus), shift=shift, center=centre, sigma=sigma)
        if kind == "measured":
            want = _brute_components(edges, period, taus, irf, model.dt / 2 + shift)
        else:
            mass = _Decay(edges, period, kind, None, None).gaussian_irf(centre, sigma)
            want = _brute_components(edges, period, taus, mass, 0.0)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("kind", ["none", "gaussian", "measured"])
def test_cached_model_is_bit_identical_to_a_fresh_one_over_jacobian_columns(kind):
    # The model keeps several recent FFTs and components and reuses them when a point recurs
    # (each column of a finite-difference Jacobian steps one parameter and returns to the base
    # point): every call must give exactly the numbers a fresh model computes for that point.
    rng = np.random.default_rng(5)
    period, n = 50 * NS, 120
    edges = np.linspace(0, period, n + 1)
    irf = rng.random(n) ** 8
    irf /= irf.sum()

    def fresh() -> _Decay:
        return _Decay(edges, period, kind, irf if kind == "measured" else None,
                      2 * NS if kind == "none" else None)

    model = fresh()
    base = [2 * NS, 7 * NS, 19 * NS, 0.1 * NS, 4 * NS, 0.3 * NS]   # taus, shift, centre, sigma
    points = []
    for _ in range(3):                                  # three LM iterations
        points.append(list(base))
        for i in range(len(base)):                      # one column per parameter
            stepped = list(base)
            stepped[i] *= 1 + 1e-7
            points += [stepped, list(base)]
        base = [b * (1 + 0.05 * rng.standard_normal()) for b in base]
    for *taus, shift, centre, sigma in points:
        got = model.components(np.array(taus), shift=shift, center=centre, sigma=sigma)
        want = fresh().components(np.array(taus), shift=shift, center=centre, sigma=sigma)
        assert np.array_equal(got, want)


def test_gaussian_irf_mass_wraps_around_the_period():
    period, n = 50 * NS, 500
    edges = np.linspace(0, period, n + 1)
    dt = edges[1] - edges[0]
    mass = _Decay(edges, period, "gaussian", None, None).gaussian_irf(0.5 * NS, 0.4 * NS)
    assert mass.sum() == pytest.approx(1.0, rel=1e-9)  # the part before 0 wraps to the end
    left = edges[:-1]
    want = sum(norm.cdf(left + dt / 2, c, 0.4 * NS) - norm.cdf(left - dt / 2, c, 0.4 * NS)
               for c in (0.5 * NS - period, 0.5 * NS, 0.5 * NS + period))
    np.testing.assert_allclose(mass, want, rtol=1e-9, atol=1e-15)


def test_zero_background_is_fitted_at_its_bound_with_finite_errors():
    # No background at all (the case where LM used to crawl along the bound bg = 0 for
    # thousands of evaluations): the fit must end at bg ~ 0, succeed, give finite errors and
    # recover both lifetimes, within 4 of their own errors.
    rng = np.random.default_rng(12)
    taus, fr = np.array([3 * NS, 25 * NS]), np.array([0.3, 0.7])
    counts, edges, _ = simulate(rng, 300_000, taus, fr, 100 * NS, 800, bg=0.0)
    r = fit_decay(counts, edges, 100 * NS, n_exp=2, irf="gaussian")
    assert r.success
    assert r.background * r.n_bins < 0.01 * np.sqrt(counts.sum()) + 4 * r.background_err
    assert np.all(np.isfinite(r.tau_errs)) and np.isfinite(r.background_err)
    assert r.background_err > 0
    assert np.all(np.abs(r.taus - taus) < 4 * r.tau_errs)
    # the optimum is a real one: the deviance per dof of Poisson counts is ~1 (sd sqrt(2/dof))
    assert r.deviance_per_dof == pytest.approx(1.0, abs=5 * np.sqrt(2 / r.dof))


def test_state_histograms_match_numpy_histogram_on_edges_and_unsorted_times():
    # Delays on the bin edges (integer TCSPC bins times the unit), NaN, out of range, levels
    # with gaps and negative states: same counts as a plain numpy reference, sorted or not.
    rng = np.random.default_rng(13)
    unit, factor, nb = 4e-12, 32, 100
    edges = np.arange(nb + 1) * (factor * unit)
    n = 50_000
    nano = rng.integers(-10, nb * factor + 10, n) * unit
    nano[:5] = np.nan
    times = np.sort(rng.uniform(0, 10, n))
    b = np.sort(rng.uniform(-0.5, 10.5, 30))
    start, end = b[0::2], b[1::2]
    state = rng.integers(-1, 3, 15) * 5
    times[-1] = end[-1]  # the last level includes its end
    idx = np.searchsorted(start, times, side="right") - 1
    ok = idx >= 0
    inside = np.zeros(n, bool)
    inside[ok] = (times[ok] < end[idx[ok]]) | ((idx[ok] == 14) & (times[ok] <= end[-1]))
    lab = np.where(inside, state[np.clip(idx, 0, None)], -1)
    want = {int(k): np.histogram(nano[lab == k], edges)[0] for k in np.unique(lab[lab >= 0])}
    perm = rng.permutation(n)
    for t, d in ((times, nano), (times[perm], nano[perm])):
        got = state_decay_histograms(t, d, edges, start, end, state)
        assert got.keys() == want.keys()
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])


def test_a_fit_that_falls_back_to_nelder_mead_returns(tmp_path):
    """A held-out calibration monomer (lab conditions: 9 kcps for 22 s at 72 MHz, a 71 ns
    lifetime far beyond the 14 ns period, 16 % background) whose per-level decay fit left LM
    unconverged: the later passes ran under the first pass's evaluation cap (lmfit keeps a
    Minimizer's last cap), Nelder-Mead used it up, and lmfit's evaluation after it raised
    AbortFitException out of spad analyze ("internal error"). Now the whole analysis returns,
    and the unmeasurable lifetime is withheld with a note, as for any fit that cannot be
    trusted."""
    from spad.analysis.particle import analyze_particle

    from spad.app.calibrate import particle_file

    path, cond, _ = particle_file("monomer", 5_005_624, tmp_path, "lab")
    assert cond["rep_rate_hz"] > 70e6 and cond["lifetime_ns"] > 70
    result = analyze_particle(path)
    assert result.photons.n_photons > 100_000
    assert result.photons.lifetime_ns is None
    assert any("lifetime" in n and "not given" in n for n in result.photons.notes)
