"""Grouping of intensity levels into intensity states, and the number of states.

The levels between change points (:class:`spad.analysis.changepoints.Levels`) are grouped into
intensity states by agglomerative hierarchical clustering followed by expectation-maximisation
of a Poisson mixture over levels, scored by the Bayesian information criterion
``BIC = 2 ln L - (2G - 1) ln J - J ln N`` (J change points, N photons) of Watkins & Yang
(J. Phys. Chem. B 2005, 109, 617) and Full SMS (Botha, van Heerden & Krüger, 2024). The number of
states is not the BIC's argmax, as there, but the fewest states whose BIC is within
:data:`BIC_MARGIN` of the maximum (:func:`choose_n_states`): on a clear ON/OFF trace the BIC is
flat past two states and its argmax picks a spurious third or fourth state by noise.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit
from scipy.special import gammaln
from spad.analysis.changepoints import Levels

__all__ = ["Grouping", "group_levels", "choose_n_states", "BIC_MARGIN"]


def _merge_cost(a_n: float, a_d: float, b_n: float, b_d: float) -> float:
    """Log-likelihood lost by merging two groups (Watkins & Yang's merge merit, eq. 11).

    NaN (and +inf) become +inf: the heap never picks such a pair over a finite one, and picks
    the leftmost pair when all are so. ``math.log`` is the C library's log, which the compiled
    version of this function called too (numpy's vectorised log may differ in the last bit).
    """
    s_n = a_n + b_n
    s_d = a_d + b_d
    cost = 0.0
    if a_n > 0:
        cost += a_n * math.log(a_n / a_d)
    if b_n > 0:
        cost += b_n * math.log(b_n / b_d)
    if s_n > 0:
        cost -= s_n * math.log(s_n / s_d)
    if not cost < math.inf:
        cost = math.inf
    return cost


def _adjacent_ahc(n: np.ndarray, d: np.ndarray, max_groups: int) -> np.ndarray:
    """Agglomerative clustering of intensity-sorted levels into contiguous groups.

    ``n`` and ``d`` are photon counts and durations of the levels sorted by intensity. At each
    step the neighbouring pair whose merge loses least log-likelihood (Watkins & Yang's merge
    merit, eq. 11) is merged; of equal costs the leftmost pair. Returns, for
    G = 1..max_groups, the group label of every level (row G - 1).

    The candidate pairs sit in a binary heap keyed by (cost, position), so the whole
    agglomeration costs O(L log L) instead of the O(L^2) of rescanning all pairs after each
    merge (thousands of levels for a flickering particle). Merges and their order are those of
    the rescan (the reference in tests/test_blinking.py): costs are computed by the same
    expression from the same running sums, and ties are broken the same way. A group is named
    by its first level; a merge changes the left group, so heap entries carry both groups'
    versions and stale ones are skipped when popped (at most one entry per pair of groups is
    current, so the heap's order past (cost, position) never decides a merge).

    Plain Python, not compiled: it works on levels, not photons (33 ms for 6,400 levels, as
    many as a flickering 300 s particle at 200 kcps has), and compiling it cost the first run
    1.4 s.
    """
    m = int(n.shape[0])
    gn = [float(v) for v in n]
    gd = [float(v) for v in d]
    nxt = list(range(1, m + 1))     # next live group's first level (m: none)
    prv = list(range(-1, m - 1))    # previous live group's first level (-1: none)
    alive = np.ones(m, dtype=bool)
    ver = [0] * m
    heap = [(_merge_cost(gn[j], gd[j], gn[j + 1], gd[j + 1]), j, j + 1, 0, 0)
            for j in range(m - 1)]
    heapq.heapify(heap)
    labels = np.zeros((max_groups, m), dtype=np.int64)
    g = m
    while True:
        if g <= max_groups:
            # groups are contiguous and named by their first level
            labels[g - 1] = np.cumsum(alive) - 1
        if g == 1:
            break
        while True:   # the cheapest pair still current
            _, lo, hi, vl, vr = heapq.heappop(heap)
            if alive[lo] and alive[hi] and nxt[lo] == hi and ver[lo] == vl and ver[hi] == vr:
                break
        gn[lo] += gn[hi]
        gd[lo] += gd[hi]
        alive[hi] = False
        ver[lo] += 1
        after = nxt[hi]
        nxt[lo] = after
        if after < m:
            prv[after] = lo
        # the merged group's pairs with its left, then its right neighbour
        a = prv[lo]
        if a >= 0:
            heapq.heappush(heap, (_merge_cost(gn[a], gd[a], gn[lo], gd[lo]), a, lo,
                                  ver[a], ver[lo]))
        if after < m:
            heapq.heappush(heap, (_merge_cost(gn[lo], gd[lo], gn[after], gd[after]), lo,
                                  after, ver[lo], ver[after]))
        g -= 1
    return labels


# Cody-Waite split of ln 2 (fdlibm): k * _LN2_HI is exact for |k| < 2^20.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00
_TWO_M64 = 2.0 ** -64


@njit(cache=True)
def _exp_nonpositive(x: np.ndarray, bits: np.ndarray, scale: np.ndarray) -> None:
    """x[:] = exp(x) for x <= 0, in place, to 1-2 ulp (``bits``: int64 scratch, same size;
    ``scale``: the same memory as float64, ``bits.view(np.float64)``, made by the caller in
    Python because a view costs numba's first run a fifth of a second to compile).

    The library exp is a scalar call per element and dominated the EM. This one is plain
    arithmetic that the compiler vectorises: exp(x) = 2^k exp(r), r = x - k ln 2 in
    [-ln2/2, ln2/2], exp(r) by its Taylor series to r^12 (truncation < 2e-16 relative), 2^k
    built in the exponent bits (offset by 2^64 so that results down to the smallest subnormal
    come out of one rounding). Below -745.1 the result is 0, as the library's.
    """
    m = x.shape[0]
    for i in range(m):
        xi = x[i]   # max(x[i], -746.0) written out: no builtin overload for numba to compile
        if -746.0 > xi:   # (numba's max: the later value when greater; NaN stays)
            xi = -746.0
        k = np.floor(xi * _INV_LN2 + 0.5)
        r = (xi - k * _LN2_HI) - k * _LN2_LO
        p = 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        bits[i] = (np.int64(k) + 1087) << 52
        x[i] = p
    for i in range(m):
        x[i] = x[i] * scale[i] * _TWO_M64


@njit(cache=True)
def _em_iterations(n: np.ndarray, d: np.ndarray, log_fact: np.ndarray, labels: np.ndarray,
                   max_iter: int, tol: float, resp: np.ndarray, per_level: np.ndarray,
                   per_group: np.ndarray, bits: np.ndarray, scale: np.ndarray
                   ) -> tuple[int, float]:
    """EM iterations of :func:`_poisson_mixture_em`: the responsibilities end in
    ``resp[:G]`` (``resp``: (groups, levels) scratch), returns (G, log-likelihood), G the
    groups left. ``per_level`` (4, levels) and ``per_group`` (2, groups) are scratch, and
    ``bits`` and ``scale`` that of :func:`_exp_nonpositive`, one entry per level. (Scratch
    comes from the caller: an array made in a kernel is one more implementation for numba
    to compile on the first run.)

    The updates of the array formulation (reference in tests/test_blinking.py), arranged for
    speed: ln p(n_l | g) = n_l ln(I_g d_l) - I_g d_l - ln n_l! is split into the part that
    depends on the group, n_l ln I_g - I_g d_l, and n_l ln d_l - ln n_l!, which cancels from the
    responsibilities and enters the log-likelihood once per level; that leaves one exp per
    level and group, computed by :func:`_exp_nonpositive`. Equal to rounding (~1e-14).
    """
    n_groups, m = resp.shape
    log_floor = np.log(1e-300)
    for g in range(n_groups):
        for i in range(m):
            resp[g, i] = 0.0
    for i in range(m):
        resp[labels[i], i] = 1.0
    # element loops, not array expressions or row copies: the same arithmetic, and far less
    # for numba to compile on the first run (row copies compile shape-check error messages)
    log_d = per_level[0]
    base = per_level[1]
    top = per_level[2]
    s = per_level[3]
    for i in range(m):
        log_d[i] = np.log(d[i])
        base[i] = n[i] * log_d[i] - log_fact[i]
    total = 0.0
    for i in range(m):
        total += d[i]
    g_live = n_groups
    t_g = per_group[0]     # both set for every live group before they are read
    n_g = per_group[1]
    loglik = -np.inf
    for _ in range(max_iter):
        for g in range(g_live):
            t_g[g] = np.dot(resp[g], d)
            n_g[g] = np.dot(resp[g], n)
        # drop groups that lost all their weight (as the array version's t_g > 0 mask)
        k = 0
        for g in range(g_live):
            if t_g[g] > 0:
                if k != g:
                    t_g[k] = t_g[g]
                    n_g[k] = n_g[g]
                    for i in range(m):
                        resp[k, i] = resp[g, i]
                k += 1
        g_live = k
        for i in range(m):
            top[i] = -np.inf
        for g in range(g_live):
            inten = n_g[g] / t_g[g]   # max(..., 1e-300) written out, as in _exp_nonpositive
            if 1e-300 > inten:
                inten = 1e-300
            li = np.log(inten)
            lp = np.log(t_g[g] / total)
            row = resp[g]
            for i in range(m):
                mu = inten * d[i]
                # mu below 1e-300: the floor of the array version, ln max(mu, 1e-300)
                r = (lp + n[i] * li - mu if mu >= 1e-300
                     else lp + n[i] * log_floor - 1e-300 - n[i] * log_d[i])
                row[i] = r
                if r > top[i]:   # top[i] = max(top[i], r)
                    top[i] = r
        for i in range(m):
            s[i] = 0.0
        for g in range(g_live):
            row = resp[g]
            for i in range(m):
                row[i] -= top[i]
            _exp_nonpositive(row, bits, scale)
            for i in range(m):
                s[i] += row[i]
        new_loglik = 0.0
        for i in range(m):
            new_loglik += top[i] + np.log(s[i]) + base[i]
            s[i] = 1.0 / s[i]
        for g in range(g_live):
            row = resp[g]
            for i in range(m):
                row[i] *= s[i]
        if abs(new_loglik - loglik) <= tol * abs(new_loglik):
            loglik = new_loglik
            break
        loglik = new_loglik
    return g_live, loglik


def _poisson_mixture_em(n: np.ndarray, d: np.ndarray, labels: np.ndarray, n_groups: int,
                        max_iter: int = 100, tol: float = 1e-9
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """EM of a mixture of Poisson intensities over levels, started from hard labels.

    Returns (intensities, time weights, labels, log-likelihood). The prior of a group is its
    share of the total time (Watkins & Yang).
    """
    n = np.ascontiguousarray(n, dtype=np.float64)
    d = np.ascontiguousarray(d, dtype=np.float64)
    bits = np.empty(n.size, dtype=np.int64)
    resp = np.empty((int(n_groups), n.size))
    g_live, loglik = _em_iterations(n, d, gammaln(n + 1.0),
                                    np.ascontiguousarray(labels, dtype=np.int64),
                                    int(max_iter), float(tol), resp, np.empty((4, n.size)),
                                    np.empty((2, int(n_groups))), bits, bits.view(np.float64))
    resp = resp[:g_live]
    total = d.sum()
    t_g = resp @ d
    inten = (resp @ n) / np.maximum(t_g, 1e-300)
    order = np.argsort(inten)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return inten[order], (t_g / total)[order], rank[np.argmax(resp, axis=0)], float(loglik)


BIC_MARGIN = 10.0
"""How far below the maximum BIC the chosen number of states may lie (see :func:`choose_n_states`).

The BIC here is on the scale 2 ln L - k ln n, so the BIC difference of two numbers of states
approximates twice the log of their Bayes factor (Schwarz's approximation), which is the scale of
Kass & Raftery's table of evidence (J. Am. Stat. Assoc. 90, 773 (1995)): 2 ln B of 0-2 is "not
worth more than a bare mention", 2-6 "positive", 6-10 "strong", above 10 "very strong". Extra
states are kept only on very strong evidence."""


def choose_n_states(bic: np.ndarray, margin: float = BIC_MARGIN) -> int:
    """The fewest states whose BIC is within ``margin`` of the maximum.

    Extra intensity groups that each take over a few short levels (whose intensities are off by
    Poisson noise or because they straddle an unresolved switch) raise the likelihood about as
    much as their penalty costs, so past the true number of states the BIC is flat to within a
    few units and its argmax is decided by noise. More states are taken only when they beat every
    fewer-state grouping by more than ``margin``: with :data:`BIC_MARGIN` = 10, "very strong"
    evidence on the scale of Kass & Raftery (J. Am. Stat. Assoc. 90, 773 (1995)).

    Parameters
    ----------
    bic
        BIC for 1, 2, ... states (index G - 1), larger is better; non-finite entries are skipped.
    margin
        Largest BIC shortfall from the maximum that a smaller number of states may have; 0 gives
        the argmax.

    Returns
    -------
    int
        Number of states G (1-based); 1 when no entry is finite.
    """
    b = np.asarray(bic, dtype=np.float64)
    ok = np.isfinite(b)
    if not ok.any():
        return 1
    within = ok & (b >= b[ok].max() - margin)
    return int(np.flatnonzero(within)[0]) + 1


@dataclass
class Grouping:
    """Intensity states found by grouping levels.

    Attributes
    ----------
    n_states
        Number of states: the fewest whose BIC is within :data:`BIC_MARGIN` of the maximum
        (:func:`choose_n_states`), less any group the EM emptied.
    group_of_level
        State of each level, 0 = dimmest.
    intensities
        Intensity of each state in counts/s (ascending).
    time_fractions
        Share of the total level time spent in each state.
    bic
        BIC for 1, 2, ... states (index G - 1).
    """

    n_states: int
    group_of_level: np.ndarray
    intensities: np.ndarray
    time_fractions: np.ndarray
    bic: np.ndarray = field(default_factory=lambda: np.empty(0))


def group_levels(levels: Levels, max_groups: int = 10,
                 bic_margin: float = BIC_MARGIN) -> Grouping:
    """Group levels into intensity states and choose their number by BIC.

    Agglomerative clustering (merging the pair of neighbouring groups in intensity that loses
    least likelihood; for one-dimensional intensities merging non-neighbours is never the
    better choice in practice and costs O(G^3)), then EM of a Poisson mixture over levels for each
    number of groups up to ``max_groups``, then the BIC of Watkins & Yang; the number of states
    is the fewest whose BIC is within ``bic_margin`` of the maximum (:func:`choose_n_states`).

    Parameters
    ----------
    levels
        Levels from :func:`levels_from_change_points`.
    max_groups
        Largest number of states considered.
    bic_margin
        BIC shortfall from the maximum that a smaller number of states may have and still be
        chosen (:data:`BIC_MARGIN`; 0: the argmax of Watkins & Yang and Full SMS).
    """
    if len(levels) == 0:
        raise ValueError("no levels to group")
    n = levels.n_photons.astype(np.float64)
    d = levels.duration.astype(np.float64)
    # A level of zero duration (two photons at one time stamp) carries no intensity.
    d = np.maximum(d, np.finfo(float).tiny)
    total_photons = float(n.sum())
    j = len(levels) - 1
    if j == 0:
        return Grouping(1, np.zeros(1, dtype=np.int64), np.array([n[0] / d[0]]),
                        np.ones(1), np.array([0.0]))
    order = np.argsort(n / d, kind="stable")
    g_max = int(min(max_groups, len(levels)))
    ahc = _adjacent_ahc(n[order], d[order], g_max)
    bic = np.full(g_max, -np.inf)
    fits = []
    for g in range(1, g_max + 1):
        labels = np.empty(len(levels), dtype=np.int64)
        labels[order] = ahc[g - 1]
        inten, frac, lab, loglik = _poisson_mixture_em(n, d, labels, g)
        g_eff = inten.size  # EM may empty a group
        bic[g - 1] = 2 * loglik - (2 * g_eff - 1) * np.log(j) - j * np.log(total_photons)
        fits.append((inten, frac, lab))
    inten, frac, lab = fits[choose_n_states(bic, bic_margin) - 1]
    return Grouping(int(inten.size), lab, inten, frac, bic)
