"""Region of interest of a trace: the stretch where the particle still emits.

A particle that photobleaches (or drifts out of focus, or whose recording simply runs on) leaves
a dark tail. Counted as an OFF dwell it lowers the ON fraction, adds an OFF dwell of arbitrary
length to the power-law fit and mixes dark counts into the decays. The region of interest (ROI)
keeps the analyses to ``[start, end)``; it is given by hand (``spad analyze --roi START:END``,
seconds on the recording's clock) or found by :func:`bleach_end`.

Automatic trimming follows Full SMS (Botha, van Heerden & Krüger, Biophys. Rep. 2024, "auto-trim
ROI"): going back from the end of the trace, levels dimmer than a threshold are accumulated; if
they last long enough, the ROI ends where that trailing dark run begins. Full SMS asks the user
for the threshold (default 1000 cps) and the shortest run (default 1 s). Here the threshold is
the trace's own ON/OFF threshold (the intensity-histogram mixture), and a dark run counts as
bleaching only if it lasts at least ``min_dark_s`` and at least ``factor`` times the longest dark
dwell earlier in the trace: a blinking particle's OFF dwells follow a power law, so a final dark
stretch no longer than those before it is most likely one more OFF dwell, not bleaching. What
cannot be told apart (a final OFF dwell far longer than any before it) is cut; the ROI is
reported, so a user who disagrees gives it by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from spad.analysis.blinking import BlinkingResult, analyse_blinking, steady_emitter
from spad.analysis.bursts import photons_outside

__all__ = ["bleach_end", "parse_roi", "Selection", "select_photons"]


def bleach_end(level_start: np.ndarray, level_end: np.ndarray, level_intensity: np.ndarray,
               threshold_rate: float, min_dark_s: float = 1.0, factor: float = 2.0
               ) -> float | None:
    """Start of the trailing dark (bleached or dead) stretch of a trace, or ``None``.

    Parameters
    ----------
    level_start, level_end, level_intensity
        Change-point levels in time order (s, s, counts/s).
    threshold_rate
        Intensity (counts/s) below which a level is dark.
    min_dark_s
        Shortest trailing dark run taken for bleaching (s).
    factor
        The trailing dark run must also last ``factor`` times the longest earlier dark dwell.
    """
    start = np.asarray(level_start, dtype=np.float64)
    end = np.asarray(level_end, dtype=np.float64)
    dark = np.asarray(level_intensity, dtype=np.float64) < threshold_rate
    if dark.size == 0 or not dark[-1]:
        return None
    bright = np.flatnonzero(~dark)
    if bright.size == 0:
        return None  # dark throughout: nothing to keep, nothing to say it ever emitted
    k = int(bright[-1]) + 1  # first level of the trailing dark run
    run = float(end[-1] - start[k])
    # earlier dark dwells: runs of consecutive dark levels before the last bright level
    d = dark[:k]
    change = np.flatnonzero(d[1:] != d[:-1]) + 1
    first = np.concatenate([[0], change])
    last = np.concatenate([change, [d.size]]) - 1
    dur = end[last] - start[first]
    longest = float(dur[d[first]].max()) if np.any(d[first]) else 0.0
    if run >= min_dark_s and run >= factor * longest:
        return float(start[k])
    return None


def parse_roi(text: str) -> tuple[float | None, float | None]:
    """``"START:END"`` in seconds (either may be empty: ``"5:"``, ``":20"``) to a pair.

    Raises
    ------
    ValueError
        Not two numbers separated by a colon, a negative time, or END not after START.
    """
    parts = text.split(":")
    if len(parts) != 2:
        raise ValueError(f"ROI {text!r} must be START:END in seconds (e.g. 0:25 or 5:)")
    try:
        lo, hi = (float(p) if p.strip() else None for p in parts)
    except ValueError:
        raise ValueError(f"ROI {text!r} must be START:END in seconds (e.g. 0:25 or 5:)") \
            from None
    if (lo is not None and lo < 0) or (hi is not None and hi <= 0) or (
            lo is not None and hi is not None and hi <= lo):
        raise ValueError(f"ROI {text!r}: times must be >= 0 s with END after START")
    return lo, hi


@dataclass
class Selection:
    """The photons an analysis keeps: inside the ROI and outside every burst.

    Attributes
    ----------
    keep
        Mask over the sorted photon times given to :func:`select_photons`.
    roi_start_s, roi_end_s
        The region of interest on the recording's clock (s).
    roi_auto
        The end was set by :func:`bleach_end` (the trace's dark tail was cut).
    blinking
        The blinking analysis of the kept photons (bursts already removed).
    """

    keep: np.ndarray
    roi_start_s: float
    roi_end_s: float
    roi_auto: bool
    blinking: BlinkingResult


def select_photons(times: np.ndarray, bin_width: float, confidence: float,
                   roi: tuple[float | None, float | None] | None = None,
                   auto_roi: bool = True, bursts: bool = True,
                   min_dark_s: float = 1.0) -> Selection:
    """Region of interest and burst removal, then the blinking analysis of what is left.

    A ROI given by hand is used as it is; otherwise, with ``auto_roi``, the trace is cut where a
    trailing dark run begins (:func:`bleach_end`) and the levels are found again on the photons
    before it, so that the dark tail changes neither the threshold nor the grouping.

    Parameters
    ----------
    times
        Sorted photon arrival times (s, the recording's clock).
    bin_width, confidence
        Of the blinking analysis (:func:`spad.analysis.blinking.analyse_blinking`).
    roi
        (start, end) in seconds, either ``None`` for the trace's own start or end.
    auto_roi
        Find the end of the ROI from the trace when ``roi`` does not give one.
    bursts
        Find and remove photon bursts.
    min_dark_s
        Shortest trailing dark run cut by the automatic ROI.
    """
    t = np.asarray(times, dtype=np.float64)
    if t.size < 2:
        raise ValueError("need at least two photons")
    lo, hi = roi if roi is not None else (None, None)
    start = float(t[0]) if lo is None else float(lo)
    end = float(t[-1]) if hi is None else float(hi)
    in_roi = (t >= start) & (t <= end)
    if int(in_roi.sum()) < 2:
        raise ValueError(f"the ROI {start:g}-{end:g} s holds fewer than two photons "
                         f"(photons from {t[0]:g} to {t[-1]:g} s)")
    # all of the trace (the usual case): no copy of the times
    blink = analyse_blinking(t if in_roi.all() else t[in_roi], bin_width, confidence,
                             bursts=bursts)
    auto = False
    # a steady emitter has no dark state to bleach into: the threshold through its shot noise
    # would make its dimmer levels look dark and cut the trace anywhere
    if hi is None and auto_roi and not steady_emitter(blink.state_intensity):
        cut = bleach_end(blink.level_start, blink.level_end, blink.level_intensity,
                         blink.threshold_rate, min_dark_s=min_dark_s)
        if cut is not None and np.count_nonzero(in_roi & (t < cut)) >= 2:
            end, auto = cut, True
            in_roi &= t < cut
            blink = analyse_blinking(t[in_roi], bin_width, confidence, bursts=bursts)
    keep = in_roi
    if blink.bursts is not None and len(blink.bursts):
        keep = keep & photons_outside(t, blink.bursts.start, blink.bursts.end)
    return Selection(keep, start, end, auto, blink)
