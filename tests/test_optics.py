"""The grating equation and wavelength/energy conversions."""

from __future__ import annotations

import numpy as np
import pytest

from spad.optics import (
    HC_EV_M,
    Spectrograph,
    energy_to_wavelength,
    spectrum_to_energy,
    wavelength_to_energy,
)


def test_energy_wavelength_round_trip() -> None:
    assert wavelength_to_energy(620e-9) == pytest.approx(1.99974, rel=1e-5)
    wl = np.linspace(500e-9, 800e-9, 7)
    assert np.allclose(energy_to_wavelength(wavelength_to_energy(wl)), wl)


def test_jacobian_conserves_area() -> None:
    wl = np.linspace(560e-9, 700e-9, 4001)
    peak = np.exp(-0.5 * ((wl - 625e-9) / 8e-9) ** 2)
    e, ie = spectrum_to_energy(wl, peak)
    assert np.all(np.diff(e) > 0)
    assert np.trapezoid(ie, e) == pytest.approx(np.trapezoid(peak, wl), rel=1e-4)


def test_centre_pixel_gets_centre_wavelength_and_dispersion_is_physical() -> None:
    sp = Spectrograph(groove_density_per_m=300e3, focal_length_m=0.3)
    wl = sp.wavelengths(625e-9, 513, 16e-6)
    assert wl[256] == pytest.approx(625e-9, rel=1e-12)
    assert np.all(np.diff(wl) > 0)
    # linear dispersion d·cosβ/(m f) at the centre
    psi = sp.grating_angle(625e-9)
    beta = psi - sp.inclusion_angle_rad / 2
    expected = sp.groove_spacing_m * np.cos(beta) / sp.focal_length_m * 16e-6
    assert (wl[257] - wl[255]) / 2 == pytest.approx(expected, rel=1e-3)


def test_impossible_centre_wavelength_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be centred"):
        Spectrograph(groove_density_per_m=1800e3).wavelengths(1200e-9, 10, 16e-6)


def test_hc_constant() -> None:
    assert HC_EV_M == pytest.approx(6.62607015e-34 * 299792458 / 1.602176634e-19, rel=1e-9)
