"""Emission spectrum of a particle through the spectrograph onto the EMCCD.

The chain, one frame at a time:

1. each emitter's line shape in energy (Gaussian, Lorentzian or Voigt at ``peak_ev`` with
   ``fwhm_ev``), shifted by spectral diffusion; the line is averaged over sub-samples of the
   peak's wander within the exposure, which blurs it;
2. integrated over each column's wavelength span, the pixel edges coming from the grating
   equation of :class:`spad.optics.Spectrograph` (groove density, focal length, centre
   wavelength, pixel size), so the dispersion and its curvature are the spectrograph's;
3. spread over rows by the particle's track (a Gaussian of a few rows, integrated per row) and
   summed over the rows the read mode bins together; plus a uniform background of stray light and
   autofluorescence per physical pixel;
4. turned into ADU frames by the EMCCD model (:mod:`spad.simulators.emccd`).

Blinking enters as a per-frame intensity factor per emitter (the mean of the emitter's relative
brightness over the exposure, see :func:`frame_average`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.special import erf, voigt_profile
from spad.simulators.emccd import Emccd, ReadMode, Readout, emccd_frames

from spad.optics import HC_EV_M, Spectrograph
from spad.spectrum import SpectrumData

LineShape = Literal["gaussian", "lorentzian", "voigt"]
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(frozen=True)
class EmissionLine:
    """One emitter's emission line in energy.

    Parameters
    ----------
    peak_ev
        Peak (centre) photon energy.
    fwhm_ev
        Full width at half maximum of the line.
    shape
        ``"gaussian"``, ``"lorentzian"`` or ``"voigt"``.
    lorentz_fraction
        Voigt only: Lorentzian FWHM as a fraction of the total FWHM (0 = Gaussian, 1 =
        Lorentzian); the Gaussian FWHM follows from Olivero & Longbothum's approximation
        ``f ≈ 0.5346 f_L + sqrt(0.2166 f_L² + f_G²)``.
    photon_rate_hz
        Photons per second of this line reaching the camera at full brightness (intensity 1).
    """

    peak_ev: float
    fwhm_ev: float
    shape: LineShape = "gaussian"
    lorentz_fraction: float = 0.3
    photon_rate_hz: float = 2e4

    def __post_init__(self) -> None:
        if self.shape not in ("gaussian", "lorentzian", "voigt"):
            raise ValueError(f"line shape must be gaussian, lorentzian or voigt, "
                             f"not {self.shape!r}")
        if not (0.5 < self.peak_ev < 5.0):
            raise ValueError(f"peak energy {self.peak_ev!r} eV is not an optical photon's")
        if not (0 < self.fwhm_ev < 1.0):
            raise ValueError(f"line FWHM must be in (0, 1) eV, not {self.fwhm_ev!r}")
        if not (0.0 <= self.lorentz_fraction <= 1.0):
            raise ValueError("lorentz_fraction must be within [0, 1]")
        if not self.photon_rate_hz >= 0:
            raise ValueError("photon_rate_hz must be non-negative")

    def voigt_widths(self) -> tuple[float, float]:
        """Gaussian sigma and Lorentzian half width (eV) of the Voigt with this FWHM."""
        f_l = self.lorentz_fraction * self.fwhm_ev
        f_g = np.sqrt(max((self.fwhm_ev - 0.5346 * f_l) ** 2 - 0.2166 * f_l ** 2, 0.0))
        return float(f_g / FWHM_PER_SIGMA), float(f_l / 2)

    def density(self, energy_ev: np.ndarray) -> np.ndarray:
        """Normalised line shape per eV at ``energy_ev``."""
        x = np.asarray(energy_ev, dtype=float) - self.peak_ev
        if self.shape == "gaussian":
            s = self.fwhm_ev / FWHM_PER_SIGMA
            return np.exp(-0.5 * (x / s) ** 2) / (s * np.sqrt(2 * np.pi))
        if self.shape == "lorentzian":
            g = self.fwhm_ev / 2
            return g / np.pi / (x ** 2 + g ** 2)
        sigma, gamma = self.voigt_widths()
        return voigt_profile(x, sigma, gamma)

    def cdf(self, energy_ev: np.ndarray) -> np.ndarray:
        """Fraction of the line below ``energy_ev`` (Gaussian and Lorentzian only)."""
        x = np.asarray(energy_ev, dtype=float) - self.peak_ev
        if self.shape == "gaussian":
            s = self.fwhm_ev / FWHM_PER_SIGMA
            return 0.5 * (1.0 + erf(x / (np.sqrt(2.0) * s)))
        if self.shape == "lorentzian":
            return 0.5 + np.arctan(x / (self.fwhm_ev / 2)) / np.pi
        raise ValueError("the Voigt line has no closed-form CDF; use column_fractions")


def pixel_edges_m(spectrograph: Spectrograph, centre_wavelength_m: float, n_columns: int,
                  pixel_size_m: float) -> np.ndarray:
    """Wavelengths (m) of the ``n_columns + 1`` column edges, by the grating equation."""
    # The centre of column i sits at i - (n-1)/2 from the central ray; its edges at ±1/2.
    return spectrograph.wavelengths(centre_wavelength_m, n_columns + 1, pixel_size_m,
                                    centre_pixel=n_columns / 2)


def column_fractions(line: EmissionLine, edges_m: np.ndarray,
                     offsets_ev: np.ndarray | None = None, n_voigt_samples: int = 8
                     ) -> np.ndarray:
    """Fraction of the line's photons falling on each column.

    Parameters
    ----------
    line
        The emission line.
    edges_m
        Column edges in wavelength (m), increasing, ``n_columns + 1`` values.
    offsets_ev
        Peak shifts (spectral diffusion) as ``(n_frames, n_sub)``: the line is averaged over the
        ``n_sub`` positions of each frame. ``None`` for one frame without shift.
    n_voigt_samples
        Sub-samples per column for the Voigt line (integrated by the midpoint rule; columns are
        ~0.5 meV wide against a line tens of meV wide).

    Returns
    -------
    ``(n_frames, n_columns)`` fractions (each row sums to at most 1: the rest misses the chip).
    """
    edges_ev = HC_EV_M / np.asarray(edges_m, dtype=float)       # decreasing
    off = np.zeros((1, 1)) if offsets_ev is None else np.atleast_2d(offsets_ev)
    out = np.empty((off.shape[0], edges_ev.size - 1))
    batch = max(1, 4_000_000 // (off.shape[1] * edges_ev.size * max(n_voigt_samples, 1)))
    for a in range(0, off.shape[0], batch):
        o = off[a:a + batch, :, None]
        if line.shape == "voigt":
            # Midpoints of equal sub-intervals of each column (in energy).
            u = (np.arange(n_voigt_samples) + 0.5) / n_voigt_samples
            e = edges_ev[:-1, None] + (edges_ev[1:] - edges_ev[:-1])[:, None] * u
            width = (edges_ev[:-1] - edges_ev[1:]) / n_voigt_samples
            dens = line.density(e[None, None] - o[..., None])
            frac = dens.sum(axis=-1) * width
        else:
            c = line.cdf(edges_ev[None, None, :] - o)
            frac = c[..., :-1] - c[..., 1:]
        out[a:a + batch] = frac.mean(axis=1)
    return out


def row_fractions(n_rows: int, centre_row: float, sigma_rows: float) -> np.ndarray:
    """Fraction of a Gaussian track (centre in row units, row r centred on r) on each row."""
    edges = np.arange(n_rows + 1) - 0.5
    c = 0.5 * (1.0 + erf((edges - centre_row) / (np.sqrt(2.0) * sigma_rows)))
    return np.diff(c)


def frame_average(change_times_s: np.ndarray, levels: np.ndarray, frame_starts_s: np.ndarray,
                  exposure_s: float) -> np.ndarray:
    """Mean of a piecewise-constant signal over each frame (exact).

    Parameters
    ----------
    change_times_s
        Increasing times at which the signal takes the value ``levels[i]`` (held until the next
        change); the signal is ``levels[0]`` before the first change.
    levels
        Value from each change on (e.g. an emitter's relative brightness in its blinking state).
    frame_starts_s
        Start of each exposure.
    exposure_s
        Exposure length.
    """
    t = np.asarray(change_times_s, dtype=float)
    v = np.asarray(levels, dtype=float)
    if t.shape != v.shape or t.ndim != 1 or t.size == 0:
        raise ValueError("change_times_s and levels must be 1-D, non-empty, of equal length")
    if np.any(np.diff(t) < 0):
        raise ValueError("change_times_s must be increasing")
    starts = np.asarray(frame_starts_s, dtype=float)
    # Cumulative integral at every change time; linear in between, so interp is exact.
    cum = np.concatenate([[0.0], np.cumsum(v[:-1] * np.diff(t))])

    def integral(x: np.ndarray) -> np.ndarray:
        before = x < t[0]
        i = np.clip(np.searchsorted(t, x, side="right") - 1, 0, t.size - 1)
        val = cum[i] + v[i] * (x - t[i])
        return np.where(before, v[0] * (x - t[0]), val)

    return (integral(starts + exposure_s) - integral(starts)) / exposure_s


def spectral_diffusion(n_frames: int, exposure_s: float, rms_ev: float, correlation_s: float,
                       rng: np.random.Generator, n_sub: int = 8) -> np.ndarray:
    """Peak shifts of an Ornstein-Uhlenbeck wander, ``(n_frames, n_sub)`` eV.

    Sampled at ``n_sub`` evenly spaced times within each back-to-back exposure; stationary with
    standard deviation ``rms_ev`` and correlation time ``correlation_s``.
    """
    n = n_frames * n_sub
    if rms_ev <= 0 or n == 0:
        return np.zeros((n_frames, n_sub))
    rho = np.exp(-(exposure_s / n_sub) / correlation_s)
    kicks = rng.normal(0.0, rms_ev * np.sqrt(1 - rho ** 2), n)
    x = np.empty(n)
    x[0] = rng.normal(0.0, rms_ev)
    for i in range(1, n):   # short loop: n_frames * n_sub ~ 1e4 for a 2-min measurement
        x[i] = rho * x[i - 1] + kicks[i]
    return x.reshape(n_frames, n_sub)


@dataclass(frozen=True)
class SpectrumSetup:
    """Spectrograph, camera and acquisition settings (defaults as in docs/physics.md,
    "The experiment").

    Parameters
    ----------
    spectrograph
        Grating and geometry (default 300 g/mm on a 0.3 m spectrograph).
    centre_wavelength_m
        Wavelength set on the spectrograph.
    sensor
        The EMCCD (default iXon3-like 512 x 512, 16 µm).
    exposure_s
        Exposure per frame; frames are back to back.
    em_gain
        EM gain.
    read_mode
        ``"fvb"``, ``"single_track"``, ``"multi_track"`` or ``"image"``.
    track_centre_row, track_sigma_rows
        Where the particle's image falls across the rows and its Gaussian width.
    track_height
        Rows summed in single-track mode and rows of the image region around the track in image
        mode (``None`` in image mode: the whole chip); tracks' height in multi-track mode.
    n_tracks
        Tracks in multi-track mode.
    background_photons_per_pixel_s
        Stray light and autofluorescence reaching each physical pixel.
    cosmic_rays
        Add cosmic-ray hits.
    """

    spectrograph: Spectrograph = field(default_factory=Spectrograph)
    centre_wavelength_m: float = 630e-9
    sensor: Emccd = field(default_factory=Emccd)
    exposure_s: float = 0.08
    em_gain: float = 100.0
    read_mode: ReadMode = "image"
    track_centre_row: float = 256.0
    track_sigma_rows: float = 1.5
    track_height: int | None = 16
    n_tracks: int = 3
    background_photons_per_pixel_s: float = 5.0
    cosmic_rays: bool = True

    def readout(self) -> Readout:
        """The read-out geometry of this setup."""
        s, c, h = self.sensor, int(round(self.track_centre_row)), self.track_height
        if self.read_mode == "fvb":
            return Readout.fvb(s)
        if self.read_mode == "single_track":
            return Readout.single_track(s, c, h or 16)
        if self.read_mode == "multi_track":
            return Readout.multi_track(s, self.n_tracks, h or 16)
        if self.read_mode == "image":
            if h is None:
                return Readout.image(s)
            start = min(max(c - h // 2, 0), s.n_rows - h)
            return Readout.image(s, start, start + h)
        raise ValueError(f"unknown read mode {self.read_mode!r}")

    def wavelength_m(self) -> np.ndarray:
        """Wavelength at the centre of each column (grating equation)."""
        return self.spectrograph.wavelengths(self.centre_wavelength_m, self.sensor.n_columns,
                                             self.sensor.pixel_size_m)

    def calibration(self) -> dict:
        """How the wavelength axis follows from the settings (stored with the frames)."""
        return {"method": "grating", **self.spectrograph.to_dict(),
                "centre_wavelength_m": self.centre_wavelength_m,
                "pixel_size_m": self.sensor.pixel_size_m, "n_pixels": self.sensor.n_columns,
                "centre_pixel": (self.sensor.n_columns - 1) / 2}


def mean_photons(lines: Sequence[EmissionLine], setup: SpectrumSetup, readout: Readout,
                 intensity: np.ndarray, offsets_ev: np.ndarray | None = None,
                 centre_wavelength_m: float | None = None) -> np.ndarray:
    """Expected photons per exposure on each output pixel, ``(n_frames, n_outputs, n_cols)``.

    Parameters
    ----------
    lines
        The emitters in focus.
    setup
        Spectrograph, sensor, track and background.
    readout
        Read-out geometry (which rows are summed into which output row).
    intensity
        ``(n_lines, n_frames)`` brightness of each line relative to its ``photon_rate_hz``.
    offsets_ev
        ``(n_lines, n_frames, n_sub)`` spectral-diffusion shifts, or ``None``.
    centre_wavelength_m
        Override of ``setup.centre_wavelength_m`` (the spectrograph's current setting).
    """
    sensor = setup.sensor
    intensity = np.atleast_2d(np.asarray(intensity, dtype=float))
    if intensity.shape[0] != len(lines):
        raise ValueError(f"intensity has {intensity.shape[0]} rows for {len(lines)} lines")
    cw = setup.centre_wavelength_m if centre_wavelength_m is None else centre_wavelength_m
    edges = pixel_edges_m(setup.spectrograph, cw, sensor.n_columns, sensor.pixel_size_m)
    spectrum = np.zeros((intensity.shape[1], sensor.n_columns))
    for k, line in enumerate(lines):
        frac = column_fractions(line, edges, None if offsets_ev is None else offsets_ev[k])
        spectrum += (line.photon_rate_hz * setup.exposure_s * intensity[k])[:, None] * frac
    rows = readout.bin_rows(row_fractions(sensor.n_rows, setup.track_centre_row,
                                          setup.track_sigma_rows))
    background = (setup.background_photons_per_pixel_s * setup.exposure_s
                  * readout.pixels_per_output())
    return spectrum[:, None, :] * rows[None, :, None] + background[None, :, None]


def track_rows(setup: SpectrumSetup, readout: Readout
               ) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """Output-row ranges of the particle's signal and of background, for kept-row frames.

    Signal: output rows holding the track within ±2.5 sigma. Background: the larger run of
    output rows beyond ±4 sigma on either side (``None`` if there is none).
    """
    if readout.squeezed:
        return None, None
    lo = setup.track_centre_row - 2.5 * setup.track_sigma_rows
    hi = setup.track_centre_row + 2.5 * setup.track_sigma_rows
    inside = [i for i, (a, b) in enumerate(readout.tracks) if b - 0.5 > lo and a - 0.5 < hi]
    if not inside:
        return None, None
    signal = (inside[0], inside[-1] + 1)
    far_lo = setup.track_centre_row - 4 * setup.track_sigma_rows
    far_hi = setup.track_centre_row + 4 * setup.track_sigma_rows
    below = [i for i, (a, b) in enumerate(readout.tracks) if b - 0.5 <= far_lo]
    above = [i for i, (a, b) in enumerate(readout.tracks) if a - 0.5 >= far_hi]
    runs = [(below[0], below[-1] + 1)] if below else []
    runs += [(above[0], above[-1] + 1)] if above else []
    background = max(runs, key=lambda r: r[1] - r[0]) if runs else None
    return signal, background


def simulate_spectrum(lines: Sequence[EmissionLine], duration_s: float,
                      setup: SpectrumSetup | None = None, *,
                      intensity: np.ndarray | None = None,
                      offsets_ev: np.ndarray | None = None,
                      rng: np.random.Generator | int | None = None,
                      frames_per_batch: int = 64) -> SpectrumData:
    """EMCCD frames of the particle's emission over ``duration_s`` (back-to-back exposures).

    Parameters
    ----------
    lines
        The particle's emission lines (one per emitter).
    duration_s
        Measurement length; ``floor(duration_s / exposure_s)`` frames are taken (at least 1).
    setup
        Spectrograph, camera and acquisition settings.
    intensity
        ``(n_lines, n_frames)`` relative brightness per frame (blinking); default 1.
    offsets_ev
        ``(n_lines, n_frames, n_sub)`` spectral-diffusion shifts; default none.
    rng
        Random generator or seed.
    frames_per_batch
        Frames rendered at a time (bounds the temporaries).

    Returns
    -------
    SpectrumData with the ADU frames, wavelength axis, gain, bias, preamp gain, calibration and
    the signal / background rows.
    """
    setup = setup or SpectrumSetup()
    rng = np.random.default_rng(rng)
    if not lines:
        raise ValueError("no emission lines to simulate")
    if not (duration_s > 0 and np.isfinite(duration_s)):
        raise ValueError(f"duration must be a positive number of seconds, not {duration_s!r}")
    n_frames = max(1, int(np.floor(duration_s / setup.exposure_s + 1e-9)))
    intensity = (np.ones((len(lines), n_frames)) if intensity is None
                 else np.asarray(intensity, dtype=float).reshape(len(lines), -1))
    if intensity.shape[1] != n_frames:
        raise ValueError(f"intensity has {intensity.shape[1]} frames, expected {n_frames}")
    if offsets_ev is not None and np.shape(offsets_ev)[:2] != (len(lines), n_frames):
        raise ValueError(f"offsets_ev must be ({len(lines)}, {n_frames}, n_sub)")
    readout = setup.readout()
    setup.sensor.check_gain(setup.em_gain)
    parts = []
    for a in range(0, n_frames, frames_per_batch):
        b = min(a + frames_per_batch, n_frames)
        phi = mean_photons(lines, setup, readout, intensity[:, a:b],
                           None if offsets_ev is None else np.asarray(offsets_ev)[:, a:b])
        parts.append(emccd_frames(phi, setup.sensor, readout, setup.em_gain, setup.exposure_s,
                                  rng, with_cosmic_rays=setup.cosmic_rays))
    signal, background = track_rows(setup, readout)
    sensor = setup.sensor
    return SpectrumData(
        frames=np.concatenate(parts), wavelength_m=setup.wavelength_m(),
        exposure_s=setup.exposure_s, em_gain=float(setup.em_gain), bias_adu=sensor.bias_adu,
        preamp_gain_e_per_adu=sensor.preamp_gain_e_per_adu, calibration=setup.calibration(),
        signal_rows=signal, background_rows=background, source="simulated",
        metadata={"read_mode": readout.mode, "tracks": [list(t) for t in readout.tracks],
                  "quantum_efficiency": sensor.quantum_efficiency,
                  "read_noise_e": sensor.read_noise_e, "adc_bits": sensor.adc_bits,
                  "dark_e_per_pixel_s": sensor.dark_e_per_pixel_s,
                  "cic_e_per_pixel": sensor.cic_e_per_pixel,
                  "background_photons_per_pixel_s": setup.background_photons_per_pixel_s})


# -- a simulated particle's spectrum from the photon simulator's ground truth ----------------

def relative_brightness(truth: Any, i: int) -> np.ndarray:
    """Emitted photon rate of emitter ``i``'s states relative to its brightest state."""
    rates = np.asarray(truth.state_intensity_hz(i, detected=False), dtype=float)
    top = rates.max()
    return rates / top if top > 0 else np.zeros_like(rates)


def particle_lines(truth: Any, camera_efficiency: float = 0.05,
                   shape: LineShape = "gaussian") -> list[EmissionLine]:
    """One emission line per emitter of a :class:`spad.simulators.stream.Truth`.

    Peak and width are the emitter's ``peak_ev`` / ``fwhm_ev``; the photon rate at full
    brightness is the brightest state's emitted rate times ``camera_efficiency`` (collection,
    spectrograph and filter transmission).
    """
    lines = []
    for i, e in enumerate(truth.emitters):
        top = float(np.max(truth.state_intensity_hz(i, detected=False)))
        lines.append(EmissionLine(float(e.peak_ev), float(e.fwhm_ev), shape=shape,
                                  photon_rate_hz=top * camera_efficiency))
    return lines


def spectrum_from_truth(truth: Any, setup: SpectrumSetup | None = None, *,
                        duration_s: float | None = None, camera_efficiency: float = 0.05,
                        shape: LineShape = "gaussian", n_sub: int = 8,
                        rng: np.random.Generator | int | None = None) -> SpectrumData:
    """EMCCD frames of a simulated particle, consistent with its photon stream.

    The frames run back to back from t = 0 (the start of the photon stream). Each emitter's
    brightness follows its blinking timeline (``truth.timeline(i)``, averaged exactly over each
    exposure) and its peak follows its spectral-diffusion trajectory (``truth.spectral(i)``,
    sampled ``n_sub`` times per exposure, which blurs the line over the exposure).

    Parameters
    ----------
    truth
        :class:`spad.simulators.stream.Truth` of the photon simulation.
    setup
        Spectrograph and camera settings.
    duration_s
        Length of the spectral series (default: the whole photon measurement).
    camera_efficiency, shape
        See :func:`particle_lines`.
    n_sub
        Samples of the spectral trajectory per exposure.
    rng
        Random generator or seed of the camera noise.
    """
    setup = setup or SpectrumSetup()
    duration = float(truth.duration_s if duration_s is None else duration_s)
    lines = particle_lines(truth, camera_efficiency, shape)
    n_frames = max(1, int(np.floor(duration / setup.exposure_s + 1e-9)))
    starts = np.arange(n_frames) * setup.exposure_s
    sub_t = _sub_times(starts, setup.exposure_s, n_sub)
    intensity = np.empty((len(lines), n_frames))
    offsets = np.empty((len(lines), n_frames, n_sub))
    for i, e in enumerate(truth.emitters):
        t0, state, _ = truth.timeline(i, n_frames * setup.exposure_s)  # only what the frames see
        level = relative_brightness(truth, i)[np.asarray(state, dtype=np.int64)]
        intensity[i] = frame_average(t0, level, starts, setup.exposure_s)
        offsets[i] = _peaks_at(truth, i, sub_t) - e.peak_ev
    data = simulate_spectrum(lines, n_frames * setup.exposure_s, setup, intensity=intensity,
                             offsets_ev=offsets, rng=rng)
    data.metadata["frame_start_s"] = starts
    data.metadata["camera_efficiency"] = camera_efficiency
    data.metadata["n_sub"] = n_sub
    return data


def _sub_times(starts: np.ndarray, exposure_s: float, n_sub: int) -> np.ndarray:
    return starts[:, None] + (np.arange(n_sub) + 0.5) / n_sub * exposure_s


def _peaks_at(truth: Any, i: int, times: np.ndarray) -> np.ndarray:
    """Emitter ``i``'s peak energy at ``times`` (the trajectory held between its samples)."""
    t, peak = truth.spectral(i, float(np.max(times)) if np.size(times) else 0.0)
    k = np.clip(np.searchsorted(t, times, side="right") - 1, 0, len(t) - 1)
    return np.asarray(peak)[k]


def spectral_truth(truth: Any, lines: Sequence[EmissionLine], spectrum: SpectrumData | None
                   ) -> dict[str, Any]:
    """What the spectrum should show.

    Per emitter: nominal peak and width, line shape, photon rate on the camera, mean and
    standard deviation of the spectral-diffusion trajectory over the run, and over the
    spectral series the mean relative brightness and the brightness-weighted mean peak. For the
    whole particle, ``weighted_peak_ev``: the light-weighted mean peak the summed frames show.
    """
    out: dict[str, Any] = {}
    total_w, total_e = 0.0, 0.0
    for i, (e, line) in enumerate(zip(truth.emitters, lines, strict=True)):
        mean_peak, sd_peak = truth.spectral_stats(i)  # over the run, in bounded memory
        entry: dict[str, Any] = {
            "peak_ev": float(e.peak_ev), "peak_nm": float(HC_EV_M / e.peak_ev * 1e9),
            "fwhm_ev": float(e.fwhm_ev), "line_shape": line.shape,
            "camera_photon_rate_hz": line.photon_rate_hz,
            "mean_spectral_peak_ev": mean_peak, "spectral_diffusion_sd_ev": sd_peak}
        starts = None if spectrum is None else spectrum.metadata.get("frame_start_s")
        if starts is not None:
            starts = np.asarray(starts, dtype=float)
            exposure = float(spectrum.exposure_s)
            t0, state, _ = truth.timeline(i, float(starts[-1]) + exposure if starts.size
                                          else 0.0)
            level = relative_brightness(truth, i)[np.asarray(state, dtype=np.int64)]
            w = frame_average(t0, level, starts, exposure) * line.photon_rate_hz
            n_sub = int(spectrum.metadata.get("n_sub", 8))
            frame_peak = _peaks_at(truth, i, _sub_times(starts, exposure, n_sub)).mean(axis=1)
            entry["mean_frame_brightness"] = float(w.mean() / max(line.photon_rate_hz, 1e-300))
            if w.sum() > 0:
                entry["weighted_peak_ev"] = float(np.sum(w * frame_peak) / w.sum())
            total_w += float(w.sum())
            total_e += float(np.sum(w * frame_peak))
        out[str(i)] = entry
    result: dict[str, Any] = {"emitters": out}
    if total_w > 0:
        result["weighted_peak_ev"] = total_e / total_w
    return result
