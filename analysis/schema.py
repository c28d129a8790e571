"""The per-particle result fields, each declared once.

Every quantity spad reports for a particle is one :class:`Field` of :data:`FIELDS`: its name,
unit, description, where it comes from and whether the classifier uses it. Everything else is
derived from this table:

- the photon analysis' scalar results (:class:`spad.analysis.photon_result.PhotonAnalysis` holds a
  value for every ``photons`` field, and refuses any other name);
- the JSON record of ``spad analyze --json`` (:func:`record_fields`, in table order);
- the CSV columns of the report and of ``spad batch`` (:func:`csv_columns`);
- the datasets under ``/user/analysis/summary`` of a particle file (the record's scalars);
- the classifier's feature vectors (:data:`PHOTON_FEATURES`, :data:`SPECTRUM_FEATURES`);
- the field table in README.md (:func:`markdown_table`; a test checks the README holds it).

To add a quantity: add its row here, compute it in one named step of
:func:`spad.analysis.photon_analysis.analyze_photons` (or in :mod:`spad.analysis.particle`), and run
``python -m spad.analysis.schema`` to print the README table.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Literal

import numpy as np

Source = Literal["file", "photons", "spectrum", "particle", "classification"]


@dataclass(frozen=True)
class Field:
    """One per-particle result.

    Attributes
    ----------
    name
        Key in the JSON record, CSV column and HDF5 dataset name (units in the name).
    unit
        Unit of the value ("" for a number without unit, "text" for strings).
    description
        What it means, for the README's table.
    source
        Who computes it: ``photons`` (:class:`~spad.analysis.photon_result.PhotonAnalysis`),
        ``spectrum`` (:class:`~spad.analysis.spectra.SpectrumResult`), ``particle``
        (:class:`~spad.analysis.particle.ParticleResult`), ``classification``, or ``file``.
    attr
        Attribute name on the source object, when it differs from ``name``.
    feature
        The classifier feature set that uses it (``photons`` or ``spectrum``), if any.
    record
        Whether it is in the JSON record (``False``: only in the full result, ``result_json``).
    label
        A short name for figures (the GUI's evidence bars); every classifier feature has one.
    error
        The field holding this one's standard error (every classifier feature has one: the
        classifier weighs each feature's evidence by it).
    """

    name: str
    unit: str
    description: str
    source: Source
    attr: str | None = None
    feature: Literal["photons", "spectrum"] | None = None
    record: bool = True
    label: str = ""
    error: str | None = None

    @property
    def key(self) -> str:
        """The attribute name on the source object."""
        return self.attr or self.name


_P, _S = "photons", "spectrum"

FIELDS: tuple[Field, ...] = (
    Field("file", "text", "the particle file", "file"),
    Field("duration_s", "s", "span of the photon record analysed (the region of interest)", _P),
    Field("photons", "", "photons on the two HBT detectors in the region of interest, photon "
          "bursts removed", _P, attr="n_photons"),
    Field("count_rate_cps", "counts/s", "mean detected rate", _P),
    Field("roi_start_s", "s", "start of the region of interest, on the recording's clock", _P),
    Field("roi_end_s", "s", "end of the region of interest", _P),
    Field("roi_source", "text", "`set` (`--roi`), `auto` (a bleached or dead tail was cut: a "
          "trailing dark run of at least 1 s and twice the longest earlier OFF dwell) or "
          "`whole`", _P),
    Field("n_bursts", "", "photon bursts removed (levels above the dwell-weighted mean + 3 SD "
          "intensity, shorter than 0.1 s (Full SMS), and significant as a scan statistic over "
          "the whole trace at a tenth of one minus the confidence)", _P),
    Field("burst_photons", "", "photons removed with the bursts", _P),
    Field("mode", "text", "T2 or T3", _P, record=False),
    Field("sync_period_s", "s", "laser period, if the recording has one", _P, record=False),
    Field("g2_excitation", "text", "`pulsed` (coincidence peaks: the file's laser period, or "
          "a period found from the peaks when the file has no sync or a divided one) or `cw` "
          "(no periodic structure: g2(τ))", _P),
    Field("g2_period_s", "s", "laser period used for g2 (the file's sync period, or the "
          "coincidence peaks' spacing)", _P),
    Field("g2_zero_delay_s", "s", "lag of the zero-delay peak (the detectors' cable-delay "
          "difference): the peak that stands out from its neighbours within ±4 periods, the "
          "one given with `--delay-ns`, or else the one nearest lag 0", _P),
    Field("g2_zero", "", "pulsed g2(0): zero-delay peak area / mean side-peak area over ±T/2 "
          "windows, corrected for the decay tails that cross the windows where they do (peak "
          "shape from both detectors' decays) and for the uncorrelated background measured in "
          "the recording (see `g2_correction`); null where it cannot be trusted (see `notes`: "
          "a background too large to correct for, a standard error above 1, a header period "
          "the delays contradict). "
          "Without periodic peaks, the normalised g2(τ) at τ = 0", _P, feature=_P,
          label="g2(0)", error="g2_zero_err"),
    Field("g2_zero_err", "", "standard error of `g2_zero` (Poisson counts and the background "
          "estimate)", _P),
    Field("g2_correction", "text", "how `g2_zero` was obtained and what it is corrected for: "
          "`none`, `leakage` (decay tails), `sync pairs` (T3 pairs counted by sync label), "
          "`correlogram fit` (the whole correlogram fitted where the peaks overlap), `fitted "
          "floor` (the fit measured the uncorrelated floor: T2 without sync), `decay floor` "
          "(background from the decay fit's flat floor), `off level` (from the dark OFF "
          "intensity level when there is no decay: an upper bound), `dark counts` (given), "
          "joined by `+`", _P),
    Field("g2_background_cps", "counts/s", "uncorrelated background of both detectors "
          "subtracted from g2", _P),
    Field("g2_zero_gated", "", "the same for photons arriving more than the gate after their "
          "detector's excitation pulse (biexciton photons removed; `--gate-ns`); null when the "
          "gate keeps under 5 % of the photons or under 20 pairs per side peak", _P,
          feature=_P, label="g2(0) gated", error="g2_zero_gated_err"),
    Field("g2_zero_gated_err", "", "standard error of `g2_zero_gated`", _P),
    Field("g2_zero_raw", "", "the plain window ratio without any correction (what most "
          "papers quote; for a single-exponential decay of lifetime τ at period T it is biased "
          "upwards by about exp(-T/2τ), and background pulls it towards 1)", _P),
    Field("g2_zero_raw_err", "", "standard error of `g2_zero_raw`", _P),
    Field("lifetime_ns", "ns", "intensity-weighted lifetime of the bright (ON) state: Poisson "
          "maximum-likelihood fit with the IRF, one or two exponentials chosen by AIC, both "
          "detectors' decays aligned for their cable delays; null (with a note) when longer "
          "than the laser period or with a standard error larger than itself", _P, feature=_P,
          label="lifetime", error="lifetime_err_ns"),
    Field("lifetime_err_ns", "ns", "standard error of `lifetime_ns`", _P),
    Field("lifetime_chi2_reduced", "", "Pearson chi-square per degree of freedom of that fit",
          _P),
    Field("lifetime_durbin_watson", "", "Durbin-Watson statistic of that fit's weighted "
          "residuals (2: uncorrelated; below the bounds: the model misses structure)", _P),
    Field("lifetime_dw_bound_5pct", "", "its 5 % lower critical bound (Turner 2020 response "
          "surface, as in Full SMS)", _P),
    Field("lifetime_dw_bound_1pct", "", "its 1 % lower critical bound", _P),
    Field("lifetime_all_ns", "ns", "intensity-weighted lifetime of the whole decay "
          "(bi-exponential)", _P, record=False),
    Field("on_fraction", "", "fraction of trace bins above the ON/OFF threshold of the "
          "two-state mixture; 1 for an emitter without an OFF state (one intensity state, or "
          "a dimmest state at least half as bright as the brightest: a threshold would only "
          "split its shot noise)", _P, feature=_P, label="ON fraction", error="on_fraction_err"),
    Field("on_fraction_err", "", "standard error of `on_fraction` (jackknife over 20 blocks "
          "of the trace, at least 0.05: one block's worth, the resolution of 20 blocks; 0.05 "
          "for a steady emitter)", _P),
    Field("n_levels", "", "number of intensity states after change-point detection: the "
          "fewest whose BIC is within 10 of the maximum, of up to 10 tried (10: a lower bound, "
          "with a note; grows with the count rate and duration: reported, not a classifier "
          "feature)", _P),
    Field("intermediate_fraction", "", "fraction of time in states between the dimmest and "
          "the brightest (depends on how many levels the count rate resolves: not a classifier "
          "feature)", _P),
    Field("fano_factor", "", "variance / mean of the binned counts (grows with the count "
          "rate: not a classifier feature)", _P),
    Field("intensity_excess_var", "", "(variance - mean) / mean² of the binned counts: the "
          "squared relative intensity fluctuation with the Poisson noise removed, the same at "
          "any count rate for a given blinking pattern (0 for a steady emitter)", _P,
          feature=_P, label="intensity var.", error="intensity_excess_var_err"),
    Field("intensity_excess_var_err", "", "standard error of `intensity_excess_var` "
          "(jackknife over 20 blocks of the trace)", _P),
    Field("bimodality_coefficient", "", "Sarle's bimodality coefficient of the binned counts",
          _P, record=False),
    Field("alpha_on", "", "exponent of the ON dwell-time distribution by maximum likelihood "
          "(Clauset et al.; t_min by minimum KS distance; censored first and last dwells "
          "dropped): of the power law with exponential cutoff when a likelihood-ratio test "
          "prefers it (p < 0.05), else of the pure power law; null when that exponent is <= 1 (no "
          "power law can have it: the dwells follow the cutoff; a note says so)", _P),
    Field("alpha_off", "", "the same for the OFF dwells", _P),
    Field("switching_rate_hz", "1/s", "jumps between the grouped intensity states per second "
          "(per pair of states: `blinking.switching` in the full result)", _P),
    Field("peak_ev", "eV", "emission peak (fit in energy); null when no band stands out of "
          "the noise (a note says why)", _S),
    Field("peak_nm", "nm", "emission peak wavelength", _S),
    Field("fwhm_mev", "meV", "line width (FWHM)", _S, feature=_S, label="FWHM",
          error="fwhm_err_mev"),
    Field("fwhm_err_mev", "meV", "standard error of `fwhm_mev`", "particle"),
    Field("peak_ev_err", "eV", "standard error of `peak_ev`", _S),
    Field("n_peaks", "", "2 when two lines beat one symmetric and one asymmetric line, are "
          "further apart than their mean FWHM and each is significant; 0 when no band stands "
          "out of the noise", _S),
    Field("shift_mev", "meV", "red shift against the monomer reference (positive = to the "
          "red)", "particle", feature=_S, label="red shift", error="shift_err_mev"),
    Field("shift_err_mev", "meV", "standard error of `shift_mev` (the peak fit's and the "
          "reference's; the particle-to-particle spread is in the classifier's class "
          "distributions, not here)", "particle"),
    Field("reference_ev", "eV", "the monomer reference used (the monomer peak energy of the "
          "session's two-class mixture, see the report's session section; or `--reference-ev`)",
          "particle"),
    Field("spectrum_file", "text", "where the spectrum came from", "particle"),
    Field("label", "text", "`monomer`, `dimer` or `uncertain`", "classification"),
    Field("probability", "", "probability of the label (for `uncertain`: of the likelier "
          "class)", "classification"),
    Field("p_dimer", "", "probability that the particle is a coupled dimer", "classification"),
    Field("model", "text", "`spectrum+photons` when the spectrum contributed evidence, else "
          "`photons`", "classification"),
    Field("reason", "text", "the evidence that decided (value ± error and its log-odds), the "
          "evidence against, the features that carried no information and why; for "
          "`uncertain`, that the probability is below the threshold, that it reaches it only "
          "with the blinking statistics above their fitted weight, or that g2(0) is above 1",
          "classification"),
)
"""Every per-particle result field, in the order of the JSON record."""

BY_NAME = {f.name: f for f in FIELDS}

PHOTON_FIELDS: tuple[Field, ...] = tuple(f for f in FIELDS if f.source == _P)
"""The scalar results of the photon analysis."""

PHOTON_FEATURES: tuple[str, ...] = tuple(f.name for f in FIELDS if f.feature == _P)
"""Classifier features read off the photons."""

SPECTRUM_FEATURES: tuple[str, ...] = tuple(f.name for f in FIELDS if f.feature == _S)
"""Classifier features that need a spectrum (and the session's monomer reference)."""

FEATURE_ERRORS: dict[str, str] = {f.name: f.error for f in FIELDS if f.feature and f.error}
"""The field holding each classifier feature's standard error."""

CLASSIFICATION_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS
                                               if f.source == "classification")
"""Scalar fields of the verdict (the JSON record nests them, with ``evidence``, under
``classification``)."""


def record_fields() -> tuple[Field, ...]:
    """The scalar fields of the JSON record, in order (``classification`` and ``notes``
    follow them)."""
    return tuple(f for f in FIELDS if f.record and f.source != "classification")


def csv_columns() -> tuple[str, ...]:
    """Columns of a population table: the file, the verdict, then every scalar of the record."""
    rest = tuple(f.name for f in record_fields() if f.name != "file")
    return ("file", *CLASSIFICATION_FIELDS, *rest)


def markdown_table() -> str:
    """The README's table of JSON fields."""
    lines = ["| field | unit | meaning |", "|---|---|---|"]
    for f in FIELDS:
        if not f.record:
            continue
        name = f"`classification.{f.name}`" if f.source == "classification" else f"`{f.name}`"
        unit = "" if f.unit in ("", "text") else f.unit
        extra = " (classifier feature)" if f.feature else ""
        lines.append(f"| {name} | {unit} | {f.description}{extra} |")
    lines.append("| `classification.evidence` | | each feature's contribution to the log-odds of "
                 "*dimer* (0: no information) |")
    lines.append("| `classification.inputs` | | each feature's value and standard error as the "
                 "classifier weighed them |")
    lines.append("| `classification.no_information` | | the features that carried no evidence "
                 "|")
    lines.append("| `notes` | | anything the analysis had to say about this particle |")
    return "\n".join(lines)


def to_json_types(obj: Any) -> Any:
    """Convert dataclasses, numpy arrays and scalars to JSON types (non-finite floats -> None)."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json_types(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_json_types(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json_types(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_json_types(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
