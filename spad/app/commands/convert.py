"""``spad convert IN OUT [--format h5|ptu] [--record-type HydraHarp2T3|HydraHarp2T2]``.

Converts any file :func:`spad.open` reads to Photon-HDF5 or PTU, chunk by chunk. The output is
written under a temporary name in the output folder and renamed over OUT only when complete, so
a failed or interrupted conversion leaves no partial file and never destroys an existing OUT.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

import spad
from spad.errors import FormatError
from spad.output import check_writable, replacing
from spad.photons import Meta

EXTENSIONS = {".h5": "h5", ".hdf5": "h5", ".ptu": "ptu"}
RECORD_TYPES = {"HydraHarp2T3": "T3", "HydraHarp2T2": "T2"}
CHUNK_RECORDS = 1 << 20
"""Records per chunk: small enough for a smooth progress bar, large enough to be fast."""
PROGRESS_MIN_RECORDS = 4 * CHUNK_RECORDS
"""Files smaller than this convert in a few seconds: no progress bar."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``convert`` sub-command."""
    p = subparsers.add_parser(
        "convert", help="convert a time-tag file to Photon-HDF5 or PTU",
        description="Convert a time-tag file (PTU, PT3, HT3, Photon-HDF5) to Photon-HDF5 "
                    "(.h5/.hdf5) or PTU (.ptu). The output format follows OUT's extension "
                    "unless --format is given.")
    p.add_argument("input", metavar="IN", help="time-tag file to read")
    p.add_argument("output", metavar="OUT", help="file to write (replaced only on success)")
    p.add_argument("--format", choices=("h5", "ptu"), help="output format")
    p.add_argument("--record-type", choices=tuple(RECORD_TYPES),
                   help="PTU record type (default: HydraHarp2T3 for T3, HydraHarp2T2 for T2)")
    p.set_defaults(func=run)


def output_format(out: str, fmt: str | None) -> str:
    """``"h5"`` or ``"ptu"`` from ``--format`` or the extension of ``out``."""
    if fmt:
        return fmt
    ext = Path(out).suffix.lower()
    if ext not in EXTENSIONS:
        raise FormatError(out, f"cannot tell the output format from the extension {ext!r}; "
                               "use .h5, .hdf5 or .ptu, or --format h5|ptu")
    return EXTENSIONS[ext]


def _same_file(a: str, b: str) -> bool:
    if os.path.exists(b):
        return os.path.samefile(a, b)
    return Path(a).resolve() == Path(b).resolve()


def _storable_keys(d: dict[Any, Any]) -> dict[str, Any]:
    """``d`` with keys HDF5 can name: '/' replaced, a blank (a header tag with an empty
    identifier) or '.' / '..' name given a visible one, and no two keys made the same."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        name = str(k).replace("/", "_")
        if name.strip(".") == "" or not name.strip():
            name = f"(unnamed {name!r})"
        base, n = name, 1
        while name in out:
            n += 1
            name = f"{base} ({n})"
        out[name] = _storable(v)
    return out


def _storable(value: Any) -> Any:
    """A header value in a form :func:`write_user_group` stores (dict keys as strings)."""
    if isinstance(value, dict):
        return _storable_keys(value)
    if value is None or isinstance(value, str | bool | int | float | np.generic):
        return value
    if isinstance(value, bytes):
        return np.frombuffer(value, np.uint8)
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return value
    if isinstance(value, list | tuple):
        arr = np.asarray(value) if value else None
        if arr is not None and arr.dtype.kind in "biuf":
            return arr
        if value and all(isinstance(v, str) for v in value):
            return list(value)
    return str(value)


def _creation_datetime(meta: Meta) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(meta.creation_time) if meta.creation_time else None
    except ValueError:
        return None


def _open_writer(fmt: str, tmp: str, meta: Meta, record_type: str | None) -> Any:
    timing = meta.timing
    if fmt == "ptu":
        from spad.formats.ptu import PtuWriter

        return PtuWriter(tmp, record_type, timing, comment=meta.comment or "",
                         acquisition_time=meta.acquisition_time, n_channels=meta.n_channels,
                         creation_time=_creation_datetime(meta))
    # imported when used: every ``spad`` command registers this module's parser
    from spad.formats.photon_hdf5_writer import PhotonHdf5Writer

    n_ch = meta.n_channels if meta.n_channels and 0 < meta.n_channels < 256 else 2
    provenance = {"filename": os.path.basename(meta.path),
                  "filename_full": os.path.abspath(meta.path),
                  "creation_time": meta.creation_time, "software": meta.software,
                  "software_version": meta.software_version}
    header = _storable_keys(meta.tags)
    return PhotonHdf5Writer(
        tmp, timing,
        description=meta.comment or f"converted from {os.path.basename(meta.path)} by spad",
        split_channels=tuple((d,) for d in range(1, n_ch + 1)),
        laser_repetition_rates=meta.sync_rate,
        provenance={k: v for k, v in provenance.items() if v},
        acquisition_duration=meta.acquisition_time,
        user={"source_header": {"format": meta.format, "record_type": meta.record_type,
                                "tags": header}})


def convert(src: str, out: str, fmt: str | None = None, record_type: str | None = None,
            progress: bool | None = None) -> tuple[int, int]:
    """Convert ``src`` to ``out``; returns (photon-stream events, markers) written.

    Parameters
    ----------
    src, out
        Input and output files (``out`` must not be ``src``).
    fmt
        ``"h5"`` or ``"ptu"``; default from the extension of ``out``.
    record_type
        PTU record type; default HydraHarp2T3 / HydraHarp2T2 by the input's mode.
    progress
        Show a progress bar on stderr; default: for large files when stderr is a terminal.
    """
    fmt = output_format(out, fmt)
    if record_type is not None and fmt != "ptu":
        raise FormatError(out, "--record-type applies to PTU output only")
    if os.path.exists(src) and _same_file(src, out):
        raise FormatError(out, "is the input file; refusing to overwrite it")
    check_writable(out)  # before reading anything: a wrong OUT fails at once
    reader = spad.open(src)
    try:
        meta = reader.meta
        if fmt == "ptu":
            record_type = record_type or f"HydraHarp2{meta.mode}"
            if RECORD_TYPES.get(record_type, meta.mode) != meta.mode:
                raise FormatError(src, f"holds {meta.mode} data; record type {record_type} is "
                                       f"{RECORD_TYPES[record_type]}")
        # A hidden temporary file next to OUT, renamed over it at the end (spad.output).
        with replacing(out) as (tmp,):
            writer = _open_writer(fmt, str(tmp), meta, record_type)
            try:
                n_events, n_markers = _copy(reader, writer, meta, src, progress)
            except BaseException:
                getattr(writer, "abort", writer.close)()
                raise
            writer.close()
        return n_events, n_markers
    finally:
        reader.close()


def _copy(reader: Any, writer: Any, meta: Meta, src: str, progress: bool | None
          ) -> tuple[int, int]:
    from tqdm import tqdm

    total = meta.n_records
    if progress is None:
        progress = sys.stderr.isatty() and total >= PROGRESS_MIN_RECORDS
    n_events = n_markers = 0
    with tqdm(total=total, unit="rec", unit_scale=True, file=sys.stderr,
              disable=not progress, desc=os.path.basename(src), leave=False) as bar:
        for chunk in reader.chunks(CHUNK_RECORDS):
            writer.write(chunk)
            n_events += len(chunk)
            n_markers += int(chunk.marker_times.size)
            # Every chunk but the last consumes exactly CHUNK_RECORDS file records.
            bar.update(min(CHUNK_RECORDS, total - bar.n))
    return n_events, n_markers


def run(args: argparse.Namespace) -> int:
    """Convert ``args.input`` to ``args.output``; returns 0."""
    n_events, n_markers = convert(args.input, args.output, args.format, args.record_type)
    print(f"{args.output}: {n_events:,} events and {n_markers:,} markers written")
    return 0
