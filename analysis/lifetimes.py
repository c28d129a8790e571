"""Fluorescence decay fitting: multi-exponential decays under periodic excitation.

Model (docs/methods.md, "Decays and lifetimes"; Maus et al., Anal. Chem. 73, 2078 (2001)):
counts in TCSPC bin i are

    m_i = b + sum_j a_j * integral over bin i of (IRF (*) f_j)(t - s) dt,
    f_j(t) = exp(-(t mod T)/tau_j) / (tau_j (1 - exp(-T/tau_j))),

with T the sync period. f_j is the decay of an emitter excited every T (photons of earlier pulses
wrap around) normalised to unit area per period, so ``a_j`` is the number of photons of component
j per period of the histogram and ``b`` the background per bin. The bin integral uses the exact
antiderivative of the periodic decay, so bins as wide as the decay are handled correctly.

The IRF is either measured (an array on the same bins, loaded by the caller; a shift ``s`` is
fitted), a Gaussian with fitted centre and width, or absent (tail fit: the decay is fitted from a
start time after the peak, excitation at the peak).

Fit quality, for every fit: the Pearson chi-square per degree of freedom, the weighted residuals
``(y - m) / sqrt(m)`` of the fitted bins, and the Durbin-Watson statistic of those residuals
(sum of squared successive differences over sum of squares: 2 without serial correlation, lower
when the model misses structure, e.g. a missing component or a wrong IRF). Its critical lower
bounds at 5 % and 1 % come from the response surfaces of P. Turner, "Critical values for the
Durbin-Watson test in large samples" (Appl. Econ. Lett., 2020, doi:10.1080/13504851.2019.1706908),
``d_L = 2 + b1/sqrt(n) + b2/n + b3/n^1.5 + b4/n^2``,
with the coefficient sets Full SMS (Botha, van Heerden & Krüger, Biophys. Rep. 2024) assigns to
one-, two- and three-exponential decay fits. A fit whose statistic lies below the 1 % bound has
residuals correlated beyond chance.

Fitting is Poisson maximum likelihood: lmfit's Levenberg-Marquardt (``leastsq``) minimises the
sum of squared signed deviance residuals ``sign(y - m) sqrt(2 (m - y + y ln(y/m)))``, which is the
Poisson deviance, so the optimum is the maximum-likelihood estimate while keeping a
least-squares solver's fast convergence. Uncertainties are then taken from the Fisher information
of the Poisson model, ``J^T diag(1/m) J``, not from lmfit's Jacobian of the deviance residuals,
which undercounts the information of bins with no counts by half.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import scipy.fft
from numba import njit
from scipy.special import ndtr, xlogy
from spad.analysis.schema import to_json_types

if TYPE_CHECKING:
    from spad.analysis.lmfit_lean import lmfit

__all__ = [
    "LifetimeResult", "fit_decay", "fit_tail",
    "state_decay_histograms", "fit_states", "periodic_decay_bins", "durbin_watson_bounds",
]

MIN_OCCUPIED_BINS = 3
"""Fewest TCSPC bins with photons in a fit range that a decay can be fitted from."""

#: Turner (2020) response-surface coefficients (b1, b2, b3, b4) of the Durbin-Watson lower bound
#: at 5 % and 1 %, per number of exponentials, as Full SMS assigns them.
_DW_COEFFS = {
    1: ((-3.312097, -3.332536, -3.632166, 19.31135), (-4.642915, -4.052984, 5.966592, 14.91894)),
    2: ((-3.447993, -4.229294, -28.91627, 80.00972), (-4.655069, -7.296073, -5.300441, 60.11130)),
    3: ((-3.535331, -4.085190, -47.63654, 127.7127), (-4.675041, -8.518908, -15.25711, 96.32291)),
}


def durbin_watson_bounds(n_bins: int, n_exp: int) -> tuple[float, float]:
    """Durbin-Watson lower critical bounds (5 %, 1 %) for a fit of ``n_bins`` bins.

    Turner (2020) response surface ``2 + b1/sqrt(n) + b2/n + b3/n^1.5 + b4/n^2`` with the
    coefficients for ``n_exp`` exponentials (see the module docstring).
    """
    n = float(n_bins)
    if n < 2:
        return float("nan"), float("nan")
    out = []
    for b1, b2, b3, b4 in _DW_COEFFS[int(min(max(n_exp, 1), 3))]:
        out.append(2 + b1 / np.sqrt(n) + b2 / n + b3 / n ** 1.5 + b4 / n ** 2)
    return float(out[0]), float(out[1])


def durbin_watson(residuals: np.ndarray) -> float:
    """Durbin-Watson statistic: sum of squared successive differences over sum of squares."""
    r = np.asarray(residuals, dtype=np.float64)
    ss = float(np.sum(r * r))
    return float(np.sum(np.diff(r) ** 2) / ss) if r.size > 1 and ss > 0 else float("nan")


def _period_cdf(u: np.ndarray, tau: float, period: float) -> np.ndarray:
    """Antiderivative of the unit-area periodic decay: photons emitted between 0 and u.

    One full period holds exactly one photon; whole periods are counted by ``floor(u/T)``.
    """
    k = np.floor(u / period)
    r = u - k * period
    return k + np.expm1(-r / tau) / np.expm1(-period / tau)


def periodic_decay_bins(edges: np.ndarray, tau: float, period: float) -> np.ndarray:
    """Share of one period's photons of a periodic decay (excited at t = 0) in each bin."""
    c = _period_cdf(np.asarray(edges, dtype=np.float64), tau, period)
    return np.diff(c)


@dataclass
class LifetimeResult:
    """Result of a decay fit (times in s, counts in photons).

    Attributes
    ----------
    n_exp, irf
        Number of exponentials; ``"measured"``, ``"gaussian"`` or ``"none"`` (tail fit).
    taus, tau_errs
        Lifetimes, ascending, and standard errors.
    amplitudes, amplitude_errs
        Pre-exponential amplitudes normalised to sum 1.
    intensity_fractions, intensity_fraction_errs
        Share of the photons of each component (a_j tau_j normalised).
    photons, photon_errs
        Fitted photons per period of each component.
    tau_amplitude_mean, tau_amplitude_mean_err
        sum(alpha_j tau_j) / sum(alpha_j).
    tau_intensity_mean, tau_intensity_mean_err
        sum(alpha_j tau_j^2) / sum(alpha_j tau_j).
    background, background_err
        Counts per bin.
    shift, shift_err
        Shift of the measured IRF (s; NaN otherwise).
    irf_center, irf_center_err, irf_fwhm, irf_fwhm_err
        Fitted Gaussian IRF (s; NaN otherwise).
    fit_start, fit_stop
        Time span of the fitted bins (s).
    n_bins, dof
        Fitted bins and degrees of freedom.
    deviance_per_dof, chi2_reduced
        Poisson deviance and Pearson chi-square per degree of freedom (~1 for a good fit).
    durbin_watson, dw_bound_5pct, dw_bound_1pct
        Durbin-Watson statistic of the weighted residuals of the bins expecting at least one
        count, and its lower critical bounds for that many bins: below a bound, the residuals
        are serially correlated at that significance (a poor model). NaN with too few bins.
    success, message
        From the optimiser.
    model
        Fitted counts of the fitted bins.
    residuals
        Weighted residuals ``(counts - model) / sqrt(model)`` of the fitted bins.
    """

    n_exp: int
    irf: str
    taus: np.ndarray
    tau_errs: np.ndarray
    amplitudes: np.ndarray
    amplitude_errs: np.ndarray
    intensity_fractions: np.ndarray
    intensity_fraction_errs: np.ndarray
    photons: np.ndarray
    photon_errs: np.ndarray
    tau_amplitude_mean: float
    tau_amplitude_mean_err: float
    tau_intensity_mean: float
    tau_intensity_mean_err: float
    background: float
    background_err: float
    shift: float
    shift_err: float
    irf_center: float
    irf_center_err: float
    irf_fwhm: float
    irf_fwhm_err: float
    fit_start: float
    fit_stop: float
    n_bins: int
    dof: int
    deviance_per_dof: float
    chi2_reduced: float
    success: bool
    message: str
    model: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    durbin_watson: float = float("nan")
    dw_bound_5pct: float = float("nan")
    dw_bound_1pct: float = float("nan")
    residuals: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))

    @property
    def residuals_correlated(self) -> bool:
        """The Durbin-Watson statistic lies below its 1 % bound (a systematic misfit)."""
        return bool(self.durbin_watson < self.dw_bound_1pct)

    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON types (NaN -> None)."""
        return to_json_types(self)


_FWHM = 2 * np.sqrt(2 * np.log(2))
# Function evaluations per free parameter (+1) of the first, capped LM pass in _fit.
_FIRST_PASS_NFEV = 40


# Results kept per cache of _Decay (least recently used dropped first): enough for the base
# point's pieces of up to three lifetimes, which every column of a Jacobian returns to, and
# the stepped ones.
_KEEP = 8


def _recall(cache: dict, key: Any) -> np.ndarray | None:
    """The result stored under ``key`` (now the most recently used), or None."""
    value = cache.pop(key, None)
    if value is not None:
        cache[key] = value
    return value


def _remember(cache: dict, key: Any, value: np.ndarray) -> None:
    """Store ``value`` under ``key``, dropping the least recently used beyond ``_KEEP``."""
    cache[key] = value
    if len(cache) > _KEEP:
        del cache[next(iter(cache))]


class _Decay:
    """Evaluates the model on a histogram's bins for given parameter values.

    A least-squares solver changes one parameter at a time while it builds its Jacobian by
    finite differences, so most calls repeat most of the previous call's work. The last few
    results of every expensive piece are kept and reused while their inputs recur: the IRF's
    FFT (keyed by the Gaussian's centre and width), each lifetime's unconvolved component FFT
    (keyed by lifetime and offset) and each convolved component (keyed by all of these).
    Changing only amplitudes or the background then costs no FFT at all, and neither does the
    return to the base point after a lifetime or the IRF was stepped (the next column of the
    Jacobian). A reused result is the very array an evaluation with the same inputs computed,
    so results are bit-identical to computing everything afresh.
    """

    def __init__(self, edges: np.ndarray, period: float, irf_kind: str,
                 irf: np.ndarray | None, t_exc: float | None) -> None:
        self.edges = edges
        self.period = period
        self.kind = irf_kind
        self.n = edges.size - 1
        self.dt = float(edges[1] - edges[0])
        n = self.n
        if irf_kind != "none":
            # Offsets of bin i from IRF bin j are (i - j) dt, i - j in [-(n-1), n-1]: one grid
            # of 2n bins covers them all; the convolution is done by FFT. Only outputs n..2n-1
            # of the linear convolution (length 3n - 1) are used, and a circular convolution of
            # length >= 2n leaves exactly those uncorrupted, so 2n rounded up to a fast size is
            # enough (not 3n rounded up to a power of two).
            self.grid = (np.arange(2 * n + 1) - n) * self.dt
            self.nfft = scipy.fft.next_fast_len(2 * n, real=True)
        if irf_kind == "measured":
            self.irf_fft = scipy.fft.rfft(irf, self.nfft)
        self.t_exc = t_exc
        # Gaussian IRF: mass between edge - dt/2 and edge + dt/2 of each bin's left edge; the
        # right point of bin i is the left point of bin i + 1, so n + 1 CDF values suffice.
        self._irf_points = edges - self.dt / 2
        self._irf_ffts: dict[tuple[float, float], np.ndarray] = {}
        self._comp_fft: dict[tuple[int, float, float], np.ndarray] = {}
        self._row: dict[tuple[int, tuple[float, ...]], np.ndarray] = {}
        self._rows: dict[tuple[Any, ...], np.ndarray] = {}

    def gaussian_irf(self, center: float, sigma: float) -> np.ndarray:
        """Gaussian IRF mass placed at each bin's left edge (midpoint rule), wrapped by T
        when the histogram spans the whole period."""
        p = self._irf_points
        mass = np.zeros(self.n)
        wraps = (-1, 0, 1) if self.n * self.dt >= 0.99 * self.period else (0,)
        for w in wraps:
            c = center + w * self.period
            # A copy more than 40 sigma beyond the bins puts exactly 0.0 in each of them (ndtr
            # is then exactly 0 or 1 at both ends): skipping it leaves the sum unchanged.
            if p[0] - c > 40 * sigma or c - p[-1] > 40 * sigma:
                continue
            mass += np.diff(ndtr((p - c) / sigma))
        return mass

    def _irf_fft(self, center: float, sigma: float) -> np.ndarray:
        if self.kind == "measured":
            return self.irf_fft
        key = (center, sigma)
        f = _recall(self._irf_ffts, key)
        if f is None:
            f = scipy.fft.rfft(self.gaussian_irf(center, sigma), self.nfft)
            _remember(self._irf_ffts, key, f)
        return f

    def _component(self, j: int, tau: float, shift: float, center: float, sigma: float
                   ) -> np.ndarray:
        """Component ``j`` (lifetime ``tau``) on the bins, reused if its inputs are unchanged."""
        if self.kind == "none":
            key: tuple[float, ...] = (tau,)
        elif self.kind == "measured":
            key = (tau, shift)
        else:
            key = (tau, center, sigma)
        row = _recall(self._row, (j, key))
        if row is not None:
            return row
        n = self.n
        if self.kind == "none":
            row = periodic_decay_bins(self.edges - self.t_exc, tau, self.period)
        else:
            # Measured IRF: its photons sit at bin centres, moved by the shift.
            offset = self.dt / 2 + shift if self.kind == "measured" else 0.0
            ckey = (j, tau, offset)
            c = _recall(self._comp_fft, ckey)
            if c is None:
                comp = periodic_decay_bins(self.grid - offset, tau, self.period)
                c = scipy.fft.rfft(comp, self.nfft)
                _remember(self._comp_fft, ckey, c)
            full = scipy.fft.irfft(c * self._irf_fft(center, sigma), self.nfft)
            row = full[n:2 * n]
        _remember(self._row, (j, key), row)
        return row

    def components(self, taus: np.ndarray, shift: float = 0.0, center: float = 0.0,
                   sigma: float = 1.0) -> np.ndarray:
        """Unit-area (per period) components on the bins, one row per lifetime."""
        key = (tuple(float(tau) for tau in taus), shift, center, sigma)
        rows = _recall(self._rows, key)
        if rows is None:
            # the Jacobian's amplitude and background columns change none of these: the
            # rows stacked for the base point serve them all
            rows = np.stack([self._component(j, tau, shift, center, sigma)
                             for j, tau in enumerate(key[0])])
            _remember(self._rows, key, rows)
        return rows


def _initial_tau(t: np.ndarray, y: np.ndarray, bg: float, period: float) -> float:
    """Mean delay after the peak of the background-subtracted counts (rough lifetime)."""
    p = int(np.argmax(y))
    w = np.clip(y[p:] - bg, 0, None)
    if w.sum() <= 0:
        return period / 10
    return float(np.clip(np.sum((t[p:] - t[p]) * w) / w.sum(), 2 * (t[1] - t[0]), period))


def _half_rise(t: np.ndarray, y: np.ndarray) -> float:
    """Time where counts first exceed half their maximum above the minimum."""
    lo, hi = float(np.min(y)), float(np.max(y))
    return float(t[int(np.argmax(y >= lo + 0.5 * (hi - lo)))])


def _check_histogram(counts: np.ndarray, edges: np.ndarray, period: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(counts, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    if y.ndim != 1 or e.shape != (y.size + 1,):
        raise ValueError("counts must be 1-D and edges one longer than counts")
    d = np.diff(e)
    if np.any(d <= 0) or np.ptp(d) > 1e-6 * d.mean():
        raise ValueError("decay histogram bins must be uniform and increasing (seconds)")
    if not period > 0:
        raise ValueError(f"sync period must be positive seconds, not {period}")
    if e[-1] - e[0] > period * 1.0001:
        raise ValueError("the histogram spans more than one sync period")
    if np.any(y < 0) or not np.all(np.isfinite(y)):
        raise ValueError("counts must be finite and non-negative")
    return y, e


def fit_decay(counts: np.ndarray, edges: np.ndarray, period: float, n_exp: int = 1,
              irf: np.ndarray | Literal["gaussian"] | None = "gaussian",
              fit_range: tuple[float, float] | None = None,
              tau_guess: tuple[float, ...] | None = None, background: bool = True,
              max_shift: float = 2e-9) -> LifetimeResult:
    """Fit a multi-exponential decay convolved with an IRF by Poisson maximum likelihood.

    Parameters
    ----------
    counts, edges
        Decay histogram: counts per TCSPC bin and the bin edges in seconds (uniform bins, time
        since the sync; at most one period).
    period
        Sync (laser) period in seconds.
    n_exp
        Number of exponentials (1-3).
    irf
        Measured IRF on the same bins (any normalisation), ``"gaussian"`` to fit a Gaussian IRF,
        or ``None`` for a tail fit (see :func:`fit_tail`).
    fit_range
        (start, stop) in seconds of the bins fitted; default all bins.
    tau_guess
        Starting lifetimes in seconds; default from the mean delay after the peak.
    background
        Fit a constant background per bin (else fixed at 0).
    max_shift
        Largest IRF shift (s) allowed for a measured IRF, either way from the initial guess.
    """
    if irf is None:
        return fit_tail(counts, edges, period, n_exp=n_exp, tau_guess=tau_guess,
                        background=background)
    y, e = _check_histogram(counts, edges, period)
    if isinstance(irf, str):
        if irf != "gaussian":
            raise ValueError(f"irf must be an array, 'gaussian' or None, not {irf!r}")
        model = _Decay(e, period, "gaussian", None, None)
    else:
        irf_arr = np.asarray(irf, dtype=np.float64)
        if irf_arr.shape != y.shape or np.any(irf_arr < 0) or irf_arr.sum() <= 0:
            raise ValueError("measured IRF must be non-negative counts on the decay's bins")
        model = _Decay(e, period, "measured", irf_arr / irf_arr.sum(), None)
    start, stop = fit_range if fit_range is not None else (e[0], e[-1])
    return _fit(model, y, e, period, n_exp, start, stop, tau_guess, background,
                None if isinstance(irf, str) else irf_arr, max_shift)


def fit_tail(counts: np.ndarray, edges: np.ndarray, period: float, n_exp: int = 1,
             start: float | None = None, stop: float | None = None,
             tau_guess: tuple[float, ...] | None = None, background: bool = True
             ) -> LifetimeResult:
    """Fit the decay's tail without an IRF.

    The excitation is placed at the peak bin's centre; bins from ``start`` (default: the peak
    plus 0.5 ns, past the IRF) to ``stop`` are fitted.
    """
    y, e = _check_histogram(counts, edges, period)
    centres = 0.5 * (e[1:] + e[:-1])
    t_peak = float(centres[int(np.argmax(y))])
    if start is None:
        start = t_peak + 0.5e-9
    if start < t_peak:
        raise ValueError(f"tail fit start {start:g} s lies before the peak at {t_peak:g} s")
    model = _Decay(e, period, "none", None, t_peak)
    return _fit(model, y, e, period, n_exp, start, e[-1] if stop is None else stop, tau_guess,
                background, None, 0.0)


def _fit(model: _Decay, y: np.ndarray, e: np.ndarray, period: float, n_exp: int,
         start: float, stop: float, tau_guess: tuple[float, ...] | None, background: bool,
         irf_arr: np.ndarray | None, max_shift: float) -> LifetimeResult:
    if n_exp not in (1, 2, 3):
        raise ValueError(f"n_exp must be 1, 2 or 3, not {n_exp}")
    sel = (e[:-1] >= start - 1e-15) & (e[1:] <= stop + 1e-15)
    n_fit = int(sel.sum())
    ys = y[sel]
    if n_fit < 2 * n_exp + 4 or ys.sum() <= 0:
        raise ValueError(f"too few bins or counts in the fit range ({n_fit} bins, "
                         f"{int(ys.sum())} counts)")
    occupied = int(np.count_nonzero(ys))
    if occupied < MIN_OCCUPIED_BINS:
        # a decay spreads its photons over the bins after the pulse; photons piled into one
        # or two bins are delays stuck at one value (e.g. all in the TCSPC overflow bin), and
        # a fit of them gives a lifetime shorter than a bin that was never measured
        raise ValueError(f"no decay: all {int(ys.sum())} photons in {occupied} TCSPC "
                         f"bin{'s' if occupied != 1 else ''} (delays stuck at one value)")
    t = 0.5 * (e[1:] + e[:-1])
    dt = float(e[1] - e[0])
    bg0 = float(np.mean(np.sort(ys)[: max(3, n_fit // 20)])) if background else 0.0
    tau0 = _initial_tau(t, y, bg0, period)
    if tau_guess is None:
        tau_guess = {1: (tau0,), 2: (tau0 / 3, 1.5 * tau0), 3: (tau0 / 6, tau0 / 1.5, 2 * tau0)
                     }[n_exp]
    if len(tau_guess) != n_exp:
        raise ValueError(f"tau_guess needs {n_exp} lifetimes, got {len(tau_guess)}")
    total = max(float(ys.sum()) - bg0 * n_fit, 1.0)

    from spad.analysis.lmfit_lean import lmfit  # at the first fit: T2 data never fit one

    params = lmfit.Parameters()
    for j, tau in enumerate(tau_guess, 1):
        params.add(f"a{j}", value=total / n_exp, min=0.0)
        params.add(f"tau{j}", value=float(tau), min=dt / 10, max=100 * period)
    params.add("bg", value=max(bg0, 1e-3) if background else 0.0, min=0.0, vary=background)
    if model.kind == "measured":
        shift0 = _half_rise(t, y) - _half_rise(t, irf_arr)
        params.add("shift", value=shift0, min=shift0 - max_shift, max=shift0 + max_shift)
    elif model.kind == "gaussian":
        params.add("center", value=_half_rise(t, y), min=e[0], max=e[-1])
        params.add("sigma", value=max(2 * dt, 50e-12), min=dt / 20, max=(e[-1] - e[0]) / 10)

    names = [f"tau{j}" for j in range(1, n_exp + 1)]
    anames = [f"a{j}" for j in range(1, n_exp + 1)]

    def evaluate(v: dict[str, float]) -> np.ndarray:
        taus = np.array([v[k] for k in names])
        comp = model.components(taus, shift=v.get("shift", 0.0), center=v.get("center", 0.0),
                                sigma=v.get("sigma", 1.0))
        amps = np.array([v[k] for k in anames])
        return (v["bg"] + amps @ comp)[sel]

    def residual(p: lmfit.Parameters) -> np.ndarray:
        m = np.maximum(evaluate(p.valuesdict()), 1e-12)
        dev = 2 * (m - ys + xlogy(ys, ys / m))
        return np.sign(ys - m) * np.sqrt(np.maximum(dev, 0.0))

    mini = lmfit.Minimizer(residual, params)
    nvary = sum(p.vary for p in params.values())
    # A background at its bound 0 makes LM crawl: lmfit's bound transform has zero slope there,
    # so each step moves it (and what it trades off against, e.g. a long tail) only a little,
    # for thousands of evaluations. The first pass is therefore capped; a background left
    # contributing less than 1 % of the total's Poisson noise is fixed at its bound and the
    # rest refitted, which converges in a few steps to the same constrained optimum.
    res = mini.minimize(method="leastsq", max_nfev=_FIRST_PASS_NFEV * (nvary + 1))
    # the later passes get lmfit's own budget, given explicitly: a Minimizer keeps the cap of
    # its last fit for the next one unless told (lmfit's Minimizer.set_max_nfev), so they ran
    # under the first pass's cap
    budget = 2000 * (nvary + 1)
    if background and res.params["bg"].value * n_fit < 0.01 * np.sqrt(ys.sum()):
        res.params["bg"].set(value=0.0, vary=False)
        res = mini.minimize(method="leastsq", params=res.params, max_nfev=budget)
        m = np.maximum(evaluate(res.params.valuesdict()), 1e-12)
        if np.sum(1.0 - ys / m) < 0:
            # the likelihood rises with the background after all (Karush-Kuhn-Tucker): free it
            res.params["bg"].set(value=max(bg0, 1e-3), vary=True)
            res = mini.minimize(method="leastsq", params=res.params, max_nfev=budget)
        else:
            # fixed only for the optimiser: its uncertainty is still part of the errors
            res.params["bg"].set(vary=True)
    elif res.aborted:
        res = mini.minimize(method="leastsq", params=res.params, max_nfev=budget)
    if not res.success:
        # A poor start can leave LM in a corner; Nelder-Mead is slower but sturdier.
        try:
            res = mini.minimize(method="nelder", params=res.params, max_nfev=budget)
        except lmfit.minimizer.AbortFitException:
            # lmfit evaluates the residual once more after a scalar minimiser used up its
            # budget, outside its own guard; LM goes on from where it was
            pass
        res = mini.minimize(method="leastsq", params=res.params, max_nfev=budget)
    return _summarise(res.params, evaluate, ys, n_exp, model.kind, start, stop, dt,
                      bool(res.success), str(res.message))


def _summarise(params: lmfit.Parameters, evaluate: Any, ys: np.ndarray, n_exp: int, kind: str,
               start: float, stop: float, dt: float, success: bool, message: str
               ) -> LifetimeResult:
    v = params.valuesdict()
    free = [k for k, p in params.items() if p.vary]
    x0 = np.array([v[k] for k in free])
    m = np.maximum(evaluate(v), 1e-12)
    # Fisher information of Poisson counts: J^T diag(1/m) J, J by central differences.
    jac = np.empty((m.size, len(free)))
    steps = np.empty(len(free))
    for i, k in enumerate(free):
        if k.startswith(("shift", "center")):
            h = 1e-3 * dt
        elif k == "bg":
            # the model is linear in bg: any step is exact, but one of ~1e-12 at a background
            # near 0 vanishes in the rounding of counts of order 1e3
            h = 1e-5 * max(abs(v[k]), 1.0)
        else:
            h = 1e-5 * max(abs(v[k]), 1e-12)
        steps[i] = h
        vp, vm = dict(v), dict(v)
        vp[k] += h
        vm[k] -= h
        jac[:, i] = (evaluate(vp) - evaluate(vm)) / (2 * h)
    fisher = jac.T @ (jac / m[:, None])
    try:
        cov = np.linalg.inv(fisher)
    except np.linalg.LinAlgError:
        cov = np.full((len(free), len(free)), np.nan)

    def derived(x: np.ndarray) -> np.ndarray:
        d = dict(v)
        d.update(zip(free, x, strict=True))
        a = np.array([d[f"a{j}"] for j in range(1, n_exp + 1)])
        tau = np.array([d[f"tau{j}"] for j in range(1, n_exp + 1)])
        alpha = a / tau
        return np.concatenate([
            tau, alpha / alpha.sum(), a / a.sum(), a,
            [a.sum() / alpha.sum(), (a * tau).sum() / a.sum(), d["bg"], d.get("shift", np.nan),
             d.get("center", np.nan), d.get("sigma", np.nan) * _FWHM]])

    val = derived(x0)
    grad = np.empty((val.size, x0.size))
    for i in range(x0.size):
        xp, xm = x0.copy(), x0.copy()
        xp[i] += steps[i]
        xm[i] -= steps[i]
        grad[:, i] = (derived(xp) - derived(xm)) / (2 * steps[i])
    grad = np.nan_to_num(grad)
    var = np.einsum("ij,jk,ik->i", grad, cov, grad)
    err = np.sqrt(np.where(var >= 0, var, np.nan))
    for i, name in enumerate(("shift", "center", "sigma")):  # not fitted -> NaN, not 0
        if name not in free:
            err[4 * n_exp + 3 + i] = np.nan
    if "bg" not in free:
        err[4 * n_exp + 2] = np.nan

    order = np.argsort(val[:n_exp])

    def part(i: int) -> tuple[np.ndarray, np.ndarray]:
        s = slice(i * n_exp, (i + 1) * n_exp)
        return val[s][order], err[s][order]

    (taus, tau_e), (amp, amp_e), (frac, frac_e), (ph, ph_e) = (part(i) for i in range(4))
    k = 4 * n_exp
    dof = max(ys.size - len(free), 1)
    dev = 2 * np.sum(m - ys + xlogy(ys, ys / m))
    chi2 = np.sum((ys - m) ** 2 / m)
    resid = (ys - m) / np.sqrt(m)
    # Durbin-Watson over the bins expecting at least one count: below that a Pearson residual
    # is mostly the same small negative value (-sqrt(m) for the many empty bins), which reads
    # as serial correlation where the model is right (an empty tail with no background)
    dense = m >= 1.0
    n_dw = int(dense.sum())
    dw = durbin_watson(resid[dense]) if n_dw > 2 * n_exp + 4 else float("nan")
    dw5, dw1 = (durbin_watson_bounds(n_dw, n_exp) if np.isfinite(dw)
                else (float("nan"), float("nan")))
    return LifetimeResult(
        n_exp=n_exp, irf=kind, taus=taus, tau_errs=tau_e, amplitudes=amp, amplitude_errs=amp_e,
        intensity_fractions=frac, intensity_fraction_errs=frac_e, photons=ph, photon_errs=ph_e,
        tau_amplitude_mean=float(val[k]), tau_amplitude_mean_err=float(err[k]),
        tau_intensity_mean=float(val[k + 1]), tau_intensity_mean_err=float(err[k + 1]),
        background=float(val[k + 2]), background_err=float(err[k + 2]),
        shift=float(val[k + 3]), shift_err=float(err[k + 3]),
        irf_center=float(val[k + 4]), irf_center_err=float(err[k + 4]),
        irf_fwhm=float(val[k + 5]), irf_fwhm_err=float(err[k + 5]),
        fit_start=float(start), fit_stop=float(stop), n_bins=int(ys.size), dof=int(dof),
        deviance_per_dof=float(dev / dof), chi2_reduced=float(chi2 / dof), success=success,
        message=message, model=m, durbin_watson=dw, dw_bound_5pct=dw5,
        dw_bound_1pct=dw1, residuals=resid)


# --- per-state decays ------------------------------------------------------------------------

@njit(cache=True)
def _bin_of(x: float, edges: np.ndarray) -> int:
    """np.histogram's bin of ``x`` for these edges (-1 outside or NaN): edges[i] <= x <
    edges[i + 1], the last bin closed. A guess from uniform spacing, then corrected against
    the edges themselves, so the answer is exact for any increasing edges."""
    n = edges.size - 1
    if not (x >= edges[0] and x <= edges[n]):
        return -1
    k = int((x - edges[0]) / (edges[n] - edges[0]) * n)
    k = min(max(k, 0), n - 1)
    while k > 0 and x < edges[k]:
        k -= 1
    while k < n - 1 and x >= edges[k + 1]:
        k += 1
    return k


@njit(cache=True)
def _label_histograms(nanotimes: np.ndarray, labels: np.ndarray, edges: np.ndarray,
                      n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Histograms of the photons of dense labels 0..n_labels-1 (negative: left out), and
    whether each label has any photon at all (in the bins or not)."""
    # np.empty and element loops, not np.zeros: numba compiles less on the first run
    hist = np.empty((n_labels, edges.size - 1), dtype=np.int64)
    seen = np.empty(n_labels, dtype=np.bool_)
    for lab in range(n_labels):
        seen[lab] = False
        for k in range(edges.size - 1):
            hist[lab, k] = 0
    for i in range(nanotimes.size):
        lab = labels[i]
        if lab < 0:
            continue
        seen[lab] = True
        k = _bin_of(nanotimes[i], edges)
        if k >= 0:
            hist[lab, k] += 1
    return hist, seen


@njit(cache=True)
def _level_labels(times: np.ndarray, start: np.ndarray, end: np.ndarray,
                  level_label: np.ndarray) -> np.ndarray:
    """Label of the level holding each photon ([start, end), the last level closed), -1 if
    none. The level index follows sorted times by stepping; a time that goes back (unsorted
    input) is looked up by bisection, so the result never depends on the order."""
    out = np.empty(times.size, dtype=np.int64)   # not np.full: less for numba to compile
    for i in range(times.size):
        out[i] = -1
    n_lev = start.size
    if n_lev == 0:
        return out
    j = -1  # index of the last level starting at or before the current time
    for i in range(times.size):
        t = times[i]
        if j >= 0 and t < start[j]:
            # bisection for the last start <= t (np.searchsorted(start, t, "right") - 1,
            # written out: numba's searchsorted costs a second of the first run's compile)
            lo, hi = 0, n_lev
            while lo < hi:
                mid = (lo + hi) // 2
                if start[mid] <= t:
                    lo = mid + 1
                else:
                    hi = mid
            j = lo - 1
        while j + 1 < n_lev and start[j + 1] <= t:
            j += 1
        if j < 0:
            continue
        if t < end[j] or (j == n_lev - 1 and t <= end[j]):
            out[i] = level_label[j]
    return out


def _histograms_of(nanotimes: np.ndarray, dense: np.ndarray, keys: np.ndarray,
                   edges: np.ndarray) -> dict[int, np.ndarray]:
    hist, seen = _label_histograms(nanotimes, dense, edges, keys.size)
    return {int(k): hist[i] for i, k in enumerate(keys) if seen[i]}


def state_decay_histograms(times: np.ndarray, nanotimes: np.ndarray, edges: np.ndarray,
                           level_start: np.ndarray, level_end: np.ndarray,
                           level_state: np.ndarray) -> dict[int, np.ndarray]:
    """Decay histogram of each state from photon times and the levels' time intervals.

    A photon belongs to the level whose [start, end) interval holds its arrival time (the last
    level includes its end); photons outside every level are left out.

    Parameters
    ----------
    times
        Arrival times (s) of the photons, sorted.
    nanotimes
        Their delays after the sync (s).
    edges
        Decay histogram bin edges (s).
    level_start, level_end, level_state
        Levels in time order and the state (e.g. 0 = OFF, 1 = ON, or a BIC group) of each.
    """
    t = np.ascontiguousarray(times, dtype=np.float64)
    start = np.ascontiguousarray(level_start, dtype=np.float64)
    end = np.ascontiguousarray(level_end, dtype=np.float64)
    state = np.asarray(level_state, dtype=np.int64)
    if not (start.shape == end.shape == state.shape):
        raise ValueError("level_start, level_end and level_state must have equal lengths")
    nt = np.ascontiguousarray(nanotimes, dtype=np.float64)
    if nt.shape != t.shape:
        raise ValueError("nanotimes and labels must have equal lengths")
    # states to dense labels 0..k-1 per level (negative states: -1, left out)
    keys = np.unique(state[state >= 0])
    dense = np.where(state >= 0, np.searchsorted(keys, state), -1)
    labels = _level_labels(t, start, end, dense)
    return _histograms_of(nt, labels, keys, np.ascontiguousarray(edges, dtype=np.float64))


def fit_states(times: np.ndarray, nanotimes: np.ndarray, edges: np.ndarray, period: float,
               level_start: np.ndarray, level_end: np.ndarray, level_state: np.ndarray,
               n_exp: int = 1, min_counts: int = 200, **fit_kwargs: Any
               ) -> dict[int, LifetimeResult | None]:
    """Fit the decay of each state separately (ON, OFF, or each intensity level/group).

    States with fewer than ``min_counts`` photons get ``None``. Other keyword arguments go to
    :func:`fit_decay` (e.g. ``irf=``, ``fit_range=``).
    """
    hists = state_decay_histograms(times, nanotimes, edges, level_start, level_end, level_state)
    out: dict[int, LifetimeResult | None] = {}
    for s, h in hists.items():
        out[s] = (fit_decay(h, edges, period, n_exp=n_exp, **fit_kwargs)
                  if h.sum() >= min_counts else None)
    return out


def fit_decay_select(counts: np.ndarray, edges: np.ndarray, period: float, max_exp: int = 2,
                     **fit_kwargs: Any) -> LifetimeResult:
    """Fit 1 to ``max_exp`` exponentials and keep the model with the lowest AIC.

    AIC = Poisson deviance + 2 × free parameters, so an extra component is kept only when it
    explains the decay better than its cost (a fused dimer's bright state is often
    multi-exponential, a monomer's is not). Keyword arguments go to :func:`fit_decay`.
    """
    best: LifetimeResult | None = None
    best_aic = np.inf
    for n in range(1, max_exp + 1):
        r = fit_decay(counts, edges, period, n_exp=n, **fit_kwargs)
        aic = r.deviance_per_dof * r.dof + 2 * (r.n_bins - r.dof)
        if best is None or (r.success and np.isfinite(aic) and aic < best_aic):
            best, best_aic = r, aic
    assert best is not None
    return best
