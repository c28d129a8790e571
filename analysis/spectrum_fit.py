"""Peak fits of an emission spectrum in energy: Gaussian, Lorentzian or Voigt lines on a
background, weighted by the EMCCD noise model, with a one- vs two-peak comparison.

Part of the spectrum analysis (:mod:`spad.analysis.spectra` runs the whole chain). Spectra are
fitted
in energy after the Jacobian I(E) = I(λ)·λ²/(hc) (Mooney & Kambhampati, J. Phys. Chem. Lett. 4,
3316 (2013)). See docs/methods.md, "Spectra".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import special
from spad.analysis.distributions import f_sf
from spad.analysis.spectrum_frames import estimate_noise

from spad.optics import HC_EV_M, wavelength_to_energy

if TYPE_CHECKING:
    from spad.analysis.lmfit_lean import lmfit

PEAK_MODELS = ("gaussian", "lorentzian", "voigt")

# lmfit.lineshapes' constants, so that the hand-written peaks evaluate as lmfit's do.
_TINY = 1.0e-15
_S2 = math.sqrt(2.0)
_S2PI = math.sqrt(2.0 * math.pi)


# --------------------------------------------------------------------------------------------
# Peak fit


@dataclass
class SpectrumResult:
    """Fitted emission peak(s) of one spectrum.

    ``peak_*`` and ``fwhm_mev`` describe the brightest peak of the selected model (``n_peaks``
    is 2 only when the comparison supports a second peak); ``peaks`` lists every peak of it;
    ``comparison`` holds the one- vs two-peak statistics. Arrays are for plotting: energy (eV,
    increasing), intensity (per eV, in ``unit`` per eV), the fitted model and its 1σ noise.
    """

    peak_ev: float
    peak_nm: float
    fwhm_mev: float
    errors: dict[str, float | None]
    model: str
    n_peaks: int
    redchi: float
    peaks: list[dict[str, Any]]
    comparison: dict[str, Any]
    energy: np.ndarray
    intensity: np.ndarray
    fit: np.ndarray
    sigma: np.ndarray
    unit: str = "adu"
    source: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def peak_ev_err(self) -> float | None:
        """Standard error of ``peak_ev`` (eV), ``None`` if the fit gave none."""
        return self.errors.get("peak_ev")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (arrays as lists, NaN as None)."""
        return _jsonable(dataclasses.asdict(self))


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _amplitude_for(kind: str, height: float, sigma: float) -> float:
    """lmfit's 'amplitude' is the area; convert a height for a given sigma."""
    if kind == "lorentzian":
        return height * math.pi * sigma
    return height * sigma * math.sqrt(2 * math.pi)


class _PeakFit:
    """Weighted least squares of ``n_peaks`` peaks of one shape plus background, in energy.

    The model and its Jacobian are plain numpy on the fit window (no ``lmfit.Model``: its
    composite-model bookkeeping per call cost ~10 times the arithmetic); lmfit's ``Minimizer``
    keeps the bounds, the Levenberg-Marquardt iteration and the covariance. Parameter names,
    order and line shapes are those of lmfit's ``GaussianModel``/``LorentzianModel``/
    ``VoigtModel`` with prefixes ``p1_``, ``p2_`` plus ``bg_c``, ``bg_slope``, so results read
    the same as before.

    The background is constant or linear *per camera column*, as a density per eV: stray light
    and autofluorescence are smooth per column; per eV they follow the Jacobian (columns per eV,
    ``per_ev``, normalised to 1 at the window centre), which curves a flat background by ~30 %
    across a 300 meV window. A straight line in eV cannot follow that under a dominant
    background (full vertical binning) and would bend the peak.
    """

    def __init__(self, kind: str, n_peaks: int, background: str, x: np.ndarray,
                 per_ev: np.ndarray, y: np.ndarray) -> None:
        if kind not in PEAK_MODELS:
            raise ValueError(f"unknown peak model {kind!r}; choose from {PEAK_MODELS}")
        if background not in ("constant", "linear"):
            raise ValueError(f"background must be 'constant' or 'linear', not {background!r}")
        self.kind, self.n_peaks, self.background = kind, n_peaks, background
        self.x, self.per_ev, self.y = x, per_ev, y
        self.bg_slope_col = (x - x.mean()) * per_ev

    def params(self, bg: float, peaks: Sequence[tuple[float, float, float]]
               ) -> lmfit.Parameters:
        """Start values and bounds; ``peaks`` are (centre, sigma, height)."""
        x = self.x
        dx = float(np.median(np.diff(x)))
        span = float(x[-1] - x[0])
        from spad.analysis.lmfit_lean import lmfit  # with a spectrum only

        p = lmfit.Parameters()
        p.add("bg_c", value=bg)
        p.add("bg_slope", value=0.0, vary=self.background == "linear")
        for i, (c, s, h) in enumerate(peaks):
            pre = f"p{i + 1}_"
            s = float(np.clip(s, dx, span / 2))
            p.add(pre + "amplitude", value=max(_amplitude_for(self.kind, h, s), 1e-12), min=0)
            p.add(pre + "center", value=float(np.clip(c, x[0], x[-1])), min=x[0], max=x[-1])
            p.add(pre + "sigma", value=s, min=dx / 4, max=span)
        if self.kind == "voigt":
            for i in range(len(peaks)):
                pre = f"p{i + 1}_"
                p.add(pre + "gamma", value=p[pre + "sigma"].value / 2, min=0, max=span)
        return p

    def _values(self, params: lmfit.Parameters) -> list[tuple[float, ...]]:
        vals = []
        for i in range(1, self.n_peaks + 1):
            pre = f"p{i}_"
            g = params[pre + "gamma"].value if self.kind == "voigt" else 0.0
            vals.append((params[pre + "amplitude"].value, params[pre + "center"].value,
                         params[pre + "sigma"].value, g))
        return vals

    def component(self, a: float, c: float, s: float, g: float) -> np.ndarray:
        """One peak, as lmfit's line shapes compute it."""
        x = self.x
        if self.kind == "gaussian":
            return (a / max(_TINY, _S2PI * s)) * np.exp(-(x - c) ** 2 / max(_TINY, 2 * s * s))
        if self.kind == "lorentzian":
            return (a / (1 + ((x - c) / max(_TINY, s)) ** 2)) / max(_TINY, math.pi * s)
        z = (x - c + 1j * g) / max(_TINY, s * _S2)
        return a * special.wofz(z).real / max(_TINY, s * _S2PI)

    def evaluate(self, params: lmfit.Parameters) -> np.ndarray:
        """Model density per eV at the fit window's energies."""
        out = (params["bg_c"].value * self.per_ev
               + params["bg_slope"].value * self.bg_slope_col)
        for v in self._values(params):
            out = out + self.component(*v)
        return out

    def residual(self, params: lmfit.Parameters, weights: np.ndarray) -> np.ndarray:
        return (self.evaluate(params) - self.y) * weights

    def fit(self, params: lmfit.Parameters, weights: np.ndarray
            ) -> lmfit.minimizer.MinimizerResult:
        """Levenberg-Marquardt from ``params``; the result also carries ``best_fit`` and
        ``weights``.

        The Jacobian stays numerical, as before: an analytic one takes half the calls but
        follows another path, which moves the stderr of a parameter pinned at its bound (Voigt
        gamma at 0) and lands some two-peak starts in other minima."""
        from spad.analysis.lmfit_lean import lmfit  # with a spectrum only

        mini = lmfit.Minimizer(self.residual, params, fcn_args=(weights,))
        result = mini.leastsq()
        result.best_fit = self.evaluate(result.params)
        result.weights = weights
        return result


class _SplitFit(_PeakFit):
    """One asymmetric line: the model's shape with its own width on either side of the centre
    (a split or two-sided profile, as for a band with a phonon or size-distribution tail), at
    one height. It competes with two symmetric lines for a band that is merely skewed."""

    def __init__(self, kind: str, background: str, x: np.ndarray, per_ev: np.ndarray,
                 y: np.ndarray) -> None:
        super().__init__(kind, 1, background, x, per_ev, y)

    def params(self, bg: float, peaks: Sequence[tuple[float, float, float]]
               ) -> lmfit.Parameters:
        (c, s, h), = peaks
        x = self.x
        dx = float(np.median(np.diff(x)))
        span = float(x[-1] - x[0])
        s = float(np.clip(s, dx, span / 2))
        from spad.analysis.lmfit_lean import lmfit  # with a spectrum only

        p = lmfit.Parameters()
        p.add("bg_c", value=bg)
        p.add("bg_slope", value=0.0, vary=self.background == "linear")
        p.add("p1_height", value=max(h, 1e-12), min=0)
        p.add("p1_center", value=float(np.clip(c, x[0], x[-1])), min=x[0], max=x[-1])
        p.add("p1_sigma_low", value=s, min=dx / 4, max=span)
        p.add("p1_sigma_high", value=s, min=dx / 4, max=span)
        if self.kind == "voigt":
            p.add("p1_gamma", value=s / 2, min=0, max=span)
        return p

    def evaluate(self, params: lmfit.Parameters) -> np.ndarray:
        v = params.valuesdict()
        c = v["p1_center"]
        g = v.get("p1_gamma", 0.0)
        s = np.where(self.x < c, v["p1_sigma_low"], v["p1_sigma_high"])
        out = v["bg_c"] * self.per_ev + v["bg_slope"] * self.bg_slope_col
        dx = self.x - c
        if self.kind == "gaussian":
            shape = np.exp(-dx ** 2 / np.maximum(2 * s * s, _TINY))
        elif self.kind == "lorentzian":
            shape = 1 / (1 + (dx / np.maximum(s, _TINY)) ** 2)
        else:
            z = (dx + 1j * g) / np.maximum(s * _S2, _TINY)
            z0 = (1j * g) / np.maximum(s * _S2, _TINY)
            shape = special.wofz(z).real / special.wofz(z0).real
        return out + v["p1_height"] * shape


def _half_max_width(x: np.ndarray, y: np.ndarray, i: int) -> float:
    half = y[i] / 2
    lo = i
    while lo > 0 and y[lo] > half:
        lo -= 1
    hi = i
    while hi < y.size - 1 and y[hi] > half:
        hi += 1
    return float(max(x[hi] - x[lo], 2 * np.median(np.diff(x))))


def _to_energy(wavelength_m: np.ndarray, counts: np.ndarray, variance: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts per column to density per eV (Jacobian), increasing energy."""
    energy = np.asarray(wavelength_to_energy(wavelength_m))
    de = np.abs(np.gradient(energy))  # eV per column
    order = np.argsort(energy)
    return energy[order], (counts / de)[order], (variance / de**2)[order]


def fit_spectrum(wavelength_m: np.ndarray, counts: np.ndarray,
                 variance: np.ndarray | None = None, model: str = "gaussian",
                 background: str = "linear", energy_range_ev: tuple[float, float] | None = None,
                 compare: bool = True, noise_slope: float | None = None,
                 noise_floor: float | None = None, unit: str = "adu", source: str = ""
                 ) -> SpectrumResult:
    """Fit one or two peaks in energy and decide whether the second is supported.

    Counts per column are converted to a density per eV with the Jacobian |dE/dcolumn|. The fit
    is weighted least squares with the EMCCD noise model ``var = slope·model + floor``, refined
    once from the fitted model (iteratively reweighted), so that bright columns do not get the
    weight of dim ones and downward fluctuations are not favoured.

    A second peak is *supported* when the two-peak model lowers the BIC by more than 10 (strong
    evidence) and the F-test of the nested models gives p < 1e-3 (a conservative level, as the
    test is only approximate at the zero-amplitude boundary); it is *resolved* when each peak's
    area also exceeds three standard errors. The result has two peaks only when both hold: two
    lines closer than their widths make a significantly non-Gaussian band whose split into two
    peaks is not determined.

    Parameters
    ----------
    wavelength_m, counts
        Spectrum per column.
    variance
        Per-column variance of ``counts``; default from :func:`estimate_noise`.
    model
        ``"gaussian"``, ``"lorentzian"`` or ``"voigt"`` (profile in energy).
    background
        ``"constant"`` or ``"linear"`` per camera column (see :class:`_PeakFit`).
    energy_range_ev
        Fit window; default the brightest feature ± 4 of its half-maximum widths.
    compare
        Also fit two peaks and compare.
    noise_slope, noise_floor
        Noise model of ``counts`` used for reweighting; estimated when not given.
    unit, source
        Carried into the result.
    """
    if model not in PEAK_MODELS:
        raise ValueError(f"unknown peak model {model!r}; choose from {PEAK_MODELS}")
    wl = np.asarray(wavelength_m, dtype=float)
    y_col = np.asarray(counts, dtype=float)
    if wl.shape != y_col.shape or wl.ndim != 1 or wl.size < 8:
        raise ValueError("wavelength_m and counts must be 1-D of equal length (>= 8 columns)")
    from scipy import ndimage  # imported at first use: photon-only commands never need it

    if noise_slope is None or noise_floor is None:
        noise_slope, noise_floor = estimate_noise(y_col, noise_slope)
    if variance is None:
        level = ndimage.median_filter(y_col, size=9, mode="nearest")
        variance = noise_slope * np.clip(level, 0, None) + noise_floor
    energy, y, var = _to_energy(wl, y_col, np.asarray(variance, dtype=float))
    jac = np.abs(np.gradient(np.sort(energy)))  # eV per column, same order as energy

    # Start values from the counts per column, where the background is flat.
    smooth_col = ndimage.median_filter(y * jac, size=5, mode="nearest")
    bg0 = float(np.percentile(smooth_col, 10))
    if energy_range_ev is None:
        i = int(np.argmax(smooth_col - bg0))
        w = _half_max_width(energy, smooth_col - bg0, i)
        energy_range_ev = (energy[i] - 4 * w, energy[i] + 4 * w)
    sel = (energy >= energy_range_ev[0]) & (energy <= energy_range_ev[1])
    if sel.sum() < 8:
        raise ValueError(f"fewer than 8 columns in the fit window {energy_range_ev} eV")
    x, y, var, jac, smooth_col = energy[sel], y[sel], var[sel], jac[sel], smooth_col[sel]
    per_ev = 1 / jac
    ref_per_ev = float(np.interp(x.mean(), x, per_ev))
    per_ev = per_ev / ref_per_ev
    bg0 = bg0 * ref_per_ev  # background start value in density per eV at the window centre

    i = int(np.argmax(smooth_col - smooth_col.min()))
    h0 = float(smooth_col[i] / jac[i] - bg0 * per_ev[i])
    w0 = _half_max_width(x, smooth_col - np.percentile(smooth_col, 10), i)
    s0 = w0 / (2 if model == "lorentzian" else 2.3548)
    f1 = _PeakFit(model, 1, background, x, per_ev, y)
    f2 = _PeakFit(model, 2, background, x, per_ev, y)

    def var_from(model_y: np.ndarray) -> np.ndarray:
        # Model density per eV back to counts per column, through the noise model, and back.
        return (noise_slope * np.clip(model_y * jac, 0, None) + noise_floor) / jac**2

    def fit1(weights: np.ndarray) -> lmfit.minimizer.MinimizerResult:
        return f1.fit(f1.params(bg0, [(x[i], s0, h0)]), weights)

    def fit2(weights: np.ndarray, r1: lmfit.minimizer.MinimizerResult
             ) -> lmfit.minimizer.MinimizerResult:
        c = r1.params["p1_center"].value
        s = r1.params["p1_sigma"].value
        peak1 = f1.component(*f1._values(r1.params)[0])
        hgt = max(float(np.max(peak1)), h0 / 2)
        resid = y - r1.best_fit
        j = int(np.argmax(ndimage.uniform_filter1d(resid, 5)))
        # A start on the centre's bound (largest residual at the window edge) sits where
        # lmfit's bound transform has zero gradient, and the fit from there is chaotic.
        edge = 0.02 * (x[-1] - x[0])
        xj = float(np.clip(x[j], x[0] + edge, x[-1] - edge))
        starts = [
            [(c - 0.6 * s, 0.7 * s, hgt / 2), (c + 0.6 * s, 0.7 * s, hgt / 2)],
            [(c - 1.2 * s, 0.6 * s, hgt / 2), (c + 1.2 * s, 0.6 * s, hgt / 2)],
            [(c, s, hgt), (xj, 0.5 * s, max(float(resid[j]), hgt / 10))],
        ]
        best = None
        for st in starts:
            r = f2.fit(f2.params(bg0, st), weights)
            if best is None or r.chisqr < best.chisqr:
                best = r
        return best

    # Pass 1 with weights from the smoothed data, pass 2 with weights from the richest fit;
    # both models of the final pass share the same weights so their χ² compare.
    weights = 1 / np.sqrt(np.maximum(var, 1e-300))
    r1 = fit1(weights)
    r2 = fit2(weights, r1) if compare else None
    ref = r2 if r2 is not None else r1
    weights = 1 / np.sqrt(np.maximum(var_from(ref.best_fit), 1e-300))
    # Pass 2 searches over the starts again: starting it from pass 1's optima (5 fits
    # instead of 8) lands misspecified two-peak fits (Lorentzian on real data) in other minima.
    r1 = fit1(weights)
    r2 = fit2(weights, r1) if compare else None

    comparison: dict[str, Any] = {"bic_1": r1.bic, "aic_1": r1.aic}
    # the background alone, on the same weights: is there a band at all?
    f0 = _PeakFit(model, 0, background, x, per_ev, y)
    r0 = f0.fit(f0.params(bg0, []), weights)
    p_band = _f_test(r0, r1, x.size)
    first = _peak_summary(r1, "p1_", model)
    located = (math.isfinite(first["errors"]["peak_ev"])
               and first["errors"]["peak_ev"] < first["fwhm_mev"] / 2e3)
    band = bool(r0.bic - r1.bic > 10 and p_band < 1e-3
                and _significant(r1.params["p1_amplitude"]) and located)
    comparison.update({"bic_0": r0.bic, "delta_bic_band": r0.bic - r1.bic,
                       "p_value_band": p_band, "band_significant": band})
    if not band:
        why = ("its centre is not located (standard error "
               f"{first['errors']['peak_ev'] * 1e3:.3g} meV against a FWHM of "
               f"{first['fwhm_mev']:.3g} meV)" if not located else
               f"the background alone explains the spectrum (one line lowers the BIC by "
               f"{r0.bic - r1.bic:.1f}, F-test p = {p_band:.2g}; its area "
               f"{r1.params['p1_amplitude'].value:.3g} +/- "
               f"{_stderr(r1.params['p1_amplitude']):.3g})")
        nan = float("nan")
        return SpectrumResult(
            peak_ev=nan, peak_nm=nan, fwhm_mev=nan,
            errors={"peak_ev": nan, "peak_nm": nan, "fwhm_mev": nan, "area": nan},
            model=model, n_peaks=0, redchi=float(r0.redchi), peaks=[],
            comparison=comparison, energy=x, intensity=y, fit=r0.best_fit,
            sigma=1 / r0.weights, unit=unit, source=source,
            info={"background": background,
                  "energy_range_ev": [float(v) for v in energy_range_ev],
                  "noise_slope": noise_slope, "noise_floor": noise_floor,
                  "success": bool(r0.success),
                  "note": f"no emission band: no line stands out of the noise ({why})"})
    chosen, n_peaks = r1, 1
    if r2 is not None:
        k1, k2, n = r1.nvarys, r2.nvarys, x.size
        f_stat = ((r1.chisqr - r2.chisqr) / (k2 - k1)) / (r2.chisqr / (n - k2))
        p_value = float(f_sf(f_stat, k2 - k1, n - k2))
        areas_ok = all(_significant(r2.params[f"p{j}_amplitude"]) for j in (1, 2))
        supported = bool(r1.bic - r2.bic > 10 and p_value < 1e-3)
        # one asymmetric line competes with two lines (not nested: BIC alone)
        fa = _SplitFit(model, background, x, per_ev, y)
        ra = fa.fit(fa.params(bg0, [(r1.params["p1_center"].value,
                                     r1.params["p1_sigma"].value,
                                     float(np.max(f1.component(*f1._values(r1.params)[0]))))]),
                    weights)
        beats_asymmetric = bool(ra.bic - r2.bic > 10)
        two = [_peak_summary(r2, f"p{j}_", model) for j in (1, 2)]
        separation = abs(two[0]["peak_ev"] - two[1]["peak_ev"]) * 1e3
        # resolved: further apart than their mean FWHM (two equal Gaussians show a dip
        # between them beyond 0.85 FWHM; closer, they make one skewed or broadened band)
        resolved = bool(separation > 0.5 * (two[0]["fwhm_mev"] + two[1]["fwhm_mev"]))
        comparison.update({"bic_2": r2.bic, "aic_2": r2.aic, "delta_bic": r1.bic - r2.bic,
                           "delta_aic": r1.aic - r2.aic, "f_stat": float(f_stat),
                           "p_value": p_value, "two_peaks_supported": supported,
                           "bic_asymmetric": ra.bic, "delta_bic_asymmetric": ra.bic - r2.bic,
                           "two_peaks_beat_asymmetric": beats_asymmetric,
                           "separation_mev": separation,
                           "two_peaks_resolved": bool(areas_ok and resolved)})
        if supported and beats_asymmetric and areas_ok and resolved:
            chosen, n_peaks = r2, 2
    peaks = [_peak_summary(chosen, f"p{j}_", model) for j in range(1, n_peaks + 1)]
    peaks.sort(key=lambda pk: pk["peak_ev"])
    main = max(peaks, key=lambda pk: pk["area"])
    sigma = 1 / chosen.weights
    return SpectrumResult(
        peak_ev=main["peak_ev"], peak_nm=main["peak_nm"], fwhm_mev=main["fwhm_mev"],
        errors=dict(main["errors"]), model=model, n_peaks=n_peaks,
        redchi=float(chosen.redchi), peaks=peaks, comparison=comparison,
        energy=x, intensity=y, fit=chosen.best_fit, sigma=sigma, unit=unit, source=source,
        info={"background": background, "energy_range_ev": [float(v) for v in energy_range_ev],
              "noise_slope": noise_slope, "noise_floor": noise_floor,
              "success": bool(chosen.success)})


def _f_test(small: lmfit.minimizer.MinimizerResult, big: lmfit.minimizer.MinimizerResult,
            n: int) -> float:
    """p-value of the F-test of nested least-squares fits (``big`` adds parameters)."""
    k1, k2 = small.nvarys, big.nvarys
    if big.chisqr <= 0 or n <= k2:
        return 0.0
    f_stat = ((small.chisqr - big.chisqr) / (k2 - k1)) / (big.chisqr / (n - k2))
    return float(f_sf(f_stat, k2 - k1, n - k2))


def _significant(par: lmfit.Parameter) -> bool:
    return par.stderr is not None and np.isfinite(par.stderr) and par.value > 3 * par.stderr


def _stderr(par: lmfit.Parameter) -> float:
    return float(par.stderr) if par.stderr is not None else float("nan")


def _fwhm(kind: str, sigma: float, gamma: float) -> float:
    """FWHM as lmfit's models define it (same rounded constants as their ``fwhm`` expressions)."""
    if kind == "gaussian":
        return GAUSSIAN_FWHM_FACTOR * sigma
    if kind == "lorentzian":
        return 2.0 * sigma
    return 1.0692 * gamma + math.sqrt(0.8664 * gamma**2 + 5.545083 * sigma**2)


GAUSSIAN_FWHM_FACTOR = float(f"{2 * math.sqrt(2 * math.log(2)):.7f}")
"""lmfit's ``GaussianModel.fwhm_factor``, 2 sqrt(2 ln 2), rounded as in its ``fwhm`` expression
(written out: the module does not import lmfit until a spectrum is fitted)."""


def _fwhm_error(result: lmfit.minimizer.MinimizerResult, pre: str, kind: str) -> float:
    """Standard error of the FWHM from the covariance of sigma (and gamma), to first order."""
    covar = result.covar
    names = list(result.var_names or [])
    if covar is None or pre + "sigma" not in names:
        return float("nan")
    s = result.params[pre + "sigma"].value
    g = result.params[pre + "gamma"].value if kind == "voigt" else 0.0
    idx = [names.index(pre + "sigma")]
    if kind == "voigt":
        root = math.sqrt(0.8664 * g**2 + 5.545083 * s**2)
        grad = [5.545083 * s / root if root > 0 else 0.0]
        if pre + "gamma" in names:
            idx.append(names.index(pre + "gamma"))
            grad.append(1.0692 + (0.8664 * g / root if root > 0 else 0.0))
    else:
        grad = [_fwhm(kind, 1.0, 0.0)]
    gv = np.array(grad)
    var = float(gv @ covar[np.ix_(idx, idx)] @ gv)
    return math.sqrt(var) if var >= 0 else float("nan")


def _peak_summary(result: lmfit.minimizer.MinimizerResult, pre: str, kind: str) -> dict[str, Any]:
    params = result.params
    c = params[pre + "center"]
    s = params[pre + "sigma"].value
    g = params[pre + "gamma"].value if kind == "voigt" else 0.0
    e = float(c.value)
    e_err = _stderr(c)
    nm = HC_EV_M / e * 1e9
    return {"peak_ev": e, "peak_nm": nm, "fwhm_mev": _fwhm(kind, s, g) * 1e3,
            "area": float(params[pre + "amplitude"].value),
            "errors": {"peak_ev": e_err, "peak_nm": nm / e * e_err,
                       "fwhm_mev": _fwhm_error(result, pre, kind) * 1e3,
                       "area": _stderr(params[pre + "amplitude"])}}
