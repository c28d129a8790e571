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
from dataclasses import asdict, dataclass, field
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
from analysis.g2 import CWG2, G2Result, cw_g2, gated_pulsed_g2, pulse_delays, pulsed_g2
from analysis.lifetimes import (
    LifetimeResult,
    fit_decay,
    fit_decay_select,
    state_decay_histograms,
)
from analysis.schema import BY_NAME, PHOTON_FEATURES, PHOTON_FIELDS
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


def _photon_values() -> dict[str, Any]:
    return {f.key: None for f in PHOTON_FIELDS}


@dataclass
class PhotonAnalysis:
    """Everything read off one particle's photons.

    The scalar results (what goes into tables) are the ``photons`` fields of
    :mod:`analysis.schema`, read and set as attributes (``result.g2_zero``); they live in
    ``values``, and a name the schema does not declare is an ordinary attribute error. The other
    attributes are the full results, for figures.
    """

    values: dict[str, Any] = field(default_factory=_photon_values)
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

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails: the schema's scalars
        values = self.__dict__.get("values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        values = self.__dict__.get("values")
        if values is not None and name in values:
            values[name] = value
        else:
            object.__setattr__(self, name, value)

    def summary(self) -> dict[str, Any]:
        """The scalar results as JSON types (NaN -> None), keyed by attribute name."""
        return to_json_types(dict(self.values))

    def features(self) -> dict[str, float | None]:
        """The photon features the classifier uses."""
        s = self.summary()
        return {k: s.get(BY_NAME[k].key) for k in PHOTON_FEATURES}

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


@dataclass
class _Accumulated:
    """What one pass over the stream leaves: the accumulators and the stream's timing."""

    timing: Timing
    pulsed: bool
    trace: IntensityTrace
    collector: PhotonCollector
    decay: DecayHistogram
    correlation: CrossCorrelation
    flid: FLIDHistogram


def accumulate(source: Iterable[PhotonChunk] | Any, s: AnalysisSettings) -> _Accumulated:
    """Feed every chunk of ``source`` once to the streaming accumulators.

    The correlation is pulsed (± ``g2_max_lag_periods`` periods) when the stream has a laser
    period and the sync input carries the laser, else continuous (± ``cw_max_lag_s``).
    """
    det_a, det_b = s.detectors
    trace = IntensityTrace(s.trace_bin_s, s.detectors)
    collector = PhotonCollector(s.detectors)
    decay = DecayHistogram(s.decay_bin_s, s.detectors)
    flid = FLIDHistogram(s.trace_bin_s, s.detectors)
    acc: _Accumulated | None = None
    accs: list[Any] = []
    for chunk in _chunks_of(source):
        if acc is None:
            timing = chunk.timing
            # A laser period is usable only if the sync input carries the laser, not a detector.
            pulsed = bool(timing.sync_period) and SYNC not in s.detectors
            corr = (CrossCorrelation(det_a, det_b, max_lag_periods=s.g2_max_lag_periods,
                                     bin_width_s=s.g2_bin_s) if pulsed else
                    CrossCorrelation(det_a, det_b, max_lag_s=s.cw_max_lag_s,
                                     bin_width_s=s.cw_bin_s))
            acc = _Accumulated(timing, pulsed, trace, collector, decay, corr, flid)
            accs = [trace, collector, *([decay] if pulsed else []), corr,
                    *([flid] if timing.is_t3 else [])]
        for a in accs:
            a.update(chunk)
    if acc is None:
        raise ValueError("the photon source yielded no chunks")
    return acc


def blinking_step(out: PhotonAnalysis, times: np.ndarray, s: AnalysisSettings) -> None:
    """Levels, states and dwell statistics of the intensity trace."""
    blink = analyse_blinking(times, bin_width=s.trace_bin_s, confidence=s.confidence)
    out.blinking = blink
    out.on_fraction = blink.on_fraction
    out.n_levels = blink.n_states
    out.intermediate_fraction = blink.intermediate_fraction
    out.fano_factor = blink.fano_factor
    out.bimodality_coefficient = blink.bimodality_coefficient
    out.alpha_on = _alpha(blink.on_fit)
    out.alpha_off = _alpha(blink.off_fit)
    out.notes.extend(blink.notes)


def lifetime_step(out: PhotonAnalysis, acc: _Accumulated, photons: PhotonList,
                  times: np.ndarray, order: np.ndarray, s: AnalysisSettings) -> None:
    """Decays (detectors aligned for their cable delays) and lifetimes of the whole decay and
    of the bright state. Needs the laser period."""
    period = acc.timing.sync_period
    decay = acc.decay.result()
    out.decay = decay
    out.pulse_delay_s = pulse_delays(decay)
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
        out.notes.append(f"whole-decay fit failed: {exc}")
    # the photons with a delay (T2: not before the first sync), in time order
    d_all = photons.delays[order]
    valid = d_all >= 0
    t_sorted = times[valid]
    # each photon's delay moved by its detector's alignment shift, wrapped into the period
    det_all = photons.detectors[order][valid]
    shift_s = np.zeros(256)
    for det, k in shifts.items():
        shift_s[det] = k * decay.bin_width_s
    d_sorted = np.mod(d_all[valid] * photons.delay_unit_s - shift_s[det_all], edges[-1])
    blink = out.blinking
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
            out.notes.append("too few bright-state photons for a lifetime fit")
    except (ValueError, RuntimeError) as exc:
        out.notes.append(f"bright-state fit failed: {exc}")


def pulsed_g2_step(out: PhotonAnalysis, acc: _Accumulated, photons: PhotonList,
                   s: AnalysisSettings) -> None:
    """Pulsed g2(0), raw and time-gated (the gate of :func:`analysis.g2.gate_mask`)."""
    out.correlation = acc.correlation.result()
    try:
        # the decay histograms give the peak shape: corrects the tails across windows
        g2 = pulsed_g2(out.correlation, dark_counts_hz=s.dark_counts_hz, decay=out.decay)
        out.g2, out.g2_zero, out.g2_zero_err = g2, g2.g2, g2.g2_err
        out.g2_zero_raw, out.g2_zero_raw_err = g2.g2_raw, g2.g2_raw_err
    except ValueError as exc:
        out.notes.append(f"g2 failed: {exc}")
    if not out.pulse_delay_s or out.g2 is None:
        return
    try:
        out.correlation_gated, g2g = gated_pulsed_g2(
            photons, out.decay, out.pulse_delay_s, s.gate_s, det_a=s.detectors[0],
            det_b=s.detectors[1], max_lag_periods=s.g2_max_lag_periods, bin_width_s=s.g2_bin_s,
            centre_lag_s=out.g2.centre_lag_s, dark_counts_hz=s.dark_counts_hz)
        out.g2_gated, out.g2_zero_gated, out.g2_zero_gated_err = g2g, g2g.g2, g2g.g2_err
    except ValueError as exc:
        out.notes.append(f"gated g2 failed: {exc}")


def cw_g2_step(out: PhotonAnalysis, acc: _Accumulated) -> None:
    """Continuous excitation (or no usable sync): normalised g2(τ); g2(0) is the zero bin."""
    out.correlation = acc.correlation.result()
    try:
        cw = cw_g2(out.correlation)
        k0 = int(np.argmin(np.abs(cw.lags_s)))
        out.g2_cw = cw
        out.g2_zero, out.g2_zero_err = float(cw.g2[k0]), float(cw.g2_err[k0])
    except ValueError as exc:
        out.notes.append(f"g2(τ) failed: {exc}")


def analyze_photons(source: Iterable[PhotonChunk] | Any,
                    settings: AnalysisSettings | None = None) -> PhotonAnalysis:
    """Run every photon analysis on one particle.

    The steps, each a function of this module: :func:`accumulate` (one pass over the stream),
    :func:`blinking_step`, :func:`lifetime_step` (with a laser period), :func:`pulsed_g2_step`
    or :func:`cw_g2_step`.

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
    s = settings or AnalysisSettings()
    acc = accumulate(source, s)
    photons = acc.collector.result()
    n = int(photons.timestamps.size)
    # Arrival times, computed and ordered once. A time-tag stream is already (nearly) in time
    # order, and a stable sort (radix/timsort) of sorted data is ~50x cheaper than the default
    # introsort, which gains nothing from order.
    times_all = photons.times_s()
    order = np.argsort(times_all, kind="stable")
    times = times_all[order]
    duration = float(times[-1] - times[0]) if n > 1 else 0.0
    out = PhotonAnalysis(trace=acc.trace.result())
    out.n_photons, out.duration_s = n, duration
    out.count_rate_cps = n / duration if duration else 0.0
    out.mode, out.sync_period_s = acc.timing.mode, acc.timing.sync_period
    if n < 100:
        out.notes.append(f"only {n} photons on detectors {s.detectors}: nothing to analyse")
        return out
    blinking_step(out, times, s)
    if acc.pulsed:
        lifetime_step(out, acc, photons, times, order, s)
        pulsed_g2_step(out, acc, photons, s)
    else:
        out.notes.append("no laser period (no sync rate, or a detector on the sync input): "
                         "no decay or lifetime; g2 is g2(τ) for continuous excitation")
        cw_g2_step(out, acc)
    if acc.timing.is_t3:
        out.flid = acc.flid.result()
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
