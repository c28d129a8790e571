"""``spad gui``: the desktop app at the microscope (PyQt5 + pyqtgraph).

Qt is imported only when the command runs, so the rest of the command line works on machines
without a display or without Qt.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from spad.errors import SpadError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gui", help="the desktop app: live acquisition on the rig, or analysis of recordings",
        description="Open the desktop app. With FILE (particle recordings or a session "
                    "directory) it opens them in the analysis mode; without, it starts the live "
                    "mode on the rig of --config (default: the simulated rig).")
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="particle recordings (PTU, PT3, HT3, Photon-HDF5) or session directories")
    p.add_argument("--config", type=Path, metavar="RIG.TOML",
                   help="rig configuration (default: simulated instruments)")
    p.set_defaults(func=run)


def check_recordings(paths: list[str]) -> None:
    """Refuse, before the window opens, a FILE that is no recording or a directory without
    any: one line on the command line rather than an empty window."""
    import spad
    from spad.particle import PARTICLE_SUFFIXES, particle_files

    for f in map(Path, paths):
        if f.is_dir():
            if not particle_files(f):
                raise SpadError(f"{f}: no particle recordings ({', '.join(PARTICLE_SUFFIXES)})")
        elif not f.exists():
            raise SpadError(f"{f}: no such file or directory")
        else:
            with spad.open(f):  # reads and checks the header; FormatError names the file
                pass


def run(args: argparse.Namespace) -> int:
    check_recordings(args.files)
    if args.config is not None and not args.config.is_file():
        raise SpadError(f"{args.config}: no such rig configuration file")
    try:
        from spad.gui.app import run_app
    except ImportError as exc:  # Qt missing or broken on this machine
        raise SpadError(f"the desktop app needs PyQt5 and pyqtgraph: {exc}") from None
    return run_app([str(f) for f in args.files], args.config)
