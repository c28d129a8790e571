"""Decoding of TTTR records with numpy alone: the path that does not import numba.

The compiled kernels (:mod:`spad.formats.kernels`) decode faster per record, but loading them
costs a fresh process more than decoding a small file here takes: numba's import, which pulls
scipy.linalg, and the set-up of its compiler context when the first cached kernel loads. A
short command that decodes one small file once (``spad info``) is done sooner here.

Each record's class (photon, marker, overflow, invalid) is a vectorised mask. The overflow
correction of a photon or marker is the inclusive cumulative sum of the per-record wrap
increments (an overflow record's wraps, a B&H photon's or marker's MTOV flag) up to it, plus
the wraps carried from the records before. numpy's cumulative sum is slow (run over every
record it would take about as long as all the rest of the decoding), so it runs only over the
records that are not photons, usually a few per cent; the photons between two such records
share their correction, which ``np.repeat`` spreads. The results are identical to the
compiled kernels', bit for bit; the bit layouts are in :mod:`spad.formats.families`, the
semantics in :mod:`spad.formats.records`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spad.formats.families import BH_SPC, HH_T2, HH_T3, PH_T2, PH_T3, TH_T3

BLOCK = 1 << 16
"""Records decoded at a time: the temporaries of a block (a few bytes per record each) stay in
the CPU's cache, and beside the output only the photon mask (a byte per record) spans the
whole call."""


@dataclass
class Decoded:
    """Decoded records: what :func:`decode_words` returns, and the compiled path of
    :class:`spad.formats.records.Decoder`.

    Attributes
    ----------
    timestamps, detectors, nanotimes
        Photons (T2: with the syncs): int64 times, uint8 detectors, uint16 nanotimes (empty in
        T2).
    marker_times, marker_channels
        Markers: int64 times, uint8 channels.
    n_invalid, n_wraps, n_gaps
        Invalid records, overflow wraps and records flagged as following lost data.
    """

    timestamps: np.ndarray
    detectors: np.ndarray
    nanotimes: np.ndarray
    marker_times: np.ndarray
    marker_channels: np.ndarray
    n_invalid: int
    n_wraps: int
    n_gaps: int


def _photons(w: np.ndarray, family: int) -> np.ndarray:
    """Which of the records ``w`` of ``family`` are photons (T2: or syncs)."""
    if family == PH_T3:
        return ((w >> 28) - 1) < 4         # channel 1-4 (unsigned: 0 wraps around)
    if family == PH_T2:
        return w < (5 << 28)               # channel 0-4
    if family == HH_T2:
        # not special, or special on channel 0: a sync, kept with the photons (detector 0)
        return w < (65 << 25)
    if family == TH_T3:
        return (w & (1 << 30)) != 0        # valid
    return w < (1 << 31)                   # HydraHarp T3: not special; B&H: not invalid


def _others(wo: np.ndarray, family: int, multi: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Classify records ``wo`` that are not photons as the kernels do.

    Returns
    -------
    marker
        Which are markers.
    wraps
        Wraps each adds before itself (bool where one at most).
    n_overflow
        How many are overflow records (neither marker nor invalid).

    Unsigned arithmetic: ``(x - a) < n`` tests ``a <= x < a + n`` in one pass, as a value
    below ``a`` wraps around to a large one.
    """
    if family == PH_T3:
        dtime = (wo >> 16) & 0xFFF
        special = (wo >> 28) == 15
        ofl = special & (dtime == 0)
        return special & ((dtime - 1) < 15), ofl, int(np.count_nonzero(ofl))
    if family == PH_T2:
        special = (wo >> 28) == 15
        low0 = (wo & 15) == 0
        ofl = special & low0
        return special & ~low0, ofl, int(np.count_nonzero(ofl))
    if family in (HH_T3, HH_T2):
        top = wo >> 25                     # special bit and channel
        ofl = top == 127
        wraps = ofl
        if multi:
            # an overflow record's time field holds its number of wraps, 0 meaning 1
            field = wo & (0x1FFFFFF if family == HH_T2 else 0x3FF)
            wraps = np.where(ofl, np.maximum(field, 1), 0)
        return (top - 65) < 15, wraps, int(np.count_nonzero(ofl))   # markers: channel 1-15
    if family == TH_T3:
        data = (wo >> 16) & 0xFFF          # none is valid
        ofl = (data & 0x800) != 0
        marker = ((data & 0x807) - 1) < 7  # bit 11 clear, marker bits not 0
        return marker, ofl, int(np.count_nonzero(ofl))
    if family == BH_SPC:
        flags = wo >> 28                   # invalid (all of them) | mtov | gap | mark
        many = (flags & 0b0101) == 0b0100  # mtov without mark: an overflow-count record
        marker = ((flags & 1) != 0) & ((wo & 0xF000) != 0)
        # an overflow-count record adds its count (bits 0-27), any other with MTOV (a marker,
        # or an invalid record, as in the kernels) one wrap before itself
        wraps = np.where(many, wo & 0xFFFFFFF, (flags >> 2) & 1)
        return marker, wraps, int(np.count_nonzero(many))
    raise ValueError(f"unknown record family {family}")


def _put_photons(wp: np.ndarray, family: int, det: np.ndarray, nt: np.ndarray) -> np.ndarray:
    """Write the detectors and (T3) nanotimes of the photon records ``wp`` into ``det`` and
    ``nt``; return their time fields.

    The fields are computed in place and cast as they are written, which saves a temporary
    per step and a cast copy, each one more pass over the photons.
    """
    unsafe = "unsafe"
    if family == PH_T3:
        np.right_shift(wp, 28, out=det, casting=unsafe)
        np.bitwise_and(wp >> 16, 0xFFF, out=nt, casting=unsafe)
        return wp & 0xFFFF
    if family == PH_T2:
        np.right_shift(wp, 28, out=det, casting=unsafe)
        return wp & 0x0FFFFFFF
    if family == HH_T3:
        np.right_shift(wp, 25, out=det, casting=unsafe)   # special bit 0: the channel
        det += 1
        np.bitwise_and(wp >> 10, 0x7FFF, out=nt, casting=unsafe)
        return wp & 0x3FF
    if family == HH_T2:
        top = wp >> 25
        top += 1
        top[top == 65] = 0           # a special record on channel 0: the sync, detector 0
        det[:] = top
        return wp & 0x1FFFFFF
    t = wp >> 16
    t &= 0xFFF
    # reverse start-stop: the bin counts back from the laser pulse (spad.formats.records)
    np.subtract(4095, t, out=nt, casting=unsafe)
    t = wp >> (28 if family == TH_T3 else 12)
    t &= 3 if family == TH_T3 else 15      # TimeHarp 200 route, B&H rout
    t += 1
    det[:] = t
    return wp & (0xFFFF if family == TH_T3 else 0xFFF)


def _marker_fields(wm: np.ndarray, family: int) -> tuple[np.ndarray, np.ndarray]:
    """Time field and channel of the marker records ``wm``."""
    if family == PH_T3:
        return wm & 0xFFFF, (wm >> 16) & 0xFFF
    if family == PH_T2:
        # the marker bits are the low 4 bits of the time, kept in it (see the kernels)
        return wm & 0x0FFFFFFF, wm & 15
    if family in (HH_T3, HH_T2):
        return wm & (0x3FF if family == HH_T3 else 0x1FFFFFF), (wm >> 25) & 63
    if family == TH_T3:
        return wm & 0xFFFF, (wm >> 16) & 7
    return wm & 0xFFF, (wm >> 12) & 15


def _runs(at: np.ndarray, n: int) -> np.ndarray:
    """Lengths of the runs of indices below ``n`` that ``at`` (sorted) leaves out: before its
    first, between each two, after its last."""
    edges = np.empty(at.shape[0] + 2, np.intp)
    edges[0] = -1
    edges[1:-1] = at
    edges[-1] = n
    runs = np.diff(edges)
    runs -= 1
    return runs


class _Output:
    """The arrays one call decodes into.

    Photons are written block by block into their slices of arrays sized beforehand:
    collecting per-block arrays and concatenating them would copy every photon once more.
    Markers are few: collected.
    """

    def __init__(self, n: int, t3: bool) -> None:
        self.ts = np.empty(n, np.int64)
        self.det = np.empty(n, np.uint8)
        self.nt = np.empty(n if t3 else 0, np.uint16)
        self.t3 = t3
        self.n = 0
        self.mts: list[np.ndarray] = []
        self.mch: list[np.ndarray] = []


def _decode_block(w: np.ndarray, photon: np.ndarray, family: int, multi: bool, wrap: int,
                  wraps0: int, out: _Output) -> tuple[int, int, int]:
    """Decode one block (``photon``: its photon records) into ``out``; return its invalid
    records, wraps and gaps."""
    other = np.flatnonzero(~photon)
    wo = w[other]
    marker, wraps, n_overflow = _others(wo, family, multi)
    # ticks[k]: the overflow correction after the first k other records (all of theirs)
    ticks = np.empty(other.shape[0] + 1, np.int64)
    ticks[0] = 0
    np.cumsum(wraps, out=ticks[1:])
    n_wraps = int(ticks[-1])
    ticks += wraps0
    ticks *= wrap

    wp = w[photon]
    p, q = out.n, out.n + wp.shape[0]
    field = _put_photons(wp, family, out.det[p:q], out.nt[p:q] if out.t3 else out.nt)
    # a photon's correction is that after the other records before it
    ts = np.add(np.repeat(ticks, _runs(other, w.shape[0])), field, out=out.ts[p:q])
    out.n = q
    mtov = np.empty(0, np.intp)
    if family == BH_SPC:
        # a B&H photon with MTOV follows one wrap: it and the photons after it, in this block,
        # are one wrap later for each
        mtov = np.flatnonzero(wp & (1 << 30))
        if mtov.shape[0]:
            steps = np.diff(mtov, prepend=0, append=wp.shape[0])
            ts += np.repeat(np.arange(mtov.shape[0] + 1, dtype=np.int64) * wrap, steps)
            n_wraps += mtov.shape[0]

    n_markers = 0
    if marker.any():
        r = np.flatnonzero(marker)           # index among the other records
        mfield, mch = _marker_fields(wo[r], family)
        mts = ticks[r + 1] + mfield          # with the marker's own MTOV wrap (B&H)
        if mtov.shape[0]:
            # and the MTOV wraps of the photons before it: other[r] - r photons precede it
            mts += np.searchsorted(mtov, other[r] - r) * np.int64(wrap)
        out.mts.append(mts)
        out.mch.append(mch.astype(np.uint8))
        n_markers = r.shape[0]
    n_gaps = int(np.count_nonzero(w & (1 << 29))) if family == BH_SPC else 0
    n_invalid = other.shape[0] - n_markers - n_overflow
    return n_invalid, n_wraps, n_gaps


def decode_words(words: np.ndarray, family: int, multi: bool, wrap: int, wraps0: int,
                 t3: bool) -> Decoded:
    """Decode uint32 records of one family with numpy, as the compiled kernels do.

    Parameters
    ----------
    words
        Native-order uint32 records, 1-D.
    family, multi
        Record family and overflow style (see :mod:`spad.formats.families`).
    wrap
        Timestamp ticks per overflow wrap.
    wraps0
        Wraps carried from the records before ``words``.
    t3
        Whether the records are T3 (with nanotimes).

    Returns
    -------
    Decoded
        Photons, markers and counts; ``n_wraps`` counts only the wraps in ``words``.
    """
    n = words.shape[0]
    # The photons are found first, over all records, to size the output exactly (one byte
    # per record, a quarter of the records' own size)
    photon = _photons(words, family)
    out = _Output(int(np.count_nonzero(photon)), t3)
    n_invalid = n_wraps = n_gaps = 0
    for lo in range(0, n, BLOCK):
        inv, wr, gaps = _decode_block(words[lo:lo + BLOCK], photon[lo:lo + BLOCK], family,
                                      multi, wrap, wraps0 + n_wraps, out)
        n_invalid += inv
        n_wraps += wr
        n_gaps += gaps
    mts = np.concatenate(out.mts) if out.mts else np.empty(0, np.int64)
    mch = np.concatenate(out.mch) if out.mch else np.empty(0, np.uint8)
    return Decoded(out.ts, out.det, out.nt, mts, mch, n_invalid, n_wraps, n_gaps)
