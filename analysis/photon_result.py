"""What the photon analysis of one particle gives: :class:`PhotonAnalysis`, filled by the
steps of :mod:`spad.analysis.photon_analysis`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from spad.analysis.accumulators import Correlation, Decay
from spad.analysis.blinking import BlinkingResult
from spad.analysis.g2 import CWG2, G2Result
from spad.analysis.g2_timing import G2Analysis
from spad.analysis.level_decays import LevelDecays
from spad.analysis.lifetimes import LifetimeResult
from spad.analysis.schema import (
    BY_NAME,
    FEATURE_ERRORS,
    PHOTON_FEATURES,
    PHOTON_FIELDS,
    to_json_types,
)
from spad.analysis.trace import Trace


@dataclass
class PhotonAnalysis:
    """Everything read off one particle's photons.

    The scalar results (what goes into tables) come first: one attribute for each ``photons``
    field of :mod:`spad.analysis.schema`, which declares its unit and meaning
    (``tests/test_schema.py`` checks that the two name the same fields); ``None`` until a step
    sets it. The other attributes are the full results, for figures.
    """

    duration_s: float | None = None
    n_photons: int | None = None
    count_rate_cps: float | None = None
    roi_start_s: float | None = None
    roi_end_s: float | None = None
    roi_source: str | None = None
    n_bursts: int | None = None
    burst_photons: int | None = None
    mode: str | None = None
    sync_period_s: float | None = None
    g2_excitation: str | None = None
    g2_period_s: float | None = None
    g2_zero_delay_s: float | None = None
    g2_zero: float | None = None
    g2_zero_err: float | None = None
    g2_correction: str | None = None
    g2_background_cps: float | None = None
    g2_zero_gated: float | None = None
    g2_zero_gated_err: float | None = None
    g2_zero_raw: float | None = None
    g2_zero_raw_err: float | None = None
    lifetime_ns: float | None = None
    lifetime_err_ns: float | None = None
    lifetime_chi2_reduced: float | None = None
    lifetime_durbin_watson: float | None = None
    lifetime_dw_bound_5pct: float | None = None
    lifetime_dw_bound_1pct: float | None = None
    lifetime_all_ns: float | None = None
    on_fraction: float | None = None
    on_fraction_err: float | None = None
    n_levels: int | None = None
    intermediate_fraction: float | None = None
    fano_factor: float | None = None
    intensity_excess_var: float | None = None
    intensity_excess_var_err: float | None = None
    bimodality_coefficient: float | None = None
    alpha_on: float | None = None
    alpha_off: float | None = None
    switching_rate_hz: float | None = None
    # the full results, for figures
    pulse_delay_s: dict[int, float] = field(default_factory=dict)
    trace: Trace | None = None
    decay: Decay | None = None
    decay_fitted: np.ndarray | None = None       # detectors summed after alignment, one period
    decay_fitted_edges_s: np.ndarray | None = None
    decay_period_s: float | None = None         # period the fits model (the data's range if
    #                                             the header's period contradicts the delays)
    decay_bright: np.ndarray | None = None       # bright-state decay on the same bins (fitted)
    # per intensity state of the level grouping (0 = dimmest): decay on the same bins, and its
    # fit where the state has enough photons (None otherwise) when asked
    # (AnalysisSettings.state_fits); for figures, not for the table
    state_decays: dict[int, np.ndarray] = field(default_factory=dict)
    state_lifetimes: dict[int, LifetimeResult | None] = field(default_factory=dict)
    # per single resolved level, when asked (AnalysisSettings.max_level_fits): for figures
    level_decays: LevelDecays | None = None
    correlation: Correlation | None = None
    correlation_gated: Correlation | None = None
    g2: G2Result | None = None
    g2_gated: G2Result | None = None
    g2_cw: CWG2 | None = None          # continuous excitation: normalised g2(τ)
    g2_analysis: G2Analysis | None = None  # period, zero-delay peak and how they were found
    blinking: BlinkingResult | None = None
    lifetime_bright: LifetimeResult | None = None
    lifetime_all: LifetimeResult | None = None
    flid: Any = None
    notes: list[str] = field(default_factory=list)

    @property
    def values(self) -> dict[str, Any]:
        """The scalar results, keyed by attribute name, in the schema's order."""
        return {f.key: getattr(self, f.key) for f in PHOTON_FIELDS}

    def summary(self) -> dict[str, Any]:
        """The scalar results as JSON types (NaN -> None), keyed by attribute name."""
        return to_json_types(self.values)

    def scalars_only(self) -> PhotonAnalysis:
        """A copy with the scalar results and the notes only, the full results for figures
        left out: all that tables, reports and the classifier read, a few kB where the whole
        is up to a MB (spad.app.calibrate keeps thousands of particles so)."""
        return PhotonAnalysis(**self.values, notes=list(self.notes))

    def features(self) -> dict[str, float | None]:
        """The photon features the classifier uses, with their standard errors, and what it
        reads them with: whether g2's background was measured (its systematic error), and the
        detected rate and the span analysed (how likely the analysis was to resolve the
        particle's switching, :meth:`spad.analysis.classify.FeatureModel.like_steady`)."""
        s = self.summary()
        names = [*PHOTON_FEATURES, *(FEATURE_ERRORS[k] for k in PHOTON_FEATURES),
                 "g2_correction", "count_rate_cps", "duration_s"]
        return {k: s.get(BY_NAME[k].key) for k in names}

    def to_dict(self) -> dict[str, Any]:
        """Everything as nested JSON types (arrays as lists)."""
        d = self.summary()
        d["pulse_delay_s"] = {str(k): v for k, v in self.pulse_delay_s.items()}
        for name in ("decay_fitted", "decay_fitted_edges_s", "decay_bright"):
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
