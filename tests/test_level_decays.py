"""Decays of single resolved levels (``analysis.level_decays``) against simulated truth.

A level's fitted lifetime is compared with the true lifetime of the emitter state the level
spans. Change-point levels follow the true dwells only roughly (a fast-flickering dimer's level
often mixes states), so only levels that spend most of their time in one true state are held to
its lifetime.
"""

from __future__ import annotations

import numpy as np
import pytest
from spad.analysis.level_decays import (
    FIT_MIN_PHOTONS,
    level_photons,
    levels_to_fit,
)
from spad.analysis.photon_analysis import AnalysisSettings, analyze_photons
from spad.simulators.recipe import build
from spad.simulators.stream import simulate


def run(particle: str, seed: int, duration_s: float, max_level_fits: int):
    emitters, detection = build(particle, seed, vary=True)
    sim = simulate(emitters, detection, duration_s, seed, chunk_s=1.0)
    return sim.truth, analyze_photons(sim.chunks(),
                                      AnalysisSettings(max_level_fits=max_level_fits))


@pytest.fixture(scope="module")
def flickering():
    """A dimer flickering between six states whose lifetimes run from ~5 to ~18 ns."""
    return run("dimer", 7, 10.0, 50)


@pytest.fixture(scope="module")
def monomer():
    return run("monomer", 3, 6.0, 50)


def _true_state(truth, start_s: float, end_s: float) -> tuple[int, float]:
    """The true state of emitter 0 that fills most of ``[start_s, end_s)``, and its share."""
    t0, state, dwell = truth.timeline(0)
    overlap = np.clip(np.minimum(t0 + dwell, end_s) - np.maximum(t0, start_s), 0, None)
    share = np.bincount(state, weights=overlap, minlength=len(truth.state_names(0)))
    k = int(np.argmax(share))
    return k, float(share[k] / (end_s - start_s))


def _held_to_truth(truth, res, min_share: float) -> list[tuple[float, float, float]]:
    """(true ⟨τ⟩, fitted ⟨τ⟩, its error) in ns of the fitted levels mostly in one state."""
    b, ld = res.blinking, res.level_decays
    tau = truth.state_mean_lifetime_s(0) * 1e9
    out = []
    for i, fit in ld.fits.items():
        assert fit is not None, f"level {i}: the fit failed"
        k, share = _true_state(truth, b.level_start[i], b.level_end[i])
        if share >= min_share:
            out.append((tau[k], fit.tau_intensity_mean * 1e9, fit.tau_intensity_mean_err * 1e9))
    return out


def test_each_level_has_the_lifetime_of_its_true_state(flickering):
    truth, res = flickering
    pairs = _held_to_truth(truth, res, 0.8)
    assert len(pairs) >= 5
    # levels of different states get different lifetimes, each its own within 3 standard errors
    assert len({round(t, 3) for t, _, _ in pairs}) >= 3
    for want, got, err in pairs:
        assert abs(got - want) < 3 * err, (want, got, err)
    assert np.corrcoef([p[0] for p in pairs], [p[1] for p in pairs])[0, 1] > 0.9


def test_monomer_levels_all_have_the_on_lifetime(monomer):
    truth, res = monomer
    pairs = _held_to_truth(truth, res, 0.9)
    assert len(pairs) >= 5
    for want, got, err in pairs:
        assert abs(got - want) < 3 * err, (want, got, err)
    # the fit quality the panel shows
    for fit in res.level_decays.fits.values():
        assert 0.8 < fit.chi2_reduced < 1.25 and np.isfinite(fit.durbin_watson)
        assert fit.residuals.size == fit.n_bins


def test_only_the_levels_with_the_most_photons_are_fitted_up_to_the_cap(flickering):
    _, res = flickering
    ld, b = res.level_decays, res.blinking
    assert ld.photons.size == b.level_start.size
    enough = np.flatnonzero(ld.photons >= FIT_MIN_PHOTONS)
    assert ld.n_enough == enough.size > 50  # the cap matters in this recording
    chosen = sorted(ld.decays)
    assert len(chosen) == 50 and ld.n_skipped == ld.n_enough - 50
    left = np.setdiff1d(enough, chosen)
    assert ld.photons[chosen].min() >= ld.photons[left].max()
    for i in chosen:  # a level's decay holds exactly its photons
        assert ld.decays[i].sum() == ld.photons[i]
    # the levels' photons are the photons of the states (the same assignment to levels)
    assert ld.photons.sum() == sum(c.sum() for c in res.state_decays.values())


def test_no_level_fits_unless_asked():
    _, res = run("monomer", 3, 2.0, 0)
    assert res.level_decays is None
    assert res.state_decays  # the state decays are made as before


def test_state_fits_only_when_asked_and_no_table_value_depends_on_them():
    """The intensity states' decays are always made; their fits only for the desktop app's
    Decay panel (AnalysisSettings.state_fits), and the table's values are the same either
    way."""
    emitters, detection = build("dimer", 7, vary=True)
    sim = simulate(emitters, detection, 10.0, 7, chunk_s=1.0)
    plain = analyze_photons(sim.chunks(), AnalysisSettings())
    asked = analyze_photons(sim.chunks(), AnalysisSettings(state_fits=True))
    assert len(plain.state_decays) >= 2 and plain.state_lifetimes == {}
    assert asked.state_lifetimes.keys() == asked.state_decays.keys()
    assert any(f is not None for f in asked.state_lifetimes.values())
    assert plain.summary() == asked.summary()


def test_level_photons_and_choice_on_known_numbers():
    t = np.array([0.1, 0.2, 0.5, 0.9, 1.0, 1.5, 2.0])
    start, end = np.array([0.0, 0.5, 1.5]), np.array([0.5, 1.5, 2.0])
    # [start, end) except the last level, which includes its end
    assert level_photons(t, start, end).tolist() == [2, 3, 2]
    assert level_photons(t, start[:0], end[:0]).size == 0
    photons = np.array([5, 1200, 900, 3000, 1200, 2000])
    assert levels_to_fit(photons, 2).tolist() == [3, 5]          # most photons, time order
    assert levels_to_fit(photons, 3).tolist() == [1, 3, 5]       # a tie: the earlier level
    assert levels_to_fit(photons, 50).tolist() == [1, 3, 4, 5]   # only those with enough
    assert levels_to_fit(photons, 0).size == 0
