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
from spad.simulators.blinking import uniform
from spad.simulators.detection import Detection
from spad.simulators.emitter import Emitter

__all__ = ["EmissionTables", "emit_block", "sort_events", "merge_events"]


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
def _exp(rng: np.ndarray, tau: float) -> float:
    return -tau * math.log(1.0 - uniform(rng))


@njit(cache=True)
def _x_delay(rng: np.ndarray, tau: np.ndarray, amp_cum: np.ndarray, s: int) -> float:
    k = 0
    if tau.shape[1] > 1:
        u = uniform(rng)
        while k < tau.shape[1] - 1 and u >= amp_cum[s, k]:
            k += 1
    return _exp(rng, tau[s, k])


@njit(cache=True)
def emit_block(rng: np.ndarray, period: float, seg_pulse: np.ndarray, seg_state: np.ndarray,
               p_prod: np.ndarray, outcome_cum: np.ndarray, tau: np.ndarray,
               amp_cum: np.ndarray, bx_tau: float, split: float, q: np.ndarray,
               off1: float, off2: float, out_t: np.ndarray, out_d: np.ndarray) -> int:
    """Detected photons of one emitter over a block of pulses: times and detectors.

    Parameters
    ----------
    rng
        xoshiro256+ state of this block's draws (:func:`spad.simulators.blinking.rng_state`).
    period
        Laser period, seconds (pulse ``p`` fires at ``p * period``).
    seg_pulse
        (m + 1,) pulse boundaries: segment ``i`` covers pulses ``[seg_pulse[i],
        seg_pulse[i+1])`` in blinking state ``seg_state[i]``.
    p_prod, outcome_cum, tau, amp_cum, bx_tau
        :class:`EmissionTables` of the emitter.
    split, q, off1, off2
        Beamsplitter ratio to detector 1, jitter inverse-CDF table, cable delays.
    out_t, out_d
        Output buffers: photon times (pulse order, not yet sorted) and detectors (1 or 2).

    Returns
    -------
    int
        Photons written; -1 when the buffers were too small.
    """
    n = 0
    cap = out_t.shape[0]
    nq = q.shape[0] - 1
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
                pulse += 1 + math.floor(math.log(1.0 - uniform(rng)) / log_q)
            else:
                pulse += 1
            if pulse >= end:
                break
            if n + 2 > cap:
                return -1
            t0 = pulse * period
            u = uniform(rng)
            code = 0
            while code < 3 and u >= outcome_cum[s, code]:
                code += 1
            if code == 0:
                t_bx = -1.0
                t_x = t0 + _x_delay(rng, tau, amp_cum, s)
            else:
                tb = _exp(rng, bx_tau)
                t_bx = t0 + tb if code >= 2 else -1.0
                t_x = t0 + tb + _x_delay(rng, tau, amp_cum, s) if code != 2 else -1.0
            for t in (t_bx, t_x):
                if t < 0.0:
                    continue
                # Beamsplitter, jitter (inverse-CDF table, linear between points), cable delay.
                x = uniform(rng) * nq
                j = int(x)
                jit = q[j] + (x - j) * (q[j + 1] - q[j]) if j < nq else q[nq]
                if uniform(rng) < split:
                    out_t[n] = t + jit + off1
                    out_d[n] = 1
                else:
                    out_t[n] = t + jit + off2
                    out_d[n] = 2
                n += 1
    return n


@njit(cache=True)
def sort_events(t: np.ndarray, d: np.ndarray) -> None:
    """Sort times (and their detectors) in place; O(n + inversions), for nearly sorted data
    such as photons in pulse order."""
    for i in range(1, t.shape[0]):
        x = t[i]
        y = d[i]
        j = i - 1
        while j >= 0 and t[j] > x:
            t[j + 1] = t[j]
            d[j + 1] = d[j]
            j -= 1
        t[j + 1] = x
        d[j + 1] = y


@njit(cache=True)
def merge_events(ta: np.ndarray, da: np.ndarray, tb: np.ndarray, db: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Merge two sorted event streams (times and detectors)."""
    na, nb = ta.shape[0], tb.shape[0]
    t = np.empty(na + nb, np.float64)
    d = np.empty(na + nb, np.uint8)
    i = j = 0
    for k in range(na + nb):
        if j >= nb or (i < na and ta[i] <= tb[j]):
            t[k] = ta[i]
            d[k] = da[i]
            i += 1
        else:
            t[k] = tb[j]
            d[k] = db[j]
            j += 1
    return t, d
