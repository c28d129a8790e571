"""The CLI's error contract (spad.app.safe_output), checked for every command.

Every command runs against each class of bad input; each must exit with the contract's code and
print one line ``spad: error: <file or device>: <problem>`` without a traceback, library
internals or temporary names, and leave no output behind. Interruption (SIGINT, SIGTERM) is
checked on the real executable: exit 130 / 143, one line, no partial file, no stray workers.
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from spad.app.cli import COMMANDS, main

REAL_T3 = Path(__file__).parent / "data" / "picoquant-sample-data" / "v20_t3.ptu"
SPAD = str(Path(sys.executable).with_name("spad"))
FORBIDDEN = ("Traceback", ".part", "Unable to", "errno =", "Exception ignored", "h5py",
             "CPUDispatcher")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """Exit code and stderr lines of ``spad ARGV`` run in this process."""
    # Garbage that earlier tests left (distributed leaves sockets of closed clusters to the
    # collector) is collected now, quietly: its finalizers would otherwise print "unclosed
    # socket" into this command's stderr under the suite's ResourceWarning-as-error filter.
    # Python ignores ResourceWarning by default, so a user never sees them.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err


def check_error(code: int, err: list[str], want_code: int, name: str | Path) -> None:
    assert code == want_code, err
    assert len(err) == 1, err
    line = err[0]
    assert line.startswith(("spad: error: ", "spad ")), line
    assert str(name) in line, line
    assert not any(f in line for f in FORBIDDEN), line


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One file (or folder) per class of unusable input."""
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    files = {
        "missing": d / "missing.ptu",
        "empty": d / "empty.ptu",
        "random": d / "random.ptu",
        "foreign": d / "notes.h5",
        "truncated": d / "truncated.ptu",
        "folder": d / "folder.ptu",
    }
    files["empty"].write_bytes(b"")
    files["random"].write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    files["foreign"].write_text("not an HDF5 file\n" * 20)
    files["truncated"].write_bytes(REAL_T3.read_bytes()[:300])  # cut inside the header
    files["folder"].mkdir()
    return files


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("good")
    out = d / "good.ptu"
    shutil.copy(REAL_T3, out)
    return out


# Per command: argv for one input FILE and an OUT in a folder DIR. A command added to COMMANDS
# needs a row here (the contract covers every command).
INPUT_ARGS = {
    "info": lambda f, out: ["info", str(f)],
    "convert": lambda f, out: ["convert", str(f), str(out)],
    "analyze": lambda f, out: ["analyze", str(f), "--jobs", "1"],
    "simulate": None,  # reads no input file; its bad inputs are options and outputs (below)
    "devices": lambda f, out: ["devices", "--config", str(f)],
    "replay": lambda f, out: ["replay", str(f)],
    "batch": lambda f, out: ["batch", str(f), "--out", str(out.with_suffix(".csv"))],
    "acquire": lambda f, out: ["acquire", "--config", str(f), "-o", str(out)],
    "survey": lambda f, out: ["survey", "--config", str(f), "-o", str(out.with_suffix(""))],
    "gui": lambda f, out: ["gui", str(f)],
    "repair": lambda f, out: ["repair", str(f)],
}
OUTPUT_ARGS = {
    "convert": lambda good, out: ["convert", str(good), str(out)],
    "simulate": lambda good, out: ["simulate", "--duration", "0.05", "--spectrum-s", "0",
                                   "-o", str(out)],
    "analyze": lambda good, out: ["analyze", str(good), "--jobs", "1", "--report",
                                  str(out)],
    "acquire": lambda good, out: ["acquire", "--duration", "1", "--fast", "-o", str(out)],
}
BAD_OPTION = {
    "info": ["info", "--bogus"],
    "convert": ["convert", "a.ptu", "b.h5", "--format", "xml"],
    "simulate": ["simulate", "-o", "x.h5", "--duration", "-1"],
    "analyze": ["analyze", "a.ptu", "--bin-ms", "0"],
    "devices": ["devices", "--bogus"],
    "replay": ["replay", "a.ptu", "--speed", "0"],
    "batch": ["batch", "a.ptu", "--out", "table.txt"],
    "acquire": ["acquire", "-o", "x.h5", "--duration", "-1"],
    "survey": ["survey", "-o", "s", "--step", "0"],
    "gui": ["gui", "--bogus"],
    "repair": ["repair", "--bogus", "a.h5"],
}


def test_every_command_is_covered() -> None:
    for name in COMMANDS:
        assert name in INPUT_ARGS and name in BAD_OPTION, (
            f"spad {name}: add it to the error-contract tables of tests/test_cli_contract.py")


@pytest.mark.parametrize("kind", ["missing", "empty", "random", "foreign", "truncated",
                                  "folder"])
@pytest.mark.parametrize("command", [c for c in INPUT_ARGS if INPUT_ARGS[c]])
def test_unusable_input_exits_2_with_one_line(command: str, kind: str, bad_inputs: dict,
                                              tmp_path: Path, capsys) -> None:
    if command in ("devices", "acquire") and kind == "empty":
        pytest.skip("an empty rig file is valid TOML: the default (simulated) rig")
    f = bad_inputs[kind]
    out = tmp_path / "out.h5"
    code, err = run(INPUT_ARGS[command](f, out), capsys)
    if command == "batch":
        # a survey keeps going past bad files: its progress lines and its table (which names
        # each failed file and why, so that a rerun retries them) are its output
        err = [line for line in err if not line.startswith("spad batch:")]
        check_error(code, err, 2, f)
        return
    check_error(code, err, 2, f)
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("where", ["no_folder", "folder_is_file", "target_is_folder"])
@pytest.mark.parametrize("command", sorted(OUTPUT_ARGS))
def test_unwritable_output_exits_2_naming_it(command: str, where: str, good: Path,
                                             tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    (tmp_path / "dir.h5").mkdir()
    out = {"no_folder": tmp_path / "no" / "such" / "out.h5",
           "folder_is_file": blocker / "out.h5",
           "target_is_folder": tmp_path / "dir.h5"}[where]
    if command == "analyze":  # --report takes a folder
        out = {"no_folder": blocker / "sub", "folder_is_file": blocker,
               "target_is_folder": blocker / "x"}[where]
    code, err = run(OUTPUT_ARGS[command](good, out), capsys)
    check_error(code, err, 2, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "dir.h5"]


@pytest.mark.parametrize("command", sorted(BAD_OPTION))
def test_bad_option_exits_2_with_one_line(command: str, capsys, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("a.ptu").write_bytes(REAL_T3.read_bytes())
    code, err = run(BAD_OPTION[command], capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(("spad: error:", f"spad {command}: error:")), err
    assert not any(f in err[0] for f in FORBIDDEN)


def test_existing_output_is_kept_without_force(good: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "x.h5"
    out.write_bytes(b"precious")
    code, err = run(["simulate", "--duration", "0.05", "-o", str(out)], capsys)
    check_error(code, err, 2, out)
    assert out.read_bytes() == b"precious"


def test_analyze_batch_exit_codes(good: Path, bad_inputs: dict, capsys) -> None:
    # Some inputs failed, others succeeded: 1, one line per failed file.
    code, err = run(["analyze", str(good), str(bad_inputs["random"]), "--jobs", "1", "--json"],
                    capsys)
    assert code == 1
    assert len(err) == 1 and err[0].startswith(f"spad: error: {bad_inputs['random']}: ")
    # All failed: unusable input, 2.
    code, err = run(["analyze", str(bad_inputs["empty"]), str(bad_inputs["random"]),
                     "--jobs", "1"], capsys)
    assert code == 2 and len(err) == 2


def test_simulate_refuses_what_the_disk_cannot_hold(tmp_path: Path, capsys) -> None:
    out = tmp_path / "huge.h5"
    code, err = run(["simulate", "--duration", "1e9", "-o", str(out)], capsys)
    check_error(code, err, 2, out)
    assert "would not fit" in err[0]
    assert not list(tmp_path.iterdir())


# -- interruption, on the real executable --------------------------------------------------------

def _interrupt(argv: list[str], sig: int, ready: callable, cwd: Path) -> tuple[int, str, float]:
    """Start ``spad ARGV``, send ``sig`` once ``ready(pid)``; exit code, stderr, seconds to
    exit."""
    proc = subprocess.Popen([SPAD, *argv], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not ready(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is not None:      # ended before it was ready: no signal sent
        with proc.stderr:
            return proc.returncode, proc.stderr.read(), 0.0
    t0 = time.monotonic()
    os.killpg(proc.pid, sig)  # like Ctrl-C in a terminal: the whole process group
    code = proc.wait(timeout=30)
    took = time.monotonic() - t0
    with proc.stderr:
        return code, proc.stderr.read(), took


@pytest.mark.parametrize(("sig", "want"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_simulate_leaves_nothing(sig: int, want: int, tmp_path: Path) -> None:
    # 3000 s: about a minute to simulate, far longer than the signal takes to arrive, and
    # 1.6 GB of output, so the free-space check passes on a small CI disk (10 h wanted 16 GB)
    code, err, took = _interrupt(
        ["simulate", "--particle", "dimer", "--duration", "3000", "-o", "long.h5"], sig,
        lambda pid: any(p.name.startswith(".long.") for p in tmp_path.iterdir()), tmp_path)
    assert code == want, err
    lines = err.splitlines()
    assert lines[-1].startswith("spad: interrupted") and len(lines) == 2, err  # + the estimate
    assert not any(f in err for f in FORBIDDEN)
    # ended by the signal, not by the simulation (within _interrupt's hang guard); the
    # seconds it takes are measured by make torture, not asserted: load makes them longer
    assert took < 30
    assert not list(tmp_path.iterdir())


def test_interrupted_analyze_stops_its_workers(tmp_path: Path) -> None:
    files = []
    for i in range(3):
        f = tmp_path / f"p{i}.ptu"
        shutil.copy(REAL_T3, f)
        files.append(str(f))

    def workers_started(pid: int) -> bool:
        # once the pool's two workers exist, not after some seconds (a busy machine may not
        # have started them yet, an idle one may have finished)
        out = subprocess.run(["ps", "--ppid", str(pid), "-o", "args="], capture_output=True,
                             text=True).stdout
        return sum("resource_tracker" not in line for line in out.splitlines()) >= 2

    code, err, took = _interrupt(["analyze", *files, "--jobs", "2", "--report", "rep"],
                                 signal.SIGINT, workers_started, tmp_path)
    if code == 0:
        pytest.skip("the analysis finished before the signal")
    assert code == 130, err
    assert err.strip().splitlines()[-1] == "spad: interrupted"
    assert not any(f in err for f in FORBIDDEN), err
    assert not (tmp_path / "rep").exists() or not any(
        p.name.startswith(".") for p in (tmp_path / "rep").iterdir())


def test_analyze_pool_shuts_down_cleanly(good: Path, tmp_path: Path) -> None:
    # The pool used to be left to the interpreter's exit: ~1 run in 7 printed
    # "Exception ignored in: <module 'threading'>". Now it is shut down explicitly.
    files = []
    for i in range(2):
        f = tmp_path / f"p{i}.ptu"
        shutil.copy(good, f)
        files.append(str(f))
    for _ in range(3):
        res = subprocess.run([SPAD, "analyze", *files, "--jobs", "2", "--json"],
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        assert not any(f in res.stderr for f in FORBIDDEN), res.stderr
