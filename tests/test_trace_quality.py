"""What Full SMS users rely on, against simulated truth (issue 12, part 5): the bleached tail
trimmed from the region of interest, photon bursts found and removed, the quality of every decay
fit (reduced chi-square, Durbin-Watson with its bounds, residuals) and the switching rates
between intensity states.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from spad.analysis.blinking import analyse_blinking
from spad.analysis.bursts import photons_outside
from spad.analysis.lifetimes import durbin_watson_bounds, fit_decay
from spad.analysis.photon_analysis import AnalysisSettings, analyze_photons
from spad.analysis.photon_collector import PhotonCollector, PhotonList
from spad.analysis.roi import bleach_end, parse_roi
from spad.analysis.windowed import MemoryWindows, select_photons
from spad.simulators.detection import Detection
from spad.simulators.emitter import Emitter, PowerLaw, State
from spad.simulators.recipe import build
from spad.simulators.stream import simulate

from spad.photons import Timing
from tests.conftest import chunk_with_bursts

NS = 1e-9


def photon_times(sim) -> np.ndarray:
    col = PhotonCollector((1, 2))
    for chunk in sim.chunks():
        col.update(chunk)
    return np.sort(col.result().times_s())


def with_bursts(t: np.ndarray, bursts: list[tuple[float, float]], rate_hz: float,
                seed: int) -> np.ndarray:
    """Photon times with bursts (start, duration) of uniform photons at ``rate_hz`` added: what
    a cosmic ray or an afterpulsing cascade adds to an APD's stream."""
    rng = np.random.default_rng(seed)
    extra = [s + rng.uniform(0, d, int(rate_hz * d)) for s, d in bursts]
    return np.sort(np.concatenate([t, *extra]))


# --- bleaching and the region of interest ----------------------------------------------------

def test_bleaching_emitter_emits_nothing_after_bleach_time():
    em, det = build("monomer", 3)
    sim = simulate(dataclasses.replace(em, bleach_s=2.0), det, 4.0, 3, chunk_s=1.0)
    t = photon_times(sim)
    dark = float(np.sum(det.dark_rate_hz))
    # after bleaching: dark counts (and their afterpulses) only
    assert np.sum(t >= 2.0) < 2 * dark * 2.0 + 50
    assert np.sum(t < 2.0) > 50 * dark * 2.0
    # the default (no bleaching) leaves the photons unchanged
    same = simulate(dataclasses.replace(em, bleach_s=None), det, 1.0, 3, chunk_s=1.0)
    np.testing.assert_array_equal(photon_times(same), photon_times(simulate(em, det, 1.0, 3)))


@pytest.mark.parametrize("seed", [3, 6])
def test_auto_roi_ends_where_the_emitter_bleached(seed):
    em, det = build("monomer", seed, vary=True)
    sim = simulate(dataclasses.replace(em, bleach_s=12.0), det, 20.0, seed, chunk_s=1.0)
    t = photon_times(sim)
    b = analyse_blinking(t, 0.01, 0.99)
    end = bleach_end(b.level_start, b.level_end, b.level_intensity, b.threshold_rate)
    truth_end = sim.truth.emission_end_s(0)
    assert end is not None and abs(end - truth_end) < 0.02, (end, truth_end)
    # counted as OFF the bleached 8 s drag the ON fraction far down; trimmed, it is right
    trimmed = analyse_blinking(t[t < end], 0.01, 0.99)
    want = sim.truth.on_fraction(0, truth_end)
    assert abs(trimmed.on_fraction - want) < 0.05, (trimmed.on_fraction, want)
    assert b.on_fraction < want - 0.2


def test_auto_roi_leaves_an_unbleached_blinking_trace_whole():
    for seed in (3, 4, 5):
        em, det = build("monomer", seed, vary=True)
        b = analyse_blinking(photon_times(simulate(em, det, 20.0, seed, chunk_s=1.0)), 0.01,
                             0.99)
        assert bleach_end(b.level_start, b.level_end, b.level_intensity,
                          b.threshold_rate) is None


def test_bleach_end_needs_a_dark_run_longer_than_the_earlier_off_dwells():
    start = np.array([0.0, 1.0, 4.0, 5.0])
    end = np.array([1.0, 4.0, 5.0, 7.0])
    inten = np.array([3e4, 100.0, 3e4, 100.0])
    # trailing 2 s dark run, but an earlier 3 s OFF dwell: one more OFF dwell, not bleaching
    assert bleach_end(start, end, inten, 1e3) is None
    assert bleach_end(start, np.array([1.0, 4.0, 5.0, 12.0]), inten, 1e3) == 5.0
    assert bleach_end(start, end, np.full(4, 100.0), 1e3) is None  # never bright


def test_parse_roi():
    assert parse_roi("0:25") == (0.0, 25.0)
    assert parse_roi("5:") == (5.0, None)
    assert parse_roi(":20.5") == (None, 20.5)
    for bad in ("5", "a:b", "10:5", "-1:3", "1:2:3"):
        with pytest.raises(ValueError, match="ROI"):
            parse_roi(bad)


# --- photon bursts ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def monomer_times():
    em, det = build("monomer", 3, vary=True)
    return photon_times(simulate(em, det, 20.0, 3, chunk_s=1.0))


def test_bursts_found_where_they_were_added_and_removed(monomer_times):
    t = monomer_times
    clean = analyse_blinking(t, 0.01, 0.99)
    assert len(clean.bursts) == 0  # no false burst on a blinking monomer
    added = [(3.0, 0.010), (7.5, 0.020), (15.2, 0.005)]
    tb = with_bursts(t, added, 4e5, seed=1)
    b = analyse_blinking(tb, 0.01, 0.99)
    assert len(b.bursts) == len(added)
    for (s, d), bs, be in zip(added, b.bursts.start, b.bursts.end, strict=True):
        assert abs(bs - s) < 1e-3 and abs(be - (s + d)) < 1e-3, (bs, be, s, d)
    # removed: the added photons plus the emitter's own during the bursts, nothing else
    n_added = tb.size - t.size
    assert n_added <= b.bursts.n_photons.sum() < n_added + 0.05 * 3.3e4
    assert b.n_photons == tb.size - b.bursts.n_photons.sum()
    np.testing.assert_allclose(b.state_intensity, clean.state_intensity, rtol=0.02)
    assert b.n_states == clean.n_states
    # left in, a burst is a state of its own, ten times brighter than the dot
    kept = analyse_blinking(tb, 0.01, 0.99, bursts=False)
    assert kept.state_intensity.max() > 5 * clean.state_intensity.max()
    # the burst intervals mask exactly the photons removed
    keep = photons_outside(tb, b.bursts.start, b.bursts.end)
    assert int((~keep).sum()) == int(b.bursts.n_photons.sum())


def test_no_false_bursts_on_a_flickering_dimer():
    em, det = build("dimer", 7, vary=True)
    b = analyse_blinking(photon_times(simulate(em, det, 10.0, 7, chunk_s=1.0)), 0.01, 0.99)
    assert len(b.bursts) == 0


# --- fit quality -----------------------------------------------------------------------------

def _decay(rng, n, taus, fractions, period=100 * NS, n_bins=1000, sigma=0.15 * NS):
    comp = rng.choice(len(taus), size=n, p=fractions)
    delay = 5 * NS + rng.normal(0, sigma, n) + rng.exponential(np.asarray(taus)[comp])
    edges = np.linspace(0, period, n_bins + 1)
    return np.histogram(delay % period, edges)[0] + rng.poisson(1.0, n_bins), edges


def test_durbin_watson_passes_the_right_model_and_fails_the_wrong_one():
    rng = np.random.default_rng(12)
    counts, edges = _decay(rng, 300_000, [2 * NS, 20 * NS], [0.4, 0.6])
    right = fit_decay(counts, edges, 100 * NS, n_exp=2)
    wrong = fit_decay(counts, edges, 100 * NS, n_exp=1)
    assert right.dw_bound_5pct < right.durbin_watson < 4 - right.dw_bound_5pct
    assert not right.residuals_correlated
    assert wrong.durbin_watson < wrong.dw_bound_1pct and wrong.residuals_correlated
    assert 0.85 < right.chi2_reduced < 1.15 < wrong.chi2_reduced
    # residuals: one per fitted bin, weighted by the model's Poisson error
    assert right.residuals.size == right.n_bins
    np.testing.assert_allclose(np.sum(right.residuals ** 2) / right.dof, right.chi2_reduced)


def test_durbin_watson_statistic_of_the_right_model_is_spread_as_the_bounds_say():
    # Over many correct fits the statistic falls below the 5 % bound about 5 % of the time.
    rng = np.random.default_rng(4)
    dws, bound = [], None
    for _ in range(60):
        counts, edges = _decay(rng, 50_000, [20 * NS], [1.0], n_bins=400)
        r = fit_decay(counts, edges, 100 * NS, n_exp=1)
        dws.append(r.durbin_watson)
        bound = r.dw_bound_5pct
    assert np.mean(np.array(dws) < bound) <= 0.15
    assert abs(np.mean(dws) - 2) < 0.05


def test_durbin_watson_bounds_approach_two_from_below():
    b5, b1 = durbin_watson_bounds(100, 1)
    assert 1.5 < b1 < b5 < 2
    assert durbin_watson_bounds(10_000, 2)[0] > b5
    assert durbin_watson_bounds(1000, 3)[0] < durbin_watson_bounds(1000, 1)[0] < 2


# --- switching rates -------------------------------------------------------------------------

def test_switching_rates_match_the_simulated_jumps():
    law = PowerLaw(3.0, 0.03, None)
    states = (State("OFF", 0.03, (5 * NS,), dwell=law), State("GREY", 0.4, (15 * NS,), dwell=law),
              State("ON", 0.9, (30 * NS,), dwell=law))
    sim = simulate(Emitter("three", states), Detection(), 30.0, 5, chunk_s=1.0)
    b = analyse_blinking(photon_times(sim), 0.01, 0.99)
    assert b.n_states == 3
    counts, time_s = sim.truth.transitions(0)
    sw = b.switching
    assert np.abs(sw.counts - counts).max() <= 4, (sw.counts, counts)
    np.testing.assert_allclose(sw.time_s, time_s, rtol=0.02)
    want = counts / time_s[:, None]
    off_diag = ~np.eye(3, dtype=bool)
    assert np.all(np.abs(sw.rates_hz - want)[off_diag] < 3 * sw.rates_err_hz[off_diag] + 0.05)
    assert sw.total_rate_hz == pytest.approx(counts.sum() / time_s.sum(), rel=0.03)


def test_selection_cuts_the_bleached_tail_and_the_bursts_and_obeys_a_manual_roi():
    em, det = build("monomer", 6, vary=True)
    sim = simulate(dataclasses.replace(em, bleach_s=12.0), det, 20.0, 6, chunk_s=1.0)
    t = with_bursts(photon_times(sim), [(4.0, 0.01)], 4e5, seed=2)
    # the times as photons in memory (1 ps ticks, one detector)
    photons = PhotonList(np.round(t / 1e-12).astype(np.int64), np.zeros(t.size, np.int64),
                         np.ones(t.size, np.uint8), 1e-12, Timing("T2", 1e-12))
    windows = MemoryWindows(photons, (1,))
    t = windows.whole.times

    def select_photons_of(roi=None):
        return select_photons(windows, t[0], t[-1], 0.01, 0.99, roi=roi)

    sel = select_photons_of()
    assert sel.roi_auto and abs(sel.roi_end_s - sim.truth.emission_end_s(0)) < 0.02
    assert len(sel.blinking.bursts) == 1
    assert int(sel.keep(t).sum()) == sel.blinking.n_photons
    assert not np.any(sel.keep(t) & (t >= sel.roi_end_s))
    # by hand: that ROI, no automatic cut
    manual = select_photons_of(roi=(1.0, 10.0))
    assert not manual.roi_auto and (manual.roi_start_s, manual.roi_end_s) == (1.0, 10.0)
    kept = t[manual.keep(t)]
    assert kept.min() >= 1.0 and kept.max() <= 10.0
    with pytest.raises(ValueError, match="ROI"):
        select_photons_of(roi=(30.0, 40.0))


# --- all of it through analyze_photons --------------------------------------------------------

@pytest.fixture(scope="module")
def bleached_bursting():
    em, det = build("monomer", 6, vary=True)
    sim = simulate(dataclasses.replace(em, bleach_s=12.0), det, 20.0, 6, chunk_s=1.0)
    chunk = chunk_with_bursts(sim.chunks(), [(3.0, 0.01), (8.0, 0.02)], 4e5, seed=3)
    dark = float(np.mean(det.dark_rate_hz))
    return sim.truth, chunk, dark


def test_analyze_photons_cuts_the_tail_and_removes_the_bursts(bleached_bursting):
    truth, chunk, dark = bleached_bursting
    res = analyze_photons(chunk, AnalysisSettings(dark_counts_hz=dark))
    end = truth.emission_end_s(0)
    assert res.roi_source == "auto" and abs(res.roi_end_s - end) < 0.02
    assert res.n_bursts == 2 and res.burst_photons >= 0.03 * 4e5
    assert abs(res.on_fraction - truth.on_fraction(0, end)) < 0.05
    assert res.n_photons == res.blinking.n_photons
    assert res.duration_s == pytest.approx(res.roi_end_s - res.roi_start_s)
    # the decays hold only the kept photons
    assert int(res.decay.counts.sum()) <= res.n_photons
    assert res.switching_rate_hz is not None and res.switching_rate_hz > 0
    for fit in (res.lifetime_all, res.lifetime_bright):
        assert fit.residuals.size == fit.n_bins and np.isfinite(fit.durbin_watson)
    assert res.lifetime_durbin_watson == res.lifetime_bright.durbin_watson
    rec = res.summary()
    for key in ("roi_start_s", "roi_end_s", "roi_source", "n_bursts", "burst_photons",
                "lifetime_chi2_reduced", "lifetime_durbin_watson", "lifetime_dw_bound_5pct",
                "lifetime_dw_bound_1pct", "switching_rate_hz"):
        assert rec[key] is not None, key
    # without the cuts: the bleached tail counts as OFF, the bursts stay in
    raw = analyze_photons(chunk, AnalysisSettings(dark_counts_hz=dark, auto_roi=False,
                                                  remove_bursts=False))
    assert raw.roi_source == "whole" and raw.n_bursts == 0
    assert raw.on_fraction < res.on_fraction - 0.2
    assert raw.n_photons > res.n_photons


def test_analyze_photons_obeys_a_manual_roi(bleached_bursting):
    truth, chunk, dark = bleached_bursting
    res = analyze_photons(chunk, AnalysisSettings(dark_counts_hz=dark, roi=(1.0, 6.0)))
    assert res.roi_source == "set" and (res.roi_start_s, res.roi_end_s) == (1.0, 6.0)
    assert res.duration_s == pytest.approx(5.0)
    assert res.blinking.level_start[0] >= 1.0 and res.blinking.level_end[-1] <= 6.0


# --- issue 23, item 6: no false bursts on a steady source ------------------------------------

def test_scan_p_value_matches_simulated_poisson_streams():
    """The scan-statistic probability (Naus) against brute force: the share of simulated
    Poisson streams that hold some window of length w with at least n photons."""
    from spad.analysis.bursts import scan_p_value

    rng = np.random.default_rng(23)
    rate, total, w = 1000.0, 10.0, 0.005
    maxima = []
    for _ in range(400):
        t = np.sort(rng.uniform(0, total, rng.poisson(rate * total)))
        # the most photons in any window [t_i, t_i + w): a window starting at a photon
        maxima.append(int(np.max(np.searchsorted(t, t + w) - np.arange(t.size))))
    maxima = np.array(maxima)
    for n in (14, 16, 18):
        want = float(np.mean(maxima >= n))
        got = float(scan_p_value(np.array([n]), rate, np.array([w]), total)[0])
        assert abs(got - want) < max(0.3 * want, 0.02), (n, got, want)


@pytest.mark.parametrize("rate", [1e3, 1e4, 1e5, 5e5])
def test_a_steady_source_loses_no_bursts(rate):
    """Steady Poisson sources at 1-500 kcps: the change points find some false levels, but
    none of them is a burst (before: up to 2 per trace at 10-500 kcps)."""
    rng = np.random.default_rng(int(rate))
    duration = 300_000 / rate
    for _ in range(6):
        t = np.sort(rng.uniform(0, duration, rng.poisson(rate * duration)))
        blink = analyse_blinking(t, 0.01, 0.99)
        assert blink.bursts is None or len(blink.bursts) == 0
