"""Replay of the fuzzing corpus (tests/fuzz/corpus/, filled by ``make fuzz``).

Every input that once broke a reader's contract (return the data or raise SpadError) or the
CLI's (exit 0/1/2, one line, no traceback) stays here as a regression test. The seed inputs of
each target are replayed too, so the harness itself is exercised by ``make test``.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).parent / "fuzz"
sys.path.insert(0, str(FUZZ))
import fuzz  # noqa: E402

CASES = sorted(p for p in (FUZZ / "corpus").glob("*/*") if p.suffix != ".txt")


@pytest.mark.parametrize("case", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_corpus_case_keeps_the_contract(case: Path) -> None:
    target = case.parent.name
    if target == "cli":
        from spad.app.cli import main

        argv = json.loads(case.read_text())
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code
        assert code in (0, 1, 2) and "Traceback" not in err.getvalue(), err.getvalue()
        return
    _, _, read = fuzz.READERS[target]
    assert fuzz.check_reader(read, case) is None


@pytest.mark.parametrize("target", sorted(fuzz.READERS))
def test_seed_inputs_are_read(target: str, tmp_path: Path) -> None:
    make_seed, ext, read = fuzz.READERS[target]
    path = tmp_path / f"seed{ext}"
    path.write_bytes(make_seed(tmp_path))
    with contextlib.redirect_stdout(io.StringIO()):
        read(path)  # a valid seed: no error at all
