"""Where the background that g2(0) is corrected for comes from.

A background count rate B beside a signal S adds uncorrelated coincidences to every peak of
the correlogram, raising g2(0) of a single emitter from 0 towards ``1 - rho^2`` with
``rho = S / (S + B)`` (Brouri, Beveratos, Poizat & Grangier, Opt. Lett. 25, 1294 (2000);
docs/methods.md); the correction itself is :func:`spad.analysis.g2.pulsed_g2`'s. This module only
finds B, in order of trust: detector dark counts given by the user; the flat floor under the
fitted decay (:func:`spad.analysis.g2_timing.decay_floor_background`), which is every uncorrelated
count spread over the laser period; else the particle's own dark OFF level, an upper bound.
"""

from __future__ import annotations

from typing import Any

import numpy as np
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
        The total background rate in counts/s, ``None`` for no correction.
    """
    det_a, det_b = s.detectors
    if s.dark_counts_hz is not None:
        b = (float(s.dark_counts_hz),) * 2
        return {"background_hz": b, "background_source": "dark counts"}, sum(b)
    fit = out.lifetime_all
    # a decay fit whose lifetime physics allows gives a floor; a fit that misses structure
    # near the pulse (Durbin-Watson) still measures the flat floor over the period
    if (fit is None or out.decay is None or not np.isfinite(fit.background)
            or sync_period_s is None or fit.tau_intensity_mean > sync_period_s):
        return _off_level_background(out, s)
    duration = out.correlation.duration_s if out.correlation is not None else out.duration_s
    edges = out.decay_fitted_edges_s
    covered = None if edges is None else float(edges[-1] - edges[0])
    b, db = decay_floor_background(out.decay, sync_period_s, duration,
                                   float(fit.background), float(fit.background_err or 0.0),
                                   out.decay.bin_width_s, det_a, det_b, covered_s=covered)
    rate = out.count_rate_cps or 0.0
    if rate <= 0 or sum(b) > 0.5 * rate:
        # mostly floor: no pulse stands out enough to separate signal from background
        out.notes.append(f"the decay's flat floor is {sum(b) / max(rate, 1e-9):.0%} of the "
                         "counts: no background correction of g2")
        return {}, None
    return ({"background_hz": b, "background_err_hz": db,
             "background_source": "decay floor"}, sum(b))


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
