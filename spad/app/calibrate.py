"""Fit the monomer/dimer classifier on simulated populations and test it on a held-out one.

Run from the repository root (takes ~10-20 min on 2 cores)::

    .venv/bin/python -m spad.app.calibrate --n-train 60 --n-test 60 --duration 60

For each particle it simulates what ``spad simulate --vary`` writes (particle-to-particle spread
of peak energy, lifetime and brightness; dimers with necks of 5.6-6.3 nm, i.e. 25-30 meV red
shift; detected rates 10-50 kcps) and the same :func:`analysis.particle.analyze_particle` that
``spad analyze`` runs, fits the two logistic models of :mod:`analysis.classify` on the training
population, then classifies the held-out population exactly as ``spad analyze`` does (session
reference from the photon-only monomers) and writes the parameters with their provenance and
held-out accuracy to ``analysis/data/classifier.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from analysis.classify import (
    MODEL_PATH,
    PHOTON_FEATURES,
    SPECTRUM_FEATURES,
    Classifier,
    fit_logistic,
)

SEED_OFFSET_TEST = 1_000_000


def _particle(args: tuple[str, int, float, str]) -> dict[str, Any]:
    """Simulate and analyse one particle; returns its features and truth."""
    kind, seed, duration, folder = args
    from analysis.particle import analyze_particle
    from spad.app.commands.simulate import simulate_particle

    rng = np.random.default_rng([seed, 77])
    rate = float(np.exp(rng.uniform(np.log(10e3), np.log(50e3))))
    path = Path(folder) / f"{kind}_{seed}.h5"
    neck = float(f"{rng.uniform(5.6, 6.3):.2f}") if kind == "dimer" else None
    # the rate as the command line took it (whole cps), so populations stay as calibrated
    _, truth, _ = simulate_particle(path, kind, seed, duration, neck_nm=neck, vary=True,
                                    count_rate=float(f"{rate:.0f}"), overwrite=True)
    result = analyze_particle(path)
    true_peak = float(np.mean([e["peak_ev"] for e in truth["emitters"].values()]))
    path.unlink()
    return {"kind": kind, "seed": seed, "rate": rate, "true_peak_ev": true_peak,
            "true_shift_ev": float(truth["red_shift_ev"]), "result": result}


def simulate_population(n_each: int, seed0: int, duration: float, workers: int,
                        folder: str) -> list[dict[str, Any]]:
    """Simulate and analyse ``n_each`` monomers and ``n_each`` dimers."""
    # Distinct seeds per particle: a monomer and a dimer drawn from the same seed would share
    # their base peak energy, pairing the populations and flattering the red-shift estimate.
    jobs = [(k, seed0 + 2 * i + (k == "dimer"), duration, folder)
            for i in range(n_each) for k in ("monomer", "dimer")]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        out = []
        for i, r in enumerate(pool.map(_particle, jobs, chunksize=1)):
            out.append(r)
            print(f"\r{i + 1}/{len(jobs)} particles", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return out


def confusion(truth: list[str], predicted: list[str]) -> dict[str, dict[str, int]]:
    """Counts of predicted labels for each true label."""
    return {t: {p: sum(1 for a, b in zip(truth, predicted, strict=True) if a == t and b == p)
                for p in ("monomer", "dimer", "uncertain")} for t in ("monomer", "dimer")}


def evaluate(clf: Classifier, pop: list[dict[str, Any]]) -> dict[str, Any]:
    """Classify a population as ``spad analyze`` does; accuracy counts 'uncertain' as wrong."""
    from analysis.particle import classify_session
    from spad.app.report import red_shift

    results = [p["result"] for p in pop]
    truth = [p["kind"] for p in pop]
    out: dict[str, Any] = {"n": len(pop)}
    # photons only
    pred = [clf.classify(r.photons.features()).label for r in results]
    out["photons_only"] = {"accuracy": float(np.mean([a == b for a, b in zip(truth, pred,
                                                                             strict=True)])),
                           "confusion": confusion(truth, pred)}
    ref = classify_session(results, classifier=clf)
    pred = [r.classification.label for r in results]
    out["with_spectrum"] = {"accuracy": float(np.mean([a == b for a, b in zip(truth, pred,
                                                                              strict=True)])),
                            "confusion": confusion(truth, pred), "reference_ev": ref}
    rs = red_shift([r.record() for r in results])
    mono = [p["true_peak_ev"] for p in pop if p["kind"] == "monomer"]
    dim = [p["true_peak_ev"] for p in pop if p["kind"] == "dimer"]
    out["red_shift"] = {
        "measured_mev": rs["shift_mev"], "measured_err_mev": rs["shift_err_mev"],
        "truth_same_particles_mev": (float(np.mean(mono)) - float(np.mean(dim))) * 1e3,
        "truth_configured_mean_mev": float(np.mean([p["true_shift_ev"] for p in pop
                                                    if p["kind"] == "dimer"])) * 1e3}
    return out


def _rows(pop: list[dict[str, Any]], ref_ev: float) -> list[dict[str, float]]:
    rows = []
    for p in pop:
        r = p["result"]
        f = r.photons.features()
        sp = r.spectrum
        f["shift_mev"] = (ref_ev - sp.peak_ev) * 1e3 if sp is not None else None
        f["fwhm_mev"] = sp.fwhm_mev if sp is not None else None
        rows.append(f)
    return rows


def _complete(rows: list[dict[str, Any]], names: tuple[str, ...]) -> list[int]:
    return [i for i, r in enumerate(rows)
            if all(r.get(k) is not None and math.isfinite(float(r[k])) for k in names)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-train", type=int, default=60, help="monomers (and dimers) to train on")
    ap.add_argument("--n-test", type=int, default=60, help="monomers (and dimers) held out")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per particle")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=MODEL_PATH)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        train = simulate_population(a.n_train, 1, a.duration, a.workers, folder)
        test = simulate_population(a.n_test, SEED_OFFSET_TEST, a.duration, a.workers, folder)
    # Training reference: the median true-monomer peak of the training session (in use, the
    # session's photon-only monomers play this role).
    ref = float(np.median([p["result"].spectrum.peak_ev for p in train
                           if p["kind"] == "monomer" and p["result"].spectrum is not None]))
    rows = _rows(train, ref)
    y = [p["kind"] == "dimer" for p in train]
    both = PHOTON_FEATURES + SPECTRUM_FEATURES
    i_ph, i_sp = _complete(rows, PHOTON_FEATURES), _complete(rows, both)
    clf = Classifier(
        with_spectrum=fit_logistic([rows[i] for i in i_sp], [y[i] for i in i_sp], both),
        photons_only=fit_logistic([rows[i] for i in i_ph], [y[i] for i in i_ph],
                                  PHOTON_FEATURES))
    report = evaluate(clf, test)
    clf.provenance = {
        "script": "spad/app/calibrate.py",
        "command": "python -m spad.app.calibrate " + " ".join(argv or sys.argv[1:]),
        "date": dt.date.today().isoformat(),
        "train": {"n_monomers": a.n_train, "n_dimers": a.n_train, "duration_s": a.duration,
                  "seeds": [1, 2 * a.n_train], "reference_ev": ref},
        "held_out": report,
    }
    clf.save(a.out)
    print(json.dumps(clf.provenance, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
