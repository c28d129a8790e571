"""One entry point for the photon-stream analyses of one particle.

:func:`analyze_photons` feeds every chunk of a source (a file reader, the simulator, a live
tagger) to the streaming accumulators once, then runs the whole-trace analyses: blinking levels,
lifetimes of the whole decay and of the bright state, pulsed g2(0) raw and time-gated. The result,
:class:`PhotonAnalysis`, serialises to JSON-ready dicts and into the particle HDF5 file.

Live and replay share this code: the accumulators are chunk-invariant, and the whole-trace steps
run on the concatenated photons, so the same photons give the same numbers however they arrive.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

import spad
from analysis.accumulators import (
    Correlation,
    CrossCorrelation,
    Decay,
    DecayHistogram,
    FLIDHistogram,
    IntensityTrace,
    PhotonCollector,
    PhotonList,
    Trace,
)
from analysis.blinking import BlinkingResult, PowerLawFit, analyse_blinking, to_json_types
from analysis.g2 import CWG2, G2Result, cw_g2, pulsed_g2
from analysis.lifetimes import (
    LifetimeResult,
    fit_decay,
    fit_decay_select,
    state_decay_histograms,
)
from spad.photons import SYNC, PhotonChunk, Timing


@dataclass
class AnalysisSettings:
    """Choices of the photon analysis (times in seconds).

    Attributes
    ----------
    detectors
        The two HBT detectors (a, b) correlated for g2; their photons make the trace.
    trace_bin_s
        Bin width of the intensity trace and the FLID.
    g2_max_lag_periods
        Correlation range in laser periods on each side of zero.
    g2_bin_s
        Correlation bin width.
    gate_s
        Time gate after the excitation pulse for the gated g2(0): photons arriving earlier are
        dropped (most biexciton photons).
    confidence
        Confidence of the change-point tests.
    decay_bin_s
        Bin width of the decays fitted (rounded to whole TCSPC bins).
    irf
        Measured IRF counts on the decay bins, one row per detector (as
        :func:`irf_from_file` gives) or already summed; ``None`` to fit a Gaussian IRF.
    dark_counts_hz
        Dark count rate per detector for the g2 background correction, if known.
    cw_max_lag_s, cw_bin_s
        Correlation range and bin of g2(τ) when there is no laser period (continuous
        excitation, or a detector on the sync input).
    """

    detectors: tuple[int, int] = (1, 2)
    trace_bin_s: float = 0.010
    g2_max_lag_periods: float = 5.5
    g2_bin_s: float = 0.5e-9
    gate_s: float = 5e-9
    cw_max_lag_s: float = 500e-9
    cw_bin_s: float = 1e-9
    confidence: float = 0.99
    decay_bin_s: float = 0.128e-9
    irf: np.ndarray | None = None
    dark_counts_hz: float | None = None


@dataclass
class PhotonAnalysis:
    """Everything read off one particle's photons.

    Scalars first (what goes into tables), then the full results for figures.
    """

    n_photons: int
    duration_s: float
    count_rate_cps: float
    mode: str
    sync_period_s: float | None
    g2_zero: float | None
    g2_zero_err: float | None
    g2_zero_gated: float | None
    g2_zero_gated_err: float | None
    g2_zero_raw: float | None           # plain centre/side window ratio (no tail correction)
    g2_zero_raw_err: float | None
    lifetime_ns: float | None          # intensity-weighted, bright (ON) state
    lifetime_err_ns: float | None
    lifetime_all_ns: float | None      # intensity-weighted, whole decay (bi-exponential)
    on_fraction: float | None
    n_levels: int | None               # BIC-selected number of intensity states
    intermediate_fraction: float | None
    fano_factor: float | None
    bimodality_coefficient: float | None
    alpha_on: float | None             # dwell exponents of the preferred (truncated or pure)
    alpha_off: float | None            # power law, maximum likelihood
    pulse_delay_s: dict[int, float] = field(default_factory=dict)
    trace: Trace | None = None
    decay: Decay | None = None
    decay_fitted: np.ndarray | None = None       # detectors summed after alignment, one period
    decay_fitted_edges_s: np.ndarray | None = None
    correlation: Correlation | None = None
    correlation_gated: Correlation | None = None
    g2: G2Result | None = None
    g2_gated: G2Result | None = None
    g2_cw: CWG2 | None = None          # continuous excitation: normalised g2(τ)
    blinking: BlinkingResult | None = None
    lifetime_bright: LifetimeResult | None = None
    lifetime_all: LifetimeResult | None = None
    flid: Any = None
    notes: list[str] = field(default_factory=list)

    SCALARS = ("n_photons", "duration_s", "count_rate_cps", "mode", "sync_period_s", "g2_zero",
               "g2_zero_err", "g2_zero_gated", "g2_zero_gated_err", "g2_zero_raw",
               "g2_zero_raw_err", "lifetime_ns",
               "lifetime_err_ns", "lifetime_all_ns", "on_fraction", "n_levels",
               "intermediate_fraction", "fano_factor", "bimodality_coefficient", "alpha_on",
               "alpha_off")

    def summary(self) -> dict[str, Any]:
        """The scalar results as JSON types (NaN -> None)."""
        return to_json_types({k: getattr(self, k) for k in self.SCALARS})

    def features(self) -> dict[str, float | None]:
        """The photon features the classifier uses."""
        s = self.summary()
        return {k: s.get(k) for k in ("g2_zero", "g2_zero_gated", "lifetime_ns", "on_fraction",
                                      "n_levels", "intermediate_fraction", "fano_factor")}

    def to_dict(self) -> dict[str, Any]:
        """Everything as nested JSON types (arrays as lists)."""
        d = self.summary()
        d["pulse_delay_s"] = {str(k): v for k, v in self.pulse_delay_s.items()}
        for name in ("decay_fitted", "decay_fitted_edges_s"):
            v = getattr(self, name)
            d[name] = None if v is None else v.tolist()
        d["notes"] = list(self.notes)
        for name in ("trace", "decay", "correlation", "correlation_gated", "g2", "g2_gated",
                     "g2_cw", "flid"):
            obj = getattr(self, name)
            d[name] = None if obj is None else to_json_types(asdict(obj))
        for name in ("blinking", "lifetime_bright", "lifetime_all"):
            obj = getattr(self, name)
            d[name] = None if obj is None else obj.to_dict()
        return d


def _chunks_of(source: Any) -> Iterator[PhotonChunk]:
    if isinstance(source, PhotonChunk):
        yield source
    elif hasattr(source, "chunks"):
        yield from source.chunks()
    else:
        yield from source


def _pulse_delays(decay: Decay) -> dict[int, float]:
    """Delay of the excitation pulse after the sync per detector: the decay's rising edge.

    The half-maximum point on the rise before the peak is robust to the long tail and to
    the IRF shape; it differs per detector by the cable delays.
    """
    out: dict[int, float] = {}
    for det, row in zip(decay.detectors, decay.counts, strict=True):
        if row.sum() == 0:
            continue
        k = int(np.argmax(row))
        half = row[k] / 2
        below = np.nonzero(row[:k + 1] < half)[0]
        j = int(below[-1]) + 1 if below.size else 0
        out[int(det)] = float(decay.bin_edges_s[j])
    return out


def _gate_mask(photons: PhotonList, pulse: dict[int, float], gate_s: float) -> np.ndarray:
    """Photons arriving at least ``gate_s`` after their own detector's excitation pulse."""
    delay_s = photons.delays * photons.delay_unit_s
    keep = np.zeros(photons.timestamps.shape, dtype=bool)
    for det, t0 in pulse.items():
        keep |= (photons.detectors == det) & (delay_s >= t0 + gate_s)
    return keep


def _gated(photons: PhotonList, keep: np.ndarray) -> PhotonChunk:
    """The photons selected by ``keep`` as a chunk of the stream."""
    timing = photons.timing
    return PhotonChunk(timing, photons.timestamps[keep], photons.detectors[keep],
                       photons.delays[keep].astype(np.uint16) if timing.is_t3 else None)


def _gated_decay(photons: PhotonList, keep: np.ndarray, decay: Decay) -> Decay:
    """Delay histograms of the photons selected by ``keep``, on ``decay``'s bins: the peak
    shape of the gated correlation."""
    counts = np.zeros_like(decay.counts)
    factor = max(1, round(decay.bin_width_s / photons.delay_unit_s))
    for row, det in enumerate(decay.detectors):
        k = photons.delays[keep & (photons.detectors == det)] // factor
        k = k[(k >= 0) & (k < counts.shape[1])]
        counts[row] = np.bincount(k, minlength=counts.shape[1])
    return replace(decay, counts=counts)


def _alpha(fit: PowerLawFit | None) -> float | None:
    """The dwell-time exponent of the model the likelihood-ratio test prefers.

    Blinking dwells are power laws cut off at long times (seconds); a pure power law fitted to
    such a tail comes out too steep (0.14 too high for a 0.5 s OFF cutoff on a 600 s trace),
    while the truncated law recovers the exponent.
    """
    if fit is None:
        return None
    return fit.tpl_alpha if fit.preferred == "truncated" else fit.alpha


def _alignment(decay: Decay, pulse: dict[int, float]) -> dict[int, int]:
    """Bins by which each detector's decay is shifted to line up with the first detector's.

    Cable delays differ between the APDs by up to nanoseconds; summing the decays without
    aligning them smears the IRF and spoils the fit.
    """
    if not pulse:
        return {}
    ref = pulse.get(decay.detectors[0], next(iter(pulse.values())))
    return {d: int(round((t - ref) / decay.bin_width_s)) for d, t in pulse.items()}


def _aligned_sum(rows: np.ndarray, detectors: tuple[int, ...], shifts: dict[int, int],
                 n_bins: int) -> np.ndarray:
    """Sum of per-detector histograms over one period, each rolled by its shift (periodic)."""
    total = np.zeros(n_bins, dtype=np.float64)
    for det, row in zip(detectors, np.atleast_2d(rows), strict=True):
        total += np.roll(np.asarray(row[:n_bins], dtype=np.float64), -shifts.get(det, 0))
    return total


class PhotonAccumulators:
    """The streaming half of :func:`analyze_photons`: every accumulator, fed chunk by chunk.

    A live acquisition keeps one of these, feeds it each chunk as it arrives and calls
    :meth:`result` whenever it wants the analysis of the data so far; a file replay feeds the
    same chunks and gets the same result (``analyze_photons`` is exactly this).

    Parameters
    ----------
    settings
        Analysis choices; defaults as in :class:`AnalysisSettings`.
    """

    def __init__(self, settings: AnalysisSettings | None = None) -> None:
        s = self.settings = settings or AnalysisSettings()
        self.trace = IntensityTrace(s.trace_bin_s, s.detectors)
        self.collector = PhotonCollector(s.detectors)
        self.decay = DecayHistogram(s.decay_bin_s, s.detectors)
        self.flid = FLIDHistogram(s.trace_bin_s, s.detectors)
        self.correlation: CrossCorrelation | None = None
        self.timing: Timing | None = None
        self.pulsed = False
        self._accs: list[Any] = [self.trace, self.collector]

    def update(self, chunk: PhotonChunk) -> None:
        """Add one chunk (chunks in time order, all of one timing)."""
        s = self.settings
        if self.timing is None:
            self.timing = timing = chunk.timing
            # A laser period is usable only if the sync input carries the laser, not a detector.
            self.pulsed = bool(timing.sync_period) and SYNC not in s.detectors
            det_a, det_b = s.detectors
            if self.pulsed:
                self.correlation = CrossCorrelation(
                    det_a, det_b, max_lag_periods=s.g2_max_lag_periods, bin_width_s=s.g2_bin_s)
                self._accs.append(self.decay)
            else:
                self.correlation = CrossCorrelation(det_a, det_b, max_lag_s=s.cw_max_lag_s,
                                                    bin_width_s=s.cw_bin_s)
            self._accs.append(self.correlation)
            if timing.is_t3:
                self._accs.append(self.flid)
        for acc in self._accs:
            acc.update(chunk)

    def gather(self) -> _Gathered:
        """What the accumulators hold now, as copies (cheap; the fits come later, in
        :func:`finish`): a live acquisition takes this under its lock and analyses it while
        the next chunks arrive."""
        if self.timing is None:
            raise ValueError("the photon source yielded no chunks")
        corr = self.correlation
        return _Gathered(self.settings, self.timing, self.pulsed, self.collector.result(),
                         self.trace.result(),
                         self.decay.result() if self.pulsed else None,
                         None if corr is None else corr.result(),
                         self.flid.result() if self.timing.is_t3 else None)

    def result(self) -> PhotonAnalysis:
        """Every analysis of the photons so far (the accumulators keep going)."""
        return finish(self.gather())


@dataclass
class _Gathered:
    settings: AnalysisSettings
    timing: Timing
    pulsed: bool
    photons: PhotonList
    trace: Trace
    decay: Decay | None
    correlation: Correlation | None
    flid: Any


def analyze_photons(source: Iterable[PhotonChunk] | Any,
                    settings: AnalysisSettings | None = None) -> PhotonAnalysis:
    """Run every photon analysis on one particle.

    Parameters
    ----------
    source
        A reader (anything with ``.chunks()``), an iterable of time-ordered PhotonChunks, or one
        PhotonChunk.
    settings
        Analysis choices; defaults as in :class:`AnalysisSettings`.

    Returns
    -------
    PhotonAnalysis
    """
    acc = PhotonAccumulators(settings)
    for chunk in _chunks_of(source):
        acc.update(chunk)
    return acc.result()


def finish(g: _Gathered) -> PhotonAnalysis:
    """The whole-trace analyses (blinking, fits, g2) on what :meth:`PhotonAccumulators.gather`
    returned."""
    s = g.settings
    det_a, det_b = s.detectors
    timing, pulsed, corr = g.timing, g.pulsed, g.correlation
    notes: list[str] = []
    photons = g.photons
    tr = g.trace
    n = int(photons.timestamps.size)
    # Arrival times, computed and ordered once. A time-tag stream is already (nearly) in time
    # order, and a stable sort (radix/timsort) of sorted data is ~50x cheaper than the default
    # introsort, which gains nothing from order.
    times_all = photons.times_s()
    order_all = np.argsort(times_all, kind="stable")
    times = times_all[order_all]
    duration = float(times[-1] - times[0]) if n > 1 else 0.0
    out = PhotonAnalysis(
        n_photons=n, duration_s=duration, count_rate_cps=n / duration if duration else 0.0,
        mode=timing.mode, sync_period_s=timing.sync_period, g2_zero=None, g2_zero_err=None,
        g2_zero_gated=None, g2_zero_gated_err=None, g2_zero_raw=None, g2_zero_raw_err=None,
        lifetime_ns=None, lifetime_err_ns=None,
        lifetime_all_ns=None, on_fraction=None, n_levels=None, intermediate_fraction=None,
        fano_factor=None, bimodality_coefficient=None, alpha_on=None, alpha_off=None,
        trace=tr, notes=notes)
    if n < 100:
        notes.append(f"only {n} photons on detectors {s.detectors}: nothing to analyse")
        return out

    # Blinking: levels, states, dwell statistics.
    blink = analyse_blinking(times, bin_width=s.trace_bin_s, confidence=s.confidence)
    out.blinking = blink
    out.on_fraction = blink.on_fraction
    out.n_levels = blink.n_states
    out.intermediate_fraction = blink.intermediate_fraction
    out.fano_factor = blink.fano_factor
    out.bimodality_coefficient = blink.bimodality_coefficient
    out.alpha_on = _alpha(blink.on_fit)
    out.alpha_off = _alpha(blink.off_fit)
    notes.extend(blink.notes)

    # Decays and lifetimes (need the laser period).
    period = timing.sync_period if pulsed else None
    if period:
        decay = g.decay
        out.decay = decay
        out.pulse_delay_s = _pulse_delays(decay)
        shifts = _alignment(decay, out.pulse_delay_s)
        n_bins = int(np.count_nonzero(decay.bin_edges_s[1:] <= period + 1e-15))
        edges = decay.bin_edges_s[:n_bins + 1]
        counts = _aligned_sum(decay.counts, decay.detectors, shifts, n_bins)
        out.decay_fitted, out.decay_fitted_edges_s = counts, edges
        irf: np.ndarray | str = "gaussian"
        if s.irf is not None:
            measured = np.asarray(s.irf, dtype=np.float64)
            irf = (_aligned_sum(measured, decay.detectors, shifts, n_bins) if measured.ndim == 2
                   else measured[:n_bins])
        try:
            out.lifetime_all = fit_decay(counts, edges, period, n_exp=2, irf=irf)
            out.lifetime_all_ns = out.lifetime_all.tau_intensity_mean * 1e9
        except (ValueError, RuntimeError) as exc:
            notes.append(f"whole-decay fit failed: {exc}")
        # the photons with a delay (T2: not before the first sync), in time order
        d_all = photons.delays[order_all]
        valid = d_all >= 0
        t_sorted = times[valid]
        # each photon's delay moved by its detector's alignment shift, wrapped into the period
        det_all = photons.detectors[order_all][valid]
        shift_s = np.zeros(256)
        for det, k in shifts.items():
            shift_s[det] = k * decay.bin_width_s
        d_sorted = np.mod(d_all[valid] * photons.delay_unit_s - shift_s[det_all],
                          edges[-1])
        try:
            hists = state_decay_histograms(t_sorted, d_sorted, edges, blink.level_start,
                                           blink.level_end, blink.level_on.astype(np.int64))
            on = hists.get(1)
            bright = (fit_decay_select(on, edges, period, max_exp=2, irf=irf)
                      if on is not None and on.sum() >= 200 else None)
            if bright is not None:
                out.lifetime_bright = bright
                out.lifetime_ns = bright.tau_intensity_mean * 1e9
                out.lifetime_err_ns = bright.tau_intensity_mean_err * 1e9
            else:
                notes.append("too few bright-state photons for a lifetime fit")
        except (ValueError, RuntimeError) as exc:
            notes.append(f"bright-state fit failed: {exc}")
    else:
        notes.append("no laser period (no sync rate, or a detector on the sync input): "
                     "no decay or lifetime; g2 is g2(τ) for continuous excitation")

    # Pulsed g2(0), raw and time-gated.
    if corr is not None and period:
        out.correlation = corr
        try:
            # the decay histograms give the peak shape: corrects the tails across windows
            g2 = pulsed_g2(out.correlation, dark_counts_hz=s.dark_counts_hz, decay=out.decay)
            out.g2, out.g2_zero, out.g2_zero_err = g2, g2.g2, g2.g2_err
            out.g2_zero_raw, out.g2_zero_raw_err = g2.g2_raw, g2.g2_raw_err
        except ValueError as exc:
            notes.append(f"g2 failed: {exc}")
        if out.pulse_delay_s and out.g2 is not None:
            gated = CrossCorrelation(det_a, det_b, max_lag_periods=s.g2_max_lag_periods,
                                     bin_width_s=s.g2_bin_s)
            keep = _gate_mask(photons, out.pulse_delay_s, s.gate_s)
            gated.update(_gated(photons, keep))
            out.correlation_gated = gated.result()
            try:
                g2g = pulsed_g2(out.correlation_gated, centre_lag_s=out.g2.centre_lag_s,
                                dark_counts_hz=s.dark_counts_hz,
                                decay=_gated_decay(photons, keep, out.decay))
                out.g2_gated, out.g2_zero_gated, out.g2_zero_gated_err = g2g, g2g.g2, g2g.g2_err
            except ValueError as exc:
                notes.append(f"gated g2 failed: {exc}")
    elif corr is not None:
        # Continuous excitation (or no usable sync): normalised g2(τ); g2(0) is the zero bin.
        out.correlation = corr
        try:
            cw = cw_g2(out.correlation)
            k0 = int(np.argmin(np.abs(cw.lags_s)))
            out.g2_cw = cw
            out.g2_zero, out.g2_zero_err = float(cw.g2[k0]), float(cw.g2_err[k0])
        except ValueError as exc:
            notes.append(f"g2(τ) failed: {exc}")
    if timing.is_t3:
        out.flid = g.flid
    return out


def irf_from_file(path: Any, settings: AnalysisSettings | None = None) -> np.ndarray:
    """A measured IRF (e.g. laser scatter off the cover glass) as counts on the decay bins.

    The IRF recording is histogrammed exactly like a particle's decay (same detectors, same
    bin width), one row per detector, so it can be passed as ``AnalysisSettings(irf=...)`` and
    is aligned between detectors like the particle's decays.
    """
    s = settings or AnalysisSettings()
    acc = DecayHistogram(s.decay_bin_s, s.detectors)
    with spad.open(path) as reader:
        for chunk in reader.chunks():
            acc.update(chunk)
    counts = acc.result().counts.astype(np.float64)
    if counts.sum() == 0:
        raise ValueError(f"{path}: no photons on detectors {s.detectors} for an IRF")
    return counts
