"""The monomer/dimer verdict: per-feature likelihood ratios weighed by each value's own error,
empty evidence, the fitted class distributions and weights, persistence, the session mixture."""

from __future__ import annotations

import math

import numpy as np
import pytest
from spad.analysis.classify import (
    Classifier,
    FeatureModel,
    fit_class,
    fit_weights,
    load_classifier,
)
from spad.analysis.session import Sample, session_model


def _clf(**kw: float) -> Classifier:
    """g2(0): monomers 0.10 ± 0.05, dimers 0.55 ± 0.08; ON fraction 0.85 ± 0.08 vs 0.6 ± 0.1;
    red shift 0 ± 25 meV vs 28 ± 27 meV."""
    return Classifier([
        FeatureModel("g2_zero", "g2_zero_err", (0.10, 0.05), (0.55, 0.08), 3.0, group="g2"),
        FeatureModel("g2_zero_gated", "g2_zero_gated_err", (0.02, 0.03), (0.35, 0.08), 3.0,
                     group="g2"),
        FeatureModel("on_fraction", "on_fraction_err", (0.85, 0.08), (0.6, 0.1), 2.0),
        FeatureModel("shift_mev", "shift_err_mev", (0.0, 25.0), (28.0, 27.0), 300.0),
    ], **kw)


def test_precise_g2_decides() -> None:
    c = _clf().classify({"g2_zero": 0.50, "g2_zero_err": 0.018})
    assert c.label == "dimer" and c.p_dimer > 0.99
    assert "decided by g2(0)" in c.reason
    c = _clf().classify({"g2_zero": 0.08, "g2_zero_err": 0.02})
    assert c.label == "monomer" and c.p_dimer < 0.01


def test_a_g2_clearly_above_one_gets_no_verdict() -> None:
    """Bunched light fits neither class, however strongly the likelihoods lean."""
    evidence = {"g2_zero": 1.24, "g2_zero_err": 0.07, "on_fraction": 0.4,
                "on_fraction_err": 0.02, "shift_mev": 30.0, "shift_err_mev": 3.0}
    c = _clf().classify(evidence)
    assert c.label == "uncertain" and c.p_dimer > 0.95
    assert c.reason.startswith("g2(0) 1.24 ± 0.07 is above 1")
    # within three standard errors of 1 the same evidence gives its verdict
    assert _clf().classify({**evidence, "g2_zero": 1.1}).label == "dimer"


def test_empty_evidence_gives_none() -> None:
    """A g2(0) of -0.48 ± 33.6 (empty coincidence peaks) must not move the verdict."""
    clf = _clf()
    c = clf.classify({"g2_zero": -0.48, "g2_zero_err": 33.6})
    assert c.evidence["g2_zero"] == 0.0
    assert c.p_dimer == pytest.approx(0.5)
    assert c.label == "uncertain"
    assert "g2_zero" in c.no_information and "error above 0.5" in c.reason
    # error above 0.5: no evidence at all whatever the value (a dimer's -1.19 +/- 0.86 gave
    # -1.6 to the log-odds through the class normals' tails)
    for x in np.linspace(-3, 4, 29):
        c = clf.classify({"g2_zero": x, "g2_zero_err": 0.51})
        assert c.evidence["g2_zero"] == 0.0 and c.p_dimer == pytest.approx(0.5)


def test_a_value_without_an_error_carries_no_evidence() -> None:
    c = _clf().classify({"g2_zero": 0.5})
    assert c.evidence["g2_zero"] == 0.0 and c.p_dimer == pytest.approx(0.5)
    assert "no error given" in c.reason


def test_evidence_shrinks_with_the_error() -> None:
    clf = _clf()
    ev = [clf.classify({"g2_zero": 0.5, "g2_zero_err": e}).evidence["g2_zero"]
          for e in (0.02, 0.1, 0.3, 0.45, 1.0, 3.0)]
    assert all(a > b for a, b in zip(ev[:4], ev[1:4], strict=False))
    assert ev[3] > 0.0 and ev[4] == ev[5] == 0.0      # no evidence above an error of 0.5


def test_one_wild_value_cannot_decide_alone() -> None:
    """The outlier share caps a single feature's log-likelihood ratio."""
    clf = _clf()
    c = clf.classify({"on_fraction": -5.0, "on_fraction_err": 0.001})
    assert abs(c.evidence["on_fraction"]) < 6


def test_only_the_more_precise_g2_enters() -> None:
    c = _clf().classify({"g2_zero": 0.5, "g2_zero_err": 0.3, "g2_zero_gated": 0.33,
                         "g2_zero_gated_err": 0.02})
    assert c.evidence["g2_zero"] == 0.0 and c.evidence["g2_zero_gated"] > 0
    assert "g2_zero" in c.no_information


def test_probability_is_the_weighted_sum_of_the_evidence() -> None:
    clf = _clf()
    clf.features[2].weight = 0.5
    v = {"g2_zero": 0.3, "g2_zero_err": 0.05, "on_fraction": 0.7, "on_fraction_err": 0.05,
         "shift_mev": 20.0, "shift_err_mev": 2.0}
    llr, _ = clf.log_ratios(v)
    c = clf.classify(v)
    z = llr["g2_zero"] + 0.5 * llr["on_fraction"] + llr["shift_mev"]
    assert c.p_dimer == pytest.approx(1 / (1 + math.exp(-z)))
    assert c.model == "spectrum+photons"
    assert c.inputs["on_fraction"] == [0.7, 0.05]


def test_session_classes_replace_the_red_shift_distributions() -> None:
    clf = _clf()
    v = {"shift_mev": 25.0, "shift_err_mev": 1.0}
    broad = clf.classify(v).evidence["shift_mev"]
    narrow = clf.classify(v, {"shift_mev": ((0.0, 5.0), (28.0, 6.0))}).evidence["shift_mev"]
    assert narrow > broad + 3


def test_fit_class_removes_the_measurement_error() -> None:
    rng = np.random.default_rng(1)
    true = rng.normal(0.5, 0.05, 400)
    err = rng.uniform(0.01, 0.3, 400)
    x = true + rng.normal(0, err)
    mu, sd = fit_class(x, err, 0.03, 4.0)
    assert mu == pytest.approx(0.5, abs=0.02)
    assert sd == pytest.approx(0.05, abs=0.02)


def test_fit_weights_halves_duplicated_evidence() -> None:
    """The same evidence entered twice gets about half the weight each."""
    rng = np.random.default_rng(2)
    y = rng.random(2000) < 0.5
    llr = np.where(y, 1.0, -1.0) * 1.5 + rng.normal(0, 1.5, 2000)
    w1 = fit_weights(llr[:, None], y, l2=0.0)
    w2 = fit_weights(np.column_stack([llr, llr]), y, l2=0.0)
    assert w2.sum() == pytest.approx(w1[0], rel=0.05)


def test_save_and_load_round_trip(tmp_path) -> None:
    clf = _clf(uncertain_below=0.9)
    clf.features[0].weight = 0.7
    p = tmp_path / "c.json"
    clf.save(p)
    back = Classifier.load(p)
    v = {"g2_zero": 0.3, "g2_zero_err": 0.05, "on_fraction": 0.7, "on_fraction_err": 0.05}
    assert back.classify(v).p_dimer == pytest.approx(clf.classify(v).p_dimer, rel=1e-12)
    assert back.uncertain_below == 0.9


def test_an_old_classifier_file_is_refused_with_a_clear_error(tmp_path) -> None:
    p = tmp_path / "old.json"
    p.write_text('{"with_spectrum": {}, "photons_only": {}}')
    with pytest.raises(ValueError, match="re-fit"):
        Classifier.load(p)


def test_shipped_classifier_weighs_g2_by_its_error() -> None:
    """The issue's two cases: a dimer's g2(0) of 0.497 ± 0.018 and an empty 3.8 kcps
    recording's -0.48 ± 33.6."""
    clf = load_classifier()
    measured = "leakage+decay floor"   # background measured: no systematic term
    assert clf.classify({"g2_zero": 0.497, "g2_zero_err": 0.018,
                         "g2_correction": measured}).evidence["g2_zero"] > 3
    c = clf.classify({"g2_zero": -0.48, "g2_zero_err": 33.6, "g2_correction": measured})
    assert c.evidence["g2_zero"] == 0.0 and c.p_dimer == pytest.approx(0.5)


def test_a_g2_without_a_background_measurement_counts_less() -> None:
    clf = _clf()
    clf.features[0].systematic = 0.3
    v = {"g2_zero": 0.5, "g2_zero_err": 0.02}
    weak = clf.classify({**v, "g2_correction": "none"}).evidence["g2_zero"]
    strong = clf.classify({**v, "g2_correction": "leakage+decay floor"}).evidence["g2_zero"]
    assert 0 < weak < strong - 2


def test_session_mixture_recovers_the_monomer_peak_and_spread() -> None:
    """60 particles, a third of them dimers 27 meV to the red, spread 15 meV: the mixture
    finds the monomer peak within its error and the spread within 30 %."""
    rng = np.random.default_rng(3)
    clf = _clf()
    samples = []
    for i in range(60):
        dim = i % 3 == 0
        e = 2.1 - (0.027 if dim else 0.0) + rng.normal(0, 0.015) + rng.normal(0, 0.002)
        samples.append(Sample(e, 0.002, 0.8 if dim else 0.2, 20.0 if dim else 30.0))
    m = session_model(samples, clf)
    assert m.reference_from == "session" and m.spread_from == "session"
    assert m.reference_ev == pytest.approx(2.1, abs=3 * m.reference_err_ev + 0.002)
    assert m.spread_mev == pytest.approx(15.0, rel=0.3)
    assert m.dimer_fraction == pytest.approx(1 / 3, abs=0.15)
    assert m.lifetime_scale_ns["monomer"] > m.lifetime_scale_ns["dimer"]
    (m0, s0), (m1, s1) = m.classes()["shift_mev"]
    assert m0 == 0.0 and s0 == pytest.approx(m.spread_mev) and m1 == pytest.approx(28.0)


def test_too_few_spectra_give_no_reference() -> None:
    m = session_model([Sample(2.0, 0.001, 0.5), Sample(None, None, 0.5)], _clf())
    assert m.reference_ev is None and m.classes() == {}
    m = session_model([Sample(2.0, 0.001, 0.5)], _clf(), reference_ev=2.01)
    assert m.reference_ev == pytest.approx(2.01) and m.reference_from == "given"


def test_a_zero_error_is_raised_to_the_features_floor() -> None:
    """An ON fraction of 1 ± 0 (a steady emitter's, before the floor) weighs as 1 ± floor: no
    value is exact evidence."""
    clf = _clf()
    on = clf.model("on_fraction")
    on.floor = 0.05
    exact = clf.classify({"on_fraction": 1.0, "on_fraction_err": 0.0}).evidence["on_fraction"]
    floored = clf.classify({"on_fraction": 1.0, "on_fraction_err": 0.05})
    assert exact == pytest.approx(floored.evidence["on_fraction"])
    assert on.measured(1.0, 0.0) == (1.0, 0.05)
    assert on.measured(1.0, 0.2) == (1.0, 0.2)


def test_the_on_fraction_alone_never_gives_a_verdict() -> None:
    """Steady emitters exist in both classes (the calibration population holds 20 % of each
    without blinking, spad.app.calibrate.STEADY_SHARE, a component of both classes' models)
    and blinking statistics spread from dot to dot: the shipped classifier never gives a
    verdict from the ON fraction alone, at any value and at its smallest error. The stated
    probability may reach 0.95 (the calibration's slope on the blinking evidence states what
    the simulated population supports), but a verdict must also hold with the blinking
    statistics at their fitted weight, capped at spad.app.calibrate.BLINKING_MAX_WEIGHT, and
    there the ON fraction alone stays below 0.95; the reason says so. An ON fraction of 1
    leans no further than P(monomer) = 0.9, and a steady emitter without g2 (the real
    v20_t2.ptu: one detector, one intensity state, ON fraction 1) gets no verdict from it."""
    from spad.analysis.blinking import ON_FRACTION_RESOLUTION

    clf = load_classifier()
    assert clf.slopes[1] > 1.0         # the check below is what keeps these from verdicts
    for v in np.linspace(0.0, 1.0, 41):
        for err in (0.0, ON_FRACTION_RESOLUTION):
            c = clf.classify({"on_fraction": v, "on_fraction_err": err})
            assert c.label == "uncertain", (v, err, c.p_dimer)
            if max(c.p_dimer, 1.0 - c.p_dimer) >= clf.uncertain_below:
                assert "blinking statistics at their fitted weight" in c.reason
    for err in (0.0, ON_FRACTION_RESOLUTION):
        assert clf.classify({"on_fraction": 1.0, "on_fraction_err": err}).p_dimer > 0.1
    steady = clf.classify({"on_fraction": 1.0, "on_fraction_err": ON_FRACTION_RESOLUTION})
    assert steady.label == "uncertain"


def test_the_calibration_slopes_scale_the_evidence_and_a_verdict_is_checked_without_them(
        tmp_path) -> None:
    """Classifier.slopes scale the evidence of the blinking statistics and of the rest (the
    stated probability is the sum's); a verdict also needs the threshold with the blinking
    statistics at their fitted weight; the slopes survive saving and loading."""
    blink = _blinking_clf()
    g2 = FeatureModel("g2_zero", "g2_zero_err", (0.1, 0.05), (0.55, 0.08), 1.0, group="g2")
    values = {"on_fraction": 0.7, "on_fraction_err": 0.05,
              "intensity_excess_var": 0.04, "intensity_excess_var_err": 0.01,
              "g2_zero": 0.3, "g2_zero_err": 0.1}
    plain = Classifier([*blink.features, g2])
    calibrated = Classifier([*blink.features, g2], slopes=(1.5, 3.0))
    a, b = plain.classify(values), calibrated.classify(values)
    for name in ("on_fraction", "intensity_excess_var"):
        assert b.evidence[name] == pytest.approx(3.0 * a.evidence[name])
    assert b.evidence["g2_zero"] == pytest.approx(1.5 * a.evidence["g2_zero"])
    assert b.p_dimer == pytest.approx(1.0 / (1.0 + math.exp(-sum(b.evidence.values()))))
    # blinking evidence alone: stated above the threshold by the slope, no verdict
    alone = {k: v for k, v in values.items() if not k.startswith("g2")}
    z = sum(plain.classify(alone).evidence.values())
    assert 0.5 < 1.0 / (1.0 + math.exp(-z)) < 0.95      # as fitted: below the threshold
    c = calibrated.classify(alone)
    assert c.p_dimer > 0.95 and c.label == "uncertain"
    assert "blinking statistics at their fitted weight" in c.reason
    calibrated.save(tmp_path / "c.json")
    assert Classifier.load(tmp_path / "c.json").slopes == (1.5, 3.0)


def test_a_steady_emitter_carries_little_blinking_evidence(tmp_path) -> None:
    """Both classes hold non-blinking particles (spad.app.calibrate.STEADY_SHARE): with the
    steady component in both class models an ON fraction of 1 says far less about the class
    than the class normals alone make of it, while a blinking value keeps its evidence; the
    component survives saving and loading."""
    plain = FeatureModel("on_fraction", "on_fraction_err", (0.85, 0.08), (0.6, 0.1), 2.0)
    mixed = FeatureModel("on_fraction", "on_fraction_err", (0.85, 0.08), (0.6, 0.1), 2.0,
                         steady=(0.2, 1.0, 0.02))
    steady_plain = plain.log_ratio(1.0, 0.05, 0.03)
    steady_mixed = mixed.log_ratio(1.0, 0.05, 0.03)
    assert steady_plain < -3.0 and abs(steady_mixed) < 0.5 * abs(steady_plain)
    assert mixed.log_ratio(0.55, 0.05, 0.03) > 2.0
    clf = Classifier([mixed])
    clf.save(tmp_path / "c.json")
    back = Classifier.load(tmp_path / "c.json")
    assert back.model("on_fraction").steady == (0.2, 1.0, 0.02)


def test_platt_fit_recovers_a_known_map():
    """Log-odds twice too confident (true P(dimer) = sigmoid(z / 2 + 0.3)): Platt scaling
    finds slope 0.5 and offset 0.3; calibrated log-odds give slope 1 and offset 0."""
    from spad.app.calibrate import platt_fit

    rng = np.random.default_rng(3)
    z = rng.normal(0.0, 4.0, 20000)
    y = rng.random(z.size) < 1.0 / (1.0 + np.exp(-(0.5 * z + 0.3)))
    a, b = platt_fit(z, y)
    assert a == pytest.approx(0.5, abs=0.03)
    assert b == pytest.approx(0.3, abs=0.06)
    a, b = platt_fit(0.5 * z + 0.3, y)
    assert a == pytest.approx(1.0, abs=0.06)
    assert b == pytest.approx(0.0, abs=0.06)


def _blinking_clf(dimer_at_one: float = 0.0) -> Classifier:
    """ON fraction: monomers 0.88 ± 0.15, dimers 0.56 ± 0.15 (a share ``dimer_at_one`` of the
    blinking dimers reads like the steady ones); intensity variance (asinh scale): monomers
    2.9 ± 0.5, dimers 1.9 ± 0.2; steady emitters (20 % of either class) at ON fraction 1 and
    variance 0."""
    return Classifier([
        FeatureModel("on_fraction", "on_fraction_err", (0.88, 0.15), (0.56, 0.15), 1.3,
                     floor=0.05, steady=(0.2, 1.0, 0.15), steady_like=(0.0, dimer_at_one)),
        FeatureModel("intensity_excess_var", "intensity_excess_var_err", (2.9, 0.5),
                     (1.9, 0.2), 8.9, transform="asinh", scale=0.01, floor=0.005,
                     steady=(0.2, 0.04, 0.2)),
    ])


def test_a_steady_emitter_is_steady_in_all_its_blinking_statistics() -> None:
    """Judged one at a time, an ON fraction of 1 favoured a monomer by ~1 in the log-odds and
    the intensity variance of 0 that shows the emitter steady could not take it back, so a
    steady dimer (the fast set's one wrong verdict) leaned to monomer. Judged jointly, a
    steady emitter (either class can be one) carries no blinking evidence; the split keeps
    the sum, and a blinking monomer keeps its evidence."""
    clf = _blinking_clf()
    steady = {"on_fraction": 1.0, "on_fraction_err": 0.0,
              "intensity_excess_var": 0.0, "intensity_excess_var_err": 0.002}
    alone = clf.classify({"on_fraction": 1.0, "on_fraction_err": 0.0})
    both = clf.classify(steady)
    assert alone.evidence["on_fraction"] < -0.8
    assert abs(sum(both.evidence.values())) < 0.1
    assert both.evidence["on_fraction"] == pytest.approx(alone.evidence["on_fraction"])
    blinking_monomer = clf.classify({"on_fraction": 0.9, "on_fraction_err": 0.05,
                                     "intensity_excess_var": 0.18,
                                     "intensity_excess_var_err": 0.02})
    assert sum(blinking_monomer.evidence.values()) < -2.0


def test_blinking_dimers_that_read_on_fraction_one_keep_their_evidence(tmp_path) -> None:
    """A dimer blinking between grey levels all above the ON threshold reads ON fraction 1
    with a dimer's intensity variance; the share of such dimers in the class model keeps
    the joint evidence from turning that into a monomer's; the share survives saving."""
    x = {"on_fraction": 1.0, "on_fraction_err": 0.05,
         "intensity_excess_var": 0.01 * math.sinh(1.9), "intensity_excess_var_err": 0.005}
    without = sum(_blinking_clf(0.0).classify(x).evidence.values())
    with_share = sum(_blinking_clf(0.15).classify(x).evidence.values())
    assert without < -0.5 and with_share > 0.8
    _blinking_clf(0.15).save(tmp_path / "c.json")
    assert Classifier.load(tmp_path / "c.json").model("on_fraction").steady_like == (0.0, 0.15)


def test_fit_class_with_a_fixed_second_component() -> None:
    """The share of a class that reads like the steady emitters is found by maximum
    likelihood next to the class's own mean and spread."""
    from spad.analysis.classify import fit_class_with

    rng = np.random.default_rng(5)
    x = np.r_[rng.normal(0.56, 0.15, 850), rng.normal(1.0, 0.05, 150)]
    e = np.full(x.size, 0.05)
    mu, sd, q = fit_class_with(x, e, 0.03, 1.3, (1.0, 0.05))
    assert mu == pytest.approx(0.56, abs=0.02)
    assert sd == pytest.approx(0.15, abs=0.02)
    assert q == pytest.approx(0.15, abs=0.04)


def _switching_clf() -> Classifier:
    """The blinking statistics as fitted on the lab population: the variance given the ON
    fraction (monomers on the line of a bright/dark switching emitter, dimers off it) and an
    ON fraction of 1 (no OFF state found) read as the share of each class reading it."""
    return Classifier([
        FeatureModel("on_fraction", "on_fraction_err", (0.88, 0.15), (0.56, 0.15), 1.3,
                     floor=0.05, steady=(0.2, 1.0, 0.15), steady_like=(0.003, 0.15),
                     exact=1.0),
        FeatureModel("intensity_excess_var", "intensity_excess_var_err", (2.9, 0.5),
                     (1.9, 0.2), 8.9, transform="asinh", scale=0.01, floor=0.005,
                     steady=(0.2, 0.03, 0.2),
                     on_off=((-0.18, 0.93, 0.2), (1.88, 0.0, 0.2))),
    ])


def test_a_monomer_mostly_on_is_judged_by_the_variance_its_on_fraction_sets(tmp_path) -> None:
    """A monomer ON 96 % of the time switches to dark rarely: its intensity variance
    (1 - f) / f = 0.042 is small, where the monomers' variance over all ON fractions is
    large; judged apart from its ON fraction that small variance read like a dimer's
    (held-out blinking particles stated 0.56 were 23 % dimers). Given its ON fraction it
    is what a monomer shows there, and no evidence either way (a dimer's flicker is as
    large); at an ON fraction of 0.8 the monomers' line and the dimers' flicker part, and
    each reads as its class. The model survives saving and loading."""
    given = _switching_clf()
    apart = Classifier([given.features[0],
                        FeatureModel(**{**given.features[1].__dict__, "on_off": None})])

    def particle(f: float, var: float) -> dict[str, float]:
        return {"on_fraction": f, "on_fraction_err": 0.05,
                "intensity_excess_var": var, "intensity_excess_var_err": 0.005}

    rare = particle(0.96, 0.04 / 0.96)
    assert apart.classify(rare).evidence["intensity_excess_var"] > 0.5
    assert abs(given.classify(rare).evidence["intensity_excess_var"]) < 0.5
    assert sum(given.classify(rare).evidence.values()) < -1.0
    on_line = 0.01 * math.sinh(-0.18 + 0.93 * math.asinh(0.25 / 0.01))
    assert given.classify(particle(0.8, on_line)).evidence["intensity_excess_var"] < -2.0
    flicker = 0.01 * math.sinh(1.88)
    assert given.classify(particle(0.8, flicker)).evidence["intensity_excess_var"] > 2.0
    given.save(tmp_path / "c.json")
    back = Classifier.load(tmp_path / "c.json")
    assert back.model("intensity_excess_var").on_off == ((-0.18, 0.93, 0.2), (1.88, 0.0, 0.2))
    assert back.model("on_fraction").exact == 1.0


def test_an_on_fraction_of_one_is_an_outcome_of_its_own() -> None:
    """An ON fraction of exactly 1 (no OFF state found) is read as the share of each class
    that reads it, not as a point of the class normals (which, floored, put 20 % of the
    monomers there where 0.3 % of the blinking ones are): a steady emitter carries no
    blinking evidence, a dimer flickering between grey levels above the threshold reads as
    a dimer, and an ON fraction just below 1 is judged by the normals."""
    clf = _switching_clf()
    steady = {"on_fraction": 1.0, "on_fraction_err": 0.05,
              "intensity_excess_var": 0.0, "intensity_excess_var_err": 0.002}
    grey = {**steady, "intensity_excess_var": 0.01 * math.sinh(1.9),
            "intensity_excess_var_err": 0.005}
    assert abs(sum(clf.classify(steady).evidence.values())) < 0.1
    assert sum(clf.classify(grey).evidence.values()) > 2.0
    on = clf.model("on_fraction")
    assert on.densities(1.0, 0.05, 0.03) == (0.15, 0.003, 1.0)
    assert on.densities(0.999, 0.05, 0.03)[1] > 1.0      # a density of the monomers' normal


def test_the_lifetime_has_a_slope_of_its_own() -> None:
    """Classifier.slopes = (rest, blinking, lifetime): the lifetime's evidence takes the
    third; a classifier fitted with two slopes gives the lifetime the rest's."""
    life = FeatureModel("lifetime_ns", "lifetime_err_ns", (3.5, 0.5), (3.1, 0.5), 4.0,
                        transform="log", scale=0.05)
    g2 = FeatureModel("g2_zero", "g2_zero_err", (0.1, 0.05), (0.55, 0.08), 1.0, group="g2")
    values = {"lifetime_ns": 12.0, "lifetime_err_ns": 0.2, "g2_zero": 0.3, "g2_zero_err": 0.1}
    plain = Classifier([life, g2]).classify(values).evidence
    three = Classifier([life, g2], slopes=(1.5, 3.0, 0.25)).classify(values).evidence
    two = Classifier([life, g2], slopes=(1.5, 3.0)).classify(values).evidence
    assert three["lifetime_ns"] == pytest.approx(0.25 * plain["lifetime_ns"])
    assert three["g2_zero"] == pytest.approx(1.5 * plain["g2_zero"])
    assert two["lifetime_ns"] == pytest.approx(1.5 * plain["lifetime_ns"])
    assert [f.kind() for f in _switching_clf().features] == ["blinking", "blinking"]
    assert (life.kind(), g2.kind()) == ("lifetime", "rest")


def test_fit_class_given_recovers_a_line() -> None:
    """The class mean as a line in a covariate, with each value's own error, by maximum
    likelihood (the same outlier share as in use)."""
    from spad.analysis.classify import fit_class_given

    rng = np.random.default_rng(5)
    u = rng.uniform(0.0, 5.0, 4000)
    e = rng.uniform(0.05, 0.3, u.size)
    x = -0.2 + 0.9 * u + rng.normal(0.0, 0.25, u.size) + rng.normal(0.0, e)
    a, b, sd = fit_class_given(x, e, u, 0.03, 12.0)
    assert (a, b, sd) == pytest.approx((-0.2, 0.9, 0.25), abs=0.03)


def test_a_monomer_with_a_grey_off_state_is_not_read_as_a_flickering_dimer() -> None:
    """Real CdSe/CdS dots switch to grey OFF states (a fifth to a quarter of the ON level),
    which lower the variance below the dark OFF state's line; judged against that line only,
    such a monomer's variance (ON fraction 0.87) sits near a dimer's flicker and read as a
    dimer. With the monomers' mean spread between the dark line and the grey one
    (FeatureModel.grey_off) it reads as a monomer's, while a dimer's flicker at an ON
    fraction of 0.6 still reads as a dimer's."""
    dark_only = _switching_clf()
    var = dark_only.features[1]
    grey = Classifier([dark_only.features[0], FeatureModel(**{**var.__dict__,
                                                              "grey_off": 0.25})])
    f = 0.87
    grey_var = 0.01 * math.sinh(-0.18 + 0.93 * var.telegraph(f, 0.25))
    assert var.telegraph(f, 0.25) < var.telegraph(f) == pytest.approx(
        math.asinh((1 - f) / f / 0.01))
    values = {"on_fraction": f, "on_fraction_err": 0.05,
              "intensity_excess_var": grey_var, "intensity_excess_var_err": 0.003}
    assert dark_only.classify(values).evidence["intensity_excess_var"] > 0.5
    assert grey.classify(values).evidence["intensity_excess_var"] < 0.0
    flicker = {**values, "on_fraction": 0.6, "intensity_excess_var": 0.01 * math.sinh(1.88)}
    assert grey.classify(flicker).evidence["intensity_excess_var"] > 2.0


def _rate_clf() -> Classifier:
    """The blinking statistics with the share of blinking dimers that read an ON fraction of
    1 depending on the recording (FeatureModel.steady_like_given): almost all at 2 kcps over
    10 s, almost none at 200 kcps."""
    clf = _switching_clf()
    on = FeatureModel(**{**clf.features[0].__dict__,
                         "steady_like_given": ((-2.0, -1.0, 0.0), (20.0, -4.6, -1.0))})
    return Classifier([on, clf.features[1]])


def test_whether_switching_is_resolved_depends_on_the_photons() -> None:
    """A dimer flickering between grey levels reads an ON fraction of 1 when too few photons
    resolve its switching: at low counts almost every dimer does, at high counts almost
    none. The share follows the recording's rate and span, within 0.01-0.99, and falls back
    to the constant one without them."""
    on = _rate_clf().model("on_fraction")
    low, high = on.like_steady(2e3, 10.0), on.like_steady(2e5, 10.0)
    assert low[1] > 0.9 > 0.1 > high[1]
    assert 0.01 <= min(*low, *high) and max(*low, *high) <= 0.99
    assert on.like_steady(2e3, 100.0)[1] < low[1]       # a longer recording catches more
    assert on.like_steady(1e7, 1.0) == (0.01, 0.01)
    assert on.like_steady(1e-3, 1.0)[1] == 0.99
    assert on.like_steady(None, 10.0) == on.like_steady(2e3, float("nan")) == on.steady_like
    assert _switching_clf().model("on_fraction").like_steady(2e3, 10.0) == (0.003, 0.15)


def test_an_on_fraction_of_one_weighs_by_the_photons_that_could_show_switching(tmp_path) -> None:
    """An ON fraction of 1 with a dimer's flicker in its intensity variance: at a low rate,
    where most flickering dimers read so, it is a dimer's; at a high rate, where their
    switching would have been resolved, it is far less so. With a steady emitter's variance
    it carries no evidence at either rate, and an ON fraction below 1 at a low rate, which
    few dimers show there, is a monomer's. The model survives saving."""
    clf = _rate_clf()
    steady = {"on_fraction": 1.0, "on_fraction_err": 0.05,
              "intensity_excess_var": 0.0, "intensity_excess_var_err": 0.002}
    grey = {**steady, "intensity_excess_var": 0.01 * math.sinh(1.88),
            "intensity_excess_var_err": 0.003}

    def log_odds(values: dict[str, float], rate: float) -> float:
        return sum(clf.classify({**values, "count_rate_cps": rate,
                                 "duration_s": 10.0}).evidence.values())

    assert log_odds(grey, 2e3) > 5.0
    assert log_odds(grey, 2e3) - log_odds(grey, 2e5) > 2.0
    assert abs(log_odds(steady, 2e3)) < 0.2 and abs(log_odds(steady, 2e5)) < 0.2
    line = 0.01 * math.sinh(-0.18 + 0.93 * math.asinh(25.0))
    blinking = {"on_fraction": 0.8, "on_fraction_err": 0.05,
                "intensity_excess_var": line, "intensity_excess_var_err": 0.005}
    assert log_odds(blinking, 2e3) < log_odds(blinking, 2e5) - 2.0
    clf.save(tmp_path / "c.json")
    back = Classifier.load(tmp_path / "c.json")
    assert back.model("on_fraction").steady_like_given == ((-2.0, -1.0, 0.0),
                                                           (20.0, -4.6, -1.0))
    low = {**grey, "count_rate_cps": 2e3, "duration_s": 10.0}
    assert back.classify(low).p_dimer == clf.classify(low).p_dimer


def test_a_value_below_the_exact_one_is_not_a_steady_emitters() -> None:
    """Steady emitters read an ON fraction of exactly 1; one of 0.96 is not theirs (an
    outlier at most): its class densities are the blinking normals', and it is a monomer's
    ON fraction (judged against the steady emitters' normal as well, it was -1.0 in the
    log-odds, now -3)."""
    clf = _switching_clf()
    on = clf.model("on_fraction")
    dim, mono, steady = on.densities(0.96, 0.05, 0.03)
    assert steady == pytest.approx(0.03 / on.span)
    assert clf.classify({"on_fraction": 0.96, "on_fraction_err": 0.05}).evidence[
        "on_fraction"] < -2.0


def test_fit_share_given_recovers_a_logistic_law() -> None:
    """The share of a class reading the steady value, as a logistic law in log10 rate and
    log10 duration, by maximum likelihood."""
    from spad.analysis.classify import fit_share_given

    rng = np.random.default_rng(7)
    rate = 10 ** rng.uniform(3.0, 5.5, 6000)
    dur = 10 ** rng.uniform(0.7, 2.0, rate.size)
    q = 1.0 / (1.0 + np.exp(-(18.0 - 4.5 * np.log10(rate) + 0.5 * np.log10(dur))))
    reads = rng.random(rate.size) < q
    a, b, c = fit_share_given(reads, rate, dur)
    assert a == pytest.approx(18.0, abs=1.5)
    assert b == pytest.approx(-4.5, abs=0.35)
    assert c == pytest.approx(0.5, abs=0.4)
    assert fit_share_given(reads[:10], rate[:10], dur[:10]) is None
