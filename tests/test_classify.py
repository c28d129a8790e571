"""The logistic monomer/dimer classifier: fitting, evidence, missing features, persistence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from spad.analysis.classify import (
    PHOTON_FEATURES,
    SPECTRUM_FEATURES,
    Classifier,
    fit_logistic,
)


def _population(n: int, seed: int) -> tuple[list[dict[str, float]], list[bool]]:
    """Synthetic feature rows: dimers have higher g2, shorter lifetimes, red shift."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for i in range(n):
        dim = bool(i % 2)
        rows.append({
            "g2_zero": rng.normal(0.55 if dim else 0.10, 0.06),
            "g2_zero_gated": rng.normal(0.30 if dim else 0.03, 0.05),
            "lifetime_ns": rng.lognormal(math.log(14 if dim else 25), 0.15),
            "on_fraction": rng.uniform(0.4, 0.7) if dim else rng.uniform(0.7, 0.95),
            "n_levels": float(rng.integers(4, 9) if dim else rng.integers(2, 6)),
            "intermediate_fraction": rng.uniform(0.5, 0.9),
            "fano_factor": rng.lognormal(3.0, 0.3),
            "intensity_excess_var": rng.lognormal(-1.0 if dim else -2.0, 0.5),
            "shift_mev": rng.normal(28 if dim else 0, 25),
            "fwhm_mev": rng.normal(90 if dim else 70, 5),
        })
        labels.append(dim)
    return rows, labels


@pytest.fixture(scope="module")
def clf() -> Classifier:
    rows, y = _population(200, 1)
    return Classifier(fit_logistic(rows, y, PHOTON_FEATURES + SPECTRUM_FEATURES),
                      fit_logistic(rows, y, PHOTON_FEATURES))


def test_held_out_accuracy_on_separable_population(clf: Classifier) -> None:
    rows, y = _population(200, 2)
    labels = [clf.classify(r).label for r in rows]
    acc = np.mean([lab == ("dimer" if d else "monomer") for lab, d in zip(labels, y,
                                                                           strict=True)])
    assert acc > 0.95


def test_evidence_adds_up_to_the_probability(clf: Classifier) -> None:
    rows, _ = _population(4, 3)
    c = clf.classify(rows[1])
    z = clf.with_spectrum.bias + sum(c.evidence.values())
    assert c.p_dimer == pytest.approx(1 / (1 + math.exp(-z)))
    assert c.model == "spectrum+photons"
    # high g2 is evidence for a dimer
    assert c.evidence["g2_zero"] > 0


def test_photons_alone_use_the_photon_model(clf: Classifier) -> None:
    rows, _ = _population(2, 4)
    r = dict(rows[0])
    r["shift_mev"] = None
    r["fwhm_mev"] = float("nan")
    c = clf.classify(r)
    assert c.model == "photons"
    assert set(c.evidence) == set(PHOTON_FEATURES)


def test_missing_photon_features_give_uncertain(clf: Classifier) -> None:
    c = clf.classify({"g2_zero": 0.1})
    assert c.label == "uncertain"
    assert "lifetime_ns" in c.reason and c.probability is None


def test_ambiguous_particle_is_uncertain(clf: Classifier) -> None:
    rows, _ = _population(2, 5)
    a, b = rows
    mid = {k: (a[k] + b[k]) / 2 for k in a}
    strict = Classifier(clf.with_spectrum, clf.photons_only, uncertain_below=0.999999)
    assert strict.classify(mid).label == "uncertain"


def test_far_outside_the_calibration_gives_no_verdict(clf: Classifier) -> None:
    rows, _ = _population(2, 7)
    r = dict(rows[1])
    assert clf.classify(r).label == "dimer"
    r["lifetime_ns"] = 900.0  # a micro-second "lifetime": not a QD the model has seen
    c = clf.classify(r)
    assert c.label == "uncertain"
    assert "outside the calibrated range: lifetime_ns" in c.reason
    assert c.probability is None and c.p_dimer is None


def test_save_and_load_round_trip(clf: Classifier, tmp_path) -> None:
    p = tmp_path / "c.json"
    clf.save(p)
    back = Classifier.load(p)
    rows, _ = _population(6, 6)
    for r in rows:
        assert back.classify(r).p_dimer == pytest.approx(clf.classify(r).p_dimer, rel=1e-12)


def test_missing_gated_g2_falls_back_to_the_ungated_model() -> None:
    rows, y = _population(200, 3)
    ungated = [f for f in PHOTON_FEATURES if f != "g2_zero_gated"]
    c3 = Classifier(fit_logistic(rows, y, PHOTON_FEATURES + SPECTRUM_FEATURES),
                    fit_logistic(rows, y, PHOTON_FEATURES),
                    ungated=fit_logistic(rows, y, ungated))
    r = dict(rows[1])
    r["g2_zero_gated"] = None
    c = c3.classify(r)
    assert c.model == "photons without gate" and c.label == "dimer"
    assert set(c.evidence) == set(ungated)
