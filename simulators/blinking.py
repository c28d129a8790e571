"""Semi-Markov blinking timeline: which state an emitter is in, when.

The timeline is drawn lazily, in fixed batches of dwells, each batch from its own seed derived
from (seed, batch number). Drawing further ahead therefore never changes what was drawn: the
timeline is the same whether it is extended second by second (streaming) or in one go (truth).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from spad.simulators.emitter import Emitter

__all__ = ["Timeline", "sample_dwells", "derive_rng", "rng_state", "uniform"]

_BATCH = 4096
"""Dwells drawn per batch."""


def derive_rng(*key: int) -> np.random.Generator:
    """An independent generator for an integer key (seed, stream, index...).

    No global random state is involved anywhere, so threads do not disturb each other and
    every block of the simulation is reproducible on its own.
    """
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def rng_state(rng: np.random.Generator) -> np.ndarray:
    """A fresh xoshiro256+ state (4 x uint64) for :func:`uniform`, drawn from ``rng``."""
    st = rng.integers(0, np.iinfo(np.uint64).max, 4, dtype=np.uint64, endpoint=True)
    if not st.any():  # the one state xoshiro cannot leave
        st[0] = 1
    return st


@njit(inline="always")
def _rotl(x: np.uint64, k: int) -> np.uint64:
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(inline="always")
def uniform(s: np.ndarray) -> float:
    """Uniform double in [0, 1) from the xoshiro256+ state ``s`` (advanced in place).

    The compiled kernels draw from this inline generator (Blackman & Vigna): ~1 ns a number
    against ~14 ns through a numpy Generator passed into numba, which matters at 10^7 photons
    per second. Each kernel call gets its own state seeded from a numpy Generator.
    """
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    r = s0 + s3
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3
    return (r >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def _powerlaw(rng: np.ndarray, alpha: float, t_min: float, t_cut: float) -> float:
    # Pareto draw, accepted with probability exp(-(t - t_min)/t_cut): exact for the truncated
    # law p(t) ~ t^-alpha exp(-t/t_cut), efficient while t_cut >> t_min.
    while True:
        u = 1.0 - uniform(rng)
        t = t_min * u ** (-1.0 / (alpha - 1.0))
        if t_cut == np.inf or uniform(rng) < math.exp(-(t - t_min) / t_cut):
            return t


@njit(cache=True)
def _batch(rng: np.ndarray, state: int, n: int, cum: np.ndarray, alpha: np.ndarray,
           t_min: np.ndarray, t_cut: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """``n`` dwells starting in ``state``: their states, durations and the state after them."""
    states = np.empty(n, np.int64)
    dwells = np.empty(n, np.float64)
    ns = cum.shape[0]
    for i in range(n):
        states[i] = state
        dwells[i] = _powerlaw(rng, alpha[state], t_min[state], t_cut[state])
        if ns > 1:
            u = uniform(rng)
            j = 0
            while j < ns - 1 and u >= cum[state, j]:
                j += 1
            state = j
    return states, dwells, state


def sample_dwells(alpha: float, t_min_s: float, t_cut_s: float | None, n: int,
                  seed: int) -> np.ndarray:
    """``n`` independent dwell times from a (truncated) power law, seconds."""
    _, d, _ = _batch(rng_state(derive_rng(seed)), 0, n, np.ones((1, 1)), np.array([alpha]),
                  np.array([t_min_s]), np.array([np.inf if t_cut_s is None else t_cut_s]))
    return d


class Timeline:
    """The blinking state sequence of one emitter, generated on demand, in bounded memory.

    Parameters
    ----------
    emitter
        The emitter whose states and dwell laws are used.
    seed
        Seed of the simulation.
    key
        Further integers that make this timeline's draws independent of others with the same
        seed (e.g. a stream number and the emitter index).

    Notes
    -----
    Dwells are drawn in batches of 4096, each from its own seed; only a small index is kept for
    every batch (its start time, first state and time spent in each state), plus the last few
    batches themselves. A batch that is needed again is drawn again, identically. Memory
    therefore does not grow with the length of the run (a 10-hour flickering dimer draws ~10^8
    dwells), while :meth:`fractions` stays exact and :meth:`segments` / :meth:`dwells` return
    any stretch of the timeline on request (:meth:`dwells` materialises what it returns, so its
    callers bound ``t_end``).
    """

    _KEEP = 4
    """Batches kept materialised (the streaming front and the one before it)."""

    def __init__(self, emitter: Emitter, seed: int, key: tuple[int, ...] = ()) -> None:
        self.emitter = emitter
        self.seed = int(seed)
        self.key = tuple(int(k) for k in key)
        st = emitter.states
        self._n_states = len(st)
        self._cum = np.cumsum(emitter.transition_matrix(), axis=1)
        self._alpha = np.array([s.dwell.alpha for s in st])
        self._tmin = np.array([s.dwell.t_min_s for s in st])
        self._tcut = np.array([s.dwell.cut for s in st])
        # Per batch: start time, first state, and time spent in each state (growable arrays).
        self._b_start = np.zeros(64)
        self._b_state = np.zeros(64, np.int64)
        self._b_time = np.zeros((64, self._n_states))
        self._n_batches = 0
        self._next_state = emitter.initial_state
        self._end = 0.0
        self._recent: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def end_s(self) -> float:
        """Time up to which the timeline is drawn, seconds."""
        return self._end

    @property
    def n_batches(self) -> int:
        """Batches of dwells drawn so far."""
        return self._n_batches

    def _draw(self, b: int, start: float, state: int) -> tuple[np.ndarray, np.ndarray,
                                                               np.ndarray, int]:
        """Batch ``b`` from its seed: starts, states, end times, and the state after it."""
        rng = rng_state(derive_rng(self.seed, *self.key, b))
        states, dwells, nxt = _batch(rng, state, _BATCH, self._cum, self._alpha, self._tmin,
                                     self._tcut)
        ends = start + np.cumsum(dwells)
        return np.concatenate(([start], ends[:-1])), states, ends, int(nxt)

    def _remember(self, b: int, starts: np.ndarray, states: np.ndarray) -> None:
        self._recent.pop(b, None)
        self._recent[b] = (starts, states)  # dicts keep insertion order: least recent first
        while len(self._recent) > self._KEEP:
            del self._recent[next(iter(self._recent))]

    def extend_to(self, t_s: float) -> None:
        """Draw dwells until the timeline covers ``[0, t_s]``."""
        if self._n_states == 1:
            if self._n_batches == 0:
                self._b_start[0], self._b_state[0] = 0.0, 0
                self._n_batches = 1
                self._recent[0] = (np.zeros(1), np.zeros(1, np.int64))
            self._end = math.inf
            return
        while self._end <= t_s:
            b = self._n_batches
            if b == self._b_start.size:
                self._b_start = np.resize(self._b_start, 2 * b)
                self._b_state = np.resize(self._b_state, 2 * b)
                self._b_time = np.resize(self._b_time, (2 * b, self._n_states))
            starts, states, ends, nxt = self._draw(b, self._end, self._next_state)
            self._b_start[b], self._b_state[b] = self._end, self._next_state
            self._b_time[b] = np.bincount(states, weights=ends - starts,
                                          minlength=self._n_states)
            self._remember(b, starts, states)
            self._end = float(ends[-1])
            self._next_state = nxt
            self._n_batches += 1

    def _batch_arrays(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        if b in self._recent:
            return self._recent[b]
        starts, states, _, _ = self._draw(b, float(self._b_start[b]), int(self._b_state[b]))
        self._remember(b, starts, states)
        return starts, states

    def _range(self, b0: int, b1: int) -> tuple[np.ndarray, np.ndarray]:
        parts = [self._batch_arrays(b) for b in range(b0, b1)]
        if not parts:
            return np.zeros(0), np.zeros(0, np.int64)
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _batch_of(self, t: float) -> int:
        """Index of the batch holding time ``t`` (drawn)."""
        return max(int(np.searchsorted(self._b_start[:self._n_batches], t, "right")) - 1, 0)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Start times (s) and state indices of all dwells drawn so far (materialised: for
        short timelines and tests)."""
        return self._range(0, self._n_batches)

    def segments(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Dwells overlapping ``[t0, t1)``: start times clipped to ``t0``, and their states."""
        self.extend_to(t1)
        starts, states = self._range(self._batch_of(t0), self._batch_of(t1) + 1)
        i0 = max(int(np.searchsorted(starts, t0, side="right")) - 1, 0)
        i1 = int(np.searchsorted(starts, t1, side="left"))
        s = starts[i0:i1].copy()
        s[0] = t0
        return s, states[i0:i1]

    def dwells(self, t_end: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The timeline cut at ``t_end``: start times, states and durations (last one censored).
        """
        self.extend_to(t_end)
        starts, states = self._range(0, self._batch_of(t_end) + 1)
        n = int(np.searchsorted(starts, t_end, side="left"))
        s = starts[:n]
        ends = np.append(s[1:], t_end)
        return s.copy(), states[:n].copy(), ends - s

    def count(self, t_end: float) -> int:
        """Number of dwells starting before ``t_end`` (without materialising them)."""
        self.extend_to(t_end)
        b = self._batch_of(t_end)
        starts, _ = self._batch_arrays(b)
        return b * _BATCH + int(np.searchsorted(starts, t_end, side="left"))

    def transitions(self, t_end: float) -> tuple[np.ndarray, np.ndarray]:
        """Jumps between states within ``[0, t_end)`` and the time spent in each state, batch by
        batch (bounded memory for any ``t_end``)."""
        self.extend_to(t_end)
        n = self._n_states
        count = np.zeros((n, n), np.int64)
        last = self._batch_of(t_end)
        for b in range(last + 1):
            starts, states = self._batch_arrays(b)
            if b == last:
                states = states[:int(np.searchsorted(starts, t_end, side="left"))]
            np.add.at(count, (states[:-1], states[1:]), 1)
            if b < last and states.size:
                count[states[-1], self._b_state[b + 1]] += 1
        return count, self.fractions(t_end) * t_end

    def fractions(self, t_end: float) -> np.ndarray:
        """Fraction of ``[0, t_end)`` spent in each state (from the batch index: exact, and
        without materialising the timeline)."""
        self.extend_to(t_end)
        b = self._batch_of(t_end)
        f = self._b_time[:b].sum(axis=0)
        starts, states = self._batch_arrays(b)
        n = int(np.searchsorted(starts, t_end, side="left"))
        s = starts[:n]
        f = f + np.bincount(states[:n], weights=np.append(s[1:], t_end) - s,
                            minlength=self._n_states)
        return f / t_end if t_end > 0 else f
