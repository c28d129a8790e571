"""The few ``scipy.stats`` functions the analysis calls on every particle, on ``scipy.special``.

``scipy.stats`` costs ~0.15-0.3 s to import (SciPy 1.17 rewrites the docstrings of its
functions and distributions as it loads), more than the analysis of a short particle, while
its distributions only wrap a special function each. These functions give the SAME numbers:
the same special function, the same arithmetic in the same order and the same handling of
arguments outside the support as ``scipy.stats`` (SciPy 1.17, ``rv_continuous.sf``,
``rv_discrete.sf/pmf``, ``_stats_py.skew/kurtosis``); tests/test_distributions.py checks each
bit for bit against ``scipy.stats``.
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["chi2_sf", "f_sf", "poisson_sf", "poisson_pmf", "skew", "kurtosis"]


def _continuous_sf(x: np.ndarray, valid: np.ndarray, sf: np.ndarray) -> np.ndarray | float:
    """``rv_continuous.sf`` on the support (0, inf): 1 at and below 0, NaN for bad shapes."""
    inside = valid & (0 < x) & (x < np.inf)
    out = np.zeros(np.shape(inside))
    np.place(out, ~valid | np.isnan(x), np.nan)
    np.place(out, valid & (x <= 0), 1.0)
    np.place(out, inside, sf[inside])
    return out[()] if out.ndim == 0 else out


def chi2_sf(x: float | np.ndarray, df: float | np.ndarray) -> np.ndarray | float:
    """``scipy.stats.chi2.sf(x, df)``: ``special.chdtrc(df, x)`` inside the support."""
    x, df = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(df))
    with np.errstate(invalid="ignore"):
        return _continuous_sf(x, df > 0, special.chdtrc(df, x))


def f_sf(x: float | np.ndarray, dfn: float | np.ndarray, dfd: float | np.ndarray
         ) -> np.ndarray | float:
    """``scipy.stats.f.sf(x, dfn, dfd)``: ``special.fdtrc(dfn, dfd, x)`` inside the support."""
    x, dfn, dfd = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(dfn),
                                      np.asarray(dfd))
    with np.errstate(invalid="ignore"):
        return _continuous_sf(x, (dfn > 0) & (dfd > 0), special.fdtrc(dfn, dfd, x))


def poisson_sf(k: float | np.ndarray, mu: float | np.ndarray) -> np.ndarray | float:
    """``scipy.stats.poisson.sf(k, mu)``: ``special.pdtrc(floor(k), mu)``, 1 below k = 0."""
    k, mu = np.broadcast_arrays(np.asarray(k, dtype=np.float64), np.asarray(mu))
    valid = mu >= 0
    inside = valid & (k >= 0) & np.isfinite(k)
    out = np.zeros(np.shape(inside))
    np.place(out, ~valid | np.isnan(k), np.nan)
    np.place(out, ((k < 0) | np.isneginf(k)) & valid, 1.0)
    if inside.any():
        np.place(out, inside, np.clip(special.pdtrc(np.floor(k[inside]), mu[inside]), 0, 1))
    return out[()] if out.ndim == 0 else out


def poisson_pmf(k: float | np.ndarray, mu: float | np.ndarray) -> np.ndarray | float:
    """``scipy.stats.poisson.pmf(k, mu)``: ``exp(xlogy(k, mu) - gammaln(k + 1) - mu)`` at
    whole k >= 0, else 0."""
    k, mu = np.broadcast_arrays(np.asarray(k, dtype=np.float64), np.asarray(mu))
    valid = mu >= 0
    inside = valid & (k >= 0) & (np.floor(k) == k)
    out = np.zeros(np.shape(inside))
    np.place(out, ~valid | np.isnan(k), np.nan)
    if inside.any():
        ki, mi = k[inside], mu[inside]
        np.place(out, inside,
                 np.clip(np.exp(special.xlogy(ki, mi) - special.gammaln(ki + 1) - mi), 0, 1))
    return out[()] if out.ndim == 0 else out


def _central_moments(a: np.ndarray) -> tuple[int, np.floating, np.ndarray, np.ndarray]:
    """n, mean and the deviations from it and their squares, as ``_stats_py._moment``."""
    mean = np.mean(a, axis=0, keepdims=True)
    dev = a - mean
    return a.shape[0], mean[0], dev, dev ** 2


def skew(a: np.ndarray, bias: bool = True) -> float:
    """``scipy.stats.skew(a, bias=bias)`` of a 1-D array without NaN."""
    a = np.asarray(a, dtype=np.float64)
    n, mean, dev, dev2 = _central_moments(a)
    m2 = np.mean(dev2, axis=0)
    s = dev.copy()
    s = s ** 2
    s *= dev
    m3 = np.mean(s, axis=0)
    with np.errstate(all="ignore"):
        zero = m2 <= (np.finfo(m2.dtype).eps * mean) ** 2
        val = np.nan if zero else m3 / m2 ** 1.5
        if not bias and not zero and n > 2:
            val = ((n - 1.0) * n) ** 0.5 / (n - 2.0) * m3 / m2 ** 1.5
    return float(val)


def kurtosis(a: np.ndarray, bias: bool = True) -> float:
    """``scipy.stats.kurtosis(a, bias=bias)`` (Fisher's, excess) of a 1-D array without NaN."""
    a = np.asarray(a, dtype=np.float64)
    n, mean, _, dev2 = _central_moments(a)
    m2 = np.mean(dev2, axis=0)
    m4 = np.mean(dev2 ** 2, axis=0)
    with np.errstate(all="ignore"):
        zero = m2 <= (np.finfo(m2.dtype).eps * mean) ** 2
        val = np.nan if zero else m4 / m2 ** 2.0
        if not bias and not zero and n > 3:
            val = 1.0 / (n - 2) / (n - 3) * ((n ** 2 - 1.0) * m4 / m2 ** 2.0
                                             - 3 * (n - 1) ** 2.0) + 3.0
    return float(val - 3)
