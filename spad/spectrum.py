"""The spectrum data model: EMCCD frames with their wavelength calibration.

Whatever produced them (the simulated or real iXon behind a spectrograph, an Andor .sif, a
Princeton .spe, a CSV, a particle file), spectra reach the analysis as a :class:`SpectrumData`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SpectrumData:
    """Camera frames of one particle's emission and what is needed to read them.

    Parameters
    ----------
    frames
        Raw counts (ADU) as ``(n_frames, n_rows, n_columns)`` for images/tracks, or
        ``(n_frames, n_columns)`` for full-vertical-binning or already-summed spectra. Columns run
        along the dispersion axis.
    wavelength_m
        Vacuum wavelength in metres at the centre of each column, or ``None`` if uncalibrated.
    exposure_s
        Exposure time per frame in seconds.
    em_gain
        EM gain of the EMCCD (1 for a conventional CCD or unknown).
    bias_adu
        Bias (offset) level in ADU if known; ``None`` means estimate it from the data.
    preamp_gain_e_per_adu
        Electrons per ADU after the EM register, if known.
    calibration
        How ``wavelength_m`` was obtained, e.g. ``{"method": "grating", **spectrograph settings,
        "centre_wavelength_m": ..., "pixel_size_m": ...}`` or ``{"method": "polynomial",
        "coefficients_m": [...]}`` (coefficients of λ(pixel) in metres, highest power first).
    signal_rows, background_rows
        Row ranges ``(start, stop)`` of the particle's track and of background rows, for 3-D
        frames; ``None`` to choose automatically.
    source
        File the data came from, or a description.
    metadata
        Anything else the source recorded.
    """

    frames: np.ndarray
    wavelength_m: np.ndarray | None = None
    exposure_s: float | None = None
    em_gain: float = 1.0
    bias_adu: float | None = None
    preamp_gain_e_per_adu: float | None = None
    calibration: dict[str, Any] = field(default_factory=dict)
    signal_rows: tuple[int, int] | None = None
    background_rows: tuple[int, int] | None = None
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames)
        if self.frames.ndim == 1:
            self.frames = self.frames[np.newaxis, :]
        if self.frames.ndim not in (2, 3):
            raise ValueError(f"frames must be (n_frames, [n_rows,] n_columns), "
                             f"not shape {self.frames.shape}")
        if self.wavelength_m is not None:
            self.wavelength_m = np.asarray(self.wavelength_m, dtype=float)
            if self.wavelength_m.shape != (self.n_columns,):
                raise ValueError(f"wavelength_m has {self.wavelength_m.size} values for "
                                 f"{self.n_columns} columns")
            if np.nanmax(self.wavelength_m) > 1e-4:
                # Wavelengths in nm stored where metres are expected are a classic unit slip.
                raise ValueError("wavelength_m must be in metres (values above 100 µm found; "
                                 "nanometres?)")
            w = self.wavelength_m
            step = np.diff(w)
            if not (np.all(np.isfinite(w)) and np.all(w > 0)):
                raise ValueError("wavelength_m must be positive numbers (NaN, infinite, zero "
                                 "or negative values found)")
            if w.size > 1 and not (np.all(step > 0) or np.all(step < 0)):
                # a constant (or zig-zag) axis has no dispersion to convert counts per pixel
                raise ValueError("the wavelength axis must rise or fall strictly from column "
                                 f"to column ({w.min() * 1e9:g}-{w.max() * 1e9:g} nm, with "
                                 "repeated or reversing values)")

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def n_columns(self) -> int:
        return int(self.frames.shape[-1])

    @property
    def is_image(self) -> bool:
        """True if frames keep their rows (3-D)."""
        return self.frames.ndim == 3
