"""Where the background that g2(0) is corrected for comes from.

A background count rate B beside a signal S adds uncorrelated coincidences to every peak of
the correlogram, raising g2(0) of a single emitter from 0 towards ``1 - rho^2`` with
``rho = S / (S + B)`` (Brouri, Beveratos, Poizat & Grangier, Opt. Lett. 25, 1294 (2000);
docs/methods.md); the correction itself is :func:`spad.analysis.g2.pulsed_g2`'s. This module only
finds B, in order of trust: detector dark counts given by the user; the flat floor under the
fitted decay (:func:`spad.analysis.g2_timing.decay_floor_background`), which is every uncorrelated
count spread over the laser period; else the particle's own dark OFF level, an upper bound.
:func:`recorded_share` and :func:`gated_background` say how much of it the card records and
the time gate keeps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from spad.analysis.accumulators import Decay
from spad.analysis.g2 import passes_gate
from spad.analysis.g2_pairs import SelfPairCounter, same_sync_steps
from spad.analysis.g2_timing import decay_floor_background
from spad.analysis.lifetimes import periodic_decay_bins
from spad.analysis.photon_result import PhotonAnalysis
from spad.analysis.settings import AnalysisSettings

if TYPE_CHECKING:
    from spad.analysis.windowed import KeptPhotons


def g2_background(out: PhotonAnalysis, sync_period_s: float | None, s: AnalysisSettings,
                  photons: KeptPhotons | None = None,
                  counted: Callable[[], AfterpulsePairs | None] | None = None
                  ) -> tuple[dict[str, Any], float | None]:
    """Background options for :func:`~spad.analysis.g2_timing.analyze_g2` and the total rate.

    Given dark counts win; else the decay fit's flat floor (with a laser period and a decay);
    else the dimmest intensity state when it is dark (:func:`_off_level_background`).

    Parameters
    ----------
    out
        The particle's photon analysis so far (decay and its fit, blinking, correlation);
        a note is added when the floor is too large to correct with.
    sync_period_s
        The stream's sync period in s.
    s
        The analysis settings (detectors, dark counts).
    photons
        The kept photons (T3), to measure the afterpulses that move the decay floor's
        background (:func:`afterpulse_background`); ``None``: the floor as it is.
    counted
        Gives their afterpulse pairs counted already (:func:`count_afterpulse_pairs`).

    Returns
    -------
    options
        Keyword arguments of :func:`~spad.analysis.g2_timing.analyze_g2` (``background_hz``,
        ``background_err_hz``, ``background_source``); empty for no correction.
    total
        The total background rate in counts/s, ``None`` for no correction. With empty
        ``options``: a floor measured but too large to correct for (:func:`drop_uncorrected`).
    """
    det_a, det_b = s.detectors
    if s.dark_counts_hz is not None:
        # a card whose TCSPC range is shorter than the period records only that share of them
        share = 1.0 if out.decay is None else recorded_share(out.decay, sync_period_s)
        b = (float(s.dark_counts_hz) * share,) * 2
        return {"background_hz": b, "background_source": "dark counts"}, sum(b)
    fit = out.lifetime_all
    # a decay fit whose lifetime physics allows gives a floor; a fit that misses structure
    # near the pulse (Durbin-Watson) still measures the flat floor over the period
    duration = out.correlation.duration_s if out.correlation is not None else out.duration_s
    if (fit is None or out.decay is None or not np.isfinite(fit.background)
            or sync_period_s is None or fit.tau_intensity_mean > sync_period_s):
        # no floor from the fit (a floor that dominates is taken up as a microsecond
        # "lifetime"): the quietest quarter of the period still tells when it is most counts
        quiet = _quiet_floor_cps(out, sync_period_s, duration, (det_a, det_b))
        rate = out.count_rate_cps or 0.0
        if quiet is not None and rate > 0 and quiet > 0.5 * rate:
            out.notes.append(f"the decay's quietest quarter period holds {quiet / rate:.0%} "
                             "of the counts spread over the period: no background correction "
                             "of g2")
            return {}, quiet
        return _off_level_background(out, s)
    edges = out.decay_fitted_edges_s
    covered = None if edges is None else float(edges[-1] - edges[0])
    b, db = decay_floor_background(out.decay, sync_period_s, duration,
                                   float(fit.background), float(fit.background_err or 0.0),
                                   out.decay.bin_width_s, det_a, det_b, covered_s=covered)
    rate = out.count_rate_cps or 0.0
    if rate <= 0 or sum(b) > 0.5 * rate:
        # mostly floor: no pulse stands out enough to separate signal from background; the
        # rate without options tells g2_step that the g2(0) would be the background's
        out.notes.append(f"the decay's flat floor is {sum(b) / max(rate, 1e-9):.0%} of the "
                         "counts: no background correction of g2")
        return {}, sum(b)
    if photons is not None and photons.windows.timing is not None and (
            photons.windows.timing.is_t3):
        share = afterpulse_background(
            photons.kept_pieces, out.decay, photons.windows.delay_unit_s, sync_period_s,
            float(duration or 0.0), (det_a, det_b), np.asarray(fit.taus, dtype=float),
            out.pulse_delay_s or {}, b, counted)
        if share is not None:
            b = tuple(max(0.0, x + dx) for x, dx in zip(b, share.shift_hz, strict=True))
            db = tuple(math.hypot(e, de) for e, de in zip(db, share.shift_err_hz,
                                                         strict=True))
            out.notes.append(
                "g2 background: the decay floor less the afterpulses it holds, plus those "
                "landing in a later sync (measured from each detector's own pairs: per photon "
                f"{share.same_sync[0]:.4f}/{share.same_sync[1]:.4f} in the parent's sync, "
                f"{share.later_sync[0]:.4f}/{share.later_sync[1]:.4f} later; "
                f"{sum(share.shift_hz):+.0f} cps)")
    return ({"background_hz": b, "background_err_hz": db,
             "background_source": "decay floor"}, sum(b))


def _quiet_floor_cps(out: PhotonAnalysis, period_s: float | None, duration_s: float | None,
                     detectors: tuple[int, int]) -> float | None:
    """The detectors' flat floor without a fit, in counts/s: the smallest count over a
    quarter of the recorded period (circularly), scaled to the whole recorded period. An upper
    bound (a decay's tail adds to it), used only to tell a floor that is most of the counts."""
    decay = out.decay
    if decay is None or not duration_s or duration_s <= 0:
        return None
    rows = [decay.counts[decay.detectors.index(d)] for d in detectors if d in decay.detectors]
    if not rows:
        return None
    row = np.sum(rows, axis=0).astype(float)
    if period_s is not None and period_s > 0:
        row = row[:max(1, int(np.count_nonzero(decay.bin_edges_s[1:] <= period_s + 1e-15)))]
    n = row.size
    q = max(1, n // 4)
    csum = np.concatenate(([0.0], np.cumsum(np.concatenate((row, row[:q])))))
    return float(np.min(csum[q:q + n] - csum[:n])) * n / q / float(duration_s)


def _off_level_background(out: PhotonAnalysis, s: AnalysisSettings
                          ) -> tuple[dict[str, Any], float | None]:
    """Background from the dark OFF level, when there is no decay floor to read it from.

    The dimmest intensity state is taken as uncorrelated background if it is dark (at most 30 %
    of the brightest state's rate and a quarter of the mean rate) and lasts (at least 5 % of
    the time): detector dark counts and stray light dominate it. A
    weakly emitting OFF state is counted with it, so the correction is an upper bound (g2(0)
    comes out at most that much low); split between the detectors by their photon counts.
    """
    b = out.blinking
    if (b is None or b.n_states < 2 or len(b.state_intensity) < 2
            or not b.state_intensity[0] <= 0.3 * b.state_intensity[-1]
            or not b.state_intensity[0] <= 0.25 * float(out.count_rate_cps or 0.0)
            or not b.state_time_fraction[0] >= 0.05):
        # not a dark level that lasts: a brief dim level is no background measurement
        return {}, None
    total = float(b.state_intensity[0])
    t_off = float(b.state_time_fraction[0]) * float(out.duration_s or 0.0)
    if not (total > 0 and t_off > 0):
        return {}, None
    err = float(np.sqrt(total * t_off) / t_off)
    c = out.correlation
    share = (np.array([c.n_a, c.n_b], dtype=float) / max(c.n_a + c.n_b, 1)
             if c is not None else np.array([0.5, 0.5]))
    out.notes.append(f"g2 background from the dark OFF level ({total:.0f} cps over "
                     f"{t_off:.1f} s): an upper bound, an emitting OFF state counts with it")
    return ({"background_hz": tuple(float(x) for x in total * share),
             "background_err_hz": tuple(float(x) for x in err * share),
             "background_source": "off level"}, total)


def _recorded_bins(decay: Decay, row: np.ndarray, period_s: float | None) -> np.ndarray:
    """Indices of the delay bins where one detector's uncorrelated background lands.

    A flat background is recorded wherever the card measures delays within one period: the
    whole TCSPC range when it is at most a period, else the period-long stretch the photons
    occupy (a reverse start-stop TimeHarp 200 puts a 200 ns period anywhere in its 287.7 ns
    range; docs/methods.md, "Decays and lifetimes").
    """
    n = row.size
    if period_s is None or not period_s > 0:
        return np.arange(n)
    span = int(round(period_s / decay.bin_width_s))
    if span >= n:
        return np.arange(n)
    csum = np.concatenate(([0.0], np.cumsum(row, dtype=float)))
    start = int(np.argmax(csum[span:] - csum[:-span]))
    return np.arange(start, start + span)


def recorded_share(decay: Decay, period_s: float | None) -> float:
    """Share of a detector's uncorrelated counts (dark counts, stray light) that the card
    records: the TCSPC range over the period when the range is shorter (a 50 ns range at a
    200 ns period records a quarter of them), else 1."""
    if period_s is None or not period_s > 0:
        return 1.0
    width = float(decay.bin_edges_s[-1] - decay.bin_edges_s[0])
    return min(1.0, width / period_s)


def gate_background_fraction(decay: Decay, period_s: float | None,
                             pulse_delay_s: dict[int, float], gate_s: float,
                             detectors: tuple[int, int]) -> tuple[float, float]:
    """Share of each detector's recorded uncorrelated background that passes the time gate.

    The background is flat over the delays the card records (:func:`_recorded_bins`); the
    share is the fraction of those bins whose centre :func:`spad.analysis.g2.passes_gate`
    keeps, so it follows the gate's own rule wherever the pulse lies and whatever the range:
    with a 50 ns range at a 200 ns period and the pulse at 3 ns, a 5 ns gate keeps 84 % of the
    recorded background, not the 96 % of a period.
    """
    out = []
    centres = decay.bin_centers_s
    for det in detectors:
        if det not in decay.detectors or det not in pulse_delay_s:
            out.append(0.0)
            continue
        row = np.asarray(decay.counts[decay.detectors.index(det)], dtype=float)
        idx = _recorded_bins(decay, row, period_s)
        keep = passes_gate(centres[idx], np.full(idx.size, det), {det: pulse_delay_s[det]},
                           gate_s)
        out.append(float(np.mean(keep)) if idx.size else 0.0)
    return out[0], out[1]


def gated_background(background: dict[str, Any], decay: Decay, period_s: float | None,
                     pulse_delay_s: dict[int, float], gate_s: float,
                     detectors: tuple[int, int]) -> dict[str, Any]:
    """The background options of :func:`g2_background` for the gated photons: each detector's
    rate (and error) times its :func:`gate_background_fraction`."""
    gated = dict(background)
    if "background_hz" not in gated:
        return gated
    frac = gate_background_fraction(decay, period_s, pulse_delay_s, gate_s, detectors)
    for key in ("background_hz", "background_err_hz"):
        if key in gated:
            gated[key] = tuple(float(b) * f for b, f in zip(gated[key], frac, strict=True))
    return gated


def drop_uncorrected(out: PhotonAnalysis, background: dict[str, Any],
                     background_cps: float | None) -> None:
    """No g2(0) where most counts are a background that could not be corrected for.

    The uncorrected ratio is then mostly the background's own, about 1: on simulated monomers
    at 1 kcps with 2 kHz dark counts per detector (true g2(0) 0.08) it read 0.98 ± 0.13, a
    dimer's value (tests/benchmarks/study_g2_bias.py). The plain window ratio stays as
    ``g2_zero_raw``.
    """
    if "background_hz" in background or background_cps is None:
        return
    names = ("g2_zero", "g2_zero_err", "g2_zero_gated", "g2_zero_gated_err")
    if all(getattr(out, n) is None for n in names):
        return
    for n in names:
        setattr(out, n, None)
    out.notes.append(f"no g2(0): {background_cps:.0f} cps of the counts are uncorrelated "
                     "background (the decay's flat floor), too much to correct for; the "
                     "uncorrected ratio (g2_zero_raw) is mostly the background's")


AFTERPULSE_REACH_S = 3e-6
"""How long after a photon its detector's afterpulses are looked for: the same-detector pairs
up to this far apart, less those far apart, are the afterpulses (a silicon SPAD's afterpulses
mostly come within a microsecond: Wayne, Bienfang & Polyakov, Opt. Express 25, 20352
(2017))."""

MIN_SAME_SYNC_PAIRS = 100
"""Fewest same-detector pairs within one sync per detector to measure the afterpulses."""


@dataclass(frozen=True)
class AfterpulseShare:
    """Each detector's afterpulses measured from its own pairs, and how they move its
    uncorrelated background (:func:`afterpulse_background`); per detector a and b, rates in
    counts/s.

    Attributes
    ----------
    dead_time_s
        The shortest delay between two photons of the detector within one sync.
    same_sync, later_sync
        Afterpulses per photon that land in their parent's sync and in a later one.
    floor_same_hz, floor_later_hz
        The rates of each that a flat floor under the decay takes as background (the
        latter from the later syncs' excess pairs bin by bin: noisy, not used).
    later_hz
        The rate of afterpulses of later syncs.
    background_same_hz
        The rate of same-sync afterpulses of background counts (background themselves).
    bunching
        Side-peak pairs over the pairs of uncorrelated rates (1 + the blinking bunching).
    shift_hz, shift_err_hz
        Change of the uncorrelated background: ``-(floor_same - background_same) + later *
        (bunching - 1) * (1 - floor / rate)``, and its standard error.
    """

    dead_time_s: tuple[float, float]
    same_sync: tuple[float, float]
    later_sync: tuple[float, float]
    floor_same_hz: tuple[float, float]
    floor_later_hz: tuple[float, float]
    later_hz: tuple[float, float]
    background_same_hz: tuple[float, float]
    bunching: float
    shift_hz: tuple[float, float]
    shift_err_hz: tuple[float, float]


def _dead_times(pieces: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
                detectors: tuple[int, int]) -> tuple[list[int], list[int], list[int]]:
    """Per detector the shortest delay step between successive photons within one sync (in
    units), and how many such steps go forward and backward in delay."""
    short = np.full(2, np.iinfo(np.int64).max, dtype=np.int64)
    fwd, back = np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.int64)
    for ts, dl, det in pieces:
        same_sync_steps(ts, dl, det, detectors, short, fwd, back)
    return [int(v) for v in short], [int(v) for v in fwd], [int(v) for v in back]


def _floor_weights(row: np.ndarray, edges_s: np.ndarray, period_s: float, pulse_s: float,
                   taus: np.ndarray) -> np.ndarray:
    """How a flat floor fitted under a periodic multi-exponential decay follows each bin's
    counts: the row of the linearised fit (Poisson weights, the lifetimes free) that gives
    the floor per bin from the counts. The decay fit's floor is its maximum-likelihood
    estimate, so a small addition ``a`` to the counts moves it by ``weights @ a``."""
    t = edges_s - pulse_s
    cols = [periodic_decay_bins(t, float(tau), period_s) for tau in taus]
    base = np.column_stack([*cols, np.ones(row.size)])
    w = 1.0 / np.maximum(row, 1.0)
    amp = np.linalg.lstsq(base * np.sqrt(w)[:, None], row * np.sqrt(w), rcond=None)[0]
    model = np.maximum(base @ amp, 1e-3 * max(row.mean(), 1e-9))
    deriv = [amp[j] * (periodic_decay_bins(t, float(tau) * 1.001, period_s) - cols[j])
             / (float(tau) * 0.001) for j, tau in enumerate(taus)]
    jac = np.column_stack([*cols, np.ones(row.size), *deriv])
    sw = np.sqrt(1.0 / model)[:, None]
    pinv = np.linalg.pinv(jac * sw) * sw.T
    return pinv[len(taus)]


Pieces = Callable[[], Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]]
"""Called for one pass over the photons: (sync numbers, delays in units, detectors)."""

AfterpulsePairs = tuple[SelfPairCounter, list[int]]
"""Each detector's own pairs (:class:`~spad.analysis.g2_pairs.SelfPairCounter`) and its dead
time in delay units."""


def count_afterpulse_pairs(pieces: Pieces, decay: Decay, delay_unit_s: float, period_s: float,
                           detectors: tuple[int, int], pulse_delay_s: Mapping[int, float]
                           ) -> AfterpulsePairs | None:
    """The passes over the photons behind :func:`afterpulse_background`: each detector's dead
    time (its shortest step between photons of one sync), then its own pairs in the parent's
    sync, in later syncs and far away. ``None`` with too few pairs of one sync, delays that
    run backwards in time (reverse start-stop) or pairs lost. Needs no decay fit, only the
    delay histograms' bins and the pulse delays, so it can run while the fits do
    (:class:`spad.analysis.photon_analysis.PairCounts`)."""
    if period_s <= 0 or any(d not in decay.detectors or d not in pulse_delay_s
                            for d in detectors):
        return None
    short, fwd, back = _dead_times(pieces(), detectors)
    if min(fwd) < MIN_SAME_SYNC_PAIRS or any(b > f for b, f in zip(back, fwd, strict=True)):
        return None
    n_near = max(1, math.ceil(AFTERPULSE_REACH_S / period_s))
    edges_units = np.round(decay.bin_edges_s / delay_unit_s)
    offsets = tuple(int(round(pulse_delay_s[d] / delay_unit_s)) for d in detectors)
    counter = SelfPairCounter(*detectors, edges_units, (short[0] - 1, short[1] - 1), offsets,
                              int(round(period_s / delay_unit_s)), n_near, 4 * n_near,
                              8 * n_near)
    for ts, dl, det in pieces():
        counter.update(ts, dl, det)
    if counter.lost or counter.cross[0] <= 0 or min(counter.counts) <= 0:
        return None
    return counter, short


def afterpulse_background(pieces: Pieces, decay: Decay, delay_unit_s: float, period_s: float,
                          duration_s: float, detectors: tuple[int, int], taus: np.ndarray,
                          pulse_delay_s: dict[int, float], floor_hz: tuple[float, float],
                          counted: Callable[[], AfterpulsePairs | None] | None = None
                          ) -> AfterpulseShare | None:
    """How afterpulses move the detectors' uncorrelated background from the decay's flat
    floor (T3), measured from the recording; ``None`` where they cannot be measured.

    Each detector's afterpulses are its excess pairs (afterpulsing measured from one
    detector's autocorrelation: Wayne, Bienfang & Polyakov, Opt. Express 25, 20352 (2017);
    the cross-correlation of two detectors has none: Zhao et al., Appl. Opt. 42, 4031
    (2003)). In later syncs, the same-detector pairs within :data:`AFTERPULSE_REACH_S` less
    the pairs the same photons make 4-8 times as far apart, where they are uncorrelated.
    Within one sync, beyond the dead time, less the two detectors' pairs of one sync with
    their pulses aligned: two photons of one pulse pair on one detector as on two
    (antibunched, with the background's pairs), so the histogram by the later photon's delay
    is the same-sync afterpulses'. An afterpulse in its parent's sync pairs with the other
    detector like its parent, so it scales the centre and the side peaks alike and is no
    background; one of a later sync pairs like an uncorrelated count that follows the
    parent's blinking. The decay fit's floor holds the same-sync ones' share
    (:func:`_floor_weights`) and, as they land anywhere in the period, nearly all the later
    ones: the background is the floor less the former plus the later ones times the
    blinking bunching less one. Afterpulses of background counts are background and stay
    (docs/methods.md, "Bias of the background correction").

    Parameters
    ----------
    pieces
        Called for one pass over the photons: (sync numbers, delays in units, detectors).
    decay, delay_unit_s
        The delay histograms and the delay unit in s.
    period_s, duration_s
        The laser period and the recording's duration in s.
    detectors
        The two detectors.
    taus
        The whole decay fit's lifetimes in s.
    pulse_delay_s
        Each detector's pulse delay after the sync in s.
    floor_hz
        Each detector's background from the decay floor, counts/s.
    counted
        Gives the pairs of :func:`count_afterpulse_pairs` counted already (on another
        thread); ``None``: counted here.
    """
    if duration_s <= 0 or not len(taus):
        return None
    # the period and the detectors are checked where the pairs are counted
    pairs = (counted() if counted is not None else
             count_afterpulse_pairs(pieces, decay, delay_unit_s, period_s, detectors,
                                    pulse_delay_s))
    if pairs is None:
        return None
    counter, short = pairs
    n_near, far_lo, far_hi = counter.n_near, counter.far_lo, counter.far_hi
    n_far = far_hi - far_lo
    h = counter.hists.astype(float)
    n_syncs = duration_s / period_s
    bunching = (float(counter.cross[0]) / (2 * n_far) * n_syncs
                / (float(counter.counts[0]) * float(counter.counts[1])))
    out: dict[str, list[float]] = {k: [] for k in (
        "dead", "same", "later", "fs", "fl", "lhz", "bg", "shift", "err")}
    for x, d in enumerate(detectors):
        # two photons of one pulse on one detector: as on the two detectors (antibunched,
        # blinking, background alike), scaled by the rates (each unordered pair once)
        scale = float(counter.counts[x]) / float(counter.counts[1 - x])
        same = h[x, 0] - scale * h[x, 2]
        var_same = h[x, 0] + scale ** 2 * h[x, 2]
        # one sync apart, the dead time after a photon late in its sync hides the next sync's
        # first photons: the reference of that sync takes the same cut
        ref_later = (h[x, 3] * (n_near - 2) + h[x, 4]) / n_far
        later = h[x, 1] - ref_later
        var_later = h[x, 1] + ref_later / n_far
        row = np.asarray(decay.counts[decay.detectors.index(d)], dtype=float)
        idx = _recorded_bins(decay, row, period_s)
        wts = _floor_weights(row[idx], decay.bin_edges_s[idx[0]:idx[-1] + 2], period_s,
                             float(pulse_delay_s[d]), np.asarray(taus, dtype=float))
        nb = idx.size
        # of the counts in the recorded bins, the floor (counts per bin times bins) they add
        fs = nb * float(wts @ same[idx])
        fl = nb * float(wts @ later[idx])
        lsum = float(later.sum())
        # the afterpulses of background counts are background: those of one sync (by the
        # parent's delay bin, each bin's share of background parents), flat like their
        # parents, stay in the floor; those of later syncs do not blink. The background
        # parents: the floor without its same-sync afterpulses, which follow their parents
        parents = h[x, 5] - scale * h[x, 6]
        uncorrelated = max(0.0, floor_hz[x] * duration_s - fs)
        bg_share = uncorrelated / nb / np.maximum(row[idx], 1.0)
        bg_share = np.minimum(bg_share, 1.0)
        a_bg = float(parents[idx] @ bg_share)
        rate = float(counter.counts[x]) / duration_s
        signal_share = (max(0.0, 1.0 - uncorrelated / duration_s / rate) if rate > 0
                        else 0.0)
        # an afterpulse of a later sync lands anywhere in its period (most come long after
        # the parent), so the floor holds it whole; it pairs like a photon of its parent's
        # blinking, the bunching more than an uncorrelated count. The per-bin shape of the
        # later syncs' excess is too noisy to take the floor's share of it bin by bin (as
        # ``fl``, reported only).
        var = (nb ** 2 * float(wts ** 2 @ var_same[idx])
               + float(bg_share ** 2 @ (h[x, 5] + scale ** 2 * h[x, 6])[idx])
               + ((bunching - 1.0) * signal_share) ** 2 * float(var_later.sum()))
        n = float(counter.counts[x])
        out["dead"].append(short[x] * delay_unit_s)
        out["same"].append(float(same.sum()) / n)
        out["later"].append(lsum / n)
        out["fs"].append(fs / duration_s)
        out["fl"].append(fl / duration_s)
        out["lhz"].append(lsum / duration_s)
        out["bg"].append(a_bg / duration_s)
        out["shift"].append((-(fs - a_bg) + (bunching - 1.0) * signal_share * lsum)
                            / duration_s)
        out["err"].append(math.sqrt(max(var, 0.0)) / duration_s)

    def pair(key: str) -> tuple[float, float]:
        return float(out[key][0]), float(out[key][1])

    return AfterpulseShare(pair("dead"), pair("same"), pair("later"), pair("fs"), pair("fl"),
                           pair("lhz"), pair("bg"), float(bunching), pair("shift"),
                           pair("err"))
