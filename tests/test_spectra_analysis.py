"""Spectrum processing, calibration and peak fits on synthetic EMCCD frames and a real file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm
from spad.analysis.spectra import (
    HG_AR_LINES_AIR_NM,
    SpectrumResult,
    air_to_vacuum,
    analyze_spectrum,
    estimate_bias,
    find_lamp_lines,
    fit_wavelength_polynomial,
    grating_calibration,
    locate_track,
    polynomial_calibration,
    reduce_spectrum,
    remove_cosmic_rays,
    to_photoelectrons,
)
from spad.simulators.spectrum import EmissionLine, SpectrumSetup, simulate_spectrum

from spad.errors import FormatError
from spad.formats.spectra import open_spectrum
from spad.optics import Spectrograph, wavelength_to_energy
from spad.spectrum import SpectrumData

KINETIC = Path(__file__).parent / "data" / "spectra" / "sif_parser" / "measurement.sif"
WL = Spectrograph().wavelengths(630e-9, 512, 16e-6)  # 300 g/mm, 0.3 m: 0.17 nm per column


def emccd(lines: list[tuple[float, float, float]], n_frames: int = 40, total_e: float = 2e5,
          bg_e: float = 0.5, gain: float = 300.0, preamp: float = 10.0, bias: float = 500.0,
          read_e: float = 50.0, seed: int = 0, intensity: np.ndarray | None = None
          ) -> tuple[SpectrumData, np.ndarray]:
    """FVB EMCCD frames of Gaussian lines (peak eV, FWHM eV, share): Poisson → Gamma → ADU.

    Returns the data and the expected photoelectrons per frame and column.
    """
    rng = np.random.default_rng(seed)
    mid = (WL[1:] + WL[:-1]) / 2
    edges = np.concatenate([[2 * WL[0] - mid[0]], mid, [2 * WL[-1] - mid[-1]]])
    e_edges = wavelength_to_energy(edges)
    mu = np.zeros(WL.size)
    for peak, fwhm, share in lines:
        s = fwhm / 2.3548
        mu += share * np.abs(norm.cdf(e_edges[1:], peak, s) - norm.cdf(e_edges[:-1], peak, s))
    scale = np.ones(n_frames) if intensity is None else intensity
    lam = (mu * total_e / n_frames)[None, :] * scale[:, None] + bg_e
    n = rng.poisson(lam)
    out = np.where(n > 0, rng.gamma(np.maximum(n, 1), gain), 0.0)
    adu = np.round(bias + out / preamp + rng.normal(0, read_e / preamp, lam.shape))
    data = SpectrumData(frames=adu, wavelength_m=WL, exposure_s=0.08, em_gain=gain,
                        preamp_gain_e_per_adu=preamp, source="synthetic")
    return data, lam


# ------------------------------------------------------------------------------ bias, cosmics


def test_estimate_bias_from_dark_columns():
    data, _ = emccd([(1.968, 0.070, 1.0)], bg_e=0.0)
    # Without light the median pixel of the darkest columns is the bias (most read zero e⁻).
    assert estimate_bias(data.frames) == pytest.approx(500.0, abs=1.0)
    assert estimate_bias(data.frames, dark_columns=slice(0, 20)) == pytest.approx(500.0, abs=1)


def test_cosmic_rays_removed_across_frames():
    data, lam = emccd([(1.968, 0.070, 1.0)], seed=4)
    clean = data.frames - 500.0
    hit = clean.copy()
    rng = np.random.default_rng(5)
    where = [(int(f), int(c)) for f, c in zip(rng.integers(0, 40, 12), rng.integers(5, 505, 12),
                                              strict=True)]
    for f, c in where:  # two-pixel streaks of 1000-3000 e⁻ through the EM register
        hit[f, c:c + 2] += rng.uniform(1000, 3000, 2) * 300 / 10
    cleaned, mask = remove_cosmic_rays(hit)
    assert all(mask[f, c] and mask[f, c + 1] for f, c in where)
    assert mask.sum() <= 2 * len(where) + 10  # few false alarms among 20,480 pixels
    # The summed spectrum is restored to within its own noise (σ ≈ √(2·40·level) e⁻).
    sigma_adu = np.sqrt(2 * lam.sum(axis=0)) * 30
    assert np.all(np.abs(cleaned.sum(axis=0) - clean.sum(axis=0)) < 3 * sigma_adu + 60)


def test_blinking_frames_are_not_cosmic_rays():
    # ON/OFF frames change the whole line by a factor of 10, not a few pixels.
    intensity = np.where(np.arange(40) % 3 == 0, 1.0, 0.1)
    data, _ = emccd([(1.968, 0.070, 1.0)], total_e=6e5, intensity=intensity, seed=6)
    _, mask = remove_cosmic_rays(data.frames - 500.0, noise_slope=2 * 300 / 10)
    assert mask.sum() <= 10
    assert not mask[:, 230:290].any()  # nothing on the line itself even without the slope
    _, mask = remove_cosmic_rays(data.frames - 500.0)
    assert not mask[:, 230:290].any()


def test_cosmic_rays_single_frame_fallback():
    data, lam = emccd([(1.968, 0.070, 1.0)], n_frames=1, total_e=5e4, seed=7)
    frame = data.frames - 500.0
    hit = frame.copy()
    hit[0, [100, 250, 251, 400]] += 40000.0
    cleaned, mask = remove_cosmic_rays(hit)
    assert mask[0, [100, 250, 251, 400]].all()
    assert mask.sum() <= 8
    assert np.abs(cleaned[0, [100, 250, 251, 400]] - frame[0, [100, 250, 251, 400]]).max() < 2e3


# ------------------------------------------------------------------------------ track


def test_locate_track_on_simulated_image():
    setup = SpectrumSetup(read_mode="image", exposure_s=0.5, em_gain=300, cosmic_rays=False)
    d = simulate_spectrum([EmissionLine(1.968, 0.070)], 5.0, setup, rng=2)
    (s0, s1), bands = locate_track(d.frames - d.bias_adu)
    centre = setup.track_centre_row - (setup.track_centre_row - setup.track_height // 2)
    assert s0 <= centre < s1 and s1 - s0 <= 8
    for b0, b1 in bands:
        assert b1 <= s0 - 2 or b0 >= s1 + 2  # a gap between track and background


# ------------------------------------------------------------------------------ calibration


def test_air_to_vacuum_hg_green():
    # NIST ASD: Hg I 546.0735 nm in air is 546.2268 nm in vacuum.
    assert air_to_vacuum(546.0735e-9) == pytest.approx(546.2268e-9, abs=0.002e-9)


def test_grating_calibration_matches_optics():
    data, _ = emccd([(1.968, 0.070, 1.0)], n_frames=2)
    sp = Spectrograph(groove_density_per_m=150e3)
    cal = grating_calibration(dataclasses.replace(data, wavelength_m=None), sp, 640e-9, 16e-6)
    assert np.array_equal(cal.wavelength_m, sp.wavelengths(640e-9, 512, 16e-6))
    assert cal.calibration["method"] == "grating"
    assert cal.calibration["groove_density_per_m"] == 150e3


def test_lamp_lines_recover_polynomial():
    # A quadratic λ(column) over 540-880 nm, Hg/Ar lines as Gaussians of σ = 1.3 columns; the
    # Hg 577/579 nm doublet lies 6 columns apart.
    true = np.array([-5.0e-15, 3.35e-10, 540e-9])  # m per column², m per column, m
    cols = np.arange(1024, dtype=float)
    wl = np.polyval(true, cols)
    lines = air_to_vacuum(np.array([v for v in HG_AR_LINES_AIR_NM.values()]) * 1e-9)
    lines = lines[(lines > wl[3]) & (lines < wl[-4])]
    pos = np.interp(lines, wl, cols)
    rng = np.random.default_rng(8)
    heights = rng.uniform(2e3, 2e4, lines.size)
    y = 100 + (heights[:, None] * np.exp(-0.5 * ((cols - pos[:, None]) / 1.3) ** 2)).sum(0)
    y = rng.poisson(y).astype(float)
    found = find_lamp_lines(y)
    assert found.size == lines.size
    assert np.abs(found - pos).max() < 0.05  # columns; shot noise gives ~0.01
    coeffs, rms = fit_wavelength_polynomial(found, lines, degree=2)
    assert rms < 0.01e-9
    assert np.abs(np.polyval(coeffs, cols) - wl).max() < 0.01e-9
    data = SpectrumData(frames=y, source="lamp")
    cal = polynomial_calibration(data, found, lines, degree=2)
    assert np.allclose(cal.wavelength_m, np.polyval(coeffs, cols))
    assert cal.calibration["method"] == "polynomial"
    assert np.allclose(cal.calibration["coefficients_m"], coeffs)
    with pytest.raises(ValueError, match="metres"):
        fit_wavelength_polynomial(found, lines * 1e9)


def test_to_photoelectrons():
    assert to_photoelectrons(np.array([300.0]), em_gain=300, preamp_gain_e_per_adu=10)[0] == 10
    with pytest.raises(ValueError):
        to_photoelectrons(np.ones(3), em_gain=0, preamp_gain_e_per_adu=10)


# ------------------------------------------------------------------------------ peak fits


def test_bright_particle_peak_and_width_simulated():
    setup = SpectrumSetup(read_mode="image", exposure_s=0.5, em_gain=300)
    d = simulate_spectrum([EmissionLine(1.968, 0.070)], 20.0, setup, rng=1)
    auto = dataclasses.replace(d, signal_rows=None, background_rows=None)
    for data in (d, auto):
        r = analyze_spectrum(data)
        assert r.n_peaks == 1 and not r.comparison["two_peaks_supported"]
        err = r.errors["peak_ev"]
        assert err < 1e-3  # a bright particle: sub-meV precision
        assert abs(r.peak_ev - 1.968) < max(4 * err, 0.3e-3)
        assert r.fwhm_mev == pytest.approx(70.0, rel=0.03)
        assert 0.6 < r.redchi < 1.6  # the EMCCD noise model holds (F² = 2)
        assert r.peak_nm == pytest.approx(1239.841984 / r.peak_ev)
        assert r.unit == "e"


def test_full_vertical_binning_under_strong_background():
    # FVB sums the background of 512 rows: ~20x the line's peak; flat per column, curved per eV.
    setup = SpectrumSetup(read_mode="fvb", exposure_s=0.5, em_gain=300)
    d = simulate_spectrum([EmissionLine(1.968, 0.070)], 20.0, setup, rng=3)
    r = analyze_spectrum(d, compare=False)
    assert abs(r.peak_ev - 1.968) < 4 * r.errors["peak_ev"]
    assert abs(r.fwhm_mev - 70.0) < 4 * r.errors["fwhm_mev"]


def test_uncertainties_are_calibrated():
    # 12 independent spectra: pulls should have mean ~0 and spread ~1 (sd of the sd ≈ 0.2).
    pulls_e, pulls_w = [], []
    for seed in range(12):
        data, _ = emccd([(1.968, 0.070, 1.0)], seed=100 + seed)
        r = analyze_spectrum(data, compare=False)
        pulls_e.append((r.peak_ev - 1.968) / r.errors["peak_ev"])
        pulls_w.append((r.fwhm_mev - 70.0) / r.errors["fwhm_mev"])
    for pulls in (pulls_e, pulls_w):
        assert abs(np.mean(pulls)) < 1.2  # 4 standard errors of a mean of 12
        assert 0.5 < np.std(pulls) < 1.8


def test_two_lines_need_two_peaks():
    setup = SpectrumSetup(read_mode="fvb", exposure_s=0.5, em_gain=300,
                          background_photons_per_pixel_s=0.05)
    lines = [EmissionLine(1.950, 0.065, photon_rate_hz=1.2e4),
             EmissionLine(2.020, 0.060, photon_rate_hz=0.8e4)]
    d = simulate_spectrum(lines, 20.0, setup, rng=4)
    r = analyze_spectrum(d)
    assert r.n_peaks == 2
    assert r.comparison["two_peaks_supported"] and r.comparison["delta_bic"] > 10
    found = sorted(p["peak_ev"] for p in r.peaks)
    assert found == pytest.approx([1.950, 2.020], abs=2e-3)
    assert r.peak_ev == pytest.approx(1.950, abs=2e-3)  # the brighter dot leads


def test_one_line_one_peak():
    data, _ = emccd([(1.968, 0.070, 1.0)], seed=9)
    r = analyze_spectrum(data)
    assert r.n_peaks == 1
    assert not r.comparison["two_peaks_supported"]
    assert r.comparison["p_value"] > 1e-3 or r.comparison["delta_bic"] < 10


@pytest.mark.parametrize("shape", ["lorentzian", "voigt"])
def test_other_line_shapes(shape):
    setup = SpectrumSetup(read_mode="fvb", exposure_s=0.5, em_gain=300,
                          background_photons_per_pixel_s=0.05)
    d = simulate_spectrum([EmissionLine(1.968, 0.060, shape=shape)], 20.0, setup, rng=5)
    r = analyze_spectrum(d, model=shape, compare=False)
    assert abs(r.peak_ev - 1.968) < 1e-3
    assert r.fwhm_mev == pytest.approx(60.0, rel=0.05)


def test_result_is_json_serialisable():
    data, _ = emccd([(1.968, 0.070, 1.0)], n_frames=10, seed=10)
    r = analyze_spectrum(data)
    assert isinstance(r, SpectrumResult)
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert set(d) >= {"peak_ev", "peak_nm", "fwhm_mev", "errors", "model", "n_peaks", "redchi",
                      "energy", "intensity", "fit"}
    assert len(d["energy"]) == len(d["fit"]) == len(d["intensity"])
    assert np.all(np.diff(d["energy"]) > 0)


def test_bad_input():
    data, _ = emccd([(1.968, 0.070, 1.0)], n_frames=2)
    with pytest.raises(FormatError, match="no wavelength calibration"):
        analyze_spectrum(dataclasses.replace(data, wavelength_m=None))
    with pytest.raises(ValueError, match="unknown peak model"):
        analyze_spectrum(data, model="pearson")


# ------------------------------------------------------------------------------ real file


def test_kinetic_series_end_to_end():
    d = open_spectrum(KINETIC)
    red = reduce_spectrum(d)
    assert red.cosmic_pixels > 0 and red.cosmic_pixels < 60  # a handful of real hits
    lines = find_lamp_lines(red.counts)
    wl_nm = np.interp(lines, np.arange(d.n_columns), d.wavelength_m) * 1e9
    assert lines.size >= 4
    assert np.all((wl_nm > 530) & (wl_nm < 593))
    # Strongest line at 550 nm with replicas spaced by ~28 meV on its high-energy side.
    strongest = wl_nm[np.argmax(np.interp(lines, np.arange(d.n_columns), red.counts))]
    assert strongest == pytest.approx(549.98, abs=0.1)
    r = analyze_spectrum(d)
    assert r.peak_nm == pytest.approx(549.98, abs=0.1)
    assert 1.0 < r.fwhm_mev < 4.0  # a sharp line: a few columns wide


# ------------------------------------------------------------------------------ fast kernels


def test_running_median_matches_ndimage():
    from scipy import ndimage
    from spad.analysis.spectrum_frames import _running_median

    rng = np.random.default_rng(5)
    for n in (1, 2, 6, 7, 40):
        for window in (1, 2, 4, 7, 9):
            # Integer values repeat, as camera ADU do; normal values do not.
            for x in (rng.integers(0, 4, n).astype(float), rng.normal(size=n)):
                out = np.empty(n)
                _running_median(x, window, out, np.empty(window))
                want = ndimage.median_filter(x, size=window, mode="nearest")
                assert np.array_equal(out, want), (n, window, x)


def test_median_inplace_matches_numpy():
    from spad.analysis.spectrum_frames import _median_inplace

    rng = np.random.default_rng(6)
    for n in (1, 2, 3, 750, 751):
        for x in (rng.integers(0, 3, n).astype(float), rng.exponential(size=n)):
            assert _median_inplace(x.copy()) == np.median(x)


def test_cosmic_mask_matches_plain_formulation():
    """The numba pass gives the mask of the ndimage formulation it replaced."""
    from scipy import ndimage
    from spad.analysis.spectrum_frames import _neighbours, _noise_floor

    rng = np.random.default_rng(7)
    frames = rng.poisson(3.0, size=(40, 5, 60)).astype(float) * 20.0
    frames[:, 2, 25:35] += 400.0
    for f, r, c in rng.integers(0, [40, 5, 60], size=(12, 3)):
        frames[f, r, c:c + 2] += 3000.0
    cleaned, mask = remove_cosmic_rays(frames)
    med = np.median(frames, axis=0)
    dev = frames - med
    local = ndimage.median_filter(dev, size=(1, 1, 7), mode="nearest")
    expected = med + local
    sigma_pix = 1.4826 * np.median(np.abs(dev - local), axis=0)
    level = (frames.sum(axis=0) - frames.max(axis=0)) / (frames.shape[0] - 1)
    sigma = _noise_floor(sigma_pix, level, expected)
    resid = frames - expected
    hits = (resid > 8.0 * sigma) & (resid > 0.5 * np.abs(expected))
    near = ndimage.binary_dilation(hits, structure=_neighbours(3))
    want = hits | (near & (resid > 4.0 * sigma))
    assert want.sum() >= 12
    assert np.array_equal(mask, want)
    assert np.array_equal(cleaned, np.where(want, expected, frames))


def test_median_sampled_matches_numpy():
    """Exact on ties, sorted input (the sample then misses the middle) and every size."""
    from spad.analysis.spectrum_frames import _SAMPLE, _median_sampled

    rng = np.random.default_rng(8)
    buf, sample = np.empty(2000), np.empty(_SAMPLE)
    for n in (1, 2, 511, 512, 513, 750, 751, 1999):
        for x in (rng.integers(0, 3, n).astype(float), rng.exponential(size=n),
                  np.sort(rng.normal(size=n)), np.sort(rng.normal(size=n))[::-1].copy(),
                  rng.integers(-5, 400, n) * 0.5):
            assert _median_sampled(x.copy(), buf, sample) == np.median(x), n


@pytest.mark.parametrize("shape", ["gaussian", "lorentzian", "voigt"])
def test_peak_model_matches_lmfit_lineshapes(shape):
    """The hand-written peaks are lmfit's line shapes (same names, same values)."""
    import lmfit
    from spad.analysis.spectrum_fit import _PeakFit

    x = np.linspace(1.8, 2.2, 300)
    per_ev = np.linspace(0.9, 1.1, 300)
    fit = _PeakFit(shape, 2, "linear", x, per_ev, np.zeros_like(x))
    p = fit.params(5.0, [(1.95, 0.02, 100.0), (2.05, 0.03, 50.0)])
    p["bg_slope"].set(value=3.0)
    want = (5.0 + 3.0 * (x - x.mean())) * per_ev
    for pre in ("p1_", "p2_"):
        kw = {k: p[pre + k].value for k in ("amplitude", "center", "sigma")}
        if shape == "voigt":
            kw["gamma"] = p[pre + "gamma"].value
        want = want + getattr(lmfit.lineshapes, shape)(x, **kw)
    assert np.allclose(fit.evaluate(p), want, rtol=1e-13, atol=0)


def test_no_frames_is_no_spectrum_not_a_peak():
    # a recording that ended before the camera's first exposure: the file has a calibrated
    # spectrum group with zero frames; numpy would turn it into NaNs and a fit into a peak
    empty = SpectrumData(frames=np.zeros((0, 512), dtype=np.uint16), wavelength_m=WL,
                         exposure_s=1.0, em_gain=100.0)
    with pytest.raises(ValueError, match="no spectrum frames"):
        analyze_spectrum(empty)


def test_particle_file_without_frames_says_so(tmp_path):
    from spad.analysis.particle import analyze_particle
    from spad.simulators.recipe import build
    from spad.simulators.stream import simulate

    from spad.particle import write_particle

    em, det = build("monomer", 1)
    path = tmp_path / "no_frames.h5"
    empty = SpectrumData(frames=np.zeros((0, 512), dtype=np.uint16), wavelength_m=WL,
                         exposure_s=1.0, em_gain=100.0)
    write_particle(path, simulate(em, det, 2.0, 1).run(), spectrum=empty)
    r = analyze_particle(path)
    assert r.spectrum is None
    assert "no spectrum: no spectrum frames were recorded" in r.notes
