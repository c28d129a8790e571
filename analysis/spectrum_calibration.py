"""Wavelength calibration of a spectrum: the grating equation for the spectrograph's set centre
wavelength, or a polynomial through calibration-lamp lines.

Part of the spectrum analysis (:mod:`spad.analysis.spectra` runs the whole chain); the grating
equation itself, m·λ = d·(sin α + sin β), lives in :mod:`spad.optics`. See docs/methods.md,
"Spectra".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from spad.optics import Spectrograph
from spad.spectrum import SpectrumData

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
    from scipy import signal  # lamp calibration only: spared on every particle

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
