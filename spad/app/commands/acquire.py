"""``spad acquire``: record particles on the rig, with a live verdict."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from spad.errors import SpadError

PARTICLES = ("monomer", "dimer", "pair")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "acquire", help="record a particle (photons + spectrum) with a live verdict",
        description="Record one particle into a particle file (Photon-HDF5 with its spectrum), "
                    "showing the live count rates, g2(0) and verdict. -o DIR records into a "
                    "session directory (file named by particle and time, session.jsonl log). "
                    "Ctrl-C stops cleanly and keeps the file.")
    p.add_argument("-o", "--output", required=True, metavar="FILE|DIR",
                   help="particle file (.h5), or a session directory")
    p.add_argument("--config", metavar="RIG.TOML",
                   help="rig file (see spad devices; default: a simulated rig with --particle "
                        "in focus)")
    p.add_argument("--duration", type=float, default=60.0, metavar="S",
                   help="longest recording, s (default 60)")
    p.add_argument("--until-confident", type=float, metavar="P",
                   help="stop once the verdict's probability stayed >= P for 3 updates and "
                        "the g2(0) error is <= --g2-err-max")
    p.add_argument("--g2-err-max", type=float, default=0.05,
                   help="g2(0) error bound for --until-confident (default 0.05)")
    p.add_argument("--name", help="particle name (default: the session's next, p001, ...)")
    p.add_argument("--exposure", type=float, default=1.0, help="camera exposure, s (default 1)")
    p.add_argument("--compress", action="store_true",
                   help="compress the photons in the file (gzip: ~3 instead of 11 bytes per "
                        "photon; for long, bright recordings)")
    p.add_argument("--em-gain", type=float, default=100.0, help="EM gain (default 100)")
    p.add_argument("--particle", choices=PARTICLES, default="monomer",
                   help="simulated rig: what is in the focus (default monomer)")
    p.add_argument("--seed", type=int, default=0, help="simulated rig: seed (default 0)")
    p.add_argument("--fast", action="store_true",
                   help="simulated rig: deliver photons as fast as they are simulated instead "
                        "of in real time (the camera then records few frames)")
    p.add_argument("--json", action="store_true",
                   help="end with the JSON record of spad analyze --json instead of a summary")
    p.set_defaults(func=run)


def open_rig(args: argparse.Namespace) -> Any:
    """The rig to record with: ``spad.app.rig.open_rig(--config)``, or without ``--config`` the
    simulated rig with ``--particle`` in focus."""
    if args.config is not None:
        from spad.app.rig import open_rig as open_configured

        return open_configured(args.config, seed=args.seed, realtime=not args.fast)
    from spad.app.acquisition.simrig import simulated_rig

    return simulated_rig(args.particle, args.seed, realtime=not args.fast)


def settings_from(args: argparse.Namespace) -> Any:
    from spad.app.acquisition import AcquisitionSettings

    try:
        return AcquisitionSettings(duration_s=args.duration, until_confident=args.until_confident,
                                   g2_err_max=args.g2_err_max, exposure_s=args.exposure,
                                   em_gain=args.em_gain, compress=args.compress)
    except ValueError as exc:
        raise SpadError(str(exc)) from None


def follow(acq: Any) -> Any:
    """Run ``acq`` in its thread, print the live line, stop cleanly on Ctrl-C."""
    tty = sys.stderr.isatty()
    shown = [0.0]

    def show(ev: Any) -> None:
        if ev.kind == "progress":
            line = ev.state.line()
            if tty:
                print("\r" + line.ljust(100), end="", file=sys.stderr, flush=True)
            elif ev.state.elapsed_s - shown[0] >= 5.0 or shown[0] == 0.0:
                shown[0] = ev.state.elapsed_s
                print(line, file=sys.stderr, flush=True)
        elif ev.kind == "error":
            print(("\n" if tty else "") + f"spad: error: {ev.message}", file=sys.stderr)

    acq.add_callback(show)
    acq.start()
    while True:
        try:
            outcome = acq.wait(0.2)
        except KeyboardInterrupt:
            print("\nspad: stopping (the file is kept)", file=sys.stderr)
            acq.stop()
            continue
        if outcome is not None or not acq._thread.is_alive():
            break
    if tty:
        print(file=sys.stderr)
    if outcome is None:
        state = acq.snapshot()
        raise SpadError(state.error or "acquisition failed")
    return outcome


def run(args: argparse.Namespace) -> int:
    import json

    from spad.app.acquisition import Acquisition, Session
    from spad.app.acquisition.engine import prepare
    from spad.app.summary import particle_summary
    from spad.output import check_folder, check_writable

    settings = settings_from(args)
    out = Path(args.output)
    as_file = out.suffix.lower() in (".h5", ".hdf5")
    if as_file and out.exists():
        raise SpadError(f"{out}: file exists (choose another name)")
    # before any instrument is touched: an output that cannot be written is one clear line
    check_writable(out) if as_file else check_folder(out)
    with open_rig(args) as rig:
        # after the rig answered (a bad rig is one clear line), before its first photon
        prepare(settings.analysis,
                progress=lambda text: print(f"spad acquire: {text}", file=sys.stderr, flush=True))
        if as_file:
            acq = Acquisition(rig, settings, path=out, name=args.name)
        else:
            acq = Acquisition(rig, settings, session=Session(out), name=args.name)
        outcome = follow(acq)
    print(f"{outcome.path}: {outcome.stop_reason} after {outcome.state.elapsed_s:.1f} s, "
          f"{outcome.state.photons} photons, {outcome.state.frames} spectrum frames",
          file=sys.stderr)
    if outcome.result is not None:
        rec = outcome.result.record()
        print(json.dumps(rec) if args.json else particle_summary(rec), flush=True)
    return 2 if outcome.error else 0
