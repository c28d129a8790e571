"""The ``spad`` command line.

Each sub-command lives in its own module under :mod:`spad.app.commands` with a ``register(sub)``
function that adds its parser and sets ``func``. :func:`main` keeps the error contract of
:mod:`spad.app.safe_output` for every command: exit 0 ok, 1 some inputs failed, 2 bad usage or
unusable input, 130/143 interrupted; one line ``spad: error: <file or device>: <problem>``.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
import warnings

from spad.app import memory, safe_output

COMMANDS = ["info", "convert", "simulate", "analyze", "batch", "acquire", "survey", "replay",
            "repair", "devices", "gui"]
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
    """Run the CLI; returns the exit code (see :mod:`spad.app.safe_output`)."""
    previous = safe_output.install()
    # a recording or a GUI runs for hours: freed large arrays go back to the system
    memory.fix_mmap_threshold()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "collect_late", False):
            memory.resume_collection()
        warnings.showwarning = _warn_line
        return int(args.func(args) or 0)
    except SystemExit:  # argparse: --help (0) and usage errors (2, one line already out)
        raise
    except BrokenPipeError:  # the reader of our output has gone (spad info F | head -3)
        _quiet_stdout()
        return safe_output.EXIT_OK
    except BaseException as exc:  # noqa: BLE001 - the contract covers every way out
        verdict = safe_output.error_line(exc)
        if verdict is None:  # a bug: show where
            import traceback

            traceback.print_exc()
            safe_output.print_error("spad: internal error (a bug, please report it with the "
                                    "traceback above)")
            return safe_output.EXIT_BUG
        code, line = verdict
        safe_output.print_error(line)
        return code
    finally:
        memory.resume_collection()
        safe_output.restore(previous)
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_stdout()


def _quiet_stdout() -> None:
    """After a broken pipe: what is left in stdout's buffer goes nowhere, and the
    interpreter's last flush at exit does not complain."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def console() -> None:
    """The ``spad`` executable: :func:`main`, then exit with its code.

    After an interruption everything that matters is already done (temporary files removed,
    workers stopped) and the process leaves at once: the interpreter's own teardown after an
    interrupted numba/HDF5 run can take a second or more.

    Automatic garbage collection is held off from here until the command's start-up is over
    (:func:`spad.app.memory.hold_collection`).
    """
    memory.hold_collection()
    code = main()
    if code in (130, 143):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    # The command is done: the interpreter's last garbage collection at exit would go over
    # everything still alive (after a first analysis, numba's compiled kernels and their typing:
    # ~170,000 objects, 0.3 s). Frozen, it skips them; the exit handlers still run.
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    console()
