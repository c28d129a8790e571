"""Scanning the slide, finding particles in the scan, and centring the focus on one.

- :func:`count_rate` measures the count rate where the focus is, from the tagger's own stream
  (start for a dwell time, decode, count the photons of both detectors).
- :func:`raster_scan` moves the stage over a grid (row by row, each row in the same direction)
  and builds the count-rate image, a row at a time (``on_row`` lets a display draw it live).
- :func:`find_particles` finds the bright spots of a scan with :mod:`scipy.ndimage`: a Gaussian
  smoothing of about the spot size, local maxima at least ``min_separation_m`` apart, above a
  brightness threshold (default: background + 6 robust standard deviations of the smoothed
  image; a user's threshold applies to the count rate above background), each refined to the
  intensity-weighted centre of its neighbourhood.
- :func:`optimise` centres the focus on a particle as a confocal position optimiser does: a
  small scan around the guess, fitted with a 2-D Gaussian plus background
  (:func:`scipy.optimize.curve_fit`); it reports "gone" when no spot brighter than the
  background remains (a particle that photobleached since the scan).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from spad.errors import DeviceError, SpadError
from spad.photons import SYNC

SCAN_STEP_M = 100e-9
"""Default scan step (``spad survey --step``, the Survey tab, the benchmark)."""
SCAN_DWELL_S = 0.002
"""Default dwell time per scan pixel."""


@dataclass
class Area:
    """A rectangle of the slide in stage coordinates (metres), scanned with ``step_m``."""

    x0_m: float
    y0_m: float
    x1_m: float
    y1_m: float
    step_m: float = SCAN_STEP_M
    dwell_s: float = SCAN_DWELL_S

    def __post_init__(self) -> None:
        if not (self.x1_m > self.x0_m and self.y1_m > self.y0_m):
            raise SpadError("survey: the area must have x0 < x1 and y0 < y1")
        if not (self.step_m > 0 and self.dwell_s > 0):
            raise SpadError("survey: the scan step and dwell time must be positive")
        n = self.shape[0] * self.shape[1]
        if n > 4_000_000:
            raise SpadError(f"survey: {n} scan pixels is too many (at most 4 million); use a "
                            "larger step or a smaller area")

    @property
    def xs(self) -> np.ndarray:
        return self.x0_m + self.step_m * np.arange(round((self.x1_m - self.x0_m)
                                                         / self.step_m) + 1)

    @property
    def ys(self) -> np.ndarray:
        return self.y0_m + self.step_m * np.arange(round((self.y1_m - self.y0_m)
                                                         / self.step_m) + 1)

    @property
    def shape(self) -> tuple[int, int]:
        return (round((self.y1_m - self.y0_m) / self.step_m) + 1,
                round((self.x1_m - self.x0_m) / self.step_m) + 1)

    @classmethod
    def parse(cls, text: str, step_m: float, dwell_s: float) -> Area:
        """``"X0,Y0,X1,Y1"`` in µm (the ``--area`` option)."""
        try:
            x0, y0, x1, y1 = (float(v) * 1e-6 for v in text.split(","))
        except ValueError:
            raise SpadError(f"survey: --area {text!r}: give X0,Y0,X1,Y1 in µm, e.g. "
                            "95,95,105,105") from None
        return cls(x0, y0, x1, y1, step_m, dwell_s)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class Candidate:
    """A spot found in the scan (or added by hand): where, how bright, and what became of it."""

    id: int
    x_m: float
    y_m: float
    rate_hz: float = 0.0
    status: str = "pending"
    """``pending``, ``recording``, ``done``, ``skipped`` (gone, or skipped by the user) or
    ``failed``."""
    verdict: str | None = None
    particle: str | None = None
    file: str | None = None
    note: str | None = None
    position: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_rate(tagger: Any, dwell_s: float) -> float:
    """Photons per second (both detectors, syncs excluded) over ``dwell_s`` where the focus
    is, from the tagger's stream."""
    from spad.formats.records import Decoder  # here: the CLI reads this module's defaults

    decoder = Decoder(tagger.record_type, tagger.timing)
    tagger.start(dwell_s)
    n = 0
    while (words := tagger.read()) is not None:
        if words.size:
            chunk = decoder.decode(words)
            n += int(np.count_nonzero(chunk.detectors != SYNC))
    return n / dwell_s


def raster_scan(stage: Any, tagger: Any, area: Area,
                on_row: Callable[[int, np.ndarray], None] | None = None,
                stopped: Callable[[], bool] | None = None) -> np.ndarray:
    """The count-rate image of ``area`` (rows: y, columns: x; counts/s).

    ``on_row(i, image)`` is called after each row; ``stopped()`` true ends the scan early
    (the rows not scanned are NaN)."""
    xs, ys = area.xs, area.ys
    image = np.full((ys.size, xs.size), np.nan)
    for i, y in enumerate(ys):
        if stopped is not None and stopped():
            break
        for j, x in enumerate(xs):
            stage.move_to(x_m=float(x), y_m=float(y))
            image[i, j] = count_rate(tagger, area.dwell_s)
        if on_row is not None:
            on_row(i, image)
    return image


def _background(image: np.ndarray) -> tuple[float, float]:
    """Robust background level and spread of an image (median, 1.4826 x MAD)."""
    v = image[np.isfinite(image)]
    if not v.size:
        return 0.0, 0.0
    med = float(np.median(v))
    return med, float(1.4826 * np.median(np.abs(v - med)))


def find_particles(image: np.ndarray, area: Area, *, threshold_hz: float | None = None,
                   min_separation_m: float = 0.5e-6, spot_sigma_m: float = 61e-9
                   ) -> list[Candidate]:
    """Bright spots of a scan (see the module docstring), brightest first.

    Parameters
    ----------
    image
        Count rates (rows y, columns x) of ``area``; NaN where not scanned.
    threshold_hz
        Smallest count rate above the background at a spot's brightest pixel. Whatever it
        is, a spot must stand out of the smoothed image by 6 robust sd of its background (and
        by 3 Poisson sd of the background count, for a nearly empty image).
    min_separation_m
        Spots closer than this are one (the brighter is kept).
    spot_sigma_m
        Size of the spots (the excitation PSF's sigma) for the smoothing.
    """
    from scipy import ndimage

    img = np.where(np.isfinite(image), image, np.nan)
    fill = np.nanmedian(img) if np.isfinite(img).any() else 0.0
    img = np.nan_to_num(img, nan=fill)
    sigma_px = max(0.7, spot_sigma_m / area.step_m)
    smooth = ndimage.gaussian_filter(img, sigma_px)
    bg, sd = _background(smooth)
    raw_bg = _background(img)[0]
    poisson = 3 * math.sqrt(max(bg, 1.0) / area.dwell_s) / (2 * math.sqrt(math.pi) * sigma_px)
    floor = bg + max(6 * sd, poisson, 1.0)
    size = max(3, int(2 * round(min_separation_m / area.step_m / 2) + 1))
    peaks = (smooth == ndimage.maximum_filter(smooth, size=size, mode="nearest")) & (
        smooth > floor)
    ii, jj = np.nonzero(peaks)
    order = np.argsort(-smooth[ii, jj])
    xs, ys = area.xs, area.ys
    out: list[Candidate] = []
    r = max(1, int(round(2 * sigma_px)))
    for k in order:
        i, j = int(ii[k]), int(jj[k])
        sl = (slice(max(0, i - r), i + r + 1), slice(max(0, j - r), j + r + 1))
        rate = float(img[sl].max() - raw_bg)
        if threshold_hz is not None and rate < threshold_hz:
            continue
        w = np.clip(img[sl] - raw_bg, 0, None)
        if w.sum() > 0:
            gy, gx = np.mgrid[sl]
            ci, cj = float((gy * w).sum() / w.sum()), float((gx * w).sum() / w.sum())
        else:
            ci, cj = float(i), float(j)
        x = float(xs[0] + cj * area.step_m)
        y = float(ys[0] + ci * area.step_m)
        if any(math.hypot(x - c.x_m, y - c.y_m) < min_separation_m for c in out):
            continue
        out.append(Candidate(len(out) + 1, x, y, rate))
    return out


@dataclass
class Optimised:
    """Where the optimiser put the focus and what it saw."""

    x_m: float
    y_m: float
    amplitude_hz: float
    background_hz: float
    sigma_m: float
    found: bool
    note: str = ""


def _gauss2d(xy: tuple[np.ndarray, np.ndarray], a: float, x0: float, y0: float, s: float,
             b: float) -> np.ndarray:
    x, y = xy
    return a * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * s * s)) + b


def optimise(stage: Any, tagger: Any, x_m: float, y_m: float, *, span_m: float = 0.6e-6,
             step_m: float = 50e-9, dwell_s: float = 0.01, min_rate_hz: float = 0.0,
             spot_sigma_m: float = 61e-9) -> Optimised:
    """Centre the focus on the particle near (x, y) (see the module docstring).

    A fit whose centre lies outside the small scan, whose width is unphysical, or whose
    amplitude is not clearly above the background (5 Poisson sd of one point, and at least
    ``min_rate_hz``) means the particle is gone; the focus then goes back to the guess.
    """
    from scipy.optimize import curve_fit

    rng = stage.get_range()
    half = span_m / 2
    n = int(round(span_m / step_m)) + 1
    xs = np.clip(x_m - half + step_m * np.arange(n), *rng["x"])
    ys = np.clip(y_m - half + step_m * np.arange(n), *rng["y"])
    img = np.empty((ys.size, xs.size))
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            stage.move_to(x_m=float(x), y_m=float(y))
            img[i, j] = count_rate(tagger, dwell_s)
    gx, gy = np.meshgrid(xs, ys)
    bg0 = float(np.percentile(img, 20))
    k = int(np.argmax(img))
    p0 = (float(img.flat[k] - bg0), float(gx.flat[k]), float(gy.flat[k]), spot_sigma_m, bg0)
    # Poisson weights: a point's sd is sqrt(counts) / dwell
    sd = np.sqrt(np.maximum(img * dwell_s, 1.0)) / dwell_s
    gone = Optimised(x_m, y_m, 0.0, bg0, 0.0, False)
    try:
        popt, _ = curve_fit(_gauss2d, (gx.ravel(), gy.ravel()), img.ravel(), p0=p0,
                            sigma=sd.ravel(), absolute_sigma=True, maxfev=2000)
    except (RuntimeError, ValueError):
        gone.note = "no spot in the optimiser scan (the fit did not converge)"
        return _back(stage, gone)
    a, x0, y0, s, b = (float(v) for v in popt)
    s = abs(s)
    noise = 5 * math.sqrt(max(b, 1.0) * dwell_s) / dwell_s
    if not (xs[0] <= x0 <= xs[-1] and ys[0] <= y0 <= ys[-1]):
        gone.note = "no spot in the optimiser scan (fitted centre outside it)"
    elif not (0.3 * spot_sigma_m <= s <= 5 * spot_sigma_m):
        gone.note = f"no spot in the optimiser scan (fitted width {s * 1e9:.0f} nm)"
    elif a < max(noise, min_rate_hz):
        gone.note = (f"gone: {a / 1e3:.1f} kcps above the background, less than "
                     f"{max(noise, min_rate_hz) / 1e3:.1f} kcps")
    else:
        stage.move_to(x_m=x0, y_m=y0)
        return Optimised(x0, y0, a, b, s, True)
    gone.background_hz = b
    return _back(stage, gone)


def _back(stage: Any, result: Optimised) -> Optimised:
    try:
        stage.move_to(x_m=result.x_m, y_m=result.y_m)
    except DeviceError:
        pass
    return result
