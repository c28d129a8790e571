"""Fit the monomer/dimer classifier on simulated populations and test it on a held-out one.

Run from the repository root (~4 min on 2 cores at load ~4)::

    .venv/bin/python -m spad.app.calibrate --n-train 80 --n-test 80

For each particle it draws recording conditions spanning what labs record (:func:`conditions`:
1-200 kcps, 5-300 s, 1-80 MHz, lifetimes 10-80 ns, background 0-20 %, IRF 30-500 ps, T2 and
T3), simulates the particle with the spread of ``spad simulate --vary`` (peak energy, lifetime,
brightness; dimers with necks of 5.6-6.3 nm, i.e. 25-30 meV red shift), writes its particle
file and runs the same :func:`spad.analysis.particle.analyze_particle` that ``spad analyze`` runs,
fits the two logistic models of :mod:`spad.analysis.classify` on the training
population, then classifies the held-out population exactly as ``spad analyze`` does (session
reference from the photon-only monomers) and writes the parameters with their provenance and
held-out accuracy, overall and per condition (rate, duration, repetition rate, timing mode), to
``analysis/data/classifier.json``.
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

from spad.analysis.classify import (
    MODEL_PATH,
    PHOTON_FEATURES,
    SPECTRUM_FEATURES,
    Classifier,
    fit_logistic,
)
from spad.app.safe_output import worker_init

SEED_OFFSET_TEST = 1_000_000


MAX_PHOTONS = 200_000
"""Photons per simulated particle at most: the duration is shortened for bright particles so a
population runs in minutes (rate x duration above this is not covered)."""


def conditions(rng: np.random.Generator) -> dict[str, Any]:
    """Recording conditions drawn for one particle: what labs record.

    Detected rate 1-200 kcps and duration 5-300 s (log-uniform; the duration cut to keep at
    most :data:`MAX_PHOTONS`), repetition rate 1-80 MHz (log-uniform), bright-state lifetime
    scaled to 10-80 ns, uncorrelated background 0-20 % of the counts (dark counts), IRF
    (Gaussian jitter) 30-500 ps, T3 or (30 %) T2. T2 streams carry no sync events (a T2 file
    with the sync of a MHz laser in it is hundreds of millions of records): no decay, so no
    lifetime and no verdict from the photon model, which needs one.
    """
    rate = float(np.exp(rng.uniform(np.log(1e3), np.log(200e3))))
    duration = float(np.exp(rng.uniform(np.log(5.0), np.log(300.0))))
    duration = max(5.0, min(duration, MAX_PHOTONS / rate))
    return {"rate_cps": rate, "duration_s": duration,
            "rep_rate_hz": float(np.exp(rng.uniform(np.log(1e6), np.log(80e6)))),
            "lifetime_ns": float(rng.uniform(10.0, 80.0)),
            "background": float(rng.uniform(0.0, 0.2)),
            "irf_fwhm_s": float(rng.uniform(30e-12, 500e-12)),
            "mode": "T2" if rng.random() < 0.3 else "T3"}


def build_particle(kind: str, seed: int, cond: dict[str, Any]) -> tuple[Any, Any]:
    """Emitters and detection for one particle under ``cond`` (see :func:`conditions`)."""
    import dataclasses

    from spad.simulators.detection import Detection
    from spad.simulators.emitter import dimer, monomer

    rng = np.random.default_rng(seed)
    neck = float(rng.uniform(5.6, 6.3)) if kind == "dimer" else None
    e = monomer(rng=rng) if kind == "monomer" else dimer(neck, rng=rng)
    # bright state's mean lifetime scaled to the drawn one (every state by the same factor)
    tau_on = max(s.mean_lifetime_s for s in e.states)
    f = cond["lifetime_ns"] * 1e-9 / tau_on
    states = tuple(dataclasses.replace(s, lifetimes_s=tuple(t * f for t in s.lifetimes_s))
                   for s in e.states)
    e = dataclasses.replace(e, states=states, rep_rate_hz=cond["rep_rate_hz"])
    period = 1.0 / cond["rep_rate_hz"]
    d = Detection(mode=cond["mode"], jitter_fwhm_s=cond["irf_fwhm_s"],
                  bin_s=max(16e-12, period / 30000))
    bright = float(e.state_moments(d.efficiency)[0].max() * e.rep_rate_hz)
    signal = cond["rate_cps"] * (1.0 - cond["background"])
    collection = min(1.0, d.collection_efficiency * signal / bright)
    dark = cond["rate_cps"] * cond["background"] / 2
    return e, d.replace(collection_efficiency=collection, dark_rate_hz=dark)


def _particle(args: tuple[str, int, float, str]) -> dict[str, Any]:
    """Simulate and analyse one particle under drawn conditions; returns features and truth."""
    kind, seed, _, folder = args
    from spad.analysis.particle import analyze_particle
    from spad.particle import write_particle
    from spad.simulators.spectrum import SpectrumSetup, spectrum_from_truth
    from spad.simulators.stream import simulate

    cond = conditions(np.random.default_rng([seed, 77]))
    emitter, detection = build_particle(kind, seed, cond)
    sim = simulate(emitter, detection, cond["duration_s"], seed, chunk_s=1.0)
    spectrum = spectrum_from_truth(sim.truth, SpectrumSetup(exposure_s=0.08),
                                   duration_s=min(cond["duration_s"], 10.0),
                                   rng=np.random.default_rng([seed, 0x5EC7]))
    path = Path(folder) / f"{kind}_{seed}.h5"
    write_particle(path, sim.chunks(), sim.timing, spectrum, {"particle": kind},
                   description=f"calibration {kind} {seed}", overwrite=True)
    result = analyze_particle(path)
    path.unlink()
    return {"kind": kind, "seed": seed, "rate": cond["rate_cps"], "conditions": cond,
            "true_peak_ev": float(emitter.peak_ev),
            "true_shift_ev": float(2.0 - emitter.peak_ev) if kind == "dimer" else 0.0,
            "result": result}


def simulate_population(n_each: int, seed0: int, duration: float, workers: int,
                        folder: str) -> list[dict[str, Any]]:
    """Simulate and analyse ``n_each`` monomers and ``n_each`` dimers."""
    # Distinct seeds per particle: a monomer and a dimer drawn from the same seed would share
    # their base peak energy, pairing the populations and flattering the red-shift estimate.
    jobs = [(k, seed0 + 2 * i + (k == "dimer"), duration, folder)
            for i in range(n_each) for k in ("monomer", "dimer")]
    # workers that end with this process, however it ends (spad.app.safe_output.worker_init)
    with ProcessPoolExecutor(max_workers=workers, initializer=worker_init) as pool:
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
    from spad.analysis.particle import classify_session
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
    out["per_condition"] = per_condition(pop, pred)
    reasons: dict[str, int] = {}
    for r in results:
        c = r.classification
        if c is not None and c.reason:
            key = c.reason.split(" (")[0] if "likelier" not in c.reason else "below threshold"
            reasons[key] = reasons.get(key, 0) + 1
    out["uncertain_reasons"] = reasons
    rs = red_shift([r.record() for r in results])
    mono = [p["true_peak_ev"] for p in pop if p["kind"] == "monomer"]
    dim = [p["true_peak_ev"] for p in pop if p["kind"] == "dimer"]
    out["red_shift"] = {
        "measured_mev": rs["shift_mev"], "measured_err_mev": rs["shift_err_mev"],
        "truth_same_particles_mev": (float(np.mean(mono)) - float(np.mean(dim))) * 1e3,
        "truth_configured_mean_mev": float(np.mean([p["true_shift_ev"] for p in pop
                                                    if p["kind"] == "dimer"])) * 1e3}
    return out


RATE_BINS_KCPS = (1, 5, 20, 60, 200)
DURATION_BINS_S = (5, 20, 60, 300)
REP_BINS_MHZ = (1, 5, 20, 80)


def _bin(value: float, edges: tuple[float, ...]) -> str:
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if value < hi or hi == edges[-1]:
            return f"{lo:g}-{hi:g}"
    return f">{edges[-1]:g}"


def per_condition(pop: list[dict[str, Any]], pred: list[str]) -> dict[str, Any]:
    """Accuracy, share of verdicts (not ``uncertain``) and accuracy of the verdicts, per rate
    bin, duration bin, repetition-rate bin and timing mode."""
    keys = {"rate_kcps": lambda c: _bin(c["rate_cps"] / 1e3, RATE_BINS_KCPS),
            "duration_s": lambda c: _bin(c["duration_s"], DURATION_BINS_S),
            "rep_rate_mhz": lambda c: _bin(c["rep_rate_hz"] / 1e6, REP_BINS_MHZ),
            "mode": lambda c: c["mode"]}
    out: dict[str, Any] = {}
    for name, key in keys.items():
        groups: dict[str, list[tuple[str, str]]] = {}
        for p, label in zip(pop, pred, strict=True):
            groups.setdefault(key(p["conditions"]), []).append((p["kind"], label))
        out[name] = {
            g: {"n": len(v), "accuracy": float(np.mean([t == q for t, q in v])),
                "verdicts": float(np.mean([q != "uncertain" for _, q in v])),
                "verdict_accuracy": (float(np.mean([t == q for t, q in v if q != "uncertain"]))
                                     if any(q != "uncertain" for _, q in v) else None)}
            for g, v in sorted(groups.items())}
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
    ap.add_argument("--duration", type=float, default=0.0,
                    help="unused: each particle's duration is drawn (see conditions())")
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
    ungated = tuple(f for f in PHOTON_FEATURES if f != "g2_zero_gated")
    i_ug = _complete(rows, ungated)
    clf = Classifier(
        with_spectrum=fit_logistic([rows[i] for i in i_sp], [y[i] for i in i_sp], both),
        photons_only=fit_logistic([rows[i] for i in i_ph], [y[i] for i in i_ph],
                                  PHOTON_FEATURES),
        ungated=fit_logistic([rows[i] for i in i_ug], [y[i] for i in i_ug], ungated))
    report = evaluate(clf, test)
    clf.provenance = {
        "script": "spad/app/calibrate.py",
        "command": "python -m spad.app.calibrate " + " ".join(argv or sys.argv[1:]),
        "date": dt.date.today().isoformat(),
        "train": {"n_monomers": a.n_train, "n_dimers": a.n_train,
                  "conditions": conditions.__doc__.split("\n\n")[1].strip(),
                  "max_photons": MAX_PHOTONS, "seeds": [1, 2 * a.n_train], "reference_ev": ref},
        "held_out": report,
    }
    clf.save(a.out)
    print(json.dumps(clf.provenance, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
