"""``spad batch`` end to end: a LocalCluster of 2 workers, a separate scheduler and worker on
127.0.0.1, resuming after a killed batch, and a corrupt file among good ones."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from spad.analysis.schema import csv_columns

from spad.app.batch import JOURNAL_SUFFIX, expand_inputs, table_columns
from spad.app.cli import main
from spad.errors import SpadError

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def survey(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three monomers and three dimers, 4 s each, with particle-to-particle spread."""
    folder = tmp_path_factory.mktemp("survey")
    for i in range(3):
        for kind, seed in (("monomer", i + 1), ("dimer", i + 11)):
            assert main(["simulate", "--particle", kind, "--vary", "--duration", "4", "--seed",
                         str(seed), "-o", str(folder / f"{kind}_{i}.h5")]) == 0
    return folder


def _corrupt(folder: Path) -> Path:
    bad = folder / "corrupt.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00\xff" * 500)  # HDF5 signature, then junk
    return bad


def _flat(rec: dict) -> dict:
    """A `spad analyze --json` record as a table row names it: the verdict unnested."""
    out = {k: v for k, v in rec.items() if k != "classification"}
    verdict = dict(rec["classification"])
    verdict.pop("inputs")  # each feature's value and error: columns of their own already
    verdict["no_information"] = ", ".join(verdict["no_information"])
    out.update({f"evidence_{k}": v for k, v in verdict.pop("evidence").items()}, **verdict)
    return out


def _journal_lines(table: Path) -> list[dict]:
    path = Path(str(table) + JOURNAL_SUFFIX)
    out = []
    for line in path.read_bytes().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def test_local_cluster_corrupt_file_report_and_resume(survey, tmp_path, capsys) -> None:
    bad = _corrupt(tmp_path)
    table = tmp_path / "out" / "results.parquet"
    code = main(["batch", str(survey), str(bad), "--out", str(table), "--workers", "2",
                 "--report", str(tmp_path / "report")])
    err = capsys.readouterr().err
    assert code == 1  # one file failed, the rest went on
    assert f"spad: error: {bad}" in err and "Traceback" not in err
    read = pq.read_table(table)
    assert read.column_names == table_columns()
    assert read.column_names[:len(csv_columns())] == list(csv_columns())
    assert str(read.schema.field("photons").type) == "int64"
    assert str(read.schema.field("spectrum_file").type) == "string"
    rows = {Path(r["file"]).name: r for r in read.to_pylist()}
    assert len(rows) == 7
    assert rows["corrupt.h5"]["error"].startswith(str(bad))
    assert rows["corrupt.h5"]["g2_zero"] is None

    # every field of `spad analyze --json`, with the same values, plus the batch's own columns
    assert main(["analyze", *map(str, sorted(survey.glob("*.h5"))), "--json", "--jobs",
                 "1"]) == 0
    analyzed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(analyzed) == 6
    for rec in analyzed:
        row = rows[Path(rec["file"]).name]
        assert row["error"] is None and len(row["settings_hash"]) == 16
        assert row["spad_version"] and len(row["content_hash"]) == 32
        for key, value in _flat(rec).items():
            assert row[key] == pytest.approx(value), key
    labels = sorted(r["label"] for r in rows.values() if r["error"] is None)
    assert labels == ["dimer"] * 3 + ["monomer"] * 3

    stats = json.loads((tmp_path / "report" / "survey.json").read_text())
    assert stats["verdicts"] == {"monomer": 3, "dimer": 3, "uncertain": 0}
    assert stats["failed"] == 1 and stats["files"] == 7
    assert stats["red_shift"]["shift_mev"] is not None
    assert stats["g2_zero"]["monomer"]["n"] == 3
    assert sum(stats["lifetime_ns"]["dimer"]["counts"]) == 3
    assert (tmp_path / "report" / "survey.png").stat().st_size > 10_000

    # again: the good files are up to date, the corrupt one is tried again
    code = main(["batch", str(survey), str(bad), "--out", str(table), "--workers", "2"])
    assert code == 1
    assert "7 files, 6 up to date, 1 to analyse" in capsys.readouterr().err
    # a touched file whose content did not change is not analysed again
    touched = sorted(survey.glob("*.h5"))[0]
    os.utime(touched, ns=(time.time_ns(), time.time_ns()))
    assert main(["batch", str(survey), "--out", str(table), "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert "6 files, 5 up to date, 1 to analyse" in err and "0 analysed" in err
    assert len(pq.read_table(table)) == 6

    # the same journal serves a CSV table
    table_csv = tmp_path / "results.csv"
    shutil.copy(str(table) + JOURNAL_SUFFIX, str(table_csv) + JOURNAL_SUFFIX)
    assert main(["batch", str(survey), "--out", str(table_csv)]) == 0
    assert "6 up to date, 0 to analyse" in capsys.readouterr().err
    with table_csv.open() as f:
        csv_rows = list(csv.DictReader(f))
    assert len(csv_rows) == 6
    assert {r["label"] for r in csv_rows} == {"monomer", "dimer"}


def test_other_settings_are_analysed_again(survey, tmp_path, capsys) -> None:
    table = tmp_path / "r.parquet"
    files = [str(p) for p in sorted(survey.glob("monomer_*.h5"))[:1]]
    assert main(["batch", *files, "--out", str(table), "--workers", "1"]) == 0
    first = pq.read_table(table).to_pylist()[0]
    settings = tmp_path / "s.toml"
    settings.write_text("gate_ns = 8.0\nbin_ms = 20\n")
    assert main(["batch", *files, "--out", str(table), "--workers", "1", "--settings",
                 str(settings)]) == 0
    assert "1 files, 0 up to date, 1 to analyse" in capsys.readouterr().err
    second = pq.read_table(table).to_pylist()[0]
    assert second["settings_hash"] != first["settings_hash"]
    assert second["g2_zero_gated"] != first["g2_zero_gated"]


def test_remote_scheduler_and_worker_processes(survey, tmp_path, capsys) -> None:
    """A `dask scheduler` and a `dask worker` started as their own processes on 127.0.0.1."""
    from dask.distributed import Client

    sched_file = tmp_path / "scheduler.json"
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    procs = [subprocess.Popen([BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(sched_file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)]
    try:
        deadline = time.monotonic() + 120      # a hang guard
        address = None
        while address is None and time.monotonic() < deadline:
            try:   # until the scheduler has written its whole file, however long it takes
                address = json.loads(sched_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.2)
        assert address.startswith("tcp://127.0.0.1:")
        procs.append(subprocess.Popen(
            [BIN / "dask", "worker", address, "--nworkers", "1", "--nthreads", "1",
             "--no-dashboard", "--host", "127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        with Client(address, timeout="30s") as c:
            c.wait_for_workers(1, timeout=90)
        table = tmp_path / "remote.csv"
        files = [str(p) for p in sorted(survey.glob("*_0.h5"))]
        assert main(["batch", *files, "--out", str(table), "--scheduler", address]) == 0
        assert "2 analysed" in capsys.readouterr().err
        with table.open() as f:
            rows = list(csv.DictReader(f))
        assert sorted(r["label"] for r in rows) == ["dimer", "monomer"]
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_resume_after_killing_a_batch(survey, tmp_path, capsys) -> None:
    table = tmp_path / "killed.parquet"
    journal = Path(str(table) + JOURNAL_SUFFIX)
    proc = subprocess.Popen([BIN / "spad", "batch", str(survey), "--out", str(table),
                             "--workers", "1"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.exists() and journal.read_bytes().count(b"\n") >= 1:
                break
            time.sleep(0.05)
    finally:
        # kill the batch and its worker processes at once, as a crash would
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    done = _journal_lines(table)
    assert 1 <= len(done) < 6, "the batch should have been killed half-way"
    with journal.open("ab") as f:  # a line cut short by the kill
        f.write(b'{"file": "/half/writ')
    assert main(["batch", str(survey), "--out", str(table), "--workers", "2"]) == 0
    err = capsys.readouterr().err
    assert f"6 files, {len(done)} up to date, {6 - len(done)} to analyse" in err
    lines = _journal_lines(table)
    # what finished before the kill was kept and not recomputed
    assert [line["file"] for line in lines].count(done[0]["file"]) == 1
    assert len(pq.read_table(table)) == 6


def test_inputs_and_settings_errors(survey, tmp_path, capsys) -> None:
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    shutil.copy(next(survey.glob("*.h5")), sub / "p.h5")
    (sub / "p.user.h5").write_bytes(b"sidecar")
    (sub / "notes.txt").write_text("x")
    assert expand_inputs([tmp_path / "a"]) == [str(sub / "p.h5")]
    assert expand_inputs([str(tmp_path / "a" / "**" / "*.h5")]) == [str(sub / "p.h5")]
    with pytest.raises(SpadError, match="no such file"):
        expand_inputs([tmp_path / "missing"])
    bad = tmp_path / "s.json"
    bad.write_text('{"gate_ns": 5, "colour": "red"}')
    assert main(["batch", str(sub), "--out", str(tmp_path / "t.parquet"), "--settings",
                 str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"spad: error: {bad}: unknown setting 'colour' (known: gate_ns, "
                           "bin_ms, irf, detectors, reference_ev)")
    assert main(["batch", str(sub), "--out", str(tmp_path / "t.xlsx")]) == 2
    assert "must end in .parquet" in capsys.readouterr().err
