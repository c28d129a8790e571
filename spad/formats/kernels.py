"""Compiled kernels behind :mod:`spad.formats.records`.

Decoding runs in two passes over blocks of records: :func:`count_range` counts, per block, the
photons, markers, invalid records and overflow wraps (these do not depend on what came before
the block); the caller turns the counts into per-block starting offsets (prefix sums) and
:func:`decode_range` then decodes each block straight into its slice of preallocated output
arrays. Both passes read the records once each; nothing is appended or copied afterwards. The
kernels release the GIL, so the caller runs blocks on several threads.

Record families (``family`` argument) and the ``multi`` overflow style are described in
:mod:`spad.formats.families`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# numba reads these module globals as compile-time constants; re-exported for the callers
from spad.formats.families import BH_SPC, HH_T2, HH_T3, PH_T2, PH_T3, TH_T3  # noqa: F401

# Columns of the per-block count table.
N_PHOTONS = 0
N_MARKERS = 1
N_INVALID = 2
N_WRAPS = 3
N_GAPS = 4      # records flagged as following lost data (B&H FIFO overrun); 0 for other types
N_COUNTS = 5

# Array indices are kept unsigned in the hot loops: numba then emits no negative-index
# wraparound code, which lets LLVM vectorise the counting loops and speeds up decoding about
# 1.5x. (Beware: mixing uint64 with int64 arithmetic gives float64 in numba; only indices are
# unsigned here.)
_ONE = np.uint64(1)


@njit(cache=True, inline="always")
def _count_ph_t3(words, lo, hi):
    n_ph = 0
    n_mk = 0
    n_ofl = 0
    for i in range(np.uint64(lo), np.uint64(hi)):
        w = words[i]
        ch = w >> 28
        dtime = (w >> 16) & 0xFFF
        sp = ch == 15
        n_ofl += sp & (dtime == 0)
        n_mk += sp & (dtime != 0) & (dtime <= 15)
        n_ph += (ch >= 1) & (ch <= 4)
    return n_ph, n_mk, (hi - lo) - n_ph - n_mk - n_ofl, n_ofl, 0


@njit(cache=True, inline="always")
def _count_ph_t2(words, lo, hi):
    n_ph = 0
    n_mk = 0
    n_ofl = 0
    for i in range(np.uint64(lo), np.uint64(hi)):
        w = words[i]
        ch = w >> 28
        sp = ch == 15
        low = w & 15
        n_ofl += sp & (low == 0)
        n_mk += sp & (low != 0)
        n_ph += ch <= 4
    return n_ph, n_mk, (hi - lo) - n_ph - n_mk - n_ofl, n_ofl, 0


@njit(cache=True, inline="always")
def _count_hh(words, lo, hi, multi, t2):
    # Branch-free so that LLVM vectorises it: this pass reads every record once more.
    field_mask = 0x1FFFFFF if t2 else 0x3FF
    n_ph = 0
    n_mk = 0
    n_rec_ofl = 0
    wraps = 0
    for i in range(np.uint64(lo), np.uint64(hi)):
        w = words[i]
        sp = w >> 31
        ch = (w >> 25) & 63
        ofl = sp & (ch == 63)
        f = w & field_mask
        n_rec_ofl += ofl
        if multi:
            wraps += ofl * (f + (f == 0))
        # In T2 a special record on channel 0 is a sync event, kept with the photons.
        n_ph += (sp ^ 1) | (sp & (ch == 0) & t2)
        n_mk += sp & (ch >= 1) & (ch <= 15)
    if not multi:
        wraps = n_rec_ofl
    return n_ph, n_mk, (hi - lo) - n_ph - n_mk - n_rec_ofl, wraps, 0


@njit(cache=True, inline="always")
def _count_th_t3(words, lo, hi):
    n_ph = 0
    n_mk = 0
    n_ofl = 0
    for i in range(np.uint64(lo), np.uint64(hi)):
        w = words[i]
        valid = (w >> 30) & 1
        data = (w >> 16) & 0xFFF
        special = valid ^ 1
        ofl = special & ((data >> 11) & 1)
        n_ofl += ofl
        n_mk += special & (ofl ^ 1) & ((data & 7) != 0)
        n_ph += valid
    return n_ph, n_mk, (hi - lo) - n_ph - n_mk - n_ofl, n_ofl, 0


@njit(cache=True, inline="always")
def _count_spc(words, lo, hi):
    n_ph = 0
    n_mk = 0
    n_multi = 0
    wraps = 0
    gaps = 0
    for i in range(np.uint64(lo), np.uint64(hi)):
        w = words[i]
        inv = w >> 31
        mtov = (w >> 30) & 1
        mark = (w >> 28) & 1
        multi = inv & mtov & (mark ^ 1)
        n_multi += multi
        # an overflow-count record carries the number of wraps; a photon or marker with MTOV
        # set follows exactly one wrap
        wraps += multi * (w & 0xFFFFFFF) + (multi ^ 1) * mtov
        gaps += (w >> 29) & 1
        n_ph += inv ^ 1
        n_mk += inv & mark & (((w >> 12) & 15) != 0)
    return n_ph, n_mk, (hi - lo) - n_ph - n_mk - n_multi, wraps, gaps


@njit(cache=True, inline="always")
def _count(words, lo, hi, family, multi):
    if family == PH_T3:
        return _count_ph_t3(words, lo, hi)
    if family == PH_T2:
        return _count_ph_t2(words, lo, hi)
    if family == HH_T3:
        return _count_hh(words, lo, hi, multi, False)
    if family == TH_T3:
        return _count_th_t3(words, lo, hi)
    if family == BH_SPC:
        return _count_spc(words, lo, hi)
    return _count_hh(words, lo, hi, multi, True)


@njit(cache=True, nogil=True)
def count_range(words, lo, hi, family, multi):
    """Count photons, markers, invalid records and overflow wraps in ``words[lo:hi]``.

    Parameters
    ----------
    words
        uint32 records.
    lo, hi
        The block.
    family, multi
        Record family and overflow style (see the module docstring).

    Returns
    -------
    counts
        int64 array of 5: photons (with T2 syncs), markers, invalid records, wraps, records
        flagged as following lost data (``N_GAPS``).
    """
    r = _count(words, lo, hi, family, multi)
    out = np.empty(N_COUNTS, dtype=np.int64)
    for c in range(N_COUNTS):
        out[c] = r[c]
    return out


@njit(cache=True, inline="always")
def _decode_ph_t3(words, lo, hi, wrap, ofl, p, m, ts, det, nt, mts, mch):
    p = np.uint64(p)
    m = np.uint64(m)
    for i in range(np.uint64(lo), np.uint64(hi)):
        w = words[i]
        ch = w >> 28
        dtime = (w >> 16) & 0xFFF
        nsync = w & 0xFFFF
        if ch == 15:
            if dtime == 0:
                ofl += wrap
            elif dtime <= 15:
                mts[m] = ofl + nsync
                mch[m] = dtime
                m += _ONE
        elif ch >= 1 and ch <= 4:
            ts[p] = ofl + nsync
            det[p] = ch
            nt[p] = dtime
            p += _ONE


@njit(cache=True, inline="always")
def _decode_ph_t2(words, lo, hi, wrap, ofl, p, m, ts, det, mts, mch):
    p = np.uint64(p)
    m = np.uint64(m)
    for i in range(np.uint64(lo), np.uint64(hi)):
        w = words[i]
        ch = w >> 28
        t = w & 0x0FFFFFFF
        if ch == 15:
            low = t & 15
            if low == 0:
                ofl += wrap
            else:
                # The marker bits are the low 4 bits of the time; kept in the time as the
                # reference reader does (an error of at most 15 ticks).
                mts[m] = ofl + t
                mch[m] = low
                m += _ONE
        elif ch <= 4:
            ts[p] = ofl + t
            det[p] = ch
            p += _ONE


@njit(cache=True, inline="always")
def _decode_hh_t3(words, lo, hi, wrap, multi, ofl, p, m, ts, det, nt, mts, mch):
    p = np.uint64(p)
    m = np.uint64(m)
    for i in range(np.uint64(lo), np.uint64(hi)):
        w = words[i]
        nsync = w & 0x3FF
        ch = (w >> 25) & 63
        if (w >> 31) == 0:
            ts[p] = ofl + nsync
            det[p] = ch + 1
            nt[p] = (w >> 10) & 0x7FFF
            p += _ONE
        elif ch == 63:
            if multi and nsync != 0:
                ofl += wrap * nsync
            else:
                ofl += wrap
        elif ch >= 1 and ch <= 15:
            mts[m] = ofl + nsync
            mch[m] = ch
            m += _ONE


@njit(cache=True, inline="always")
def _decode_hh_t2(words, lo, hi, wrap, multi, ofl, p, m, ts, det, mts, mch):
    p = np.uint64(p)
    m = np.uint64(m)
    for i in range(np.uint64(lo), np.uint64(hi)):
        w = words[i]
        t = w & 0x1FFFFFF
        ch = (w >> 25) & 63
        if (w >> 31) == 0:
            ts[p] = ofl + t
            det[p] = ch + 1
            p += _ONE
        elif ch == 63:
            if multi and t != 0:
                ofl += wrap * t
            else:
                ofl += wrap
        elif ch == 0:
            ts[p] = ofl + t
            det[p] = 0
            p += _ONE
        elif ch <= 15:
            mts[m] = ofl + t
            mch[m] = ch
            m += _ONE


@njit(cache=True, inline="always")
def _decode_th_t3(words, lo, hi, wrap, ofl, p, m, ts, det, nt, mts, mch):
    p = np.uint64(p)
    m = np.uint64(m)
    for i in range(np.uint64(lo), np.uint64(hi)):
        w = words[i]
        tag = w & 0xFFFF
        data = (w >> 16) & 0xFFF
        if (w >> 30) & 1:
            ts[p] = ofl + tag
            det[p] = ((w >> 28) & 3) + 1
            # reverse start-stop: the photon starts the TAC, the next sync stops it, so the
            # bin counts back from the laser pulse (see spad.formats.records)
            nt[p] = 4095 - data
            p += _ONE
        elif data & 0x800:
            ofl += wrap
        elif data & 7:
            mts[m] = ofl + tag
            mch[m] = data & 7
            m += _ONE


@njit(cache=True, inline="always")
def _decode_spc(words, lo, hi, wrap, ofl, p, m, ts, det, nt, mts, mch):
    p = np.uint64(p)
    m = np.uint64(m)
    for i in range(np.uint64(lo), np.uint64(hi)):
        w = words[i]
        inv = w >> 31
        mtov = (w >> 30) & 1
        mark = (w >> 28) & 1
        if inv and mtov and not mark:
            ofl += wrap * (w & 0xFFFFFFF)
            continue
        if mtov:
            ofl += wrap
        rout = (w >> 12) & 15
        if not inv:
            ts[p] = ofl + (w & 0xFFF)
            det[p] = rout + 1
            # the TAC runs photon-start / sync-stop: the ADC counts back from the next pulse
            nt[p] = 4095 - ((w >> 16) & 0xFFF)
            p += _ONE
        elif mark and rout != 0:
            mts[m] = ofl + (w & 0xFFF)
            mch[m] = rout
            m += _ONE


@njit(cache=True, inline="always")
def _decode(words, lo, hi, family, multi, wrap, ofl, p, m, ts, det, nt, mts, mch):
    if family == PH_T3:
        _decode_ph_t3(words, lo, hi, wrap, ofl, p, m, ts, det, nt, mts, mch)
    elif family == PH_T2:
        _decode_ph_t2(words, lo, hi, wrap, ofl, p, m, ts, det, mts, mch)
    elif family == HH_T3:
        _decode_hh_t3(words, lo, hi, wrap, multi, ofl, p, m, ts, det, nt, mts, mch)
    elif family == TH_T3:
        _decode_th_t3(words, lo, hi, wrap, ofl, p, m, ts, det, nt, mts, mch)
    elif family == BH_SPC:
        _decode_spc(words, lo, hi, wrap, ofl, p, m, ts, det, nt, mts, mch)
    else:
        _decode_hh_t2(words, lo, hi, wrap, multi, ofl, p, m, ts, det, mts, mch)


@njit(cache=True, nogil=True)
def decode_range(words, lo, hi, family, multi, wrap, ofl, p, m, ts, det, nt, mts, mch):
    """Decode ``words[lo:hi]`` into the output arrays from photon ``p`` and marker ``m`` on.

    Parameters
    ----------
    words, lo, hi, family, multi
        As for :func:`count_range`.
    wrap
        Timestamp ticks per overflow wrap.
    ofl
        Overflow correction (ticks) at the start of the block.
    p, m
        Index of the block's first photon and first marker in the outputs.
    ts, det, nt, mts, mch
        Output timestamps (int64), detectors (uint8), nanotimes (uint16, ignored in T2),
        marker times (int64) and marker channels (uint8).
    """
    _decode(words, lo, hi, family, multi, wrap, ofl, p, m, ts, det, nt, mts, mch)


@njit(cache=True)
def _pack_event(family, is_marker, field, det, dtime, chan):
    """One photon/sync/marker record with time field ``field`` (already below the wrap)."""
    if family == PH_T3:
        if is_marker:
            return np.uint32((15 << 28) | (chan << 16) | field)
        return np.uint32((det << 28) | (dtime << 16) | field)
    if family == PH_T2:
        # A marker's low time bits are its marker bits (checked by the caller).
        if is_marker:
            return np.uint32((15 << 28) | field)
        return np.uint32((det << 28) | field)
    if family == HH_T3:
        if is_marker:
            return np.uint32((1 << 31) | (chan << 25) | field)
        return np.uint32(((det - 1) << 25) | (dtime << 10) | field)
    if is_marker:
        return np.uint32((1 << 31) | (chan << 25) | field)
    if det == 0:
        return np.uint32((1 << 31) | field)
    return np.uint32(((det - 1) << 25) | field)


@njit(cache=True)
def _overflow_record(family, n):
    if family == PH_T3 or family == PH_T2:
        return np.uint32(0xF0000000)
    return np.uint32(0xFE000000 | n)


@njit(cache=True)
def encode_events(ts, det, nt, mts, mch, family, multi, wrap, max_wraps, wraps0, out):
    """Merge photons and markers in time order into records, with overflow records.

    Parameters
    ----------
    ts, det, nt
        Photon timestamps (int64, non-decreasing), detectors (uint8), nanotimes (uint16; any
        array of the same length in T2, ignored).
    mts, mch
        Marker times (int64, non-decreasing) and channels (uint8).
    family, multi, wrap
        As for :func:`decode_blocks`.
    max_wraps
        Most wraps one overflow record can carry (1 where ``multi`` is false).
    wraps0
        Wraps already emitted before these events.
    out
        uint32 output, or an empty array to only count the records.

    Returns
    -------
    n_records, wraps
        Records written (or needed) and the total wraps emitted afterwards.
    """
    fill = out.shape[0] > 0
    n_ph = ts.shape[0]
    n_mk = mts.shape[0]
    i = 0
    j = 0
    k = 0
    cur = wraps0
    while i < n_ph or j < n_mk:
        # Photons first at equal times; decoding keeps the two streams apart anyway.
        is_marker = i >= n_ph or (j < n_mk and mts[j] < ts[i])
        t = mts[j] if is_marker else ts[i]
        target = t // wrap
        while cur < target:
            n = min(target - cur, max_wraps)
            if fill:
                out[k] = _overflow_record(family, n if multi else 1)
            k += 1
            cur += n
        field = t - cur * wrap
        if fill:
            if is_marker:
                out[k] = _pack_event(family, True, field, 0, 0, np.int64(mch[j]))
            else:
                out[k] = _pack_event(family, False, field, np.int64(det[i]),
                                     np.int64(nt[i]), 0)
        k += 1
        if is_marker:
            j += 1
        else:
            i += 1
    return k, cur
