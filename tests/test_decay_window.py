"""Where decays are fitted (issue 23, item 1): one laser period from just before the pulse,
wherever the pulse lies in the TCSPC range, wrapping where the range is longer than the period;
and a fit whose residuals fail the Durbin-Watson test is not the reported lifetime."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize
from spad.analysis.decay_window import decay_window, wrap_delays
from spad.analysis.lifetimes import fit_decay, fit_decay_select

import spad

NS = 1e-9
DATA = Path(__file__).parent / "data" / "picoquant-sample-data"


def _delays(rng, n, tau, t0, period, sigma=0.3 * NS):
    """Delays after the sync of a periodically excited emitter, modulo the period."""
    return np.mod(t0 + rng.normal(0, sigma, n) + rng.exponential(tau, n), period)


def test_timeharp_like_range_longer_than_period_and_partly_recorded():
    """A 287.7 ns range at a 200 ns period, photons recorded only over 74.5-268 ns (as in
    v50.t3r): the window covers the recorded stretch and the lifetime is the simulated one."""
    rng = np.random.default_rng(3)
    w, period, tau = 70.24e-12, 200 * NS, 19.5 * NS
    n_range = 4096
    offset = 68 * NS         # the card's delay: delays are offset + (true delay mod period)
    d = offset + _delays(rng, 60_000, tau, 12 * NS, period)
    bg = offset + rng.uniform(0, period, 15_000)
    d = np.concatenate([d, bg])
    d = d[(d >= 74.5 * NS) & (d < 268 * NS)]          # what the card records
    hist = np.bincount((d / w).astype(np.int64), minlength=n_range)[:n_range]
    win = decay_window(hist, w, period)
    assert win.note is None
    e = win.edges
    assert e[0] >= 74 * NS and e[-1] <= 268.2 * NS     # the empty stretches are not fitted
    assert e[-1] - e[0] > 190 * NS
    y = win.fold(hist)
    assert y.sum() == hist.sum()                       # nothing lost, nothing counted twice
    r = fit_decay(y, e, win.period_s, n_exp=1)
    assert abs(r.taus[0] - tau) < 4 * r.tau_errs[0]
    assert not r.residuals_correlated
    # the old window, [0, 200 ns) from bin 0, is badly wrong on the same photons
    n_old = int(period / w)
    old = fit_decay(hist[:n_old], np.arange(n_old + 1) * w, period, n_exp=1)
    assert old.residuals_correlated


def test_pulse_near_the_end_of_a_range_longer_than_the_period_wraps():
    """A pulse late in a range longer than the period: the card records each delay once, in
    [offset, offset + period), so the decay's tail lies earlier in the range; folded into one
    window from just before the pulse it gives the lifetime."""
    rng = np.random.default_rng(4)
    w, period, tau = 0.1 * NS, 100 * NS, 15 * NS
    n_range = 1300                                     # 130 ns of range
    d = 30 * NS + _delays(rng, 80_000, tau, 90 * NS, period)   # pulse at 120 ns
    hist = np.bincount((d / w).astype(np.int64), minlength=n_range)
    win = decay_window(hist, w, period)
    assert win.note is None
    assert win.n_bins == 1000 and win.wrap_bins == 1000
    assert 110 * NS <= win.edges[0] < 120 * NS         # the window starts before the pulse
    y = win.fold(hist)
    assert y.sum() == hist.sum()
    r = fit_decay(y, win.edges, win.period_s, n_exp=1)
    assert abs(r.taus[0] - tau) < 4 * r.tau_errs[0]
    # the delays of single photons wrap into the same bins as the folded histogram
    wrapped = wrap_delays(d, win.edges, win.wrap_s)
    again = np.histogram(wrapped, win.edges)[0]
    assert np.abs(again - y).sum() <= 0.001 * y.sum()  # only float rounding at bin edges


@pytest.mark.parametrize("lo, span", [(0.0, 200e-9), (-3e-9, 12.5e-9), (192.896e-9, 199.936e-9),
                                      (7.3, 0.1)])
def test_wrap_delays_is_the_float_modulo_bit_for_bit(lo, span):
    """The shortcut for delays within one span of the window (most of them) gives the very
    floats np.mod gives: a photon never moves across a bin edge."""
    rng = np.random.default_rng(5)
    d = np.r_[rng.uniform(lo - 3 * span, lo + 3 * span, 100_000),
              [lo, lo + span, lo - span, -0.0, 0.0, lo - 1e-30, lo + 1e-30],
              lo - np.logspace(-40, -5, 200), lo - span + np.logspace(-40, -5, 200)]
    want = lo + np.mod(d - lo, span)
    got = wrap_delays(d, np.array([lo, lo + 2 * span]), span)
    assert np.array_equal(got, want) and np.array_equal(np.signbit(got), np.signbit(want))


def test_range_shorter_than_period_is_unchanged():
    w, period = 0.128 * NS, 200 * NS
    hist = np.full(1000, 5.0)
    hist[100:200] += 50.0
    win = decay_window(hist, w, period)
    assert (win.start_bin, win.n_bins, win.wrap_bins, win.period_s) == (0, 1000, 1000, period)
    np.testing.assert_array_equal(win.fold(hist), hist)
    np.testing.assert_array_equal(win.fold(hist, 3), np.roll(hist, -3))


def test_delays_beyond_the_stated_period_are_believed_over_the_header():
    """A header stating 12.5 ns while the delays span 500 ns: the window is the range, with a
    note, and the lifetime comes out right."""
    rng = np.random.default_rng(5)
    w, tau = 16e-12 * 8, 40 * NS
    n_range = 4096                                      # 524 ns
    d = 5 * NS + rng.normal(0, 0.3 * NS, 50_000) + rng.exponential(tau, 50_000)
    d = d[d < n_range * w]
    hist = np.bincount((d / w).astype(np.int64), minlength=n_range)
    win = decay_window(hist, w, 12.51 * NS)
    assert win.note and "contradicts" in win.note
    assert win.period_s == pytest.approx(n_range * w)
    r = fit_decay(win.fold(hist), win.edges, win.period_s, n_exp=1)
    assert abs(r.taus[0] - tau) < 4 * r.tau_errs[0]


def _independent_tail_fit(y, t, start, stop):
    """Single exponential + flat background by Poisson maximum likelihood on the bins from
    ``start`` to ``stop`` (s after the peak's bin) - written apart from spad's fitter."""
    p = int(np.argmax(y))
    sel = (t >= t[p] + start) & (t < t[p] + stop)
    tt, yy = t[sel] - t[p], y[sel]

    def nll(x):
        a, tau, bg = np.exp(x)
        m = a * np.exp(-tt / tau) + bg
        return float(np.sum(m - yy * np.log(m)))

    res = minimize(nll, np.log([max(yy[0], 1.0), 20 * NS, max(yy[-20:].mean(), 0.1)]),
                   method="Nelder-Mead", options={"maxiter": 20_000, "xatol": 1e-9,
                                                  "fatol": 1e-9})
    return float(np.exp(res.x[1]))


def test_v50_t3r_lifetime_agrees_with_an_independent_fit():
    """The public TimeHarp 200 file: photons at 74.5-268 ns of a 287.7 ns range at a 200 ns
    period. Before: 45 +/- 18 ns; an independent Poisson fit of the tail gives 19-20 ns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with spad.open(DATA / "v50.t3r") as f:
            m = f.read()
    t = m.meta.timing
    hist = np.bincount(m.photons.nanotimes, minlength=t.tcspc_num_bins).astype(float)
    w = t.nanotime_unit
    win = decay_window(hist, w, t.sync_period)
    y = win.fold(hist)
    r = fit_decay_select(y, win.edges, win.period_s, max_exp=2)
    assert not r.residuals_correlated
    centres = 0.5 * (win.edges[1:] + win.edges[:-1])
    # one exponential from 2 ns after the peak (past the IRF), as the independent analysis
    independent = _independent_tail_fit(y, centres, 2 * NS, (win.edges[-1] - centres[0]))
    assert 19 * NS < independent < 21 * NS
    assert 19 * NS < r.tau_intensity_mean < 21 * NS
    assert abs(r.tau_intensity_mean - independent) < 0.5 * NS


def test_v50_t3r_analysis_reports_no_lifetime_from_the_empty_stretch():
    from spad.analysis.particle import analyze_particle

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ph = analyze_particle(DATA / "v50.t3r").photons
    assert ph.lifetime_all_ns == pytest.approx(19.5, abs=1.0)
    assert ph.lifetime_ns is not None and 15 < ph.lifetime_ns < 30
    assert ph.lifetime_err_ns < 1.0


def test_a_fit_failing_durbin_watson_is_not_the_reported_lifetime():
    """A one-exponential model of a clearly two-exponential decay: residuals correlated, and
    the analysis drops its lifetime with a note."""
    from spad.analysis.photon_analysis import PhotonAnalysis, _honest_lifetime

    rng = np.random.default_rng(6)
    period, n = 100 * NS, 1000
    d = np.concatenate([_delays(rng, 150_000, 2 * NS, 5 * NS, period),
                        _delays(rng, 150_000, 25 * NS, 5 * NS, period)])
    edges = np.linspace(0, period, n + 1)
    y = np.histogram(d, edges)[0]
    one = fit_decay(y, edges, period, n_exp=1)
    assert one.residuals_correlated
    out = PhotonAnalysis()
    out.lifetime_bright, out.lifetime_all = one, one
    out.lifetime_ns = out.lifetime_all_ns = one.tau_intensity_mean / NS
    out.lifetime_err_ns = one.tau_intensity_mean_err / NS
    _honest_lifetime(out, period)
    assert out.lifetime_ns is None and out.lifetime_all_ns is None
    assert sum("Durbin-Watson" in note for note in out.notes) == 2
    two = fit_decay(y, edges, period, n_exp=2)
    assert not two.residuals_correlated
