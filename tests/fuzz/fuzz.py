"""Fuzzing campaign of every reader and of the CLI's argument space (``make fuzz``).

    python tests/fuzz/fuzz.py [--seconds-per-target 60] [TARGET...]

Targets: ptu, pt3, ht3, photon-hdf5, sif, spe, csv, particle (each reader is fed mutations of a
small valid seed file: bit flips, byte overwrites with boundary values, insertions, deletions,
truncation), cli (argument lists drawn from the options of every command but ``gui``, with
good, bad and odd values and files; ``acquire`` records short particles on the simulated rig)
and gui-files (``spad gui FILE...`` offscreen: the window opened on drawn files and closed).
The mutations are drawn by hypothesis (not coverage-guided: hypothesis
dropped that; the seeds are chosen to reach every header field and record type instead).

The contract checked: a reader returns its data or raises :class:`spad.errors.SpadError`
(nothing else, no hang); the CLI exits 0, 1 or 2 with no traceback (70 is a bug). Every input
breaking it is saved under ``tests/fuzz/corpus/<target>/`` and from then on replayed by
``tests/test_fuzz_corpus.py`` in ``make test``. Prints executions and findings per target.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import shutil
import struct
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
DATA = HERE.parent / "data"
sys.path.insert(0, str(HERE.parent))


# -- what each reader must do ----------------------------------------------------------------

def read_time_tags(path: Path) -> None:
    import spad

    with spad.open(path) as f:
        f.meta  # noqa: B018 - the header is part of what is read
        for _ in f.chunks(4096):
            pass


def read_spectrum(path: Path) -> None:
    from spad.formats.spectra import open_spectrum

    open_spectrum(path)


def read_particle_file(path: Path) -> None:
    from spad.particle import read_particle

    read_particle(path)


def check_reader(read: Callable[[Path], None], path: Path) -> str | None:
    """``None`` if ``read`` kept the contract on ``path``, else what went wrong."""
    from spad.errors import SpadError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read(path)
    except SpadError:
        return None
    except Exception as exc:  # noqa: BLE001 - anything else is a finding
        return "".join(traceback.format_exception_only(exc)).strip()
    return None


# -- seeds ----------------------------------------------------------------

def _seed_ptu(tmp: Path) -> bytes:
    from spad.formats.ptu import write_ptu
    from spad.photons import PhotonChunk, Timing

    rng = np.random.default_rng(21)
    timing = Timing("T3", 2e-7, 64e-12, 2e-7, 3125)
    n = 40
    chunk = PhotonChunk(timing, np.sort(rng.integers(0, 3 * 10**6, n)), rng.integers(1, 3, n),
                        rng.integers(0, 3125, n), [1000, 90000], [1, 2])
    write_ptu(tmp / "s.ptu", chunk, comment="fuzz")
    return (tmp / "s.ptu").read_bytes()


def _seed_pt3(tmp: Path) -> bytes:
    from test_formats_legacy import _pt3_photons, pt3_file

    return pt3_file(tmp, _pt3_photons(40)).read_bytes()


def _seed_ht3(tmp: Path) -> bytes:
    import spad

    raw = (DATA / "picoquant-sample-data" / "v20.ht3").read_bytes()
    with spad.open(DATA / "picoquant-sample-data" / "v20.ht3") as r:
        n = r.meta.n_records
    return raw[:len(raw) - 4 * (n - 64)]  # the header and the first 64 records


def _seed_h5(tmp: Path) -> bytes:
    from spad.formats.photon_hdf5_writer import PhotonHdf5Writer
    from spad.photons import PhotonChunk, Timing

    rng = np.random.default_rng(3)
    timing = Timing("T3", 1e-7, 16e-12, 1e-7, 6250)
    n = 40
    chunk = PhotonChunk(timing, np.sort(rng.integers(0, 10**6, n)), rng.integers(1, 3, n),
                        rng.integers(0, 6250, n))
    with PhotonHdf5Writer(tmp / "s.h5", timing) as w:
        w.write(chunk)
    return (tmp / "s.h5").read_bytes()


def _seed_particle(tmp: Path) -> bytes:
    from spad.app.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        main(["simulate", "--duration", "0.02", "--exposure", "0.01", "--read-mode", "fvb",
              "-o", str(tmp / "p.h5")])
    return (tmp / "p.h5").read_bytes()


def _seed_csv(tmp: Path) -> bytes:
    rows = "\n".join(f"{600 + 0.1 * i:.2f},{100 + 50 * np.exp(-((i - 40) / 8) ** 2):.1f}"
                     for i in range(80))
    return ("wavelength_nm,counts\n" + rows + "\n").encode()


READERS: dict[str, tuple[Callable[[Path], bytes], str, Callable[[Path], None]]] = {
    "ptu": (_seed_ptu, ".ptu", read_time_tags),
    "pt3": (_seed_pt3, ".pt3", read_time_tags),
    "ht3": (_seed_ht3, ".ht3", read_time_tags),
    "photon-hdf5": (_seed_h5, ".h5", read_time_tags),
    "sif": (lambda t: (DATA / "spectra" / "sif_parser" / "cli-0.sif").read_bytes(), ".sif",
            read_spectrum),
    "spe": (lambda t: (DATA / "spectra" / "SPE_Handler" / "Test5.spe").read_bytes(), ".spe",
            read_spectrum),
    "csv": (_seed_csv, ".csv", read_spectrum),
    "particle": (_seed_particle, ".h5", read_particle_file),
}

BOUNDARY = [0, 1, 0x7F, 0x80, 0xFF]


@st.composite
def mutations(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "byte", "word", "insert", "delete", "truncate"]))
        if not data:
            break
        # Headers hold most of the structure: half the mutations land in the first 1 kB.
        hi = len(data) - 1 if draw(st.booleans()) else min(len(data) - 1, 1023)
        pos = draw(st.integers(0, hi))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[pos] = draw(st.sampled_from(BOUNDARY) | st.integers(0, 255))
        elif kind == "word" and pos + 8 <= len(data):
            value = draw(st.sampled_from([0, 1, -1, 2**31 - 1, -2**31, 2**32 - 1, 2**63 - 1]))
            data[pos:pos + 8] = struct.pack("<q", value) if value >= -2**63 and value < 2**63 \
                else data[pos:pos + 8]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 64))]
        elif kind == "truncate":
            del data[pos:]
    return bytes(data)


def save_finding(target: str, content: bytes, ext: str, problem: str) -> Path:
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (hashlib.sha1(content).hexdigest()[:16] + ext)
    path.write_bytes(content)
    path.with_name(path.name + ".txt").write_text(problem + "\n")
    return path


def fuzz_reader(target: str, seconds: float, tmp: Path) -> tuple[int, list[str]]:
    make_seed, ext, read = READERS[target]
    seed = make_seed(tmp)
    found: list[str] = []
    count = [0]
    stop = time.monotonic() + seconds
    case = tmp / f"case{ext}"

    @settings(max_examples=BATCH, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(mutations(seed))
    def run(content: bytes) -> None:
        if time.monotonic() > stop:
            return
        count[0] += 1
        case.write_bytes(content)
        problem = check_reader(read, case)
        if problem is not None:
            found.append(problem)
            save_finding(target, content, ext, problem)

    while time.monotonic() < stop:  # hypothesis has no time budget: batches until it is up
        run()
    return count[0], found


BATCH = 200
"""Examples per hypothesis run (each run draws afresh)."""


# -- the CLI's argument space ----------------------------------------------------------------

def cli_values(files: dict[str, str]) -> dict[str, st.SearchStrategy]:
    number = st.sampled_from(["0", "-1", "1e9", "nan", "inf", "abc", "", "0.01", "1", "2",
                              "1e-300", "-0", "3.5"])
    path = st.sampled_from(list(files.values()))
    return {"number": number, "path": path,
            "text": st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)}


COMMAND_OPTIONS = {
    "info": ["--json"],
    "convert": ["--format", "--record-type"],
    "simulate": ["--particle", "--duration", "--seed", "--format", "--neck-nm", "--mode",
                 "--count-rate", "--vary", "--spectrum-s", "--read-mode", "--exposure",
                 "--em-gain", "--force"],
    "analyze": ["--spectrum", "--json", "--save", "--reference-ev", "--gate-ns", "--bin-ms",
                "--irf", "--detectors", "--jobs"],
    "acquire": ["--until-confident", "--g2-err-max", "--name", "--exposure", "--compress",
                "--em-gain", "--particle", "--seed", "--json", "--config"],
    "replay": ["--speed", "--until-confident", "--json"],
    "batch": ["--report", "--workers", "--settings", "--fresh", "--scheduler"],
    "repair": [],
    "devices": ["--config", "--json"],
}
"""Options drawn per command; every command but ``gui`` (which opens a window: its file
arguments have their own target, ``gui-files``)."""

FLAGS = ("--json", "--vary", "--force", "--save", "--compress", "--fresh")


@st.composite
def argv_lists(draw: st.DrawFn, files: dict[str, str], out: str) -> list[str]:
    from spad.app.cli import COMMANDS

    vals = cli_values(files)
    command = draw(st.sampled_from([c for c in COMMANDS if c != "gui"]))
    argv = [command]
    opts = COMMAND_OPTIONS.get(command, [])
    if command in ("info", "analyze", "repair"):
        argv += draw(st.lists(vals["path"], min_size=0, max_size=3))
    elif command == "replay":
        argv += draw(st.lists(vals["path"], min_size=0, max_size=1))
        # as fast as the file reads, unless --speed is drawn below (its range is checked)
    elif command == "batch":
        argv += draw(st.lists(vals["path"], min_size=0, max_size=2))
        argv += ["--out", draw(st.sampled_from([out + ".csv", files["folder"], "/no/t.csv"]))]
    elif command == "acquire":
        # the simulated rig, delivering as fast as it simulates: a short particle
        argv += ["-o", draw(st.sampled_from([out, files["folder"] + "/s", "/no/x.h5",
                                             files["good"]])),
                 "--fast", "--duration", draw(st.sampled_from(["0.3", "0", "-1", "nan"]))]
    elif command == "convert":
        argv += draw(st.lists(vals["path"] | st.just(out), min_size=0, max_size=3))
    elif command == "simulate":
        argv += ["-o", draw(st.sampled_from([out, out + ".ptu", files["folder"], "/no/x.h5"]))]
        argv += ["--duration", draw(st.sampled_from(["0.02", "0", "-1", "nan", "1e9", "x"]))]
    for _ in range(draw(st.integers(0, 4))):
        opt = draw(st.sampled_from(opts + ["--bogus"]))
        argv.append(opt)
        if opt in FLAGS:
            continue
        if opt in ("--spectrum", "--irf", "--settings", "--config"):
            argv.append(draw(vals["path"]))
        elif opt == "--detectors":
            argv += [draw(vals["number"]), draw(vals["number"])]
        elif opt == "--duration":
            argv.append(draw(st.sampled_from(["0.02", "0", "-1", "nan", "1e12"])))
        elif opt == "--spectrum-s":
            argv.append(draw(st.sampled_from(["0", "-1", "nan", "1e9", "0.02"])))
        else:
            argv.append(draw(vals["number"] | vals["text"]))
    return argv


def _cli_files(tmp: Path) -> dict[str, str]:
    """The files the CLI targets draw from: a good particle file, a real PTU, random bytes,
    an empty file, a missing one, a folder, a text file and a FIFO."""
    import os

    files = {"good": str(tmp / "good.h5"), "random": str(tmp / "random.ptu"),
             "empty": str(tmp / "empty.h5"), "missing": str(tmp / "missing.pt3"),
             "folder": str(tmp / "folder"), "text": str(tmp / "notes.csv"),
             "fifo": str(tmp / "fifo.ptu")}
    Path(files["good"]).write_bytes(_seed_particle(tmp))  # small: the CLI runs fast on it
    shutil.copy(DATA / "picoquant-sample-data" / "v20_t3.ptu", tmp / "real.ptu")
    files["real"] = str(tmp / "real.ptu")
    Path(files["random"]).write_bytes(np.random.default_rng(1).bytes(3000))
    Path(files["empty"]).write_bytes(b"")
    Path(files["folder"]).mkdir(exist_ok=True)
    Path(files["text"]).write_text("a,b\n1,2\n")
    if not Path(files["fifo"]).exists():
        os.mkfifo(files["fifo"])
    return files


def fuzz_cli(seconds: float, tmp: Path) -> tuple[int, list[str]]:
    from spad.app.cli import main

    files = _cli_files(tmp)
    out = str(tmp / "out.h5")
    found: list[str] = []
    count = [0]
    stop = time.monotonic() + seconds

    @settings(max_examples=BATCH, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(argv_lists(files, out))
    def run(argv: list[str]) -> None:
        if time.monotonic() > stop:
            return
        count[0] += 1
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 2
        text = err.getvalue()
        bad = code not in (0, 1, 2) or "Traceback" in text or ".part" in text
        if bad:
            problem = f"exit {code}: {' '.join(argv)}\n{text[-2000:]}"
            found.append(problem)
            save_finding("cli", json.dumps(argv).encode(), ".json", problem)
        for p in Path(tmp).glob("out*"):
            p.unlink()

    try:
        while time.monotonic() < stop:
            run()
    finally:
        from spad.app.acquisition.engine import shutdown_workers

        shutdown_workers()   # spad acquire's live-analysis worker, started in this process
    return count[0], found


def fuzz_gui_files(seconds: float, tmp: Path) -> tuple[int, list[str]]:
    """``spad gui FILE...`` with drawn file lists, offscreen: the window is made (the files
    opened in the analysis mode) and closed at once instead of running the event loop."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from spad.gui import app as gui_app

    from spad.app.cli import main

    files = _cli_files(tmp)
    opened = [0]

    def run_app(paths: list[str], config: Path | None = None) -> int:
        from PyQt5 import QtWidgets

        app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["spad"])
        w = gui_app.make_window(paths, config)
        app.processEvents()
        w.close()
        opened[0] += 1
        return 0

    gui_app.run_app = run_app
    found: list[str] = []
    count = [0]
    stop = time.monotonic() + seconds

    @settings(max_examples=BATCH, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(st.sampled_from([f for k, f in files.items() if k != "missing"]
                                    + [files["missing"]]), min_size=1, max_size=3))
    def run(paths: list[str]) -> None:
        if time.monotonic() > stop:
            return
        count[0] += 1
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(["gui", *paths])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 2
        text = err.getvalue()
        if code not in (0, 2) or "Traceback" in text:
            problem = f"exit {code}: gui {' '.join(paths)}\n{text[-2000:]}"
            found.append(problem)
            save_finding("gui-files", json.dumps(["gui", *paths]).encode(), ".json", problem)

    while time.monotonic() < stop:
        run()
    return count[0], found


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("targets", nargs="*", default=[*READERS, "cli", "gui-files"])
    p.add_argument("--seconds-per-target", type=float, default=60.0)
    args = p.parse_args()
    total = 0
    summary = {}
    for target in args.targets:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.monotonic()
            if target == "cli":
                n, found = fuzz_cli(args.seconds_per_target, Path(tmp))
            elif target == "gui-files":
                n, found = fuzz_gui_files(args.seconds_per_target, Path(tmp))
            else:
                n, found = fuzz_reader(target, args.seconds_per_target, Path(tmp))
        kinds = sorted({f.splitlines()[0][:160] for f in found})
        summary[target] = {"executions": n, "findings": len(found), "kinds": kinds}
        total += n
        print(f"{target:12s} {n:7d} executions in {time.monotonic() - t0:5.0f} s, "
              f"{len(found)} findings" + "".join(f"\n    {k}" for k in kinds), flush=True)
    print(f"total {total} executions")
    return 1 if any(s["findings"] for s in summary.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
