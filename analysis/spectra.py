"""Single-particle emission spectra: from camera frames to a fitted peak energy and width.

Pure functions on :class:`spad.spectrum.SpectrumData` and arrays (DOMAIN.md §3 "Spectra", §4
EMCCD noise):

1. bias/dark subtraction (:func:`subtract_bias`, :func:`estimate_bias`);
2. cosmic-ray removal (:func:`remove_cosmic_rays`), across repeated frames or along one spectrum;
3. track summation with background rows (:func:`locate_track`, :func:`extract_track`);
4. wavelength calibration from the grating equation (:func:`grating_calibration`) or a polynomial
   through lamp lines (:func:`find_lamp_lines`, :func:`fit_wavelength_polynomial`,
   :func:`polynomial_calibration`);
5. ADU to photoelectrons (:func:`to_photoelectrons`) and the EMCCD noise model
   (:func:`estimate_noise`: variance ≈ F²·signal + floor, F² = 2 at high EM gain);
6. Gaussian / Lorentzian / Voigt fits in energy with a one- vs two-peak comparison
   (:func:`fit_spectrum`), and the whole chain in :func:`analyze_spectrum`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import lmfit
import numpy as np
from numba import njit
from scipy import ndimage, signal, special, stats

from spad.errors import FormatError
from spad.optics import HC_EV_M, Spectrograph, wavelength_to_energy
from spad.spectrum import SpectrumData

EXCESS_NOISE_FACTOR_SQ = 2.0
"""F² of an EM register at high gain: the variance of the output is twice that of Poisson."""

MIN_EM_GAIN_FOR_EXCESS = 2.0
"""Below this EM gain the register is treated as off (F² = 1)."""

HG_AR_LINES_AIR_NM: dict[str, float] = {
    "Hg 404.656": 404.656, "Hg 435.833": 435.833, "Hg 546.074": 546.074,
    "Hg 576.960": 576.960, "Hg 579.066": 579.066, "Ar 696.543": 696.543,
    "Ar 706.722": 706.722, "Ar 727.294": 727.294, "Ar 738.398": 738.398,
    "Ar 750.387": 750.387, "Ar 763.511": 763.511, "Ar 772.376": 772.376,
    "Ar 794.818": 794.818, "Ar 800.616": 800.616, "Ar 811.531": 811.531,
    "Ar 826.452": 826.452, "Ar 842.465": 842.465, "Ar 852.144": 852.144,
    "Ar 912.297": 912.297,
}
"""Strong Hg/Ar calibration-lamp lines, wavelengths in standard air (NIST ASD), nm.

Convert with :func:`air_to_vacuum` before calibrating: the data model holds vacuum wavelengths
(the difference, ~0.15 nm at 546 nm, is 0.6 meV)."""

PEAK_MODELS = ("gaussian", "lorentzian", "voigt")

# lmfit.lineshapes' constants, so that the hand-written peaks evaluate as lmfit's do.
_TINY = 1.0e-15
_S2 = math.sqrt(2.0)
_S2PI = math.sqrt(2.0 * math.pi)


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
# Wavelength calibration


def air_to_vacuum(wavelength_air_m: np.ndarray | float) -> np.ndarray | float:
    """Vacuum wavelength for a wavelength in standard air (Edlén 1966 dispersion of air)."""
    lam = np.asarray(wavelength_air_m, dtype=float)
    s2 = (1e-6 / lam) ** 2  # (1/λ in µm⁻¹)²
    n = 1 + 8.34213e-5 + 2.406030e-2 / (130 - s2) + 1.5997e-4 / (38.9 - s2)
    return lam * n


def grating_calibration(data: SpectrumData, spectrograph: Spectrograph,
                        centre_wavelength_m: float, pixel_size_m: float,
                        centre_pixel: float | None = None) -> SpectrumData:
    """Wavelengths from the grating equation for the spectrograph's set centre wavelength.

    Returns a copy of ``data`` with ``wavelength_m`` and the settings in ``calibration``.
    """
    wl = spectrograph.wavelengths(centre_wavelength_m, data.n_columns, pixel_size_m,
                                  centre_pixel)
    cal = {"method": "grating", **spectrograph.to_dict(),
           "centre_wavelength_m": float(centre_wavelength_m),
           "pixel_size_m": float(pixel_size_m),
           "centre_pixel": None if centre_pixel is None else float(centre_pixel)}
    return dataclasses.replace(data, wavelength_m=wl, calibration=cal)


def find_lamp_lines(intensity: np.ndarray, min_snr: float = 10.0, half_width: int = 4,
                    max_lines: int | None = None) -> np.ndarray:
    """Sub-pixel centres of the emission lines of a lamp spectrum.

    Peaks more prominent than ``min_snr`` times the robust noise (MAD of the second difference)
    are refined by a least-squares Gaussian plus constant over ``±half_width`` pixels.

    Parameters
    ----------
    intensity
        One spectrum (counts per column).
    min_snr
        Prominence threshold in noise standard deviations.
    half_width
        Half window of the refinement fit in pixels (a few times the line σ).
    max_lines
        Keep only the most prominent lines.

    Returns
    -------
    Line centres in 0-based column units, increasing.
    """
    y = np.asarray(intensity, dtype=float)
    noise = 1.4826 * np.median(np.abs(np.diff(y, 2))) / math.sqrt(6) + 1e-12
    peaks, props = signal.find_peaks(y, prominence=min_snr * noise, distance=2)
    if max_lines is not None and peaks.size > max_lines:
        keep = np.argsort(props["prominences"])[::-1][:max_lines]
        peaks = np.sort(peaks[keep])
    centres = []
    for k, p in enumerate(peaks):
        # Keep the refinement window off the neighbouring lines.
        gap = min(p - peaks[k - 1] if k > 0 else y.size, peaks[k + 1] - p
                  if k + 1 < peaks.size else y.size)
        hw = int(max(2, min(half_width, gap // 2)))
        lo, hi = max(0, p - hw), min(y.size, p + hw + 1)
        centres.append(_refine_centre(np.arange(lo, hi, dtype=float), y[lo:hi], float(p)))
    return np.array(centres, dtype=float)


def _refine_centre(x: np.ndarray, y: np.ndarray, guess: float) -> float:
    """Gaussian-plus-constant centre, or the centroid if the fit fails or wanders off."""
    from scipy.optimize import curve_fit

    def g(x: np.ndarray, a: float, c: float, s: float, b: float) -> np.ndarray:
        return a * np.exp(-0.5 * ((x - c) / s) ** 2) + b

    b0 = float(np.min(y))
    try:
        popt, _ = curve_fit(g, x, y, p0=[float(np.max(y)) - b0, guess, 1.0, b0], maxfev=2000)
        if x[0] <= popt[1] <= x[-1] and popt[0] > 0:
            return float(popt[1])
    except (RuntimeError, ValueError):
        pass
    w = np.clip(y - b0, 0, None)
    return float(np.sum(w * x) / np.sum(w)) if np.sum(w) > 0 else guess


def fit_wavelength_polynomial(pixels: Sequence[float], wavelengths_m: Sequence[float],
                              degree: int = 2) -> tuple[np.ndarray, float]:
    """Least-squares polynomial λ(column) through known lines.

    Parameters
    ----------
    pixels
        Line centres in 0-based column units (e.g. from :func:`find_lamp_lines`).
    wavelengths_m
        Their vacuum wavelengths in metres.
    degree
        Polynomial degree; needs at least ``degree + 1`` lines (``degree + 2`` to see residuals).

    Returns
    -------
    coefficients_m, rms_m
        Coefficients, highest power first (``np.polyval`` order), and the rms residual.
    """
    x = np.asarray(pixels, dtype=float)
    lam = np.asarray(wavelengths_m, dtype=float)
    if x.shape != lam.shape or x.ndim != 1:
        raise ValueError("pixels and wavelengths_m must be 1-D of equal length")
    if x.size < degree + 1:
        raise ValueError(f"a degree-{degree} polynomial needs at least {degree + 1} lines, "
                         f"got {x.size}")
    if np.nanmax(lam) > 1e-4:
        raise ValueError("wavelengths_m must be in metres (nanometres given?)")
    coeffs = np.polyfit(x, lam, degree)
    rms = float(np.sqrt(np.mean((np.polyval(coeffs, x) - lam) ** 2)))
    return coeffs, rms


def polynomial_calibration(data: SpectrumData, pixels: Sequence[float],
                           wavelengths_m: Sequence[float], degree: int = 2) -> SpectrumData:
    """Calibrate ``data`` with a polynomial through lamp lines (see
    :func:`fit_wavelength_polynomial`); the fit is kept in ``calibration``."""
    coeffs, rms = fit_wavelength_polynomial(pixels, wavelengths_m, degree)
    wl = np.polyval(coeffs, np.arange(data.n_columns, dtype=float))
    cal = {"method": "polynomial", "coefficients_m": coeffs.tolist(), "rms_m": rms,
           "line_pixels": [float(p) for p in pixels],
           "line_wavelengths_m": [float(w) for w in wavelengths_m]}
    return dataclasses.replace(data, wavelength_m=wl, calibration=cal)


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


# --------------------------------------------------------------------------------------------
# Reduction: frames to one spectrum


@dataclass
class ReducedSpectrum:
    """One spectrum ready to fit: counts per column summed over all frames."""

    wavelength_m: np.ndarray
    counts: np.ndarray
    variance: np.ndarray
    unit: str  # "e" (photoelectrons) or "adu"
    n_frames: int
    noise_slope: float
    noise_floor: float
    signal_rows: tuple[int, int] | None = None
    background_rows: list[tuple[int, int]] | None = None
    cosmic_pixels: int = 0


def reduce_spectrum(data: SpectrumData, cosmic_threshold: float = 8.0,
                    bias_adu: float | None = None, dark: np.ndarray | None = None
                    ) -> ReducedSpectrum:
    """Bias, cosmic rays, track, sum over frames, photoelectrons, noise model.

    Parameters
    ----------
    data
        Frames with a wavelength calibration.
    cosmic_threshold
        See :func:`remove_cosmic_rays`; ``None`` or 0 to skip.
    bias_adu, dark
        See :func:`subtract_bias`.
    """
    if data.wavelength_m is None:
        raise FormatError(data.source or None,
                          "spectrum has no wavelength calibration; calibrate it first")
    d = subtract_bias(data, bias_adu=bias_adu, dark=dark)
    frames = d.frames
    n_cosmic = 0
    if cosmic_threshold:
        slope_adu = None
        if data.preamp_gain_e_per_adu is not None:
            slope_adu = excess_noise_sq(data.em_gain) * data.em_gain / data.preamp_gain_e_per_adu
        frames, mask = remove_cosmic_rays(frames, threshold=cosmic_threshold,
                                          noise_slope=slope_adu)
        n_cosmic = int(mask.sum())
    signal_rows = background = None
    if frames.ndim == 3:
        if data.signal_rows is not None:
            signal_rows = data.signal_rows
            background = [data.background_rows] if data.background_rows is not None else []
        else:
            signal_rows, background = locate_track(frames)
        frames = extract_track(frames, signal_rows, background)
    counts = frames.sum(axis=0)
    if data.preamp_gain_e_per_adu is not None:
        counts = to_photoelectrons(counts, data.em_gain, data.preamp_gain_e_per_adu)
        unit = "e"
        # The noise of subtracted background rows is constant along the spectrum, so it
        # ends up in the estimated floor; the slope is that of the signal alone.
        slope: float | None = excess_noise_sq(data.em_gain)
    else:
        unit = "adu"
        slope = None
    slope, floor = estimate_noise(counts, slope)
    level = ndimage.median_filter(counts, size=9, mode="nearest")
    variance = slope * np.clip(level, 0, None) + floor
    return ReducedSpectrum(wavelength_m=np.asarray(d.wavelength_m, dtype=float), counts=counts,
                           variance=variance, unit=unit, n_frames=data.n_frames,
                           noise_slope=slope, noise_floor=floor, signal_rows=signal_rows,
                           background_rows=background, cosmic_pixels=n_cosmic)


# --------------------------------------------------------------------------------------------
# Peak fit


@dataclass
class SpectrumResult:
    """Fitted emission peak(s) of one spectrum.

    ``peak_*`` and ``fwhm_mev`` describe the brightest peak of the selected model (``n_peaks``
    is 2 only when the comparison supports a second peak); ``peaks`` lists every peak of it;
    ``comparison`` holds the one- vs two-peak statistics. Arrays are for plotting: energy (eV,
    increasing), intensity (per eV, in ``unit`` per eV), the fitted model and its 1σ noise.
    """

    peak_ev: float
    peak_nm: float
    fwhm_mev: float
    errors: dict[str, float | None]
    model: str
    n_peaks: int
    redchi: float
    peaks: list[dict[str, Any]]
    comparison: dict[str, Any]
    energy: np.ndarray
    intensity: np.ndarray
    fit: np.ndarray
    sigma: np.ndarray
    unit: str = "adu"
    source: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def peak_ev_err(self) -> float | None:
        """Standard error of ``peak_ev`` (eV), ``None`` if the fit gave none."""
        return self.errors.get("peak_ev")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (arrays as lists, NaN as None)."""
        return _jsonable(dataclasses.asdict(self))


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _background_density(x: np.ndarray, per_ev: np.ndarray, c: float = 0.0,
                        slope: float = 0.0) -> np.ndarray:
    """Background that is constant/linear *per column*, as a density per eV.

    Stray light and autofluorescence are smooth per camera column; per eV they follow the
    Jacobian (columns per eV, ``per_ev``, normalised to 1 at the window centre), which curves a
    flat background by ~30 % across a 300 meV window. A straight line in eV cannot follow that
    under a dominant background (full vertical binning) and would bend the peak.
    """
    return (c + slope * (x - x.mean())) * per_ev


def _amplitude_for(kind: str, height: float, sigma: float) -> float:
    """lmfit's 'amplitude' is the area; convert a height for a given sigma."""
    if kind == "lorentzian":
        return height * math.pi * sigma
    return height * sigma * math.sqrt(2 * math.pi)


class _PeakFit:
    """Weighted least squares of ``n_peaks`` peaks of one shape plus background, in energy.

    The model and its Jacobian are plain numpy on the fit window (no ``lmfit.Model``: its
    composite-model bookkeeping per call cost ~10 times the arithmetic); lmfit's ``Minimizer``
    keeps the bounds, the Levenberg-Marquardt iteration and the covariance. Parameter names,
    order and line shapes are those of lmfit's ``GaussianModel``/``LorentzianModel``/
    ``VoigtModel`` with prefixes ``p1_``, ``p2_`` plus ``bg_c``, ``bg_slope``
    (:func:`_background_density`), so results read the same as before.
    """

    def __init__(self, kind: str, n_peaks: int, background: str, x: np.ndarray,
                 per_ev: np.ndarray, y: np.ndarray) -> None:
        if kind not in PEAK_MODELS:
            raise ValueError(f"unknown peak model {kind!r}; choose from {PEAK_MODELS}")
        if background not in ("constant", "linear"):
            raise ValueError(f"background must be 'constant' or 'linear', not {background!r}")
        self.kind, self.n_peaks, self.background = kind, n_peaks, background
        self.x, self.per_ev, self.y = x, per_ev, y
        self.bg_slope_col = (x - x.mean()) * per_ev

    def params(self, bg: float, peaks: Sequence[tuple[float, float, float]]
               ) -> lmfit.Parameters:
        """Start values and bounds; ``peaks`` are (centre, sigma, height)."""
        x = self.x
        dx = float(np.median(np.diff(x)))
        span = float(x[-1] - x[0])
        p = lmfit.Parameters()
        p.add("bg_c", value=bg)
        p.add("bg_slope", value=0.0, vary=self.background == "linear")
        for i, (c, s, h) in enumerate(peaks):
            pre = f"p{i + 1}_"
            s = float(np.clip(s, dx, span / 2))
            p.add(pre + "amplitude", value=max(_amplitude_for(self.kind, h, s), 1e-12), min=0)
            p.add(pre + "center", value=float(np.clip(c, x[0], x[-1])), min=x[0], max=x[-1])
            p.add(pre + "sigma", value=s, min=dx / 4, max=span)
        if self.kind == "voigt":
            for i in range(len(peaks)):
                pre = f"p{i + 1}_"
                p.add(pre + "gamma", value=p[pre + "sigma"].value / 2, min=0, max=span)
        return p

    def _values(self, params: lmfit.Parameters) -> list[tuple[float, ...]]:
        vals = []
        for i in range(1, self.n_peaks + 1):
            pre = f"p{i}_"
            g = params[pre + "gamma"].value if self.kind == "voigt" else 0.0
            vals.append((params[pre + "amplitude"].value, params[pre + "center"].value,
                         params[pre + "sigma"].value, g))
        return vals

    def component(self, a: float, c: float, s: float, g: float) -> np.ndarray:
        """One peak, as lmfit's line shapes compute it."""
        x = self.x
        if self.kind == "gaussian":
            return (a / max(_TINY, _S2PI * s)) * np.exp(-(x - c) ** 2 / max(_TINY, 2 * s * s))
        if self.kind == "lorentzian":
            return (a / (1 + ((x - c) / max(_TINY, s)) ** 2)) / max(_TINY, math.pi * s)
        z = (x - c + 1j * g) / max(_TINY, s * _S2)
        return a * special.wofz(z).real / max(_TINY, s * _S2PI)

    def evaluate(self, params: lmfit.Parameters) -> np.ndarray:
        """Model density per eV at the fit window's energies."""
        out = (params["bg_c"].value * self.per_ev
               + params["bg_slope"].value * self.bg_slope_col)
        for v in self._values(params):
            out = out + self.component(*v)
        return out

    def residual(self, params: lmfit.Parameters, weights: np.ndarray) -> np.ndarray:
        return (self.evaluate(params) - self.y) * weights

    def fit(self, params: lmfit.Parameters, weights: np.ndarray
            ) -> lmfit.minimizer.MinimizerResult:
        """Levenberg-Marquardt from ``params``; the result also carries ``best_fit`` and
        ``weights``.

        The Jacobian stays numerical, as before: an analytic one takes half the calls but
        follows another path, which moves the stderr of a parameter pinned at its bound (Voigt
        gamma at 0) and lands some two-peak starts in other minima."""
        mini = lmfit.Minimizer(self.residual, params, fcn_args=(weights,))
        result = mini.leastsq()
        result.best_fit = self.evaluate(result.params)
        result.weights = weights
        return result


def _half_max_width(x: np.ndarray, y: np.ndarray, i: int) -> float:
    half = y[i] / 2
    lo = i
    while lo > 0 and y[lo] > half:
        lo -= 1
    hi = i
    while hi < y.size - 1 and y[hi] > half:
        hi += 1
    return float(max(x[hi] - x[lo], 2 * np.median(np.diff(x))))


def _to_energy(wavelength_m: np.ndarray, counts: np.ndarray, variance: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts per column to density per eV (Jacobian), increasing energy."""
    energy = np.asarray(wavelength_to_energy(wavelength_m))
    de = np.abs(np.gradient(energy))  # eV per column
    order = np.argsort(energy)
    return energy[order], (counts / de)[order], (variance / de**2)[order]


def fit_spectrum(wavelength_m: np.ndarray, counts: np.ndarray,
                 variance: np.ndarray | None = None, model: str = "gaussian",
                 background: str = "linear", energy_range_ev: tuple[float, float] | None = None,
                 compare: bool = True, noise_slope: float | None = None,
                 noise_floor: float | None = None, unit: str = "adu", source: str = ""
                 ) -> SpectrumResult:
    """Fit one or two peaks in energy and decide whether the second is supported.

    Counts per column are converted to a density per eV with the Jacobian |dE/dcolumn|. The fit
    is weighted least squares with the EMCCD noise model ``var = slope·model + floor``, refined
    once from the fitted model (iteratively reweighted), so that bright columns do not get the
    weight of dim ones and downward fluctuations are not favoured.

    A second peak is *supported* when the two-peak model lowers the BIC by more than 10 (strong
    evidence) and the F-test of the nested models gives p < 1e-3 (a conservative level, as the
    test is only approximate at the zero-amplitude boundary); it is *resolved* when each peak's
    area also exceeds three standard errors. The result has two peaks only when both hold: two
    lines closer than their widths make a significantly non-Gaussian band whose split into two
    peaks is not determined.

    Parameters
    ----------
    wavelength_m, counts
        Spectrum per column.
    variance
        Per-column variance of ``counts``; default from :func:`estimate_noise`.
    model
        ``"gaussian"``, ``"lorentzian"`` or ``"voigt"`` (profile in energy).
    background
        ``"constant"`` or ``"linear"`` per column (see :func:`_background_density`).
    energy_range_ev
        Fit window; default the brightest feature ± 4 of its half-maximum widths.
    compare
        Also fit two peaks and compare.
    noise_slope, noise_floor
        Noise model of ``counts`` used for reweighting; estimated when not given.
    unit, source
        Carried into the result.
    """
    if model not in PEAK_MODELS:
        raise ValueError(f"unknown peak model {model!r}; choose from {PEAK_MODELS}")
    wl = np.asarray(wavelength_m, dtype=float)
    y_col = np.asarray(counts, dtype=float)
    if wl.shape != y_col.shape or wl.ndim != 1 or wl.size < 8:
        raise ValueError("wavelength_m and counts must be 1-D of equal length (>= 8 columns)")
    if noise_slope is None or noise_floor is None:
        noise_slope, noise_floor = estimate_noise(y_col, noise_slope)
    if variance is None:
        level = ndimage.median_filter(y_col, size=9, mode="nearest")
        variance = noise_slope * np.clip(level, 0, None) + noise_floor
    energy, y, var = _to_energy(wl, y_col, np.asarray(variance, dtype=float))
    jac = np.abs(np.gradient(np.sort(energy)))  # eV per column, same order as energy

    # Start values from the counts per column, where the background is flat.
    smooth_col = ndimage.median_filter(y * jac, size=5, mode="nearest")
    bg0 = float(np.percentile(smooth_col, 10))
    if energy_range_ev is None:
        i = int(np.argmax(smooth_col - bg0))
        w = _half_max_width(energy, smooth_col - bg0, i)
        energy_range_ev = (energy[i] - 4 * w, energy[i] + 4 * w)
    sel = (energy >= energy_range_ev[0]) & (energy <= energy_range_ev[1])
    if sel.sum() < 8:
        raise ValueError(f"fewer than 8 columns in the fit window {energy_range_ev} eV")
    x, y, var, jac, smooth_col = energy[sel], y[sel], var[sel], jac[sel], smooth_col[sel]
    per_ev = 1 / jac
    ref_per_ev = float(np.interp(x.mean(), x, per_ev))
    per_ev = per_ev / ref_per_ev
    bg0 = bg0 * ref_per_ev  # background start value in density per eV at the window centre

    i = int(np.argmax(smooth_col - smooth_col.min()))
    h0 = float(smooth_col[i] / jac[i] - bg0 * per_ev[i])
    w0 = _half_max_width(x, smooth_col - np.percentile(smooth_col, 10), i)
    s0 = w0 / (2 if model == "lorentzian" else 2.3548)
    f1 = _PeakFit(model, 1, background, x, per_ev, y)
    f2 = _PeakFit(model, 2, background, x, per_ev, y)

    def var_from(model_y: np.ndarray) -> np.ndarray:
        # Model density per eV back to counts per column, through the noise model, and back.
        return (noise_slope * np.clip(model_y * jac, 0, None) + noise_floor) / jac**2

    def fit1(weights: np.ndarray) -> lmfit.minimizer.MinimizerResult:
        return f1.fit(f1.params(bg0, [(x[i], s0, h0)]), weights)

    def fit2(weights: np.ndarray, r1: lmfit.minimizer.MinimizerResult
             ) -> lmfit.minimizer.MinimizerResult:
        c = r1.params["p1_center"].value
        s = r1.params["p1_sigma"].value
        peak1 = f1.component(*f1._values(r1.params)[0])
        hgt = max(float(np.max(peak1)), h0 / 2)
        resid = y - r1.best_fit
        j = int(np.argmax(ndimage.uniform_filter1d(resid, 5)))
        # A start on the centre's bound (largest residual at the window edge) sits where
        # lmfit's bound transform has zero gradient, and the fit from there is chaotic.
        edge = 0.02 * (x[-1] - x[0])
        xj = float(np.clip(x[j], x[0] + edge, x[-1] - edge))
        starts = [
            [(c - 0.6 * s, 0.7 * s, hgt / 2), (c + 0.6 * s, 0.7 * s, hgt / 2)],
            [(c - 1.2 * s, 0.6 * s, hgt / 2), (c + 1.2 * s, 0.6 * s, hgt / 2)],
            [(c, s, hgt), (xj, 0.5 * s, max(float(resid[j]), hgt / 10))],
        ]
        best = None
        for st in starts:
            r = f2.fit(f2.params(bg0, st), weights)
            if best is None or r.chisqr < best.chisqr:
                best = r
        return best

    # Pass 1 with weights from the smoothed data, pass 2 with weights from the richest fit;
    # both models of the final pass share the same weights so their χ² compare.
    weights = 1 / np.sqrt(np.maximum(var, 1e-300))
    r1 = fit1(weights)
    r2 = fit2(weights, r1) if compare else None
    ref = r2 if r2 is not None else r1
    weights = 1 / np.sqrt(np.maximum(var_from(ref.best_fit), 1e-300))
    # Pass 2 searches over the starts again: starting it from pass 1's optima (5 fits
    # instead of 8) lands misspecified two-peak fits (Lorentzian on real data) in other minima.
    r1 = fit1(weights)
    r2 = fit2(weights, r1) if compare else None

    comparison: dict[str, Any] = {"bic_1": r1.bic, "aic_1": r1.aic}
    chosen, n_peaks = r1, 1
    if r2 is not None:
        k1, k2, n = r1.nvarys, r2.nvarys, x.size
        f_stat = ((r1.chisqr - r2.chisqr) / (k2 - k1)) / (r2.chisqr / (n - k2))
        p_value = float(stats.f.sf(f_stat, k2 - k1, n - k2))
        areas_ok = all(_significant(r2.params[f"p{j}_amplitude"]) for j in (1, 2))
        supported = bool(r1.bic - r2.bic > 10 and p_value < 1e-3)
        comparison.update({"bic_2": r2.bic, "aic_2": r2.aic, "delta_bic": r1.bic - r2.bic,
                           "delta_aic": r1.aic - r2.aic, "f_stat": float(f_stat),
                           "p_value": p_value, "two_peaks_supported": supported,
                           "two_peaks_resolved": areas_ok})
        if supported and areas_ok:
            chosen, n_peaks = r2, 2
    peaks = [_peak_summary(chosen, f"p{j}_", model) for j in range(1, n_peaks + 1)]
    peaks.sort(key=lambda pk: pk["peak_ev"])
    main = max(peaks, key=lambda pk: pk["area"])
    sigma = 1 / chosen.weights
    return SpectrumResult(
        peak_ev=main["peak_ev"], peak_nm=main["peak_nm"], fwhm_mev=main["fwhm_mev"],
        errors=dict(main["errors"]), model=model, n_peaks=n_peaks,
        redchi=float(chosen.redchi), peaks=peaks, comparison=comparison,
        energy=x, intensity=y, fit=chosen.best_fit, sigma=sigma, unit=unit, source=source,
        info={"background": background, "energy_range_ev": [float(v) for v in energy_range_ev],
              "noise_slope": noise_slope, "noise_floor": noise_floor,
              "success": bool(chosen.success)})


def _significant(par: lmfit.Parameter) -> bool:
    return par.stderr is not None and np.isfinite(par.stderr) and par.value > 3 * par.stderr


def _stderr(par: lmfit.Parameter) -> float:
    return float(par.stderr) if par.stderr is not None else float("nan")


def _fwhm(kind: str, sigma: float, gamma: float) -> float:
    """FWHM as lmfit's models define it (same rounded constants as their ``fwhm`` expressions)."""
    if kind == "gaussian":
        return GAUSSIAN_FWHM_FACTOR * sigma
    if kind == "lorentzian":
        return 2.0 * sigma
    return 1.0692 * gamma + math.sqrt(0.8664 * gamma**2 + 5.545083 * sigma**2)


GAUSSIAN_FWHM_FACTOR = float(f"{lmfit.models.GaussianModel.fwhm_factor:.7f}")


def _fwhm_error(result: lmfit.minimizer.MinimizerResult, pre: str, kind: str) -> float:
    """Standard error of the FWHM from the covariance of sigma (and gamma), to first order."""
    covar = result.covar
    names = list(result.var_names or [])
    if covar is None or pre + "sigma" not in names:
        return float("nan")
    s = result.params[pre + "sigma"].value
    g = result.params[pre + "gamma"].value if kind == "voigt" else 0.0
    idx = [names.index(pre + "sigma")]
    if kind == "voigt":
        root = math.sqrt(0.8664 * g**2 + 5.545083 * s**2)
        grad = [5.545083 * s / root if root > 0 else 0.0]
        if pre + "gamma" in names:
            idx.append(names.index(pre + "gamma"))
            grad.append(1.0692 + (0.8664 * g / root if root > 0 else 0.0))
    else:
        grad = [_fwhm(kind, 1.0, 0.0)]
    gv = np.array(grad)
    var = float(gv @ covar[np.ix_(idx, idx)] @ gv)
    return math.sqrt(var) if var >= 0 else float("nan")


def _peak_summary(result: lmfit.minimizer.MinimizerResult, pre: str, kind: str) -> dict[str, Any]:
    params = result.params
    c = params[pre + "center"]
    s = params[pre + "sigma"].value
    g = params[pre + "gamma"].value if kind == "voigt" else 0.0
    e = float(c.value)
    e_err = _stderr(c)
    nm = HC_EV_M / e * 1e9
    return {"peak_ev": e, "peak_nm": nm, "fwhm_mev": _fwhm(kind, s, g) * 1e3,
            "area": float(params[pre + "amplitude"].value),
            "errors": {"peak_ev": e_err, "peak_nm": nm / e * e_err,
                       "fwhm_mev": _fwhm_error(result, pre, kind) * 1e3,
                       "area": _stderr(params[pre + "amplitude"])}}


def analyze_spectrum(data: SpectrumData, model: str = "gaussian", background: str = "linear",
                     energy_range_ev: tuple[float, float] | None = None,
                     cosmic_threshold: float = 8.0, compare: bool = True) -> SpectrumResult:
    """The whole chain: frames of a particle's spectrum to its fitted emission peak.

    Bias subtraction, cosmic-ray removal, track summation (auto-located if not given), sum over
    frames, photoelectrons when the preamp gain is known, Jacobian to energy, weighted fit with a
    one- vs two-peak comparison. See :func:`reduce_spectrum` and :func:`fit_spectrum`.
    """
    red = reduce_spectrum(data, cosmic_threshold=cosmic_threshold)
    result = fit_spectrum(red.wavelength_m, red.counts, red.variance, model=model,
                          background=background, energy_range_ev=energy_range_ev,
                          compare=compare, noise_slope=red.noise_slope,
                          noise_floor=red.noise_floor, unit=red.unit, source=data.source)
    result.info.update({"n_frames": red.n_frames, "cosmic_pixels": red.cosmic_pixels,
                        "signal_rows": red.signal_rows, "background_rows": red.background_rows,
                        "calibration": data.calibration.get("method")})
    return result
