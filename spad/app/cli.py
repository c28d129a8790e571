"""The ``spad`` command line.

Each sub-command lives in its own module under :mod:`spad.app.commands` with a ``register(sub)``
function that adds its parser and sets ``func``. Errors spad raises on purpose become one line on
stderr and exit code 2; nothing is shown as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from spad.errors import SpadError

COMMANDS = ["info", "convert", "simulate", "analyze", "devices"]
"""Sub-command modules in :mod:`spad.app.commands`, in the order ``spad --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spad", description="Single-particle fluorescence spectroscopy of quantum dots.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"spad.app.commands.{name}").register(sub)
    for prog, p in [("spad", parser), *((f"spad {n}", p) for n, p in sub.choices.items())]:
        p.error = _one_line_error(prog)  # type: ignore[method-assign]
    return parser


def _one_line_error(prog: str):  # noqa: ANN202
    """argparse prints its usage block before an error; spad gives one line, exit code 2."""
    def error(message: str) -> None:
        print(f"{prog}: error: {message} (see '{prog} --help')", file=sys.stderr)
        raise SystemExit(2)
    return error


def _warn_line(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"spad: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 some inputs failed, 2 error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _warn_line
    try:
        return int(args.func(args) or 0)
    except SpadError as exc:
        print(f"spad: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        name = exc.filename if exc.filename is not None else ""
        print(f"spad: error: {name}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spad: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
