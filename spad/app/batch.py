"""Whole surveys: every particle file analysed on Dask, resumable, into one table and a report.

This is the engine of ``spad batch`` (the command line is :mod:`spad.app.commands.batch`)::

    from spad.app.batch import run_batch
    summary = run_batch(["session/"], "results.parquet", report="report/", workers=2)

How it works
------------
- Each particle file is one task, :func:`analyze_file`, run on a Dask cluster (a LocalCluster of
  one single-threaded worker process per core, or an existing scheduler by address). The task
  runs :func:`spad.analysis.particle.analyze_particle` -- the code ``spad analyze`` runs -- and
  returns the result without its arrays (traces, decays, correlations: what figures need, not
  the table), pickled, so the client only stores bytes.
- At most a few tasks per worker are in flight (a bounded window of futures): thousands of files
  never sit on the client or the scheduler at once.
- Every finished file is appended to the journal ``OUT.journal`` (one JSON line, flushed and
  synced) before the next is submitted: a batch that is killed keeps everything it finished.
- Resuming: a file is not analysed again when the journal holds a result for the same path,
  settings hash and analysis code, and the file's size and modification time are unchanged; if
  they changed, the worker hashes the content (BLAKE2b) and reuses the result when the content
  is the same. Failed files are tried again on every run.
- The table is written at the end (and when the batch is interrupted) from the journal, in three
  streaming passes over it: the session's monomer reference peak energy
  (:func:`spad.analysis.particle.session_reference_ev`), the columns, then the rows, each particle
  classified by :func:`spad.analysis.particle.classify_session` exactly as ``spad analyze`` does.
  The columns are those of :func:`table_columns`, declared by :mod:`spad.analysis.schema`: every
  field of ``ParticleResult.record()`` (``spad analyze --json``) with the verdict unnested
  (``label``, ``probability``, ``p_dimer``, ``model``, ``evidence_g2_zero``, ...), then
  ``error``, ``content_hash``, ``settings_hash`` and ``spad_version``.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import gc
import glob
import hashlib
import json
import logging
import math
import os
import pickle
import re
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import spad
from spad.analysis.particle import ParticleResult, analyze_particle
from spad.analysis.photon_analysis import AnalysisSettings
from spad.errors import SpadError
from spad.particle import PARTICLE_SUFFIXES, SIDECAR_SUFFIX, particle_files

JOURNAL_SUFFIX = ".journal"
"""The journal of ``OUT`` is ``OUT.journal``, next to it."""

TABLE_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}

CHUNK = 256
"""Particles classified and written per step when the table is written."""

META_COLUMNS = ("error", "content_hash", "settings_hash", "spad_version")
"""Columns after the record's fields."""


# --------------------------------------------------------------------------- inputs and hashes

def expand_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Particle files named by files, directories (searched recursively) and glob patterns.

    Raises
    ------
    SpadError
        For an argument that names nothing.
    """
    found: dict[str, None] = {}
    for item in map(str, inputs):
        if any(c in item for c in "*?[") and not os.path.exists(item):
            paths = sorted(glob.glob(item, recursive=True))
        elif os.path.isdir(item):
            paths = [str(p) for p in particle_files(item, recursive=True)]
        elif os.path.exists(item):
            paths = [item]
        else:
            raise SpadError(f"{item}: no such file, directory or matching files")
        paths = [p for p in paths if os.path.isfile(p) and not p.endswith(SIDECAR_SUFFIX)]
        if not paths:
            raise SpadError(f"{item}: no particle files ({', '.join(PARTICLE_SUFFIXES)})")
        found.update(dict.fromkeys(paths))
    return list(found)


def content_hash(path: str | os.PathLike[str]) -> str:
    """BLAKE2b (128 bit) of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def settings_hash(settings: AnalysisSettings) -> str:
    """Hash of every analysis setting (a measured IRF by its values), 16 hex digits."""
    d = dataclasses.asdict(settings)
    irf = d.pop("irf")
    if irf is not None:
        a = np.ascontiguousarray(irf, dtype=np.float64)
        d["irf"] = [list(a.shape), hashlib.blake2b(a.tobytes(), digest_size=16).hexdigest()]
    text = json.dumps(d, sort_keys=True, default=list)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def code_id() -> str:
    """spad's version and a hash of the analysis sources: cached results are reused only by the
    same analysis code (a development install keeps its version number while the code moves)."""
    from spad import analysis

    h = hashlib.blake2b(digest_size=6)
    root = Path(analysis.__file__).parent
    for p in sorted(root.rglob("*")):
        if p.suffix in (".py", ".json") and p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return f"{spad.__version__}+{h.hexdigest()}"


# --------------------------------------------------------------------------- the task

def slim(result: ParticleResult) -> ParticleResult:
    """The result without its arrays and figure data, for the table: what ``record()`` and the
    classifier read stays (scalars, notes), everything array-like or nested goes."""
    def strip(obj: Any) -> Any:
        changes = {}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if isinstance(v, np.ndarray):
                changes[f.name] = v[:0]
            elif dataclasses.is_dataclass(v):
                changes[f.name] = None
        return dataclasses.replace(obj, **changes)

    out = dataclasses.replace(result, photons=strip(result.photons))
    if result.spectrum is not None:
        out.spectrum = strip(result.spectrum)
    return out


def analyze_file(path: str, settings: AnalysisSettings, known_hash: str | None = None
                 ) -> dict[str, Any]:
    """One file on a worker: hash it, analyse it unless its content is ``known_hash``.

    Returns
    -------
    ``{"file", "size", "mtime_ns", "content_hash", "seconds", "cpu_seconds", "finished_unix_s",
    "unchanged", "error", "result"}``;
    ``result`` is the pickled :func:`slim` result, ``error`` one line naming the file. Nothing
    is raised: a failing file must not stop the batch.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    out: dict[str, Any] = {"file": path, "size": None, "mtime_ns": None, "content_hash": None,
                           "unchanged": False, "error": None, "result": None}
    try:
        st = os.stat(path)
        out["size"], out["mtime_ns"] = st.st_size, st.st_mtime_ns
        out["content_hash"] = content_hash(path)
        if known_hash is not None and out["content_hash"] == known_hash:
            out["unchanged"] = True
        else:
            result = analyze_particle(path, settings)
            out["result"] = pickle.dumps(slim(result), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - any failure becomes this file's error row
        text = str(exc) if isinstance(exc, SpadError | OSError | ValueError) \
            else f"{type(exc).__name__}: {exc}"
        out["error"] = text if text.startswith(path) else f"{path}: {text}"
    out["seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = time.process_time() - c0  # << seconds: the core was shared
    out["finished_unix_s"] = time.time()
    return out


# --------------------------------------------------------------------------- the journal

class Journal:
    """Append-only JSON-lines store of finished files, ``OUT.journal``.

    Each line: ``file, size, mtime_ns, content_hash, settings_hash, code, seconds`` (task time
    on the worker), ``cpu_seconds, finished_unix_s, error, result`` (base64 of the pickled
    slim result). The latest line per (file, settings hash, code) counts. A line cut short by
    a kill is skipped. One batch at a time: the journal is locked while open.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.index: dict[tuple[str, str, str], tuple[int, dict[str, Any]]] = {}
        self.lines = 0
        self._fh = open(self.path, "a+b")  # noqa: SIM115 - held for the lock's lifetime
        try:
            import fcntl

            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # no fcntl (Windows): no lock
            pass
        except OSError:
            self._fh.close()
            raise SpadError(f"{self.path}: in use by another spad batch") from None
        self._load()

    def _load(self) -> None:
        self._fh.seek(0)
        offset = 0
        for line in self._fh:
            try:
                e = json.loads(line)
                key = (e["file"], e["settings_hash"], e["code"])
            except (ValueError, KeyError, TypeError):
                e = None  # torn last line of a killed batch
            if e is not None:
                e.pop("result", None)
                self.index[key] = (offset, e)
                self.lines += 1
            offset += len(line)
        self._torn = offset > 0 and self._last_byte() != b"\n"

    def _last_byte(self) -> bytes:
        self._fh.seek(-1, os.SEEK_END)
        return self._fh.read(1)

    def lookup(self, file: str, shash: str, code: str) -> tuple[int, dict[str, Any]] | None:
        return self.index.get((file, shash, code))

    def append(self, entry: dict[str, Any], blob: bytes | None) -> None:
        """Write one entry and sync it to disk."""
        line = dict(entry, result=None if blob is None else base64.b64encode(blob).decode())
        data = (json.dumps(line) + "\n").encode()
        self._fh.seek(0, os.SEEK_END)
        if self._torn:  # end the torn line so this one stands alone
            self._fh.write(b"\n")
            self._torn = False
        offset = self._fh.tell()
        self._fh.write(data)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.index[(entry["file"], entry["settings_hash"], entry["code"])] = (offset, entry)
        self.lines += 1

    def blob(self, offset: int) -> bytes | None:
        self._fh.seek(offset)
        r = json.loads(self._fh.readline())["result"]
        return None if r is None else base64.b64decode(r)

    def result(self, offset: int) -> ParticleResult:
        blob = self.blob(offset)
        if blob is None:
            raise ValueError("journal entry has no result")
        return pickle.loads(blob)

    def compact(self) -> None:
        """Rewrite the journal with only the latest entry per key (when it has grown 2x)."""
        if self.lines <= 2 * len(self.index):
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        new_index = {}
        with open(tmp, "wb") as out:
            for key, (offset, entry) in self.index.items():
                self._fh.seek(offset)
                line = self._fh.readline()
                new_index[key] = (out.tell(), entry)
                out.write(line)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)  # the lock stays on the old inode until we reopen
        self._fh.close()
        self._fh = open(self.path, "a+b")  # noqa: SIM115
        with contextlib.suppress(ImportError, OSError):
            import fcntl

            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.index, self.lines, self._torn = new_index, len(new_index), False

    def close(self) -> None:
        self._fh.close()


# --------------------------------------------------------------------------- the table

def table_columns() -> list[str]:
    """The table's columns, from :mod:`spad.analysis.schema`: the population-table columns (file,
    verdict, every scalar of the record), each feature's evidence, the features that carried
    no evidence (comma-separated; their values and errors are columns already), the notes, then
    :data:`META_COLUMNS`."""
    from spad.analysis.schema import PHOTON_FEATURES, SPECTRUM_FEATURES, csv_columns

    return [*csv_columns(), *(f"evidence_{n}" for n in PHOTON_FEATURES + SPECTRUM_FEATURES),
            "no_information", "notes", *META_COLUMNS]


def _text_columns() -> set[str]:
    from spad.analysis.schema import FIELDS

    return {f.name for f in FIELDS if f.unit == "text"} | set(META_COLUMNS) | {"no_information"}


def _records(journal: Journal, entries: Sequence[tuple[int, dict[str, Any]]],
             session: Any, clf: Any) -> Iterator[tuple[dict[str, Any], Any]]:
    """(journal entry, record) per file in order, classified in chunks with the session's
    mixture (:class:`spad.analysis.session.SessionModel`); failed files (or unreadable cached
    results) give ``record = None``."""
    from spad.analysis.particle import classify_session

    for start in range(0, len(entries), CHUNK):
        part = [e for _, e in entries[start:start + CHUNK]]
        results: list[ParticleResult | None] = []
        for i, (offset, e) in enumerate(entries[start:start + CHUNK]):
            r = None
            if e["error"] is None:
                try:
                    r = journal.result(offset)
                except Exception as exc:  # noqa: BLE001 - stale cache from other code
                    part[i] = dict(e, error=f"{e['file']}: cached result unreadable ({exc}); "
                                            "run again with --fresh")
            results.append(r)
        ok = [r for r in results if r is not None]
        # every chunk is judged against the mixture of the whole session
        classify_session(ok, classifier=clf, session=session)
        for e, r in zip(part, results, strict=True):
            yield e, None if r is None else r.record()


def _row(entry: dict[str, Any], record: dict[str, Any] | None,
         columns: Sequence[str]) -> dict[str, Any]:
    """One table row: the record's fields, the verdict's fields and evidence unnested."""
    from spad.analysis.schema import CLASSIFICATION_FIELDS

    row: dict[str, Any] = dict.fromkeys(columns)
    row["file"] = entry["file"]
    if record is not None:
        verdict = record.get("classification") or {}
        for k, v in record.items():
            if k != "classification":
                row[k] = v
        for k in CLASSIFICATION_FIELDS:
            row[k] = verdict.get(k)
        for k, v in (verdict.get("evidence") or {}).items():
            row[f"evidence_{k}"] = v
        if verdict:
            row["no_information"] = ", ".join(verdict.get("no_information") or [])
    row.update(error=entry["error"], content_hash=entry["content_hash"],
               settings_hash=entry["settings_hash"], spad_version=entry["code"].split("+")[0])
    if len(row) != len(columns):  # a record field the schema does not declare
        raise SpadError(f"record fields {sorted(set(row) - set(columns))} are not in "
                        "spad.analysis.schema")
    return row


def _kind(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, list | tuple):
        return "list"
    return "str"


def _arrow_type(kinds: set[str]) -> Any:
    import pyarrow as pa

    if "list" in kinds:
        return pa.list_(pa.string())
    if "str" in kinds:
        return pa.string()
    if kinds == {"bool"}:
        return pa.bool_()
    if kinds == {"int"}:
        return pa.int64()
    return pa.float64()  # floats, ints mixed with floats, or all null


class _TableWriter:
    """Rows to Parquet or CSV through a temporary file renamed at the end."""

    def __init__(self, path: Path, columns: dict[str, set[str]]) -> None:
        self.path, self.columns = path, columns
        self.fmt = TABLE_FORMATS[path.suffix.lower()]
        self.tmp = path.with_name(path.name + ".tmp")
        self.buffer: list[dict[str, Any]] = []
        if self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            self.schema = pa.schema([(c, _arrow_type(k)) for c, k in columns.items()])
            self.writer = pq.ParquetWriter(self.tmp, self.schema)
        else:
            import csv

            self.fh = open(self.tmp, "w", newline="")  # noqa: SIM115
            self.writer = csv.DictWriter(self.fh, fieldnames=list(columns))
            self.writer.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "csv":
            self.writer.writerow({k: json.dumps(v) if isinstance(v, list) else v
                                  for k, v in row.items()})
            return
        self.buffer.append(row)
        if len(self.buffer) >= CHUNK:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self.buffer:
            full = [{c: r.get(c) for c in self.columns} for r in self.buffer]
            for r in full:  # JSON-null floats and str lists as Arrow wants them
                for c, k in self.columns.items():
                    if r[c] is not None and "list" in k:
                        r[c] = [str(x) for x in r[c]]
                    elif r[c] is not None and "str" in k and not isinstance(r[c], str):
                        r[c] = json.dumps(r[c])
            self.writer.write_table(pa.Table.from_pylist(full, schema=self.schema))
            self.buffer = []

    def close(self) -> None:
        if self.fmt == "parquet":
            self._flush()
            self.writer.close()
        else:
            self.fh.close()
        os.replace(self.tmp, self.path)


def write_table(journal: Journal, entries: Sequence[tuple[int, dict[str, Any]]], out: Path,
                reference_ev: float | None = None) -> list[dict[str, Any]]:
    """Classify the session and write the table; returns the few fields the report needs.

    Three passes over the journal, none holding more than :data:`CHUNK` results.
    """
    from spad.analysis.classify import load_classifier
    from spad.analysis.particle import session_for

    clf = load_classifier()

    def stream() -> Iterator[ParticleResult]:
        for offset, e in entries:
            if e["error"] is None:
                with contextlib.suppress(Exception):
                    yield journal.result(offset)
    # the session's two-class mixture over every particle (one pass; a given reference stays)
    session = session_for(stream(), clf, reference_ev)
    # The columns are declared; whether a number column holds integers only is read off the
    # data (photons, n_levels), and a column with no value at all is text or float by the schema.
    names, text = table_columns(), _text_columns()
    columns: dict[str, set[str]] = {c: ({"str"} if c in text else set()) for c in names}
    for e, rec in _records(journal, entries, session, clf):
        for c, v in _row(e, rec, names).items():
            if (k := _kind(v)) is not None:
                columns[c].add(k)
    writer = _TableWriter(out, columns)
    light: list[dict[str, Any]] = []
    try:
        for e, rec in _records(journal, entries, session, clf):
            writer.write(_row(e, rec, names))
            light.append(_light(e, rec))
    finally:
        writer.close()
    return light


def _light(entry: dict[str, Any], rec: dict[str, Any] | None) -> dict[str, Any]:
    """What the population report reads of one particle."""
    if rec is None:
        return {"file": entry["file"], "error": entry["error"], "classification": None}
    keep = ("file", "peak_ev", "peak_ev_err", "g2_zero", "lifetime_ns", "shift_mev")
    c = rec.get("classification") or {}
    return {**{k: rec.get(k) for k in keep}, "error": None,
            "classification": ({"label": c.get("label"), "evidence": c.get("evidence")}
                               if c else None)}


# --------------------------------------------------------------------------- the run

SCHEDULER_ADDRESS = re.compile(r"(?:(?:tcp|tls|ucx|ws|wss)://)?(\[[0-9a-fA-F:]+\]|[^\s:/\[\]]+)"
                               r":(\d{1,5})/?")
"""A Dask scheduler's address: ``[PROTOCOL://]HOST:PORT``."""


def check_scheduler(address: str | None) -> None:
    """Refuse, before anything starts, a ``--scheduler`` that is no ``[tcp://]HOST:PORT``."""
    if address is None:
        return
    m = SCHEDULER_ADDRESS.fullmatch(address.strip())
    if m is None or not 0 < int(m.group(2)) < 65536:
        raise SpadError(f"--scheduler {address!r}: not a scheduler address (use "
                        "tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786, port 1-65535)")


def open_client(scheduler: str | None, workers: int | None) -> Any:
    """A Dask client on the cluster at ``scheduler``, or on a new LocalCluster of ``workers``
    single-threaded worker processes (default: one per core)."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        check_scheduler(scheduler)
        try:
            return Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise SpadError(f"{scheduler}: cannot reach the Dask scheduler ({exc})") from None
    n = workers or os.cpu_count() or 1
    # One thread per worker: the analysis is numpy/numba bound, so processes, not threads.
    # The scheduler serves HTTP (health, metrics) even without a dashboard, on port 8787 unless
    # told otherwise: a free port on localhost, so that two batches never warn about 8787.
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                           dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
    return Client(cluster)


@dataclasses.dataclass
class BatchSummary:
    files: int
    analysed: int
    up_to_date: int
    failed: int
    seconds: float
    task_seconds: float
    workers: int
    table: Path
    report: Path | None = None


def run_batch(inputs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str],
              settings: AnalysisSettings | None = None, reference_ev: float | None = None,
              report: str | os.PathLike[str] | None = None, scheduler: str | None = None,
              workers: int | None = None, fresh: bool = False, progress: bool | None = None,
              window: int | None = None) -> BatchSummary:
    """Analyse every particle file of ``inputs`` into the table ``out`` (see module docstring).

    Parameters
    ----------
    inputs
        Files, directories, glob patterns.
    out
        ``.parquet`` (or ``.pq``) or ``.csv``.
    settings
        Photon analysis settings (default :class:`AnalysisSettings`).
    reference_ev
        Monomer reference peak energy; default from the survey's monomers.
    report
        Folder for the population report (``survey.png``, ``survey.json``).
    scheduler, workers
        Dask scheduler address, or the number of local worker processes.
    fresh
        Ignore earlier results in the journal.
    progress
        Progress bar on stderr (``None``: only on a terminal).
    window
        Most tasks in flight (default: 2 per worker thread).
    """
    from tqdm import tqdm

    out = Path(out)
    if out.suffix.lower() not in TABLE_FORMATS:
        raise SpadError(f"{out}: the table must end in .parquet, .pq or .csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = settings or AnalysisSettings()
    check_scheduler(scheduler)
    files = expand_inputs(inputs)
    shash, code = settings_hash(settings), code_id()
    journal_path = Path(str(out) + JOURNAL_SUFFIX)
    new_journal = not journal_path.exists()
    journal = Journal(journal_path)
    t0 = time.perf_counter()
    try:
        todo: list[tuple[str, str | None, tuple[int, dict[str, Any]] | None]] = []
        for f in files:
            hit = None if fresh else journal.lookup(f, shash, code)
            if hit is not None and hit[1]["error"] is not None:
                hit = None  # failed before: try again
            if hit is not None:
                try:
                    st = os.stat(f)
                except OSError:
                    st = None
                e = hit[1]
                if st is not None and (st.st_size, st.st_mtime_ns) == (e["size"], e["mtime_ns"]):
                    continue  # up to date
            todo.append((f, None if hit is None else hit[1]["content_hash"], hit))
        up_to_date = len(files) - len(todo)
        print(f"spad batch: {len(files)} files, {up_to_date} up to date, {len(todo)} to analyse",
              file=sys.stderr)
        analysed = failed = 0
        task_seconds = 0.0
        n_workers = 0
        interrupted = False
        if todo:
            with cluster_client(scheduler, workers) as client:
                threads = sum(client.nthreads().values()) or 1
                n_workers = len(client.nthreads())
                bar = tqdm(total=len(files), initial=up_to_date, unit="file", file=sys.stderr,
                           disable=(not sys.stderr.isatty()) if progress is None else not progress,
                           smoothing=0.1)
                try:
                    for res, hit in _stream(client, todo, settings, window or 2 * threads):
                        blob = res.pop("result")
                        entry = dict(res, settings_hash=shash, code=code)
                        if res["unchanged"] and hit is not None:
                            blob = journal.blob(hit[0])
                        entry.pop("unchanged")
                        journal.append(entry, blob)
                        task_seconds += res["seconds"]
                        if res["error"] is not None:
                            failed += 1
                            tqdm.write(f"spad: error: {res['error']}", file=sys.stderr)
                        elif res["unchanged"]:
                            up_to_date += 1
                        else:
                            analysed += 1
                        bar.update()
                except KeyboardInterrupt:
                    interrupted = True
                    # reached: no redelivery while the table is written (safe_output)
                    from spad.app.safe_output import acknowledge

                    acknowledge()
                bar.close()
        entries = [journal.lookup(f, shash, code) for f in files]
        if interrupted:  # the table of what finished, then stop as asked
            done = [e for e in entries if e is not None]
            write_table(journal, done, out, reference_ev)
            print(f"spad batch: interrupted; {len(done)} of {len(files)} files in {out}",
                  file=sys.stderr)
            raise KeyboardInterrupt
        missing = [f for f, e in zip(files, entries, strict=True) if e is None]
        if missing:  # only if a task vanished without an answer
            raise SpadError(f"{missing[0]}: no result came back from the cluster")
        light = write_table(journal, entries, out, reference_ev)  # type: ignore[arg-type]
        journal.compact()
    finally:
        journal.close()
        # a run that ended before any result (an unreachable scheduler) leaves no empty journal
        if new_journal and journal.lines == 0:
            with contextlib.suppress(OSError):
                if journal_path.stat().st_size == 0:
                    journal_path.unlink()
    summary = BatchSummary(len(files), analysed, up_to_date, failed,
                           time.perf_counter() - t0, task_seconds, n_workers, out)
    if report is not None:
        from spad.app.report import survey_figure, survey_summary

        folder = Path(report)
        folder.mkdir(parents=True, exist_ok=True)
        stats = survey_summary(light)
        (folder / "survey.json").write_text(json.dumps(stats, indent=1) + "\n")
        survey_figure(light, folder / "survey.png", stats)
        summary.report = folder
    return summary


def _stream(client: Any, todo: Iterable[tuple[str, str | None, Any]], settings: AnalysisSettings,
            window: int) -> Iterator[tuple[dict[str, Any], Any]]:
    """Results as they finish, with at most ``window`` tasks submitted at a time."""
    from dask.distributed import as_completed

    settings_f = client.scatter(settings, broadcast=True)
    items = iter(todo)
    pending: dict[Any, tuple[str, Any]] = {}

    def submit() -> Any:
        try:
            f, known, hit = next(items)
        except StopIteration:
            return None
        fut = client.submit(analyze_file, f, settings_f, known, pure=False)
        pending[fut] = (f, hit)
        return fut

    ac = as_completed([fut for _ in range(window) if (fut := submit()) is not None])
    for fut in ac:
        f, hit = pending.pop(fut)
        try:
            res = fut.result()
        except Exception as exc:  # noqa: BLE001 - a worker died or the task was lost
            res = {"file": f, "size": None, "mtime_ns": None, "content_hash": None,
                   "unchanged": False, "result": None, "seconds": 0.0, "cpu_seconds": 0.0,
                   "finished_unix_s": time.time(),
                   "error": f"{f}: task failed on the cluster: {type(exc).__name__}: {exc}"}
        fut.release()
        if (nxt := submit()) is not None:
            ac.add(nxt)
        yield res, hit


@contextlib.contextmanager
def cluster_client(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    """:func:`open_client`, closed (with its LocalCluster) on the way out.

    distributed leaves sockets of its connections to the garbage collector, which may run at
    any moment of the batch; their "unclosed socket" ResourceWarnings (ignored by Python's
    default filters, errors in the test suite) are not ours, and are ignored meanwhile. What is
    left is collected on the way out, not at a random later moment in some other output.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        client = open_client(scheduler, workers)
        try:
            yield client
        finally:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()
            gc.collect()
