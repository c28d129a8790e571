"""Pulsed or continuous? Laser period and zero-delay peak read off the correlogram itself.

A time-tag file does not always say how the light was excited: a T2 recording may carry no
sync events, a sync may be divided (the file's period is then a multiple of the laser's), and
the two detectors' cable delays may differ by more than half a period, so that lag 0 falls
between two coincidence peaks. Reading g2(0) at lag 0 of such a correlogram, or taking the
peak nearest lag 0 as the zero-delay peak, gives confidently wrong numbers (a laser looks
antibunched). This module decides from the data:

- :func:`find_period`: is there a comb of coincidence peaks, and at which period? The power
  spectrum of the correlogram gives candidate fundamentals; a comb has power at the harmonics
  ``k f0`` and none half-way between (a smooth feature such as a CW antibunching dip or a
  blinking shoulder has no such structure). The period is then refined by a straight-line fit
  of the peak centroids against their index (epoch-folding in the sense of Leahy et al.,
  ApJ 266, 160 (1983), applied to the lag axis).
- :func:`zero_peak`: which grid peak holds the pairs of one pulse? Given a delay (the user's
  ``--delay-ns``), the grid peak nearest it; otherwise the peak that stands out from its
  neighbours (antibunching empties it, bunching fills it) by more than ``Z_PICK`` standard
  errors, searched over cable delays of several periods; when none does (a laser: every peak
  has the same area) the peak nearest lag 0, which then gives the same ratio within errors.

Both work on a :class:`~spad.analysis.accumulators.Correlation` of any timing (T2 or T3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from spad.analysis.accumulators import Correlation, Decay
from spad.analysis.g2 import CWG2, DecayInput, G2Result, cw_g2, pulsed_g2

Z_PICK = 5.0
"""Standard errors by which a peak must differ from its neighbours to be taken as the
zero-delay peak without a given delay."""

NOISE_FACTOR = 25.0
"""A spectral line counts only above this many times the Poisson noise power (false-alarm
probability e^-25 per frequency for exponentially distributed noise power)."""

SUBHARMONIC = 0.2
"""A candidate line whose odd multiples hold less than this share of its even multiples' mean
power is half the comb's fundamental, not a comb of its own: a true comb's harmonics fade with
their order (broad peaks), so its odd multiples (the fundamental first) are the strong ones."""


@dataclass(frozen=True)
class PeriodFit:
    """A comb of coincidence peaks found in a correlogram.

    Attributes
    ----------
    period_s
        Peak spacing (the laser period), from the straight-line fit of the peak centroids.
    period_err_s
        Its standard error from that fit.
    offset_s
        Position of the grid peak nearest lag 0, in ``[-T/2, T/2)``.
    n_peaks
        Peaks used in the fit.
    power_ratio
        Spectral power at the harmonics over the power half-way between them, or at the
        fundamental over f0/2 and 3f0/2, whichever is larger (large for a comb, ~1 for smooth
        structure).
    snr
        Power at the fundamental over the Poisson noise power.
    """

    period_s: float
    period_err_s: float
    offset_s: float
    n_peaks: int
    power_ratio: float
    snr: float


def _power(x: np.ndarray, weights: np.ndarray, width: float, pad: int = 8
           ) -> tuple[np.ndarray, np.ndarray]:
    n_fft = 1 << int(math.ceil(math.log2(max(2, x.size * pad))))
    spec = np.fft.rfft(x * weights, n_fft)
    return np.fft.rfftfreq(n_fft, width), np.abs(spec) ** 2


def _at(freqs: np.ndarray, power: np.ndarray, f: float, half: float) -> float:
    """Largest power within +/- half of frequency f (0 outside the spectrum)."""
    lo, hi = np.searchsorted(freqs, [f - half, f + half])
    return float(power[lo:hi + 1].max()) if hi >= lo and lo < power.size else 0.0


def _refine(lags: np.ndarray, counts: np.ndarray, period: float, offset: float
            ) -> tuple[float, float, float, int]:
    """Straight-line fit of peak centroids ``t_n = offset + n T``; returns T, its error,
    the offset and the number of peaks used."""
    floor = float(np.percentile(counts, 10))
    y = np.clip(counts - floor, 0.0, None)
    n_lo = int(math.ceil((lags[0] - offset) / period))
    n_hi = int(math.floor((lags[-1] - offset) / period))
    idx, pos, wts = [], [], []
    for n in range(n_lo, n_hi + 1):
        c = offset + n * period
        m = np.abs(lags - c) <= period / 4
        w = y[m]
        if m.sum() < 2 or w.sum() <= 0 or c - period / 4 < lags[0] or c + period / 4 > lags[-1]:
            continue
        idx.append(n)
        pos.append(float(np.sum(w * lags[m]) / w.sum()))
        wts.append(float(w.sum()))
    if len(idx) < 3:
        return period, math.nan, offset, len(idx)
    n_arr, t_arr, w_arr = np.array(idx, float), np.array(pos), np.array(wts)
    a = np.column_stack((np.ones_like(n_arr), n_arr))
    aw = a * w_arr[:, None]
    cov = np.linalg.pinv(a.T @ aw)
    coef = cov @ (aw.T @ t_arr)
    resid = t_arr - a @ coef
    dof = max(1, len(idx) - 2)
    scale = float(np.sum(w_arr * resid ** 2) / dof)
    return float(coef[1]), float(math.sqrt(max(cov[1, 1] * scale, 0.0))), float(coef[0]), \
        len(idx)


def find_period(correlation: Correlation, min_period_s: float | None = None,
                min_peaks: int = 3) -> PeriodFit | None:
    """The period of the coincidence-peak comb in a correlogram, or ``None`` if it has none.

    Parameters
    ----------
    correlation
        Cross-correlation histogram (any timing), spanning at least ``min_peaks`` periods.
    min_period_s
        Shortest period looked for; default 6 bins.
    min_peaks
        The lag range must hold at least this many periods.

    Returns
    -------
    PeriodFit or None
        ``None`` when no frequency passes the comb test (continuous excitation, or too few pairs
        to tell).
    """
    counts = np.asarray(correlation.counts, dtype=float)
    lags = np.asarray(correlation.lags_s, dtype=float)
    width = float(correlation.bin_width_s)
    if counts.size < 16 or counts.sum() <= 0:
        return None
    span = float(lags[-1] - lags[0])
    win = np.hanning(counts.size)
    freqs, power = _power(counts - counts.mean(), win, width)
    # Poisson noise: each bin's variance is its count
    noise = float(np.sum(counts * win ** 2))
    if noise <= 0:
        return None
    f_min = min_peaks / span
    f_max = 1.0 / (min_period_s if min_period_s else 6 * width)
    sel = (freqs >= f_min) & (freqs <= f_max)
    if not np.any(sel):
        return None
    p_sel = power[sel]
    strongest = float(p_sel.max())
    # local maxima above the noise and not far below the strongest line
    k = np.flatnonzero(sel)
    cand = [i for i in k[1:-1] if power[i] >= power[i - 1] and power[i] >= power[i + 1]
            and power[i] > NOISE_FACTOR * noise and power[i] > 0.02 * strongest]
    half = 1.0 / span  # half the width of a line of the windowed spectrum
    nyq = freqs[-1]
    for i in cand:  # lowest frequency first: the fundamental before its harmonics
        f0 = float(freqs[i])
        kmax = max(1, min(5, int(nyq / f0) - 1))
        on = [_at(freqs, power, j * f0, half) for j in range(1, kmax + 1)]
        off = [_at(freqs, power, (j - 0.5) * f0, half) for j in range(1, kmax + 1)]
        ratio = float(np.mean(on) / max(np.mean(off), noise))
        # sparse combs of broad peaks (long decays, few pairs): their harmonics fade, and an
        # emptied zero-delay peak adds broadband power; the line must still tower over the
        # power half a fundamental either side (a smooth feature decreases through f0 / 2)
        local = float(on[0] / max(off[0], _at(freqs, power, 1.5 * f0, half), noise))
        if ratio < 10.0 and local < 5.0:
            continue
        if len(on) >= 2 and np.mean(on[0::2]) < SUBHARMONIC * np.mean(on[1::2]):
            # half the true fundamental: its even multiples are the comb's lines, its odd
            # ones only the broadband power of an emptied or raised zero-delay peak (a dimer
            # at 5 MHz in T2 was read at 400 ns, g2(0) 1.02 for a true 0.57)
            continue
        ratio = max(ratio, local)
        period = 1.0 / f0
        offset = _fold_offset(lags, counts, period)
        for _ in range(2):
            p_new, p_err, off_new, n_used = _refine(lags, counts, period, offset)
            if n_used < min_peaks or not abs(p_new - period) < 0.1 * period:
                break
            period, offset = p_new, off_new
        else:
            off0 = offset - period * math.floor(offset / period + 0.5)
            return PeriodFit(float(period), float(p_err), float(off0), int(n_used), ratio,
                             float(power[i] / noise))
    return None


def _fold_offset(lags: np.ndarray, counts: np.ndarray, period: float) -> float:
    """Grid offset modulo the period from the folded correlogram's circular centroid."""
    n_phase = max(16, min(512, int(round(period / float(np.median(np.diff(lags)))))))
    idx = np.minimum((np.mod(lags, period) / period * n_phase).astype(np.int64), n_phase - 1)
    folded = np.bincount(idx, weights=counts, minlength=n_phase)
    w = np.clip(folded - np.percentile(folded, 25), 0.0, None)
    ang = 2 * np.pi * (np.arange(n_phase) + 0.5) / n_phase
    z = np.sum(w * np.exp(1j * ang))
    return float(np.angle(z) / (2 * np.pi) * period) if abs(z) > 0 else 0.0


@dataclass(frozen=True)
class ZeroPeak:
    """The zero-delay peak chosen.

    Attributes
    ----------
    lag_s
        Its position (the cable delay between the detectors).
    source
        ``"delay"`` (given), ``"outlier"`` (it stands out from its neighbours) or
        ``"nearest"`` (none does: the grid peak nearest lag 0).
    z
        Its deviation from the mean of its neighbours in standard errors.
    z_next
        The largest deviation among the other candidates.
    note
        Why the choice was made, for the analysis notes (empty when unremarkable).
    """

    lag_s: float
    source: str
    z: float
    z_next: float
    note: str = ""


def _window_areas(correlation: Correlation, period: float, offset: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Grid indices n with a complete +/- T/2 window and their pair counts."""
    lags, counts = correlation.lags_s, correlation.counts
    lo, hi = correlation.bin_edges_s[0], correlation.bin_edges_s[-1]
    n_lo = int(math.ceil((lo - offset) / period + 0.5 - 1e-9))
    n_hi = int(math.floor((hi - offset) / period - 0.5 + 1e-9))
    peak = np.floor((lags - offset) / period + 0.5).astype(np.int64)
    ns = np.arange(n_lo, n_hi + 1)
    if ns.size == 0:
        return ns, np.zeros(0)
    areas = np.bincount(peak[(peak >= n_lo) & (peak <= n_hi)] - n_lo,
                        weights=counts[(peak >= n_lo) & (peak <= n_hi)], minlength=ns.size)
    return ns, areas


def zero_peak(correlation: Correlation, period_s: float, offset_s: float,
              delay_s: float | None = None, max_delay_s: float | None = None,
              neighbours: int = 6) -> ZeroPeak:
    """Choose the coincidence peak that holds the pairs of one pulse.

    Parameters
    ----------
    correlation
        The cross-correlation.
    period_s, offset_s
        Peak grid: peaks at ``offset_s + n period_s``.
    delay_s
        Known delay of detector b behind detector a (cable delays), if given: the grid peak
        nearest it is taken.
    max_delay_s
        Largest cable delay searched for an outstanding peak; default 4 periods (at least
        50 ns).
    neighbours
        Peaks on each side averaged as the reference of a candidate.
    """
    T = float(period_s)
    off = float(offset_s) - T * math.floor(float(offset_s) / T + 0.5)
    if delay_s is not None:
        n = round((float(delay_s) - off) / T)
        lag = off + n * T
        note = ""
        if abs(lag - delay_s) > 0.25 * T:
            note = (f"the given delay {delay_s * 1e9:.2f} ns is {abs(lag - delay_s) * 1e9:.2f} "
                    f"ns from the nearest coincidence peak ({lag * 1e9:.2f} ns)")
        return ZeroPeak(float(lag), "delay", math.nan, math.nan, note)
    ns, areas = _window_areas(correlation, T, off)
    reach = max(4 * T, 50e-9) if max_delay_s is None else float(max_delay_s)
    cand = [i for i, n in enumerate(ns) if abs(off + n * T) <= reach + 1e-12 * T]
    z = np.full(len(ns), np.nan)
    for i in cand:
        others = [j for j in range(max(0, i - neighbours), min(len(ns), i + neighbours + 1))
                  if j != i]
        if len(others) < 2:
            continue
        mean = float(np.mean(areas[others]))
        sd = math.sqrt(max(areas[i], 1.0) + mean / len(others))
        z[i] = (areas[i] - mean) / sd
    nearest = int(np.argmin(np.abs(off + ns * T))) if ns.size else 0
    if not np.any(np.isfinite(z)):
        return ZeroPeak(float(off), "nearest", math.nan, math.nan,
                        "too few coincidence peaks to look for the zero-delay peak: the peak "
                        "nearest lag 0 is used")
    order = np.argsort(-np.nan_to_num(np.abs(z), nan=-1.0))
    best = int(order[0])
    z_best = float(z[best])
    z_next = float(abs(z[order[1]])) if len(order) > 1 and np.isfinite(z[order[1]]) else 0.0
    if abs(z_best) >= Z_PICK and abs(z_best) >= 2 * z_next:
        lag = float(off + ns[best] * T)
        note = ""
        if best != nearest:
            note = (f"zero-delay peak at {lag * 1e9:.2f} ns (cable delay between the detectors),"
                    f" not the peak nearest lag 0: it stands out by {z_best:+.1f} standard "
                    "errors")
        return ZeroPeak(lag, "outlier", z_best, z_next, note)
    lag = float(off + ns[nearest] * T)
    z0 = float(z[nearest]) if np.isfinite(z[nearest]) else math.nan
    note = ""
    if reach > T / 2 and len(cand) > 1:
        note = (f"no coincidence peak within +/-{reach * 1e9:.0f} ns stands out from its "
                f"neighbours (largest {abs(z_best):.1f} standard errors): g2(0) is read at the "
                f"peak nearest lag 0 ({lag * 1e9:.2f} ns); give the detectors' delay "
                "(--delay-ns) if it exceeds half a period")
    return ZeroPeak(lag, "nearest", z0, z_next, note)


def correlation_range(period_s: float | None) -> tuple[float, float]:
    """Lag range and bin width of the correlation to accumulate for :func:`analyze_g2`.

    With a stated period: +/- max(5.5 periods, 200 ns) (cable delays of several periods at fast
    repetition rates, side peaks on both sides), bins of at most T/40. Without one: +/- 1 us
    at 0.1 ns, enough to see a comb from 3 MHz to over 300 MHz and to show a CW g2(τ).
    """
    if period_s:
        return max(5.5 * period_s, 200e-9), min(0.5e-9, period_s / 40)
    return 1e-6, 0.1e-9


@dataclass(frozen=True)
class G2Analysis:
    """g2 of one recording, whatever its timing.

    Attributes
    ----------
    excitation
        ``"pulsed"`` (a comb of coincidence peaks, or a stated period) or ``"cw"``.
    period_s, period_source
        Laser period used and where it came from: ``"sync"`` (the file's, confirmed by the
        correlogram or not contradicted by it) or ``"correlogram"``.
    comb
        The comb found in the correlogram (``None`` if none).
    zero
        The zero-delay peak chosen (pulsed).
    pulsed
        Pulsed g2(0) from peak areas (pulsed).
    cw
        Normalised g2(τ) (continuous excitation).
    g2_zero, g2_zero_err
        The value to report, ``None`` where it cannot be trusted (see ``notes``).
    decay_usable
        The file's period is the laser's, so delay histograms over it are decays.
    notes
        Everything a reader of the numbers must know.
    """

    excitation: str
    period_s: float | None
    period_source: str | None
    comb: PeriodFit | None
    zero: ZeroPeak | None
    pulsed: G2Result | None
    cw: CWG2 | None
    g2_zero: float | None
    g2_zero_err: float | None
    decay_usable: bool
    notes: tuple[str, ...]


N_SIGMA_FORBIDDEN = 3.0
"""A g2(0) this many standard errors below zero is not reported (photon statistics forbid
negative values; it means an over-corrected background or a wrong peak)."""

OVERLAP_LIFETIMES = 4.0
"""Periods shorter than this many (intensity-weighted) lifetimes send g2(0) to the correlogram
fit: the lag windows' tail correction left simulated monomers at 17-18 MHz with 16-19 ns
decays (3-3.7 lifetimes per period) 0.06-0.12 high, up to 3.7 standard errors, where the fit
of the whole correlogram was within its error."""


def _rebin(c: Correlation, width_s: float) -> Correlation:
    """Sum an odd number of bins, so that lag 0 stays a bin centre."""
    k = max(1, int(round(width_s / c.bin_width_s)))
    k += 1 - k % 2
    if k == 1:
        return c
    m = (c.counts.size - 1) // 2  # index of lag 0
    half = (m - (k - 1) // 2) // k  # whole coarse bins on each side of the centre one
    lo = m - (k - 1) // 2 - half * k
    n = 2 * half + 1
    counts = c.counts[lo:lo + n * k].reshape(n, k).sum(axis=1)
    w = k * c.bin_width_s
    lags = (np.arange(n) - half) * w
    edges = np.concatenate((lags - w / 2, [lags[-1] + w / 2]))
    return replace(c, lags_s=lags, bin_edges_s=edges, counts=counts, bin_width_s=w)


def _overlap_bias(c: Correlation, period: float, centre: float) -> float:
    """Upper estimate of the centre window's excess from its neighbours' tails, without decays.

    The side peaks folded onto one period (centre window excluded) form a periodic sum of
    two-sided exponentials, whose valley-to-top ratio is 1 / cosh(T / 2 tau); each neighbour
    then puts ~e^(-T / 2 tau) / 2 of its area into the centre window. A flat background raises
    the valley, so this overestimates the leakage: it only flags.
    """
    x = (c.lags_s - centre) / period
    side = np.abs(x) > 0.5
    if not np.any(side):
        return 0.0
    phase = x[side] - np.floor(x[side] + 0.5)  # -0.5..0.5, 0 at a peak
    n_ph = max(8, min(200, int(round(period / c.bin_width_s))))
    idx = np.minimum(((phase + 0.5) * n_ph).astype(np.int64), n_ph - 1)
    prof = np.bincount(idx, weights=c.counts[side].astype(float), minlength=n_ph)
    prof /= np.maximum(np.bincount(idx, minlength=n_ph), 1)
    k = max(1, n_ph // 20)
    valley = float(np.mean(np.concatenate((prof[:k], prof[-k:]))))
    top = float(np.max(prof))
    if top <= 0 or valley <= 0:
        return 0.0
    if valley >= top:
        return 1.0
    half_t_over_tau = math.acosh(top / valley)
    return float(math.exp(-half_t_over_tau))


def checked(value: float, err: float, what: str, notes: list[str]) -> float | None:
    """``value`` unless it is NaN or more than :data:`N_SIGMA_FORBIDDEN` errors below zero."""
    if not math.isfinite(value):
        return None
    if err > 0 and value < -N_SIGMA_FORBIDDEN * err:
        notes.append(f"{what} = {value:.3f} +/- {err:.3f} is {-value / err:.1f} standard errors "
                     "below zero, which photon statistics forbid (over-corrected background or "
                     "a wrong zero-delay peak): not given")
        return None
    return value


SAME_PERIOD = 0.01
"""Relative difference up to which the stated sync period and the coincidence peaks' period
are the same laser period."""


def decay_usable(correlation: Correlation, stated_period_s: float | None) -> bool:
    """Whether the delay histograms are decays of one laser pulse: the file states a sync
    period and the coincidence peaks, where there are any, repeat at that period (a divided
    sync or a wrong header gives another). The period decision of :func:`analyze_g2`, without
    its g2: the lifetimes are fitted, or not, before the g2 needs them."""
    if not stated_period_s:
        return False
    if correlation.n_a == 0 or correlation.n_b == 0:
        return True
    comb = find_period(correlation)
    return comb is None or abs(stated_period_s / comb.period_s - 1.0) < SAME_PERIOD


def analyze_g2(correlation: Correlation, stated_period_s: float | None = None, *,
               decay: DecayInput | None = None, delay_s: float | None = None,
               background_hz: tuple[float, float] | None = None,
               background_err_hz: tuple[float, float] = (0.0, 0.0),
               background_source: str = "background", cw_bin_s: float = 1e-9,
               lifetime_s: float | None = None) -> G2Analysis:
    """g2 on any timing: pulsed peak-area ratio when the correlogram has a comb, else g2(τ).

    Parameters
    ----------
    correlation
        Cross-correlation over :func:`correlation_range` (fine bins, several periods).
    stated_period_s
        The laser period the file states (sync rate), if any; checked against the comb.
    decay
        The two detectors' delay histograms over the stated period, for the tail correction
        (used only if the stated period is the laser's).
    delay_s
        Delay of detector b behind detector a, if known (``--delay-ns``).
    background_hz, background_err_hz, background_source
        Uncorrelated background per detector measured from the recording (see
        :func:`~spad.analysis.g2.pulsed_g2`).
    cw_bin_s
        Bin of the CW g2(τ).
    lifetime_s
        The decay's intensity-weighted lifetime, if fitted. With a period under three of them
        the decays wrap into the next periods (over 5 % of the photons arrive after the next
        sync), which the tail correction's peak shape does not model: no corrected g2(0).

    Returns
    -------
    G2Analysis
    """
    notes: list[str] = []
    if decay is not None and isinstance(decay, Decay) and (
            np.asarray(decay.counts).sum(axis=-1).min() <= 0):
        decay = None  # no delays (a T2 stream without sync events): no peak shape
    for det, n in ((correlation.det_a, correlation.n_a), (correlation.det_b, correlation.n_b)):
        if n == 0:
            notes.append(f"no photons on detector {det}: no g2 (choose the two HBT detectors "
                         "with --detectors)")
            return G2Analysis("none", None, None, None, None, None, None, None, None,
                              bool(stated_period_s), tuple(notes))
    comb = find_period(correlation)
    period, source, offset = None, None, None
    usable = bool(stated_period_s)
    if comb is not None and stated_period_s:
        ratio = stated_period_s / comb.period_s
        k = int(round(ratio))
        if abs(ratio - 1.0) < SAME_PERIOD:
            period, source, offset = float(stated_period_s), "sync", comb.offset_s
        else:
            usable = False
            period, source, offset = comb.period_s, "correlogram", comb.offset_s
            if k >= 2 and abs(ratio - k) < 0.01 * k:
                period = float(stated_period_s) / k
                notes.append(f"the file's sync period ({stated_period_s * 1e9:.3f} ns) is {k} "
                             f"laser periods ({period * 1e9:.3f} ns, from the coincidence "
                             "peaks): the sync is divided; g2 uses the laser period, and the "
                             "delay histograms are not decays of one pulse (no lifetime)")
            else:
                notes.append(f"the file's sync period ({stated_period_s * 1e9:.3f} ns) "
                             f"disagrees with the coincidence peaks' period "
                             f"({comb.period_s * 1e9:.3f} ns): g2 uses the peaks' period; no "
                             "lifetime from the sync")
    elif comb is not None:
        period, source, offset = comb.period_s, "correlogram", comb.offset_s
        notes.append(f"no laser period in the file: pulsed excitation found from the "
                     f"coincidence peaks, period {comb.period_s * 1e9:.4f} ns "
                     f"({1e-6 / comb.period_s:.2f} MHz)")
    elif stated_period_s:
        period, source = float(stated_period_s), "sync"
        offset = _fold_offset(correlation.lags_s, correlation.counts.astype(float), period)

    if period is None:
        notes.append("no periodic coincidence peaks and no laser period: continuous "
                     "excitation, g2(τ) normalised to uncorrelated photons")
        try:
            cw = cw_g2(_rebin(correlation, cw_bin_s))
        except ValueError as exc:
            notes.append(f"g2(τ) failed: {exc}")
            return G2Analysis("cw", None, None, None, None, None, None, None, None, False,
                              tuple(notes))
        at = 0.0 if delay_s is None else float(delay_s)
        k0 = int(np.argmin(np.abs(cw.lags_s - at)))
        val = checked(float(cw.g2[k0]), float(cw.g2_err[k0]), "g2(0)", notes)
        return G2Analysis("cw", None, None, None, None, None, cw, val,
                          float(cw.g2_err[k0]) if val is not None else None, False, tuple(notes))

    zp = zero_peak(correlation, period, offset, delay_s=delay_s)
    if zp.note:
        notes.append(zp.note)
    try:
        res = pulsed_g2(correlation, period, centre_lag_s=zp.lag_s,
                        decay=decay if usable else None, background_hz=background_hz,
                        background_err_hz=background_err_hz,
                        background_source=background_source)
    except ValueError as exc:
        notes.append(f"g2 failed: {exc}")
        return G2Analysis("pulsed", period, source, comb, zp, None, None, None, None,
                          usable, tuple(notes))
    if res.note:
        notes.append(res.note)
    if lifetime_s is not None and res.trusted and period < OVERLAP_LIFETIMES * lifetime_s:
        notes.append(f"the decay ({lifetime_s * 1e9:.1f} ns) is not over within the laser "
                     f"period ({period * 1e9:.1f} ns < {OVERLAP_LIFETIMES:g} lifetimes): the "
                     "coincidence peaks overlap and g2(0) from peak areas cannot be trusted "
                     "(raw ratio kept)")
        res = replace(res, g2=math.nan, g2_err=math.nan, trusted=False)
    # the OFF level's rate is only an upper bound on the background (an emitting OFF state
    # counts with it): without delay histograms (T2 without sync) the correlogram's own floor,
    # fitted, is the better measure
    no_shape = decay is None or not usable
    measured_bg = None if background_source == "off level" and no_shape else background_hz
    fitted = _correlogram_fit(correlation, period, zp.lag_s, res, measured_bg, lifetime_s,
                              notes, decay if usable else None)
    if fitted is not None:
        res, val = fitted
        return G2Analysis("pulsed", period, source, comb, zp, res, None, val,
                          res.g2_err if val is not None else None, usable, tuple(notes))
    if "leakage" not in res.correction and res.trusted:
        bias = _overlap_bias(correlation, period, zp.lag_s)
        if bias > max(0.02, res.g2_err):
            notes.append(f"the coincidence peaks overlap (valleys between side peaks suggest "
                         f"~{bias:.2f} of a side peak leaks into the centre window) and there "
                         "is no decay to correct it: g2(0) may be biased up by about that much")
    val = checked(res.g2, res.g2_err, "g2(0)", notes)
    return G2Analysis("pulsed", period, source, comb, zp, res, None, val,
                      res.g2_err if val is not None else None, usable, tuple(notes))


def _correlogram_fit(correlation: Correlation, period: float, centre: float, res: G2Result,
                     background_hz: tuple[float, float] | None, lifetime_s: float | None,
                     notes: list[str], decay: DecayInput | None = None
                     ) -> tuple[G2Result, float | None] | None:
    """g2(0) from a fit of the whole correlogram (:mod:`spad.analysis.g2_fit`) where the
    coincidence peaks overlap: the window result with the fitted value, and the value to
    report; ``None`` where the window ratio stands. With the detectors' delay histograms and
    the decay's lifetime the peak shape is built from them, else it is a fitted two-sided
    exponential. Without delay histograms and without a measured background (T2 without
    sync) the floor is fitted too, with its error in g2(0)'s, and the fit always stands: the
    window ratio would carry the unknown floor uncorrected (or one over-corrected by an
    upper bound such as the OFF level's rate)."""
    from spad.analysis.g2 import decay_rows
    from spad.analysis.g2_fit import fit_correlogram, floor_rate, measured_shape, use_fit

    corrected = "leakage" in res.correction
    if res.trusted and corrected:
        return None
    floor = floor_rate(correlation, background_hz)
    free = background_hz is None and decay is None
    fit = None
    if decay is not None and lifetime_s:
        try:
            h_a, h_b, w_d = decay_rows(decay, correlation.det_a, correlation.det_b)
            d = correlation.duration_s
            bg = ((0.0, 0.0) if background_hz is None else
                  tuple(float(b) * d * w_d / period for b in background_hz))
            shape = measured_shape(h_a, h_b, w_d, period, lifetime_s, bg)
            fit = fit_correlogram(correlation, period, centre, floor, lifetime_s, shape)
        except ValueError as exc:
            notes.append(f"correlogram fit with the measured peak shape failed ({exc}): "
                         "exponential peak shape")
    try:
        expo = fit_correlogram(correlation, period, centre, floor, None, free_floor=free)
    except ValueError as exc:
        expo = None
        if fit is None:
            notes.append(f"correlogram fit failed: {exc}")
            return None
    # the measured shape must describe the correlogram at least as well as the exponential
    # (few photons in the histograms, a zero peak misplaced): else the exponential stands
    if expo is not None and (fit is None or fit.chi2_reduced > max(1.5 * expo.chi2_reduced,
                                                                   expo.chi2_reduced + 0.5)):
        if fit is not None:
            notes.append(f"the peak shape from the delay histograms does not describe the "
                         f"correlogram (chi2/dof {fit.chi2_reduced:.1f} against "
                         f"{expo.chi2_reduced:.1f} for an exponential shape): exponential")
        fit = expo
    if not free and not use_fit(res, corrected, fit):
        return None
    floor_text = ("fixed by the measured background" if background_hz is not None else
                  f"fitted, {fit.floor_per_bin:.3g} +/- {fit.floor_err_per_bin:.2g} pairs per "
                  f"{fit.bin_width_s * 1e9:.3g} ns bin" if free else
                  "zero (no background measured)")
    shape_note = ("peak shape from the detectors' delay histograms (lifetime "
                  f"{fit.lifetime_s * 1e9:.1f} ns beyond the period)"
                  if fit.shape == "measured decays" else
                  "peak shape of a decay with two lifetimes (photon-weighted mean "
                  f"{fit.lifetime_s * 1e9:.1f} ns)" if fit.shape == "two exponentials" else
                  f"exponential peak shape of lifetime {fit.lifetime_s * 1e9:.1f} ns")
    why = ("the coincidence peaks overlap" if not res.trusted or use_fit(res, corrected, fit)
           else "no background measured: the fit measures the uncorrelated floor")
    notes.append(f"g2(0) from a fit of the whole correlogram ({why}): "
                 f"{fit.g2:.3f} +/- {fit.g2_err:.3f}, {shape_note}, floor {floor_text}, "
                 f"chi2/dof {fit.chi2_reduced:.2f}")
    kept = res.correction if not free else "+".join(
        x for x in res.correction.split("+") if x != "off level")
    out = replace(res, g2=fit.g2, g2_err=fit.g2_err, trusted=True,
                  correction="+".join(x for x in (kept, "correlogram fit",
                                                  "fitted floor" if free else "")
                                      if x and x != "none"))
    return out, checked(fit.g2, fit.g2_err, "g2(0)", notes)


MIN_GATED_PAIRS = 20.0
"""Fewest pairs per side peak for a gated g2(0)."""


def check_gated(res: G2Result, kept_fraction: float) -> tuple[float | None, list[str]]:
    """The gated g2(0) to report, or ``None`` with the reason.

    Not given when the gate keeps under 5 % of the photons (a decay about as short as the gate:
    what passes is background), leaves fewer than :data:`MIN_GATED_PAIRS` pairs per side peak,
    when the peak model is not trusted, or when it is forbidden (below zero by errors).
    """
    notes: list[str] = []
    if kept_fraction < 0.05:
        notes.append(f"the time gate keeps {kept_fraction:.1%} of the photons (decay about as "
                     "short as the gate): no gated g2(0)")
        return None, notes
    mean_side = float(np.mean(res.side_areas)) if res.side_areas.size else 0.0
    if mean_side < MIN_GATED_PAIRS:
        notes.append(f"the time gate leaves {mean_side:.1f} pairs per side peak: no gated g2(0)")
        return None, notes
    if res.note:
        notes.append("gated: " + res.note)
    return checked(res.g2, res.g2_err, "gated g2(0)", notes), notes


def decay_floor_background(decay: Decay, period_s: float, duration_s: float,
                           background_per_bin: float, background_per_bin_err: float,
                           bin_width_s: float, det_a: int, det_b: int,
                           covered_s: float | None = None
                           ) -> tuple[tuple[float, float], tuple[float, float]]:
    """Per-detector uncorrelated background rates from the decay fit's flat floor.

    The decay fit of the detectors' summed histogram (periodic decays plus a constant,
    :mod:`spad.analysis.lifetimes`) gives the floor in counts per bin of ``bin_width_s``; over one
    period that is ``background_per_bin * T / w / D`` per second in total. It is split between
    the detectors in proportion to each one's counts in the quietest quarter of the period (its
    own floor, where dark counts differ). ``covered_s``: the stretch of the period the floor
    was fitted over and the card records (:func:`spad.analysis.decay_window.decay_window`), if
    known.
    """
    # photons are recorded only within the TCSPC range, which may be shorter than the period
    # (and, given the fitted window, only where the card records: covered_s)
    n = int(np.count_nonzero(decay.bin_edges_s[1:] <= period_s + 1e-15))
    covered = min(period_s, float(decay.bin_edges_s[n]) - float(decay.bin_edges_s[0]))
    if covered_s is not None and covered_s > 0:
        covered = float(covered_s)
    total = background_per_bin * covered / bin_width_s / duration_s
    total_err = background_per_bin_err * covered / bin_width_s / duration_s
    shares = []
    for det in (det_a, det_b):
        row = np.asarray(decay.counts[decay.detectors.index(det)][:n], dtype=float)
        q = max(1, n // 4)
        # the quietest quarter: the smallest running sum over a quarter period
        csum = np.concatenate(([0.0], np.cumsum(np.concatenate((row, row[:q])))))
        shares.append(float(np.min(csum[q:q + n] - csum[:n])))
    s = np.array(shares)
    frac = s / s.sum() if s.sum() > 0 else np.array([0.5, 0.5])
    b = tuple(float(x) for x in total * frac)
    db = tuple(float(x) for x in total_err * frac)
    return b, db  # type: ignore[return-value]


__all__ = ["decay_usable", "find_period", "PeriodFit", "zero_peak", "ZeroPeak", "Z_PICK",
           "analyze_g2", "G2Analysis", "check_gated", "correlation_range",
           "decay_floor_background", "checked"]
