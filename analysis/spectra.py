"""Single-particle emission spectra: from camera frames to a fitted peak energy and width.

Pure functions on :class:`spad.spectrum.SpectrumData` and arrays (docs/methods.md, "Spectra"),
split by job: frame cleanup and the EMCCD noise model in :mod:`spad.analysis.spectrum_frames`,
wavelength calibration in :mod:`spad.analysis.spectrum_calibration`, peak fits in
:mod:`spad.analysis.spectrum_fit`; this module reduces frames to one spectrum and runs the chain.
The
public names of all four are importable from here:

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

from dataclasses import dataclass

import numpy as np
from spad.analysis.spectrum_calibration import (
    HG_AR_LINES_AIR_NM,
    air_to_vacuum,
    find_lamp_lines,
    fit_wavelength_polynomial,
    grating_calibration,
    polynomial_calibration,
)
from spad.analysis.spectrum_fit import (
    GAUSSIAN_FWHM_FACTOR,
    PEAK_MODELS,
    SpectrumResult,
    fit_spectrum,
)
from spad.analysis.spectrum_frames import (
    EXCESS_NOISE_FACTOR_SQ,
    MIN_EM_GAIN_FOR_EXCESS,
    estimate_bias,
    estimate_noise,
    excess_noise_sq,
    extract_track,
    locate_track,
    remove_cosmic_rays,
    subtract_bias,
    to_photoelectrons,
)

from spad.errors import FormatError
from spad.spectrum import SpectrumData

__all__ = [
    "EXCESS_NOISE_FACTOR_SQ",
    "GAUSSIAN_FWHM_FACTOR",
    "HG_AR_LINES_AIR_NM",
    "MIN_EM_GAIN_FOR_EXCESS",
    "PEAK_MODELS",
    "ReducedSpectrum",
    "SpectrumResult",
    "air_to_vacuum",
    "analyze_spectrum",
    "estimate_bias",
    "estimate_noise",
    "excess_noise_sq",
    "extract_track",
    "find_lamp_lines",
    "fit_spectrum",
    "fit_wavelength_polynomial",
    "grating_calibration",
    "locate_track",
    "polynomial_calibration",
    "reduce_spectrum",
    "remove_cosmic_rays",
    "subtract_bias",
    "to_photoelectrons",
]


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
    if data.n_frames == 0:
        # a recording that ended before the camera's first exposure did: nothing to reduce
        # (numpy would make NaNs, and a fit of them a peak that was never measured)
        raise ValueError("no spectrum frames were recorded")
    lo, hi = float(np.min(data.frames)), float(np.max(data.frames))
    if lo == hi:
        # a camera that saw nothing (or a file of zeros): there is no line, whatever a fit of
        # the noise model would make of it
        raise ValueError(f"no signal: every pixel of the {data.n_frames} spectrum frames "
                         f"reads {lo:g}")
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
    from scipy import ndimage  # spectra only: spared on photon particles

    level = ndimage.median_filter(counts, size=9, mode="nearest")
    variance = slope * np.clip(level, 0, None) + floor
    return ReducedSpectrum(wavelength_m=np.asarray(d.wavelength_m, dtype=float), counts=counts,
                           variance=variance, unit=unit, n_frames=data.n_frames,
                           noise_slope=slope, noise_floor=floor, signal_rows=signal_rows,
                           background_rows=background, cosmic_pixels=n_cosmic)


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
