"""Particles per hour of an unattended survey on the simulated rig, and whether it found,
recorded and classified the slide's particles right.

Run: ``.venv/bin/python tests/benchmarks/bench_survey.py [--particles 30] [--seed 1] [--fast]
[--step NM] [--dwell MS] [--out DIR]``

A simulated slide of ``--particles`` particles (half monomers, half fused dimers with necks of
4-8 nm, each with its own peak, lifetime and brightness) on the simulated rig with a stage,
surveyed as ``spad survey`` does it with its defaults: raster scan, particle finding, then per
particle centring (13 x 13 points, 50 nm apart, 10 ms each), a 0.1 s check, and the recording
with stop-when-sure (p >= 0.95 for 3 updates, g2(0) error <= 0.05) capped at 30 s.

In real time (the default) the wall clock paces the photons, the camera and the stage, and the
live analysis runs in its worker process as at the microscope: the rate measured is what a user
gets on this machine. ``--fast`` runs on the rig's simulated clock with the live analysis in
step with the photons: the same decisions as real time on a machine fast enough, reproducible,
in a fraction of the time; its times are the simulated clock's (the instruments' time: photons,
stage moves and settling; computation takes none).

Printed, as it goes: the scan (pixels, time, how much of it dwell and stage settling), then one
line per particle (truth, verdict, centring time, recorded time, why it stopped, time to the
next particle), and at the end a summary and one JSON object:

- found: candidates that match a particle of the slide within 150 nm, duplicates (two
  candidates on one particle) and empty candidates (no particle within 150 nm);
- recorded: recordings whose focus held a particle (from the slide's truth, not from the
  survey's own account), distinct particles among them;
- verdict accuracy against the slide's truth (monomer / dimer; "uncertain" counts as neither);
- times: the scan, per particle (centring, recording, the rest: the final analysis and the
  report), how many recordings stopped when sure before the cap, and particles per hour
  (recorded particles / visits time; and with the scan counted in).

Nothing is written into the repository: the session goes to a temporary directory, removed at
the end (``--out DIR`` keeps it there instead).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def main() -> None:
    from spad.app.survey_scan import SCAN_DWELL_S, SCAN_STEP_M

    ap = argparse.ArgumentParser()
    ap.add_argument("--particles", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fast", action="store_true",
                    help="on the simulated clock, not in real time")
    ap.add_argument("--step", type=float, default=SCAN_STEP_M * 1e9, help="scan step, nm")
    ap.add_argument("--dwell", type=float, default=SCAN_DWELL_S * 1e3,
                    help="scan dwell per pixel, ms")
    ap.add_argument("--duration", type=float, default=30.0, help="recording cap, s")
    ap.add_argument("--out", type=Path, default=None,
                    help="keep the session in this directory (default: a temporary one, "
                         "removed at the end)")
    args = ap.parse_args()

    from spad.app.acquisition import AcquisitionSettings
    from spad.app.acquisition.engine import prepare
    from spad.app.rig import open_rig
    from spad.app.survey import Survey, SurveySettings
    from spad.app.survey_scan import Area
    from spad.config import Rig, SlideSettings, StageSettings

    prepare()
    size = max(4e-6, 1e-6 * (args.particles / 0.3) ** 0.5)      # as spad survey's slide
    rig_settings = Rig(stage=StageSettings(), slide=SlideSettings(
        n_particles=args.particles, size_m=size, seed=args.seed))
    half = size / 2 + 0.5e-6
    area = Area(100e-6 - half, 100e-6 - half, 100e-6 + half, 100e-6 + half,
                args.step * 1e-9, args.dwell * 1e-3)
    settings = SurveySettings(area=area, acquisition=AcquisitionSettings(
        duration_s=args.duration, until_confident=0.95))
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_survey_"))
    clock_name = "simulated clock" if args.fast else "wall clock"
    try:
        with open_rig(rig_settings, realtime=not args.fast) as rig:
            clock = rig.tagger.clock
            now = clock.now
            survey = Survey(rig, out, settings, analysis_worker=not args.fast)
            marks: dict[str, float] = {}
            visits: dict[int, dict[str, Any]] = {}
            truth = rig.slide.particles

            def on_event(ev: Any) -> None:
                t = now()
                if ev.kind in ("candidates", "finished"):
                    marks.setdefault(ev.kind, t)
                if ev.kind == "candidates" and "scan_printed" not in marks:
                    marks["scan_printed"] = t
                    scan_s = t - marks["start"]
                    n = area.shape[0] * area.shape[1]
                    settle = rig.stage.motion.settle_s
                    print(f"scan: {area.shape[1]} x {area.shape[0]} = {n} pixels, step "
                          f"{area.step_m * 1e9:g} nm, dwell {area.dwell_s * 1e3:g} ms: "
                          f"{scan_s:.1f} s ({clock_name}); dwell {n * area.dwell_s:.1f} s, "
                          f"stage settling {n * settle:.1f} s, the rest "
                          f"{scan_s - n * (area.dwell_s + settle):.1f} s; "
                          f"{len(ev.data)} candidates", flush=True)
                elif ev.kind == "visit":
                    visits[ev.data.id] = {"visit": t}
                elif ev.kind == "recording":
                    visits[ev.data.id]["recording"] = t
                elif ev.kind == "particle":
                    c = ev.data
                    v = visits.setdefault(c.id, {"visit": t})
                    v["end"] = t
                    rec = survey.records.get(c.id) or {}
                    k = _match(c, truth)
                    v.update(status=c.status, verdict=c.verdict,
                             truth=None if k is None else truth[k].kind,
                             recorded_s=rec.get("recorded_s"),
                             stop_reason=rec.get("stop_reason"))
                    centre = v.get("recording", t) - v["visit"]
                    rec_s = v["recorded_s"]
                    print(f"#{c.id:<3} {c.status:7} truth {v['truth'] or '-':7} verdict "
                          f"{c.verdict or '-':9} centring {centre:5.1f} s, recorded "
                          + (f"{rec_s:5.1f} s ({v['stop_reason']})" if rec_s is not None
                             else "-") + (f", {c.note}" if c.note else ""), flush=True)

            survey.add_callback(on_event)
            marks["start"] = now()
            report = survey.run()
            marks.setdefault("finished", now())
            recorded = rig.tagger.focus.history
        _summary(args, survey, report, truth, recorded, marks, visits, clock_name, out)
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)


def _match(c: Any, truth: list[Any]) -> int | None:
    d = [np.hypot(p.x_m - c.x_m, p.y_m - c.y_m) for p in truth]
    k = int(np.argmin(d))
    return k if d[k] < 150e-9 else None


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 1) if values else None


def _summary(args: argparse.Namespace, survey: Any, report: dict[str, Any], truth: list[Any],
             recorded: list[int | None], marks: dict[str, float],
             visits: dict[int, dict[str, Any]], clock_name: str, out: Path) -> None:
    match = [_match(c, truth) for c in survey.candidates]
    found = {k for k in match if k is not None}
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
    done = [v for v in visits.values() if v.get("status") == "done"]
    centring = [v["recording"] - v["visit"] for v in done if "recording" in v]
    lengths = [v["recorded_s"] for v in done if v.get("recorded_s") is not None]
    rest = [v["end"] - v["recording"] - v["recorded_s"] for v in done
            if "recording" in v and v.get("recorded_s") is not None]
    early = sum(1 for v in done if v.get("stop_reason") == "confident")
    scan_s = marks["candidates"] - marks["start"]
    visits_s = marks["finished"] - marks["candidates"]
    pop = {}
    report_file = out / "survey_report.json"
    if report_file.exists():
        pop = json.loads(report_file.read_text()).get("population", {})
    result = {
        "clock": clock_name, "particles_on_slide": len(truth),
        "candidates": len(survey.candidates), "found": len(found),
        "duplicates": sum(1 for k in found if match.count(k) > 1),
        "empty_candidates": match.count(None),
        "recordings": len(recorded), "recordings_of_nothing": recorded.count(None),
        "distinct_particles_recorded": len({k for k in recorded if k is not None}),
        "done": report["done"], "skipped": report["skipped"], "failed": report["failed"],
        "verdict_right": right, "verdict_wrong": wrong, "verdict_uncertain": uncertain,
        "red_shift": pop.get("red_shift"),
        "scan_s": round(scan_s, 1), "visits_s": round(visits_s, 1),
        "median_centring_s": _median(centring), "median_recording_s": _median(lengths),
        "median_rest_s": _median(rest),
        "stopped_when_sure": early, "ran_to_cap": len(done) - early,
        "particles_per_hour": round(report["done"] / visits_s * 3600, 1) if visits_s else None,
        "particles_per_hour_with_scan": round(report["done"] / (scan_s + visits_s) * 3600, 1),
    }
    print(f"\nfound {len(found)} of {len(truth)} particles ({result['duplicates']} duplicates, "
          f"{result['empty_candidates']} empty candidates); {report['done']} recorded, "
          f"{report['skipped']} skipped, {report['failed']} failed; verdicts {right} right, "
          f"{wrong} wrong, {uncertain} uncertain")
    print(f"times ({clock_name}): scan {scan_s:.0f} s, visits {visits_s:.0f} s; per particle "
          f"median centring {result['median_centring_s']} s, recording "
          f"{result['median_recording_s']} s, final analysis and the rest "
          f"{result['median_rest_s']} s; {early} of {len(done)} stopped when sure before the "
          f"{args.duration:g} s cap")
    print(f"particles per hour: {result['particles_per_hour']} (visits), "
          f"{result['particles_per_hour_with_scan']} with the scan")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
