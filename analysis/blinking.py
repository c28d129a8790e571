"""Blinking of single emitters: ON/OFF threshold, intensity levels, dwell times, flicker metrics.

Methods (docs/methods.md, "Intensity trace and blinking"):

- the ON/OFF threshold of a binned intensity trace comes from a two-component Poisson (or
  Gaussian) mixture fitted by EM to the counts per bin; the threshold is the count at which both
  components are equally probable;
- intensity levels come from change points on the photon arrival times and are grouped into
  states by BIC (:mod:`spad.analysis.changepoints`);
- ON and OFF dwell times come from the levels (or the thresholded trace); the first and last
  dwell are censored by the start and end of the measurement and are dropped;
- dwell-time distributions are fitted by maximum likelihood, a power law with ``t_min`` chosen by
  minimum Kolmogorov-Smirnov distance (Clauset, Shalizi & Newman, SIAM Rev. 2009) and a power law
  with exponential cutoff, compared by their likelihood ratio (:mod:`spad.analysis.power_law`).
  Never a line on a log-log histogram;
- metrics that tell bimodal blinking (monomers) from flickering between many levels (fused
  dimers): number of states by BIC, fraction of time in intermediate states, bimodality
  coefficient of the intensity histogram, Fano factor of the binned counts;
- photon bursts (:mod:`spad.analysis.bursts`) are removed before the levels are grouped, and the
  switching rates between the grouped states are counted (:mod:`spad.analysis.switching`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numba import njit
from scipy import special
from spad.analysis.bursts import BURST_TRACE_SHARE, Bursts, find_bursts, levels_without_bursts
from spad.analysis.changepoints import ChangePointStream, Levels
from spad.analysis.distributions import kurtosis, skew
from spad.analysis.level_grouping import Grouping, group_levels
from spad.analysis.power_law import PowerLawFit, fit_power_law
from spad.analysis.schema import to_json_types
from spad.analysis.switching import SwitchingRates, switching_rates

__all__ = [
    "MixtureFit", "BlinkingResult", "bin_trace", "intensity_histogram",
    "mixture_threshold", "dwell_times",
    "bimodality_coefficient", "fano_factor", "analyse_blinking",
    "blinking_from_levels", "blinking_in_passes", "change_points_of", "burst_note",
    "add_to_bins",
]


# --- binned trace and threshold ---------------------------------------------------------------

def bin_trace(times: np.ndarray, bin_width: float, start: float | None = None,
              stop: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Counts per time bin.

    Parameters
    ----------
    times
        Photon arrival times in seconds.
    bin_width
        Bin width in seconds (1-30 ms is usual; results depend on it).
    start, stop
        Span binned, seconds; default from the first to the last photon. Only whole bins are
        kept.

    Returns
    -------
    counts, edges
        int64 counts and the bin edges in seconds.
    """
    t = np.asarray(times, dtype=np.float64)
    if not bin_width > 0:
        raise ValueError(f"bin width must be positive seconds, not {bin_width}")
    if t.size == 0:
        raise ValueError("no photons to bin")
    t0 = float(t[0]) if start is None else float(start)
    t1 = float(t[-1]) if stop is None else float(stop)
    n_bins = int(np.floor((t1 - t0) / bin_width))
    if n_bins < 1:
        raise ValueError(f"the span {t1 - t0:g} s is shorter than one bin of {bin_width:g} s")
    edges = t0 + bin_width * np.arange(n_bins + 1)
    counts = np.zeros(n_bins, dtype=np.int64)
    add_to_bins(t, t0, float(bin_width), counts)
    return counts, edges


@njit(cache=True)
def add_to_bins(t: np.ndarray, t0: float, bin_width: float, counts: np.ndarray
                ) -> None:  # pragma: no cover - compiled
    """counts[floor((t - t0) / bin_width)] += 1 for the times inside the bins.

    The same arithmetic as ``np.floor((t - t0) / bin_width)`` element by element, without its
    three whole-length temporaries; also used on a stream in pieces (:mod:`spad.analysis.windowed`).
    """
    n_bins = counts.shape[0]
    for i in range(t.shape[0]):
        k = np.int64(np.floor((t[i] - t0) / bin_width))
        if 0 <= k < n_bins:
            counts[k] += 1


def intensity_histogram(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of counts per bin with one bin per integer count (edges at half-integers)."""
    c = np.asarray(counts, dtype=np.int64)
    hist = np.bincount(c, minlength=1)
    return hist, np.arange(hist.size + 1) - 0.5


@dataclass
class MixtureFit:
    """Two-component mixture fitted to counts per bin (component 0 = OFF, 1 = ON).

    Attributes
    ----------
    method
        ``"poisson"`` or ``"gaussian"``.
    weights, means, sigmas
        Component weights, mean counts per bin and standard deviations (Poisson: sqrt(mean)).
    threshold
        Counts per bin above which a bin is ON (both components equally probable there).
    on_fraction
        Fraction of bins above the threshold.
    log_likelihood
        Of the fitted mixture.
    """

    method: str
    weights: np.ndarray
    means: np.ndarray
    sigmas: np.ndarray
    threshold: float
    on_fraction: float
    log_likelihood: float


def mixture_threshold(counts: np.ndarray, method: Literal["poisson", "gaussian"] = "poisson",
                      max_iter: int = 500, tol: float = 1e-10) -> MixtureFit:
    """ON/OFF threshold from a two-component mixture fitted by EM to counts per bin.

    The Poisson mixture suits dim particles (few counts per bin, no extra variance); the Gaussian
    one allows each state more than Poisson variance (bright particles whose ON level
    fluctuates).
    """
    x = np.asarray(counts, dtype=np.float64)
    if x.ndim != 1 or x.size < 4:
        raise ValueError("need a 1-D trace of at least 4 bins")
    if method not in ("poisson", "gaussian"):
        raise ValueError(f"method must be 'poisson' or 'gaussian', not {method!r}")
    lo, hi = np.quantile(x, [0.1, 0.9])
    if hi <= lo:
        # A trace with (almost) one value: one state; threshold below it, all ON.
        mean = float(x.mean())
        return MixtureFit(method, np.array([0.0, 1.0]), np.array([0.0, mean]),
                          np.array([0.0, math.sqrt(mean)]), -0.5, 1.0, float("nan"))
    w = np.array([0.5, 0.5])
    mu = np.array([max(lo, 1e-3), hi])
    sd = np.full(2, max(x.std() / 2, 0.5))
    log_fact = special.gammaln(x + 1)
    loglik = -np.inf
    for _ in range(max_iter):
        if method == "poisson":
            logp = x[None, :] * np.log(mu)[:, None] - mu[:, None] - log_fact[None, :]
        else:
            from scipy import stats  # the Gaussian mixture only: spared on every particle

            logp = stats.norm.logpdf(x[None, :], mu[:, None], sd[:, None])
        logp = logp + np.log(np.maximum(w, 1e-300))[:, None]
        top = logp.max(axis=0)
        norm = top + np.log(np.exp(logp - top).sum(axis=0))
        r = np.exp(logp - norm)
        new = float(norm.sum())
        nk = r.sum(axis=1)
        w = nk / x.size
        mu = np.maximum((r @ x) / np.maximum(nk, 1e-300), 1e-6)
        if method == "gaussian":
            var = (r * (x[None, :] - mu[:, None]) ** 2).sum(axis=1) / np.maximum(nk, 1e-300)
            # floor at a quarter count^2: integer counts cannot resolve narrower components
            sd = np.sqrt(np.maximum(var, 0.25))
        if abs(new - loglik) <= tol * abs(new):
            loglik = new
            break
        loglik = new
    order = np.argsort(mu)
    w, mu, sd = w[order], mu[order], sd[order]
    if method == "poisson":
        sd = np.sqrt(mu)
        # w0 Pois(x; m0) = w1 Pois(x; m1)  ->  linear in x
        thr = (np.log(w[0] / w[1]) + mu[1] - mu[0]) / np.log(mu[1] / mu[0])
    else:
        thr = _gaussian_crossing(w, mu, sd)
    thr = float(np.clip(thr, mu[0], mu[1]))
    return MixtureFit(method, w, mu, sd, thr, float(np.mean(x > thr)), loglik)


STEADY_RATIO = 0.5
"""An emitter whose dimmest intensity state is at least this fraction of its brightest has no
OFF state: it is ON all the time (its levels are grey flicker around the ON level)."""


def steady_emitter(state_intensity: np.ndarray) -> bool:
    """Whether the trace has no OFF state: the change-point levels group into one intensity
    state, or the dimmest state holds at least :data:`STEADY_RATIO` of the brightest's
    intensity. Such an emitter is ON all the time: its ON fraction is 1, not the share of its
    shot noise above a threshold drawn between two mixture components. The states come from
    the photon-by-photon change points, which resolve levels at rates where binned counts
    cannot (1 kcps: 10 counts per 10 ms bin)."""
    x = np.asarray(state_intensity, float)
    if x.size <= 1:
        return True
    return bool(x.min() >= STEADY_RATIO * x.max())


JACKKNIFE_BLOCKS = 20
"""Blocks of the trace for the jackknife errors of the blinking features."""

ON_FRACTION_RESOLUTION = 1.0 / JACKKNIFE_BLOCKS
"""Smallest standard error of an ON fraction. The trace is judged in
:data:`JACKKNIFE_BLOCKS` blocks; OFF time confined to less than about one block's worth (one
long OFF dwell, short OFF dwells below the change-point resolution) leaves every block alike
and the jackknife error at 0. A steady emitter's ON fraction of 1 is therefore 1 to within
one block out of :data:`JACKKNIFE_BLOCKS`, not exactly: a zero error would make it decisive
evidence."""


def block_jackknife(counts: np.ndarray, statistic: Any,
                    n_blocks: int = JACKKNIFE_BLOCKS) -> float | None:
    """Standard error of ``statistic(counts)`` by the delete-one-block jackknife over
    ``n_blocks`` consecutive blocks of the trace (blocks keep the correlation of blinking
    within them; Efron & Tibshirani, *An Introduction to the Bootstrap*, ch. 11). ``None``
    for fewer than two bins per block."""
    c = np.asarray(counts)
    if c.size < 2 * n_blocks:
        return None
    edges = np.linspace(0, c.size, n_blocks + 1).astype(int)
    stats_ = np.array([statistic(np.concatenate([c[:a], c[b:]]))
                       for a, b in zip(edges[:-1], edges[1:], strict=True)], float)
    if not np.all(np.isfinite(stats_)):
        return None
    return float(math.sqrt((n_blocks - 1) / n_blocks
                           * np.sum((stats_ - stats_.mean()) ** 2)))


def excess_variance(counts: np.ndarray) -> float:
    """(variance - mean) / mean^2 of counts per bin: the squared relative intensity fluctuation
    with the Poisson noise removed (NaN for an empty trace)."""
    c = np.asarray(counts, float)
    m = float(c.mean()) if c.size else 0.0
    return (float(c.var()) - m) / m ** 2 if m > 0 else math.nan


def _gaussian_crossing(w: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> float:
    """Point between the means where two weighted normal densities are equal."""
    a = 1 / (2 * sd[1] ** 2) - 1 / (2 * sd[0] ** 2)
    b = mu[0] / sd[0] ** 2 - mu[1] / sd[1] ** 2
    c = (mu[1] ** 2 / (2 * sd[1] ** 2) - mu[0] ** 2 / (2 * sd[0] ** 2)
         + np.log(w[0] * sd[1] / (w[1] * sd[0])))
    # a x^2 + b x + c = 0 is ln(w0 N0) - ln(w1 N1) = 0
    roots = np.roots([a, b, c]) if abs(a) > 1e-15 else np.array([-c / b])
    roots = roots[np.isreal(roots)].real
    inside = roots[(roots >= mu[0]) & (roots <= mu[1])]
    return float(inside[0]) if inside.size else float(0.5 * (mu[0] + mu[1]))


# --- dwell times -----------------------------------------------------------------------------

def dwell_times(is_on: np.ndarray, start: np.ndarray, end: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """ON and OFF dwell times from consecutive segments classified ON or OFF.

    Consecutive segments of one state are joined into one dwell. The first and last dwell are
    censored by the measurement and dropped.

    Parameters
    ----------
    is_on
        State of each segment (levels or trace bins), in time order.
    start, end
        Segment start and end times in seconds.

    Returns
    -------
    on, off
        Dwell times in seconds.
    """
    s = np.asarray(is_on, dtype=bool)
    start = np.asarray(start, dtype=np.float64)
    end = np.asarray(end, dtype=np.float64)
    if not (s.shape == start.shape == end.shape):
        raise ValueError("is_on, start and end must have equal lengths")
    if s.size == 0:
        return np.empty(0), np.empty(0)
    change = np.flatnonzero(s[1:] != s[:-1]) + 1
    first = np.concatenate([[0], change])
    last = np.concatenate([change, [s.size]]) - 1
    dur = end[last] - start[first]
    state = s[first]
    inner = slice(1, -1)
    return dur[inner][state[inner]], dur[inner][~state[inner]]


# --- flicker metrics -------------------------------------------------------------------------

def bimodality_coefficient(x: np.ndarray) -> float:
    """Sarle's bimodality coefficient (g^2 + 1) / (k + 3 (n-1)^2 / ((n-2)(n-3))).

    g is the sample skewness and k the sample excess kurtosis (both bias-corrected). Above 5/9
    (the value of a uniform distribution) a histogram is likely bi- or multimodal.
    """
    v = np.asarray(x, dtype=np.float64)
    n = v.size
    if n < 4 or np.all(v == v[0]):
        return float("nan")
    g = skew(v, bias=False)
    k = kurtosis(v, bias=False)
    return float((g ** 2 + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))))


def fano_factor(counts: np.ndarray) -> float:
    """Variance over mean of counts per bin (1 for a constant-rate Poisson source)."""
    c = np.asarray(counts, dtype=np.float64)
    m = c.mean() if c.size else 0.0
    return float(c.var(ddof=1) / m) if m > 0 and c.size > 1 else float("nan")


# --- everything together ---------------------------------------------------------------------

@dataclass
class BlinkingResult:
    """Blinking analysis of one particle (times in s, intensities in counts/s).

    Serialise with :meth:`to_dict`.
    """

    n_photons: int
    duration: float
    bin_width: float
    confidence: float
    # binned trace
    histogram: np.ndarray                 # number of bins with 0, 1, 2, ... counts
    mixture: MixtureFit
    threshold_rate: float                 # ON/OFF threshold in counts/s
    on_fraction: float                    # fraction of bins above threshold (1: steady)
    on_fraction_err: float | None         # its standard error (block jackknife)
    # change points, levels, states
    change_point_times: np.ndarray
    level_start: np.ndarray
    level_end: np.ndarray
    level_photons: np.ndarray
    level_intensity: np.ndarray
    level_state: np.ndarray               # 0 = dimmest state
    state_intensity: np.ndarray
    state_time_fraction: np.ndarray
    bic: np.ndarray                       # for 1, 2, ... states
    level_on: np.ndarray                  # level intensity above the threshold
    # dwell times from the levels
    on_dwells: np.ndarray
    off_dwells: np.ndarray
    on_fit: PowerLawFit | None
    off_fit: PowerLawFit | None
    # flicker metrics
    n_states: int
    intermediate_fraction: float
    bimodality_coefficient: float
    fano_factor: float
    bursts: Bursts | None = None          # removed photon bursts (None: not looked for)
    switching: SwitchingRates | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON types (lists, floats, ints, str, None for NaN)."""
        return to_json_types(self)


def analyse_blinking(times: np.ndarray, bin_width: float = 0.01, confidence: float = 0.95,
                     method: Literal["poisson", "gaussian"] = "poisson", max_states: int = 10,
                     min_dwells: int = 10, bursts: bool = True) -> BlinkingResult:
    """Full blinking analysis of one particle's photon arrival times.

    Parameters
    ----------
    times
        Sorted arrival times in seconds of all photons (detectors merged).
    bin_width
        Bin width of the intensity trace (s).
    confidence
        Confidence of the change-point tests.
    method
        Mixture used for the ON/OFF threshold.
    max_states
        Largest number of intensity states considered by BIC.
    min_dwells
        Fewest dwells needed for a power-law fit (else the fit is ``None``).
    bursts
        Find photon bursts among the levels and remove them (:mod:`spad.analysis.bursts`): their
        photons leave the trace, the histogram and the levels; ``n_photons`` counts the rest.

    Returns
    -------
    BlinkingResult
    """
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1 or t.size < 2:
        raise ValueError("need a 1-D array of at least two photon times")
    return blinking_in_passes(lambda: (t,), bin_width, confidence, method, max_states,
                              min_dwells, bursts)


def change_points_of(pieces: Iterable[np.ndarray], confidence: float) -> ChangePointStream:
    """One pass: the change points of sorted photon times given in pieces (any split gives
    those of the whole stream, :class:`spad.analysis.changepoints.ChangePointStream`)."""
    cp = ChangePointStream(confidence)
    for t in pieces:
        cp.update(t)
    cp.close()
    return cp


def blinking_in_passes(pieces: Callable[[], Iterable[np.ndarray]], bin_width: float,
                       confidence: float, method: Literal["poisson", "gaussian"] = "poisson",
                       max_states: int = 10, min_dwells: int = 10, bursts: bool = True,
                       change_points: ChangePointStream | None = None) -> BlinkingResult:
    """:func:`analyse_blinking` of sorted photon times given in pieces: one pass for the change
    points (unless given), one for the binned trace of the photons kept. Photons in memory are
    one piece; a recording read again in windows (:mod:`spad.analysis.windowed`) gives one
    piece a window, and memory holds one piece.

    Parameters
    ----------
    pieces
        Called once per pass: the sorted photon times (s) in consecutive pieces.
    change_points
        The change points of these pieces, if a pass has already found them.
    bin_width, confidence, method, max_states, min_dwells, bursts
        As for :func:`analyse_blinking`.
    """
    if not bin_width > 0:
        raise ValueError(f"bin width must be positive seconds, not {bin_width}")
    cp = change_points or change_points_of(pieces(), confidence)
    if cp.n_photons < 2:
        raise ValueError("need a 1-D array of at least two photon times")
    levels, last_photon = cp.levels()
    notes: list[str] = []
    found: Bursts | None = None
    burst_lo = burst_hi = np.empty(0, dtype=np.int64)
    n_kept, t0, t1 = cp.n_photons, cp.first_s, cp.last_s
    if bursts:
        found = find_bursts(levels, p_value=BURST_TRACE_SHARE * (1.0 - confidence))
        if len(found):
            levels, burst_lo, burst_hi, n_kept, t1 = levels_without_bursts(
                levels, last_photon, cp.n_photons, found)
            t0 = float(levels.start[0])
            notes.append(burst_note(found))
    n_bins = int(np.floor((t1 - t0) / bin_width))
    if n_bins < 1:
        raise ValueError(f"the span {t1 - t0:g} s is shorter than one bin of {bin_width:g} s")
    counts = np.zeros(n_bins, dtype=np.int64)
    offset = 0
    for t in pieces():
        n = t.size
        if burst_lo.size:
            # the burst levels' photons, by their index in the stream
            idx = offset + np.arange(n)
            k = np.searchsorted(burst_lo, idx, side="right") - 1
            inside = (k >= 0) & (idx < burst_hi[np.maximum(k, 0)])
            t = t[~inside]
        add_to_bins(t, t0, float(bin_width), counts)
        offset += n
    return blinking_from_levels(levels, found, counts, n_kept, float(t1 - t0), bin_width,
                                confidence, method, max_states, min_dwells, notes)


def burst_note(found: Bursts) -> str:
    """The note saying which bursts were removed."""
    return (f"{len(found)} photon burst(s) removed ({int(found.n_photons.sum())} "
            f"photons, {float(np.sum(found.end - found.start)) * 1e3:.1f} ms)")


def blinking_from_levels(levels: Levels, found: Bursts | None, counts: np.ndarray,
                         n_photons: int, duration: float, bin_width: float,
                         confidence: float, method: Literal["poisson", "gaussian"] = "poisson",
                         max_states: int = 10, min_dwells: int = 10,
                         notes: list[str] | None = None) -> BlinkingResult:
    """The rest of :func:`analyse_blinking` once the levels (bursts removed) and the binned
    trace of the photons kept are known: threshold, states, dwells, fits, metrics. Needs no
    photons, so a stream analysed in pieces (:mod:`spad.analysis.windowed`) ends here too."""
    notes = [] if notes is None else notes
    mix = mixture_threshold(counts, method)
    grouping: Grouping = group_levels(levels, max_states)
    if grouping.n_states >= max_states and len(levels) > max_states:
        # the BIC beats every smaller number of states and would rise further: no handful of
        # discrete levels describes the intensity (drift, several emitters, a grey continuum)
        notes.append(f"intensity states: the BIC still rises at {max_states} states, the most "
                     "tried: the intensity is not a few discrete levels (drift, several "
                     "emitters?); the number of states is a lower bound")
    thr_rate = mix.threshold / bin_width
    level_on = levels.intensity > thr_rate
    on, off = dwell_times(level_on, levels.start, levels.end)

    def fit(d: np.ndarray, name: str) -> PowerLawFit | None:
        if d.size < min_dwells:
            notes.append(f"{name}: {d.size} dwells, too few for a power-law fit")
            return None
        try:
            return fit_power_law(d, min_tail=min(min_dwells, d.size))
        except ValueError as exc:
            notes.append(f"{name}: {exc}")
            return None

    frac = grouping.time_fractions
    inter = float(frac[1:-1].sum()) if grouping.n_states > 2 else 0.0
    if steady_emitter(grouping.intensities):
        # no OFF state: a threshold would split the shot noise of the one state in half
        on_frac, on_err = 1.0, ON_FRACTION_RESOLUTION
    else:
        on_frac = mix.on_fraction
        on_err = block_jackknife(counts, lambda c: float(np.mean(c > mix.threshold)),
                                 JACKKNIFE_BLOCKS)
        if on_err is not None:
            on_err = max(on_err, ON_FRACTION_RESOLUTION)
    return BlinkingResult(
        n_photons=int(n_photons), duration=float(duration), bin_width=float(bin_width),
        confidence=float(confidence), histogram=intensity_histogram(counts)[0], mixture=mix,
        threshold_rate=float(thr_rate), on_fraction=on_frac, on_fraction_err=on_err,
        change_point_times=levels.start[1:], level_start=levels.start, level_end=levels.end,
        level_photons=levels.n_photons, level_intensity=levels.intensity,
        level_state=grouping.group_of_level, state_intensity=grouping.intensities,
        state_time_fraction=frac, bic=grouping.bic, level_on=level_on,
        on_dwells=on, off_dwells=off, on_fit=fit(on, "ON"), off_fit=fit(off, "OFF"),
        n_states=grouping.n_states, intermediate_fraction=inter,
        bimodality_coefficient=bimodality_coefficient(counts), fano_factor=fano_factor(counts),
        bursts=found, switching=switching_rates(levels.start, levels.end,
                                                grouping.group_of_level, grouping.n_states),
        notes=notes)
