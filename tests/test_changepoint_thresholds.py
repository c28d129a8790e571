"""Change-point critical values (issue 23, item 4): the search cuts constant-rate segments at
the stated rate per test; the table agrees with an independent simulation of the statistic;
with every position tested, the same simulation gives Watkins & Yang's published table."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import digamma, polygamma
from spad.analysis.changepoints import critical_value, find_change_points

#: Watkins & Yang (J. Phys. Chem. B 109, 617 (2005)), 99 % critical values.
WATKINS_YANG_99 = {20: 6.94, 50: 7.54, 100: 7.89}


def _independent_maxima(n, n_sim, edge, rng):
    """The weighted, standardised log-likelihood-ratio maximum of constant-rate segments,
    written from the paper's formula with scipy's digamma/trigamma (not spad's tables)."""
    k = np.arange(edge, n - edge + 1)
    m = n - k
    # E[ln V] and Var[ln V] for V ~ Beta(k, m), likewise ln(1 - V); Cov from trigamma(n)
    e_lv, e_l1v = digamma(k) - digamma(n), digamma(m) - digamma(n)
    v_lv = polygamma(1, k) - polygamma(1, n)
    v_l1v = polygamma(1, m) - polygamma(1, n)
    cov = -polygamma(1, n)
    mean = -2 * k * e_lv - 2 * m * e_l1v
    sd = np.sqrt(4 * k * k * v_lv + 4 * m * m * v_l1v + 8 * k * m * cov)
    weight = 0.5 * np.log(4 * k * m / n ** 2)
    out = np.empty(n_sim)
    for i in range(n_sim):
        t = np.cumsum(rng.standard_exponential(n))
        v = t[k - 1] / t[-1]
        stat = -2 * k * np.log(v) - 2 * m * np.log1p(-v)
        out[i] = np.max((stat - mean) / sd + weight)
    return out


@pytest.mark.parametrize(("n", "n_segments"), [(20, 20_000), (100, 20_000), (1000, 4000)])
def test_search_cuts_constant_segments_at_the_stated_rate(n, n_segments):
    rng = np.random.default_rng(n)
    cut = 0
    for _ in range(n_segments):
        t = np.cumsum(rng.standard_exponential(n + 1))
        cut += find_change_points(t, 0.99, window=max(n, 20), overlap=0).size > 0
    rate = cut / n_segments
    se = np.sqrt(0.01 * 0.99 / n_segments)
    assert abs(rate - 0.01) < 3.5 * se


@pytest.mark.parametrize("n", [20, 50, 100])
def test_table_agrees_with_an_independent_simulation(n):
    rng = np.random.default_rng(7 + n)
    maxima = _independent_maxima(n, 40_000, 7, rng)
    assert float(critical_value(n, 0.99)) == pytest.approx(np.quantile(maxima, 0.99), abs=0.15)
    assert float(critical_value(n, 0.95)) == pytest.approx(np.quantile(maxima, 0.95), abs=0.08)


@pytest.mark.parametrize("n", sorted(WATKINS_YANG_99))
def test_every_position_tested_gives_watkins_and_yang(n):
    """Their table is the statistic maximised over every position: the same simulation with
    no edge excluded reproduces it, and spad's values (edges excluded) lie below it."""
    rng = np.random.default_rng(11 + n)
    maxima = _independent_maxima(n, 40_000, 1, rng)
    assert np.quantile(maxima, 0.99) == pytest.approx(WATKINS_YANG_99[n], abs=0.2)
    assert float(critical_value(n, 0.99)) < WATKINS_YANG_99[n]


def test_false_change_points_per_steady_trace():
    """The figure in the README: about N/800 x 1 % false change points per steady trace."""
    rng = np.random.default_rng(78)
    counts = [find_change_points(np.cumsum(rng.standard_exponential(78_000)), 0.99).size
              for _ in range(20)]
    assert 0.4 < np.mean(counts) < 2.0
