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

from typing import Any

import numpy as np
from spad.analysis.accumulators import Decay
from spad.analysis.g2 import passes_gate
from spad.analysis.g2_timing import decay_floor_background
from spad.analysis.photon_result import PhotonAnalysis
from spad.analysis.settings import AnalysisSettings


def g2_background(out: PhotonAnalysis, sync_period_s: float | None, s: AnalysisSettings
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
