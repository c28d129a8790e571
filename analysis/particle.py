"""Per-particle analysis: photons, spectrum, features, verdict; and the session around it.

:func:`analyze_particle` is what ``spad analyze``, ``spad batch``, the desktop app and the live
acquisition run on each particle;
:func:`classify_session` then sets the peak shift of every particle against the session's
monomers and classifies them all. Nothing here draws: figures take a :class:`ParticleResult`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spad.analysis.classify import Classification, Classifier, load_classifier
from spad.analysis.detector_choice import detectors_for_file
from spad.analysis.photon_analysis import (
    AnalysisSettings,
    PhotonAccumulators,
    PhotonAnalysis,
    analyze_photons,
)
from spad.analysis.schema import (
    BY_NAME,
    CLASSIFICATION_FIELDS,
    FEATURE_ERRORS,
    SPECTRUM_FEATURES,
    Field,
    record_fields,
)
from spad.analysis.session import MIN_REFERENCE, Sample, SessionModel, session_model
from spad.analysis.spectra import SpectrumResult, analyze_spectrum

import spad
from spad.formats.repair import open_repaired
from spad.formats.spectra import open_spectrum

MIN_REFERENCE_MONOMERS = MIN_REFERENCE
"""Fewest particles with a spectrum needed to set a session's reference peak energy."""


@dataclass
class ParticleResult:
    """Everything known about one particle."""

    file: str
    photons: PhotonAnalysis
    spectrum: SpectrumResult | None = None
    spectrum_file: str | None = None
    shift_mev: float | None = None
    shift_err_mev: float | None = None
    reference_ev: float | None = None
    classification: Classification | None = None
    notes: list[str] = field(default_factory=list)
    session: SessionModel | None = None

    @property
    def fwhm_err_mev(self) -> float | None:
        """Standard error of the line width (meV), from the spectrum fit."""
        return None if self.spectrum is None else self.spectrum.errors.get("fwhm_mev")

    def features(self) -> dict[str, float | None]:
        """Classifier features and their standard errors (photon features, and spectral ones
        when there is a spectrum)."""
        f = self.photons.features()
        for name in SPECTRUM_FEATURES:
            f[name] = self._value(BY_NAME[name])
            f[FEATURE_ERRORS[name]] = self._value(BY_NAME[FEATURE_ERRORS[name]])
        return f

    def _value(self, f: Field) -> Any:
        """The value of one schema field for this particle (``None`` where not measured)."""
        if f.source == "file":
            return self.file
        if f.source == "photons":
            return self.photons.summary()[f.key]
        if f.source == "spectrum":
            if self.spectrum is None:
                return None
            v = getattr(self.spectrum, f.key)
        elif f.source == "classification":
            v = None if self.classification is None else getattr(self.classification, f.key)
        else:
            v = getattr(self, f.key)
        return None if isinstance(v, float) and not math.isfinite(v) else v

    def record(self) -> dict[str, Any]:
        """The one-line JSON record of ``spad analyze --json``: the record fields of
        :mod:`spad.analysis.schema` in order, then ``classification`` and ``notes``."""
        rec = {f.name: self._value(f) for f in record_fields()}
        c = self.classification
        rec["classification"] = None if c is None else {
            **{name: self._value(BY_NAME[name]) for name in CLASSIFICATION_FIELDS},
            "evidence": c.evidence, "inputs": c.inputs, "no_information": c.no_information}
        rec["notes"] = self.photons.notes + self.notes
        return rec


def _has_spectrum_group(path: Path) -> bool:
    try:
        with open_repaired(path) as f:
            return "user/spectrum" in f
    except OSError:
        return False


@dataclass
class Recorded:
    """A particle recorded live: its file, and the accumulators that were fed its photons as
    they arrived (:class:`spad.analysis.photon_analysis.PhotonAccumulators`, with the settings
    they were made with), so that the file is not read again for them (only beyond
    :data:`spad.analysis.photon_analysis.PHOTON_BUDGET` photons, in windows)."""

    path: str | Path
    accumulators: PhotonAccumulators


def analyze_particle(source: str | Path | Recorded, settings: AnalysisSettings | None = None,
                     *, spectrum: str | Path | None = None,
                     spectrum_model: str = "gaussian") -> ParticleResult:
    """Analyse one particle's photons and spectrum (not yet classified: see
    :func:`classify_session`). The one entry point of ``spad analyze``, ``spad batch``, the
    desktop app and the live acquisition (``spad acquire``, ``spad replay``).

    Parameters
    ----------
    source
        Time-tag file (PTU, PT3, HT3, Photon-HDF5 / particle file), or a :class:`Recorded`
        particle (the live acquisition's file and accumulators).
    settings
        Photon analysis settings (:meth:`AnalysisSettings.from_user`); the region of interest
        is one of them. Unless the detectors were chosen, a file gets its own pair where the
        configured one recorded nothing
        (:func:`spad.analysis.detector_choice.detectors_for_file`, said in the notes). A
        :class:`Recorded` particle keeps the settings of its accumulators.
    spectrum
        Spectrum file (.sif, .spe, .csv, particle file). Default: the particle file's own
        ``/user/spectrum`` group if it has one.
    spectrum_model
        Line shape fitted to the spectrum (``gaussian``, ``lorentzian``, ``voigt``).
    """
    if isinstance(source, Recorded):
        path = Path(source.path)
        acc = source.accumulators
        if acc.collector.overflowed:
            with spad.open(path) as reader:
                photons = acc.result(reread=reader.chunks)
        else:
            photons = acc.result()
    else:
        path = Path(source)
        with spad.open(path) as reader:
            settings, notes = detectors_for_file(path, settings, reader)
            photons = analyze_photons(reader, settings)
        photons.notes[:0] = notes   # first: the other notes speak of these detectors
    result = ParticleResult(str(path), photons)
    _particle_spectrum(result, path, spectrum, spectrum_model)
    return result


def _particle_spectrum(result: ParticleResult, path: str | Path,
                       spectrum_path: str | Path | None = None,
                       spectrum_model: str = "gaussian") -> None:
    """Add the spectrum analysis to ``result`` (of the particle file ``path``): from
    ``spectrum_path``, or the file's own ``/user/spectrum`` if it has one."""
    path = Path(path)
    if spectrum_path is None and _has_spectrum_group(path):
        spectrum_path = path
    if spectrum_path is not None:
        data = open_spectrum(spectrum_path)
        result.spectrum_file = str(spectrum_path)
        if data.wavelength_m is None:
            result.notes.append(f"{spectrum_path}: spectrum has no wavelength calibration")
        else:
            try:
                result.spectrum = analyze_spectrum(data, model=spectrum_model)
                if result.spectrum.info.get("note"):
                    result.notes.append(f"spectrum: {result.spectrum.info['note']}")
            except (ValueError, RuntimeError) as exc:
                result.notes.append(f"no spectrum: {exc}" if data.n_frames == 0
                                    else f"spectrum fit failed: {exc}")


def _samples(results: Iterable[ParticleResult], classifier: Classifier) -> list[Sample]:
    """The mixture's inputs: each particle's peak energy and its photons' P(dimer)."""
    out = []
    for r in results:
        sp = r.spectrum
        ok = sp is not None and math.isfinite(sp.peak_ev)
        out.append(Sample(sp.peak_ev if ok else None, sp.peak_ev_err if ok else None,
                          classifier.classify(r.photons.features()).p_dimer or 0.5,
                          r.photons.lifetime_ns))
    return out


def session_for(results: Iterable[ParticleResult], classifier: Classifier | None = None,
                reference_ev: float | None = None) -> SessionModel:
    """The session's two-class mixture (:func:`spad.analysis.session.session_model`) over
    ``results`` (an iterable: a batch streams its results through once)."""
    clf = classifier or load_classifier()
    return session_model(_samples(results, clf), clf, reference_ev)


def session_reference_ev(results: Iterable[ParticleResult],
                         classifier: Classifier) -> float | None:
    """The monomer peak energy of the session's mixture (``None`` with fewer than
    :data:`MIN_REFERENCE_MONOMERS` spectra).

    The red shift of a dimer is measured against the monomers of the same batch and session,
    not against a fixed number: the ensemble peak moves with synthesis and temperature.
    """
    return session_for(results, classifier).reference_ev


def classify_session(results: Sequence[ParticleResult], reference_ev: float | None = None,
                     classifier: Classifier | None = None,
                     session: SessionModel | None = None) -> float | None:
    """Set the peak shift of each particle and classify every particle in place.

    Parameters
    ----------
    results
        The session's particles.
    reference_ev
        Monomer reference peak energy; default the session's own
        (:func:`spad.analysis.session.session_model`). Without one, particles are classified
        from their photons alone.
    classifier
        Default: the classifier shipped with spad.
    session
        The session model, when estimated over more particles than ``results`` (a batch
        classifies in chunks); default estimated from ``results``.

    Returns
    -------
    The reference energy used (eV), or ``None``.
    """
    clf = classifier or load_classifier()
    model = session if session is not None else session_for(results, clf, reference_ev)
    ref = model.reference_ev
    classes = model.classes()
    for r in results:
        r.reference_ev = ref
        r.session = model
        sp = r.spectrum
        if ref is not None and sp is not None and math.isfinite(sp.peak_ev):
            # positive = red shift (lower energy than the monomers)
            r.shift_mev = (ref - sp.peak_ev) * 1e3
            e = sp.peak_ev_err
            r.shift_err_mev = (math.hypot(e, model.reference_err_ev or 0.0) * 1e3
                               if e is not None and math.isfinite(e) else None)
        elif ref is None and sp is not None:
            r.notes.append("no red shift: no monomer reference (give --reference-ev, or analyse "
                           f"at least {MIN_REFERENCE_MONOMERS} particles of the session "
                           "together so that they set it); the red shift carries no evidence")
        r.classification = clf.classify(r.features(), classes)
    return ref


def save_result(result: ParticleResult) -> Path:
    """Store the results of one particle under ``/user/analysis`` of its particle file (or
    sidecar), replacing earlier ones; the layout is :func:`spad.particle.write_analysis_group`'s.

    Returns the file written.
    """
    import json

    from spad.particle import write_analysis_group

    rec = result.record()
    data: dict[str, Any] = {
        "summary": {k: v for k, v in rec.items()
                    if isinstance(v, int | float | str) and not isinstance(v, bool)},
        "result_json": json.dumps({"record": rec, "photons": result.photons.to_dict(),
                                   "spectrum": None if result.spectrum is None
                                   else result.spectrum.to_dict()}),
    }
    c = rec["classification"]
    if c is not None:
        data["classification"] = {"label": c["label"], "probability": c["probability"],
                                  "p_dimer": c["p_dimer"], "model": c["model"],
                                  "reason": c.get("reason", ""),
                                  "evidence": dict(c["evidence"])}
    p = result.photons
    if p.trace is not None:
        data["trace"] = {"bin_edges_s": p.trace.bin_edges_s, "counts": p.trace.counts}
    if p.decay is not None:
        data["decay"] = {"bin_edges_s": p.decay.bin_edges_s, "counts": p.decay.counts}
    if p.correlation is not None:
        data["correlation"] = {"lags_s": p.correlation.lags_s, "counts": p.correlation.counts}
    return write_analysis_group(result.file, data)
