"""One entry point for the photon-stream analyses of one particle.

:func:`analyze_photons` feeds every chunk of a source (a file reader, the simulator, a live
tagger) to the streaming accumulators once, then runs the whole-trace analyses: the region of
interest and photon-burst removal, blinking levels and switching rates, lifetimes of the whole
decay and of the bright state (with fit quality), pulsed g2(0) raw and time-gated. The result,
:class:`PhotonAnalysis`, serialises to JSON-ready dicts and into the particle HDF5 file.

Live and replay share this code: the accumulators are chunk-invariant, and the whole-trace steps
are passes over the photons as time-ordered windows (:class:`spad.analysis.windowed.PhotonWindows`),
so the same photons give the same numbers however they arrive.

Memory: up to :data:`PHOTON_BUDGET` photons are held, and the whole-trace steps read them as one
window (:class:`~spad.analysis.windowed.MemoryWindows`). Beyond it the collector lets the photons
go, and the same steps read the source again in windows
(:class:`~spad.analysis.windowed.FileWindows`): the same numbers, several reads of the file,
memory bounded by a window. A source that cannot be read again (a generator, a live stream)
gets the streaming results only, and the whole-trace ones are null with a note saying why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from spad.analysis.accumulators import CrossCorrelation, Decay, DecayHistogram
from spad.analysis.blinking import block_jackknife, excess_variance
from spad.analysis.decay_window import DecayWindow, decay_window
from spad.analysis.flid import FLIDHistogram
from spad.analysis.g2 import pulse_delays
from spad.analysis.g2_background import (
    count_afterpulse_pairs,
    drop_uncorrected,
    g2_background,
    gated_background,
)
from spad.analysis.g2_pairs import MAX_LABEL_BIAS, label_bias, sync_pair_g2
from spad.analysis.g2_timing import (
    analyze_g2,
    check_gated,
    correlation_range,
    decay_usable,
)
from spad.analysis.level_decays import level_decays, state_decays
from spad.analysis.lifetimes import (
    LifetimeResult,
    fit_decay,
    fit_decay_select,
)
from spad.analysis.photon_collector import PhotonCollector, PhotonCount
from spad.analysis.photon_result import PhotonAnalysis
from spad.analysis.power_law import PowerLawFit, reported_exponent
from spad.analysis.settings import AnalysisSettings
from spad.analysis.trace import IntensityTrace
from spad.analysis.windowed import (
    FileWindows,
    KeptPhotons,
    MemoryWindows,
    PhotonWindows,
    select_photons,
)

from spad.photons import SYNC, PhotonChunk, Timing

PHOTON_BUDGET = 20_000_000
"""Most photons of one particle analysed in memory at once; above it the whole-trace steps run
in windows over the source (:mod:`spad.analysis.windowed`).

Why this number: the in-memory path costs ~50 bytes a photon at its peak (11 kept, plus the
sorted times, their order and the temporaries of the blinking and bright-state steps):
``tests/benchmarks/bench_memory.py --photons 2e7`` measured 1.21 GB peak resident for
``spad analyze`` (~0.24 GB of it the process itself), inside the 2 GB goal. That is 11
minutes at 30 kcps, longer than any ordinary single-particle measurement, whose results
therefore do not change; a longer recording pays for bounded memory with several reads of its
file (and gets the same numbers)."""


def _chunks_of(source: Any) -> Iterator[PhotonChunk]:
    if isinstance(source, PhotonChunk):
        yield source
    elif hasattr(source, "chunks"):
        yield from source.chunks()
    else:
        yield from source


def _alpha(fit: PowerLawFit | None, what: str, notes: list[str]) -> float | None:
    """The dwell-time exponent to report (:func:`spad.analysis.power_law.reported_exponent`):
    ``None``, with a note, where the dwells are no power law."""
    alpha, note = reported_exponent(fit, what)
    if note:
        notes.append(note)
    return alpha


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
                 window: DecayWindow | int) -> np.ndarray:
    """Sum of per-detector histograms, each moved by its shift: on a decay window's bins
    (wrapped by its period), or over the first ``window`` bins rolled within them."""
    if isinstance(window, int):
        window = DecayWindow(0, window, 1.0, float(window), window)
    total = np.zeros(window.n_bins, dtype=np.float64)
    for det, row in zip(detectors, np.atleast_2d(rows), strict=True):
        total += window.fold(row, shifts.get(det, 0))
    return total


@dataclass
class Accumulated:
    """What one pass over the stream leaves: the accumulators and the stream's timing."""

    timing: Timing
    pulsed: bool
    trace: IntensityTrace
    collector: PhotonCollector
    decay: DecayHistogram
    correlation: CrossCorrelation
    flid: FLIDHistogram | None   # None: left out (a live update, see PhotonAccumulators.gather)
    # T2 with a stated sync: the share of the sync intervals at a multiple of their median
    # (below SYNC_PERIODIC_MIN the sync input carries a detector, not the laser); None: not
    # checked (T3, no stated sync, or too few sync events)
    sync_periodic_fraction: float | None = None


class _Frozen:
    """An accumulator's result taken at one moment, answering ``result()`` like it."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value


class PhotonAccumulators:
    """The streaming accumulators of one particle, fed chunk by chunk.

    :func:`analyze_photons` is one pass of a source through these and :func:`finish`. A live
    acquisition keeps one, feeds it each chunk as it arrives and analyses the data so far
    whenever it wants (:meth:`gather` then :func:`finish`, possibly in another process); the
    same chunks give the same result however they are split.

    The correlation spans several laser periods (or 1 µs without a stated period, to find a
    comb or show g2(τ)); decays are histogrammed when the stream states a laser period and the
    sync input carries the laser.
    """

    def __init__(self, settings: AnalysisSettings | None = None) -> None:
        s = self.settings = settings or AnalysisSettings()
        self.trace = IntensityTrace(s.trace_bin_s, s.detectors)
        # the budget is read here, not at import, so that tests can lower it
        self.collector = PhotonCollector(s.detectors, limit=PHOTON_BUDGET)
        self.decay = DecayHistogram(s.decay_bin_s, s.detectors)
        self.flid = FLIDHistogram(s.trace_bin_s, s.detectors)
        self.acc: Accumulated | None = None
        self._accs: list[Any] = []

    @property
    def timing(self) -> Timing | None:
        return None if self.acc is None else self.acc.timing

    def update(self, chunk: PhotonChunk) -> None:
        """Add one chunk (chunks in time order, all of one timing)."""
        s = self.settings
        if self.acc is None:
            det_a, det_b = s.detectors
            timing = chunk.timing
            # A laser period is usable only if the sync input carries the laser, not a detector.
            pulsed = bool(timing.sync_period) and SYNC not in s.detectors
            periodic = sync_periodic_fraction(chunk) if pulsed and not timing.is_t3 else None
            if periodic is not None and periodic < SYNC_PERIODIC_MIN:
                pulsed = False  # a T2 file with a detector on the sync input: no laser clock
            lag_s, width_s = correlation_range(timing.sync_period if pulsed else None)
            corr = CrossCorrelation(det_a, det_b, max_lag_s=lag_s, bin_width_s=width_s)
            self.acc = Accumulated(timing, pulsed, self.trace, self.collector, self.decay, corr,
                                    self.flid, periodic)
            self._accs = [self.trace, self.collector, *([self.decay] if pulsed else []), corr,
                          *([self.flid] if timing.is_t3 else [])]
        for a in self._accs:
            a.update(chunk)

    def gather(self, flid: bool = True) -> Accumulated:
        """The results so far, as copies that :func:`finish` takes like the accumulators
        (cheap: the fits come later; picklable, for a worker process). ``flid=False`` leaves
        the FLID out (``None`` in the analysis): per time bin it is as large as the trace, and
        no verdict or live view needs it."""
        a = self.acc
        if a is None:
            raise ValueError("the photon source yielded no chunks")
        return Accumulated(a.timing, a.pulsed, _Frozen(a.trace.result()),
                            _Frozen(a.collector.result()),
                            _Frozen(a.decay.result() if a.pulsed else None),
                            _Frozen(a.correlation.result()),
                            (_Frozen(a.flid.result() if a.timing.is_t3 else None) if flid
                             else None),
                            a.sync_periodic_fraction)

    def result(self, reread: Callable[[], Iterable[PhotonChunk]] | None = None
               ) -> PhotonAnalysis:
        """Every analysis of the photons so far (the accumulators keep going); ``reread``
        gives the same photons again if they were more than :data:`PHOTON_BUDGET` (see
        :func:`finish`)."""
        if self.acc is None:
            raise ValueError("the photon source yielded no chunks")
        return finish(self.acc, self.settings, reread)


SYNC_PERIODIC_MIN = 0.8
"""Share of sync intervals at a multiple of their median for the sync to count as a laser
clock. A laser's are all at one period (or a multiple, with a divider or a missed edge) within
the jitter; a detector's are exponential (~2 % fall within 1 % of a multiple)."""


def sync_periodic_fraction(chunk: PhotonChunk, min_events: int = 50) -> float | None:
    """The share of a T2 chunk's sync intervals within 1 % of a multiple of their median, or
    ``None`` when the chunk holds too few sync events to tell."""
    t = chunk.timestamps[chunk.detectors == SYNC]
    if t.size < min_events:
        return None
    d = np.diff(t).astype(np.float64)
    med = float(np.median(d))
    if med <= 0:
        return 0.0
    r = d / med
    k = np.round(r)
    return float(np.mean((k >= 1) & (np.abs(r - k) <= 0.01 * k)))


def accumulate(source: Iterable[PhotonChunk] | Any, s: AnalysisSettings) -> Accumulated:
    """Feed every chunk of ``source`` once to the streaming accumulators."""
    acc = PhotonAccumulators(s)
    for chunk in _chunks_of(source):
        acc.update(chunk)
    if acc.acc is None:
        raise ValueError("the photon source yielded no chunks")
    return acc.acc


def selection_step(out: PhotonAnalysis, acc: Accumulated, windows: PhotonWindows,
                   first_s: float, last_s: float, n: int, s: AnalysisSettings) -> KeptPhotons:
    """Region of interest and photon bursts, and the blinking analysis of the photons kept
    (:func:`spad.analysis.windowed.select_photons`), in passes over ``windows`` (``first_s``,
    ``last_s``, ``n``: the time of the first and last photon and their number).

    When photons are left out, the decays, the correlation and the FLID are made again from the
    kept photons (the trace stays whole, for the figure). Returns the kept photons, for the
    passes to come.
    """
    sel = select_photons(windows, first_s, last_s, s.trace_bin_s, s.confidence, roi=s.roi,
                         auto_roi=s.auto_roi, bursts=s.remove_bursts)
    selection_fields(out, sel, s)
    photons = KeptPhotons(windows, sel)
    if sel.keeps_all(first_s, last_s):
        photons.n_kept = n
        return photons
    lag_s, width_s = correlation_range(acc.timing.sync_period if acc.pulsed else None)
    decay, corr, flid = photons.made_again(acc.decay.result() if acc.pulsed else None, lag_s,
                                           width_s, s.detectors, s.trace_bin_s)
    if photons.n_kept == n:
        return photons  # all kept after all: the accumulators' results stand
    if acc.pulsed:
        out.decay = decay
    out.correlation = corr
    if acc.timing.is_t3:
        out.flid = flid
    return photons


def selection_fields(out: PhotonAnalysis, sel: Any, s: AnalysisSettings) -> None:
    """The ROI, burst and blinking fields of a selection
    (:class:`spad.analysis.windowed.Selection`)."""
    out.blinking = sel.blinking
    out.roi_start_s, out.roi_end_s = sel.roi_start_s, sel.roi_end_s
    out.roi_source = "set" if s.roi is not None else ("auto" if sel.roi_auto else "whole")
    b = sel.blinking.bursts
    out.n_bursts = 0 if b is None else len(b)
    out.burst_photons = 0 if b is None else int(b.n_photons.sum())
    if sel.roi_auto:
        out.notes.append(f"dark tail from {sel.roi_end_s:.2f} s (bleached or dead) left out: "
                         f"ROI {sel.roi_start_s:.2f}-{sel.roi_end_s:.2f} s")


def blinking_step(out: PhotonAnalysis) -> None:
    """Levels, states, dwell statistics and switching rates of the intensity trace (of the
    blinking analysis :func:`selection_step` made, if any), and the trace's excess variance."""
    blink = out.blinking
    if blink is not None:
        out.on_fraction = blink.on_fraction
        out.on_fraction_err = blink.on_fraction_err
        out.n_levels = blink.n_states
        out.intermediate_fraction = blink.intermediate_fraction
        out.fano_factor = blink.fano_factor
    counts = np.asarray(out.trace.counts, dtype=float).sum(axis=0) if out.trace is not None \
        else np.zeros(0)
    # drop the last, partial bin; Poisson noise adds the mean to the variance
    counts = counts[:-1] if counts.size > 2 else counts
    mean = float(counts.mean()) if counts.size else 0.0
    out.intensity_excess_var = ((float(counts.var()) - mean) / mean ** 2 if mean > 0
                                else None)
    if mean > 0:
        out.intensity_excess_var_err = block_jackknife(counts, excess_variance)
    if blink is None:
        return
    out.bimodality_coefficient = blink.bimodality_coefficient
    out.alpha_on = _alpha(blink.on_fit, "ON", out.notes)
    out.alpha_off = _alpha(blink.off_fit, "OFF", out.notes)
    out.switching_rate_hz = None if blink.switching is None else blink.switching.total_rate_hz
    out.notes.extend(blink.notes)


def _fit_quality(out: PhotonAnalysis, fit: LifetimeResult, what: str) -> None:
    """Say in the notes when a decay fit's residuals are serially correlated."""
    if fit.residuals_correlated:
        out.notes.append(f"{what} fit: residuals correlated (Durbin-Watson "
                         f"{fit.durbin_watson:.3f} < 1 % bound {fit.dw_bound_1pct:.3f}, "
                         f"chi2/dof {fit.chi2_reduced:.2f}): the model misses structure")


class PairCounts:
    """The pair counts of the kept photons that need no decay fit, counted on a second thread
    while this one fits the decays: the afterpulse pairs of the g2 background
    (:func:`spad.analysis.g2_background.count_afterpulse_pairs`) and the pairs by sync label of
    the g2 step, ungated and gated (:meth:`spad.analysis.windowed.KeptPhotons.sync_pairs`).

    Their kernels release the GIL, so on a second core the counting costs no wall time, and
    the counts are those the steps would make themselves (the same calls on the same photons).
    Only for T3 photons in memory (photons re-read from a file have one reader); a count no
    step asks for is dropped, and an error raised in counting is raised where the step asks.
    Used as a context manager, which waits for the thread on leaving; :meth:`start` begins the
    counting, and each of :attr:`afterpulse`, :attr:`sync`, :attr:`gated` is then ``None``
    (count in line) or gives its count.
    """

    def __init__(self, acc: Accumulated, s: AnalysisSettings,
                 photons: KeptPhotons | None) -> None:
        self._acc, self._s, self._photons = acc, s, photons
        self._pool: Any = None
        self.afterpulse: Callable[[], Any] | None = None
        self.sync: Callable[[], Any] | None = None
        self.gated: Callable[[], Any] | None = None

    def start(self, decay: Decay, pulse_delay_s: dict[int, float]) -> None:
        """Begin counting, with the delay histograms and the pulse delays the steps will use."""
        acc, s, photons = self._acc, self._s, self._photons
        if (photons is None or not photons.windows.in_memory or not acc.timing.is_t3
                or not pulse_delay_s or self._pool is not None):
            return
        from concurrent.futures import ThreadPoolExecutor

        self._pool = pool = ThreadPoolExecutor(1, thread_name_prefix="spad-pairs")
        delays = dict(pulse_delay_s)
        if s.dark_counts_hz is None:
            self.afterpulse = pool.submit(
                count_afterpulse_pairs, photons.kept_pieces, decay,
                photons.windows.delay_unit_s, acc.timing.sync_period, s.detectors,
                delays).result
        self.sync = pool.submit(photons.sync_pairs, *s.detectors).result
        self.gated = pool.submit(photons.sync_pairs, *s.detectors, delays, s.gate_s).result

    def __enter__(self) -> PairCounts:
        return self

    def __exit__(self, *exc: object) -> None:
        """Wait for the thread (a count started is finished, one not started dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def lifetime_step(out: PhotonAnalysis, acc: Accumulated, photons: KeptPhotons | None,
                  s: AnalysisSettings) -> None:
    """Decays (detectors aligned for their cable delays) and lifetimes of the whole decay and
    of the bright state. Needs the laser period."""
    decay = out.decay if out.decay is not None else acc.decay.result()
    out.decay = decay
    out.pulse_delay_s = pulse_delays(decay)
    shifts = _alignment(decay, out.pulse_delay_s)
    # one period from just before the pulse, wherever the pulse lies in the TCSPC range
    window = decay_window(_aligned_sum(decay.counts, decay.detectors, shifts,
                                       decay.counts.shape[-1]),
                          decay.bin_width_s, acc.timing.sync_period)
    if window.note:
        out.notes.append(window.note)
    period, edges = window.period_s, window.edges
    out.decay_period_s = period
    counts = _aligned_sum(decay.counts, decay.detectors, shifts, window)
    out.decay_fitted, out.decay_fitted_edges_s = counts, edges
    irf: np.ndarray | str = "gaussian"
    if s.irf is not None:
        measured = np.asarray(s.irf, dtype=np.float64)
        irf = (_aligned_sum(measured, decay.detectors, shifts, window) if measured.ndim == 2
               else window.fold(measured))
    try:
        out.lifetime_all = fit_decay(counts, edges, period, n_exp=2, irf=irf)
        out.lifetime_all_ns = out.lifetime_all.tau_intensity_mean * 1e9
        _fit_quality(out, out.lifetime_all, "whole-decay")
    except (ValueError, RuntimeError) as exc:
        out.notes.append(f"whole-decay fit failed: {exc}")
    shift_s = np.zeros(256)
    for det, k in shifts.items():
        shift_s[det] = k * decay.bin_width_s
    blink = out.blinking
    if photons is None or blink is None:
        out.notes.append("no bright-state lifetime: the photons could not be read again to "
                         "sort them by intensity level")
        return
    in_memory: tuple[np.ndarray, np.ndarray] | None = None
    try:
        hists, in_memory = photons.state_decay_histograms(shift_s, edges, window.wrap_s,
                                                          blink.level_start, blink.level_end,
                                                          blink.level_on.astype(np.int64))
        on = hists.get(1)
        bright = (fit_decay_select(on, edges, period, max_exp=2, irf=irf)
                  if on is not None and on.sum() >= 200 else None)
        if bright is not None:
            out.decay_bright = np.asarray(on, dtype=np.float64)
            out.lifetime_bright = bright
            out.lifetime_ns = bright.tau_intensity_mean * 1e9
            out.lifetime_err_ns = bright.tau_intensity_mean_err * 1e9
            out.lifetime_chi2_reduced = bright.chi2_reduced
            out.lifetime_durbin_watson = bright.durbin_watson
            out.lifetime_dw_bound_5pct = bright.dw_bound_5pct
            out.lifetime_dw_bound_1pct = bright.dw_bound_1pct
            _fit_quality(out, bright, "bright-state decay")
        else:
            out.notes.append("too few bright-state photons for a lifetime fit")
    except (ValueError, RuntimeError) as exc:
        out.notes.append(f"bright-state fit failed: {exc}")
    if in_memory is not None:
        # photons in memory only: above PHOTON_BUDGET it would be one more pass over the file
        out.state_decays, out.state_lifetimes = state_decays(
            *in_memory, edges, period, irf, blink.level_start, blink.level_end,
            blink.level_state, fit=s.state_fits)
        if s.max_level_fits > 0:
            out.level_decays = level_decays(*in_memory, edges, period, irf, blink.level_start,
                                            blink.level_end, max_levels=s.max_level_fits)


def _honest_lifetime(out: PhotonAnalysis, period_s: float) -> None:
    """Drop a lifetime that physics, its error or its fit's residuals do not support (note
    why): longer than the laser period, an error larger than itself, or residuals that fail
    the Durbin-Watson test at 1 % (Turner's bounds, :mod:`spad.analysis.lifetimes`)."""
    tau, err = out.lifetime_ns, out.lifetime_err_ns
    if tau is None:
        return
    why = None
    if tau > period_s * 1e9:
        why = f"longer than the laser period ({period_s * 1e9:.1f} ns)"
    elif err is None or not np.isfinite(err) or err > tau:
        why = "its standard error is larger than itself"
    elif out.lifetime_bright is not None and out.lifetime_bright.residuals_correlated:
        why = _DW_FAIL
    if why:
        err_s = "nan" if err is None else f"{err:.3g}"
        out.notes.append(f"bright-state lifetime {tau:.3g} +/- {err_s} ns not given: {why}")
        out.lifetime_ns = out.lifetime_err_ns = None
    tau_all = out.lifetime_all_ns
    if tau_all is not None and tau_all > period_s * 1e9:
        out.notes.append(f"whole-decay lifetime {tau_all:.3g} ns not given: longer "
                         "than the laser period")
        out.lifetime_all_ns = None
    elif tau_all is not None and out.lifetime_all is not None and (
            out.lifetime_all.residuals_correlated):
        out.notes.append(f"whole-decay lifetime {tau_all:.3g} ns not given: {_DW_FAIL}")
        out.lifetime_all_ns = None


# g2 results that rest on the arrival times' scale (the stated sync period in T3)
_G2_VALUES = ("g2_zero", "g2_zero_err", "g2_zero_gated", "g2_zero_gated_err", "g2_zero_raw",
              "g2_zero_raw_err")

# Durbin-Watson below its 1 % bound: the model misses structure, so its lifetime is no result
_DW_FAIL = "its fit's residuals fail the Durbin-Watson test (see the fit's note)"


#: Largest standard error of a g2(0) that is reported. Any source's g2(0) lies between 0 and
#: about 1 (N independent emitters: 1 - 1/N; a blinking one a little above), so a value known
#: only to worse than ±1 says nothing the physics did not (a sparse correlogram's fit gave
#: 7.7e8 ± 1e17). Not the classifier's bound (classify.MAX_G2_ERROR, 0.5): a value reported
#: here may still carry no evidence there.
MAX_REPORTED_G2_ERR = 1.0


def drop_undetermined(out: PhotonAnalysis) -> None:
    """No g2(0) (ungated, gated or raw) whose error exceeds :data:`MAX_REPORTED_G2_ERR` or
    that is not a finite number; a note gives the value that was dropped."""
    dropped = []
    for name in ("g2_zero", "g2_zero_gated", "g2_zero_raw"):
        value, err = getattr(out, name), getattr(out, name + "_err")
        if value is None:
            continue
        if not math.isfinite(value) or (err is not None and not err <= MAX_REPORTED_G2_ERR):
            dropped.append(f"{name} {value:.3g} ± {err if err is None else format(err, '.3g')}")
            setattr(out, name, None)
            setattr(out, name + "_err", None)
    if dropped:
        out.notes.append(f"no g2(0) where the coincidences do not determine it (error above "
                         f"{MAX_REPORTED_G2_ERR:g}): dropped {', '.join(dropped)}")


def g2_step(out: PhotonAnalysis, acc: Accumulated, photons: KeptPhotons | None,
            s: AnalysisSettings, background: dict[str, Any], background_cps: float | None,
            pairs: PairCounts) -> None:
    """g2 on any timing (:func:`spad.analysis.g2_timing.analyze_g2`): pulsed peak areas when the
    correlogram has a comb or the file a laser period, else g2(τ); then the time-gated g2(0)
    on the same grid (the gate of :func:`spad.analysis.g2.gate_mask`). ``pairs``: the pairs
    by sync label, if counted already (:class:`PairCounts`)."""
    if out.correlation is None:
        out.correlation = acc.correlation.result()
    stated = acc.timing.sync_period if acc.pulsed else None
    # the fitted decay even where its lifetime is not reported (longer than the period, or
    # residuals failing the Durbin-Watson test): that is where the peaks overlap most
    tau_s = (out.lifetime_all.tau_intensity_mean if out.lifetime_all is not None
             else None if out.lifetime_ns is None else out.lifetime_ns * 1e-9)
    res = analyze_g2(out.correlation, stated, decay=out.decay if acc.pulsed else None,
                     delay_s=s.delay_s, cw_bin_s=s.cw_bin_s, lifetime_s=tau_s, **background)
    out.g2_analysis = res
    out.notes.extend(res.notes)
    out.g2_excitation, out.g2_period_s = res.excitation, res.period_s
    out.g2_zero, out.g2_zero_err = res.g2_zero, res.g2_zero_err
    out.g2_cw = res.cw
    if res.pulsed is None:
        return
    g2 = res.pulsed
    bias = (label_bias(res.period_s, out.pulse_delay_s or {}, tau_s)
            if res.period_s else None)
    if (acc.timing.is_t3 and photons is not None and res.decay_usable
            and g2.trusted and res.g2_zero is not None):
        if bias is not None and bias <= MAX_LABEL_BIAS:
            # T3 photons carry their pulse: count the pairs by sync label, no peak-shape model
            g2 = sync_pair_g2(pairs.sync() if pairs.sync is not None
                              else photons.sync_pairs(*s.detectors), g2)
            out.g2_zero, out.g2_zero_err = g2.g2, g2.g2_err
        else:
            out.notes.append(
                "g2(0) not from the pairs counted by sync label: " + (
                    "no decay fit tells how many photons arrive after the next sync"
                    if bias is None else
                    f"the decay runs past the next sync, so photons of neighbouring pulses "
                    f"share a label (would bias g2(0) up by up to {bias:.2f})"))
    out.g2 = g2
    out.g2_zero_delay_s = res.zero.lag_s if res.zero is not None else None
    out.g2_zero_raw, out.g2_zero_raw_err = g2.g2_raw, g2.g2_raw_err
    out.g2_correction = g2.correction
    if background.get("background_source", "-") in g2.correction:
        out.g2_background_cps = background_cps
    if not out.pulse_delay_s or not res.decay_usable or not g2.trusted:
        return
    if photons is None:
        out.notes.append("no gated g2(0): the photons could not be read again to gate them")
        return
    # the share of the recorded background that passes the gate, whatever the TCSPC range
    gated_bg = gated_background(background, out.decay, res.period_s, out.pulse_delay_s,
                                s.gate_s, s.detectors)
    lag_s, width_s = correlation_range(stated)
    try:
        out.correlation_gated, g2g, kept = photons.gated_pulsed_g2(
            out.decay, out.pulse_delay_s, s.gate_s, det_a=s.detectors[0],
            det_b=s.detectors[1], max_lag_s=lag_s, bin_width_s=width_s,
            sync_period_s=res.period_s, centre_lag_s=g2.centre_lag_s, **gated_bg)
    except ValueError as exc:
        out.notes.append(f"gated g2 failed: {exc}")
        return
    if (acc.timing.is_t3 and g2g.trusted and math.isfinite(g2g.g2) and bias is not None
            and bias <= MAX_LABEL_BIAS):
        # the gated photons' pairs counted by sync label, as the ungated g2(0)
        g2g = sync_pair_g2(pairs.gated() if pairs.gated is not None else
                           photons.sync_pairs(*s.detectors, out.pulse_delay_s, s.gate_s), g2g)
    value, notes = check_gated(g2g, kept)
    out.notes.extend(notes)
    out.g2_gated = g2g
    out.g2_zero_gated = value
    out.g2_zero_gated_err = g2g.g2_err if value is not None else None


def analyze_photons(source: Iterable[PhotonChunk] | Any,
                    settings: AnalysisSettings | None = None) -> PhotonAnalysis:
    """Run every photon analysis on one particle.

    The steps, each a function of this module: :func:`accumulate` (one pass over the stream),
    :func:`blinking_step`, :func:`lifetime_step` (with a laser period the correlogram does not
    contradict) and :func:`g2_step`.

    Parameters
    ----------
    source
        A reader (anything with ``.chunks()``), an iterable of time-ordered PhotonChunks, or one
        PhotonChunk. More than :data:`PHOTON_BUDGET` photons are analysed by reading a reader
        again (:mod:`spad.analysis.windowed`); an iterable cannot be, and gets the streaming results
        only (see :func:`finish`).
    settings
        Analysis choices; defaults as in :class:`AnalysisSettings`.

    Returns
    -------
    PhotonAnalysis
    """
    s = settings or AnalysisSettings()
    reread: Callable[[], Iterable[PhotonChunk]] | None = None
    if isinstance(source, PhotonChunk):
        reread = partial(iter, (source,))
    elif hasattr(source, "chunks"):
        reread = source.chunks
    return finish(accumulate(source, s), s, reread)


def finish(acc: Accumulated, s: AnalysisSettings,
           reread: Callable[[], Iterable[PhotonChunk]] | None = None) -> PhotonAnalysis:
    """The whole-trace steps on what the accumulators gathered (see :func:`analyze_photons`),
    each a pass over the photons as windows: the collector's photons as one window, or, when
    it held more than :data:`PHOTON_BUDGET` and let them go, ``reread`` read in windows.

    Parameters
    ----------
    acc
        The accumulators after the pass over the source.
    s
        Analysis choices.
    reread
        Gives the source's chunks again from the beginning (a reader's ``chunks``): used when
        the collector held more than :data:`PHOTON_BUDGET` photons and let them go. Without
        it, such a recording gets the streaming results (trace, decays, correlation and g2,
        FLID, whole-decay lifetime) and null for what needs the photons (blinking, ROI, bursts,
        bright-state lifetime, gated g2), with a note.
    """
    collected = acc.collector.result()
    windows: PhotonWindows | None = None
    if isinstance(collected, PhotonCount):
        n, first_s, last_s = collected.n_photons, collected.first_s, collected.last_s
        if reread is not None:
            windows = FileWindows(reread, s.detectors)
    else:
        memory = MemoryWindows(collected, s.detectors)
        windows, times = memory, memory.whole.times
        n = int(times.size)
        first_s, last_s = (float(times[0]), float(times[-1])) if n else (0.0, 0.0)
    duration = last_s - first_s if n > 1 else 0.0
    out = PhotonAnalysis(trace=acc.trace.result())
    out.n_photons, out.duration_s = n, duration
    out.count_rate_cps = n / duration if duration else 0.0
    out.mode, out.sync_period_s = acc.timing.mode, acc.timing.sync_period
    if n < 100:
        out.notes.append(f"only {n} photons on detectors {s.detectors}: nothing to analyse")
        return out
    photons: KeptPhotons | None = None
    if windows is None:
        assert isinstance(collected, PhotonCount)
        out.notes.append(
            f"{n} photons, more than the {collected.limit} analysed in memory, and the source "
            "cannot be read again: no blinking levels, ROI, burst removal, bright-state "
            "lifetime or gated g2(0) (analyse the recorded file for them); the decays, "
            "correlation and g2(0) are of every photon")
    else:
        photons = selection_step(out, acc, windows, first_s, last_s, n, s)
        # what was analysed: the ROI's photons, bursts removed
        n = photons.n_kept
        out.n_photons, out.duration_s = n, out.roi_end_s - out.roi_start_s
        out.count_rate_cps = n / out.duration_s if out.duration_s > 0 else 0.0
    whole_trace_steps(out, acc, s, photons)
    if isinstance(windows, FileWindows):
        assert isinstance(collected, PhotonCount)
        out.notes.append(f"{collected.n_photons} photons, more than the {collected.limit} "
                         f"analysed in memory at once: the whole-trace analyses read the "
                         f"source again in windows ({windows.passes} passes)")
    return out


def whole_trace_steps(out: PhotonAnalysis, acc: Accumulated, s: AnalysisSettings,
                      photons: KeptPhotons | None) -> None:
    """Blinking, lifetimes and g2 once the photons analysed are chosen (``photons``: the kept
    photons, ``None`` when they cannot be read again)."""
    blinking_step(out)
    with PairCounts(acc, s, photons) as pairs:
        _lifetime_and_g2_steps(out, acc, s, photons, pairs)


def _lifetime_and_g2_steps(out: PhotonAnalysis, acc: Accumulated, s: AnalysisSettings,
                           photons: KeptPhotons | None, pairs: PairCounts) -> None:
    background: dict[str, Any] = {}
    background_cps = None
    if acc.pulsed:
        # the period decision first: a divided sync makes the delay histograms no decays
        if out.correlation is None:
            out.correlation = acc.correlation.result()
        if decay_usable(out.correlation, acc.timing.sync_period):
            if out.decay is None:
                out.decay = acc.decay.result()
            out.pulse_delay_s = pulse_delays(out.decay)
            pairs.start(out.decay, out.pulse_delay_s)
            lifetime_step(out, acc, photons, s)
            _honest_lifetime(out, out.decay_period_s or acc.timing.sync_period)
            background, background_cps = g2_background(out, acc.timing.sync_period, s, photons,
                                                       pairs.afterpulse)
        else:
            if out.decay is None:
                out.decay = acc.decay.result()
            out.notes.append("no lifetime: the file's sync period is not the laser's")
    else:
        periodic = acc.sync_periodic_fraction
        if periodic is not None and periodic < SYNC_PERIODIC_MIN:
            out.notes.append(f"the sync input is not periodic (only "
                             f"{periodic:.0%} of its intervals are a multiple "
                             "of their median): it carries no laser, likely a detector; no "
                             "decay or lifetime (to correlate it, give it with --detectors 0 N)")
        else:
            out.notes.append("no laser period in the file (no sync rate, or a detector on the "
                             "sync input): no decay or lifetime")
        if out.correlation is None:
            out.correlation = acc.correlation.result()
        background, background_cps = g2_background(out, acc.timing.sync_period, s)
    g2_step(out, acc, photons, s, background, background_cps, pairs)
    drop_uncorrected(out, background, background_cps)
    drop_undetermined(out)
    stated = acc.timing.sync_period
    if acc.timing.is_t3 and stated and out.decay_period_s and (
            out.decay_period_s > 1.05 * stated):
        # a T3 arrival time is the sync count times the stated period: with that period
        # contradicted by the delays, the correlogram's lags are on an unknown scale
        dropped = [name for name in _G2_VALUES if getattr(out, name) is not None]
        for name in _G2_VALUES:
            setattr(out, name, None)
        out.notes.append("no g2(0): the header's sync period contradicts the photons' delays, "
                         "and T3 arrival times are sync counts times that period (times, "
                         "rates and lags are on an unknown scale)"
                         + (f"; dropped {', '.join(dropped)}" if dropped else ""))
    if acc.timing.is_t3 and out.flid is None and acc.flid is not None:
        out.flid = acc.flid.result()
