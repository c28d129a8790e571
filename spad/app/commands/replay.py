"""``spad replay``: stream a recorded file through the live pipeline."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from spad.errors import SpadError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay", help="stream a recording through the live pipeline (live line, verdict)",
        description="Replay a recording (PTU, PT3, HT3, Photon-HDF5) through the same live "
                    "pipeline spad acquire uses, at --speed times real time (default: as fast "
                    "as possible). Ends with the result spad analyze gives for FILE.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--speed", type=float, default=None, metavar="X",
                   help="times real time (default: as fast as possible)")
    p.add_argument("--until-confident", type=float, metavar="P",
                   help="report when spad acquire --until-confident P would have stopped")
    p.add_argument("--json", action="store_true", help="end with the JSON record instead")
    p.set_defaults(func=run)


def replay(path: str, speed: float | None = None, settings: Any = None,
           on_update: Any = None) -> tuple[Any, float | None]:
    """Feed ``path``'s chunks to a :class:`LivePipeline`; returns the final
    :class:`ParticleResult` and the recorded time at which ``--until-confident`` would have
    stopped (``None`` if never). The detectors are chosen as ``spad analyze`` chooses them
    (:func:`spad.analysis.detector_choice.detectors_for_file`)."""
    import dataclasses

    import spad
    from spad.analysis.detector_choice import detectors_for_file
    from spad.app.acquisition import AcquisitionSettings
    from spad.app.acquisition.engine import LivePipeline, LiveState

    settings = settings or AcquisitionSettings()
    analysis, notes = detectors_for_file(path, settings.analysis)
    live = LivePipeline(dataclasses.replace(settings, analysis=analysis))
    confident_at = None
    start = time.monotonic()
    with spad.open(path) as reader:
        # small pieces (~a FIFO read) so that updates fall at the same times as live
        for chunk in reader.chunks(n_records=1 << 17):
            live.feed(chunk)
            if speed:
                ahead = live.elapsed_s / speed - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
            if live.due():
                state = LiveState(status="running", path=path, **live.update())
                if live.confident and confident_at is None:
                    confident_at = live.elapsed_s
                if on_update is not None:
                    on_update(state)
    if live.acc.timing is None:
        raise SpadError(f"{path}: no photons to replay")
    result = live.final(path)
    result.photons.notes[:0] = notes   # where spad analyze puts them
    return result, confident_at


def run(args: argparse.Namespace) -> int:
    import json

    from spad.app.acquisition import AcquisitionSettings
    from spad.app.safe_output import check_range
    from spad.app.summary import particle_summary

    # slower than a hundredth of real time, an hour's recording would replay for four days
    check_range("--speed", args.speed, 0.01, 1e6, "times real time")
    try:
        settings = AcquisitionSettings(until_confident=args.until_confident)
    except ValueError as exc:
        raise SpadError(str(exc)) from None
    tty = sys.stderr.isatty()

    def show(state: Any) -> None:
        if tty:
            print("\r" + state.line().ljust(100), end="", file=sys.stderr, flush=True)

    result, confident_at = replay(args.file, args.speed, settings, show)
    if tty:
        print(file=sys.stderr)
    if args.until_confident is not None:
        print(f"{args.file}: confident (p >= {args.until_confident:g}) after "
              + (f"{confident_at:.1f} s" if confident_at is not None else "never"),
              file=sys.stderr)
    rec = result.record()
    print(json.dumps(rec) if args.json else particle_summary(rec), flush=True)
    return 0
