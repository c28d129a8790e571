"""g2(0) from photon pairs counted by the pulses they belong to (T3; docs/methods.md, "g2").

In T3 every photon carries the number of its sync, so the zero-delay and side peaks are counted
by label (:class:`SyncPairCounter`, :func:`sync_pair_areas`) and :func:`sync_pair_g2` turns them
into g2(0) with the lag-window result's background correction; no peak shape is modelled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
from numba import njit
from spad.analysis.g2 import G2Result
from spad.analysis.photon_collector import PhotonList

__all__ = ["MAX_LABEL_BIAS", "SelfPairCounter", "SyncPairCounter", "label_bias",
           "same_sync_steps", "sync_pair_areas", "sync_pair_g2"]


_NO_SYNC = np.iinfo(np.int64).min
"""Sync number of an empty slot of the counter's ring (older than any real sync)."""


@njit(cache=True, nogil=True)
def _count_sync_pairs(syncs: np.ndarray, detectors: np.ndarray, det_a: int, det_b: int,
                      ring_sync: np.ndarray, ring_a: np.ndarray, ring_b: np.ndarray,
                      head: np.ndarray, areas: np.ndarray) -> int:
    """Add the pairs of the next photons (syncs non-decreasing) to ``areas``, one pass.

    ``areas[n + k]`` counts the pairs of an ``det_a`` photon in sync ``s`` and a ``det_b``
    photon in sync ``s + k``, ``|k| <= n`` with ``n = ring_sync.size - 1``. The ring holds the
    a and b photons of the last ``n + 1`` distinct syncs that had any, oldest at ``head[0]``:
    each pair is counted once, when its later photon arrives, against the earlier photons in
    the ring, newest first, up to the first sync more than ``n`` back (at tens of kcps and MHz
    rates that is the photon's own sync or the one before: a slot per sync number, all
    ``n + 1`` read for every photon, cost twice as much).
    Returns -1, or the index of the first photon whose sync is older than one before it; then
    nothing is counted (the ring and ``areas`` are left as they were).
    """
    m = ring_sync.size
    n = m - 1
    h = head[0]
    last = ring_sync[h - 1 if h > 0 else m - 1]   # the newest (_NO_SYNC while empty)
    for i in range(syncs.size):
        if syncs[i] < last:
            return i
        last = syncs[i]
    for i in range(syncs.size):
        d = detectors[i]
        if d != det_a and d != det_b:
            continue
        s = syncs[i]
        newest = h - 1 if h > 0 else m - 1
        if ring_sync[newest] != s:
            newest = h
            ring_sync[h] = s
            ring_a[h] = 0
            ring_b[h] = 0
            h = h + 1 if h + 1 < m else 0
        j = newest
        for _ in range(m):
            t = ring_sync[j]
            if t == _NO_SYNC or s - t > n:
                break
            # t <= s: an a photon now pairs with the b photons of sync t (k = t - s), a b
            # photon now with the a photons of sync t (k = s - t)
            if d == det_a:
                areas[n + t - s] += ring_b[j]
            if d == det_b:
                areas[n + s - t] += ring_a[j]
            j = j - 1 if j > 0 else m - 1
        if d == det_a:
            ring_a[newest] += 1
        if d == det_b:
            ring_b[newest] += 1
    head[0] = h
    return -1


class SyncPairCounter:
    """Photon pairs of two detectors counted by the pulses they belong to (T3), fed the
    photons in time order, in any pieces: the pairs of the same sync (the zero-delay peak) and
    of syncs ``k = -n_side..n_side`` apart.

    In T3 every photon carries the number of its sync, so the peaks are separated by label,
    not by lag windows: no tail of one peak falls into another's window, and no peak shape is
    modelled. Only a photon arriving after the next sync (a decay not over within the period)
    is counted with the wrong pulse. The photons of the last ``n_side + 1`` syncs are kept (a
    count per detector) to pair with the next photons, so memory stays bounded and any split
    gives the same counts.
    """

    def __init__(self, det_a: int, det_b: int, n_side: int = 4) -> None:
        self.det_a, self.det_b, self.n_side = int(det_a), int(det_b), int(n_side)
        self.ks = [k for k in range(-self.n_side, self.n_side + 1) if k != 0]
        self._areas = np.zeros(2 * self.n_side + 1, dtype=np.int64)
        self._ring_sync = np.full(self.n_side + 1, _NO_SYNC, dtype=np.int64)
        self._ring_a = np.zeros(self.n_side + 1, dtype=np.int64)
        self._ring_b = np.zeros(self.n_side + 1, dtype=np.int64)
        self._head = np.zeros(1, dtype=np.int64)

    @property
    def centre(self) -> int:
        """Pairs of the same sync."""
        return int(self._areas[self.n_side])

    @property
    def sides(self) -> np.ndarray:
        """Pairs of syncs ``k`` apart, for each ``k`` of :attr:`ks`."""
        return np.delete(self._areas, self.n_side)

    def update(self, syncs: np.ndarray, detectors: np.ndarray) -> None:
        """Add the photons of the next piece of the stream (sync numbers, detectors).

        Raises
        ------
        ValueError
            If the syncs go back in time (within the piece or against the previous ones).
        """
        # one dtype per kernel argument: a single compiled specialisation
        syncs = np.ascontiguousarray(syncs, dtype=np.int64)
        detectors = np.ascontiguousarray(detectors, dtype=np.uint8)
        bad = _count_sync_pairs(syncs, detectors, self.det_a, self.det_b, self._ring_sync,
                                self._ring_a, self._ring_b, self._head, self._areas)
        if bad >= 0:
            raise ValueError(f"sync pair counts: the photons are not in time order (sync "
                             f"{int(syncs[bad])} at photon {bad} comes after a later one)")


@njit(cache=True, nogil=True)
def _same_sync_steps(syncs: np.ndarray, delays: np.ndarray, detectors: np.ndarray, det_a: int,
                     det_b: int, short: np.ndarray, fwd: np.ndarray, back: np.ndarray,
                     last: np.ndarray) -> None:
    """Fold the delay steps between each detector's successive photons of one sync (``det_a``
    index 0, ``det_b`` 1) into ``short`` (the shortest forward step), ``fwd`` and ``back``
    (how many steps go forward and backward); one pass, the photons of this piece only.
    ``last`` (int64, 6 zeros) is scratch: per detector the last photon's sync, its delay, and
    whether there was one (from the caller: each array made in a kernel costs numba's first
    run ~0.1 s to compile)."""
    for i in range(syncs.size):
        d = detectors[i]
        if d == det_a:
            x = 0
        elif d == det_b:
            x = 1
        else:
            continue
        s = syncs[i]
        n = delays[i]
        if last[4 + x] and s == last[x]:
            step = n - last[2 + x]
            if step > 0:
                fwd[x] += 1
                if step < short[x]:
                    short[x] = step
            elif step < 0:
                back[x] += 1
        last[4 + x] = 1
        last[x] = s
        last[2 + x] = n


def same_sync_steps(syncs: np.ndarray, delays: np.ndarray, detectors: np.ndarray,
                    detectors_ab: tuple[int, int], short: np.ndarray, fwd: np.ndarray,
                    back: np.ndarray) -> None:
    """Add one piece of photons (sync numbers, delays in units, detectors) to each of the two
    detectors' steps between successive photons of one sync: ``short`` the shortest forward
    step (int64 ``[2]``, start at the int64 maximum), ``fwd`` and ``back`` how many go
    forward and backward (int64 ``[2]``). Steps across pieces are not counted."""
    _same_sync_steps(np.ascontiguousarray(syncs, dtype=np.int64),
                     np.ascontiguousarray(delays, dtype=np.int64),
                     np.ascontiguousarray(detectors, dtype=np.uint8),
                     int(detectors_ab[0]), int(detectors_ab[1]), short, fwd, back,
                     np.zeros(6, dtype=np.int64))


@njit(cache=True, nogil=True)
def _count_self_pairs(syncs: np.ndarray, delays: np.ndarray, detectors: np.ndarray,
                      edges: np.ndarray, table: np.ndarray, table_lo: int, det_a: int,
                      det_b: int, dead: np.ndarray, offset: np.ndarray, period: int,
                      n_near: int, far_lo: int, far_hi: int,
                      ring_s: np.ndarray, ring_d: np.ndarray, ring_b: np.ndarray,
                      ring_n: np.ndarray, head: np.ndarray, hists: np.ndarray,
                      cross: np.ndarray, counts: np.ndarray) -> int:
    """Add the next photons' pairs to ``hists`` (rows of :class:`SelfPairCounter`) and
    ``cross`` (the two detectors' pairs ``far_lo..far_hi - 1`` syncs apart).

    Detector ``det_a`` is index 0, ``det_b`` 1; delays in units, ``edges`` the histograms'
    bin edges (a delay outside them counts in the first or last bin), ``table`` the bin of
    each delay ``table_lo, table_lo + 1, ...`` up to the last edge (empty: none), ``dead`` each
    detector's dead time, ``offset`` its pulse delay (to compare the two detectors' delays),
    ``period`` the sync period, all in delay units. ``ring_*`` hold each detector's last
    photons (sync, delay, bin) in a ring, ``head`` the next slot, ``ring_n`` the filled ones.
    Returns how many photons found their own ring full of photons still within ``far_hi``
    syncs (pairs lost).
    """
    cap = ring_s.shape[1]
    last_bin = edges.size - 2
    lost = 0
    for i in range(syncs.size):
        d = detectors[i]
        if d == det_a:
            x = 0
        elif d == det_b:
            x = 1
        else:
            continue
        s = syncs[i]
        n = delays[i]
        # the bin: the edges at or below the delay less one, within the bins (numpy's
        # searchsorted, side right, clipped); from the table when there is one (a binary
        # search costs ~50 ns a photon in mispredicted branches)
        if table.size == 0:
            lo, hi = 0, edges.size
            while lo < hi:
                mid = (lo + hi) >> 1
                if edges[mid] <= n:
                    lo = mid + 1
                else:
                    hi = mid
            b = lo - 1   # min(max(lo - 1, 0), last_bin) written out, as in _count_sync_pairs
            if 0 > b:
                b = 0
            if last_bin < b:
                b = last_bin
        elif n < table_lo:
            b = 0
        elif n - table_lo < table.size:
            b = table[n - table_lo]
        else:
            b = last_bin
        counts[x] += 1
        for y in range(2):
            full = ring_n[y] == cap
            j = head[y]
            for _ in range(ring_n[y]):
                j = j - 1 if j > 0 else cap - 1
                k = s - ring_s[y, j]
                if k >= far_hi:
                    full = False
                    break
                if y == x:
                    dn = n - ring_d[y, j]
                    if k == 0:
                        if dn > dead[x]:
                            hists[x, 0, b] += 1
                            hists[x, 5, ring_b[y, j]] += 1
                    elif k < n_near:
                        hists[x, 1, b] += 1
                    elif k >= far_lo:
                        hists[x, 3, b] += 1
                        if dn > dead[x] - period:
                            hists[x, 4, b] += 1
                elif k == 0:
                    # the later of the two after aligning their pulses, as if on one detector
                    dn = (n - offset[x]) - (ring_d[y, j] - offset[y])
                    if dn > dead[x]:
                        hists[x, 2, b] += 1
                    if dn > dead[y]:
                        hists[y, 6, ring_b[y, j]] += 1
                    if -dn > dead[y]:
                        hists[y, 2, ring_b[y, j]] += 1
                    if -dn > dead[x]:
                        hists[x, 6, b] += 1
                elif k >= far_lo:
                    cross[0] += 1
            if y == x and full:
                lost += 1
        ring_s[x, head[x]] = s
        ring_d[x, head[x]] = n
        ring_b[x, head[x]] = b
        head[x] = head[x] + 1 if head[x] + 1 < cap else 0
        if ring_n[x] < cap:
            ring_n[x] += 1
    return lost


MAX_BIN_TABLE = 1 << 20
"""Most whole delays :class:`SelfPairCounter` tabulates the bins of (4 MB); wider edges are
searched photon by photon."""


class SelfPairCounter:
    """Pairs of photons of one detector, by the syncs between them and the later photon's
    delay bin, for the afterpulses' share of the background
    (:func:`spad.analysis.g2_background.afterpulse_background`); fed the photons in time
    order, in any pieces.

    Per detector, :attr:`hists` rows by the later photon's delay bin: 0, pairs in one sync
    more than its dead time apart; 1, pairs ``1..n_near - 1`` syncs apart; 2, pairs of the
    two detectors in one sync where this detector's photon is the later by more than its dead
    time once the pulses are aligned (the same pairs without afterpulses); 3, pairs
    ``far_lo..far_hi - 1`` syncs apart (uncorrelated); 4, those of them the dead time would let
    through one sync apart; 5 and 6, the pairs of rows 0 and 2 by the earlier photon's delay
    bin (this detector's photon the earlier in row 6). :attr:`cross`: the two detectors'
    pairs ``far_lo..far_hi - 1`` syncs apart. Memory: a ring of each detector's last photons.

    Parameters
    ----------
    det_a, det_b
        The detectors.
    bin_edges_units
        Delay bin edges (as the decay's, in delay units) of the histograms.
    dead_units
        Each detector's dead time in delay units.
    offset_units
        Each detector's pulse delay in delay units.
    period_units
        The sync period in delay units.
    n_near, far_lo, far_hi
        The sync distances counted as near (afterpulses) and far (reference).
    """

    def __init__(self, det_a: int, det_b: int, bin_edges_units: np.ndarray,
                 dead_units: tuple[int, int], offset_units: tuple[int, int],
                 period_units: int, n_near: int, far_lo: int, far_hi: int,
                 ring: int = 4096) -> None:
        if not 1 <= n_near <= far_lo < far_hi:
            raise ValueError("self pairs: need 1 <= n_near <= far_lo < far_hi")
        self.det_a, self.det_b = int(det_a), int(det_b)
        self.edges = np.ascontiguousarray(bin_edges_units, dtype=np.float64)
        self.n_near, self.far_lo, self.far_hi = int(n_near), int(far_lo), int(far_hi)
        self._dead = np.array(dead_units, dtype=np.int64)
        self._offset = np.array(offset_units, dtype=np.int64)
        self.period = int(period_units)
        nb = self.edges.size - 1
        # each whole delay's bin, looked up per photon (a binary search costs more than the
        # pairs); none for edges too far apart to tabulate
        self._table = np.zeros(0, dtype=np.int32)
        self._table_lo = 0
        if nb >= 1 and np.all(np.isfinite(self.edges[[0, -1]])):
            lo, hi = math.ceil(self.edges[0]), math.floor(self.edges[-1])
            if 0 <= hi - lo < MAX_BIN_TABLE:
                whole = np.arange(lo, hi + 1, dtype=np.int64)
                self._table = np.clip(np.searchsorted(self.edges, whole, side="right") - 1, 0,
                                      nb - 1).astype(np.int32)
                self._table_lo = int(lo)
        self.hists = np.zeros((2, 7, nb), dtype=np.int64)
        self.cross = np.zeros(1, dtype=np.int64)
        self.counts = np.zeros(2, dtype=np.int64)
        self.lost = 0
        self._ring_s = np.zeros((2, ring), dtype=np.int64)
        self._ring_d = np.zeros((2, ring), dtype=np.int64)
        self._ring_b = np.zeros((2, ring), dtype=np.int64)
        self._ring_n = np.zeros(2, dtype=np.int64)
        self._head = np.zeros(2, dtype=np.int64)

    def update(self, syncs: np.ndarray, delays: np.ndarray, detectors: np.ndarray) -> None:
        """Add the photons of the next piece of the stream (sync numbers, delays in units,
        detectors), in time order."""
        syncs = np.ascontiguousarray(syncs, dtype=np.int64)
        if syncs.size == 0:
            return
        self.lost += int(_count_self_pairs(
            syncs, np.ascontiguousarray(delays, dtype=np.int64),
            np.ascontiguousarray(detectors, dtype=np.uint8), self.edges, self._table,
            self._table_lo, self.det_a,
            self.det_b, self._dead, self._offset, self.period, self.n_near, self.far_lo,
            self.far_hi, self._ring_s, self._ring_d, self._ring_b, self._ring_n, self._head,
            self.hists, self.cross, self.counts))


def sync_pair_areas(photons: PhotonList, det_a: int, det_b: int, n_side: int = 4
                    ) -> tuple[int, np.ndarray]:
    """Pairs of the same sync and of each ``k`` in ``-n_side..-1, 1..n_side`` (T3), of photons
    in memory (:class:`SyncPairCounter` in one piece)."""
    counter = SyncPairCounter(det_a, det_b, n_side)
    counter.update(photons.timestamps, photons.detectors)
    return counter.centre, counter.sides


MAX_LABEL_BIAS = 0.02
"""Largest bias of g2(0) from the pairs counted by sync label that is tolerated
(:func:`label_bias`): about what the lag windows' tail correction leaves (0.019 on blinking
monomers at 5 MHz, :func:`sync_pair_g2`), so above it the windows or the correlogram fit stand."""


def label_bias(period_s: float, pulse_delay_s: Mapping[int, float],
               lifetime_s: float | None) -> float | None:
    """How far g2(0) from pairs counted by sync label can be biased up by mislabelled photons,
    or ``None`` if the decay is unknown.

    A photon emitted more than ``period - delay`` after its pulse arrives after the next sync
    and carries that sync's label; the share of them is ``q = exp(-(period - delay) / tau)``
    for a decay of lifetime ``tau`` (the latest pulse delay of the detectors). Two photons of
    neighbouring pulses then share a label in about ``2 q (1 - q)`` of the side peaks' pairs,
    so a perfect single emitter reads g2(0) ~ 2q: at 50 MHz with a 40 ns decay q ~ 0.6 and
    an antibunched monomer reads ~0.9. With the intensity-weighted lifetime of a multi-
    exponential decay the bound errs high (the long component dominates that mean).
    """
    if not lifetime_s or lifetime_s <= 0 or not period_s or not pulse_delay_s:
        return None
    delay = max(float(d) % period_s for d in pulse_delay_s.values())
    q = math.exp(-(period_s - delay) / lifetime_s)
    return float(min(1.0, 2.0 * q))


def sync_pair_g2(pairs: tuple[int, np.ndarray], g2: G2Result) -> G2Result:
    """The pulsed g2(0) of ``g2`` recomputed from the pairs counted by sync label (``(centre,
    sides)`` of :class:`SyncPairCounter` or :func:`sync_pair_areas`), with the same background
    correction.

    The lag windows' tail correction models each side peak's shape from the two detectors'
    delay histograms; on simulated blinking monomers (30 kcps, 30 ns at 200 ns) it left g2(0)
    0.019 high, one standard error, against 0.001 for the pairs counted by sync. Used in T3 when
    the photons are in memory and the sync is the laser's.
    """
    a0, sides = pairs
    n_side = sides.size // 2
    if sides.sum() <= 0:
        return g2
    mean_side = float(sides.mean())
    var_side = float(sides.sum()) / sides.size ** 2
    bg = 0.0
    bg_err = 0.0
    if g2.background_pairs is not None:
        # the window method's background pairs per window: the same per pulse pair
        bg = float(g2.background_pairs)
        bg_err = float(g2.background_pairs_err or 0.0)
    d_side = mean_side - bg
    if d_side <= 0:
        return g2
    value = (a0 - bg) / d_side
    # Poisson: the centre's variance is its expectation, at least its background pairs
    var = (max(float(a0), bg, 1.0) + value ** 2 * var_side) / d_side ** 2
    var += ((value - 1.0) / d_side * bg_err) ** 2
    parts = [p for p in g2.correction.split("+") if p not in ("leakage", "none", "")]
    return replace(g2, g2=float(value), g2_err=float(math.sqrt(max(var, 0.0))),
                   correction="+".join(["sync pairs", *parts]), trusted=True,
                   note=(f"g2(0) from the pairs counted by sync label: {a0} of the same pulse, "
                         f"{mean_side:.1f} per side peak (k = ±1..±{n_side})"))
