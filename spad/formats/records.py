"""TTTR records: decoding to photon arrays and encoding back, compiled and streaming.

The twelve record types of PicoQuant's PTU format (also found after the headers of .pt3/.ht3/
.pt2/.ht2 files) in four layouts, plus two decode-only types of older instruments: the TimeHarp
200 records of ``.t3r`` files and the Becker & Hickl SPC-130/134/140/150/160/830 FIFO records of
``.spc`` files. Semantics follow PicoQuant's reference reader ``Read_PTU.py`` with spad's
detector numbering (photon detectors from 1, T2 sync events as detector 0 = ``SYNC``):

=================  ==============================  ============================================
family             photons                         special records
=================  ==============================  ============================================
PicoHarp T3        channel 1-4 -> detector 1-4     ch 15: dtime 0 = one wrap of 65536 syncs;
                                                   dtime 1-15 = marker bits at nsync
PicoHarp T2        channel 0-4 -> detector 0-4     ch 15: low 4 bits 0 = one wrap of 210698240;
                                                   otherwise marker bits = low 4 bits, time kept
                                                   as written (low bits included)
HydraHarp-family   channel c -> detector c + 1     special ch 63 = overflow (v1: one wrap;
T3 / T2                                            others: time field wraps, 0 meaning 1);
                                                   ch 1-15 = marker c; T2 ch 0 = sync (det 0)
TimeHarp200T3      valid: route 0-3 -> detector    not valid + data bit 11: one wrap
                   1-4; tag in its 100 ns clock,   of 65536 ticks; else marker bits =
                   nanotime = 4095 - data (TAC     data bits 0-2 (0: invalid)
                   runs photon-start, sync-stop)
BH-SPC             not invalid: rout 0-15 ->       invalid + mtov (mark 0): bits 0-27
                   detector 1-16, nanotime =       = wraps of 4096; mtov on a photon
                   4095 - adc (TAC runs photon-    or marker: one wrap first; invalid
                   start, sync-stop)               + mark: marker bits = rout (0:
                                                   invalid); gap: data lost before
=================  ==============================  ============================================

Invalid records are dropped and counted (:attr:`Decoder.n_invalid`) so that the file reader can
warn once; they are never turned into photons: PicoHarp channels 5-14 (and 0 in T3), PicoHarp T3
marker records with bits above the 4 marker bits (``dtime > 15``), HydraHarp-family special
records on channels 16-62 (and channel 0 in T3, where there is no sync record), B&H records
flagged invalid that are neither overflow nor marker. B&H records with the GAP bit (the card's
FIFO overflowed and photons were lost just before) are counted in :attr:`Decoder.n_gaps`.

Sources: PicoQuant's ``Read_PTU.py`` and legacy demo readers; T. Bischof's ``libpicoquant``
(``th_v50.h``, ``th_v50_tttr.c``) for the TimeHarp 200; W. Becker, *The bh TCSPC Handbook*
("FIFO data files") for the SPC cards.

Reverse start-stop: the TimeHarp 200 and the SPC cards start their time-to-amplitude
converter with the photon and stop it with the next laser pulse, so that the TAC runs only for
detected photons at high repetition rates. The raw bin then counts back from the laser pulse;
spad stores ``4095 - bin`` so that a decay rises at small nanotimes and decays towards large
ones, as from any other TCSPC device. ``libpicoquant`` and phconvert return the raw TimeHarp
bin; the public PicoQuant sample ``v50.t3r`` shows the reversal (its raw histogram rises
slowly to a sharp edge at the high bins, a decay read backwards; see
``tests/test_formats_t2_t3r_spc.py``).
The reversed bins are referenced to the end of the TAC range, not to the sync, so the
reader's TCSPC range is the converter's 4096 bins, not the sync period.

Speed: :meth:`Decoder.decode` counts, then decodes, blocks of records with compiled kernels
(``spad.formats.kernels``) on all CPUs, handing blocks out dynamically so that a busy machine
slows it gracefully; ``tests/benchmarks/bench_decode.py`` measures it against ptufile. One
Decoder or Encoder serves one stream from one thread at a time; separate ones may run at once.
``Decoder(..., compiled=False)`` decodes with numpy alone (:mod:`spad.formats.records_numpy`),
to the same results: slower per record, but it does not import numba, whose load costs a
fresh process more than decoding a small file with numpy (``spad info``). numba is imported
only when the compiled kernels are first needed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from spad.formats import families as fam
from spad.formats.records_numpy import Decoded, decode_words
from spad.photons import PhotonChunk, Timing

__all__ = ["RecordType", "RECORD_TYPES", "record_type", "Decoder", "Encoder", "decode",
           "encode"]


@dataclass(frozen=True)
class RecordType:
    """One PicoQuant TTTR record type.

    Attributes
    ----------
    code
        ``TTResultFormat_TTTRRecType`` value, e.g. ``0x01010304``; ``None`` for the types no
        PTU file holds (TimeHarp 200, Becker & Hickl).
    name
        PicoQuant's name, e.g. ``"HydraHarp2T3"`` (MultiHarp records are ``"GenericT3/T2"``).
    mode
        ``"T2"`` or ``"T3"``.
    family
        ``"PicoHarp"``, ``"HydraHarp"`` (the layout shared by HydraHarp, TimeHarp 260 and
        MultiHarp/generic records), ``"TimeHarp200"`` or ``"BH-SPC"``.
    wrap
        Timestamp ticks (T3: syncs, T2: tagger ticks) added by one overflow.
    multi_wrap
        True where an overflow record carries the number of wraps (0 meaning 1).
    time_bits
        Width of the nsync (T3) or time (T2) field.
    nanotime_bits
        Width of the dtime field (T3), 0 in T2.
    min_detector, max_detector
        Detector numbers (spad numbering) the type can hold; 0 is the sync in T2.
    """

    code: int | None
    name: str
    mode: str
    family: str
    wrap: int
    multi_wrap: bool
    time_bits: int
    nanotime_bits: int
    min_detector: int
    max_detector: int

    @property
    def kernel(self) -> int:
        """Layout number used by the decoders (:mod:`spad.formats.families`)."""
        if self.family == "TimeHarp200":
            return fam.TH_T3
        if self.family == "BH-SPC":
            return fam.BH_SPC
        if self.family == "PicoHarp":
            return fam.PH_T3 if self.mode == "T3" else fam.PH_T2
        return fam.HH_T3 if self.mode == "T3" else fam.HH_T2

    @property
    def max_wraps_per_record(self) -> int:
        """Most wraps one overflow record can represent."""
        return (1 << self.time_bits) - 1 if self.multi_wrap else 1


def _hh(code: int, name: str, mode: str, multi: bool, v1: bool = False) -> RecordType:
    if mode == "T3":
        return RecordType(code, name, "T3", "HydraHarp", 1024, multi, 10, 15, 1, 64)
    return RecordType(code, name, "T2", "HydraHarp", 33552000 if v1 else 33554432, multi, 25, 0,
                      0, 64)


RECORD_TYPES: dict[int, RecordType] = {rt.code: rt for rt in (
    RecordType(0x00010303, "PicoHarpT3", "T3", "PicoHarp", 65536, False, 16, 12, 1, 4),
    RecordType(0x00010203, "PicoHarpT2", "T2", "PicoHarp", 210698240, False, 28, 0, 0, 4),
    _hh(0x00010304, "HydraHarpT3", "T3", multi=False),
    _hh(0x00010204, "HydraHarpT2", "T2", multi=False, v1=True),
    _hh(0x01010304, "HydraHarp2T3", "T3", multi=True),
    _hh(0x01010204, "HydraHarp2T2", "T2", multi=True),
    _hh(0x00010305, "TimeHarp260NT3", "T3", multi=True),
    _hh(0x00010205, "TimeHarp260NT2", "T2", multi=True),
    _hh(0x00010306, "TimeHarp260PT3", "T3", multi=True),
    _hh(0x00010206, "TimeHarp260PT2", "T2", multi=True),
    _hh(0x00010307, "GenericT3", "T3", multi=True),
    _hh(0x00010207, "GenericT2", "T2", multi=True),
)}
"""All supported record types by ``TTResultFormat_TTTRRecType`` code."""

DECODE_ONLY: dict[str, RecordType] = {rt.name: rt for rt in (
    RecordType(None, "TimeHarp200T3", "T3", "TimeHarp200", 65536, False, 16, 12, 1, 4),
    # an overflow-count record carries its number of wraps (in 28 bits, not the time field)
    RecordType(None, "BH-SPC", "T3", "BH-SPC", 4096, True, 12, 12, 1, 16),
)}
"""Record types spad reads but does not write (no PTU record type code)."""

_BY_NAME = {rt.name.lower(): rt for rt in RECORD_TYPES.values()}
_BY_NAME.update({rt.name.lower(): rt for rt in DECODE_ONLY.values()})
_BY_NAME["multiharpt3"] = RECORD_TYPES[0x00010307]
_BY_NAME["multiharpt2"] = RECORD_TYPES[0x00010207]


def record_type(code_or_name: int | str | RecordType) -> RecordType:
    """Look up a record type by its code (``0x01010304``) or name (``"HydraHarp2T3"``,
    ``"TimeHarp200T3"``, ``"BH-SPC"``).

    Names are case-insensitive; ``"MultiHarpT3"``/``"MultiHarpT2"`` mean the generic types.

    Raises
    ------
    ValueError
        For an unknown code or name.
    """
    if isinstance(code_or_name, RecordType):
        return code_or_name
    if isinstance(code_or_name, str):
        rt = _BY_NAME.get(code_or_name.strip().lower())
        if rt is None:
            raise ValueError(f"unknown TTTR record type name {code_or_name!r}; known: "
                             f"{', '.join(r.name for r in RECORD_TYPES.values())}")
        return rt
    try:
        code = int(code_or_name)
    except (TypeError, ValueError):
        raise ValueError(f"a TTTR record type is a code or a name, not {code_or_name!r}"
                         ) from None
    rt = RECORD_TYPES.get(code)
    if rt is None:
        raise ValueError(f"unknown TTTR record type code 0x{code:08X}")
    return rt


def _writable(rt: RecordType) -> RecordType:
    if rt.code is None:
        raise ValueError(f"spad reads {rt.name} records but does not write them; write PTU "
                         "(a PicoQuant record type) or Photon-HDF5 instead")
    return rt


# Records per block: big enough that the per-call overhead (~10 us) is lost in the work,
# small enough that a thread descheduled by a busy machine holds up the others briefly.
_MIN_BLOCK = 1 << 18
_BLOCKS_PER_THREAD = 8


def _n_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_THREADS = _n_threads()
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def _helpers() -> ThreadPoolExecutor:
    """The helper threads (created on first use, and again in a forked child)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(_THREADS - 1, thread_name_prefix="spad-records")
            _pool_pid = os.getpid()
        return _pool


def _bounds(n: int) -> np.ndarray:
    block = max(_MIN_BLOCK, -(-n // (_BLOCKS_PER_THREAD * _THREADS)))
    n_blocks = max(1, -(-n // block))
    return np.linspace(0, n, n_blocks + 1).astype(np.int64)


def _run(task: Callable[[int], None], n_tasks: int) -> None:
    """Run ``task(0) ... task(n_tasks - 1)`` on this thread and the helpers.

    Tasks are handed out one at a time from a shared iterator rather than split up front, so
    when another process keeps a helper off the CPU this thread simply does more of them.
    """
    n_help = min(_THREADS - 1, n_tasks - 1)
    if n_help <= 0:
        for i in range(n_tasks):
            task(i)
        return
    todo = iter(range(n_tasks))   # next() on it is atomic under the GIL

    def work() -> None:
        for i in todo:
            task(i)

    pool = _helpers()
    futures = [pool.submit(work) for _ in range(n_help)]
    work()
    for f in futures:
        f.result()


def _as_words(words: np.ndarray) -> np.ndarray:
    w = np.asarray(words)
    if w.ndim != 1:
        raise ValueError(f"TTTR records must be a 1-D array, not of shape {w.shape}")
    if w.dtype.kind != "u" or w.dtype.itemsize != 4:
        raise ValueError(f"TTTR records must be uint32, not {w.dtype}")
    if not w.dtype.isnative:
        w = w.astype(np.uint32)
    return np.ascontiguousarray(w)


def _check_mode(rt: RecordType, timing: Timing) -> None:
    if timing.mode != rt.mode:
        raise ValueError(f"{rt.name} records are {rt.mode} but the timing is {timing.mode}")


class Decoder:
    """Stateful decoder: carries the overflow correction (and counts) across calls.

    Feed the records of one stream in order, in chunks of any size; concatenating the returned
    chunks equals decoding all records at once.

    Parameters
    ----------
    rectype
        The record type (object, code or name).
    timing
        Timing attached to the decoded chunks; its mode must match the record type's.
    compiled
        Decode with the compiled kernels (default: fastest per record, on all CPUs) or, if
        false, with numpy alone (same results; no numba import, see the module docstring).
    """

    def __init__(self, rectype: RecordType | int | str, timing: Timing,
                 compiled: bool = True) -> None:
        self.rectype = record_type(rectype)
        _check_mode(self.rectype, timing)
        self.timing = timing
        self.compiled = bool(compiled)
        self._wraps = 0
        self._n_invalid = 0
        self._n_gaps = 0
        self._n_records = 0

    @property
    def n_gaps(self) -> int:
        """Records so far flagged as following lost data (B&H GAP bit: the FIFO overflowed)."""
        return self._n_gaps

    @property
    def n_overflows(self) -> int:
        """Overflow wraps so far (a multi-wrap record counts as its number of wraps)."""
        return self._wraps

    @property
    def n_invalid(self) -> int:
        """Invalid records dropped so far (see the module docstring for what is invalid)."""
        return self._n_invalid

    @property
    def n_records(self) -> int:
        """Records decoded so far."""
        return self._n_records

    def decode(self, words: np.ndarray) -> PhotonChunk:
        """Decode the next records of the stream.

        Parameters
        ----------
        words
            uint32 records (native or little-endian byte order as read from the file).

        Returns
        -------
        PhotonChunk
            The photons (with T2 syncs) and markers in these records.
        """
        w = _as_words(words)
        rt = self.rectype
        t3 = rt.mode == "T3"
        d = (self._decode_compiled(w) if self.compiled else
             decode_words(w, rt.kernel, rt.multi_wrap, rt.wrap, self._wraps, t3))
        self._wraps += d.n_wraps
        self._n_invalid += d.n_invalid
        self._n_gaps += d.n_gaps
        self._n_records += w.shape[0]
        return PhotonChunk(self.timing, d.timestamps, d.detectors, d.nanotimes if t3 else None,
                           d.marker_times, d.marker_channels)

    def _decode_compiled(self, w: np.ndarray) -> Decoded:
        """The records with the compiled kernels, on all CPUs (see the module docstring)."""
        from spad.formats import kernels as k  # imports numba: only on this path

        rt = self.rectype
        family = rt.kernel
        multi = rt.multi_wrap
        bounds = _bounds(w.shape[0])
        nb = bounds.shape[0] - 1
        counts = np.empty((nb, k.N_COUNTS), dtype=np.int64)

        def count(b: int) -> None:
            counts[b] = k.count_range(w, bounds[b], bounds[b + 1], family, multi)

        _run(count, nb)
        # Per-block starting offsets: exclusive prefix sums of the counts.
        starts = np.zeros((nb + 1, k.N_COUNTS), dtype=np.int64)
        np.cumsum(counts, axis=0, out=starts[1:])
        n_ph, n_mk, n_inv, n_wr, n_gap = (int(x) for x in starts[-1])
        ts = np.empty(n_ph, dtype=np.int64)
        det = np.empty(n_ph, dtype=np.uint8)
        nt = np.empty(n_ph if rt.mode == "T3" else 0, dtype=np.uint16)
        mts = np.empty(n_mk, dtype=np.int64)
        mch = np.empty(n_mk, dtype=np.uint8)
        ofl0 = (starts[:, k.N_WRAPS] + self._wraps) * rt.wrap

        def fill(b: int) -> None:
            k.decode_range(w, bounds[b], bounds[b + 1], family, multi, rt.wrap, ofl0[b],
                           starts[b, k.N_PHOTONS], starts[b, k.N_MARKERS],
                           ts, det, nt, mts, mch)

        _run(fill, nb)
        return Decoded(ts, det, nt, mts, mch, n_inv, n_wr, n_gap)


def _check_sorted(t: np.ndarray, after: int, what: str, name: str) -> None:
    if t.shape[0] == 0:
        return
    if t[0] < 0:
        raise ValueError(f"{name}: {what} must not be negative (first is {t[0]})")
    if t[0] < after:
        raise ValueError(f"{name}: {what} go back in time across chunks "
                         f"({t[0]} after {after})")
    if t.shape[0] > 1 and not np.all(t[1:] >= t[:-1]):
        i = int(np.argmax(t[1:] < t[:-1]))
        raise ValueError(f"{name}: {what} are not in time order "
                         f"(index {i + 1}: {t[i + 1]} after {t[i]})")


def _check_range(a: np.ndarray, lo: int, hi: int, what: str, name: str) -> None:
    if a.shape[0] and (int(a.min()) < lo or int(a.max()) > hi):
        bad = a[(a < lo) | (a > hi)][0]
        raise ValueError(f"{name} records cannot hold {what} {int(bad)} (range {lo}-{hi})")


class Encoder:
    """Stateful encoder, the inverse of :class:`Decoder`: emits overflow records as needed.

    Multi-wrap overflow records are used where the type has them, so long gaps cost few
    records. Feed the chunks of one stream in time order; ``decode(encode(x))`` gives ``x``
    back exactly (photons, T2 syncs and markers).

    Parameters
    ----------
    rectype
        The record type (object, code or name).
    timing
        Timing of the stream; chunks must be of the same mode.
    """

    def __init__(self, rectype: RecordType | int | str, timing: Timing) -> None:
        self.rectype = _writable(record_type(rectype))
        _check_mode(self.rectype, timing)
        self.timing = timing
        self._wraps = 0
        self._last_photon = 0
        self._last_marker = 0

    def encode(self, chunk: PhotonChunk) -> np.ndarray:
        """Records for the photons and markers of ``chunk``, merged in time order.

        Raises
        ------
        ValueError
            For what the record type cannot represent: a detector, nanotime or marker out of
            the type's range, negative or non-monotonic times (also across calls), or a
            PicoHarp T2 marker whose time's low 4 bits differ from its marker bits.
        """
        from spad.formats import kernels as k

        rt = self.rectype
        if chunk.timing.mode != rt.mode:
            raise ValueError(f"{rt.name} records are {rt.mode}, the chunk is {chunk.timing.mode}")
        ts, det = chunk.timestamps, chunk.detectors
        mts, mch = chunk.marker_times, chunk.marker_channels
        # Photons and markers are each in time order; between them they are merged.
        _check_sorted(ts, self._last_photon, "photon timestamps", rt.name)
        _check_sorted(mts, self._last_marker, "marker times", rt.name)
        if ts.shape[0] and ts[0] < self._wraps * rt.wrap or (
                mts.shape[0] and mts[0] < self._wraps * rt.wrap):
            raise ValueError(f"{rt.name}: times go back before the records already encoded")
        _check_range(det, rt.min_detector, rt.max_detector, "detector", rt.name)
        _check_range(mch, 1, 15, "marker channel", rt.name)
        if rt.mode == "T3":
            nt = chunk.nanotimes
            _check_range(nt, 0, (1 << rt.nanotime_bits) - 1, "nanotime", rt.name)
        else:
            nt = np.empty(ts.shape[0], dtype=np.uint16)
        if rt.kernel == fam.PH_T2 and mts.shape[0] and np.any((mts & 15) != mch):
            raise ValueError("PicoHarpT2 records keep marker bits in the low 4 bits of the "
                             "time: a marker's time & 15 must equal its channel bits")
        empty = np.empty(0, dtype=np.uint32)
        args = (ts, det, nt, mts, mch, rt.kernel, rt.multi_wrap, rt.wrap,
                rt.max_wraps_per_record, self._wraps)
        n, _ = k.encode_events(*args, empty)
        out = np.empty(n, dtype=np.uint32)
        _, self._wraps = k.encode_events(*args, out)
        if ts.shape[0]:
            self._last_photon = int(ts[-1])
        if mts.shape[0]:
            self._last_marker = int(mts[-1])
        return out


def decode(words: np.ndarray, rectype: RecordType | int | str, timing: Timing,
           compiled: bool = True) -> PhotonChunk:
    """Decode a whole stream of records at once (see :class:`Decoder`)."""
    return Decoder(rectype, timing, compiled).decode(words)


def encode(chunk: PhotonChunk, rectype: RecordType | int | str) -> np.ndarray:
    """Encode a whole stream at once (see :class:`Encoder`)."""
    return Encoder(rectype, chunk.timing).encode(chunk)
