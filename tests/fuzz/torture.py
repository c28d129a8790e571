"""Reliability campaign (``make torture``): nothing recorded is lost, nothing is left running.

    python tests/fuzz/torture.py [--kills 30] [--signals 6] [--disk 4] [--corrupt 40]
                                 [--readme README.md]

Trials, each in a fresh ``spad`` process on the simulated rig:

- ``kill -9`` of ``spad acquire`` at a random moment, with a SWMR reader following the file
  and noting when each photon count became visible: the seconds lost per kill are the time
  from the last count the reader saw to the kill (an upper bound: that count was flushed just
  before it was seen), and the file must then hold at least that count;
- SIGTERM and SIGINT during ``spad acquire`` with a SWMR reader attached to the end: exit
  143 / 130 with one line, a finalised file (``/user/acquisition/final``) any HDF5 reader opens;
- ``kill -9``, SIGTERM and SIGINT during ``spad convert`` and ``spad batch``: the output is
  whole or absent;
- a disk that fills at a random moment of a recording (a 140 MB tmpfs filled by ``dd``; needs
  root to mount, skipped otherwise): the recording stops, finalised and readable;
- corrupt inputs (bit flips, overwrites, truncation of a particle file) to ``spad info`` and
  ``spad analyze``: exit 2 or 0, never a traceback.

Counted over all trials: files unreadable (by plain h5py, after spad's automatic repair for a
cut file), seconds lost per kill -9, orphans (a child process of a ``spad`` still alive 3 s
after the ``spad`` ended), tracebacks, hangs (a ``spad`` not ended 30 s after a signal).
``--readme`` writes the figures into the README between the ``torture`` markers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

SPAD = [sys.executable, "-m", "spad.app.cli"]
HANG_S = 30.0
ORPHAN_S = 3.0


class Tally:
    def __init__(self) -> None:
        self.trials: dict[str, int] = {}
        self.unreadable: list[str] = []
        self.lost_s: list[float] = []
        self.orphans: list[str] = []
        self.tracebacks: list[str] = []
        self.hangs: list[str] = []
        self.other: list[str] = []

    def count(self, kind: str) -> None:
        self.trials[kind] = self.trials.get(kind, 0) + 1


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _check_orphans(t: Tally, kids: list[int], what: str) -> None:
    end = time.monotonic() + ORPHAN_S
    while time.monotonic() < end and any(_alive(k) for k in kids):
        time.sleep(0.05)
    left = [k for k in kids if _alive(k)]
    if left:
        t.orphans.append(f"{what}: {left}")
        for k in left:
            with contextlib.suppress(OSError):
                os.kill(k, signal.SIGKILL)


def _finish(t: Tally, child: subprocess.Popen, what: str) -> str:
    try:
        _, err = child.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        t.hangs.append(what)
        child.kill()
        _, err = child.communicate()
    if "Traceback" in err:
        t.tracebacks.append(f"{what}: {err[-600:]}")
    return err


def _readable(t: Tally, path: Path, what: str, final: bool = False) -> int | None:
    """Photons in the file after spad opened it (repairing a cut file), checked with plain
    h5py; None (and counted) if unreadable."""
    import spad

    try:
        with spad.open(path) as reader:
            n = reader.meta.n_records
        with h5py.File(path, "r") as f:
            if final and "user/acquisition/final" not in f:
                raise ValueError("no /user/acquisition/final")
            return int(f["photon_data/timestamps"].shape[0]) if n is None else int(n)
    except Exception as exc:  # noqa: BLE001 - every failure is a finding
        t.unreadable.append(f"{what}: {exc}")
        return None


def _acquire(path: Path, duration: float = 120) -> subprocess.Popen:
    return subprocess.Popen([*SPAD, "acquire", "-o", str(path), "--duration", str(duration),
                             "--seed", str(random.randrange(1000)), "--exposure", "0.5",
                             "--particle", random.choice(["monomer", "dimer"])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def visible_count(path: Path, reader: h5py.File | None) -> tuple[int, h5py.File | None]:
    """The photons that a SWMR reader sees in a recording so far (0 before its photon table
    is there) and the reader to pass the next time (opened at the first call that can)."""
    try:
        if reader is None:
            reader = h5py.File(path, "r", libver="latest", swmr=True)
        ds = reader["photon_data/timestamps"]
        ds.refresh()
        return ds.shape[0], reader
    except (OSError, KeyError):
        return 0, reader


def _follow(child: subprocess.Popen, path: Path, run_s: float
            ) -> tuple[list[tuple[float, int]], list[int], h5py.File | None]:
    """Follow a recording in SWMR mode for ``run_s`` after its first photons: (wall time,
    count) each time the visible count changed, the child's processes, the open reader."""
    seen: list[tuple[float, int]] = []
    f = None
    end = time.monotonic() + 300
    first = None
    kids: list[int] = []
    while time.monotonic() < end and child.poll() is None:
        n, f = visible_count(path, f)
        now = time.monotonic()
        if n and (not seen or n != seen[-1][1]):
            seen.append((now, n))
            if first is None:
                first = now
                kids = _children(child.pid)
        if first is not None and now - first >= run_s:
            break
        time.sleep(0.01)
    return seen, kids, f


def kill_acquire(t: Tally, tmp: Path, i: int) -> None:
    path = tmp / f"k{i}.h5"
    child = _acquire(path)
    seen, kids, reader = _follow(child, path, random.uniform(0.5, 5.0))
    if not seen:
        t.other.append(f"kill {i}: no photons ({_finish(t, child, 'start')[-300:]})")
        return
    child.send_signal(signal.SIGKILL)
    t_kill = time.monotonic()
    child.wait()
    if reader is not None:
        reader.close()
    t.count("kill -9 acquire")
    _finish(t, child, f"kill -9 acquire {i}")
    _check_orphans(t, kids, f"kill -9 acquire {i}")
    n = _readable(t, path, f"kill -9 acquire {i}")
    last_t, last_n = seen[-1]
    if n is not None:
        if n < last_n:
            t.unreadable.append(f"kill -9 acquire {i}: {n} photons < {last_n} seen flushed")
        t.lost_s.append(t_kill - last_t)


def signal_acquire(t: Tally, tmp: Path, i: int, sig: int) -> None:
    path = tmp / f"s{i}.h5"
    child = _acquire(path)
    seen, kids, reader = _follow(child, path, random.uniform(0.2, 4.0))
    if not seen:
        t.other.append(f"signal {i}: no photons")
        _finish(t, child, "start")
        return
    name = signal.Signals(sig).name
    child.send_signal(sig)                     # the SWMR reader stays open to the end
    err = _finish(t, child, f"{name} acquire {i}")
    if reader is not None:
        reader.close()
    t.count(f"{name} acquire")
    _check_orphans(t, kids, f"{name} acquire {i}")
    want = 143 if sig == signal.SIGTERM else 130
    lines = [ln for ln in err.splitlines() if ln.startswith("spad:")]
    if child.returncode != want or len(lines) != 1:
        t.other.append(f"{name} acquire {i}: exit {child.returncode}, {lines}")
    with contextlib.suppress(OSError):
        with h5py.File(path, "r") as f:        # finalised: no repair needed
            if "user/acquisition/final" in f:
                return
    t.unreadable.append(f"{name} acquire {i}: not finalised")


def signal_convert_batch(t: Tally, tmp: Path, i: int, source: Path, session: Path) -> None:
    sig = random.choice([signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
    name = signal.Signals(sig).name
    if i % 2:
        out = tmp / f"c{i}.h5"
        argv = [*SPAD, "convert", str(source), str(out)]
        what = f"{name} convert {i}"
    else:
        out = tmp / f"b{i}.csv"
        argv = [*SPAD, "batch", str(session), "--out", str(out), "--workers", "2"]
        what = f"{name} batch {i}"
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(random.uniform(1.0, 8.0))
    kids = _children(child.pid)
    child.send_signal(sig)
    _finish(t, child, what)
    t.count("signal convert/batch")
    _check_orphans(t, kids, what)
    if out.suffix == ".h5" and out.exists():
        _readable(t, out, what)
    elif out.exists():
        text = out.read_text()
        if text and not text.endswith("\n"):
            t.unreadable.append(f"{what}: table cut off")


def disk_full(t: Tally, tmp: Path, i: int) -> bool:
    mount = tmp / f"disk{i}"
    mount.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=140m", "tmpfs", str(mount)],
                        capture_output=True).returncode == 0
    if not ok:
        return False
    try:
        path = mount / "d.h5"
        child = _acquire(path, duration=60)
        seen, kids, reader = _follow(child, path, random.uniform(0.0, 4.0))
        if reader is not None:
            reader.close()
        subprocess.run(["dd", "if=/dev/zero", f"of={mount / 'fill'}", "bs=1M", "count=200"],
                       capture_output=True)
        err = _finish(t, child, f"disk full {i}")
        t.count("disk full acquire")
        _check_orphans(t, kids, f"disk full {i}")
        if child.returncode not in (0, 2):
            t.other.append(f"disk full {i}: exit {child.returncode}: {err[-300:]}")
        (mount / "fill").unlink()
        _readable(t, path, f"disk full {i}", final=True)
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
    return True


def corrupt_inputs(t: Tally, tmp: Path, source: Path, n: int) -> None:
    from io import StringIO

    from spad.app.cli import main

    data = source.read_bytes()
    rng = np.random.default_rng(20)
    for i in range(n):
        b = bytearray(data)
        kind = i % 3
        if kind == 0:
            for pos in rng.integers(0, len(b), 20):
                b[pos] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            pos = int(rng.integers(0, len(b) - 64))
            b[pos:pos + 64] = bytes(rng.integers(0, 256, 64, dtype=np.uint8))
        else:
            b = b[:int(rng.integers(16, len(b)))]
        path = tmp / f"bad{i}.h5"
        path.write_bytes(bytes(b))
        for cmd in (["info", str(path)], ["analyze", str(path), "--jobs", "1"]):
            err = StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(StringIO()):
                code = main(cmd)
            t.count("corrupt input")
            if code not in (0, 1, 2) or "Traceback" in err.getvalue():
                t.tracebacks.append(f"{' '.join(cmd)}: exit {code}: {err.getvalue()[-400:]}")


def report(t: Tally, seconds: float) -> str:
    lost = np.asarray(t.lost_s)
    kills = t.trials.get("kill -9 acquire", 0)
    rows = [
        ("trials", ", ".join(f"{n} {k}" for k, n in t.trials.items())),
        ("files unreadable", str(len(t.unreadable))),
        ("seconds lost per kill -9",
         f"max {lost.max():.2f} s, median {np.median(lost):.2f} s over {kills} kills"
         if lost.size else "no kills"),
        ("orphans", str(len(t.orphans))),
        ("tracebacks", str(len(t.tracebacks))),
        ("hangs", str(len(t.hangs))),
        ("other findings", str(len(t.other))),
        ("campaign time", f"{seconds / 60:.1f} min"),
    ]
    return "\n".join(f"| {a} | {b} |" for a, b in rows)


def write_readme(readme: Path, table: str, command: str) -> None:
    text = readme.read_text()
    block = (f"<!-- torture -->\n`{command}` on {time.strftime('%Y-%m-%d')}:\n\n"
             f"| figure | value |\n|---|---|\n{table}\n<!-- /torture -->")
    new, n = re.subn(r"<!-- torture -->.*?<!-- /torture -->", block, text, flags=re.S)
    if n:
        readme.write_text(new)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=30)
    p.add_argument("--signals", type=int, default=6, help="SIGTERM and as many SIGINT")
    p.add_argument("--convert-batch", type=int, default=8)
    p.add_argument("--disk", type=int, default=4)
    p.add_argument("--corrupt", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--readme", type=Path)
    args = p.parse_args()
    random.seed(args.seed)
    t = Tally()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        source = tmp / "source.h5"
        subprocess.run([*SPAD, "simulate", "--duration", "30", "-o", str(source)], check=True,
                       capture_output=True)
        session = tmp / "session"
        session.mkdir()
        for k in range(4):
            shutil.copy(source, session / f"p{k}.h5")
        for i in range(args.kills):
            kill_acquire(t, tmp, i)
            print(f"kill -9 {i + 1}/{args.kills}", file=sys.stderr, flush=True)
        for i in range(2 * args.signals):
            signal_acquire(t, tmp, i, signal.SIGTERM if i % 2 == 0 else signal.SIGINT)
        for i in range(args.convert_batch):
            signal_convert_batch(t, tmp, i, source, session)
        for i in range(args.disk):
            if not disk_full(t, tmp, i):
                t.other.append("disk full: cannot mount a tmpfs (not root): skipped")
                break
        corrupt_inputs(t, tmp, source, args.corrupt)
    seconds = time.monotonic() - t0
    table = report(t, seconds)
    print(table)
    for name in ("unreadable", "orphans", "tracebacks", "hangs", "other"):
        for item in getattr(t, name):
            print(f"{name}: {item}")
    if args.readme:
        command = ("make torture" if sys.argv[1:] == ["--readme", str(args.readme)]
                   else "python tests/fuzz/torture.py " + " ".join(sys.argv[1:]))
        write_readme(args.readme, table, command)
    bad = t.unreadable or t.orphans or t.tracebacks or t.hangs or (
        t.lost_s and max(t.lost_s) > 1.0)
    print(json.dumps({"ok": not bad}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
