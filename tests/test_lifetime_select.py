"""Choosing the number of decay components by AIC."""

from __future__ import annotations

import numpy as np
from spad.analysis.lifetimes import fit_decay_select


def _decay(taus: list[float], fractions: list[float], n: int, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    period, width = 200e-9, 0.128e-9
    k = rng.choice(len(taus), size=n, p=fractions)
    t = 3e-9 + rng.normal(0, 0.15e-9, n) + rng.exponential(np.asarray(taus)[k])
    edges = np.arange(0, period + width / 2, width)
    counts, _ = np.histogram(np.mod(t, period), edges)
    return counts.astype(float), edges, period


def test_single_exponential_keeps_one_component() -> None:
    counts, edges, period = _decay([25e-9], [1.0], 100_000, 1)
    r = fit_decay_select(counts, edges, period, irf="gaussian")
    assert r.n_exp == 1
    assert abs(r.taus[0] - 25e-9) < 4 * r.tau_errs[0]


def test_two_components_are_found_when_present() -> None:
    counts, edges, period = _decay([4e-9, 20e-9], [0.5, 0.5], 100_000, 2)
    r = fit_decay_select(counts, edges, period, irf="gaussian")
    assert r.n_exp == 2
    assert np.allclose(r.taus, [4e-9, 20e-9], rtol=0.1)
