"""The choices of the photon analysis of one particle (:class:`AnalysisSettings`, times in
seconds), and a measured IRF read into them (:func:`irf_from_file`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from spad.analysis.accumulators import DecayHistogram

import spad
from spad.errors import SpadError


@dataclass
class AnalysisSettings:
    """Choices of the photon analysis (times in seconds).

    Attributes
    ----------
    detectors
        The two HBT detectors (a, b) correlated for g2; their photons make the trace.
    auto_detectors
        The user did not choose the detectors: a recording is analysed with the pair read off
        its first chunk where ``detectors`` recorded nothing
        (:func:`spad.analysis.detector_choice.detectors_for_file`, with a note). ``spad analyze
        --detectors`` sets it False; a live acquisition's detectors come from the rig and are
        never changed.
    trace_bin_s
        Bin width of the intensity trace and the FLID.
    delay_s
        Delay of detector b behind detector a (cable delays) if known: the zero-delay peak is
        the coincidence peak nearest it (``spad analyze --delay-ns``); default found from the
        data.
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
    irf_path
        The recording ``irf`` was histogrammed from (``spad analyze --irf``), so that a file
        whose detectors are chosen from the data gets the IRF of those detectors
        (:func:`spad.analysis.detector_choice.detectors_for_file`).
    dark_counts_hz
        Dark count rate per detector for the g2 background correction, if known.
    cw_bin_s
        Bin of g2(τ) when the correlogram has no periodic structure (continuous excitation).
        The correlation's range and bin follow the timing
        (:func:`spad.analysis.g2_timing.correlation_range`).
    roi
        Region of interest (start, end) in seconds on the recording's clock, either end
        ``None`` for the trace's own (``spad analyze --roi START:END``); ``None``: all of it.
    auto_roi
        Without an end given, end the ROI where a bleached or dead tail begins
        (:func:`spad.analysis.roi.bleach_end`).
    remove_bursts
        Find photon bursts and remove their photons from every analysis
        (:mod:`spad.analysis.bursts`).
    max_level_fits
        Fit the decays of up to this many single resolved levels, those with the most photons
        (:func:`spad.analysis.level_decays.level_decays`; the desktop app's Decay panel). 0, the
        default of ``spad analyze`` and the live analysis: none, as each costs a fit and no
        table field depends on them.
    state_fits
        Fit the decay of each intensity state of the level grouping (the desktop app's Decay
        panel, live and afterwards). False, the default of ``spad analyze`` and ``spad batch``:
        the decays are made, not fitted, as no table field depends on the fits (two per state
        with enough photons, 1 and 2 exponentials: a quarter of the analysis of a 60 s
        particle).
    """

    detectors: tuple[int, int] = (1, 2)
    auto_detectors: bool = True
    trace_bin_s: float = 0.010
    delay_s: float | None = None
    gate_s: float = 5e-9
    cw_bin_s: float = 1e-9
    confidence: float = 0.99
    decay_bin_s: float = 0.128e-9
    irf: np.ndarray | None = None
    irf_path: str | None = None
    dark_counts_hz: float | None = None
    roi: tuple[float | None, float | None] | None = None
    auto_roi: bool = True
    remove_bursts: bool = True
    max_level_fits: int = 0
    state_fits: bool = False

    @classmethod
    def from_user(cls, *, gate_ns: float = 5.0, bin_ms: float = 10.0,
                  detectors: Sequence[int] | None = None, delay_ns: float | None = None,
                  roi: str | tuple[float | None, float | None] | None = None,
                  auto_roi: bool = True, remove_bursts: bool = True,
                  irf: str | Path | None = None, max_level_fits: int = 0,
                  state_fits: bool = False) -> AnalysisSettings:
        """The settings from the user's units and choices, checked: the one place where
        ``spad analyze``'s options, a ``spad batch`` settings file and the desktop app's panel
        become :class:`AnalysisSettings`.

        Parameters
        ----------
        gate_ns, bin_ms, delay_ns
            ``--gate-ns``, ``--bin-ms``, ``--delay-ns`` (ns, ms, ns).
        detectors
            ``--detectors A B``; ``None`` for the default pair, read off the file where it
            recorded nothing (``auto_detectors``).
        roi
            ``--roi START:END`` as text or as a pair of seconds (either end ``None``); ``None``
            for all of the recording. The ROI is a setting, never a cropped source.
        auto_roi, remove_bursts
            Not ``--no-auto-roi``, not ``--keep-bursts``.
        irf
            ``--irf``: a measured IRF recording, histogrammed here (:func:`irf_from_file`).
        max_level_fits, state_fits
            Single-level decays to fit, and whether to fit each intensity state's decay (the
            desktop app's Decay panel; see the attributes).

        Raises
        ------
        SpadError
            A value out of range, named by its ``spad analyze`` option.
        """
        from spad.analysis.roi import parse_roi

        if gate_ns < 0 or bin_ms <= 0:
            raise SpadError("--gate-ns must be >= 0 and --bin-ms > 0 (units: ns and ms)")
        a, b = detectors or cls.detectors
        if a == b or not (0 <= a <= 255 and 0 <= b <= 255):
            raise SpadError(f"--detectors needs two different detector numbers 0-255, not {a} {b}")
        if delay_ns is not None and not abs(delay_ns) < 1e6:
            raise SpadError(f"--delay-ns must be a number of nanoseconds, not {delay_ns}")
        if isinstance(roi, str):
            try:
                roi = parse_roi(roi) if roi else None
            except ValueError as exc:
                raise SpadError(f"--roi: {exc}") from None
        s = cls(gate_s=gate_ns * 1e-9, trace_bin_s=bin_ms * 1e-3, detectors=(a, b),
                auto_detectors=detectors is None, roi=roi, auto_roi=auto_roi,
                remove_bursts=remove_bursts, delay_s=None if delay_ns is None else delay_ns * 1e-9,
                max_level_fits=max_level_fits, state_fits=state_fits)
        if irf:
            s.irf, s.irf_path = irf_from_file(irf, s), str(irf)
        return s


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
