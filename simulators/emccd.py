"""EMCCD noise model: photons on the chip to ADU frames (docs/physics.md, "Instruments";
Robbins & Hadwen, IEEE Trans. Electron Devices 50, 1227 (2003)).

Per output pixel and frame:

- photoelectrons and spurious charge: ``n ~ Poisson(QE·φ·t + dark·t + CIC)`` (summed over the
  physical pixels binned into the output pixel; sums of Poisson variables are Poisson);
- cosmic rays: rare streaks of a few pixels that deposit thousands of electrons, added to ``n``
  before the gain register like any charge in the well;
- EM register: ``m ~ Gamma(shape n, scale g)`` (``n = 0`` gives 0; no multiplication at g = 1),
  which gives the excess noise factor √2 at high gain: ``Var m = 2 g² E[n]``;
- readout: ``ADU = bias + m / preamp + Normal(0, read_noise / preamp)``, rounded and clipped to
  the ADC range.

The read-out geometry (full vertical binning, tracks, image) is a :class:`Readout`: each output
row is the on-chip sum of a range of physical rows, read with a single read noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from spad.errors import DeviceError

ReadMode = Literal["fvb", "single_track", "multi_track", "image"]
READ_MODES: tuple[str, ...] = ("fvb", "single_track", "multi_track", "image")


@dataclass(frozen=True)
class Emccd:
    """An EMCCD sensor, defaults like an Andor iXon3 897 (512 x 512, 16 µm, 1 MHz 16-bit).

    Parameters
    ----------
    n_rows, n_columns
        Physical pixels; columns run along the spectrograph's dispersion axis.
    pixel_size_m
        Pixel pitch.
    quantum_efficiency
        Photoelectrons per photon (back-illuminated, ~0.9 at 630 nm).
    dark_e_per_pixel_s
        Dark current at the operating temperature (-80 °C).
    cic_e_per_pixel
        Clock-induced charge per pixel and frame.
    read_noise_e
        Read noise of the output amplifier in electrons rms (after the EM register, so it is
        divided by the EM gain when referred to the input).
    preamp_gain_e_per_adu
        Electrons (after the EM register) per ADU.
    bias_adu
        Offset added by the ADC.
    adc_bits
        ADC depth; values are clipped to ``[0, 2**adc_bits - 1]``.
    max_em_gain
        Largest EM gain the camera accepts.
    cosmic_ray_rate_per_m2_s
        Cosmic-ray hits per area of read-out chip and second (sea level: ~1-2 per cm² per min).
    cosmic_ray_mean_e
        Mean electrons deposited by one hit (spread over its streak).
    """

    n_rows: int = 512
    n_columns: int = 512
    pixel_size_m: float = 16e-6
    quantum_efficiency: float = 0.9
    dark_e_per_pixel_s: float = 1e-3
    cic_e_per_pixel: float = 0.005
    read_noise_e: float = 50.0
    preamp_gain_e_per_adu: float = 10.0
    bias_adu: float = 300.0
    adc_bits: int = 16
    max_em_gain: float = 1000.0
    cosmic_ray_rate_per_m2_s: float = 250.0
    cosmic_ray_mean_e: float = 2000.0

    @property
    def adc_max(self) -> int:
        """Largest ADU value."""
        return (1 << self.adc_bits) - 1

    @property
    def read_noise_adu(self) -> float:
        """Read noise in ADU rms."""
        return self.read_noise_e / self.preamp_gain_e_per_adu

    def check_gain(self, em_gain: float, device: str = "simulated EMCCD") -> float:
        """Return ``em_gain`` as float, or raise DeviceError if the camera cannot set it."""
        g = float(em_gain)
        if not (1.0 <= g <= self.max_em_gain):
            raise DeviceError(device, f"EM gain {em_gain!r} outside 1..{self.max_em_gain:g}")
        return g


@dataclass(frozen=True)
class Readout:
    """Which physical rows are summed into which output row.

    Parameters
    ----------
    mode
        ``"fvb"``, ``"single_track"``, ``"multi_track"`` or ``"image"``.
    tracks
        ``(start, stop)`` physical row range of each output row (stop exclusive).
    """

    mode: ReadMode
    tracks: tuple[tuple[int, int], ...]

    @classmethod
    def fvb(cls, sensor: Emccd) -> Readout:
        """Full vertical binning: all rows summed into one spectrum."""
        return cls("fvb", ((0, sensor.n_rows),))

    @classmethod
    def single_track(cls, sensor: Emccd, centre_row: int, height: int) -> Readout:
        """One track of ``height`` rows centred on ``centre_row`` summed into one spectrum."""
        start = int(centre_row) - int(height) // 2
        return cls("single_track", (_check_range(sensor, start, start + int(height)),))

    @classmethod
    def multi_track(cls, sensor: Emccd, n_tracks: int, height: int, offset: int = 0
                    ) -> Readout:
        """``n_tracks`` equal tracks spread evenly over the chip (Andor's multi-track)."""
        if n_tracks < 1 or height < 1 or n_tracks * height > sensor.n_rows:
            raise DeviceError("simulated EMCCD",
                              f"{n_tracks} tracks of {height} rows do not fit {sensor.n_rows}")
        gap = (sensor.n_rows - n_tracks * height) // (n_tracks + 1)
        tracks = []
        for i in range(n_tracks):
            start = gap + i * (height + gap) + int(offset)
            tracks.append(_check_range(sensor, start, start + height))
        return cls("multi_track", tuple(tracks))

    @classmethod
    def image(cls, sensor: Emccd, row_start: int = 0, row_stop: int | None = None) -> Readout:
        """Every row of ``[row_start, row_stop)`` read separately (an image region)."""
        stop = sensor.n_rows if row_stop is None else int(row_stop)
        start, stop = _check_range(sensor, int(row_start), stop)
        return cls("image", tuple((r, r + 1) for r in range(start, stop)))

    @property
    def n_outputs(self) -> int:
        """Output rows per frame."""
        return len(self.tracks)

    @property
    def squeezed(self) -> bool:
        """True if frames come out as 1-D spectra (fvb, single track)."""
        return self.mode in ("fvb", "single_track")

    def pixels_per_output(self) -> np.ndarray:
        """Physical pixels summed into each output row."""
        return np.array([b - a for a, b in self.tracks], dtype=float)

    def bin_rows(self, per_row: np.ndarray) -> np.ndarray:
        """Sum a per-physical-row quantity (last axis = rows) over each track."""
        c = np.concatenate([np.zeros(per_row.shape[:-1] + (1,)),
                            np.cumsum(per_row, axis=-1)], axis=-1)
        return np.stack([c[..., b] - c[..., a] for a, b in self.tracks], axis=-1)

    def output_of_row(self) -> np.ndarray:
        """Output row index of each physical row, -1 for rows that are not read (discarded)."""
        out = np.full(max(b for _, b in self.tracks), -1, dtype=np.int64)
        for i, (a, b) in enumerate(self.tracks):
            out[a:b] = i
        return out


def _check_range(sensor: Emccd, start: int, stop: int) -> tuple[int, int]:
    if not (0 <= start < stop <= sensor.n_rows):
        raise DeviceError("simulated EMCCD",
                          f"rows {start}..{stop} outside the chip's 0..{sensor.n_rows}")
    return (start, stop)


def em_register(electrons: np.ndarray, em_gain: float, rng: np.random.Generator) -> np.ndarray:
    """Electrons out of the EM register for ``electrons`` in (Gamma(n, g); exact at g = 1)."""
    n = np.asarray(electrons, dtype=float)
    if em_gain == 1.0:
        return n
    # numpy's gamma gives 0 for shape 0, which is the right answer for an empty pixel.
    return rng.gamma(n, em_gain)


def digitise(output_e: np.ndarray, sensor: Emccd, rng: np.random.Generator) -> np.ndarray:
    """ADU from electrons at the output amplifier: bias, preamp gain, read noise, ADC."""
    adu = (sensor.bias_adu + output_e / sensor.preamp_gain_e_per_adu
           + rng.normal(0.0, sensor.read_noise_adu, size=np.shape(output_e)))
    adu = np.clip(np.rint(adu), 0, sensor.adc_max)
    return adu.astype(np.uint16 if sensor.adc_bits <= 16 else np.uint32)


def cosmic_rays(sensor: Emccd, readout: Readout, n_frames: int, exposure_s: float,
                rng: np.random.Generator) -> np.ndarray:
    """Electrons deposited by cosmic rays, as ``(n_frames, n_outputs, n_columns)``.

    Hits fall uniformly over the chip (rows that are not read are discarded with their charge);
    each hit is a straight streak of 1-6 pixels in a random direction sharing an exponentially
    distributed charge.
    """
    out = np.zeros((n_frames, readout.n_outputs, sensor.n_columns))
    area = sensor.n_rows * sensor.n_columns * sensor.pixel_size_m ** 2
    n_hits = rng.poisson(sensor.cosmic_ray_rate_per_m2_s * area * exposure_s * n_frames)
    if n_hits == 0:
        return out
    row_map = np.full(sensor.n_rows, -1, dtype=np.int64)
    known = readout.output_of_row()
    row_map[:known.size] = known
    frame = rng.integers(0, n_frames, n_hits)
    r0 = rng.uniform(0, sensor.n_rows, n_hits)
    c0 = rng.uniform(0, sensor.n_columns, n_hits)
    length = rng.integers(1, 7, n_hits)
    angle = rng.uniform(0, np.pi, n_hits)
    charge = rng.exponential(sensor.cosmic_ray_mean_e, n_hits)
    for k in range(n_hits):
        steps = np.arange(length[k])
        rows = np.floor(r0[k] + steps * np.sin(angle[k])).astype(np.int64)
        cols = np.floor(c0[k] + steps * np.cos(angle[k])).astype(np.int64)
        ok = (rows >= 0) & (rows < sensor.n_rows) & (cols >= 0) & (cols < sensor.n_columns)
        rows, cols = rows[ok], cols[ok]
        target = row_map[rows]
        keep = target >= 0
        np.add.at(out[frame[k]], (target[keep], cols[keep]), charge[k] / length[k])
    return out


def emccd_frames(mean_photons: np.ndarray, sensor: Emccd, readout: Readout, em_gain: float,
                 exposure_s: float, rng: np.random.Generator, *,
                 with_cosmic_rays: bool = True) -> np.ndarray:
    """Frames in ADU for the expected photons reaching each output pixel.

    Parameters
    ----------
    mean_photons
        Expected photons per exposure arriving on each output pixel (already summed over the
        physical rows of its track), shape ``(n_frames, readout.n_outputs, sensor.n_columns)``.
    sensor, readout
        The camera and its read-out geometry.
    em_gain
        EM multiplication gain (1 = no multiplication).
    exposure_s
        Exposure per frame (scales dark current).
    rng
        Random generator.
    with_cosmic_rays
        Add cosmic-ray hits at the sensor's rate.

    Returns
    -------
    ADU frames, ``(n_frames, n_columns)`` for fvb / single track, else
    ``(n_frames, n_outputs, n_columns)``; uint16 for ADCs up to 16 bits.
    """
    phi = np.asarray(mean_photons, dtype=float)
    expected_shape = (readout.n_outputs, sensor.n_columns)
    if phi.ndim != 3 or phi.shape[1:] != expected_shape:
        raise ValueError(f"mean_photons must be (n_frames, {expected_shape[0]}, "
                         f"{expected_shape[1]}), not {phi.shape}")
    if np.any(phi < 0) or not np.all(np.isfinite(phi)):
        raise ValueError("mean_photons must be finite and non-negative")
    if not exposure_s > 0:
        raise ValueError(f"exposure must be positive, not {exposure_s!r} s")
    gain = sensor.check_gain(em_gain)
    spurious = (sensor.dark_e_per_pixel_s * exposure_s + sensor.cic_e_per_pixel)
    spurious = spurious * readout.pixels_per_output()[:, None]
    n = rng.poisson(sensor.quantum_efficiency * phi + spurious)
    if with_cosmic_rays:
        n = n + np.rint(cosmic_rays(sensor, readout, phi.shape[0], exposure_s, rng))
    adu = digitise(em_register(n, gain, rng), sensor, rng)
    return adu[:, 0, :] if readout.squeezed else adu
