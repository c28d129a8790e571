"""Fit the monomer/dimer classifier on simulated populations and test it on held-out ones.

Run from the repository root (the README's figures; about 0.6 s per particle on a quiet core;
a ``--cache`` folder keeps the analysed particles in blocks, so an interrupted run resumes and a
refit after a classifier change reuses them; each analysed particle is kept with its scalar
results only, about 20 kB)::

    .venv/bin/python -m spad.app.calibrate --n-train 1300 --train-also 5000000=6500 \
        --n-test 5000 --n-study 25 --n-fast 25 --test lab --test study --test fast \
        --test-seed lab=6000000 --cache DIR --figure docs/verdict_reliability.png

The training population must be large: fitted on 250 + 250 particles, the features' weights
and the calibration's slopes moved from one such draw to the next by as much as their own size
(the lifetime's weight 0.33 or 0.57), and the probabilities stated with the spectrum came out
too cautious on a large held-out set (Hosmer-Lemeshow p = 0.006 over 5300 particles; 0.20 with
1300 + 1300).

For each particle it draws recording conditions spanning what labs record (:func:`conditions`:
1-200 kcps, 5-300 s, 1-80 MHz, lifetimes 10-80 ns, background 0-20 %, IRF 30-500 ps, T2 and
T3), simulates the particle with the spread of ``spad simulate --vary`` (peak energy, lifetime,
brightness; dimers with necks of 5.6-6.3 nm, i.e. 25-30 meV red shift), writes its particle
file and runs the same :func:`spad.analysis.particle.analyze_particle` that ``spad analyze`` runs,
fits the two models of :mod:`spad.analysis.classify` (with the spectrum, and photons only:
each feature's class distributions and a non-negative weight per feature, the blinking
statistics judged jointly) on the training population, then classifies the held-out
populations exactly as ``spad analyze`` does (session reference from the photon-only monomers)
and writes the parameters with their provenance, held-out accuracy overall and per condition
(rate, duration, repetition rate, timing mode) and calibration per probability bin (Wilson
intervals, pooled bins) to ``analysis/data/classifier.json``. The stated probability's
calibration (:attr:`spad.analysis.classify.Classifier.slopes`) is fitted to the training
particles' out-of-fold log-odds (:func:`out_of_fold`), never to a held-out set.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from spad.analysis.classify import (
    MODEL_PATH,
    PHOTON_FEATURES,
    SLOPE_KINDS,
    SPECTRUM_FEATURES,
    Classifier,
)
from spad.app.reliability import (
    MIN_PARTICLES_PER_BIN,
    hosmer_lemeshow,
    log_loss,
    pool_bins,
    reliability_bins,
    reliability_figure,
    reliability_table,
)
from spad.app.safe_output import signals_held, worker_init

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


def study_conditions(rng: np.random.Generator) -> dict[str, Any]:
    """The conditions of the study spad is built for: 5 MHz, 30-50 kcps, 30 s, lifetimes
    10-40 ns, background 0-5 %, IRF 50-300 ps, T3 or (half) T2 without sync."""
    return {"rate_cps": float(rng.uniform(30e3, 50e3)), "duration_s": 30.0,
            "rep_rate_hz": 5e6, "lifetime_ns": float(rng.uniform(10.0, 40.0)),
            "background": float(rng.uniform(0.0, 0.05)),
            "irf_fwhm_s": float(rng.uniform(50e-12, 300e-12)),
            "mode": "T2" if rng.random() < 0.5 else "T3"}


def fast_conditions(rng: np.random.Generator) -> dict[str, Any]:
    """Fast lasers: 40 or 80 MHz with bright-state lifetimes of 8-35 ns (often longer than
    the 12.5-25 ns period, so the coincidence peaks overlap), 5-100 kcps, 10-60 s, background
    0-10 %, T3 or (half) T2 without sync."""
    rate = float(np.exp(rng.uniform(np.log(5e3), np.log(100e3))))
    duration = max(5.0, min(float(rng.uniform(10.0, 60.0)), MAX_PHOTONS / rate))
    return {"rate_cps": rate, "duration_s": duration,
            "rep_rate_hz": 40e6 if rng.random() < 0.5 else 80e6,
            "lifetime_ns": float(rng.uniform(8.0, 35.0)),
            "background": float(rng.uniform(0.0, 0.1)),
            "irf_fwhm_s": float(rng.uniform(30e-12, 300e-12)),
            "mode": "T2" if rng.random() < 0.5 else "T3"}


PRESETS = {"lab": conditions, "study": study_conditions, "fast": fast_conditions}
"""Named sets of recording conditions a population can be drawn from."""


STEADY_SHARE = 0.2
"""Share of particles of either class drawn without blinking (one intensity state: a monomer
always ON, a dimer at one level). Thick-shell CdSe/CdS dots include non-blinking ones (Chen et
al., J. Am. Chem. Soc. 130, 5026 (2008); Mahler et al., Nat. Mater. 7, 659 (2008)), and the
fused dimers are grown from such dots; without them in the population an ON fraction of 1
would look like proof of a monomer. The share is a modelling choice, not a measured one."""


def is_steady(seed: int) -> bool:
    """Whether the particle of ``seed`` is drawn without blinking (share :data:`STEADY_SHARE`;
    drawn apart from the particle's own random stream, so every other draw of the seed stays
    what it was)."""
    return bool(np.random.default_rng([seed, 0x57EAD]).random() < STEADY_SHARE)


def build_particle(kind: str, seed: int, cond: dict[str, Any]) -> tuple[Any, Any]:
    """Emitters and detection for one particle under ``cond`` (see :func:`conditions`); a
    share :data:`STEADY_SHARE` of them does not blink."""
    import dataclasses

    from spad.simulators.detection import Detection
    from spad.simulators.emitter import dimer, monomer

    rng = np.random.default_rng(seed)
    neck = float(rng.uniform(5.6, 6.3)) if kind == "dimer" else None
    steady = is_steady(seed)
    if kind == "monomer":
        e = monomer(blinking=not steady, rng=rng)
    else:
        e = dimer(neck, n_levels=1 if steady else 6, rng=rng)
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


def particle_file(kind: str, seed: int, folder: str | Path,
                  preset: str = "lab") -> tuple[Path, dict[str, Any], Any]:
    """Simulate one particle under conditions drawn for ``preset`` (:data:`PRESETS`) and write
    its particle file into ``folder``; a file already there (same kind, seed and preset) is
    reused, so a population is simulated once and analysed again after a change to the
    analysis. Returns the file, the conditions and the emitter."""
    from spad.particle import write_particle
    from spad.simulators.spectrum import SpectrumSetup, spectrum_from_truth
    from spad.simulators.stream import simulate

    cond = PRESETS[preset](np.random.default_rng([seed, 77]))
    emitter, detection = build_particle(kind, seed, cond)
    path = Path(folder) / f"{preset}_{kind}_{seed}.h5"
    if not path.exists():
        sim = simulate(emitter, detection, cond["duration_s"], seed, chunk_s=1.0)
        spectrum = spectrum_from_truth(sim.truth, SpectrumSetup(exposure_s=0.08),
                                       duration_s=min(cond["duration_s"], 10.0),
                                       rng=np.random.default_rng([seed, 0x5EC7]))
        tmp = path.with_suffix(".tmp.h5")
        write_particle(tmp, sim.chunks(), sim.timing, spectrum, {"particle": kind},
                       description=f"calibration {kind} {seed}", overwrite=True)
        tmp.replace(path)   # a file interrupted half-way is never taken for a finished one
    return path, cond, emitter


def _particle(args: tuple[str, int, str, str, bool]) -> dict[str, Any]:
    """Simulate (or reuse) and analyse one particle under drawn conditions; returns features
    and truth."""
    kind, seed, folder, preset, keep = args
    from spad.analysis.particle import analyze_particle

    path, cond, emitter = particle_file(kind, seed, folder, preset)
    result = analyze_particle(path)
    # the fits and the evaluation read the scalar results only: without the traces,
    # correlograms and FLID a cached particle takes ~20 kB, not ~1 MB, so the tens of
    # thousands of particles a reliability table needs fit on disk and in memory
    result.photons = result.photons.scalars_only()
    if not keep:
        path.unlink()
    return {"kind": kind, "seed": seed, "rate": cond["rate_cps"], "conditions": cond,
            "true_peak_ev": float(emitter.peak_ev),
            "true_shift_ev": float(2.0 - emitter.peak_ev) if kind == "dimer" else 0.0,
            "result": result}


def simulate_population(n_each: int, seed0: int, workers: int, folder: str | Path,
                        preset: str = "lab", keep: bool = False) -> list[dict[str, Any]]:
    """Simulate and analyse ``n_each`` monomers and ``n_each`` dimers (``keep``: leave their
    files in ``folder`` for the next run)."""
    # Distinct seeds per particle: a monomer and a dimer drawn from the same seed would share
    # their base peak energy, pairing the populations and flattering the red-shift estimate.
    jobs = [(k, seed0 + 2 * i + (k == "dimer"), str(folder), preset, keep)
            for i in range(n_each) for k in ("monomer", "dimer")]
    # workers that end with this process, however it ends (spad.app.safe_output.worker_init)
    with ProcessPoolExecutor(max_workers=workers, initializer=worker_init) as pool:
        out = []
        with signals_held():    # the workers start here
            results = pool.map(_particle, jobs, chunksize=1)
        for i, r in enumerate(results):
            out.append(r)
            print(f"\r{i + 1}/{len(jobs)} particles", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return out


def confusion(truth: list[str], predicted: list[str]) -> dict[str, dict[str, int]]:
    """Counts of predicted labels for each true label."""
    return {t: {p: sum(1 for a, b in zip(truth, predicted, strict=True) if a == t and b == p)
                for p in ("monomer", "dimer", "uncertain")} for t in ("monomer", "dimer")}


def evaluate(clf: Classifier, pop: list[dict[str, Any]]) -> dict[str, Any]:
    """Classify a population as ``spad analyze`` does (one session: the mixture over all its
    particles sets the red shifts' reference and spread); accuracy counts 'uncertain' as
    wrong. Also: the share of verdicts among particles whose g2(0) error is below 0.1, the
    accuracy of the verdicts, and the reliability table (stated P(dimer) against the observed
    share of dimers, in bins of 0.1) and the log loss, with the spectrum and from photons
    only."""
    from spad.analysis.particle import classify_session
    from spad.app.report import red_shift

    results = [p["result"] for p in pop]
    truth = [p["kind"] for p in pop]
    out: dict[str, Any] = {"n": len(pop)}
    photon_only = [clf.classify(r.photons.features()) for r in results]
    pred = [c.label for c in photon_only]
    p_photons = [c.p_dimer for c in photon_only]
    out["photons_only"] = {"accuracy": float(np.mean([a == b for a, b in zip(truth, pred,
                                                                             strict=True)])),
                           "confusion": confusion(truth, pred),
                           "summary": summary(pop, pred, p_photons),
                           "per_condition": per_condition(pop, pred),
                           "middle_by_condition": middle_by_condition(pop, p_photons)}
    ref = classify_session(results, classifier=clf)
    pred = [r.classification.label for r in results]
    out["with_spectrum"] = {"accuracy": float(np.mean([a == b for a, b in zip(truth, pred,
                                                                              strict=True)])),
                            "confusion": confusion(truth, pred), "reference_ev": ref}
    session = results[0].session if results else None
    out["session"] = None if session is None else session.to_dict()
    p_spectrum = [r.classification.p_dimer for r in results]
    out["summary"] = summary(pop, pred, p_spectrum)
    out["per_condition"] = per_condition(pop, pred)
    out["middle_by_condition"] = middle_by_condition(pop, p_spectrum)
    y = np.array([t == "dimer" for t in truth], float)
    out["log_loss"] = log_loss(np.array(p_spectrum), y)
    out["photons_only"]["log_loss"] = log_loss(np.array(p_photons), y)
    rs = red_shift([r.record() for r in results])
    mono = [p["true_peak_ev"] for p in pop if p["kind"] == "monomer"]
    dim = [p["true_peak_ev"] for p in pop if p["kind"] == "dimer"]
    out["red_shift"] = {
        "measured_mev": rs["shift_mev"], "measured_err_mev": rs["shift_err_mev"],
        "truth_same_particles_mev": (float(np.mean(mono)) - float(np.mean(dim))) * 1e3,
        "truth_configured_mean_mev": float(np.mean([p["true_shift_ev"] for p in pop
                                                    if p["kind"] == "dimer"])) * 1e3}
    return out


def summary(pop: list[dict[str, Any]], pred: list[str],
            p_dimer: list[float | None]) -> dict[str, Any]:
    """The figures of the verdict's "done when": accuracy, share of verdicts, accuracy of the
    verdicts, share of verdicts among particles with a g2(0) error below 0.1, and the
    reliability table."""
    truth = [p["kind"] for p in pop]
    verdict = [q != "uncertain" for q in pred]
    right = [t == q for t, q in zip(truth, pred, strict=True)]
    precise = []
    for p, v in zip(pop, verdict, strict=True):
        e = p["result"].photons.g2_zero_err
        if e is not None and math.isfinite(e) and e < 0.1:
            precise.append(v)
    pd = np.array([np.nan if x is None else x for x in p_dimer], float)
    y = np.array([t == "dimer" for t in truth], float)
    bins = reliability_bins(pd, y)
    pooled = pool_bins(bins, MIN_PARTICLES_PER_BIN)
    n_v = int(sum(verdict))
    return {"n": len(pop), "accuracy": float(np.mean(right)) if right else None,
            "verdicts": n_v, "verdict_share": float(np.mean(verdict)) if verdict else None,
            "verdict_accuracy": (float(sum(r for r, v in zip(right, verdict, strict=True) if v)
                                       / n_v) if n_v else None),
            "n_g2_err_below_0.1": len(precise),
            "verdict_share_g2_err_below_0.1": float(np.mean(precise)) if precise else None,
            "reliability": bins,
            "reliability_pooled": pooled,
            "hosmer_lemeshow": hosmer_lemeshow(pooled)}


RATE_BINS_KCPS = (1, 5, 20, 60, 200)
DURATION_BINS_S = (5, 20, 60, 300)
REP_BINS_MHZ = (1, 5, 20, 80)


def _bin(value: float, edges: tuple[float, ...]) -> str:
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if value < hi or hi == edges[-1]:
            return f"{lo:g}-{hi:g}"
    return f">{edges[-1]:g}"


CONDITION_GROUPS: dict[str, Callable[[dict[str, Any]], str]] = {
    "rate_kcps": lambda c: _bin(c["rate_cps"] / 1e3, RATE_BINS_KCPS),
    "duration_s": lambda c: _bin(c["duration_s"], DURATION_BINS_S),
    "rep_rate_mhz": lambda c: _bin(c["rep_rate_hz"] / 1e6, REP_BINS_MHZ),
    "mode": lambda c: c["mode"]}
"""The groups the held-out reports break a population into: name -> the group of a
particle's recording conditions (:func:`conditions`)."""


MIDDLE = (0.05, 0.95)
"""Stated P(dimer) of the particles :func:`middle_by_condition` looks at."""


def middle_by_condition(pop: list[dict[str, Any]], p_dimer: list[float | None]
                        ) -> dict[str, Any]:
    """Calibration of the stated probabilities in the middle (:data:`MIDDLE`), per condition:
    for the particles of each repetition-rate bin, timing mode and kind of emitter (steady
    or blinking, known in simulation), their number, mean stated P(dimer), observed share of
    dimers, and ``z`` = (dimers - sum of stated p) / sqrt(sum of p (1 - p)), about N(0, 1)
    where the stated probabilities hold for that group. The reliability table pools all
    conditions; a group can be off where the pool is not (the conditions' errors cancel)."""
    groups: dict[str, dict[str, list[tuple[float, bool]]]] = {
        "rep_rate_mhz": {}, "mode": {}, "emitter": {}}
    for part, p in zip(pop, p_dimer, strict=True):
        if p is None or not MIDDLE[0] < p < MIDDLE[1]:
            continue
        c, y = part["conditions"], part["kind"] == "dimer"
        keys = {name: CONDITION_GROUPS[name](c) for name in ("rep_rate_mhz", "mode")}
        keys["emitter"] = "steady" if is_steady(part["seed"]) else "blinking"
        for name, key in keys.items():
            groups[name].setdefault(key, []).append((float(p), y))
    out: dict[str, Any] = {}
    for name, by_key in groups.items():
        out[name] = {}
        for key, items in sorted(by_key.items()):
            p = np.array([q for q, _ in items])
            y = np.array([d for _, d in items], float)
            var = float(np.sum(p * (1 - p)))
            out[name][key] = {"n": int(p.size), "stated": float(p.mean()),
                              "observed": float(y.mean()),
                              "z": float((y.sum() - p.sum()) / math.sqrt(var)) if var else None}
    return out


def per_condition(pop: list[dict[str, Any]], pred: list[str]) -> dict[str, Any]:
    """Accuracy, share of verdicts (not ``uncertain``) and accuracy of the verdicts, per rate
    bin, duration bin, repetition-rate bin and timing mode."""
    out: dict[str, Any] = {}
    for name, key in CONDITION_GROUPS.items():
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


# The feature models: transform, its scale, group, error floor (see
# spad.analysis.classify.FeatureModel). The floors: no measurement is exact, and a zero error
# would make any value decisive evidence.
FEATURE_SETUP: dict[str, dict[str, Any]] = {
    "g2_zero": {"group": "g2", "floor": 0.01},
    "g2_zero_gated": {"group": "g2", "floor": 0.01},
    # 1 % of the lifetime: the TCSPC bin and IRF shape limit a decay fit at about that
    "lifetime_ns": {"transform": "log", "scale": 0.05, "floor": 0.1},
    # one block of the 20 the trace is judged in (spad.analysis.blinking.ON_FRACTION_RESOLUTION)
    # 1 exactly: no OFF state found (FeatureModel.exact)
    "on_fraction": {"floor": 0.05, "exact": 1.0},
    # steady emitters measure near 0 (and below it by noise); blinking ones spread over decades
    "intensity_excess_var": {"transform": "asinh", "scale": 0.01, "floor": 0.005,
                             # grey OFF states of real dots (FeatureModel.grey_off)
                             "grey_off": 0.25},
    # about a pixel of the spectrograph (~1 meV at 620 nm)
    "fwhm_mev": {"floor": 1.0},
    "shift_mev": {"floor": 1.0},
}

MIN_SPREAD: dict[str, float] = {
    # biexciton/exciton yield ratios of single dots spread over 0.02-0.13 (Nair, Zhao &
    # Bawendi, Nano Lett. 11, 1136 (2011)): g2(0) of either class is no sharper than that
    "g2_zero": 0.03, "g2_zero_gated": 0.03,
    "lifetime_ns": 0.1,            # 10 % particle to particle (log scale)
    # blinking statistics spread from dot to dot beyond what the simulated population holds
    "on_fraction": 0.15, "intensity_excess_var": 0.2,
    # single-particle line widths at room temperature span 60-80 meV
    "fwhm_mev": 5.0, "shift_mev": 5.0,
}
"""Smallest particle-to-particle spread of each feature's class distribution (transformed
scale): physics, not the simulator, sets how sharp a class can be."""


def _rows(pop: list[dict[str, Any]], ref_ev: float) -> list[dict[str, Any]]:
    """Features and their errors of each particle, the red shift against ``ref_ev``."""
    rows = []
    for p in pop:
        r = p["result"]
        f = r.photons.features()
        sp = r.spectrum
        ok = sp is not None and math.isfinite(sp.peak_ev)
        f["shift_mev"] = (ref_ev - sp.peak_ev) * 1e3 if ok else None
        f["shift_err_mev"] = (sp.peak_ev_err * 1e3 if ok and sp.peak_ev_err is not None
                              else None)
        f["fwhm_mev"] = sp.fwhm_mev if ok else None
        f["fwhm_err_mev"] = sp.errors.get("fwhm_mev") if ok else None
        rows.append(f)
    return rows


def training_reference(train: list[dict[str, Any]]) -> float:
    """The red shift's reference in training: the median measured peak (eV) of the training
    monomers (in use, the session's mixture sets it). Finite peaks only: one spectrum without
    a peak made the median NaN, and with it every red shift, so that the red shift silently
    dropped out of the model."""
    return float(np.median([p["result"].spectrum.peak_ev for p in train
                            if p["kind"] == "monomer" and p["result"].spectrum is not None
                            and math.isfinite(p["result"].spectrum.peak_ev)]))


def fit_classifier(train: list[dict[str, Any]], outliers: float = 0.03,
                   uncertain_below: float = 0.95) -> Classifier:
    """Fit each feature's class distributions (with each particle's own error) and the
    weights of the features' evidence on a training population."""
    from spad.analysis.classify import (
        FeatureModel,
        background_measured,
        fit_class,
        fit_class_given,
        fit_class_with,
        fit_share_given,
        fit_weights,
    )
    from spad.analysis.schema import FEATURE_ERRORS

    ref = training_reference(train)
    rows = _rows(train, ref)
    y = np.array([p["kind"] == "dimer" for p in train])
    steady_all = np.array([is_steady(p["seed"]) for p in train])
    models = []
    for name in (*PHOTON_FEATURES, *SPECTRUM_FEATURES):
        base = FeatureModel(name, FEATURE_ERRORS[name], (0.0, 1.0), (0.0, 1.0), 1.0,
                            **FEATURE_SETUP.get(name, {}))
        xs, es, ys, meas, st, ons, recs = [], [], [], [], [], [], []
        for row, is_d, steady in zip(rows, y, steady_all, strict=True):
            v, e = row.get(name), row.get(base.error)
            if v is None or e is None or not (math.isfinite(v) and math.isfinite(e)):
                continue
            x_t, e_t = base.measured(float(v), float(e))
            xs.append(x_t)
            es.append(e_t)
            ys.append(is_d)
            meas.append(background_measured(row.get("g2_correction")))
            st.append(steady)
            on = row.get("on_fraction")
            ons.append(float(on) if on is not None else math.nan)
            recs.append((row.get("count_rate_cps") or math.nan, row.get("duration_s") or math.nan))
        x, e, yy = np.array(xs), np.array(es), np.array(ys, bool)
        meas_a = np.array(meas, bool)
        st_a = np.array(st, bool)
        on_a = np.array(ons, float)
        rec_a = np.array(recs, float).reshape(-1, 2)
        # a value known to worse than 5 times the population's interquartile range says
        # nothing about the classes, and one wild value (a T2 fit's g2(0) of 1e10 +/- 1e19)
        # would set the outlier span and wreck the class fits
        if x.size:
            q25, q75 = np.quantile(x, [0.25, 0.75])
            useful = e < 5.0 * max(float(q75 - q25), 1e-9)
            x, e, yy, meas_a, st_a, on_a, rec_a = (x[useful], e[useful], yy[useful],
                                                   meas_a[useful], st_a[useful], on_a[useful],
                                                   rec_a[useful])
        if yy.sum() < 5 or (~yy).sum() < 5:
            continue
        lo, hi = np.quantile(x, [0.005, 0.995])
        base.span = float(max(2.0 * (hi - lo), 1e-6))
        floor = MIN_SPREAD.get(name, 0.0)
        # g2(0): the classes from the particles whose background was measured; the others'
        # extra scatter is their systematic error
        ok = meas_a if name in SYSTEMATIC_FEATURES else np.ones(x.size, bool)
        if min((ok & yy).sum(), (ok & ~yy).sum()) < 5:
            ok = np.ones(x.size, bool)
        if name in STEADY_FEATURES and st_a.sum() >= 5:
            # the steady particles of both classes are one component of each class's
            # mixture; the class normals describe the blinking rest
            mu_s, sd_s = fit_class(x[st_a], e[st_a], outliers, base.span)
            base.steady = (STEADY_SHARE, mu_s, max(sd_s, floor))
            ok = ok & ~st_a
        shares, given = [], []
        for cls, sel in (("monomer", ~yy & ok), ("dimer", yy & ok)):
            if base.exact is not None and base.steady is not None:
                # the share of the class's blinking particles reading the exact value
                # (Laplace's rule: never 0), the class normal from the others
                at = sel & (x == base.exact)
                shares.append((int(at.sum()) + 1) / (int(sel.sum()) + 2))
                known = sel & np.all(np.isfinite(rec_a) & (rec_a > 0), axis=1)
                given.append(fit_share_given(x[known] == base.exact, rec_a[known, 0],
                                             rec_a[known, 1]))
                mu, sd = fit_class(x[sel & ~at], e[sel & ~at], outliers, base.span)
            elif base.steady is not None:
                # some blinking particles read like steady ones (Classifier._joint_steady)
                mu, sd, q = fit_class_with(x[sel], e[sel], outliers, base.span,
                                           base.steady[1:])
                shares.append(q)
            else:
                mu, sd = fit_class(x[sel], e[sel], outliers, base.span)
            setattr(base, cls, (mu, max(sd, floor)))
        if shares:
            base.steady_like = (shares[0], shares[1])
        if len(given) == 2 and None not in given:
            base.steady_like_given = (given[0], given[1])
        if name in ON_OFF_FEATURES:
            # the blinking particles' classes given their ON fraction (FeatureModel.on_off)
            fits = []
            known = ok & np.isfinite(on_a)
            for sel in (~yy & known, yy & known):
                if sel.sum() < 10:
                    break
                u = np.array([base.telegraph(f) for f in on_a[sel]])
                a, b, sd = fit_class_given(x[sel], e[sel], u, outliers, base.span)
                fits.append((a, b, max(sd, floor)))
            if len(fits) == 2:
                base.on_off = (fits[0], fits[1])
        if name in SYSTEMATIC_FEATURES and (~ok).sum() >= 5:
            base.systematic = _systematic(base, x[~ok], e[~ok], yy[~ok], outliers)
        models.append(base)
    clf = Classifier(models, uncertain_below, outliers)
    llr = np.array([[v for v in clf.log_ratios(row)[0].values()] for row in rows])
    # the blinking statistics are judged jointly (Classifier._joint_steady) and split by the
    # chain rule: one weight for all of them, or a steady emitter would not stay at 0
    blink = np.array([m.steady is not None for m in models])
    cols = [llr[:, ~blink]] + ([llr[:, blink].sum(axis=1, keepdims=True)] if blink.any()
                               else [])
    w = fit_weights(np.hstack(cols), y,
                    upper=[2.0] * int((~blink).sum()) + [BLINKING_MAX_WEIGHT] * bool(blink.any()))
    weights = np.empty(len(models))
    weights[~blink] = w[:(~blink).sum()]
    weights[blink] = w[-1] if blink.any() else 0.0
    for m, wm in zip(models, weights, strict=True):
        m.weight = float(wm)
    clf.provenance = {"train_reference_ev": ref}
    return clf


def platt_fit(z: np.ndarray, is_dimer: np.ndarray) -> tuple[float, float]:
    """Slope and offset of the logistic map ``p = 1 / (1 + exp(-(a z + b)))`` from summed
    log-odds ``z`` to P(dimer), by maximum likelihood (Platt scaling: Platt, "Probabilistic
    outputs for support vector machines", in Advances in Large Margin Classifiers (1999);
    Niculescu-Mizil & Caruana, ICML 2005, "Predicting good probabilities with supervised
    learning"). ``a = 1, b = 0`` means the stated probabilities need no correction."""
    from scipy.optimize import minimize

    z, y = np.asarray(z, float), np.asarray(is_dimer, float)

    def nll(t: np.ndarray) -> float:
        s = t[0] * z + t[1]
        return float(np.sum(np.logaddexp(0.0, s) - y * s))

    a, b = minimize(nll, [1.0, 0.0], method="Nelder-Mead").x
    return float(a), float(b)


def out_of_fold(train: list[dict[str, Any]], folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """The calibration of the stated probability, from training particles no fit saw: each
    fold's particles classified (with their spectra, reference from the training monomers, and
    from photons only) by a classifier fitted on the other folds, and a slope per kind of
    evidence (:data:`spad.analysis.classify.SLOPE_KINDS`) fitted to these out-of-fold log-odds
    (:func:`slopes_fit`; fitting the map on data the model did not see is Platt's advice).
    Returns the slopes (by kind, :attr:`Classifier.slopes`) and, before and
    after them, the pooled reliability bins and log loss out of fold, and the Platt map left
    to fit after them (:func:`platt_fit`; slope 1 and offset 0 when nothing is left). The
    held-out sets are never used here."""
    rng = np.random.default_rng(seed)
    fold = rng.permutation(np.arange(len(train)) % folds)
    ref = training_reference(train)
    rows = _rows(train, ref)
    # each particle's log-odds split by kind of evidence, the split Classifier.classify
    # applies the slopes by
    kinds = len(SLOPE_KINDS)
    z = {"with_spectrum": np.zeros((len(train), kinds)),
         "photons_only": np.zeros((len(train), kinds))}
    for k in range(folds):
        clf = fit_classifier([p for p, f in zip(train, fold, strict=True) if f != k])
        for i in np.flatnonzero(fold == k):
            photons = {n: v for n, v in rows[i].items() if n not in SPECTRUM_FEATURES}
            for name, values in (("with_spectrum", rows[i]), ("photons_only", photons)):
                ev = clf.classify(values).evidence
                for f in clf.features:
                    z[name][i, SLOPE_KINDS.index(f.kind())] += ev[f.name]
    y = np.array([p["kind"] == "dimer" for p in train], float)
    both = np.vstack([z["with_spectrum"], z["photons_only"]])
    slopes = [float(v) for v in slopes_fit(both, np.r_[y, y])]
    a, b = platt_fit(both @ slopes, np.r_[y, y])
    out: dict[str, Any] = {"folds": folds, "slopes": dict(zip(SLOPE_KINDS, slopes, strict=True)),
                           "platt_after_slopes": {"slope": a, "offset": b}}
    for name, zz in z.items():
        p = 1.0 / (1.0 + np.exp(-np.clip(zz.sum(axis=1), -500, 500)))
        q = 1.0 / (1.0 + np.exp(-np.clip(zz @ slopes, -500, 500)))
        out[name] = {"reliability_pooled": pool_bins(reliability_bins(p, y),
                                                     MIN_PARTICLES_PER_BIN),
                     "reliability_pooled_calibrated": pool_bins(reliability_bins(q, y),
                                                                MIN_PARTICLES_PER_BIN),
                     "log_loss": log_loss(p, y), "log_loss_calibrated": log_loss(q, y)}
    return out


def slopes_fit(z: np.ndarray, is_dimer: np.ndarray) -> np.ndarray:
    """Slopes ``a`` of ``p = 1 / (1 + exp(-(z @ a)))`` (``z``: one column per kind of
    evidence) by maximum likelihood, without intercept (no evidence stays at p = 0.5)."""
    from scipy.optimize import minimize

    z, y = np.asarray(z, float), np.asarray(is_dimer, float)

    def nll(a: np.ndarray) -> tuple[float, np.ndarray]:
        s = z @ a
        return (float(np.sum(np.logaddexp(0.0, s) - y * s)),
                z.T @ (1.0 / (1.0 + np.exp(-s)) - y))

    return minimize(nll, np.ones(z.shape[1]), jac=True, method="L-BFGS-B",
                    bounds=[(0.0, 10.0)] * z.shape[1]).x


BLINKING_MAX_WEIGHT = 0.8
"""Largest fitted weight of the blinking statistics' joint evidence. Their class distributions
come from the simulator's blinking model, and real dots spread from dot to dot beyond it (a
real monomer under strong excitation can sit at an ON fraction of 0.3). Fitted freely the
weight rose to 1.6 and an ON fraction of 0.3 alone gave p = 0.99; at 1 one alone still reached
0.96. At 0.8 no ON fraction alone gives p >= 0.93. The calibration's slope on the blinking
evidence (out of fold about 4.6, :func:`out_of_fold`) then states the probability the
simulated population supports, and a verdict must also hold at this weight
(:meth:`spad.analysis.classify.Classifier.classify`): so no ON fraction alone gives a verdict,
the guarantee of tests/test_classify.py, while the stated probability is calibrated. Verdicts
from blinking statistics alone were all right on held-out data (65 of 65, lab), but the 95 %
Wilson bound, 0.944, does not reach the 0.95 a verdict states."""

STEADY_FEATURES = ("on_fraction", "intensity_excess_var")
"""Blinking statistics: modelled per class as a mixture of the steady share (the same in both
classes, :data:`STEADY_SHARE`) and the blinking rest (FeatureModel.steady)."""

ON_OFF_FEATURES = ("intensity_excess_var",)
"""Blinking statistics whose class distribution is fitted given the particle's ON fraction
(FeatureModel.on_off)."""

SYSTEMATIC_FEATURES = ("g2_zero", "g2_zero_gated")
"""Features whose error gets a systematic term when the background was not measured."""


def _systematic(model: Any, x: np.ndarray, e: np.ndarray, is_dimer: np.ndarray,
                outliers: float) -> float:
    """The standard error to add to values measured without a background measurement: by
    maximum likelihood of those values under their own class distribution with the error
    widened by it."""
    from scipy.optimize import minimize_scalar

    flat = outliers / model.span

    def nll(s: float) -> float:
        total = 0.0
        for sel, (mu, sd) in ((~is_dimer, model.monomer), (is_dimer, model.dimer)):
            var = sd ** 2 + e[sel] ** 2 + s ** 2
            dens = np.exp(-0.5 * (x[sel] - mu) ** 2 / var) / np.sqrt(2 * np.pi * var)
            total -= float(np.sum(np.log((1 - outliers) * dens + flat)))
        return total

    return float(minimize_scalar(nll, bounds=(0.0, 2.0), method="bounded").x)


def load_population(preset: str, n_each: int, seed0: int, workers: int, cache: Path | None,
                    fresh: bool = False) -> list[dict[str, Any]]:
    """Simulate (or reuse the particle files in ``cache``) and analyse a population; with a
    cache the analysed population is kept too (``fresh``: analyse again)."""
    import pickle

    if cache is None:
        with tempfile.TemporaryDirectory() as folder:
            return simulate_population(n_each, seed0, workers, folder, preset)
    cache.mkdir(parents=True, exist_ok=True)
    whole = cache / f"analysed_{preset}_{seed0}_{n_each}.pkl"
    if whole.exists() and not fresh:
        return pickle.loads(whole.read_bytes())
    # analysed in blocks of CACHE_BLOCK monomers and dimers, each kept as soon as it is done:
    # an interrupted run of a large population resumes at the first missing block (a block's
    # particles are those of the whole run: seeds seed0 + 2 i and seed0 + 2 i + 1)
    pop: list[dict[str, Any]] = []
    for start in range(0, n_each, CACHE_BLOCK):
        m = min(CACHE_BLOCK, n_each - start)
        pkl = cache / f"analysed_{preset}_{seed0 + 2 * start}_{m}.pkl"
        if pkl.exists() and not fresh:
            pop.extend(pickle.loads(pkl.read_bytes()))
            continue
        block = simulate_population(m, seed0 + 2 * start, workers, cache, preset, keep=True)
        pkl.write_bytes(pickle.dumps(block))
        pop.extend(block)
    return pop


CACHE_BLOCK = 50
"""Monomers (and as many dimers) per cached block of an analysed population."""


TEST_SEEDS = {"lab": SEED_OFFSET_TEST, "study": 2_000_000, "fast": 3_000_000}
"""First seed of each held-out population (training uses the lab conditions from seed 1);
``--test-seed`` draws a population from another base."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-train", type=int, default=60, help="monomers (and dimers) to train on")
    ap.add_argument("--n-test", type=int, default=60, help="monomers (and dimers) held out")
    ap.add_argument("--test", action="append", choices=sorted(PRESETS),
                    help="held-out condition sets (repeatable; default lab); study and fast "
                         "have --n-study / --n-fast particles of each kind")
    ap.add_argument("--test-seed", action="append", default=[], metavar="NAME=SEED",
                    help="first seed of a held-out population (default: lab 1000000, study "
                         "2000000, fast 3000000); a new base draws particles no run saw")
    ap.add_argument("--train-also", action="append", default=[], metavar="SEED=N",
                    help="train on N more monomers (and dimers) of lab conditions from SEED "
                         "as well (repeatable), e.g. a held-out population already looked "
                         "at: a held-out set studied for a fix no longer tests it")
    ap.add_argument("--n-study", type=int, default=10)
    ap.add_argument("--n-fast", type=int, default=15)
    ap.add_argument("--evaluate-only", action="store_true",
                    help="evaluate the classifier at --out on the held-out sets, fit nothing")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=None,
                    help="keep particle files and analysed populations here and reuse them")
    ap.add_argument("--fresh", action="store_true", help="analyse cached files again")
    ap.add_argument("--figure", type=Path, default=None, help="write the reliability diagram")
    ap.add_argument("--out", type=Path, default=MODEL_PATH)
    a = ap.parse_args(argv)
    tests = a.test or ["lab"]
    sizes = {"lab": a.n_test, "study": a.n_study, "fast": a.n_fast}
    seeds = dict(TEST_SEEDS)
    for item in a.test_seed:
        name, _, value = item.partition("=")
        if name not in PRESETS or not value.isdigit() or int(value) < 2 * a.n_train + 1:
            ap.error(f"--test-seed {item}: want NAME=SEED with NAME one of {sorted(PRESETS)} "
                     f"and SEED above the training seeds (1-{2 * a.n_train})")
        seeds[name] = int(value)
    also = []
    for item in a.train_also:
        seed, _, n = item.partition("=")
        if not (seed.isdigit() and n.isdigit() and int(n) > 0
                and int(seed) >= 2 * a.n_train + 1):
            ap.error(f"--train-also {item}: want SEED=N, SEED above the training seeds "
                     f"(1-{2 * a.n_train})")
        also.append((int(seed), int(n)))
    spans = [(1, 2 * a.n_train)] + [(s0, s0 + 2 * n - 1) for s0, n in also]
    for name in tests:
        lo, hi = seeds[name], seeds[name] + 2 * sizes[name] - 1
        if any(lo <= b and a0 <= hi for a0, b in spans):
            ap.error(f"held-out {name} seeds {lo}-{hi} overlap the training seeds {spans}")
    if a.evaluate_only:
        clf = Classifier.load(a.out)
    else:
        train = load_population("lab", a.n_train, 1, a.workers, a.cache, a.fresh)
        for seed0, n in also:
            train += load_population("lab", n, seed0, a.workers, a.cache, a.fresh)
        clf = fit_classifier(train)
        oof = out_of_fold(train)
        clf.slopes = tuple(oof["slopes"][k] for k in SLOPE_KINDS)
        print("out of fold (training):", json.dumps(oof), file=sys.stderr)
    reports = {name: evaluate(clf, load_population(name, sizes[name], seeds[name],
                                                   a.workers, a.cache, a.fresh))
               for name in tests}
    for name, rep in reports.items():
        rep["first_seed"] = seeds[name]
    for name, rep in reports.items():
        print(name, json.dumps(rep["summary"]), file=sys.stderr)
        print(name, "photons only", json.dumps(rep["photons_only"]["summary"]), file=sys.stderr)
    if a.figure is not None:
        reliability_figure(reports, a.figure)
    print(reliability_table(reports))
    for name, rep in reports.items():
        for which, summ in (("with spectrum", rep["summary"]),
                            ("photons only", rep["photons_only"]["summary"])):
            hl = summ["hosmer_lemeshow"]
            if hl["p_value"] is not None:
                print(f"{name} ({rep['n']}), {which}: Hosmer-Lemeshow {hl['statistic']:.1f} "
                      f"over {hl['bins']} bins, p = {hl['p_value']:.2f}")
    for name, rep in reports.items():
        for which, mid in (("with spectrum", rep["middle_by_condition"]),
                           ("photons only", rep["photons_only"]["middle_by_condition"])):
            for cond, groups in mid.items():
                for key, g in groups.items():
                    z = "n/a" if g["z"] is None else f"{g['z']:+.1f}"
                    print(f"{name}, {which}, stated P(dimer) {MIDDLE[0]:g}-{MIDDLE[1]:g}, "
                          f"{cond} {key}: {g['n']} particles, stated {g['stated']:.2f}, "
                          f"observed {g['observed']:.2f}, z = {z}")
    if not a.evaluate_only:
        clf.provenance.update({
            "script": "spad/app/calibrate.py",
            "command": "python -m spad.app.calibrate " + " ".join(argv or sys.argv[1:]),
            "date": dt.date.today().isoformat(),
            "train": {"n_monomers": len(train) // 2, "n_dimers": len(train) // 2,
                      "conditions": conditions.__doc__.split("\n\n")[1].strip(),
                      "max_photons": MAX_PHOTONS, "seeds": [list(sp) for sp in spans]},
            "held_out": reports,
        })
        clf.provenance["out_of_fold"] = oof
        clf.save(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
