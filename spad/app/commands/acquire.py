"""``spad acquire``: record particles on the rig, with a live verdict."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

from spad.errors import SpadError

PARTICLES = ("monomer", "dimer", "pair")

START_FREE_BYTES = 64e6
"""Free space a recording needs to start (beyond the reserve every writer keeps): about a
minute at 100 k photons/s."""

STOP_WAIT_S = 1.5
"""Longest wait, after Ctrl-C or SIGTERM, for the recording thread to finalise the file."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "acquire", help="record a particle (photons + spectrum) with a live verdict",
        description="Record one particle into a particle file (Photon-HDF5 with its spectrum), "
                    "showing the live count rates, g2(0) and verdict. -o DIR records into a "
                    "session directory (file named by particle and time, session.jsonl log). "
                    "Ctrl-C or SIGTERM stops at once and keeps the file, finalised (exit 130 / "
                    "143).")
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
    from spad.app.safe_output import check_range

    check_range("--seed", args.seed, 0, 2**63 - 1)

    try:
        return AcquisitionSettings(duration_s=args.duration, until_confident=args.until_confident,
                                   g2_err_max=args.g2_err_max, exposure_s=args.exposure,
                                   em_gain=args.em_gain, compress=args.compress)
    except ValueError as exc:
        raise SpadError(str(exc)) from None


def follow(acq: Any) -> Any:
    """Run ``acq`` in its thread, print the live line; Ctrl-C or SIGTERM ends it at once.

    On an interruption the particle is aborted (file finalised with everything acquired, no
    final analysis: the command must end within a second or two), then the interruption is
    raised again naming the file, so the command prints one line and exits 130 / 143.
    """
    from spad.app import safe_output

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

    acq.add_callback(show)
    interrupt: KeyboardInterrupt | None = None
    outcome = None
    give_up = math.inf
    with safe_output.catching():  # every interruption is caught below
        try:
            acq.start()
        except KeyboardInterrupt as exc:  # before the thread ran: it may still have started
            interrupt = exc
            safe_output.acknowledge()
            acq.abort("SIGTERM" if isinstance(exc, safe_output.Terminated) else "interrupted")
            give_up = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < give_up:
            try:
                outcome = acq.wait(0.1)
                if outcome is not None or acq.finished or acq._thread is None:
                    # the thread may have ended just after the wait timed out: its outcome
                    # is set before it is marked finished
                    outcome = acq.wait(0) if outcome is None else outcome
                    break
            except KeyboardInterrupt as exc:
                if interrupt is None:
                    interrupt = exc
                    safe_output.acknowledge()
                    acq.abort("SIGTERM" if isinstance(exc, safe_output.Terminated)
                              else "interrupted")
                    # The file is finalised within a read of the FIFO. Should the thread be
                    # held up longer (an instrument that does not answer), the command still
                    # ends in time: what was flushed is in the file, which spad repairs when
                    # it next opens it (spad repair).
                    give_up = time.monotonic() + STOP_WAIT_S
    if tty:
        print(file=sys.stderr)
    if interrupt is not None:
        state = acq.snapshot()
        if not acq.path.exists():
            kept = ""
        elif acq.finished:
            kept = (f"{acq.path}: recording stopped and kept ({state.photons} photons, "
                    f"{state.elapsed_s:.1f} s)")
        else:
            kept = f"{acq.path}: recording cut short; spad repair {acq.path} finalises it"
        raise type(interrupt)(kept)
    if outcome is None:  # failed before recording: that error, once, by the CLI's contract
        if acq.exception is not None:
            raise acq.exception
        raise SpadError(acq.snapshot().error or "acquisition failed")
    return outcome


def run(args: argparse.Namespace) -> int:
    import json

    from spad.app.acquisition import Acquisition, Session
    from spad.app.acquisition.engine import prepare, shutdown_workers
    from spad.app.summary import particle_summary
    from spad.output import check_folder, check_free, check_writable

    settings = settings_from(args)
    out = Path(args.output)
    as_file = out.suffix.lower() in (".h5", ".hdf5")
    if as_file and out.exists():
        raise SpadError(f"{out}: file exists (choose another name)")
    # before any instrument is touched: an output that cannot be written is one clear line
    check_writable(out) if as_file else check_folder(out)
    # a recording fills the disk at ~11 bytes a photon; it stops by itself, finalised, when
    # the disk gets full (spad.output.DISK_RESERVE_BYTES), but should not start near that
    check_free(out, START_FREE_BYTES, "a recording")
    try:
        with open_rig(args) as rig:
            # after the rig answered (a bad rig is one clear line), before its first photon
            prepare(settings.analysis,
                    progress=lambda text: print(f"spad acquire: {text}", file=sys.stderr,
                                                flush=True))
            if as_file:
                acq = Acquisition(rig, settings, path=out, name=args.name)
            else:
                acq = Acquisition(rig, settings, session=Session(out), name=args.name)
            outcome = follow(acq)
    finally:
        # however the command ends, no worker outlives it
        shutdown_workers()
    print(f"{outcome.path}: {outcome.stop_reason} after {outcome.state.elapsed_s:.1f} s, "
          f"{outcome.state.photons} photons, {outcome.state.frames} spectrum frames",
          file=sys.stderr)
    if outcome.error:
        print(f"spad: error: {outcome.error}", file=sys.stderr)
    if outcome.result is not None:
        rec = outcome.result.record()
        print(json.dumps(rec) if args.json else particle_summary(rec), flush=True)
    return 2 if outcome.error else 0
