"""Pulsed g2(0) from a fit of the whole correlogram, for coincidence peaks that overlap.

With a decay that is not over within the laser period (40-80 MHz lasers, slow dots) the
coincidence peaks run into each other: a window of +/- T/2 around the zero-delay peak then
holds as much of its neighbours' tails as of its own pairs, and a ratio of window areas says
little. Here the whole correlogram is fitted, bin by bin, with the pulsed model

    n(τ_j) = F w + A_0 P_0(j) + A Σ_{k≠0} P_k(j),

a comb of identical peaks, one per laser period, whose shape P is that of the delay
difference Δ = d_b - d_a of two photons of different excitations: the cross-correlation of
the two detectors' single-pulse delay distributions.

- **With delay histograms** (T3, and T2 with sync events) the shape is built from them
  (:func:`measured_shape`): each detector's histogram, its uncorrelated background removed,
  holds the decay convolved with that detector's IRF, but wrapped into one period when the
  decay outlasts it. It is unwrapped with the decay fit's lifetime (the tail that arrived
  after the next syncs is an exponential continued from the end of the period) and the two
  are correlated. Only the areas are fitted: A_0 and A.
- **Without** (T2 without sync) the shape is the two-sided exponential exp(-|Δ|/τ) / 2τ of a
  single-exponential decay (the IRF, tens to hundreds of ps, does not change the peak areas
  and is left out), and its lifetime τ is fitted too: the peak shape is then the only place
  the lifetime shows.

The flat floor F (pairs per second of lag) is
**fixed** from the recording's measured uncorrelated background (dark counts, the decay's
floor), not left free, so that it cannot trade off against the overlapping tails
(``F = (b_a r_b + r_a b_b - b_a b_b) D`` as in :func:`spad.analysis.g2.pulsed_g2`).

The fit maximises the Poisson likelihood of the bin counts; g2(0) = A_0 / A with the standard
error from the inverse Fisher information. A recording with few coincidences gets a value with
a large error, not none (the classifier weighs it by that error). Becker, *The bh TCSPC
Handbook* (10th ed., 2023), "Fluorescence correlation / antibunching" describes the pulsed
correlogram as a comb of such peaks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from spad.analysis.accumulators import Correlation
from spad.analysis.g2 import G2Result, full_convolution, peak_fractions

MAX_SIDE_PEAKS = 8
"""Side peaks on each side used in the fit (blinking bunching is flat over them)."""

MAX_BINS_PER_PERIOD = 60
"""The correlogram is summed to at most this many bins per period (speed; the peak areas do
not need finer bins)."""


@dataclass(frozen=True)
class CorrelogramFit:
    """The fitted pulsed model.

    Attributes
    ----------
    g2, g2_err
        A_0 / A and its standard error.
    centre_area, side_area
        Fitted pairs in the centre peak and in each side peak.
    lifetime_s, lifetime_err_s
        Lifetime of the fitted peak shape.
    floor_per_bin, floor_err_per_bin
        The floor, pairs per bin of the fit, and its standard error (0 where it was fixed).
    chi2_reduced
        Pearson chi-square per degree of freedom.
    n_peaks, bin_width_s
        Side peaks used (both sides together) and the fit's bin width.
    period_s
        The laser period of the fit.
    shape
        ``"measured decays"`` (the shape from the delay histograms, lifetime as given) or
        ``"exponential"`` (two-sided exponential, lifetime fitted).
    """

    g2: float
    g2_err: float
    centre_area: float
    side_area: float
    lifetime_s: float
    lifetime_err_s: float
    floor_per_bin: float
    chi2_reduced: float
    n_peaks: int
    bin_width_s: float
    period_s: float
    shape: str = "exponential"
    floor_err_per_bin: float = 0.0


def _cdf(x: np.ndarray, tau: float) -> np.ndarray:
    """CDF of the two-sided exponential exp(-|x|/tau) / 2 tau."""
    e = np.exp(-np.abs(x) / tau)
    return np.where(x < 0, 0.5 * e, 1.0 - 0.5 * e)


def _cdf_two(x: np.ndarray, taus: tuple[float, float], share: float) -> np.ndarray:
    """CDF of the peak shape of a decay with two components: photon shares ``share`` and
    ``1 - share`` with lifetimes ``taus``, ``f(t) = sum_i w_i exp(-t/τ_i) / τ_i``.

    Photons of different pulses are independent, so Δ = d_b - d_a has the density
    ``∫ f(t) f(t + Δ) dt = sum_ij w_i w_j exp(-Δ/τ_j) / (τ_i + τ_j)`` for Δ ≥ 0 and
    ``sum_ij w_i w_j exp(Δ/τ_i) / (τ_i + τ_j)`` for Δ < 0: for each pair (i, j) of components,
    share w_i w_j, an exponential of τ_i to the left and of τ_j to the right (in amplitudes
    a_i = w_i / τ_i of the decay, the weight a_i a_j τ_i τ_j / (τ_i + τ_j) of each part), and
    for one component the two-sided exponential of :func:`_cdf`.
    """
    w = (share, 1.0 - share)
    out = np.zeros_like(x)
    neg = x < 0
    for i in range(2):
        for j in range(2):
            ti, tj = taus[i], taus[j]
            left = ti / (ti + tj) * np.exp(np.minimum(x, 0.0) / ti)
            right = 1.0 - tj / (ti + tj) * np.exp(-np.maximum(x, 0.0) / tj)
            out += w[i] * w[j] * np.where(neg, left, right)
    return out


def peak_matrix(edges: np.ndarray, centre: float, period: float, tau: float,
                peaks: np.ndarray, second: tuple[float, float] | None = None) -> np.ndarray:
    """Share of each peak (columns; peak k at ``centre + k period``) in each bin (rows); with
    ``second = (τ_2, share of τ)`` the shape of a two-component decay (:func:`_cdf_two`)."""
    x = edges[:, None] - (centre + peaks[None, :] * period)
    c = _cdf(x, tau) if second is None else _cdf_two(x, (tau, second[0]), second[1])
    return c[1:] - c[:-1]


MAX_SHAPE_BINS = 1 << 16
"""Longest unwrapped delay distribution (bins) of :func:`measured_shape` (memory, FFT time)."""


def _unwrap(h: np.ndarray, width: float, period: float, lifetime: float) -> np.ndarray:
    """One detector's single-pulse delay distribution from its histogram over one period
    (background removed, rolled so the rise comes first): the histogram holds the decay of
    this pulse plus the tails of all earlier ones, ``a e^{-t/τ} q`` with
    ``q = e^{-T/τ} / (1 - e^{-T/τ})`` past the IRF. ``a`` comes from the second half of the
    period, where the decay is the exponential alone; the tail is taken off and continued
    beyond the period."""
    n = h.size
    t = (np.arange(n) + 0.5) * width
    q = math.exp(-period / lifetime) / -math.expm1(-period / lifetime)
    late = t >= 0.5 * period
    e = np.exp(-t / lifetime)
    a = float(h[late].sum() / max((e[late] * (1.0 + q)).sum(), 1e-300))
    own = np.clip(h - a * q * e, 0.0, None)
    extra = min(int(math.ceil(12.0 * lifetime / width)), MAX_SHAPE_BINS) - n
    if extra <= 0:
        return own
    t_x = (n + np.arange(extra) + 0.5) * width
    return np.concatenate([own, a * np.exp(-t_x / lifetime)])


def measured_shape(h_a: np.ndarray, h_b: np.ndarray, width_s: float, period_s: float,
                   lifetime_s: float, background_per_bin: tuple[float, float] = (0.0, 0.0)
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The peak shape from the two detectors' delay histograms (see the module notes).

    Parameters
    ----------
    h_a, h_b
        Delay histograms (counts per bin of ``width_s`` after the sync) over one period.
    width_s, period_s
        Their bin width and the laser period.
    lifetime_s
        The decay's lifetime (its intensity-weighted one from the decay fit): continues the
        tail beyond the period.
    background_per_bin
        Each histogram's uncorrelated background per bin (dark counts, spread evenly).

    Returns
    -------
    (edges_s, cdf)
        Cumulative distribution of Δ = d_b - d_a at ``edges_s``, as
        :func:`spad.analysis.g2.delay_difference` gives it.
    """
    n = max(2, min(len(h_a), len(h_b), int(round(period_s / width_s))))
    rows, rolls = [], []
    for h, bg in ((h_a, background_per_bin[0]), (h_b, background_per_bin[1])):
        sig = np.clip(np.asarray(h[:n], float) - bg, 0.0, None)
        if sig.sum() <= 0:
            raise ValueError("a delay histogram holds no signal above its background")
        # start a twentieth of the period before the maximum: the rise (IRF) comes first and
        # the second half of the period is decay tail
        r = (int(np.argmax(sig)) - max(1, n // 20)) % n
        # the decay fit's intensity-weighted lifetime continues the tail (checked against
        # bi-exponential truth; the slope of the histogram's own tail did worse)
        rows.append(_unwrap(np.roll(sig, -r), width_s, period_s, lifetime_s))
        rolls.append(r)
    f_a, f_b = rows
    p = np.clip(full_convolution(f_b, f_a[::-1]), 0.0, None)
    cdf = np.concatenate(([0.0], np.cumsum(p)))
    cdf /= cdf[-1]
    # element j of the convolution with the reversed a row is the lag j - (len(f_a) - 1)
    edges = ((np.arange(-(f_a.size - 1), f_b.size + 1) - 0.5 + rolls[1] - rolls[0])
             * width_s)
    return edges, cdf


def fit_correlogram(correlation: Correlation, period_s: float, centre_lag_s: float,
                    floor_hz: float = 0.0, lifetime_s: float | None = None,
                    shape: tuple[np.ndarray, np.ndarray] | None = None,
                    free_floor: bool = False, two_components: bool | None = None
                    ) -> CorrelogramFit:
    """Fit the whole correlogram with the pulsed model (see the module notes).

    Parameters
    ----------
    correlation
        The cross-correlation (several periods of lag on each side).
    period_s, centre_lag_s
        Laser period and position of the zero-delay peak.
    floor_hz
        Uncorrelated pairs per second of lag (fixed): ``(b_a r_b + r_a b_b - b_a b_b) D``.
    lifetime_s
        The peak shape's lifetime when the decay gave it (T3); default fitted.
    shape
        The measured peak shape, ``(edges_s, cdf)`` of :func:`measured_shape`: then only the
        areas are fitted (``lifetime_s`` is reported as the shape's lifetime).
    free_floor
        Fit the floor too (``floor_hz`` ignored): for a recording whose background was not
        measured. Between separate peaks the flat stretch measures it; where the peaks overlap
        it trades off against their tails, and the Fisher error of g2(0) says by how much.
    two_components
        Where the shape is fitted (no ``shape``, no ``lifetime_s``), also try the shape of a
        two-component decay (:func:`_cdf_two`) and keep it where it fits significantly better
        (:data:`TWO_COMPONENT_LR`); ``lifetime_s`` is then the photon-weighted mean lifetime.
        Default: with ``free_floor`` (T2 without sync, where the shape is the only model of
        the decay; with delay histograms the measured shape holds every component).

    Raises
    ------
    ValueError
        Without a complete side peak in the lag range, or without any pair.
    """
    c = correlation
    period = float(period_s)
    k_max = int(math.floor((c.bin_edges_s[-1] - centre_lag_s) / period - 0.5))
    k_min = int(math.ceil((c.bin_edges_s[0] - centre_lag_s) / period + 0.5))
    k_hi, k_lo = min(k_max, MAX_SIDE_PEAKS), max(k_min, -MAX_SIDE_PEAKS)
    if k_hi < 1 and k_lo > -1:
        raise ValueError("no complete side peak in the correlogram's lag range")
    lo = centre_lag_s + (k_lo - 0.5) * period
    hi = centre_lag_s + (k_hi + 0.5) * period
    i0 = int(np.searchsorted(c.bin_edges_s, lo, side="left"))
    i1 = int(np.searchsorted(c.bin_edges_s, hi, side="right")) - 1
    counts = np.asarray(c.counts[i0:i1], float)
    edges = np.asarray(c.bin_edges_s[i0:i1 + 1], float)
    group = max(1, int(round(period / c.bin_width_s / MAX_BINS_PER_PERIOD)))
    n = counts.size // group
    if n < 4:
        raise ValueError("too few correlogram bins to fit")
    counts = counts[:n * group].reshape(n, group).sum(axis=1)
    edges = edges[:n * group + 1:group]
    width = float(edges[1] - edges[0])
    if counts.sum() <= 0:
        raise ValueError("the correlogram holds no pairs")
    floor = 0.0 if free_floor else max(float(floor_hz), 0.0) * width

    # lifetimes from period/300 to 4 periods or 100 ns (the longest a QD bright state shows),
    # whichever is longer
    lt_lo, lt_hi = math.log(period / 300), math.log(max(4 * period, 100e-9))

    def design(q: float | np.ndarray) -> np.ndarray:
        """The peak columns for the shape parameters ``q``: log τ, or (log τ_1, log τ_2,
        logit of τ_1's photon share) for two components."""
        if shape is not None:
            return measured
        q = np.atleast_1d(np.asarray(q, float))
        tau = math.exp(min(max(float(q[0]), lt_lo), lt_hi))
        second = None
        if q.size == 3:
            second = (math.exp(min(max(float(q[1]), lt_lo), lt_hi)),
                      1.0 / (1.0 + math.exp(-min(max(float(q[2]), -10.0), 10.0))))
        longest = max(tau, second[0]) if second else tau
        # every peak whose tail reaches the fitted range (e^-12 of it), not only the complete
        reach = min(int(math.ceil(12 * longest / period)) + 1, 200)
        peaks = np.arange(k_lo - reach, k_hi + reach + 1)
        m = peak_matrix(edges, centre_lag_s, period, tau, peaks, second)
        is_c = peaks == 0
        return with_floor(np.column_stack([m[:, is_c][:, 0], m[:, ~is_c].sum(axis=1)]))

    def with_floor(x: np.ndarray) -> np.ndarray:
        # a free floor is one more linear parameter: a column of ones (pairs per bin)
        return np.column_stack([x, np.ones(n)]) if free_floor else x

    lower = np.array([0.0, 1e-9, 0.0][:2 + free_floor])

    def areas(x: np.ndarray) -> tuple[np.ndarray, float]:
        """Poisson maximum likelihood of (A_0, A[, F]) for a fixed shape: the model is linear
        in them, so Newton steps (iteratively reweighted least squares) converge in a few."""
        total = max(float(counts.sum() - floor * n), 1.0)
        a = np.array([0.5, 1.0]) * total / max(
            float(x[:, 1].sum()) + 0.5 * float(x[:, 0].sum()), 1e-9)
        if free_floor:
            a = np.append(0.8 * a, 0.2 * total / n)
        k = a.size
        for _ in range(100):
            mu = np.maximum(floor + x @ a, 1e-12)
            grad = x.T @ (counts / mu - 1.0)
            # the expected information (Fisher scoring), not the observed one: with a few
            # pairs in thousands of bins the observed one is near singular and the steps
            # overshoot (a dimer with 12 pairs ended at A ~ 17 x its area, g2(0) 0 +/- 0.04)
            hess = (x / mu[:, None]).T @ x + 1e-12 * np.eye(k)
            step = np.linalg.solve(hess, grad)
            new = np.maximum(a + step, lower)
            if np.all(np.abs(new - a) <= 1e-9 * np.maximum(np.abs(a), 1.0)):
                a = new
                break
            a = new
        mu = np.maximum(floor + x @ a, 1e-12)
        return a, float(np.sum(mu - counts * np.log(mu)))

    if shape is not None:
        # peak k of Δ holds the pairs whose syncs are k apart; the one of the same pulse is
        # the peak that lands on the zero-delay peak (cable delays move Δ, not the label)
        s_edges, s_cdf = shape
        median = float(np.interp(0.5, s_cdf, s_edges))
        k0 = int(round((centre_lag_s - median) / period))
        reach = int(math.ceil(max(abs(s_edges[0]), abs(s_edges[-1])) / period)) + 1
        peaks = np.arange(k_lo + k0 - reach, k_hi + k0 + reach + 1)
        m = peak_fractions(s_edges, s_cdf, edges[:-1], edges[1:], peaks, period)
        is_c = peaks == k0
        measured = with_floor(np.column_stack([m[:, is_c][:, 0], m[:, ~is_c].sum(axis=1)]))
        log_tau = math.log(lifetime_s) if lifetime_s else 0.0
    elif lifetime_s is not None:
        log_tau = math.log(lifetime_s)
    else:
        grid = np.linspace(lt_lo, lt_hi, 11)
        vals = [areas(design(g))[1] for g in grid]
        k = int(np.argmin(vals))
        from scipy.optimize import minimize_scalar  # without a lifetime only

        res = minimize_scalar(lambda g: areas(design(g))[1],
                              bounds=(grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]),
                              method="bounded", options={"xatol": 1e-3})
        log_tau = float(res.x)
    fit_tau = lifetime_s is None and shape is None
    q = np.array([log_tau])
    two = False
    if fit_tau and (free_floor if two_components is None else two_components):
        q2, gain = _second_component(lambda v: areas(design(v))[1], log_tau)
        if 2.0 * gain > TWO_COMPONENT_LR:
            q, two = q2, True
    x = design(q)
    theta, _ = areas(x)
    a0, a = float(theta[0]), float(theta[1])
    f_fit = float(theta[2]) if free_floor else floor
    mu = np.maximum(floor + x @ theta, 1e-12)
    # Fisher information of the Poisson likelihood, sum_j (dmu_j/dθ)(dmu_j/dθ)^T / mu_j, over
    # (A_0, A[, F], shape parameters); the shape columns by central differences
    h = 1e-4
    shape_cols = []
    for i in range(q.size if fit_tau else 0):
        dq = np.zeros(q.size)
        dq[i] = h
        shape_cols.append((design(q + dq) - design(q - dq)) @ theta / (2 * h))
    jac = np.column_stack([x, *shape_cols])
    info = jac.T @ (jac / mu[:, None])
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(info)
    g2 = a0 / a
    grad = np.zeros(jac.shape[1])
    grad[:2] = (1.0 / a, -a0 / a ** 2)
    # at least one pair's worth of Poisson error in the centre peak: a centre area fitted to
    # the bound 0 under a model that puts almost nothing there has a Fisher error near 0
    var = max(float(grad @ cov @ grad), max(a0, 1.0) / a ** 2)
    chi2 = float(np.sum((counts - mu) ** 2 / mu)) / max(n - jac.shape[1], 1)
    tau = math.exp(log_tau) if shape is None or lifetime_s else math.nan
    tau_err = tau * math.sqrt(max(float(cov[-1, -1]), 0.0)) if fit_tau else 0.0
    if two:
        # the photon-weighted mean lifetime and its error (delta method over the shape block)
        def mean_tau(v: np.ndarray) -> float:
            share = 1.0 / (1.0 + math.exp(-v[2]))
            return share * math.exp(v[0]) + (1 - share) * math.exp(v[1])

        tau = mean_tau(q)
        g = np.array([(mean_tau(q + h * e) - mean_tau(q - h * e)) / (2 * h) for e in np.eye(3)])
        block = cov[-3:, -3:]
        tau_err = math.sqrt(max(float(g @ block @ g), 0.0))
    floor_err = math.sqrt(max(float(cov[2, 2]), 0.0)) if free_floor else 0.0
    return CorrelogramFit(float(g2), math.sqrt(max(var, 0.0)), a0, a, tau,
                          tau_err, f_fit, chi2, int(k_hi - k_lo), width, period,
                          "measured decays" if shape is not None else
                          "two exponentials" if two else "exponential", floor_err)


TWO_COMPONENT_LR = 9.21
"""Twice the log-likelihood gain the two-component peak shape must bring over one exponential
to be used: the 99 % point of chi-square with 2 degrees of freedom (its two extra parameters,
a likelihood-ratio test; Wilks, Ann. Math. Stat. 9, 60 (1938))."""


def _second_component(nll: Callable[[np.ndarray], float], log_tau: float
                      ) -> tuple[np.ndarray, float]:
    """The two-component peak shape's parameters (log τ_1, log τ_2, logit share of τ_1) by
    Nelder-Mead from one component's lifetime spread both ways, and the drop in the negative
    log-likelihood against that one component."""
    from scipy.optimize import minimize

    one = nll(np.array([log_tau]))
    start = np.array([log_tau - math.log(2.0), log_tau + math.log(2.0), 0.0])
    # the simplex spans a factor 1.5 in each lifetime and a share of 0.5 to 0.73 (scipy's own
    # steps, 5 % of each value and 0.00025 where it is 0, left the share at its start)
    simplex = np.vstack([start, start + np.diag([0.4, 0.4, 1.0])])
    res = minimize(nll, start, method="Nelder-Mead",
                   options={"xatol": 1e-2, "fatol": 1e-2, "maxiter": 600,
                            "initial_simplex": simplex})
    return np.asarray(res.x, float), float(one - res.fun)


def floor_rate(correlation: Correlation, background_hz: tuple[float, float] | None) -> float:
    """Uncorrelated pairs per second of lag from the detectors' background rates."""
    if background_hz is None or correlation.duration_s <= 0:
        return 0.0
    d = correlation.duration_s
    r = np.array([correlation.n_a, correlation.n_b], float) / d
    b = np.clip(np.asarray(background_hz, float), 0.0, r)
    return float((b[0] * r[1] + r[0] * b[1] - b[0] * b[1]) * d)


def use_fit(window: G2Result | None, decay_corrected: bool, fit: CorrelogramFit) -> bool:
    """Whether the fit, not the window ratio, gives g2(0): the window ratio is not trusted
    (overlapping peaks), or it could not be corrected for the tails that cross its windows
    (no decay: T2 without sync) and the fitted shape says those tails matter (a neighbour puts
    ~exp(-T/2τ)/2 of its area into the centre window, two neighbours twice that)."""
    if window is None or not window.trusted or not math.isfinite(window.g2):
        return True
    if decay_corrected:
        return False
    leak = math.exp(-fit.period_s / (2 * fit.lifetime_s))
    return leak > max(0.01, 0.3 * window.g2_err)
