"""What every time-tag file reader shares.

- :class:`Reader`, the interface every format implements (``meta``, ``chunks``, ``read``);
- :class:`RecordFileReader`, the streaming reader of any container that holds a header and then
  a block of 32-bit TTTR records (PTU in :mod:`spad.formats.ptu`, the legacy PicoQuant files in
  :mod:`spad.formats.legacy`): a new record-file format subclasses it, parses its header and
  calls :meth:`RecordFileReader._setup`;
- the helpers those headers need (fixed-width strings, dates as PicoQuant software writes them,
  the record count checked against the file size, TCSPC bins per period).
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from spad.errors import FormatError
from spad.photons import Measurement, Meta, PhotonChunk

DEFAULT_CHUNK_RECORDS = 1 << 22
"""Records per streamed chunk by default: 4 Mi records = 16 MiB of raw words."""


class Reader(ABC):
    """An open time-tag file.

    Attributes
    ----------
    meta
        The file's metadata (parsed when the reader is created).
    """

    meta: Meta

    @abstractmethod
    def chunks(self, n_records: int = DEFAULT_CHUNK_RECORDS) -> Iterator[PhotonChunk]:
        """Yield the photons in time order, ``n_records`` file records at a time.

        Memory stays bounded by the chunk size whatever the size of the file. Concatenating the
        chunks gives exactly what :meth:`read` returns.
        """

    def read(self) -> Measurement:
        """All photons and markers of the file."""
        return Measurement(PhotonChunk.concatenate(self.chunks(), self.meta.timing), self.meta)

    def close(self) -> None:  # noqa: B027 - readers that hold a handle override this
        """Release the file."""

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Header helpers shared by the record-file formats
# --------------------------------------------------------------------------------------------

_DATE_FORMATS = ("%d/%m/%y %H:%M:%S", "%d/%m/%Y %H:%M:%S", "%d.%m.%y %H:%M:%S",
                 "%d.%m.%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S",
                 "%a %b %d %H:%M:%S %Y", "%d/%m/%y %H:%M", "%d/%m/%Y %H:%M")


def parse_date(text: str) -> str | None:
    """ISO 8601 form of a date as PicoQuant software writes it, or the text as written.

    Legacy headers hold strings such as ``"18/03/13 11:35:20"`` (day first, as the software's
    German/British locale wrote them) or ``"18/03/2013 11:35:20"``. Unparseable text is returned
    stripped but otherwise unchanged; empty text gives ``None``.
    """
    text = " ".join(text.replace("\0", " ").split())
    if not text:
        return None
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).isoformat()
        except ValueError:
            continue
    return text


def clean_text(raw: bytes, encoding: str = "windows-1252") -> str:
    """Decode a fixed-width header string: cut at the first NUL, strip spaces."""
    return raw.split(b"\0", 1)[0].decode(encoding, errors="replace").strip()


def tcspc_bins(sync_period: float, resolution: float, dtime_limit: int) -> int:
    """TCSPC bins spanning one sync period, bounded by what the dtime field can hold."""
    # The small tolerance keeps an exact multiple (e.g. 200 ns / 50 ps) from counting one bin too
    # many through floating-point noise.
    return max(1, min(math.ceil(sync_period / resolution - 1e-6), int(dtime_limit)))


def dtime_limit(rectype: Any) -> int:
    """Number of distinct TCSPC delays a record type's dtime field holds."""
    return 1 << int(rectype.nanotime_bits)


def delay_problem(delay_counts: np.ndarray, timing: Any) -> str | None:
    """A warning when a T3 file's TCSPC delays contradict its header, else ``None``.

    A card measures each photon's delay from its sync, so the delays of a real recording
    occupy at most one sync period (wherever a cable delay or a reverse start-stop puts them in
    the range). Delays spread over much more than the stated period (the middle 99 % of the
    photons, 2 % and two bins of slack) mean the stated sync rate or bin count is wrong.

    Parameters
    ----------
    delay_counts
        Photons per native TCSPC bin (all detectors).
    timing
        The file's :class:`spad.photons.Timing`.
    """
    y = np.asarray(delay_counts, dtype=np.float64)
    total = float(y.sum())
    period = timing.sync_period
    if not timing.is_t3 or not period or total < 100:
        return None
    unit = timing.nanotime_unit
    c = np.cumsum(y)
    lo = int(np.searchsorted(c, 0.005 * total))
    hi = int(np.searchsorted(c, 0.995 * total))
    if (hi - lo + 1) <= 1.02 * period / unit + 2:
        return None
    stated = timing.tcspc_num_bins
    beyond = ""
    if stated and stated < y.size and y[stated:].sum() > 0:
        beyond = (f"{y[stated:].sum() / total:.0%} of them beyond the stated {stated} TCSPC "
                  "bins, ")
    top = (int(np.flatnonzero(y)[-1]) + 1) * unit
    return (f"the photons' TCSPC delays occupy {(hi - lo + 1) * unit * 1e9:.4g} ns ({beyond}up "
            f"to {top * 1e9:.4g} ns), more than the stated sync period of "
            f"{period * 1e9:.4g} ns: the header contradicts the data; analyses take the delays' "
            "range from the data, not the stated period")


# --------------------------------------------------------------------------------------------
# Streaming reader of a block of 32-bit records
# --------------------------------------------------------------------------------------------


def count_records(path: object, size: int, data_offset: int, stated: int | None,
                  record_bytes: int = 4) -> tuple[int, list[str]]:
    """Records actually in the file, and warnings where the header disagrees with the file size.

    The file size is the authority: PicoQuant software leaves the stated count at 0 when a
    measurement is aborted and some tools write it wrong.
    """
    problems = []
    available = size - data_offset
    if available < 0:
        raise FormatError(path, f"header ends at byte {data_offset}, past the end of the file "
                                f"({size} bytes)")
    n, partial = divmod(available, record_bytes)
    if partial:
        problems.append(f"file ends inside a record: dropped the last {partial} byte(s) "
                        "(truncated file)")
    if stated is None:
        problems.append(f"header states no record count; the file holds {n} records")
    elif stated != n:
        problems.append(f"header states {stated} records but the file holds {n}; "
                        f"reading {n}")
    return n, problems


class RecordFileReader(Reader):
    """A container of a header then a block of 32-bit TTTR records (PicoQuant, B&H SPC).

    Subclasses parse the header and call :meth:`_setup`. Records are read with
    ``np.fromfile`` one chunk at a time, so memory stays bounded by the chunk size.
    """

    path: Path
    data_offset: int
    rectype: Any

    def _setup(self, path: Path, meta: Meta, rectype: Any, data_offset: int,
               problems: Iterable[str]) -> None:
        self.path = path
        self.meta = meta
        self.rectype = rectype
        self.data_offset = data_offset
        for problem in problems:
            self._warn(problem)

    def _warn(self, problem: str) -> None:
        """Record a tolerated problem in ``meta.warnings`` and warn about it once."""
        if problem not in self.meta.warnings:
            self.meta.warnings.append(problem)
            warnings.warn(f"{self.path}: {problem}", UserWarning, stacklevel=3)

    def chunks(self, n_records: int = DEFAULT_CHUNK_RECORDS, compiled: bool = True
               ) -> Iterator[PhotonChunk]:
        """Yield the photons ``n_records`` file records at a time (see :class:`Reader`).

        ``compiled=False`` decodes with numpy alone, to the same chunks: slower per record,
        but numba is not imported (see :class:`spad.formats.records.Decoder`).
        """
        from spad.formats.records import Decoder

        n_records = int(n_records)
        if n_records < 1:
            raise ValueError(f"n_records must be at least 1, not {n_records}")
        decoder = Decoder(self.rectype, self.meta.timing, compiled)
        remaining = self.meta.n_records
        last, seen = None, 0
        delays: np.ndarray | None = None
        with open(self.path, "rb") as fh:
            fh.seek(self.data_offset)
            while remaining > 0:
                count = min(n_records, remaining)
                words = np.fromfile(fh, dtype="<u4", count=count)
                if words.size != count:
                    raise FormatError(self.path, "file became shorter while it was being read")
                remaining -= count
                chunk = decoder.decode(words.astype(np.uint32, copy=False))
                last = self._check_order(chunk.timestamps, last, seen)
                seen += len(chunk)
                delays = self._count_delays(chunk, delays)
                yield chunk
        self._decoder_warnings(decoder)
        self._delay_warning(delays)

    def _count_delays(self, chunk: PhotonChunk, counts: np.ndarray | None) -> np.ndarray | None:
        """Photons per TCSPC bin so far (T3 only), for :func:`delay_problem`."""
        if not self.meta.timing.is_t3 or chunk.nanotimes.size == 0:
            return counts
        h = np.bincount(chunk.nanotimes)
        if counts is None:
            return h
        if h.size > counts.size:
            h[:counts.size] += counts
            return h
        counts[:h.size] += h
        return counts

    def _delay_warning(self, counts: np.ndarray | None) -> None:
        if counts is not None:
            problem = delay_problem(counts, self.meta.timing)
            if problem:
                self._warn(problem)

    def _check_order(self, ts: np.ndarray, last: int | None, offset: int) -> int | None:
        """Refuse timestamps that go backwards (records out of order or damaged): every
        analysis assumes time order, and a writer would refuse them naming its own output.
        Returns the last timestamp so far."""
        if not len(ts):
            return last
        if last is not None and ts[0] < last:
            bad = 0
        else:
            down = np.flatnonzero(ts[1:] < ts[:-1])
            bad = int(down[0]) + 1 if down.size else -1
        if bad >= 0:
            raise FormatError(self.path, f"photon timestamps go backwards at photon "
                                         f"{offset + bad} (records out of order or damaged)")
        return int(ts[-1])

    def _decoder_warnings(self, decoder: Any) -> None:
        if decoder.n_invalid:
            self._warn(f"{decoder.n_invalid} record(s) are neither photon, sync, marker nor "
                       "overflow; skipped")
        if decoder.n_gaps:
            # never ignore a FIFO overrun: photons are missing at these places
            self._warn(f"{decoder.n_gaps} record(s) carry the GAP flag: the card's FIFO "
                       "overflowed and photons were lost just before them")

    def read(self) -> Measurement:
        """All photons and markers of the file, decoded straight into the final arrays.

        The records are mapped from the file (no copy) and decoded in one call, whose count pass
        sizes the output arrays exactly; reading chunk by chunk and concatenating would copy
        every photon once more (about half of the time of a read).
        """
        from spad.formats.records import Decoder

        decoder = Decoder(self.rectype, self.meta.timing)
        n = self.meta.n_records
        if n > 0:
            try:
                words = np.memmap(self.path, dtype="<u4", mode="r", offset=self.data_offset,
                                  shape=(n,))
            except ValueError:
                raise FormatError(self.path, "file became shorter while it was being read"
                                  ) from None
        else:
            words = np.zeros(0, np.uint32)
        chunk = decoder.decode(words)
        del words
        self._check_order(chunk.timestamps, None, 0)
        self._decoder_warnings(decoder)
        self._delay_warning(self._count_delays(chunk, None))
        return Measurement(chunk, self.meta)
