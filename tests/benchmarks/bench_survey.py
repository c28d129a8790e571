"""Particles per hour of an unattended survey on the simulated rig, in real time, and whether
it found, recorded and classified the slide's particles right.

Run: ``.venv/bin/python tests/benchmarks/bench_survey.py [--particles 30] [--seed 1] [--fast]``

A simulated slide of ``--particles`` particles (half monomers, half fused dimers with necks of
4-8 nm, each with its own peak, lifetime and brightness) on the simulated rig with a stage, in
real time (the wall clock paces the photons, the camera and the stage): the whole survey as
``spad survey`` runs it: raster scan (100 nm step, 5 ms dwell), particle finding, then per
particle centring (13 x 13 points, 10 ms each), a 0.1 s check, and the recording with
stop-when-sure (p >= 0.95 for 3 updates, g2(0) error <= 0.05) capped at 30 s. Printed:

- found: candidates that match a particle of the slide within 150 nm, duplicates (two
  candidates on one particle) and empty candidates (no particle within 150 nm);
- recorded: recordings whose focus held a particle (from the slide's truth, not from the
  survey's own account), distinct particles among them;
- verdict accuracy against the slide's truth (monomer / dimer; "uncertain" counts as neither);
- wall time of the scan and of the visits, the median recording length, and particles per hour
  (recorded particles / visit wall time, the scan excluded: it is done once per slide).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--particles", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fast", action="store_true", help="not in real time")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from spad.app.acquisition import AcquisitionSettings
    from spad.app.acquisition.engine import prepare
    from spad.app.rig import open_rig
    from spad.app.survey import Survey, SurveySettings
    from spad.app.survey_scan import Area
    from spad.config import Rig, SlideSettings, StageSettings

    prepare()
    size = max(4e-6, 1e-6 * (args.particles / 0.3) ** 0.5)
    rig_settings = Rig(stage=StageSettings(), slide=SlideSettings(
        n_particles=args.particles, size_m=size, seed=args.seed))
    half = size / 2 + 0.5e-6
    area = Area(100e-6 - half, 100e-6 - half, 100e-6 + half, 100e-6 + half, 100e-9, 0.005)
    settings = SurveySettings(area=area, acquisition=AcquisitionSettings(
        duration_s=30.0, until_confident=0.95))
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_survey_"))
    times: dict[str, float] = {}
    with open_rig(rig_settings, realtime=not args.fast) as rig:
        survey = Survey(rig, out, settings)
        t0 = time.perf_counter()
        survey.add_callback(lambda ev: times.setdefault(ev.kind, time.perf_counter())
                            if ev.kind in ("candidates", "finished") else None)
        survey.add_callback(lambda ev: print(f"#{ev.data.id} {ev.data.status} "
                                             f"{ev.data.verdict} {ev.data.note or ''}",
                                             flush=True) if ev.kind == "particle" else None)
        report = survey.run()
        t_end = time.perf_counter()
        truth = rig.slide.particles
        recorded = rig.tagger.focus.history
    # candidates against the truth
    match = []
    for c in survey.candidates:
        d = [np.hypot(p.x_m - c.x_m, p.y_m - c.y_m) for p in truth]
        k = int(np.argmin(d))
        match.append(k if d[k] < 150e-9 else None)
    found = {k for k in match if k is not None}
    duplicates = sum(1 for k in found if match.count(k) > 1)
    empty = match.count(None)
    # verdicts of the recorded particles against the truth
    right = wrong = uncertain = 0
    for c, k in zip(survey.candidates, match, strict=True):
        if c.status != "done" or k is None:
            continue
        if c.verdict == truth[k].kind:
            right += 1
        elif c.verdict in ("monomer", "dimer"):
            wrong += 1
        else:
            uncertain += 1
    lengths = [r["recorded_s"] for r in survey.records.values() if r.get("recorded_s")]
    visit_s = t_end - times["candidates"]
    result = {
        "particles_on_slide": len(truth), "candidates": len(survey.candidates),
        "found": len(found), "duplicates": duplicates, "empty_candidates": empty,
        "recordings": len(recorded), "recordings_of_nothing": recorded.count(None),
        "distinct_particles_recorded": len({k for k in recorded if k is not None}),
        "done": report["done"], "skipped": report["skipped"], "failed": report["failed"],
        "verdict_right": right, "verdict_wrong": wrong, "verdict_uncertain": uncertain,
        "scan_wall_s": round(times["candidates"] - t0, 1), "visits_wall_s": round(visit_s, 1),
        "median_recording_s": round(float(np.median(lengths)), 1) if lengths else None,
        "particles_per_hour": round(report["done"] / visit_s * 3600, 1),
        "realtime": not args.fast, "session": str(out),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
