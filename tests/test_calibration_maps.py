"""spad.app.calibrate's calibration of the stated probability (slopes of the log-odds per kind
of evidence, fitted without intercept) and analysed populations cached in blocks that a new
run resumes."""

from __future__ import annotations

import numpy as np
import pytest

from spad.app import calibrate


def test_slopes_fit_recovers_known_slopes() -> None:
    rng = np.random.default_rng(11)
    a = rng.normal(0.0, 3.0, 20000)
    b = rng.normal(0.0, 2.0, 20000)
    y = rng.random(a.size) < 1.0 / (1.0 + np.exp(-(0.6 * a + 2.0 * b)))
    assert calibrate.slopes_fit(np.column_stack([a, b]), y) == pytest.approx([0.6, 2.0],
                                                                              abs=0.08)


def test_a_population_is_cached_in_blocks_and_resumed(tmp_path, monkeypatch) -> None:
    """A population of 120 + 120 is analysed in blocks of 50 + 50: the blocks hold the seeds
    of the whole run, a second run reads them, and a run whose middle block was lost
    analyses only that block."""
    calls = []

    def fake(n_each, seed0, workers, folder, preset="lab", keep=False):
        calls.append((n_each, seed0))
        return [{"kind": k, "seed": seed0 + 2 * i + (k == "dimer")}
                for i in range(n_each) for k in ("monomer", "dimer")]

    monkeypatch.setattr(calibrate, "simulate_population", fake)
    pop = calibrate.load_population("lab", 120, 7000, 1, tmp_path)
    assert calls == [(50, 7000), (50, 7100), (20, 7200)]
    assert [p["seed"] for p in pop] == list(range(7000, 7240))
    assert calibrate.load_population("lab", 120, 7000, 1, tmp_path) == pop
    assert len(calls) == 3
    (tmp_path / "analysed_lab_7100_50.pkl").unlink()
    assert calibrate.load_population("lab", 120, 7000, 1, tmp_path) == pop
    assert calls[3:] == [(50, 7100)]


def test_hosmer_lemeshow_passes_stated_probabilities_that_hold_and_fails_timid_ones() -> None:
    """On 4000 particles whose stated p is their true probability the test passes in 19 of 20
    seeds or so (here: p > 0.01 for seed 5); stated timidly (the log-odds halved, as the
    capped blinking weight did) it fails by far."""
    from spad.app.reliability import hosmer_lemeshow, pool_bins, reliability_bins

    rng = np.random.default_rng(5)
    z = rng.normal(0.0, 4.0, 4000)
    p = 1.0 / (1.0 + np.exp(-z))
    y = (rng.random(z.size) < p).astype(float)
    good = hosmer_lemeshow(pool_bins(reliability_bins(p, y), 20))
    assert good["p_value"] > 0.01 and good["bins"] >= 8
    timid = 1.0 / (1.0 + np.exp(-0.5 * z))
    assert hosmer_lemeshow(pool_bins(reliability_bins(timid, y), 20))["p_value"] < 1e-6


def test_the_reliability_figure_draws_sparse_bins_off_the_line(tmp_path) -> None:
    """The figure of a population with a bin of one particle: that bin is drawn (an open
    marker with its interval) but not joined to the line."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from spad.app.reliability import pool_bins, reliability_bins, reliability_figure

    p = np.r_[np.full(30, 0.02), 0.55, np.full(30, 0.98)]
    y = np.r_[np.zeros(30), 1.0, np.ones(30)]
    summary = {"reliability_pooled": pool_bins(reliability_bins(p, y), 20)}
    assert [b["n"] for b in summary["reliability_pooled"]] == [30, 1, 30]
    drawn = []
    real_plot = plt.Axes.plot

    def plot(self, *args, **kwargs):
        drawn.append((np.asarray(args[0]).size, kwargs.get("mfc")))
        return real_plot(self, *args, **kwargs)

    plt.Axes.plot = plot
    try:
        out = reliability_figure({"toy": {"n": 61, "summary": summary,
                                          "photons_only": {"summary": summary}}},
                                 tmp_path / "r.png")
    finally:
        plt.Axes.plot = real_plot
    assert out.stat().st_size > 1000
    # after the diagonal, per evidence kind: the line through the two full bins, then the open
    # marker of the sparse one
    assert drawn[1:] == [(2, None), (1, "none"), (2, None), (1, "none")]


@pytest.mark.parametrize("kind, seed", [("dimer", 24), ("monomer", 7)])
def test_cached_particles_keep_all_the_classifier_and_tables_read(tmp_path, kind, seed) -> None:
    """The calibration caches each analysed particle with its scalar results only
    (PhotonAnalysis.scalars_only): its features, table row and verdict are those of the whole
    result (a T3 dimer and a T2 monomer, short lab recordings)."""
    from spad.analysis.particle import analyze_particle, classify_session

    lean = calibrate._particle((kind, seed, str(tmp_path), "lab", True))["result"]
    full = analyze_particle(next(tmp_path.glob(f"lab_{kind}_{seed}.h5")))
    assert full.photons.trace is not None and lean.photons.trace is None
    assert lean.photons.features() == full.photons.features()
    assert lean.photons.summary() == full.photons.summary()
    for r in (lean, full):
        classify_session([r], reference_ev=2.0)
    assert lean.record() == full.record()
    assert lean.classification == full.classification


def test_middle_by_condition_finds_the_group_whose_stated_p_does_not_hold() -> None:
    """Stated 0.5 everywhere: at 1-5 MHz half are dimers (it holds), at 20-80 MHz a fifth
    (it does not); particles stated outside the middle are left out."""
    rng = np.random.default_rng(3)
    pop, p = [], []
    for i in range(400):
        fast = i % 2 == 1
        dimer = rng.random() < (0.2 if fast else 0.5)
        pop.append({"kind": "dimer" if dimer else "monomer", "seed": i,
                    "conditions": {"rep_rate_hz": 40e6 if fast else 2e6, "mode": "T3"}})
        p.append(0.5)
    pop.append({"kind": "dimer", "seed": 999, "conditions": {"rep_rate_hz": 2e6, "mode": "T2"}})
    p.append(0.99)
    mid = calibrate.middle_by_condition(pop, p)
    slow, fast = mid["rep_rate_mhz"]["1-5"], mid["rep_rate_mhz"]["20-80"]
    assert slow["n"] == fast["n"] == 200 and mid["mode"]["T3"]["n"] == 400
    assert "T2" not in mid["mode"]
    assert slow["stated"] == fast["stated"] == 0.5
    assert abs(slow["z"]) < 3 and fast["z"] < -6
    assert fast["observed"] == pytest.approx(0.2, abs=0.08)
    assert sum(g["n"] for g in mid["emitter"].values()) == 400


def test_held_out_seeds_may_not_overlap_the_training_seeds(capsys) -> None:
    """--train-also adds a training population; a held-out set drawn from its seeds (or the
    first training population's) is refused with one line, before anything is simulated."""
    with pytest.raises(SystemExit) as err:
        calibrate.main(["--n-train", "10", "--train-also", "5000=100", "--n-test", "20",
                        "--test-seed", "lab=5100"])
    assert err.value.code == 2
    assert "overlap the training seeds" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        calibrate.main(["--n-train", "10", "--train-also", "7=100"])
