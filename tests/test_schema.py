"""One result schema: every list of result fields is derived from analysis.schema."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from spad.analysis import classify, schema
from spad.analysis.particle import ParticleResult
from spad.analysis.photon_analysis import PhotonAnalysis

from spad.app import report

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_field_table_is_the_generated_one() -> None:
    text = README.read_text()
    begin, end = "<!-- fields:begin -->\n", "<!-- fields:end -->"
    assert begin in text and end in text
    table = text[text.index(begin) + len(begin):text.index(end)]
    assert table.strip() == schema.markdown_table().strip(), \
        "README's field table is stale: paste `python -m spad.analysis.schema` between the markers"


def test_names_are_unique_and_units_in_names() -> None:
    names = [f.name for f in schema.FIELDS]
    assert len(names) == len(set(names))
    for f in schema.FIELDS:
        for unit, suffix in (("s", "_s"), ("ns", "_ns"), ("eV", "_ev"), ("meV", "_mev"),
                             ("nm", "_nm"), ("counts/s", "_cps")):
            if f.unit == unit:
                assert f.name.removesuffix("_err").endswith(suffix), f.name


def test_record_csv_and_features_follow_the_schema() -> None:
    result = ParticleResult("x.h5", PhotonAnalysis())
    rec = result.record()
    assert list(rec) == [f.name for f in schema.record_fields()] + ["classification", "notes"]
    assert report.CSV_FIELDS == schema.csv_columns()
    verdict = {"label", "probability", "p_dimer", "model", "reason"}
    assert set(schema.csv_columns()) - verdict <= set(rec)
    assert classify.PHOTON_FEATURES == tuple(f.name for f in schema.FIELDS
                                             if f.feature == "photons")
    features = classify.PHOTON_FEATURES + classify.SPECTRUM_FEATURES
    # every feature comes with its standard error (the classifier weighs it by that)
    assert set(schema.FEATURE_ERRORS) == set(features)
    assert set(result.features()) == set(features) | set(schema.FEATURE_ERRORS.values()) | {
        "g2_correction", "count_rate_cps", "duration_s"}


def test_photon_analysis_holds_exactly_the_declared_scalars() -> None:
    out = PhotonAnalysis()
    keys = [f.key for f in schema.PHOTON_FIELDS]
    assert list(out.summary()) == keys
    # typed attributes, first in the class, the schema's fields in its order
    declared = [f.name for f in dataclasses.fields(PhotonAnalysis)]
    assert declared[:len(keys)] == keys
    assert not set(declared[len(keys):]) & set(schema.BY_NAME)
    out.g2_zero = 0.1
    assert out.summary()["g2_zero"] == 0.1 and out.values["g2_zero"] == 0.1
    with pytest.raises(AttributeError):
        _ = out.not_a_declared_field


def test_every_classifier_feature_has_a_short_label() -> None:
    """The GUI's evidence bars name each feature by its label (a missing one showed no name)."""
    from spad.analysis.schema import BY_NAME, PHOTON_FEATURES, SPECTRUM_FEATURES

    for name in PHOTON_FEATURES + SPECTRUM_FEATURES:
        assert 0 < len(BY_NAME[name].label) <= 14, name
