"""Per-pulse excitation and emission, compiled: detected photons of one emitter in a block.

Looping over every laser pulse is out of the question (5 MHz x 60 s = 3e8 pulses), so only the
pulses that give at least one *detected* photon are drawn. In a blinking state ``s`` a pulse is
"productive" with probability ``P_s``; the gap to the next productive pulse is geometric, and
since that is memoryless the draw simply restarts at each state change. A productive pulse then
draws its outcome conditional on being productive:

=====  ==========================================  ============================================
code   outcome                                     probability (p1 = P(n=1), p2 = P(n>=2))
=====  ==========================================  ============================================
0      one exciton, X photon detected              p1 qX eta
1      biexciton, only the X photon detected       p2 (1 - qBX eta) qX eta
2      biexciton, only the BX photon detected      p2 qBX eta (1 - qX eta)
3      biexciton, both photons detected            p2 qBX eta qX eta
=====  ==========================================  ============================================

A biexciton decays first (exponential, ``bx_lifetime_s``; the BX photon carries that delay)
and the exciton it leaves then decays with the state's multi-exponential law, so the X delay
is the sum of both. Each detected photon goes to detector 1 or 2 (beamsplitter) and gets that
detector's jitter and cable delay.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from simulators.detection import Detection
from simulators.emitter import Emitter

__all__ = ["EmissionTables", "emit_block", "insertion_sort", "merge_sorted"]


class EmissionTables:
    """Per-state probabilities and decay tables of one emitter seen through one detection.

    Attributes
    ----------
    p_productive
        (S,) probability that a pulse gives at least one detected photon, per state.
    outcome_cum
        (S, 4) cumulative conditional outcome probabilities (codes 0-3, see module doc).
    tau, amp_cum
        (S, K) decay components and cumulative photon fractions (padded with the last).
    """

    def __init__(self, emitter: Emitter, detection: Detection) -> None:
        eta = detection.efficiency
        n = emitter.mean_excitations
        p1 = n * math.exp(-n)
        p2 = -math.expm1(-n) - p1
        ns = len(emitter.states)
        k = max(len(s.lifetimes_s) for s in emitter.states)
        self.p_productive = np.zeros(ns)
        self.outcome_cum = np.ones((ns, 4))
        self.tau = np.zeros((ns, k))
        self.amp_cum = np.ones((ns, k))
        for i, s in enumerate(emitter.states):
            qx, qb = s.qy * eta, emitter.bx_qy(s) * eta
            probs = np.array([p1 * qx, p2 * (1 - qb) * qx, p2 * qb * (1 - qx), p2 * qb * qx])
            total = probs.sum()
            self.p_productive[i] = total
            if total > 0:
                self.outcome_cum[i] = np.cumsum(probs) / total
            self.outcome_cum[i, -1] = 1.0
            m = len(s.lifetimes_s)
            self.tau[i, :m] = s.lifetimes_s
            self.tau[i, m:] = s.lifetimes_s[-1]
            self.amp_cum[i, :m] = np.cumsum(s.amplitudes)
            self.amp_cum[i, m - 1:] = 1.0
        self.bx_tau = float(emitter.bx_lifetime_s)


@njit(cache=True)
def _exp(rng: np.random.Generator, tau: float) -> float:
    return -tau * math.log(1.0 - rng.random())


@njit(cache=True)
def _x_delay(rng: np.random.Generator, tau: np.ndarray, amp_cum: np.ndarray, s: int) -> float:
    k = 0
    if tau.shape[1] > 1:
        u = rng.random()
        while k < tau.shape[1] - 1 and u >= amp_cum[s, k]:
            k += 1
    return _exp(rng, tau[s, k])


@njit(cache=True)
def _jitter(rng: np.random.Generator, q: np.ndarray) -> float:
    x = rng.random() * (q.shape[0] - 1)
    i = int(x)
    f = x - i
    return q[i] + f * (q[i + 1] - q[i])


@njit(cache=True)
def _put(rng: np.random.Generator, t: float, split: float, q: np.ndarray, off1: float, off2: float,
         out1: np.ndarray, out2: np.ndarray, n: np.ndarray) -> bool:
    # Beamsplitter, jitter and cable delay; False when the output is full.
    if rng.random() < split:
        if n[0] >= out1.shape[0]:
            return False
        out1[n[0]] = t + _jitter(rng, q) + off1
        n[0] += 1
    else:
        if n[1] >= out2.shape[0]:
            return False
        out2[n[1]] = t + _jitter(rng, q) + off2
        n[1] += 1
    return True


@njit(cache=True)
def emit_block(rng: np.random.Generator, period: float, seg_pulse: np.ndarray,
               seg_state: np.ndarray, p_prod: np.ndarray, outcome_cum: np.ndarray, tau: np.ndarray,
               amp_cum: np.ndarray, bx_tau: float, split: float, q: np.ndarray,
               off1: float, off2: float, out1: np.ndarray, out2: np.ndarray
               ) -> tuple[int, int]:
    """Detected photon times of one emitter over a block of pulses, per detector.

    Parameters
    ----------
    rng
        Generator of this block's draws.
    period
        Laser period, seconds (pulse ``p`` fires at ``p * period``).
    seg_pulse
        (m + 1,) pulse boundaries: segment ``i`` covers pulses ``[seg_pulse[i],
        seg_pulse[i+1])`` in blinking state ``seg_state[i]``.
    p_prod, outcome_cum, tau, amp_cum, bx_tau
        :class:`EmissionTables` of the emitter.
    split, q, off1, off2
        Beamsplitter ratio to detector 1, jitter inverse-CDF table, cable delays.
    out1, out2
        Output buffers of photon times for detectors 1 and 2 (pulse order, not yet sorted).

    Returns
    -------
    n1, n2
        Photons written per detector; ``(-1, -1)`` when a buffer was too small.
    """
    n = np.zeros(2, np.int64)
    for i in range(seg_state.shape[0]):
        s = seg_state[i]
        p = p_prod[s]
        if p <= 0.0:
            continue
        log_q = math.log1p(-p) if p < 1.0 else -np.inf
        pulse = seg_pulse[i] - 1
        end = seg_pulse[i + 1]
        while True:
            # Geometric gap (>= 1) to the next productive pulse.
            if p < 1.0:
                gap = 1 + math.floor(math.log(1.0 - rng.random()) / log_q)
            else:
                gap = 1
            pulse += gap
            if pulse >= end:
                break
            t0 = pulse * period
            u = rng.random()
            code = 0
            while code < 3 and u >= outcome_cum[s, code]:
                code += 1
            if code == 0:
                ok = _put(rng, t0 + _x_delay(rng, tau, amp_cum, s), split, q, off1, off2,
                          out1, out2, n)
            else:
                tb = _exp(rng, bx_tau)
                ok = True
                if code >= 2:
                    ok = _put(rng, t0 + tb, split, q, off1, off2, out1, out2, n)
                if code != 2 and ok:
                    ok = _put(rng, t0 + tb + _x_delay(rng, tau, amp_cum, s), split, q, off1, off2,
                              out1, out2, n)
            if not ok:
                return -1, -1
    return n[0], n[1]


@njit(cache=True)
def insertion_sort(a: np.ndarray) -> None:
    """Sort in place; O(n + inversions), for nearly sorted photon times."""
    for i in range(1, a.shape[0]):
        x = a[i]
        j = i - 1
        while j >= 0 and a[j] > x:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = x


@njit(cache=True)
def merge_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Merge two sorted float arrays."""
    na, nb = a.shape[0], b.shape[0]
    out = np.empty(na + nb, np.float64)
    i = j = 0
    for k in range(na + nb):
        if j >= nb or (i < na and a[i] <= b[j]):
            out[k] = a[i]
            i += 1
        else:
            out[k] = b[j]
            j += 1
    return out
