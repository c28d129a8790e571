"""Optics shared by the spectrum simulator and the spectrum analysis.

One place for the grating equation and the wavelength/energy conversions, so that what the
simulator puts on the camera and what the analysis reads off it cannot drift apart.

Units: metres, radians, electronvolts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

HC_EV_M: float = 1.239841984e-6
"""Planck constant times speed of light, in eV·m (E[eV] = HC_EV_M / λ[m])."""


def wavelength_to_energy(wavelength_m: np.ndarray | float) -> np.ndarray | float:
    """Photon energy in eV for a vacuum wavelength in metres."""
    return HC_EV_M / np.asarray(wavelength_m, dtype=float)


def energy_to_wavelength(energy_ev: np.ndarray | float) -> np.ndarray | float:
    """Vacuum wavelength in metres for a photon energy in eV."""
    return HC_EV_M / np.asarray(energy_ev, dtype=float)


def spectrum_to_energy(wavelength_m: np.ndarray, intensity_per_m: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Convert a spectral density per wavelength to one per energy.

    Applies the Jacobian ``I(E) = I(λ) · λ² / (hc)`` so that areas are conserved, and returns the
    result in increasing energy.

    Parameters
    ----------
    wavelength_m
        Wavelength axis in metres.
    intensity_per_m
        Intensity per unit wavelength on that axis (any scale; counts per pixel count as density
        if the pixels are narrow).

    Returns
    -------
    energy_ev, intensity_per_ev
    """
    wl = np.asarray(wavelength_m, dtype=float)
    energy = HC_EV_M / wl
    density = np.asarray(intensity_per_m, dtype=float) * wl**2 / HC_EV_M
    order = np.argsort(energy)
    return energy[order], density[..., order] if density.ndim > 1 else density[order]


@dataclass(frozen=True)
class Spectrograph:
    """A Czerny-Turner spectrograph with a flat detector at its exit focal plane.

    Parameters
    ----------
    groove_density_per_m
        Grating grooves per metre (300 g/mm = 3e5).
    focal_length_m
        Focal length of the focusing mirror (Acton SP-2300: 0.3 m).
    inclusion_angle_rad
        Angle between incident and diffracted beams at the grating (deviation angle).
    detector_tilt_rad
        Tilt of the detector plane from the normal to the central ray.
    order
        Diffraction order.
    """

    groove_density_per_m: float = 300e3
    focal_length_m: float = 0.300
    inclusion_angle_rad: float = float(np.deg2rad(30.0))
    detector_tilt_rad: float = 0.0
    order: int = 1

    @property
    def groove_spacing_m(self) -> float:
        return 1.0 / self.groove_density_per_m

    def grating_angle(self, centre_wavelength_m: float) -> float:
        """Grating rotation ψ that puts ``centre_wavelength_m`` on the central ray.

        From mλ = d(sin α + sin β) with α − β = D (inclusion) and α + β = 2ψ:
        mλ = 2d cos(D/2) sin ψ.
        """
        s = self.order * centre_wavelength_m / (2 * self.groove_spacing_m
                                                * np.cos(self.inclusion_angle_rad / 2))
        if not -1 < s < 1:
            raise ValueError(f"{centre_wavelength_m * 1e9:.1f} nm cannot be centred with "
                             f"{self.groove_density_per_m / 1e3:g} grooves/mm "
                             f"in order {self.order}")
        return float(np.arcsin(s))

    def wavelengths(self, centre_wavelength_m: float, n_pixels: int, pixel_size_m: float,
                    centre_pixel: float | None = None) -> np.ndarray:
        """Wavelength in metres at the centre of each detector pixel (grating equation).

        Parameters
        ----------
        centre_wavelength_m
            Wavelength set on the spectrograph (on the central ray).
        n_pixels
            Pixels along the dispersion axis.
        pixel_size_m
            Pixel pitch along the dispersion axis.
        centre_pixel
            Pixel position of the central ray; default the middle of the chip.
        """
        psi = self.grating_angle(centre_wavelength_m)
        alpha = psi + self.inclusion_angle_rad / 2
        beta_c = psi - self.inclusion_angle_rad / 2
        c = (n_pixels - 1) / 2 if centre_pixel is None else centre_pixel
        x = (np.arange(n_pixels) - c) * pixel_size_m
        g = self.detector_tilt_rad
        beta = beta_c + np.arctan(x * np.cos(g) / (self.focal_length_m + x * np.sin(g)))
        return self.groove_spacing_m * (np.sin(alpha) + np.sin(beta)) / self.order

    def to_dict(self) -> dict[str, float | int]:
        """Settings as a flat dict (for storing with the data)."""
        return asdict(self)
