"""``spad info FILE [--json]``: what a time-tag file holds.

Format, record type, mode, durations, photons and count rates per detector, sync rate,
resolutions, markers per channel, creation time, software, comment and warnings. The photons are
streamed chunk by chunk, so a file of any size is summarised in bounded memory.

The records of a PTU, legacy PicoQuant or B&H file are decoded with numpy alone unless the file
is large (:func:`decode_compiled`): numba's compiled decoder is faster per record, but loading
it costs a fresh process more than decoding a small file with numpy takes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import spad
from spad.formats.base import RecordFileReader
from spad.photons import SYNC, PhotonChunk

COMPILED_FROM_RECORDS = 50_000_000
"""Records from which :func:`summarise` decodes with the compiled kernels. Loading them (numba's
import and its compiler's set-up, once per process) is a fixed cost; the numpy decoder instead
takes longer per record. Around this many records the two take as long, measured as whole
``spad info`` commands of simulated PTU files forced onto either path (README, Development);
near it they differ little either way."""

_PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "u"),
             (1e-9, "n"), (1e-12, "p"), (1e-15, "f"))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``info`` sub-command."""
    p = subparsers.add_parser(
        "info", help="summarise a time-tag file (PTU, PT3, HT3, Photon-HDF5)",
        description="Summarise a time-tag file: format, mode, duration, photons and count "
                    "rates per detector, sync rate, resolutions, markers, origin, warnings.")
    p.add_argument("file", help="time-tag file (format detected from its content)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    # one file, start-up all along: collection stays held (spad.app.memory.hold_collection)
    p.set_defaults(func=run, collect_late=True)


@dataclass
class StreamStats:
    """Counts gathered while streaming the chunks of one file."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    marker_counts: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    first: int | None = None
    last: int | None = None

    def add(self, chunk: PhotonChunk) -> None:
        """Fold one chunk into the totals."""
        if len(chunk):
            self.counts += np.bincount(chunk.detectors, minlength=256)
            self._span(int(chunk.timestamps[0]), int(chunk.timestamps[-1]))
        if chunk.marker_times.size:
            self.marker_counts += np.bincount(chunk.marker_channels, minlength=256)
            self._span(int(chunk.marker_times.min()), int(chunk.marker_times.max()))

    def _span(self, lo: int, hi: int) -> None:
        self.first = lo if self.first is None else min(self.first, lo)
        self.last = hi if self.last is None else max(self.last, hi)


def decode_compiled(n_records: int) -> bool:
    """Whether decoding ``n_records`` records is sooner with the compiled kernels than with
    numpy alone, in this process."""
    if "spad.formats.kernels" in sys.modules:
        return True     # numba is loaded already: its kernels are the faster ones
    return n_records >= COMPILED_FROM_RECORDS


def summarise(path: str, compiled: bool | None = None) -> dict[str, Any]:
    """Everything ``spad info`` reports about ``path``, in SI units (JSON-ready).

    Parameters
    ----------
    path
        The file.
    compiled
        Decode records with the compiled kernels (True) or numpy alone (False); by default
        whichever is sooner for the file's size (:func:`decode_compiled`). The results are
        the same.

    Raises
    ------
    spad.errors.FormatError
        The file is missing, foreign or corrupt.
    """
    stats = StreamStats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with spad.open(path) as reader:
            meta = reader.meta
            if isinstance(reader, RecordFileReader):
                if compiled is None:
                    compiled = decode_compiled(meta.n_records)
                chunks = reader.chunks(compiled=compiled)
            else:
                chunks = reader.chunks()   # Photon-HDF5: nothing to decode
            for chunk in chunks:
                stats.add(chunk)
    timing = meta.timing
    unit = timing.timestamp_unit
    span = (stats.last - stats.first) * unit if stats.first is not None else 0.0
    problems = list(meta.warnings)
    duration = span
    if meta.acquisition_time:
        duration = meta.acquisition_time
        # A measurement stopped early (e.g. PicoQuant's stop on overflow) or a wrong header:
        # rates over the stated time would be wrong, so use the span of the events instead.
        if span > 0 and abs(span - duration) > 0.05 * duration:
            problems.append(f"events span {si(span, 's')} but the file states an acquisition "
                            f"time of {si(duration, 's')}; count rates use the span")
            duration = span
    detectors = [int(d) for d in np.flatnonzero(stats.counts) if d != SYNC or timing.is_t3]
    photons = {str(d): int(stats.counts[d]) for d in detectors}
    rates = {d: (n / duration if duration > 0 else None) for d, n in photons.items()}
    sync_events = None if timing.is_t3 else int(stats.counts[SYNC])
    sync_rate = meta.sync_rate
    if sync_rate is None and timing.sync_period:
        sync_rate = 1.0 / timing.sync_period
    markers = {str(int(c)): int(stats.marker_counts[c])
               for c in np.flatnonzero(stats.marker_counts)}
    for w in caught:
        text = str(w.message)
        prefix = f"{meta.path}: "
        text = text[len(prefix):] if text.startswith(prefix) else text
        if text not in problems:
            problems.append(text)
    return {
        "path": str(path),
        "format": meta.format,
        "record_type": meta.record_type,
        "record_type_code": meta.record_type_code,
        "mode": meta.mode,
        "acquisition_time_s": meta.acquisition_time,
        "span_s": span,
        "duration_s": duration,
        "n_records": meta.n_records,
        "n_photons": int(sum(photons.values())),
        "photons": photons,
        "count_rate_cps": rates,
        "sync_events": sync_events,
        "sync_rate_hz": sync_rate,
        "global_resolution_s": meta.global_resolution,
        "resolution_s": meta.resolution,
        "timestamp_unit_s": unit,
        "nanotime_unit_s": timing.nanotime_unit,
        "tcspc_num_bins": timing.tcspc_num_bins,
        "n_channels": meta.n_channels,
        "n_markers": int(stats.marker_counts.sum()),
        "markers": markers,
        "creation_time": meta.creation_time,
        "software": meta.software,
        "software_version": meta.software_version,
        "comment": meta.comment,
        "warnings": problems,
    }


def si(value: float | None, unit: str, digits: int = 4) -> str:
    """``value`` with an SI prefix, e.g. ``si(6.4e-11, "s") == "64 ps"``."""
    if value is None or not math.isfinite(value):
        return "unknown"
    if value == 0:
        return f"0 {unit}"
    # Largest prefix under which the value, rounded to ``digits``, is at least 1 (so 999.97 ns
    # prints as 1 us, 999.9 ns as itself); the smallest prefix for anything tinier.
    least = 1 - 0.5 * 10.0 ** -digits
    scale, prefix = next((p for p in _PREFIXES if abs(value) >= p[0] * least), _PREFIXES[-1])
    return f"{value / scale:.{digits}g} {prefix}{unit}"


def format_text(s: dict[str, Any]) -> str:
    """The human-readable, aligned form of :func:`summarise`'s result."""
    rows: list[tuple[str, str]] = [("file", s["path"])]
    code = f", code 0x{s['record_type_code']:08x}" if s["record_type_code"] is not None else ""
    rows.append(("format", f"{s['format']} ({s['record_type']}{code})"))
    rows.append(("mode", s["mode"]))
    rows.append(("created", s["creation_time"] or "unknown"))
    software = " ".join(x for x in (s["software"], s["software_version"]) if x)
    rows.append(("software", software or "unknown"))
    if s["comment"]:
        rows.append(("comment", s["comment"].replace("\n", " / ")))
    rows.append(("acquisition time", si(s["acquisition_time_s"], "s") + " (stated by the file)"
                 if s["acquisition_time_s"] is not None else "not stated by the file"))
    rows.append(("span", si(s["span_s"], "s") + " (first to last event)"))
    rows.append(("records", f"{s['n_records']:,}"))
    sync = si(s["sync_rate_hz"], "Hz")
    if s["sync_rate_hz"]:
        sync += f" (period {si(1.0 / s['sync_rate_hz'], 's')})"
    rows.append(("sync rate", sync))
    if s["sync_events"] is not None:
        rows.append(("sync events", f"{s['sync_events']:,} (detector {SYNC})"))
    rows.append(("timestamp unit", si(s["timestamp_unit_s"], "s")))
    if s["mode"] == "T3":
        bins = f" x {s['tcspc_num_bins']} bins" if s["tcspc_num_bins"] else ""
        rows.append(("TCSPC bin", si(s["nanotime_unit_s"], "s") + bins))
    elif s["resolution_s"] is not None and s["resolution_s"] != s["timestamp_unit_s"]:
        rows.append(("resolution", si(s["resolution_s"], "s")))
    if not s["photons"]:
        rows.append(("photons", "none"))
    width = max((len(f"{n:,}") for n in s["photons"].values()), default=1)
    for det, n in s["photons"].items():
        rate = s["count_rate_cps"][det]
        rate_text = f"{rate:,.1f} cps" if rate is not None else "rate unknown"
        rows.append((f"detector {det}", f"{n:>{width},} photons  {rate_text}"))
    if s["n_markers"]:
        per = ", ".join(f"ch {c}: {n:,}" for c, n in s["markers"].items())
        rows.append(("markers", f"{s['n_markers']:,} ({per})"))
    else:
        rows.append(("markers", "none"))
    for i, w in enumerate(s["warnings"]):
        rows.append(("warnings" if i == 0 else "", w))
    if not s["warnings"]:
        rows.append(("warnings", "none"))
    key_width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{key_width}}  {v}" for k, v in rows)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def run(args: argparse.Namespace) -> int:
    """Print the summary of ``args.file``; returns 0."""
    summary = summarise(os.fspath(args.file))
    if args.json:
        print(json.dumps(_json_safe(summary)))
    else:
        print(format_text(summary))
    sys.stdout.flush()
    return 0
