"""The spectrum simulator: line shapes, dispersion, track, blinking, spectral diffusion."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import curve_fit
from spad.simulators.emccd import Emccd, Readout
from spad.simulators.spectrum import (
    EmissionLine,
    SpectrumSetup,
    column_fractions,
    frame_average,
    mean_photons,
    pixel_edges_m,
    row_fractions,
    simulate_spectrum,
    spectral_diffusion,
)

from spad.optics import HC_EV_M, Spectrograph, spectrum_to_energy, wavelength_to_energy

SP = Spectrograph()


def _gauss(e: np.ndarray, a: float, e0: float, s: float, b: float) -> np.ndarray:
    return a * np.exp(-0.5 * ((e - e0) / s) ** 2) + b


def test_pixel_edges_bracket_the_pixel_centres() -> None:
    edges = pixel_edges_m(SP, 630e-9, 512, 16e-6)
    centres = SP.wavelengths(630e-9, 512, 16e-6)
    assert edges.size == 513
    assert np.all(edges[:-1] < centres) and np.all(centres < edges[1:])
    assert np.allclose(0.5 * (edges[:-1] + edges[1:]), centres, rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("shape", ["gaussian", "lorentzian", "voigt"])
def test_line_integrates_to_what_falls_on_the_chip(shape: str) -> None:
    line = EmissionLine(1.98, 0.07, shape=shape)
    edges = pixel_edges_m(SP, 626e-9, 512, 16e-6)
    frac = column_fractions(line, edges)[0]
    e_hi, e_lo = HC_EV_M / edges[0], HC_EV_M / edges[-1]
    if shape == "voigt":
        # numerical CDF of the Voigt density on a fine grid
        e = np.linspace(e_lo, e_hi, 200001)
        on_chip = np.trapezoid(line.density(e), e)
    else:
        on_chip = line.cdf(e_hi) - line.cdf(e_lo)
    assert frac.sum() == pytest.approx(on_chip, rel=1e-4)
    assert np.all(frac >= 0)


@pytest.mark.parametrize("shape", ["gaussian", "lorentzian", "voigt"])
def test_density_has_the_requested_fwhm(shape: str) -> None:
    line = EmissionLine(2.0, 0.065, shape=shape, lorentz_fraction=0.4)
    e = np.linspace(1.8, 2.2, 400001)
    d = line.density(e)
    above = e[d >= d.max() / 2]
    # Olivero-Longbothum is accurate to 0.02 %; the grid step is 1 µeV.
    assert above[-1] - above[0] == pytest.approx(0.065, rel=5e-4)


def test_noiseless_peak_is_at_the_emitter_energy_within_a_pixel() -> None:
    setup = SpectrumSetup(centre_wavelength_m=635e-9, background_photons_per_pixel_s=0.0)
    line = EmissionLine(1.962, 0.06)
    phi = mean_photons([line], setup, Readout.fvb(setup.sensor), np.ones((1, 1)))[0, 0]
    energy, density = spectrum_to_energy(setup.wavelength_m(), phi / np.gradient(
        setup.wavelength_m()))
    pixel_ev = np.abs(np.gradient(energy)).max()
    assert abs(energy[np.argmax(density)] - 1.962) <= pixel_ev


def test_noisy_spectrum_peak_through_the_whole_chain() -> None:
    """Simulated EMCCD frames, summed track minus background, fit in energy."""
    setup = SpectrumSetup(centre_wavelength_m=630e-9)
    line = EmissionLine(1.975, 0.07, photon_rate_hz=2e4)
    data = simulate_spectrum([line], 4.0, setup, rng=11)
    assert data.frames.shape == (50, 16, 512)
    frames = data.frames.astype(float) - data.bias_adu
    s0, s1 = data.signal_rows
    b0, b1 = data.background_rows
    signal = frames[:, s0:s1].sum(axis=(0, 1)) - frames[:, b0:b1].mean(axis=1).sum(axis=0) \
        * (s1 - s0)
    wl = data.wavelength_m
    energy, density = spectrum_to_energy(wl, signal / np.gradient(wl))
    p, _ = curve_fit(_gauss, energy, density, p0=[density.max(), 1.97, 0.03, 0.0])
    pixel_ev = np.abs(np.gradient(energy)).max()
    assert abs(p[1] - 1.975) < pixel_ev
    assert abs(p[2]) * 2.3548 == pytest.approx(0.07, rel=0.05)
    # the right number of photons: QE * rate * t * gain / preamp in ADU
    collected = signal.sum()
    expected = (setup.sensor.quantum_efficiency * 2e4 * 4.0 * setup.em_gain
                / setup.sensor.preamp_gain_e_per_adu)
    assert collected == pytest.approx(expected, rel=0.05)


def test_centre_wavelength_moves_the_line_by_the_dispersion() -> None:
    setup_a = SpectrumSetup(centre_wavelength_m=620e-9)
    setup_b = SpectrumSetup(centre_wavelength_m=625e-9)
    line = EmissionLine(wavelength_to_energy(622e-9), 0.02)
    peaks = []
    for s in (setup_a, setup_b):
        phi = mean_photons([line], s, Readout.fvb(s.sensor), np.ones((1, 1)))[0, 0]
        peaks.append(np.argmax(phi))
    wl = setup_a.wavelength_m()
    per_pixel = np.diff(wl)[peaks[1]]
    assert peaks[0] - peaks[1] == pytest.approx(5e-9 / per_pixel, abs=1.0)


def test_track_profile_over_rows() -> None:
    f = row_fractions(40, 20.3, 1.5)
    assert f.sum() == pytest.approx(1.0)
    assert np.argmax(f) == 20
    assert np.sum(np.arange(40) * f) == pytest.approx(20.3, abs=1e-6)
    setup = SpectrumSetup(track_centre_row=100.0, track_height=20)
    ro = setup.readout()
    assert ro.tracks[0][0] == 90 and ro.n_outputs == 20
    phi = mean_photons([EmissionLine(2.0, 0.07)], setup, ro, np.ones((1, 1)))[0]
    row_sum = phi.sum(axis=1)
    assert np.argmax(row_sum) == 10


def test_blinking_dark_frames_hold_only_background() -> None:
    setup = SpectrumSetup(read_mode="fvb", cosmic_rays=False)
    intensity = np.array([[1.0, 0.0, 1.0, 0.0]])
    phi = mean_photons([EmissionLine(2.0, 0.07)], setup, setup.readout(), intensity)
    bg = setup.background_photons_per_pixel_s * setup.exposure_s * setup.sensor.n_rows
    assert np.allclose(phi[1], bg) and np.allclose(phi[3], bg)
    # full vertical binning collects 512 rows of background; the line still stands out
    assert phi[0].max() - bg > 10.0


def test_frame_average_of_a_blinking_timeline() -> None:
    t = np.array([0.0, 0.03, 0.1, 0.25])
    v = np.array([1.0, 0.0, 0.5, 1.0])
    starts = np.array([0.0, 0.08, 0.16, 0.24])
    got = frame_average(t, v, starts, 0.08)
    fine = np.arange(0, 0.32, 1e-6) + 0.5e-6
    level = v[np.searchsorted(t, fine, side="right") - 1]
    brute = [level[(fine >= s) & (fine < s + 0.08)].mean() for s in starts]
    assert np.allclose(got, brute, atol=1e-4)


def test_spectral_diffusion_blurs_the_line() -> None:
    rng = np.random.default_rng(5)
    off = spectral_diffusion(400, 0.08, 0.01, 0.02, rng, n_sub=16)
    assert off.std() == pytest.approx(0.01, rel=0.1)
    line = EmissionLine(2.0, 0.03)
    edges = pixel_edges_m(SP, 620e-9, 512, 16e-6)
    sharp = column_fractions(line, edges)[0]
    blurred = column_fractions(line, edges, off).mean(axis=0)
    e = wavelength_to_energy(SP.wavelengths(620e-9, 512, 16e-6))

    def var(w: np.ndarray) -> float:
        m = np.sum(w * e) / w.sum()
        return float(np.sum(w * (e - m) ** 2) / w.sum())

    sigma = 0.03 / 2.3548
    assert var(sharp) == pytest.approx(sigma ** 2, rel=0.02)
    assert var(blurred) == pytest.approx(sigma ** 2 + off.var(), rel=0.05)


def test_read_modes_give_the_documented_shapes() -> None:
    line = [EmissionLine(2.0, 0.07)]
    for mode, shape in [("fvb", (3, 512)), ("single_track", (3, 512)),
                        ("multi_track", (3, 3, 512)), ("image", (3, 16, 512))]:
        data = simulate_spectrum(line, 0.24, SpectrumSetup(read_mode=mode), rng=1)
        assert data.frames.shape == shape, mode
        assert data.calibration["method"] == "grating"
        assert data.wavelength_m[0] < 630e-9 < data.wavelength_m[-1]


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="line shape"):
        EmissionLine(2.0, 0.07, shape="sinc")
    with pytest.raises(ValueError, match="not an optical"):
        EmissionLine(630.0, 0.07)
    with pytest.raises(ValueError, match="duration"):
        simulate_spectrum([EmissionLine(2.0, 0.07)], -1.0)
    with pytest.raises(ValueError, match="cannot be centred"):
        simulate_spectrum([EmissionLine(2.0, 0.07)], 0.1,
                          SpectrumSetup(Spectrograph(groove_density_per_m=1200e3),
                                        centre_wavelength_m=2000e-9))
    small = SpectrumSetup(sensor=Emccd(n_rows=32, n_columns=64), track_centre_row=16)
    assert simulate_spectrum([EmissionLine(2.0, 0.07)], 0.1, small, rng=0).frames.shape \
        == (1, 16, 64)


# -- the simulated spectrograph and camera behind the driver interfaces ----------------------

def _instruments(**scene_kw: object) -> tuple:
    from spad.simulators.instruments import (
        ManualClock,
        Scene,
        SimulatedCamera,
        SimulatedSpectrograph,
    )

    clock = ManualClock()
    spec = SimulatedSpectrograph(clock=clock)
    scene = Scene(lines=[EmissionLine(2.0, 0.06, photon_rate_hz=5e4)], track_centre_row=32.0,
                  **scene_kw)
    cam = SimulatedCamera(scene, spec, sensor=Emccd(n_rows=64, n_columns=512), seed=3,
                          clock=clock)
    return clock, spec, cam


def test_simulated_spectrograph_moves_take_time_and_bad_settings_raise() -> None:
    from spad.errors import DeviceError

    clock, spec, _ = _instruments()
    with pytest.raises(DeviceError, match="not open"):
        spec.get_centre_wavelength()
    spec.open()
    assert spec.get_centre_wavelength() == pytest.approx(630e-9)
    assert [g.index for g in spec.get_gratings()] == [1, 2, 3] and spec.get_grating() == 1
    spec.set_centre_wavelength(700e-9, wait=False)
    assert spec.is_moving()
    assert 630e-9 < spec.get_centre_wavelength() < 700e-9 or clock.now() == 0
    with pytest.raises(DeviceError, match="busy"):
        spec.set_centre_wavelength(650e-9)
    t0 = clock.now()
    spec.wait_until_idle()
    assert clock.now() > t0 and not spec.is_moving()
    assert spec.get_centre_wavelength() == pytest.approx(700e-9)
    with pytest.raises(DeviceError, match="outside the drive's range"):
        spec.set_centre_wavelength(-5e-9)
    with pytest.raises(DeviceError, match="no grating 7"):
        spec.set_grating(7)
    spec.set_grating(3)      # 1200 g/mm: 700 nm still fine
    assert spec.get_grating() == 3
    assert spec.get_optics().groove_density_per_m == 1200e3
    with pytest.raises(DeviceError, match="outside the drive's range|cannot be centred"):
        spec.set_centre_wavelength(1600e-9)


def test_simulated_camera_settings_and_acquisition_modes() -> None:
    from spad.errors import DeviceError

    clock, spec, cam = _instruments()
    with pytest.raises(DeviceError, match="not open"):
        cam.snap()
    cam.open(), spec.open()
    assert cam.get_detector_size() == (512, 64)
    cam.set_temperature(-80)
    assert cam.get_temperature_status() == "not_reached"
    clock.advance(100.0)
    assert cam.get_temperature() == pytest.approx(-80.0)
    assert cam.get_temperature_status() == "not_stabilized"
    clock.advance(20.0)
    assert cam.get_temperature_status() == "stabilized"
    cam.set_exposure(0.08)
    cam.set_em_gain(200)
    with pytest.raises(DeviceError, match="EM gain"):
        cam.set_em_gain(1e5)
    with pytest.raises(DeviceError, match="read mode"):
        cam.set_read_mode("sideways")  # type: ignore[arg-type]
    cam.set_read_mode("fvb")
    assert cam.snap().shape == (512,)
    cam.set_read_mode("single_track")
    cam.setup_single_track_mode(32, 8)
    with pytest.raises(DeviceError, match="outside the chip"):
        cam.setup_single_track_mode(62, 8)
    cam.set_acquisition_mode("kinetic", 5)
    cam.start_acquisition()
    with pytest.raises(DeviceError, match="during an acquisition"):
        cam.set_exposure(0.1)
    assert cam.get_frames_status() == (0, 0)
    cam.wait_for_frame()
    assert cam.get_frames_status()[0] == 1
    clock.advance(1.0)
    frames = cam.read_multiple_images()
    assert frames.shape == (5, 512) and not cam.acquisition_in_progress()
    with pytest.raises(DeviceError, match="no acquisition running"):
        cam.wait_for_frame()
    # the track holds the particle: its spectrum peaks near 2.0 eV
    wl = spec.get_optics().wavelengths(spec.get_centre_wavelength(), 512, 16e-6)
    smooth = np.convolve(frames.astype(float).mean(0), np.ones(21) / 21, "same")
    assert abs(wavelength_to_energy(wl[np.argmax(smooth[20:-20]) + 20]) - 2.0) < 0.01
    cam.set_read_mode("image")
    cam.set_roi(100, 300, 20, 44)
    cam.set_acquisition_mode("accum", 4)
    img = cam.snap()
    assert img.shape == (24, 200)
    # four exposures summed: bias counted four times
    assert np.median(img) == pytest.approx(4 * cam.sensor.bias_adu, rel=0.05)
    cam.set_acquisition_mode("cont")
    cam.start_acquisition()
    with pytest.raises(DeviceError, match="no frame within"):
        cam.wait_for_frame(timeout_s=0.01)
    clock.advance(0.5)
    cam.stop_acquisition()
    n, unread = cam.get_frames_status()
    assert n == unread == cam.read_multiple_images().shape[0] >= 1
    cam.close()


def test_camera_follows_the_spectrograph_and_the_scene() -> None:
    clock, spec, cam = _instruments(background_photons_per_pixel_s=0.0)
    cam.open(), spec.open()
    cam.sensor = Emccd(n_rows=64, n_columns=512, read_noise_e=0.0, cic_e_per_pixel=0.0,
                       dark_e_per_pixel_s=0.0, cosmic_ray_rate_per_m2_s=0.0)
    cam.set_read_mode("fvb")
    cam.set_exposure(1.0)
    peaks = []
    for wl in (620e-9, 640e-9):
        spec.set_centre_wavelength(wl)
        peaks.append(np.argmax(np.convolve(cam.snap().astype(float), np.ones(31), "same")))
    # moving the grating 20 nm to the red moves the line ~20 nm / 0.175 nm ≈ 114 px to the left
    assert peaks[0] - peaks[1] == pytest.approx(20e-9 / 0.1754e-9, abs=8)
    cam.scene.brightness = lambda t0, t1: [0.0]     # the particle switched off
    assert np.all(cam.snap() == cam.sensor.bias_adu)
