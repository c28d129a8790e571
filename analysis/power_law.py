"""Power laws of blinking dwell times, fitted by maximum likelihood: a power law above
``t_min``, chosen by the minimum Kolmogorov-Smirnov distance (Clauset, Shalizi & Newman, SIAM
Rev. 51, 661 (2009)), and a power law with an exponential cutoff, compared by their likelihood
ratio; never a line on a log-log histogram (docs/methods.md, "Intensity trace and blinking").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit
from scipy import special
from spad.analysis.distributions import chi2_sf


@njit(cache=True)
def _ks_distance(t: np.ndarray, i: int, alpha: float, x_eff: float, half: float,
                 stop: float, stop_strict: float) -> float:
    """KS distance of the power law (alpha, x_eff) to the tail t[i:].

    The distance is a running maximum, so the scan returns early (with a partial maximum) once
    it reaches ``stop`` or exceeds ``stop_strict``: the caller then knows the candidate loses.
    """
    n_all = t.shape[0]
    n = n_all - i
    d = 0.0
    j = i
    while j < n_all:
        k = j
        while k + 1 < n_all and t[k + 1] == t[j]:
            k += 1
        before = (j - i) / n
        after = (k + 1 - i) / n
        p_after = 1.0 - ((t[j] + half) / x_eff) ** (1.0 - alpha)
        if j == i:
            p_before = 0.0
        elif half == 0.0:
            p_before = p_after  # the same expression: t[j] - 0 == t[j] + 0
        else:
            p_before = 1.0 - ((t[j] - half) / x_eff) ** (1.0 - alpha)
        # written out, not max(): the same comparisons (Python's, which numba's max copies),
        # and no builtin overload for numba to compile on the first run
        e_after = abs(after - p_after)
        if e_after > d:
            d = e_after
        e_before = abs(before - p_before)
        if e_before > d:
            d = e_before
        if d >= stop or d > stop_strict:
            break
        j = k + 1
    return d


def _ks_scan(t: np.ndarray, resolution: float, min_tail: int) -> tuple[int, float, float]:
    """Scan candidate t_min (distinct values of sorted t): (index, alpha, KS distance) of best.

    :func:`_ks_scan_kernel` with its scratch arrays made here (an array made in a kernel is
    one more implementation for numba to compile on the first run).
    """
    t = np.ascontiguousarray(t, dtype=np.float64)
    return _ks_scan_kernel(t, float(resolution), int(min_tail), np.empty(t.size + 1),
                           np.empty(t.size))


@njit(cache=True)
def _ks_scan_kernel(t: np.ndarray, resolution: float, min_tail: int, suffix: np.ndarray,
                    alphas: np.ndarray) -> tuple[int, float, float]:
    """Scan candidate t_min (distinct values of sorted t): (index, alpha, KS distance) of best;
    ``suffix`` and ``alphas`` are scratch, of ``t.size + 1`` and ``t.size`` entries.

    The result is that of computing every candidate's KS distance in full and taking the first
    minimum (reference in tests/test_blinking.py), O(n^2). Here a candidate's tail scan stops
    once its running maximum shows it cannot win: at the best distance so far, or above the
    smallest distance of ~40 candidates spread over the range and computed first (a bound on
    the minimum; ties with it are computed in full). The winner is always scanned to the end, so
    its index, alpha and distance are the same numbers.
    """
    n_all = t.shape[0]
    half = 0.5 * resolution
    # suffix sums of ln t for O(1) alpha per candidate (x_eff changes, so keep sum ln t)
    suffix[n_all] = 0.0
    for i in range(n_all - 1, -1, -1):
        suffix[i] = suffix[i + 1] + np.log(t[i])
    for i in range(n_all):
        alphas[i] = np.nan             # NaN: not a candidate
    for i in range(n_all - min_tail + 1):
        if i > 0 and t[i] == t[i - 1]:
            continue
        s = suffix[i] - (n_all - i) * np.log(t[i] - half)
        if s > 0:
            alphas[i] = 1.0 + (n_all - i) / s
    bound = np.inf
    step = (n_all - min_tail + 1) // 40   # max(1, ...) written out, as in _ks_distance
    if not step > 1:
        step = 1
    for i in range(0, n_all - min_tail + 1, step):
        if not np.isnan(alphas[i]):
            d = _ks_distance(t, i, alphas[i], t[i] - half, half, np.inf, np.inf)
            if d < bound:   # min(bound, d) written out
                bound = d
    best_i, best_a, best_d = -1, np.nan, np.inf
    for i in range(n_all - min_tail + 1):
        if np.isnan(alphas[i]):
            continue
        d = _ks_distance(t, i, alphas[i], t[i] - half, half, best_d, bound)
        if d < best_d and not d > bound:
            best_i, best_a, best_d = i, alphas[i], d
    return best_i, best_a, best_d


def _log_upper_gamma(s: float, x: float) -> float:
    """ln Gamma(s, x) for any real s and x > 0 (recurrence upwards for s <= 0)."""
    if s > 0:
        return float(special.gammaln(s) + np.log(special.gammaincc(s, x)))
    if s == 0:
        return float(np.log(special.exp1(x)))
    # Gamma(s, x) = (Gamma(s + 1, x) - x^s e^-x) / s, with s < 0 the result is positive
    upper = np.exp(_log_upper_gamma(s + 1, x))
    return float(np.log((upper - x ** s * np.exp(-x)) / s))


def _tpl_nll(alpha: float, lam: float, sum_log: float, sum_t: float, n: int,
             x_eff: float) -> float:
    """Negative log-likelihood of t^-alpha e^(-lam t) on [x_eff, inf)."""
    # normalisation: int_x^inf t^-a e^-lt dt = l^(a-1) Gamma(1-a, l x)
    log_z = (alpha - 1) * np.log(lam) + _log_upper_gamma(1 - alpha, lam * x_eff)
    return alpha * sum_log + lam * sum_t + n * log_z


@dataclass
class PowerLawFit:
    """Maximum-likelihood power-law fit of dwell times (s).

    Attributes
    ----------
    alpha, alpha_err
        Exponent of p(t) ~ t^-alpha above ``t_min`` and its standard error (alpha - 1)/sqrt(n).
    t_min
        Lower bound of the power-law regime (minimum KS distance).
    n_tail, n_total
        Dwells at or above ``t_min``; all dwells.
    ks_distance
        Kolmogorov-Smirnov distance of the fit.
    tpl_alpha, tpl_alpha_err, tpl_cutoff, tpl_cutoff_err
        Power law with exponential cutoff t^-alpha e^(-t/cutoff) on the same tail.
    log_likelihood_ratio
        ln L(power law) - ln L(truncated); negative favours the truncated law.
    p_value
        Of the likelihood-ratio test of the nested models (half chi-square with 1 degree of
        freedom, the cutoff rate lying on the boundary under the power law).
    preferred
        ``"truncated"`` if p < 0.05, else ``"power_law"``.
    """

    alpha: float
    alpha_err: float
    t_min: float
    n_tail: int
    n_total: int
    ks_distance: float
    tpl_alpha: float = float("nan")
    tpl_alpha_err: float = float("nan")
    tpl_cutoff: float = float("nan")
    tpl_cutoff_err: float = float("nan")
    log_likelihood_ratio: float = float("nan")
    p_value: float = float("nan")
    preferred: str = "power_law"


def fit_power_law(dwells: np.ndarray, t_min: float | None = None, resolution: float = 0.0,
                  min_tail: int = 10, truncated: bool = True) -> PowerLawFit:
    """Fit a power law (and a truncated power law) to dwell times by maximum likelihood.

    Parameters
    ----------
    dwells
        Dwell times in seconds (censored first and last dwell already dropped).
    t_min
        Lower bound of the fit; by default the value that minimises the KS distance.
    resolution
        Time resolution of the dwells (the bin width for dwells from a binned trace, 0 for
        change-point levels). For binned dwells the continuous likelihood is used with t_min
        shifted down by half a bin (Clauset et al.'s approximation for discrete data).
    min_tail
        Fewest dwells allowed in the tail.
    truncated
        Also fit the power law with exponential cutoff and compare.
    """
    t = np.sort(np.asarray(dwells, dtype=np.float64))
    if t.size < min_tail:
        raise ValueError(f"{t.size} dwell times are too few for a power-law fit "
                         f"(need {min_tail})")
    if t[0] <= resolution / 2:
        raise ValueError("dwell times must be positive and longer than half the resolution")
    if t_min is None:
        i, _, _ = _ks_scan(t, float(resolution), int(min_tail))
        if i < 0:
            raise ValueError("no usable t_min: too few distinct dwell times")
    else:
        i = int(np.searchsorted(t, t_min, side="left"))
        if t.size - i < min_tail:
            raise ValueError(f"fewer than {min_tail} dwells at or above t_min = {t_min:g} s")
    tail = t[i:]
    n = tail.size
    x_eff = tail[0] - resolution / 2
    sum_log = float(np.log(tail).sum())
    alpha = 1 + n / (sum_log - n * np.log(x_eff))
    p = 1 - ((tail + resolution / 2) / x_eff) ** (1 - alpha)
    ecdf = np.searchsorted(tail, tail, side="right") / n
    ks = float(np.max(np.abs(ecdf - p)))
    fit = PowerLawFit(float(alpha), float((alpha - 1) / np.sqrt(n)), float(tail[0]), int(n),
                      int(t.size), ks)
    if truncated:
        _fit_truncated(fit, tail, x_eff, sum_log)
    return fit


def reported_exponent(fit: PowerLawFit | None, what: str) -> tuple[float | None, str | None]:
    """The dwell-time exponent to report, or ``None`` with a note saying why not.

    The exponent is that of the model the likelihood-ratio test prefers (blinking dwells are
    power laws cut off at long times; a pure power law fitted to such a tail comes out too
    steep, 0.14 too high for a 0.5 s OFF cutoff on a 600 s trace, while the truncated law
    recovers it). A power law ``t^-alpha`` with ``alpha <= 1`` cannot be normalised: the
    truncated law then holds only through its exponential cutoff, so the dwells follow an
    exponential (a gamma distribution), not a power law, and no exponent is given.
    """
    if fit is None:
        return None, None
    if fit.preferred == "truncated":
        alpha, err = fit.tpl_alpha, fit.tpl_alpha_err
    else:
        alpha, err = fit.alpha, fit.alpha_err
    if not np.isfinite(alpha):
        return None, f"{what} dwells: no finite power-law exponent"
    if alpha <= 1.0:
        return None, (f"{what} dwells: no power-law exponent - the truncated power law's "
                      f"exponent is {alpha:.2f} +/- {err:.2f} (<= 1, not normalisable without "
                      f"its cutoff of {fit.tpl_cutoff:.3g} s): the dwells follow an exponential "
                      "cutoff, not a power law")
    return float(alpha), None


def _fit_truncated(fit: PowerLawFit, tail: np.ndarray, x_eff: float, sum_log: float) -> None:
    n = tail.size
    sum_t = float(tail.sum())
    nll_pl = fit.alpha * sum_log - n * (np.log(fit.alpha - 1) + (fit.alpha - 1) * np.log(x_eff))

    def nll(p: np.ndarray) -> float:
        val = _tpl_nll(p[0], np.exp(p[1]), sum_log, sum_t, n, x_eff)
        return val if np.isfinite(val) else 1e300

    from scipy import optimize  # the power-law tails only

    best = None
    for lam0 in (0.01 / tail.mean(), 0.3 / tail.mean(), 3 / tail.max()):
        r = optimize.minimize(nll, np.array([fit.alpha, np.log(lam0)]), method="Nelder-Mead",
                              options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 4000})
        if best is None or r.fun < best.fun:
            best = r
    a_hat, log_lam = best.x
    cov = _inverse_hessian(nll, best.x)
    fit.tpl_alpha = float(a_hat)
    fit.tpl_cutoff = float(np.exp(-log_lam))
    fit.tpl_alpha_err = float(np.sqrt(cov[0, 0])) if cov[0, 0] > 0 else float("nan")
    fit.tpl_cutoff_err = (float(fit.tpl_cutoff * np.sqrt(cov[1, 1])) if cov[1, 1] > 0
                          else float("nan"))
    # The power law is the truncated one at zero cutoff rate: the truncated fit can only do
    # better (up to optimiser tolerance).
    llr = min(-nll_pl + best.fun, 0.0)
    fit.log_likelihood_ratio = float(llr)
    fit.p_value = float(0.5 * chi2_sf(-2 * llr, 1)) if llr < 0 else 1.0
    fit.preferred = "truncated" if fit.p_value < 0.05 else "power_law"


def _inverse_hessian(f: Any, x: np.ndarray) -> np.ndarray:
    """Inverse of the finite-difference Hessian of f at x (covariance of an MLE)."""
    k = x.size
    h = 1e-4 * np.maximum(np.abs(x), 1.0)
    hess = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            ei = np.zeros(k)
            ej = np.zeros(k)
            ei[i] = h[i]
            ej[j] = h[j]
            hess[i, j] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej)
                          + f(x - ei - ej)) / (4 * h[i] * h[j])
    try:
        return np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        return np.full((k, k), np.nan)


__all__ = ["PowerLawFit", "fit_power_law", "reported_exponent"]
