"""Switching rates between intensity states.

From the resolved levels (change points, Watkins & Yang 2005) grouped into states (BIC), the
trace is a sequence of dwells in states; consecutive levels of one state form one dwell. For each
ordered pair of states (a, b) the number of jumps a -> b is counted and divided by the total time
spent in a: that is the rate constant k_ab (per second) of a Markov chain that spends that time in
a and leaves to b that often, its maximum-likelihood estimate (Poisson error sqrt(N)/T). For
power-law blinking the rates are not constants of the particle (they depend on how long one
watches), but they are what the Full SMS users compare between particles and conditions: a
flickering dimer switches tens to hundreds of times per second, a blinking monomer a few times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SwitchingRates", "switching_rates"]


@dataclass
class SwitchingRates:
    """Jumps between states (0 = dimmest) and their rates.

    Attributes
    ----------
    counts
        (n, n) jumps from state a (row) to state b (column).
    time_s
        Time spent in each state (s).
    rates_hz, rates_err_hz
        ``counts[a, b] / time_s[a]`` and its Poisson error ``sqrt(counts) / time_s[a]``.
    total_rate_hz
        All jumps divided by the total time (the switching frequency of the trace).
    """

    counts: np.ndarray
    time_s: np.ndarray
    rates_hz: np.ndarray
    rates_err_hz: np.ndarray
    total_rate_hz: float


def switching_rates(level_start: np.ndarray, level_end: np.ndarray, level_state: np.ndarray,
                    n_states: int | None = None) -> SwitchingRates:
    """Jump counts and rates between the states of consecutive levels.

    Parameters
    ----------
    level_start, level_end
        Level times (s), in time order.
    level_state
        State of each level (integers 0..n-1).
    n_states
        Number of states (default: the largest state + 1).
    """
    start = np.asarray(level_start, dtype=np.float64)
    end = np.asarray(level_end, dtype=np.float64)
    state = np.asarray(level_state, dtype=np.int64)
    if not start.shape == end.shape == state.shape:
        raise ValueError("level_start, level_end and level_state must have equal lengths")
    n = int(n_states if n_states is not None else (state.max() + 1 if state.size else 0))
    counts = np.zeros((n, n), dtype=np.int64)
    if state.size > 1:
        jump = state[1:] != state[:-1]
        np.add.at(counts, (state[:-1][jump], state[1:][jump]), 1)
    time_s = np.bincount(state, weights=end - start, minlength=n).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = np.where(time_s[:, None] > 0, counts / time_s[:, None], np.nan)
        errs = np.where(time_s[:, None] > 0, np.sqrt(counts) / time_s[:, None], np.nan)
    total_t = float(time_s.sum())
    total = float(counts.sum() / total_t) if total_t > 0 else float("nan")
    return SwitchingRates(counts, time_s, rates, errs, total)
