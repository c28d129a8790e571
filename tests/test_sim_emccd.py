"""The EMCCD noise model: mean, variance (excess noise), bias, read modes, ADC, cosmic rays."""

from __future__ import annotations

import numpy as np
import pytest
from spad.simulators.emccd import Emccd, Readout, cosmic_rays, emccd_frames

from spad.errors import DeviceError

SENSOR = Emccd(n_rows=64, n_columns=256)


def _moments_with_errors(x: np.ndarray) -> tuple[float, float, float, float]:
    """Sample mean and variance with their standard errors (from the data's own moments)."""
    x = x.astype(float).ravel()
    n = x.size
    m = x.mean()
    d2 = (x - m) ** 2
    return m, d2.mean(), x.std() / np.sqrt(n), d2.std() / np.sqrt(n)


@pytest.mark.parametrize("gain", [50.0, 300.0])
def test_high_gain_mean_and_excess_noise(gain: float) -> None:
    readout = Readout.image(SENSOR)
    phi = np.full((6, SENSOR.n_rows, SENSOR.n_columns), 4.0)
    adu = emccd_frames(phi, SENSOR, readout, gain, 0.08, np.random.default_rng(1),
                       with_cosmic_rays=False)
    mu_e = SENSOR.quantum_efficiency * 4.0 + SENSOR.dark_e_per_pixel_s * 0.08 \
        + SENSOR.cic_e_per_pixel
    p = SENSOR.preamp_gain_e_per_adu
    mean, var, se_mean, se_var = _moments_with_errors(adu)
    assert mean == pytest.approx(SENSOR.bias_adu + gain * mu_e / p, abs=5 * se_mean)
    # Var = 2 g² μ / p² + read² + rounding 1/12: the factor 2 is the excess noise factor √2 squared
    expected_var = 2 * gain ** 2 * mu_e / p ** 2 + SENSOR.read_noise_adu ** 2 + 1 / 12
    assert var == pytest.approx(expected_var, abs=5 * se_var)
    # and it is clearly not the noise of a noiseless (Poisson-only) amplifier
    assert abs(var - (expected_var - gain ** 2 * mu_e / p ** 2)) > 20 * se_var


def test_unit_gain_is_poisson_plus_read_noise() -> None:
    readout = Readout.image(SENSOR)
    phi = np.full((6, SENSOR.n_rows, SENSOR.n_columns), 300.0)
    adu = emccd_frames(phi, SENSOR, readout, 1.0, 0.08, np.random.default_rng(2),
                       with_cosmic_rays=False)
    mu_e = SENSOR.quantum_efficiency * 300.0 + SENSOR.dark_e_per_pixel_s * 0.08 \
        + SENSOR.cic_e_per_pixel
    p = SENSOR.preamp_gain_e_per_adu
    mean, var, se_mean, se_var = _moments_with_errors(adu)
    assert mean == pytest.approx(SENSOR.bias_adu + mu_e / p, abs=5 * se_mean)
    assert var == pytest.approx(mu_e / p ** 2 + SENSOR.read_noise_adu ** 2 + 1 / 12,
                                abs=5 * se_var)


def test_dark_frames_sit_at_bias_with_read_noise() -> None:
    sensor = Emccd(n_rows=64, n_columns=256, bias_adu=412.0, cic_e_per_pixel=0.0,
                   dark_e_per_pixel_s=0.0)
    adu = emccd_frames(np.zeros((8, 64, 256)), sensor, Readout.image(sensor), 200.0, 0.08,
                       np.random.default_rng(3), with_cosmic_rays=False)
    mean, var, se_mean, se_var = _moments_with_errors(adu)
    assert mean == pytest.approx(412.0, abs=5 * se_mean)
    assert var == pytest.approx(sensor.read_noise_adu ** 2 + 1 / 12, abs=5 * se_var)


def test_clock_induced_charge_gives_rare_bright_single_electron_events() -> None:
    sensor = Emccd(n_rows=64, n_columns=256, cic_e_per_pixel=0.01, dark_e_per_pixel_s=0.0)
    adu = emccd_frames(np.zeros((20, 64, 256)), sensor, Readout.image(sensor), 500.0, 0.08,
                       np.random.default_rng(4), with_cosmic_rays=False)
    # One electron at gain 500 is ~50 ADU above bias vs 5 ADU read noise: a threshold at
    # 30 ADU (6 sigma) counts events; P(Gamma(1, 500) > 300 e) = exp(-0.6).
    events = np.count_nonzero(adu > sensor.bias_adu + 30)
    expected = adu.size * 0.01 * np.exp(-0.6)
    assert events == pytest.approx(expected, abs=5 * np.sqrt(expected))


def test_adc_clips_and_quantises() -> None:
    sensor = Emccd(n_rows=4, n_columns=16, adc_bits=14)
    adu = emccd_frames(np.full((2, 4, 16), 1e6), sensor, Readout.image(sensor), 300.0, 0.08,
                       np.random.default_rng(5), with_cosmic_rays=False)
    assert adu.dtype == np.uint16
    assert np.all(adu == 2 ** 14 - 1)


def test_fvb_and_track_bin_rows_on_chip() -> None:
    fvb = Readout.fvb(SENSOR)
    track = Readout.single_track(SENSOR, 20, 6)
    assert track.tracks == ((17, 23),)
    per_row = np.arange(SENSOR.n_rows, dtype=float)
    assert fvb.bin_rows(per_row)[0] == per_row.sum()
    assert track.bin_rows(per_row)[0] == per_row[17:23].sum()
    multi = Readout.multi_track(SENSOR, 3, 8)
    assert multi.n_outputs == 3 and all(b - a == 8 for a, b in multi.tracks)
    phi = np.full((3, 1, SENSOR.n_columns), 50.0)
    adu = emccd_frames(phi, SENSOR, fvb, 100.0, 0.08, np.random.default_rng(6),
                       with_cosmic_rays=False)
    assert adu.shape == (3, SENSOR.n_columns)
    # spurious charge of all 64 binned rows enters the one output pixel, read noise only once
    mu_e = SENSOR.quantum_efficiency * 50 + 64 * (SENSOR.cic_e_per_pixel
                                                 + SENSOR.dark_e_per_pixel_s * 0.08)
    mean, _, se_mean, _ = _moments_with_errors(adu)
    assert mean == pytest.approx(SENSOR.bias_adu + 100 * mu_e / 10, abs=5 * se_mean)


def test_bad_settings_raise_device_error() -> None:
    with pytest.raises(DeviceError, match="EM gain"):
        emccd_frames(np.zeros((1, 64, 256)), SENSOR, Readout.image(SENSOR), 5000.0, 0.08,
                     np.random.default_rng(0))
    with pytest.raises(DeviceError, match="outside the chip"):
        Readout.single_track(SENSOR, 62, 8)
    with pytest.raises(ValueError, match="mean_photons must be"):
        emccd_frames(np.zeros((1, 3, 256)), SENSOR, Readout.image(SENSOR), 1.0, 0.08,
                     np.random.default_rng(0))


def test_cosmic_rays_are_rare_bright_and_only_where_read() -> None:
    sensor = Emccd(n_rows=64, n_columns=256, cosmic_ray_rate_per_m2_s=2e5)
    image = Readout.image(sensor)
    rng = np.random.default_rng(7)
    hits = cosmic_rays(sensor, image, 50, 0.08, rng)
    area = 64 * 256 * sensor.pixel_size_m ** 2
    expected_hits = 2e5 * area * 0.08 * 50
    total = hits.sum()
    # total charge = sum of N exponential deposits: mean N·q, sd q·sqrt(2N)
    q = sensor.cosmic_ray_mean_e
    assert total == pytest.approx(expected_hits * q, abs=5 * q * np.sqrt(2 * expected_hits))
    assert np.count_nonzero(hits) < 0.01 * hits.size
    # A track of 8 rows sees only hits that cross its rows: ~8/64 of the charge.
    track = Readout.single_track(sensor, 32, 8)
    in_track = cosmic_rays(sensor, track, 400, 0.08, np.random.default_rng(8)).sum()
    full = cosmic_rays(sensor, Readout.fvb(sensor), 400, 0.08, np.random.default_rng(8)).sum()
    assert 0.05 < in_track / full < 0.25
    frames = emccd_frames(np.zeros((50, 64, 256)), sensor, image, 100.0, 0.08, rng)
    assert frames.max() > sensor.bias_adu + 1000
