"""``spad survey``: scan a slide, find the particles, record each until sure, move on.

    spad survey -o SESSION_DIR [--area X0,Y0,X1,Y1] [--config rig.toml] [--resume] ...

Headless, for a night at the microscope: a progress bar over the scan and then over the
particles, a survey report at the end (``SESSION_DIR/report/survey.png``, ``survey.json``,
``SESSION_DIR/survey_report.json``). Ctrl-C finishes the particle being recorded and stops;
``--resume`` goes on (also after a crash) without redoing finished particles.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from spad.errors import SpadError


def register(sub: argparse._SubParsersAction) -> None:
    from spad.app.survey_scan import SCAN_DWELL_S, SCAN_STEP_M

    p = sub.add_parser(
        "survey", help="scan the slide, find the particles, record each until sure",
        description="Unattended survey on a rig with a sample stage: raster-scan the area, "
                    "find the particles in the count-rate image, then for each: move there, "
                    "centre the focus (2-D Gaussian fit of a small scan), record photons and "
                    "spectrum until the verdict is sure (one particle file each, stage "
                    "position stored), correcting the drift as it goes; a particle gone since "
                    "the scan is skipped with a note. Without --config: the simulated rig "
                    "with a simulated slide of --particles particles.")
    p.add_argument("-o", "--output", required=True, metavar="SESSION_DIR",
                   help="session directory (particle files, session.jsonl, survey.jsonl, "
                        "scan.npz, report/)")
    p.add_argument("--config", metavar="RIG.TOML",
                   help="rig file with a [stage] table (default: the simulated rig and slide)")
    p.add_argument("--resume", action="store_true",
                   help="go on with the survey in SESSION_DIR (after a stop or a crash)")
    p.add_argument("--area", metavar="X0,Y0,X1,Y1",
                   help="area to scan in stage coordinates, µm (default on the simulated "
                        "slide: the populated square and 0.5 µm around it)")
    p.add_argument("--step", type=float, default=SCAN_STEP_M * 1e9, metavar="NM",
                   help=f"scan step, nm (default {SCAN_STEP_M * 1e9:g})")
    p.add_argument("--dwell", type=float, default=SCAN_DWELL_S * 1e3, metavar="MS",
                   help=f"scan dwell time per pixel, ms (default {SCAN_DWELL_S * 1e3:g})")
    p.add_argument("--threshold", type=float, metavar="CPS",
                   help="smallest count rate above background of a particle in the scan "
                        "(default: background + 6 robust sd)")
    p.add_argument("--min-separation", type=float, default=0.5, metavar="UM",
                   help="spots closer than this are one particle, µm (default 0.5)")
    p.add_argument("--max-particles", type=int, metavar="N",
                   help="record at most N particles (the brightest first)")
    p.add_argument("--duration", type=float, default=30.0, metavar="S",
                   help="longest recording per particle, s (default 30)")
    p.add_argument("--until-confident", type=float, default=0.95, metavar="P",
                   help="stop a particle once its verdict's probability stayed >= P "
                        "(default 0.95)")
    p.add_argument("--g2-err-max", type=float, default=0.05,
                   help="g2(0) error bound of the stop-when-sure rule (default 0.05)")
    p.add_argument("--exposure", type=float, default=1.0, help="camera exposure, s (default 1)")
    sim = p.add_argument_group("simulated slide (without --config)")
    sim.add_argument("--particles", type=int, default=30, help="particles (default 30)")
    sim.add_argument("--dimer-fraction", type=float, default=0.5,
                     help="fraction of fused dimers (default 0.5)")
    sim.add_argument("--fragile", type=float, default=0.0, metavar="F",
                     help="fraction of particles that bleach after a short light dose")
    sim.add_argument("--drift", type=float, default=0.0, metavar="NM_PER_S",
                     help="sample drift along x and y, nm per second of light")
    sim.add_argument("--seed", type=int, default=None,
                     help="seed of the slide (default: a new slide; logged for --resume)")
    sim.add_argument("--fast", action="store_true",
                     help="run on the simulated clock, as fast as simulated, instead of in "
                          "real time (the live verdict is taken in step with the photons, so "
                          "each particle stops when sure as it would in real time)")
    p.set_defaults(func=run)


def _rig(args: argparse.Namespace, seed: int) -> Any:
    from spad.config import Rig, SlideSettings, StageSettings, load_rig

    if args.config is not None:
        rig = load_rig(args.config)
        if rig.stage is None:
            raise SpadError(f"{args.config}: no [stage] table: a survey needs a sample stage")
        return rig
    if not 1 <= args.particles <= 10_000:
        raise SpadError(f"survey: --particles must be within 1-10000, not {args.particles}")
    for name in ("dimer_fraction", "fragile"):
        v = getattr(args, name)
        if not 0 <= v <= 1:
            raise SpadError(f"survey: --{name.replace('_', '-')} must be within 0-1, not {v:g}")
    # a square that holds the particles 1 µm apart at ~12 % of the closest packing
    size = max(4e-6, 1e-6 * (args.particles / 0.3) ** 0.5)
    drift = args.drift * 1e-9
    return Rig(stage=StageSettings(), slide=SlideSettings(
        n_particles=args.particles, dimer_fraction=args.dimer_fraction, size_m=size,
        fragile_fraction=args.fragile, drift_m_per_s=(drift, drift), seed=seed))


def _settings(args: argparse.Namespace, rig: Any) -> Any:
    from spad.app.acquisition import AcquisitionSettings
    from spad.app.survey import SurveySettings
    from spad.app.survey_scan import Area

    try:
        acq = AcquisitionSettings(duration_s=args.duration, until_confident=args.until_confident,
                                  g2_err_max=args.g2_err_max, exposure_s=args.exposure)
    except ValueError as exc:
        raise SpadError(f"survey: {exc}") from None
    if not (args.step > 0 and args.dwell > 0):
        raise SpadError("survey: --step and --dwell must be positive")
    step, dwell = args.step * 1e-9, args.dwell * 1e-3
    area = None
    if args.area is not None:
        area = Area.parse(args.area, step, dwell)
    elif rig.slide is not None and rig.stage is not None and rig.stage.backend == "simulated":
        (cx, cy), half = rig.slide.centre_m, rig.slide.size_m / 2 + 0.5e-6
        area = Area(cx - half, cy - half, cx + half, cy + half, step, dwell)
    return SurveySettings(area=area, threshold_hz=args.threshold,
                          min_separation_m=args.min_separation * 1e-6, acquisition=acq,
                          max_particles=args.max_particles)


def _logged_seed(folder: Path) -> int | None:
    from spad.app.survey import SurveyLog

    for e in SurveyLog(folder).entries():
        if e.get("event") == "rig" and e.get("slide_seed") is not None:
            return int(e["slide_seed"])
    return None


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from spad.app.acquisition.engine import prepare
    from spad.app.rig import open_rig
    from spad.app.survey import Survey, SurveyLog
    from spad.output import check_folder

    out = Path(args.output)
    check_folder(out)
    seed = args.seed
    if args.resume:
        seed = _logged_seed(out) if seed is None else seed
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31 - 1))
    rig_settings = _rig(args, seed)
    settings = _settings(args, rig_settings)
    prepare()
    tty = sys.stderr.isatty()
    with open_rig(rig_settings, realtime=not args.fast) as rig:
        survey = Survey(rig, out, settings, resume=args.resume,
                        analysis_worker=not args.fast)
        if not args.resume and args.config is None:
            SurveyLog(out).append("rig", slide_seed=seed, slide=rig_settings.slide)
        bars: dict[str, Any] = {}

        def show(ev: Any) -> None:
            if ev.kind == "scan_row":
                i, img = ev.data
                if "scan" not in bars:
                    bars["scan"] = tqdm(total=img.shape[0], unit="row", desc="scan",
                                        file=sys.stderr, disable=not tty)
                bars["scan"].update()
            elif ev.kind == "candidates":
                if "scan" in bars:
                    bars.pop("scan").close()
                todo = [c for c in ev.data if c.status in ("pending", "recording")]
                print(f"spad survey: {len(ev.data)} particles in the list, {len(todo)} to "
                      "record", file=sys.stderr)
                if "particles" not in bars:
                    bars["particles"] = tqdm(total=len(ev.data), initial=len(ev.data)
                                             - len(todo), unit="particle", file=sys.stderr,
                                             disable=not tty)
            elif ev.kind == "progress" and "particles" in bars:
                bars["particles"].set_postfix_str(ev.data.line()[:70], refresh=True)
            elif ev.kind == "particle":
                c = ev.data
                text = (f"#{c.id} {c.status}: {c.particle or '-'} {c.verdict or ''} "
                        f"{c.note or ''}").rstrip()
                if "particles" in bars:
                    bars["particles"].update()
                    tqdm.write(text, file=sys.stderr)
                else:
                    print(text, file=sys.stderr)

        survey.add_callback(show)
        survey.start()
        while True:
            try:
                if survey.wait(0.2):
                    break
            except KeyboardInterrupt:
                print("\nspad: stopping after this particle (the session is kept; --resume "
                      "goes on)", file=sys.stderr)
                survey.stop()
        for bar in bars.values():
            bar.close()
    if survey.error is not None:
        raise SpadError(f"survey: {survey.error} (the session keeps what was recorded; "
                        "--resume goes on)")
    report = survey.report()
    print(f"spad survey: {report['done']} recorded, {report['skipped']} skipped, "
          f"{report['failed']} failed, {report['pending']} left; verdicts "
          f"{json.dumps(report['verdicts'])}", file=sys.stderr)
    if report["pending"]:
        print(f"spad survey: stopped; `spad survey -o {out} --resume` goes on", file=sys.stderr)
        return 0
    pop = json.loads((out / "report" / "survey.json").read_text())
    shift = pop["red_shift"]
    if shift["shift_mev"] is not None:
        print(f"spad survey: red shift {shift['shift_mev']:.1f} ± {shift['shift_err_mev']:.1f} "
              f"meV ({shift['n_monomers']} monomers, {shift['n_dimers']} dimers); report in "
              f"{out / 'report'}/", file=sys.stderr)
    else:
        print(f"spad survey: red shift n/a (needs 2 monomers and 2 dimers); report in "
              f"{out / 'report'}/", file=sys.stderr)
    return 0
