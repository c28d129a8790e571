"""Spectrum frames from the EMCCD: bias and dark, cosmic rays, the particle's track, and the
EMCCD noise model (ADU to photoelectrons, variance against signal).

Part of the spectrum analysis (:mod:`spad.analysis.spectra` runs the whole chain). The noise model:
photoelectrons n ~ Poisson(QE·φ·t + dark·t + CIC), the EM register multiplies them with an
excess-noise factor F² → 2 at high gain, and the ADC adds bias and read noise (Robbins & Hadwen,
IEEE Trans. Electron Devices 50, 1227 (2003); Andor iXon hardware guide). See docs/methods.md,
"Spectra".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import njit

from spad.spectrum import SpectrumData

EXCESS_NOISE_FACTOR_SQ = 2.0
"""F² of an EM register at high gain: the variance of the output is twice that of Poisson."""

MIN_EM_GAIN_FOR_EXCESS = 2.0
"""Below this EM gain the register is treated as off (F² = 1)."""


# --------------------------------------------------------------------------------------------
# Bias and dark


def estimate_bias(frames: np.ndarray, dark_columns: Sequence[int] | slice | None = None,
                  dark_fraction: float = 0.1) -> float:
    """Bias (plus dark) level in ADU from the dark margin of the data.

    Parameters
    ----------
    frames
        ``(n_frames, [n_rows,] n_columns)`` raw ADU.
    dark_columns
        Columns that see no light (masked margin, or a region known to be empty). By default the
        ``dark_fraction`` of columns with the lowest median level, i.e. the darkest part of the
        spectrum, which then counts as zero signal.
    dark_fraction
        Share of columns used when ``dark_columns`` is not given.
    """
    frames = np.asarray(frames, dtype=float)
    if dark_columns is None:
        profile = np.median(frames.reshape(-1, frames.shape[-1]), axis=0)
        n = max(1, int(round(dark_fraction * profile.size)))
        dark_columns = np.argsort(profile)[:n]
    return float(np.median(frames[..., dark_columns]))


def subtract_bias(data: SpectrumData, bias_adu: float | None = None,
                  dark: np.ndarray | None = None,
                  dark_columns: Sequence[int] | slice | None = None) -> SpectrumData:
    """Remove the bias (or a dark frame) from the frames.

    Parameters
    ----------
    data
        Raw frames.
    bias_adu
        Bias to subtract; default ``data.bias_adu``, else :func:`estimate_bias`.
    dark
        A dark frame (shutter closed, same exposure, bias included), or a stack of them which is
        averaged; subtracted instead of the bias when given.
    dark_columns
        Passed to :func:`estimate_bias` when the bias is estimated.

    Returns
    -------
    SpectrumData
        A copy with frames as float ADU above bias and ``bias_adu = 0``.
    """
    frames = np.asarray(data.frames, dtype=float)
    if dark is not None:
        dark = np.asarray(dark, dtype=float)
        frame_shape = frames.shape[1:]
        if dark.shape != frame_shape:
            if dark.shape[1:] != frame_shape:
                raise ValueError(f"dark frame of shape {dark.shape} does not match frames of "
                                 f"shape {frame_shape}")
            dark = dark.mean(axis=0)
        out = frames - dark
        how: dict[str, Any] = {"dark_subtracted": True}
    else:
        if bias_adu is None:
            bias_adu = data.bias_adu
        if bias_adu is None:
            bias_adu = estimate_bias(frames, dark_columns)
        out = frames - bias_adu
        how = {"bias_subtracted_adu": float(bias_adu)}
    return dataclasses.replace(data, frames=out, bias_adu=0.0,
                               metadata={**data.metadata, **how})


# --------------------------------------------------------------------------------------------
# Cosmic rays


def remove_cosmic_rays(frames: np.ndarray, threshold: float = 8.0, window: int = 7,
                       min_frames: int = 3, min_relative: float = 0.5,
                       noise_slope: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Replace cosmic-ray hits by the value expected there.

    With ``min_frames`` or more frames, each pixel is compared to its median across frames; the
    deviation is then compared to the running median of the deviations along the spectrum, so a
    frame in which the whole emission line is brighter (a blinking particle) is left alone while
    a hit of a few pixels stands out. With fewer frames, each spectrum is compared to its own
    running median (cosmic rays are narrower than ``window`` pixels, emission lines are wider).
    A pixel is a hit when it exceeds the expectation by ``threshold`` robust standard deviations
    (noise ``σ² = a + b·level``, with the mean level, fitted to per-pixel MADs); its neighbours
    above half the threshold go with it. The mean level matters at low light: an EMCCD pixel that
    mostly reads zero has a tiny MAD, yet single photoelectrons come out as large exponential
    spikes, which the ``b·level`` term covers. The threshold is high for that same tail. A hit
    must also add ``min_relative`` of the expected value: a sharp line that wanders by a fraction
    of a pixel between frames changes its flanks by much more than the shot noise but by far less
    than a cosmic ray does.

    The across-frames method runs in two numba passes (statistics per pixel, then flags per
    frame); it is about 20 times faster than the same arithmetic with ``scipy.ndimage``, which
    matters for batches of kinetic series (750 frames of 16 × 512 pixels in ~0.1 s).

    Parameters
    ----------
    frames
        ``(n_frames, [n_rows,] n_columns)``, bias subtracted or not.
    threshold
        In robust standard deviations.
    window
        Running-median length along the spectrum (odd, wider than a hit).
    min_frames
        Fewest frames for the across-frames method.
    min_relative
        Smallest excess over the expected value, as a fraction of it, that counts as a hit.
    noise_slope
        Shot-noise variance per unit of signal in the frames' units (EMCCD ADU:
        ``F² · em_gain / preamp_gain_e_per_adu``). Estimated from the bright pixels when not
        given; that estimate runs low for a blinking particle (the spread across frames of a
        pixel then mixes ON and OFF), and single photoelectrons in the dim wings may be taken
        for hits, which costs little as they are replaced by their expected value.

    Returns
    -------
    cleaned, mask
        Frames with hits replaced, and the boolean mask of replaced pixels.
    """
    frames = np.asarray(frames, dtype=float)
    if frames.ndim == 1:
        frames = frames[np.newaxis]
    if window < 1:
        raise ValueError(f"window must be at least 1 pixel, got {window}")
    if frames.shape[0] >= min_frames:
        # One row per spectrum when the frames are 1-D spectra: the same neighbourhood
        # (along the spectrum only) as the 2-D case restricted to that row.
        cube = np.ascontiguousarray(frames.reshape(frames.shape[0], -1, frames.shape[-1]))
        med, local, sigma_pix, level = _frame_statistics(cube, window)
        a, b = _noise_coefficients(sigma_pix, level, noise_slope)
        cleaned, mask = _flag_hits(cube, med, local, sigma_pix, level, a, b, float(threshold),
                                   float(min_relative))
        return cleaned.reshape(frames.shape), mask.reshape(frames.shape)
    size = (1,) * (frames.ndim - 1) + (window,)
    from scipy import ndimage  # imported at first use: photon-only commands never need it

    expected = ndimage.median_filter(frames, size=size, mode="nearest")
    resid = frames - expected
    wide = size[:-1] + (31,)
    sigma_pix = 1.4826 * ndimage.median_filter(np.abs(resid), size=wide, mode="nearest")
    level = ndimage.uniform_filter(frames, size=wide, mode="nearest")
    sigma = _noise_floor(sigma_pix, level, expected, noise_slope)
    hits = (resid > threshold * sigma) & (resid > min_relative * np.abs(expected))
    # Grow each hit along the spectrum (and rows) to the partially hit neighbours.
    near = ndimage.binary_dilation(hits, structure=_neighbours(frames.ndim))
    mask = hits | (near & (resid > 0.5 * threshold * sigma))
    cleaned = np.where(mask, expected, frames)
    return cleaned, mask


@njit(cache=True)
def _select(a: np.ndarray, k: int) -> float:
    """k-th smallest of ``a`` (reordered in place: smaller values end up left of ``k``).

    Quickselect with a median-of-three pivot and a three-way partition, because camera pixels
    repeat the same integer ADU values many times (a two-way partition degrades to O(n²)).
    """
    lo, hi = 0, a.size - 1
    while hi > lo:
        mid = (lo + hi) // 2
        x, y, z = a[lo], a[mid], a[hi]
        pivot = max(min(x, y), min(max(x, y), z))
        # a[lo:lt] < pivot, a[lt:i] == pivot, a[gt+1:hi+1] > pivot.
        lt, i, gt = lo, lo, hi
        while i <= gt:
            v = a[i]
            if v < pivot:
                a[lt], a[i] = v, a[lt]
                lt += 1
                i += 1
            elif v > pivot:
                a[gt], a[i] = v, a[gt]
                gt -= 1
            else:
                i += 1
        if k < lt:
            hi = lt - 1
        elif k > gt:
            lo = gt + 1
        else:
            return pivot
    return a[k]


@njit(cache=True, inline="always")
def _max_left_of(a: np.ndarray, k: int) -> float:
    """Largest of ``a[:k]``: after selecting rank ``k`` those are the values <= ``a[k]``, so
    this is the lower middle of an even-sized median."""
    lower = a[0]
    for i in range(1, k):
        if a[i] > lower:
            lower = a[i]
    return lower


@njit(cache=True)
def _median_inplace(a: np.ndarray) -> float:
    """Median as ``np.median`` gives it (mean of the middle two for an even count)."""
    n = a.size
    k = n // 2
    upper = _select(a, k)
    return upper if n % 2 else (_max_left_of(a, k) + upper) / 2


_SAMPLE = 128
_BRACKET = 16
"""Sample size of :func:`_median_sampled` and its bracket in sample ranks either side of the
middle (~2.8 σ of the median's rank in the sample, so the bracket misses ~0.5 % of the time)."""


@njit(cache=True)
def _median_sampled(a: np.ndarray, buf: np.ndarray, sample: np.ndarray) -> float:
    """Median as ``np.median`` gives it, exactly, in about one pass over ``a``.

    Two order statistics of a sample of ``a`` (every ``n // _SAMPLE``-th value) bracket the
    median, ``lo <= hi``; one branch-free pass counts the values below ``lo`` and copies those
    in ``[lo, hi]`` (about a fifth) into ``buf``. When the middle rank(s) fall among the copied
    values (nearly always), only those are selected; otherwise the whole of ``a`` is (and ``a``
    is reordered). About three times faster than quickselect over all values, whose partitions
    mispredict a branch on nearly every value. ``buf`` and ``sample`` are scratch space of at
    least ``a.size`` and ``_SAMPLE`` values.
    """
    n = a.size
    if n < 4 * _SAMPLE:
        return _median_inplace(a)
    step = n // _SAMPLE
    for j in range(_SAMPLE):
        sample[j] = a[j * step]
    mid = _SAMPLE // 2
    hi = _select(sample, mid + _BRACKET)
    # Everything left of mid + _BRACKET is now <= hi.
    lo = _select(sample[:mid + _BRACKET], mid - _BRACKET)
    below = 0
    m = 0
    for i in range(n):
        v = a[i]
        below += v < lo
        buf[m] = v
        m += (v >= lo) & (v <= hi)
    k_hi = n // 2
    k_lo = k_hi if n % 2 else k_hi - 1
    if below > k_lo or below + m <= k_hi:
        return _median_inplace(a)  # the bracket missed: select over everything
    part = buf[:m]
    k = k_hi - below
    upper = _select(part, k)
    # k >= 1 here when n is even (below <= k_hi - 1)
    return upper if n % 2 else (_max_left_of(part, k) + upper) / 2


@njit(cache=True)
def _transpose_into(src: np.ndarray, dst: np.ndarray) -> None:
    """``dst[p, f] = src[f, p]`` in blocks of pixels, so that reads and writes stay cached."""
    n, n_pix = src.shape
    block = 64
    for p0 in range(0, n_pix, block):
        p1 = min(p0 + block, n_pix)
        for f in range(n):
            for p in range(p0, p1):
                dst[p, f] = src[f, p]


@njit(cache=True)
def _running_median7(x: np.ndarray, out: np.ndarray) -> None:
    """:func:`_running_median` for the default window of 7 with a branch-free selection
    network (13 compare-exchanges, N. Devillard's opt_med7), several times faster than the
    sorted window on noisy data where every insertion mispredicts."""
    n = x.size
    for c in range(n):
        p0 = x[min(max(c - 3, 0), n - 1)]
        p1 = x[min(max(c - 2, 0), n - 1)]
        p2 = x[max(c - 1, 0)]
        p3 = x[c]
        p4 = x[min(c + 1, n - 1)]
        p5 = x[min(c + 2, n - 1)]
        p6 = x[min(c + 3, n - 1)]
        p0, p5 = min(p0, p5), max(p0, p5)
        p0, p3 = min(p0, p3), max(p0, p3)
        p1, p6 = min(p1, p6), max(p1, p6)
        p2, p4 = min(p2, p4), max(p2, p4)
        p0, p1 = min(p0, p1), max(p0, p1)
        p3, p5 = min(p3, p5), max(p3, p5)
        p2, p6 = min(p2, p6), max(p2, p6)
        p2, p3 = min(p2, p3), max(p2, p3)
        p3, p6 = min(p3, p6), max(p3, p6)
        p4, p5 = min(p4, p5), max(p4, p5)
        p1, p4 = min(p1, p4), max(p1, p4)
        p3 = max(p1, p3)
        out[c] = min(p3, p4)


@njit(cache=True)
def _running_median(x: np.ndarray, window: int, out: np.ndarray, win: np.ndarray) -> None:
    """``scipy.ndimage.median_filter(x, size=window, mode="nearest")`` for one row: window
    ``[c - window//2, c + window - 1 - window//2]`` clamped to the row, value of rank
    ``window//2``. A sorted window is updated by one removal and one insertion per step."""
    n = x.size
    left = window // 2
    if window == 7:
        _running_median7(x, out)
        return
    for k in range(window):
        v = x[min(max(k - left, 0), n - 1)]
        i = k
        while i > 0 and win[i - 1] > v:
            win[i] = win[i - 1]
            i -= 1
        win[i] = v
    out[0] = win[left]
    for c in range(1, n):
        old = x[min(max(c - 1 - left, 0), n - 1)]
        new = x[min(max(c - left + window - 1, 0), n - 1)]
        if old == new:
            out[c] = win[left]
            continue
        i = 0
        while win[i] != old:
            i += 1
        # Drop the outgoing value, then slide the incoming one into place.
        while i < window - 1 and win[i + 1] < new:
            win[i] = win[i + 1]
            i += 1
        while i > 0 and win[i - 1] > new:
            win[i] = win[i - 1]
            i -= 1
        win[i] = new
        out[c] = win[left]


@njit(cache=True)
def _frame_statistics(frames: np.ndarray, window: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel: median across frames, the running median along columns of each frame's
    deviation from it (``local``, per frame, see :func:`_running_median`), the robust σ of what
    is left, and the mean level without the pixel's largest value (a hit must not raise its own
    level)."""
    n, n_rows, n_cols = frames.shape
    n_pix = n_rows * n_cols
    flat = frames.reshape(n, n_pix)
    by_pixel = np.empty((n_pix, n))
    _transpose_into(flat, by_pixel)
    med = np.empty(n_pix)
    level = np.empty(n_pix)
    buf = np.empty(n)
    sample = np.empty(_SAMPLE)
    for p in range(n_pix):
        row = by_pixel[p]
        total = 0.0
        top = -np.inf
        for f in range(n):
            v = row[f]
            total += v
            if v > top:
                top = v
        level[p] = (total - top) / (n - 1) if n > 1 else total
        med[p] = _median_sampled(row, buf, sample)
    local = np.empty_like(frames)
    win = np.empty(window)
    dev = np.empty(n_cols)
    for f in range(n):
        for r in range(n_rows):
            for c in range(n_cols):
                dev[c] = frames[f, r, c] - med[r * n_cols + c]
            _running_median(dev, window, local[f, r], win)
    resid = np.empty((n, n_pix))
    local_flat = local.reshape(n, n_pix)
    for f in range(n):
        for p in range(n_pix):
            resid[f, p] = abs(flat[f, p] - med[p] - local_flat[f, p])
    _transpose_into(resid, by_pixel)
    sigma_pix = np.empty(n_pix)
    for p in range(n_pix):
        sigma_pix[p] = 1.4826 * _median_sampled(by_pixel[p], buf, sample)
    shape = (n_rows, n_cols)
    return med.reshape(shape), local, sigma_pix.reshape(shape), level.reshape(shape)


@njit(cache=True)
def _flag_hits(frames: np.ndarray, med: np.ndarray, local: np.ndarray, sigma_pix: np.ndarray,
               level: np.ndarray, a: float, b: float, threshold: float, min_relative: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Hits above ``threshold`` σ (σ from :func:`_noise_floor`'s model), grown to the
    neighbours in the same frame (rows and columns) above half the threshold; the flagged
    pixels replaced by their expected value. Same arithmetic as the few-frames path."""
    n, n_rows, n_cols = frames.shape
    hits = np.zeros(frames.shape, dtype=np.bool_)
    cand = np.zeros(frames.shape, dtype=np.bool_)
    a = max(a, 1e-12)
    any_cand = False
    for f in range(n):
        for r in range(n_rows):
            for c in range(n_cols):
                e = med[r, c] + local[f, r, c]
                resid = frames[f, r, c] - e
                sig = math.sqrt(a + b * max(max(level[r, c], e), 0.0))
                sig = max(sig, sigma_pix[r, c])
                if resid > 0.5 * threshold * sig:
                    cand[f, r, c] = True
                    any_cand = True
                    if resid > threshold * sig and resid > min_relative * abs(e):
                        hits[f, r, c] = True
    cleaned = frames.copy()
    mask = hits.copy()
    if not any_cand:
        return cleaned, mask
    # The neighbour check only where a pixel is above half the threshold (rare).
    for f in range(n):
        for r in range(n_rows):
            for c in range(n_cols):
                if cand[f, r, c] and not hits[f, r, c]:
                    if ((c > 0 and hits[f, r, c - 1]) or (c < n_cols - 1 and hits[f, r, c + 1])
                            or (r > 0 and hits[f, r - 1, c])
                            or (r < n_rows - 1 and hits[f, r + 1, c])):
                        mask[f, r, c] = True
                if mask[f, r, c]:
                    # Recomputed rather than stored: a frame-sized array for a few pixels.
                    cleaned[f, r, c] = med[r, c] + local[f, r, c]
    return cleaned, mask


def _neighbours(ndim: int) -> np.ndarray:
    # Cross-shaped along rows and columns only: a hit never grows into other frames.
    s = np.zeros((3,) * ndim, dtype=bool)
    s[(1,) * ndim] = True
    for ax in range(1, ndim):
        for d in (0, 2):
            idx = [1] * ndim
            idx[ax] = d
            s[tuple(idx)] = True
    return s


def _noise_coefficients(sigma_pix: np.ndarray, level: np.ndarray, slope: float | None = None
                        ) -> tuple[float, float]:
    """``a, b`` of the noise model ``σ² = a + b·level`` fitted to per-pixel MADs: ``a`` from
    the dimmest third of the pixels, ``b`` (unless given) from the brightest tenth."""
    var = np.broadcast_to(sigma_pix, level.shape).ravel() ** 2
    lev = level.ravel()
    order = np.argsort(lev)
    n = max(1, lev.size // 3)
    a = float(np.median(var[order[:n]]))
    bright = order[-max(1, lev.size // 10):]
    lb = float(np.median(lev[bright]))
    if slope is not None:
        b = float(slope)
    else:
        b = max((float(np.median(var[bright])) - a) / lb, 0.0) if lb > 0 else 0.0
    return a, b


def _noise_floor(sigma_pix: np.ndarray, level: np.ndarray, expected: np.ndarray,
                 slope: float | None = None) -> np.ndarray:
    """σ per pixel and frame: the larger of the pixel's own robust estimate and the model
    ``a + b·expected``, with ``a, b`` fitted to the per-pixel MADs against their mean level.

    Few frames make per-pixel MADs small by chance; the model fitted over all pixels stops a
    clean pixel with an unluckily tight spread from being flagged. Evaluating the model at the
    value expected in *this* frame keeps the shot noise of a bright frame (a particle that is ON
    in a few frames only) from looking like a hit.
    """
    a, b = _noise_coefficients(sigma_pix, level, slope)
    # The median-based expectation is ~0 where most frames read no photoelectron, the mean is
    # too low in a bright frame: the larger of the two bounds the shot noise from below.
    model = np.sqrt(max(a, 1e-12) + b * np.clip(np.maximum(level, expected), 0, None))
    return np.maximum(sigma_pix, model)


# --------------------------------------------------------------------------------------------
# Track and background rows


def locate_track(frames: np.ndarray, gap: int = 2, rel_threshold: float = 0.1
                 ) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """Find the particle's rows and background rows on either side.

    The row profile (summed over frames and columns, background level removed) is followed from
    its brightest row outwards while it stays above ``rel_threshold`` of the peak and three robust
    standard deviations of the profile's noise.

    Parameters
    ----------
    frames
        ``(n_frames, n_rows, n_columns)``.
    gap
        Rows left out between the track and each background band.
    rel_threshold
        Fraction of the peak row's signal that still counts as track.

    Returns
    -------
    signal_rows, background_rows
        ``(start, stop)`` of the track and a list of up to two ``(start, stop)`` bands as high as
        the track (at least 3 rows), clipped to the frame.
    """
    frames = np.asarray(frames, dtype=float)
    if frames.ndim != 3:
        raise ValueError(f"locate_track needs (n_frames, n_rows, n_columns), got {frames.shape}")
    profile = frames.sum(axis=(0, 2))
    base = np.median(profile)
    p = profile - base
    noise = 1.4826 * np.median(np.abs(p - np.median(p)))
    peak = int(np.argmax(p))
    cut = max(rel_threshold * p[peak], 3 * noise)
    start, stop = peak, peak + 1
    while start > 0 and p[start - 1] > cut:
        start -= 1
    while stop < p.size and p[stop] > cut:
        stop += 1
    height = max(stop - start, 3)
    bands = []
    lo = (max(0, start - gap - height), max(0, start - gap))
    hi = (min(p.size, stop + gap), min(p.size, stop + gap + height))
    for band in (lo, hi):
        if band[1] > band[0]:
            bands.append(band)
    return (start, stop), bands


def extract_track(frames: np.ndarray, signal_rows: tuple[int, int],
                  background_rows: tuple[int, int] | Sequence[tuple[int, int]] | None
                  ) -> np.ndarray:
    """Sum the track rows and subtract the background rows scaled to the same number of rows.

    Returns
    -------
    ``(n_frames, n_columns)`` spectra.
    """
    frames = np.asarray(frames, dtype=float)
    s0, s1 = signal_rows
    if not 0 <= s0 < s1 <= frames.shape[1]:
        raise ValueError(f"signal rows {signal_rows} outside 0..{frames.shape[1]}")
    spec = frames[:, s0:s1, :].sum(axis=1)
    if background_rows:
        bands = [background_rows] if isinstance(background_rows[0], int | np.integer) \
            else list(background_rows)
        rows = np.concatenate([np.arange(b0, b1) for b0, b1 in bands])  # type: ignore[misc]
        if rows.size:
            spec = spec - (s1 - s0) * frames[:, rows, :].mean(axis=1)
    return spec



# --------------------------------------------------------------------------------------------
# Photoelectrons and noise


def to_photoelectrons(counts_adu: np.ndarray, em_gain: float,
                      preamp_gain_e_per_adu: float) -> np.ndarray:
    """Bias-subtracted ADU to photoelectrons (charge before the EM register).

    ``electrons = ADU · preamp / gain``; the mean is exact, the spread keeps the EM excess noise.
    """
    if em_gain <= 0 or preamp_gain_e_per_adu <= 0:
        raise ValueError("em_gain and preamp_gain_e_per_adu must be positive")
    return np.asarray(counts_adu, dtype=float) * (preamp_gain_e_per_adu / em_gain)


def excess_noise_sq(em_gain: float) -> float:
    """F² for an EM gain: 2 with the register on (high gain), 1 without."""
    return EXCESS_NOISE_FACTOR_SQ if em_gain >= MIN_EM_GAIN_FOR_EXCESS else 1.0


def estimate_noise(counts: np.ndarray, slope: float | None = None, smooth: int = 9
                   ) -> tuple[float, float]:
    """Noise model ``var = slope · level + floor`` of a spectrum, from its own scatter.

    The scatter is measured with second differences (blind to smooth signal, var = 6 σ²) and
    robust MADs: the floor in the dimmest third of the columns, the slope (when not given, e.g.
    ADU of unknown gain) in the brightest tenth. In photoelectrons of an EMCCD the slope is F² = 2
    and should be given.

    Returns
    -------
    slope, floor
    """
    y = np.asarray(counts, dtype=float)
    from scipy import ndimage  # imported at first use: photon-only commands never need it

    level = ndimage.median_filter(y, size=smooth, mode="nearest")
    d2 = np.zeros_like(y)
    d2[1:-1] = y[:-2] - 2 * y[1:-1] + y[2:]
    d2[0], d2[-1] = d2[1], d2[-2]
    order = np.argsort(level)
    dim = order[: max(3, y.size // 3)]
    var_dim = (1.4826 * np.median(np.abs(d2[dim]))) ** 2 / 6
    lev_dim = float(np.mean(np.clip(level[dim], 0, None)))
    if slope is None:
        bright = order[-max(3, y.size // 10):]
        var_b = (1.4826 * np.median(np.abs(d2[bright]))) ** 2 / 6
        lev_b = float(np.mean(np.clip(level[bright], 0, None)))
        slope = max((var_b - var_dim) / (lev_b - lev_dim), 0.0) if lev_b > lev_dim else 0.0
    floor = max(var_dim - slope * lev_dim, 1e-6 * max(var_dim, 1e-12))
    return float(slope), float(floor)
