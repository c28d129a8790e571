"""``spad batch``: a whole survey on Dask, resumable, into one table and a population report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from spad.errors import SpadError

SETTINGS_KEYS = {"gate_ns": 5.0, "bin_ms": 10.0, "irf": None, "detectors": None,
                 "reference_ev": None}
"""Keys of a ``--settings`` file and their defaults: the options of ``spad analyze``
(``detectors`` ``None``: as ``spad analyze`` without ``--detectors``)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch", help="analyse a whole survey on Dask into a Parquet/CSV table, resumable",
        description="Analyse every particle file (as 'spad analyze' does), one Dask task per "
                    "file, into one table. Finished files are kept in OUT.journal: a batch "
                    "run again skips files whose result is up to date and retries failed ones.")
    p.add_argument("inputs", nargs="+", metavar="DIR_OR_GLOB",
                   help="particle files, directories (searched recursively) or glob patterns")
    p.add_argument("--out", required=True, type=Path, metavar="TABLE",
                   help="results table, .parquet or .csv")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="write the population report survey.png and survey.json to DIR")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on the Dask cluster at ADDRESS (e.g. tcp://host:8786)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="local worker processes (default: one per core)")
    p.add_argument("--settings", type=Path, metavar="FILE",
                   help="analysis settings, JSON or TOML: " + ", ".join(SETTINGS_KEYS))
    p.add_argument("--fresh", action="store_true",
                   help="analyse every file again, ignoring earlier results")
    p.set_defaults(func=run)


def load_settings(path: Path | None) -> tuple[Any, float | None]:
    """The analysis settings and reference energy of a ``--settings`` file (JSON or TOML),
    checked the way ``spad analyze`` checks its options."""
    from spad.analysis.settings import AnalysisSettings
    from spad.app.commands.analyze import check_ranges

    values = dict(SETTINGS_KEYS)
    if path is not None:
        try:
            text = path.read_text()
            if path.suffix.lower() == ".toml":
                import tomllib

                given = tomllib.loads(text)
            else:
                given = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SpadError(f"{path}: not a JSON or TOML settings file ({exc})") from None
        if not isinstance(given, dict):
            raise SpadError(f"{path}: settings must be a table of key = value")
        unknown = sorted(set(given) - set(SETTINGS_KEYS))
        if unknown:
            raise SpadError(f"{path}: unknown setting {unknown[0]!r} "
                            f"(known: {', '.join(SETTINGS_KEYS)})")
        values.update(given)
        if values["irf"] is not None:  # relative to the settings file
            values["irf"] = str(path.parent / values["irf"])
    def number(key: str, value: Any) -> float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be a number, not {value!r}") from None

    try:
        detectors = values["detectors"]
        if detectors is not None:
            detectors = tuple(int(d) for d in detectors)
            if len(detectors) != 2:
                raise ValueError("detectors needs two numbers")
        gate_ns, bin_ms = number("gate_ns", values["gate_ns"]), number("bin_ms",
                                                                        values["bin_ms"])
        ref = None if values["reference_ev"] is None else number("reference_ev",
                                                                  values["reference_ev"])
    except (TypeError, ValueError) as exc:
        raise SpadError(f"{path}: {exc}") from None
    try:
        check_ranges(gate_ns, bin_ms, ref)
        # every other option of `spad analyze` at its default
        settings = AnalysisSettings.from_user(gate_ns=gate_ns, bin_ms=bin_ms,
                                              detectors=detectors, irf=values["irf"])
    except SpadError as exc:
        raise SpadError(f"{path}: {exc}") from None
    return settings, ref


def run(args: argparse.Namespace) -> int:
    from spad.app.batch import run_batch

    if args.workers is not None and args.workers < 1:
        raise SpadError("--workers must be at least 1")
    settings, ref = load_settings(args.settings)
    s = run_batch(args.inputs, args.out, settings, ref, report=args.report,
                  scheduler=args.scheduler, workers=args.workers, fresh=args.fresh)
    rate = s.analysed / s.seconds if s.seconds > 0 else 0.0
    speed = f" ({rate:.2f} files/s on {s.workers} workers)" if s.analysed else ""
    print(f"spad batch: {s.files} files: {s.analysed} analysed{speed}, {s.up_to_date} up to "
          f"date, {s.failed} failed; "
          f"table {s.table}" + (f", report {s.report}/" if s.report else ""), file=sys.stderr)
    # as spad analyze: every file unusable is bad input (2); some of them, a partial run (1)
    if s.failed and s.failed == s.files:
        return 2
    return 1 if s.failed else 0
