"""Second-order correlation g2 from a cross-correlation histogram.

- :func:`pulsed_g2`: g2(0) under pulsed excitation, the area of the zero-delay peak over the mean
  area of the side peaks, each integrated over +/- T/2 around the peak (docs/methods.md, "g2").
- :func:`cw_g2`: normalised g2(tau) under continuous excitation.
- :func:`passes_gate` (and :func:`gate_mask` of a photon list): the time gate, defined here
  once (see below); the gated g2(0) is a pass over the photons kept
  (:meth:`spad.analysis.windowed.KeptPhotons.gated_pulsed_g2`).

Both take the :class:`~spad.analysis.accumulators.Correlation` result of a
:class:`~spad.analysis.accumulators.CrossCorrelation` (or the accumulator itself).

The time gate. Biexciton photons come within a few ns of the pulse; an exciton photon after
the cascade comes later. Dropping the photons that arrive within ``gate_s`` of the excitation
pulse removes most biexciton photons, so the gated g2(0) of a single dot goes towards 0 while
two emitters stay near 0.5 (Mangum, Ghosh, Htoon et al., "Disentangling the effects of clustering
and multi-exciton emission in second-order photon correlation experiments", Opt. Express 21,
7419 (2013)). The pulse is seen by each detector at its own delay after the sync (cable delays
differ by nanoseconds), so the gate counts from *each detector's* excitation pulse, located from
the rising edge of that detector's decay (:func:`pulse_delays`), never from the sync. The same
rule serves the file path and the live path: both gate the photons kept, in memory or read
again in windows.

Peak leakage. Each peak of the pulsed correlation is the distribution of
``Delta = d_b - d_a`` (delays after the sync of the two photons) shifted by a whole number of
periods. With lifetimes not short against the period, its tails cross the +/- T/2 windows: the
centre window collects the tails of the two neighbouring side peaks and loses its own, which
biases g2(0) up (23 ns at 200 ns: ~+0.03). Given the two detectors' decay histograms,
:func:`peak_fractions` computes the shape (their correlation) and the share of a peak that each
window receives, and :func:`pulsed_g2` with ``decay=`` solves the windows for the true peak
areas (:func:`solve_peak_areas`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.fft
from spad.analysis.accumulators import Correlation, CrossCorrelation, Decay
from spad.analysis.photon_collector import PhotonList


def _as_correlation(correlation: Correlation | CrossCorrelation) -> Correlation:
    if isinstance(correlation, CrossCorrelation):
        return correlation.result()
    if isinstance(correlation, Correlation):
        return correlation
    raise TypeError(f"expected a Correlation or CrossCorrelation, not "
                    f"{type(correlation).__name__}")


@dataclass(frozen=True)
class G2Result:
    """Pulsed g2(0).

    Attributes
    ----------
    g2
        g2(0) after the peak-leakage correction (with ``decay``) and the background correction
        (equal to ``g2_raw`` without either).
    g2_err
        Its standard uncertainty from Poisson counting statistics.
    g2_raw, g2_raw_err
        Centre area over mean side area, no correction.
    rho
        Signal fraction used for the correction (``rho**2`` is the product over both
        detectors); 1.0 without correction.
    centre_lag_s
        Position of the zero-delay peak (the cable delay between the detectors).
    centre_area
        Counts in the centre window.
    side_lags_s, side_areas
        Positions and counts of the side peaks used.
    floor_per_bin
        Inter-peak floor in counts per bin (estimated or implied by ``rho``), 0 without
        correction.
    sync_period_s
        Laser period used.
    peak_fractions
        With the leakage correction: the shares of the centre peak that fall into the windows
        -1, 0 and +1 (their sum is ~1; a short decay gives ~(0, 1, 0)); else ``None``.
    centre_area_fit, side_area_fit
        With the leakage correction: the solved centre and side-peak areas (pairs).
    correction
        What was corrected: ``"none"``, or ``"+"``-joined ``"leakage"`` (decay tails across the
        windows) and the background source (``"rho"``, ``"dark counts"``, ``"floor"``, or the
        caller's label of ``background_hz``, e.g. ``"decay floor"``).
    background_pairs, background_pairs_err
        With ``background_hz``: uncorrelated-background pairs expected per window.
    trusted
        False when the peak-shape model does not describe the windows or the peaks overlap too
        much to separate: ``g2`` is NaN then and ``note`` says why (``g2_raw`` stands).
    note
        Why the corrected value is not given, or what limits it.
    """

    g2: float
    g2_err: float
    g2_raw: float
    g2_raw_err: float
    rho: float
    centre_lag_s: float
    centre_area: int
    side_lags_s: np.ndarray
    side_areas: np.ndarray
    floor_per_bin: float
    sync_period_s: float
    peak_fractions: np.ndarray | None = None
    centre_area_fit: float | None = None
    side_area_fit: float | None = None
    correction: str = "none"
    background_pairs: float | None = None
    background_pairs_err: float | None = None
    trusted: bool = True
    note: str = ""


DecayInput = Decay | tuple[np.ndarray, np.ndarray, float]
"""Delay histograms of the two detectors: a :class:`~spad.analysis.accumulators.Decay` holding rows
for both, or ``(counts_a, counts_b, bin_width_s)`` on bins from delay 0."""


def decay_rows(decay: DecayInput, det_a: int, det_b: int
                ) -> tuple[np.ndarray, np.ndarray, float]:
    if isinstance(decay, Decay):
        rows = []
        for det in (det_a, det_b):
            if det not in decay.detectors:
                raise ValueError(f"the decay histograms have no row for detector {det} "
                                 f"(rows: {decay.detectors})")
            rows.append(np.asarray(decay.counts[decay.detectors.index(det)], dtype=float))
        return rows[0], rows[1], float(decay.bin_width_s)
    try:
        h_a, h_b, width = decay
    except (TypeError, ValueError):
        raise TypeError("decay must be a Decay or (counts_a, counts_b, bin_width_s)") from None
    h_a = np.asarray(h_a, dtype=float)
    h_b = np.asarray(h_b, dtype=float)
    if h_a.ndim != 1 or h_a.shape != h_b.shape or not float(width) > 0:
        raise ValueError("decay histograms must be two 1-D arrays of one length and a positive "
                         "bin width")
    return h_a, h_b, float(width)


def _quiet_first(row: np.ndarray, period_s: float, bin_width_s: float
                 ) -> tuple[np.ndarray, int]:
    """One period of a delay histogram rolled to start at its quietest quarter, and the roll."""
    n = max(1, min(row.size, int(round(period_s / bin_width_s))))
    q = max(1, n // 4)
    ring = np.concatenate((row[:n], row[:q]))
    csum = np.concatenate(([0.0], np.cumsum(ring)))
    start = int(np.argmin(csum[q:q + n] - csum[:n]))
    return np.roll(row[:n], -start), start


def _above_floor(row: np.ndarray, period_s: float, bin_width_s: float) -> np.ndarray:
    """A delay histogram minus its flat floor: the mean of its quietest quarter period."""
    n = max(1, min(row.size, int(round(period_s / bin_width_s))))
    q = max(1, n // 4)
    ring = np.concatenate((row[:n], row[:q]))
    csum = np.concatenate(([0.0], np.cumsum(ring)))
    floor = float(np.min(csum[q:q + n] - csum[:n])) / q
    out = np.clip(row - floor, 0.0, None)
    return out if out.sum() > 0 else row


def full_convolution(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``scipy.signal.fftconvolve(a, b)`` (mode "full") of two 1-D real arrays, on scipy.fft.

    The same transforms in the same order as SciPy 1.17's ``fftconvolve`` (``rfftn`` at the
    next fast length, the product, ``irfftn``, cropped), hence the same numbers, without the
    import of ``scipy.signal`` (~0.1-0.4 s) that the analysis of every particle would pay.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.size == 0 or b.size == 0:
        return np.asarray([])
    if a.size == 1 or b.size == 1:
        return a * b   # fftconvolve multiplies by a length-1 input (broadcasting)
    a = a.astype(np.float64) if a.dtype.kind in "iub" else a
    b = b.astype(np.float64) if b.dtype.kind in "iub" else b
    shape = a.size + b.size - 1
    fshape = [scipy.fft.next_fast_len(shape, True)]
    ret = scipy.fft.irfftn(scipy.fft.rfftn(a, fshape, axes=[0]) * scipy.fft.rfftn(b, fshape,
                                                                                   axes=[0]),
                           fshape, axes=[0])
    return ret[:shape].copy()


def delay_difference(decay: DecayInput, det_a: int = 1, det_b: int = 2
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Distribution of ``Delta = d_b - d_a`` for independent photons: the shape of a side peak.

    It is the correlation of the two delay histograms (each photon's delay after its sync),
    which is exact for photons of different pulses as long as the blinking does not change the
    decay shape between the pulses (the lags are microseconds, the blinking milliseconds).

    Parameters
    ----------
    decay
        The two detectors' delay histograms (see :data:`DecayInput`).
    det_a, det_b
        Detectors of the correlation, used to pick the rows of a ``Decay``.

    Returns
    -------
    (edges_s, cdf)
        Cumulative distribution of Delta at the bin edges ``edges_s`` (seconds), from 0 to 1.
    """
    h_a, h_b, width = decay_rows(decay, det_a, det_b)
    if h_a.sum() <= 0 or h_b.sum() <= 0:
        raise ValueError("a decay histogram is empty: no peak shape")
    n = h_a.size
    # element j of the full convolution with the reversed a histogram is
    # sum_i h_a[i] h_b[i + j - (n - 1)]: lag bin j - (n - 1)
    p = np.clip(full_convolution(h_b, h_a[::-1]), 0.0, None)
    cdf = np.concatenate(([0.0], np.cumsum(p)))
    cdf /= cdf[-1]
    edges = (np.arange(-(n - 1), n + 1) - 0.5) * width
    return edges, cdf


def peak_fractions(edges_s: np.ndarray, cdf: np.ndarray, window_lo_s: np.ndarray,
                   window_hi_s: np.ndarray, peaks: np.ndarray,
                   sync_period_s: float) -> np.ndarray:
    """Share of each peak falling into each window.

    Peak ``k`` holds the pairs whose syncs are ``k`` periods apart, at lags ``k T + Delta``
    with Delta distributed as ``cdf`` (from :func:`delay_difference`); window ``j`` spans the
    lags ``[window_lo_s[j], window_hi_s[j])``.

    Returns
    -------
    numpy.ndarray
        ``M[j, i]``: fraction of peak ``peaks[i]`` inside window ``j``.
    """
    shift = np.asarray(peaks, dtype=float)[None, :] * sync_period_s
    hi = np.interp(np.asarray(window_hi_s)[:, None] - shift, edges_s, cdf, left=0.0, right=1.0)
    lo = np.interp(np.asarray(window_lo_s)[:, None] - shift, edges_s, cdf, left=0.0, right=1.0)
    return hi - lo


def solve_peak_areas(windows: np.ndarray, fractions_centre: np.ndarray,
                     fractions_side: np.ndarray) -> tuple[float, float, np.ndarray]:
    """True centre and side-peak areas from the window counts, by weighted least squares.

    Window ``j`` holds ``W_j = A_0 c_j + A s_j`` counts, ``c_j`` the share of the centre peak
    and ``s_j`` the summed share of all side peaks (equal areas ``A``) that fall into it. The
    weights are the Poisson variances of the model's expected counts (iterated from the
    observed ones), so that with no leakage the areas are the plain window counts and mean.

    Returns
    -------
    (A_0, A, covariance)
        The areas and their 2 x 2 covariance.
    """
    w = np.asarray(windows, dtype=float)
    x = np.column_stack((fractions_centre, fractions_side))
    var = np.maximum(w, 1.0)
    for _ in range(3):
        # observed counts as variances bias the areas low (a window that fluctuated down gets
        # more weight); iterate with the model's expected counts instead
        xtw = x.T / var
        cov = np.linalg.inv(xtw @ x)
        a0, a = cov @ (xtw @ w)
        var = np.maximum(x @ np.array([a0, a]), 1.0)
    return float(a0), float(a), cov


def find_peak_offset(lags_s: np.ndarray, counts: np.ndarray, sync_period_s: float) -> float:
    """Position of the peak grid modulo the sync period, in ``[0, T)``.

    The histogram is folded modulo T so that all peaks (the side peaks dominate when the centre
    one is nearly empty) pile onto one; the offset is the circular centroid of the folded peak
    above its floor, within +/- T/4 of its maximum.

    Parameters
    ----------
    lags_s
        Bin centres in seconds.
    counts
        Pairs per bin.
    sync_period_s
        Laser period in seconds.
    """
    period = float(sync_period_s)
    width = float(np.median(np.diff(lags_s))) if lags_s.size > 1 else period
    n_phase = max(16, int(round(period / width)))
    phase = np.mod(lags_s, period) / period  # in [0, 1)
    idx = np.minimum((phase * n_phase).astype(np.int64), n_phase - 1)
    folded = np.bincount(idx, weights=counts.astype(float), minlength=n_phase)
    if folded.sum() <= 0:
        raise ValueError("the correlation histogram is empty: no peak to locate")
    # smooth over ~1/20 of a period so that a noisy single bin does not win
    k = max(1, n_phase // 20)
    kernel = np.ones(2 * k + 1)
    padded = np.concatenate((folded[-k:], folded, folded[:k]))
    smooth = np.convolve(padded, kernel, mode="valid")
    top = int(np.argmax(smooth))
    rel = (np.arange(n_phase) - top + n_phase // 2) % n_phase - n_phase // 2  # -n/2..n/2
    near = np.abs(rel) <= n_phase // 4
    weight = np.clip(folded[near] - folded.min(), 0.0, None)
    if weight.sum() <= 0:
        shift = 0.0
    else:
        shift = float(np.sum(weight * rel[near]) / weight.sum())
    centre_phase = (top + shift + 0.5) / n_phase  # bin centre of the phase bins
    return float(np.mod(centre_phase * period, period))


def pulsed_g2(correlation: Correlation | CrossCorrelation, sync_period_s: float | None = None,
              *, n_side_peaks: int | None = None, centre_lag_s: float | None = None,
              rho: float | tuple[float, float] | None = None,
              dark_counts_hz: float | tuple[float, float] | None = None,
              floor: bool = False, floor_window: float = 0.1,
              decay: DecayInput | None = None,
              background_hz: tuple[float, float] | None = None,
              background_err_hz: tuple[float, float] = (0.0, 0.0),
              background_source: str = "background") -> G2Result:
    """g2(0) under pulsed excitation: centre-peak area over the mean side-peak area.

    Each lag bin belongs to the peak whose centre is nearest (windows of +/- T/2); only peaks
    whose whole window lies inside the histogram are used.

    Parameters
    ----------
    correlation
        The cross-correlation (lag range of at least 1.5 periods; a few periods is better).
    sync_period_s
        Laser period; default the stream's.
    n_side_peaks
        Use at most this many side peaks on each side (nearest first); default all complete.
    centre_lag_s
        Position of the zero-delay peak if known; default located automatically: the peak grid
        offset from the folded histogram, then the grid peak nearest lag 0.
    rho
        Signal fraction S/(S+B) (one value, or one per detector) for the background correction
        ``g2_meas = rho^2 g2 + 1 - rho^2``.
    dark_counts_hz
        Background rates (one value, or per detector a and b); rho follows from the detectors'
        mean count rates in the correlation (``n_a / duration``).
    floor
        Estimate the background from the inter-peak floor: the mean counts per bin within
        ``floor_window * T`` of the midpoints between peaks, subtracted from every window. It
        overestimates the floor when the decay is not short against T.
    floor_window
        Half-width of the floor regions, as a fraction of the period.
    decay
        The two detectors' delay histograms (of the photons that entered the correlation: for
        a gated correlation, of the gated photons). With them the peak areas are corrected
        for the tails that cross the windows (see the module notes); ``g2_raw`` stays the
        plain window ratio. Not with ``floor``. The correction is applied only where it
        matters (a peak leaks more than 0.1 % out of its window) and is trusted only if the
        model reproduces the window counts and each peak keeps at least half of its area in
        its own window; otherwise ``trusted`` is False and ``g2`` NaN.
    background_hz, background_err_hz
        Uncorrelated background rates of detectors a and b (and their standard errors)
        measured from the recording (e.g. the decay's flat floor). Each window then holds
        ``B = (b_a r_b + r_a b_b - b_a b_b) T D`` background pairs (``r`` the detectors' mean
        rates, ``D`` the duration), subtracted from the centre and the mean side area:
        ``g2 = (A_0 - B) / (A - B)``. Unlike ``rho`` this keeps the blinking bunching of the
        side peaks. ``background_source`` names it in ``correction``.

    Returns
    -------
    G2Result

    Raises
    ------
    ValueError
        Without a sync period, without a complete side peak, with an empty side area, when
        more than one background option is given, or ``floor`` with ``decay``.
    """
    c = _as_correlation(correlation)
    period = sync_period_s if sync_period_s is not None else c.sync_period_s
    if not period or not period > 0:
        raise ValueError("pulsed g2 needs the sync period: the stream's timing has none, "
                         "give sync_period_s")
    if sum(x is not None and x is not False
           for x in (rho, dark_counts_hz, floor or None, background_hz)) > 1:
        raise ValueError("give at most one of rho, dark_counts_hz, floor and background_hz")
    if floor and decay is not None:
        raise ValueError("the floor estimate and the decay-based peak correction exclude each "
                         "other: the floor of long decays is their tails")
    lags, counts = c.lags_s, c.counts.astype(np.int64)
    if centre_lag_s is None:
        offset = find_peak_offset(lags, counts, period)
        centre = offset - period * round(offset / period)
    else:
        centre = float(centre_lag_s)

    peak = np.floor((lags - centre) / period + 0.5).astype(np.int64)
    lo_edge, hi_edge = c.bin_edges_s[0], c.bin_edges_s[-1]
    tol = 1e-9 * period
    n_lo = math.ceil((lo_edge - centre) / period + 0.5 - 1e-9)
    n_hi = math.floor((hi_edge - centre) / period - 0.5 + 1e-9)
    complete = [n for n in range(n_lo, n_hi + 1)
                if centre + (n - 0.5) * period >= lo_edge - tol
                and centre + (n + 0.5) * period <= hi_edge + tol]
    if 0 not in complete:
        raise ValueError("the centre peak's window is not inside the correlation's lag range")
    sides = [n for n in complete if n != 0]
    if n_side_peaks is not None:
        sides = [n for n in sides if abs(n) <= n_side_peaks]
    if not sides:
        raise ValueError("no complete side peak: correlate over at least 1.5 sync periods")
    in_peak = {n: peak == n for n in [0, *sides]}
    areas = {n: int(counts[m].sum()) for n, m in in_peak.items()}
    side_areas = np.array([areas[n] for n in sides], dtype=np.int64)
    a0 = areas[0]
    total_side = int(side_areas.sum())
    if total_side <= 0:
        raise ValueError("the side peaks are empty: no photon pairs to normalise g2(0) by")
    mean_side = total_side / len(sides)

    g2_raw = a0 / mean_side
    # Poisson: var(A0) = A0 (at least 1, so that an empty centre still has an uncertainty),
    # var(mean side) = sum / N^2
    g2_raw_err = math.sqrt(max(a0, 1) + g2_raw ** 2 * total_side / len(sides) ** 2) / mean_side

    floor_per_bin = 0.0
    if floor:
        mid = np.abs((lags - centre) / period - np.floor((lags - centre) / period) - 0.5)
        in_floor = (mid <= floor_window) & (lags >= centre + (min(complete) - 0.5) * period) \
            & (lags < centre + (max(complete) + 0.5) * period)
        if not np.any(in_floor):
            raise ValueError("no bins in the floor regions: widen floor_window")
        floor_per_bin = float(counts[in_floor].mean())
        rho2 = max(0.0, 1.0 - floor_per_bin * np.mean([in_peak[n].sum() for n in sides])
                   / mean_side)
    elif dark_counts_hz is not None:
        dark = np.broadcast_to(np.asarray(dark_counts_hz, dtype=float), (2,))
        if c.duration_s <= 0 or c.n_a <= 0 or c.n_b <= 0:
            raise ValueError("the correlation has no duration or counts to turn dark counts "
                             "into a signal fraction")
        rates = np.array([c.n_a, c.n_b]) / c.duration_s
        rho_ab = np.clip(1.0 - dark / rates, 0.0, 1.0)
        rho2 = float(rho_ab[0] * rho_ab[1])
    elif rho is not None:
        r = np.broadcast_to(np.asarray(rho, dtype=float), (2,))
        if np.any((r <= 0) | (r > 1)):
            raise ValueError(f"rho must be in (0, 1], not {rho!r}")
        rho2 = float(r[0] * r[1])
    else:
        rho2 = 1.0
    if rho2 <= 0:
        raise ValueError("the background accounts for all counts (rho = 0): no signal g2")

    fractions = None
    a0_fit = a_fit = None
    corrections: list[str] = []
    trusted, note = True, ""
    a0_c, side_c = float(a0), float(mean_side)  # areas after the leakage correction
    cov_c = np.diag([max(a0, 1), total_side / len(sides) ** 2])
    if decay is not None:
        # Solve the windows for the true areas: W_j = A_0 c_j + A s_j (see solve_peak_areas)
        # Each detector's delays rolled within the period so that its quietest quarter comes
        # first: a pulse that straddles the sync (cable delay near a multiple of T) would split
        # Delta into two modes a period apart. Delta moves by a known constant, added back.
        h_a, h_b, w_d = decay_rows(decay, c.det_a, c.det_b)
        (h_a, r_a), (h_b, r_b) = _quiet_first(h_a, period, w_d), _quiet_first(h_b, period, w_d)
        shift_d = (r_b - r_a) * w_d
        edges_d, cdf = delay_difference((h_a, h_b, w_d))
        edges_d = edges_d + shift_d
        # does the signal leak? Judged on the decays above their flat floor (dark counts and
        # afterpulses spread evenly over all windows: no reason to correct a short decay)
        edges_s, cdf_s = delay_difference((_above_floor(h_a, period, w_d),
                                           _above_floor(h_b, period, w_d), w_d))
        edges_s = edges_s + shift_d
        windows = [0, *sides]
        lo_w = np.array([c.bin_edges_s[np.flatnonzero(in_peak[n])[0]] for n in windows])
        hi_w = np.array([c.bin_edges_s[np.flatnonzero(in_peak[n])[-1] + 1] for n in windows])
        # Peak k of Delta holds the pairs whose syncs are k apart; the one of the same pulse
        # sits in the centre window. With a cable delay or a delay wrapped into the next sync
        # that is not k = 0: label by where Delta's median falls.
        median_delta = float(np.interp(0.5, cdf, edges_d))
        k0 = int(round((centre - median_delta) / period))
        # every peak that can reach a used window: Delta spans the decay range on each side
        reach = int(math.ceil(max(abs(edges_d[0]), abs(edges_d[-1])) / period)) + 1
        all_peaks = np.arange(min(windows) + k0 - reach, max(windows) + k0 + reach + 1)
        m = peak_fractions(edges_d, cdf, lo_w, hi_w, all_peaks, period)
        is_centre = all_peaks == k0
        m_sig = peak_fractions(edges_s, cdf_s, lo_w, hi_w, all_peaks, period)
        own_sig = float(m_sig[0, is_centre][0])
        into_sig = float(m_sig[0, ~is_centre].sum())
        counts_w = np.array([areas[n] for n in windows], dtype=float)
        centre_row = m[:, is_centre][:, 0]
        side_row = m[:, ~is_centre].sum(axis=1)
        # share of one peak in its own window and in the windows either side
        fractions = np.array([centre_row[windows.index(k)] if k in windows else np.nan
                              for k in (-1, 0, 1)])
        own = float(centre_row[0])
        # (h_a, h_b are one period each, from _quiet_first)
        sig_share = min(_above_floor(h, period, w_d).sum() / max(h.sum(), 1.0)
                        for h in (h_a, h_b))
        if sig_share < 0.1:
            # a flat delay histogram (no laser pulse in it): nothing to model the peaks with
            own_sig, into_sig = 1.0, 0.0
            note = (f"the delay histograms show no excitation pulse ({sig_share:.0%} of the "
                    "photons above their floor): no tail correction")
        if own < 0.5 and sig_share >= 0.1:
            trusted = False
            note = (f"the coincidence peaks overlap (a peak keeps {own:.0%} of its pairs in its "
                    "own window: decay long against the period): g2(0) from peak areas cannot "
                    "be trusted")
        elif 1.0 - own_sig > 1e-3 or into_sig > 1e-3:
            a0_fit, a_fit, cov = solve_peak_areas(counts_w, centre_row, side_row)
            expected = np.maximum(a0_fit * centre_row + a_fit * side_row, 1.0)
            chi2 = float(np.sum((counts_w - expected) ** 2 / expected))
            dof = max(1, len(windows) - 2)
            if a_fit <= 0:
                raise ValueError("the side peaks are empty after the leakage correction")
            if chi2 > dof + 5.0 * math.sqrt(2.0 * dof) + 10.0:
                trusted = False
                note = (f"the decay's peak shape does not describe the coincidence windows "
                        f"(chi2 {chi2:.0f} for {dof} degrees of freedom): the tail-corrected "
                        "g2(0) cannot be trusted")
            a0_c, side_c, cov_c = a0_fit, a_fit, cov
            corrections.append("leakage")
            err_c = math.sqrt(max(cov[0, 0] - 2 * (a0_fit / a_fit) * cov[0, 1]
                                  + (a0_fit / a_fit) ** 2 * cov[1, 1], 0.0)) / a_fit
            if trusted and err_c > 3 * g2_raw_err + 0.05:
                trusted = False
                note = (f"the tail correction is ill-determined (error {err_c:.2g} against "
                        f"{g2_raw_err:.2g} for the raw ratio): the corrected g2(0) is not "
                        "given")
    g2_lc = a0_c / side_c
    var = (cov_c[0, 0] - 2 * g2_lc * cov_c[0, 1] + g2_lc ** 2 * cov_c[1, 1]) / side_c ** 2
    g2_lc_err = math.sqrt(max(var, 0.0))

    bg_pairs = bg_pairs_err = None
    if background_hz is not None:
        b = np.broadcast_to(np.asarray(background_hz, dtype=float), (2,))
        db = np.broadcast_to(np.asarray(background_err_hz, dtype=float), (2,))
        if c.duration_s <= 0 or c.n_a <= 0 or c.n_b <= 0:
            raise ValueError("the correlation has no duration or counts for a background "
                             "correction")
        r = np.array([c.n_a, c.n_b]) / c.duration_s
        b = np.clip(b, 0.0, r)
        td = period * c.duration_s
        bg_pairs = float((b[0] * r[1] + r[0] * b[1] - b[0] * b[1]) * td)
        bg_pairs_err = float(math.hypot((r[1] - b[1]) * td * db[0], (r[0] - b[0]) * td * db[1]))
        if side_c - bg_pairs <= 0:
            raise ValueError("the background accounts for all side-peak pairs: no signal g2")
        g2 = (a0_c - bg_pairs) / (side_c - bg_pairs)
        d_side = side_c - bg_pairs
        # the centre's Poisson variance is its expectation, which is at least the background
        # pairs in it: a centre that fluctuated below them (a few counts after a time gate)
        # would otherwise claim an error too small for a value below zero
        var_c = max(float(cov_c[0, 0]), bg_pairs)
        var = (var_c - 2 * g2 * cov_c[0, 1] + g2 ** 2 * cov_c[1, 1]) / d_side ** 2
        var += ((g2 - 1.0) / d_side * bg_pairs_err) ** 2
        g2_err = math.sqrt(max(var, 0.0))
        rho2 = max(0.0, 1.0 - bg_pairs / side_c)
        corrections.append(background_source)
    elif floor:
        # subtract the floor of each window (its own bin count) from its area
        f = {n: floor_per_bin * in_peak[n].sum() for n in [0, *sides]}
        sig_side = float(np.mean([areas[n] - f[n] for n in sides]))
        if sig_side <= 0:
            raise ValueError("the side peaks do not rise above the floor")
        g2 = (a0 - f[0]) / sig_side
        g2_err = math.sqrt(max(a0, 1) + g2 ** 2 * total_side / len(sides) ** 2) / sig_side
        corrections.append("floor")
    else:
        g2 = (g2_lc - (1.0 - rho2)) / rho2
        g2_err = g2_lc_err / rho2
        if rho is not None:
            corrections.append("rho")
        elif dark_counts_hz is not None:
            corrections.append("dark counts")
    if not trusted:
        g2 = g2_err = math.nan
    side_lags = centre + np.array(sides, dtype=float) * period
    return G2Result(float(g2), float(g2_err), float(g2_raw), float(g2_raw_err),
                    float(math.sqrt(rho2)), float(centre), a0, side_lags, side_areas,
                    floor_per_bin, float(period), fractions, a0_fit, a_fit,
                    "+".join(corrections) or "none", bg_pairs, bg_pairs_err, trusted, note)


@dataclass(frozen=True)
class CWG2:
    """Normalised g2(tau) under continuous excitation.

    Attributes
    ----------
    lags_s
        Lags (bin centres) in seconds.
    g2
        Pairs per bin over the number expected for uncorrelated photons.
    g2_err
        Poisson uncertainty per bin.
    rate_a_hz, rate_b_hz
        Mean count rates used for the normalisation.
    duration_s
        Duration used.
    """

    lags_s: np.ndarray
    g2: np.ndarray
    g2_err: np.ndarray
    rate_a_hz: float
    rate_b_hz: float
    duration_s: float


def cw_g2(correlation: Correlation | CrossCorrelation, duration_s: float | None = None) -> CWG2:
    """Normalised g2(tau) for continuous excitation.

    Uncorrelated photons at rates ``r_a``, ``r_b`` over a duration ``D`` give
    ``r_a r_b w (D - |tau|)`` pairs per bin of width ``w`` at lag tau (the overlap of the two
    records shrinks with the lag), so ``g2 = N(tau) / (n_a n_b w (D - |tau|) / D^2)``.

    Parameters
    ----------
    correlation
        The cross-correlation.
    duration_s
        Measurement duration; default the span of the stream.
    """
    c = _as_correlation(correlation)
    d = c.duration_s if duration_s is None else float(duration_s)
    if not d > 0 or c.n_a <= 0 or c.n_b <= 0:
        raise ValueError("cw g2 needs a positive duration and photons on both detectors")
    norm = c.n_a * c.n_b * c.bin_width_s * np.clip(d - np.abs(c.lags_s), 0.0, None) / d ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        g2 = np.where(norm > 0, c.counts / norm, np.nan)
        err = np.where(norm > 0, np.sqrt(c.counts) / norm, np.nan)
    return CWG2(c.lags_s.copy(), g2, err, c.n_a / d, c.n_b / d, d)


__all__ = ["pulsed_g2", "G2Result", "cw_g2", "CWG2", "find_peak_offset", "delay_difference",
           "peak_fractions", "solve_peak_areas", "DecayInput", "full_convolution"]


# --------------------------------------------------------------------------------------------
# The time gate (the one rule of spad's gated g2(0): see the module notes)
# --------------------------------------------------------------------------------------------

def pulse_delays(decay: Decay) -> dict[int, float]:
    """Delay of the excitation pulse after the sync, per detector: the decay's rising edge.

    The half-maximum point on the rise before the peak is robust to the long tail and to
    the IRF shape; it differs per detector by the cable delays.
    """
    out: dict[int, float] = {}
    for det, row in zip(decay.detectors, decay.counts, strict=True):
        if row.sum() == 0:
            continue
        k = int(np.argmax(row))
        half = row[k] / 2
        below = np.nonzero(row[:k + 1] < half)[0]
        j = int(below[-1]) + 1 if below.size else 0
        out[int(det)] = float(decay.bin_edges_s[j])
    return out


def gate_mask(photons: PhotonList, pulse_delay_s: Mapping[int, float], gate_s: float
              ) -> np.ndarray:
    """The photons that pass the time gate: those arriving at least ``gate_s`` after their own
    detector's excitation pulse.

    Parameters
    ----------
    photons
        The photons (delays after the sync in native units; T2 photons before the first sync
        have delay -1 and never pass).
    pulse_delay_s
        Each detector's pulse delay after the sync (:func:`pulse_delays`); photons of a
        detector not listed never pass.
    gate_s
        The gate, seconds (``spad analyze --gate-ns``).

    Returns
    -------
    Boolean mask over the photons.
    """
    return passes_gate(photons.delays * photons.delay_unit_s, photons.detectors, pulse_delay_s,
                       gate_s)


def passes_gate(delay_s: np.ndarray, detectors: np.ndarray, pulse_delay_s: Mapping[int, float],
                gate_s: float) -> np.ndarray:
    """The time gate itself, on photons given as their delays after the sync (seconds) and
    detectors: :func:`gate_mask` of a photon list, and of each window of a recording read
    again (:class:`spad.analysis.windowed.KeptPhotons`)."""
    if not (gate_s >= 0 and math.isfinite(gate_s)):
        raise ValueError(f"gate_s must be a non-negative number of seconds, not {gate_s!r}")
    keep = np.zeros(detectors.shape, dtype=bool)
    for det, t0 in pulse_delay_s.items():
        keep |= (detectors == det) & (delay_s >= t0 + gate_s)
    return keep
