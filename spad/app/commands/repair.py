"""``spad repair``: recover recordings cut off by kill -9, a crash or a power cut."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spad.errors import SpadError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "repair", help="recover a recording cut off while written (kill -9, power cut)",
        description="Recover Photon-HDF5 files whose writer ended without closing them: "
                    "HDF5's open-for-write marks are cleared and the final metadata "
                    "(detectors table, duration, /user/acquisition/final) written from what "
                    "was flushed, so that any HDF5 program (h5py, HDFView, phconvert) opens "
                    "them. spad does this by itself when it next opens such a file. A file "
                    "that is still being recorded is left alone.")
    p.add_argument("files", nargs="+", metavar="FILE", help="Photon-HDF5 files (.h5)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spad.formats.repair import open_for_write_marked, repair
    from spad.output import check_regular_file

    failed = 0
    for name in args.files:
        path = Path(name)
        try:
            check_regular_file(path)
            if not open_for_write_marked(path):
                import h5py

                if not h5py.is_hdf5(path):
                    raise SpadError(f"{path}: not an HDF5 file")
                print(f"{path}: closed properly, nothing to repair", file=sys.stderr)
                continue
            done = repair(path)
            print(f"{path}: repaired ({'; '.join(done)})", file=sys.stderr)
        except (SpadError, OSError) as exc:
            if len(args.files) == 1:
                raise
            failed += 1
            from spad.app.safe_output import error_line

            verdict = error_line(exc)
            print(verdict[1] if verdict else f"spad: error: {path}: {exc}", file=sys.stderr)
    return 1 if failed else 0
