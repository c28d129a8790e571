"""Streaming photon simulator with ground truth.

>>> from simulators.emitter import monomer
>>> from simulators.detection import Detection
>>> sim = simulate(monomer(), Detection(), duration_s=60.0, seed=1)
>>> for chunk in sim.chunks():      # time-ordered spad PhotonChunks (T3 by default)
...     ...
>>> sim.truth.expected_g2_zero, sim.truth.timeline(0)

Internally photons are generated in blocks of laser pulses (0.1 s, or fewer pulses for very
bright emitters; fixed by the parameters); dead time, pending afterpulses and photons that spill
into the next block are carried across blocks. Every
random draw is seeded from (seed, stream, block), and the blinking timeline is drawn in batches
of its own, so the photons depend only on the seed and the parameters: the same for any
``chunk_s``, any number of passes over :meth:`Simulation.chunks`, and in real-time mode.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from scipy.signal import lfilter
from spad.simulators.blinking import Timeline, derive_rng, rng_state
from spad.simulators.detection import (
    Detection,
    dead_time_afterpulse,
    irf_quantiles,
    quantise_t2,
    quantise_t3,
)
from spad.simulators.emission import EmissionTables, emit_block, merge_events, sort_events
from spad.simulators.emitter import Emitter, g2_zero

from spad.photons import PhotonChunk, Timing

__all__ = ["simulate", "Simulation", "Truth", "record_type_for"]

BLOCK_S = 0.1
"""Nominal length of an internal generation block, seconds (fixed: it must not depend on the
caller's chunk size, or the photons would)."""

BLOCK_PHOTONS = 1 << 17
"""Most productive pulses expected in one block."""

_BLINK, _EMIT, _DARK, _AFTER, _SPECTRAL = 1, 2, 3, 4, 5
_PENDING = 64  # afterpulses awaiting registration, per detector


def record_type_for(mode: str) -> str:
    """The PicoQuant record type the simulator writes for ``mode`` (HydraHarp v2)."""
    return "HydraHarp2T3" if mode == "T3" else "HydraHarp2T2"


def _emitters(x: Emitter | Sequence[Emitter]) -> tuple[Emitter, ...]:
    ems = (x,) if isinstance(x, Emitter) else tuple(x)
    if not ems or not all(isinstance(e, Emitter) for e in ems):
        raise TypeError("simulate() needs an Emitter or a sequence of Emitters")
    if len({e.rep_rate_hz for e in ems}) != 1:
        raise ValueError("emitters in one focus share one laser: rep_rate_hz must be equal")
    return ems


class Truth:
    """What was simulated: parameters, blinking timelines, spectral trajectories, g2(0).

    Attributes
    ----------
    emitters, detection, duration_s, seed
        The inputs.
    parameters
        The inputs as plain data (``dict``).
    expected_g2_zero
        Analytic g2(0) with the stationary state fractions (NaN for untruncated alpha <= 2).
    """

    def __init__(self, emitters: tuple[Emitter, ...], detection: Detection, duration_s: float,
                 seed: int, timelines: list[Timeline]) -> None:
        self.emitters = emitters
        self.detection = detection
        self.duration_s = duration_s
        self.seed = seed
        self._timelines = timelines
        self._spectral: dict[int, SpectralWalk] = {}
        self.parameters: dict[str, Any] = {
            "emitters": [e.to_dict() for e in emitters], "detection": detection.to_dict(),
            "duration_s": duration_s, "seed": seed}
        self.expected_g2_zero = g2_zero(emitters)

    # -- per-state tables ---------------------------------------------------------------------

    def state_names(self, i: int = 0) -> list[str]:
        """Names of emitter ``i``'s states."""
        return [s.name for s in self.emitters[i].states]

    def state_qy(self, i: int = 0) -> np.ndarray:
        """Exciton quantum yield per state."""
        return np.array([s.qy for s in self.emitters[i].states])

    def state_lifetimes_s(self, i: int = 0) -> list[tuple[float, ...]]:
        """Decay components per state, seconds."""
        return [s.lifetimes_s for s in self.emitters[i].states]

    def state_mean_lifetime_s(self, i: int = 0) -> np.ndarray:
        """Intensity-weighted mean lifetime per state, seconds."""
        return np.array([s.mean_lifetime_s for s in self.emitters[i].states])

    def state_intensity_hz(self, i: int = 0, detected: bool = True) -> np.ndarray:
        """Photon rate per state (detected before dead time, or emitted), Hz."""
        e = self.emitters[i]
        eta = self.detection.efficiency if detected else 1.0
        return e.state_moments(eta)[0] * e.rep_rate_hz

    def alphas(self, i: int = 0) -> np.ndarray:
        """Configured power-law exponent per state."""
        return np.array([s.dwell.alpha for s in self.emitters[i].states])

    # -- realised timeline --------------------------------------------------------------------

    def timeline(self, i: int = 0, t_end: float | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Emitter ``i``'s dwells within ``[0, t_end)`` (default the whole run): start times
        (s), state indices, durations (s).

        The last dwell is cut at ``t_end`` (censored). The arrays are materialised (16 bytes a
        dwell): bound ``t_end`` for long runs; :meth:`n_dwells` counts without that.
        """
        t_end = self.duration_s if t_end is None else min(t_end, self.duration_s)
        return self._timelines[i].dwells(t_end)

    def n_dwells(self, i: int = 0, t_end: float | None = None) -> int:
        """Number of emitter ``i``'s dwells starting within ``[0, t_end)`` (default the run)."""
        return self._timelines[i].count(self.duration_s if t_end is None else t_end)

    def fractions(self, i: int = 0, t_end_s: float | None = None) -> np.ndarray:
        """Fraction of the run (or of ``[0, t_end_s)``) spent in each state."""
        return self._timelines[i].fractions(self.duration_s if t_end_s is None else t_end_s)

    def emission_end_s(self, i: int = 0) -> float:
        """End of emitter ``i``'s useful emission: the run's end if it never bleaches, else
        where the trailing dark stretch begins (the bleaching time, or the start of the OFF
        dwell it bleached in).
        """
        b = self.emitters[i].bleach_s
        if b is None or b >= self.duration_s:
            return self.duration_s
        starts, states, _ = self._timelines[i].dwells(b)
        if starts.size == 0:
            return 0.0
        end = b
        on = self.on_states(i)
        k = starts.size - 1
        while k >= 0 and not on[states[k]]:  # dark dwells right before bleaching
            end = float(starts[k])
            k -= 1
        return float(end)

    def transitions(self, i: int = 0, t_end_s: float | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Jumps between emitter ``i``'s states within ``[0, t_end_s)`` (default: the run).

        Returns the (n, n) count of jumps from state ``a`` to state ``b`` and the time (s)
        spent in each state: the transition rate a -> b is ``count[a, b] / time[a]``.
        """
        t_end = self.duration_s if t_end_s is None else t_end_s
        return self._timelines[i].transitions(t_end)  # batch by batch: bounded memory

    def on_states(self, i: int = 0) -> np.ndarray:
        """Mask of the "ON" states: quantum yield at least half the brightest state's."""
        qy = self.state_qy(i)
        return qy >= 0.5 * qy.max()

    def on_fraction(self, i: int = 0, t_end_s: float | None = None) -> float:
        """Fraction of the run (or of ``[0, t_end_s)``) emitter ``i`` spent ON (see
        :meth:`on_states`)."""
        return float(self.fractions(i, t_end_s)[self.on_states(i)].sum())

    def expected_on_fraction(self, i: int = 0) -> float:
        """Long-run ON fraction from the dwell laws (NaN if a mean dwell is infinite)."""
        return float(self.emitters[i].stationary_fractions()[self.on_states(i)].sum())

    def g2_zero(self) -> float:
        """Analytic g2(0) with the state fractions realised in this run."""
        return g2_zero(self.emitters, [self.fractions(i) for i in range(len(self.emitters))])

    def detected_rate_hz(self) -> float:
        """Expected detector count rate of the run before dead time (photons + dark), Hz."""
        rate = sum(float(self.fractions(i) @ self.state_intensity_hz(i))
                   for i in range(len(self.emitters)))
        return rate + float(sum(self.detection.dark_rate_hz))

    def spectral(self, i: int = 0, t_end: float | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Emitter ``i``'s emission peak energy over ``[0, t_end]``: times (s) and peak (eV).

        ``t_end`` defaults to the whole run (materialised: bound it for long runs). Constant at
        ``peak_ev`` (two points) without spectral diffusion.
        """
        return self._walk(i).values(self.duration_s if t_end is None else min(t_end,
                                                                               self.duration_s))

    def spectral_stats(self, i: int = 0) -> tuple[float, float]:
        """Mean and standard deviation of emitter ``i``'s peak energy over the run, eV
        (streamed over the trajectory: bounded memory for any duration)."""
        return self._walk(i).stats(self.duration_s)

    def _walk(self, i: int) -> SpectralWalk:
        if i not in self._spectral:
            self._spectral[i] = SpectralWalk(self.emitters[i], self.seed, (_SPECTRAL, i))
        return self._spectral[i]


class SpectralWalk:
    """Spectral-diffusion trajectory of one emitter, drawn in fixed blocks of steps.

    Block ``k`` is drawn from its own seed (seed, key, k); only the walk's value at each block
    boundary is kept, so the trajectory over any stretch is reproduced on request and the
    statistics over a run of any length take bounded memory. The walk does not depend on how
    far it is drawn.
    """

    BLOCK = 1 << 16
    """Steps per block (11 minutes at the default 10 ms step)."""

    def __init__(self, emitter: Emitter, seed: int, key: tuple[int, ...]) -> None:
        self.emitter = emitter
        self.sd = emitter.spectral_diffusion
        self.seed = int(seed)
        self.key = key
        self._x0: list[float] = []  # walk value before block k (block 0: drawn stationary)
        self._last: tuple[int, np.ndarray] | None = None

    def _block(self, k: int) -> np.ndarray:
        """Offsets from ``peak_ev`` of block ``k`` (eV)."""
        while len(self._x0) <= k:  # the value before each block needs the blocks before it
            j = len(self._x0)
            if j == 0:
                self._x0.append(math.nan)
            else:
                self._x0.append(float(self._draw(j - 1)[-1]))
        return self._draw(k)

    def _draw(self, k: int) -> np.ndarray:
        if self._last is not None and self._last[0] == k:
            return self._last[1]
        # Exact discretisation of an Ornstein-Uhlenbeck walk: x_k = a x_(k-1) + noise; jumps
        # add to the noise and then relax back with the walk.
        sd = self.sd
        n = self.BLOCK
        rng = derive_rng(self.seed, *self.key, k)
        a = math.exp(-sd.step_s / sd.correlation_s)
        noise = rng.normal(0.0, sd.sd_ev * math.sqrt(1 - a * a), n)
        first = rng.normal(0.0, sd.sd_ev)
        jumps = rng.poisson(sd.jump_rate_hz * sd.step_s, n)
        if k == 0:
            noise[0] = first  # the walk starts in its stationary distribution
        noise += np.sqrt(jumps) * rng.normal(0.0, sd.jump_sd_ev, n)  # sum of k normal jumps
        zi = np.array([a * self._x0[k]]) if k else np.zeros(1)
        x = lfilter([1.0], [1.0, -a], noise, zi=zi)[0]
        self._last = (k, x)
        return x

    def values(self, t_end: float) -> tuple[np.ndarray, np.ndarray]:
        """Times (s) and peak energies (eV) of the steps in ``[0, t_end]`` (and one past)."""
        e = self.emitter
        if self.sd is None:
            return np.array([0.0, t_end]), np.full(2, e.peak_ev)
        n = max(int(math.ceil(t_end / self.sd.step_s)) + 1, 2)
        x = np.concatenate([self._block(k) for k in range((n - 1) // self.BLOCK + 1)])[:n]
        return np.arange(n) * self.sd.step_s, e.peak_ev + x

    def stats(self, t_end: float) -> tuple[float, float]:
        """Mean and standard deviation of the peak energy over ``[0, t_end]``, eV."""
        e = self.emitter
        if self.sd is None:
            return float(e.peak_ev), 0.0
        n = max(int(math.ceil(t_end / self.sd.step_s)) + 1, 2)
        s1 = s2 = 0.0
        for k in range((n - 1) // self.BLOCK + 1):
            x = self._block(k)[:n - k * self.BLOCK]
            s1 += float(x.sum())
            s2 += float((x * x).sum())
        mean = s1 / n
        return float(e.peak_ev + mean), math.sqrt(max(s2 / n - mean * mean, 0.0))


class _ChainState:
    """Detection-chain state carried from block to block."""

    def __init__(self) -> None:
        self.last = np.full(2, -np.inf)
        self.pending = np.zeros((2, _PENDING))
        self.n_pending = np.zeros(2, np.int64)
        self.n_ap = np.zeros(2, np.int64)
        self.carry_t = np.zeros(0)
        self.carry_d = np.zeros(0, np.uint8)
        # Reused emission buffers: fresh large arrays cost page faults on every block.
        self.buf_t = np.zeros(0)
        self.buf_d = np.zeros(0, np.uint8)


class Simulation:
    """A simulated measurement of one or more emitters in the focus.

    Parameters
    ----------
    emitters
        One :class:`~spad.simulators.emitter.Emitter` or several (independent, same laser).
    detection
        The detection chain and tagger; default :class:`~spad.simulators.detection.Detection`.
    duration_s
        Length of the measurement, seconds.
    seed
        Seed; the same seed and parameters give the same photons.
    chunk_s
        Duration covered by each yielded chunk, seconds (does not change the photons).
    realtime
        Sleep so that chunks come no faster than the wall clock.

    Attributes
    ----------
    timing
        :class:`~spad.photons.Timing` of the chunks (T3: sync period and bin; T2: tick).
    truth
        :class:`Truth` of the simulation (available before any photon is drawn).
    counts
        Running tallies per detector of the current pass: ``photons`` (detected before dead
        time), ``dark``, ``afterpulses`` (registered) and ``registered`` events.
    """

    def __init__(self, emitters: Emitter | Sequence[Emitter], detection: Detection | None = None,
                 duration_s: float = 10.0, seed: int = 0, chunk_s: float = 0.1,
                 realtime: bool = False) -> None:
        self.emitters = _emitters(emitters)
        self.detection = Detection() if detection is None else detection
        if not (duration_s > 0 and math.isfinite(duration_s)):
            raise ValueError(f"duration_s must be positive seconds, not {duration_s!r}")
        if not chunk_s > 0:
            raise ValueError(f"chunk_s must be positive seconds, not {chunk_s!r}")
        self.duration_s = float(duration_s)
        self.seed = int(seed)
        self.chunk_s = float(chunk_s)
        self.realtime = bool(realtime)
        self.period = 1.0 / self.emitters[0].rep_rate_hz
        self.timing: Timing = self.detection.timing(self.emitters[0].rep_rate_hz)
        # Blocks of ~0.1 s, or fewer pulses for bright emitters so a block's arrays stay small
        # (a few MB, reused by the allocator). Fixed by the parameters, never by chunk_s.
        p_max = sum(float(EmissionTables(e, self.detection).p_productive.max())
                    for e in self.emitters)
        self.block_pulses = max(1, min(round(BLOCK_S / self.period),
                                       round(BLOCK_PHOTONS / max(p_max, 1e-12))))
        self.n_pulses = math.ceil(self.duration_s / self.period)
        self._timelines = [Timeline(e, self.seed, (_BLINK, i))
                           for i, e in enumerate(self.emitters)]
        self._tables = [EmissionTables(e, self.detection) for e in self.emitters]
        self._q = irf_quantiles(self.detection)
        # Earliest a photon of pulse p can be registered, relative to p * period: blocks are
        # closed at their end plus this (<= 0) so that no later block can go back before it.
        self._min_shift = min(0.0, float(self._q[0]) + min(self.detection.offsets_s))
        self._dead = np.asarray(self.detection.dead_time_s)
        self._p_ap = np.asarray(self.detection.afterpulse_probability)
        w = np.asarray(self.detection.afterpulse_weights)
        self._ap_cum = np.cumsum(w) / w.sum()
        self._ap_tau = np.asarray(self.detection.afterpulse_tau_s)
        self.truth = Truth(self.emitters, self.detection, self.duration_s, self.seed,
                           self._timelines)
        self.counts: dict[str, list[int]] = {}

    # -- generation ---------------------------------------------------------------------------

    def _block(self, b: int, st: _ChainState) -> tuple[np.ndarray, np.ndarray, float]:
        """Registered events (times, detectors) of block ``b``, and its horizon."""
        det = self.detection
        T = self.period
        pb0 = b * self.block_pulses
        pb1 = min(pb0 + self.block_pulses, self.n_pulses)
        t0, t1 = pb0 * T, pb1 * T
        ev_t, ev_d = st.carry_t, st.carry_d
        for i, (tl, tab) in enumerate(zip(self._timelines, self._tables, strict=True)):
            starts, states = tl.segments(t0, t1)
            seg = np.empty(starts.size + 1, np.int64)
            seg[:-1] = np.clip(np.ceil(starts / T), pb0, pb1).astype(np.int64)
            seg[0] = pb0
            seg[-1] = pb1
            if tl.emitter.bleach_s is not None:
                # Bleached: no pulse at or after the bleaching time excites it any more.
                seg = np.minimum(seg, max(pb0, math.ceil(tl.emitter.bleach_s / T)))
            mean = (pb1 - pb0) * float(tab.p_productive.max()) * 2
            cap = int(mean + 8 * math.sqrt(mean) + 64)
            while True:
                if st.buf_t.size < cap:
                    st.buf_t, st.buf_d = np.empty(cap), np.empty(cap, np.uint8)
                rng = rng_state(derive_rng(self.seed, _EMIT, i, b))
                n = emit_block(rng, T, seg, states, tab.p_productive, tab.outcome_cum, tab.tau,
                               tab.amp_cum, tab.bx_tau, det.split_ratio, self._q,
                               det.offsets_s[0], det.offsets_s[1], st.buf_t, st.buf_d)
                if n >= 0:
                    break
                cap *= 2
            pt, pd = st.buf_t[:n], st.buf_d[:n]
            sort_events(pt, pd)
            n1 = int(np.count_nonzero(pd == 1))
            self.counts["photons"][0] += n1
            self.counts["photons"][1] += n - n1
            ev_t, ev_d = merge_events(ev_t, ev_d, pt, pd)  # copies out of the buffers
        rng = derive_rng(self.seed, _DARK, b)
        nd = rng.poisson(np.asarray(det.dark_rate_hz) * (t1 - t0))
        if nd.sum():
            dt = rng.uniform(t0, t1, int(nd.sum()))
            dd = np.repeat(np.array([1, 2], np.uint8), nd)
            order = np.argsort(dt, kind="stable")
            ev_t, ev_d = merge_events(ev_t, ev_d, dt[order], dd[order])
            self.counts["dark"][0] += int(nd[0])
            self.counts["dark"][1] += int(nd[1])
        horizon = self.duration_s if pb1 >= self.n_pulses else t1 + self._min_shift
        size = ev_t.size + ev_t.size // 4 + 2 * _PENDING + 64
        while True:
            saved = (st.last.copy(), st.pending.copy(), st.n_pending.copy(), st.n_ap.copy())
            out_t, out_d = np.empty(size), np.empty(size, np.uint8)
            n_out, n_used = dead_time_afterpulse(
                rng_state(derive_rng(self.seed, _AFTER, b)), ev_t, ev_d, horizon, st.last,
                st.pending, st.n_pending, self._dead, self._p_ap, self._ap_tau, self._ap_cum,
                out_t, out_d, st.n_ap)
            if n_out >= 0:
                break
            st.last, st.pending, st.n_pending, st.n_ap = saved
            size *= 2
        st.carry_t, st.carry_d = ev_t[n_used:], ev_d[n_used:]
        out_t, out_d = out_t[:n_out], out_d[:n_out]
        keep = int(np.searchsorted(out_t, self.duration_s, side="left"))
        return out_t[:keep], out_d[:keep], horizon

    def _events(self) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
        """Registered events block by block, with each block's horizon."""
        self.counts = {k: [0, 0] for k in ("photons", "dark", "afterpulses", "registered")}
        st = _ChainState()
        n_blocks = math.ceil(self.n_pulses / self.block_pulses)
        for b in range(n_blocks):
            t, d, horizon = self._block(b, st)
            self.counts["afterpulses"] = [int(x) for x in st.n_ap]
            self.counts["registered"][0] += int(np.count_nonzero(d == 1))
            self.counts["registered"][1] += int(d.size - np.count_nonzero(d == 1))
            yield t, d, horizon

    # -- output -------------------------------------------------------------------------------

    def chunks(self) -> Iterator[PhotonChunk]:
        """Yield the measurement as time-ordered :class:`~spad.photons.PhotonChunk` objects.

        Chunk ``k`` holds the events in ``[k * chunk_s, (k + 1) * chunk_s)`` (the last one up
        to ``duration_s``), in the units of :attr:`timing`. Each call starts the measurement
        afresh and gives the same photons. Memory stays bounded by a block and a chunk.
        """
        det = self.detection
        timing = self.timing
        n_chunks = max(1, math.ceil(self.duration_s / self.chunk_s - 1e-9))
        buf_t: list[np.ndarray] = []
        buf_d: list[np.ndarray] = []
        horizon = -math.inf
        events = self._events()
        wall0 = time.monotonic()
        for k in range(n_chunks):
            c0 = k * self.chunk_s
            c1 = min((k + 1) * self.chunk_s, self.duration_s)
            if k == n_chunks - 1:
                c1 = self.duration_s
            while horizon < c1:
                try:
                    t, d, horizon = next(events)
                except StopIteration:
                    horizon = math.inf
                    break
                buf_t.append(t)
                buf_d.append(d)
            t = np.concatenate(buf_t) if buf_t else np.zeros(0)
            d = np.concatenate(buf_d) if buf_d else np.zeros(0, np.uint8)
            cut = int(np.searchsorted(t, c1, side="left"))
            buf_t, buf_d = [t[cut:]], [d[cut:]]
            t, d = t[:cut], d[:cut]
            if timing.is_t3:
                ts, nt = quantise_t3(t, timing.timestamp_unit, det.bin_s,
                                     int(timing.tcspc_num_bins))
                chunk = PhotonChunk(timing, ts, d, nt)
            else:
                ts, dd = quantise_t2(t, d, timing.timestamp_unit,
                                     self.period * det.sync_divider, c0, c1, det.t2_sync_events)
                chunk = PhotonChunk(timing, ts, dd)
            if self.realtime:
                wait = wall0 + c1 - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            yield chunk

    def records(self, rectype: str | None = None) -> Iterator[np.ndarray]:
        """Yield the chunks encoded as PicoQuant TTTR records (uint32).

        Parameters
        ----------
        rectype
            Record type name or code; default ``HydraHarp2T3`` / ``HydraHarp2T2`` by mode.
        """
        from spad.formats.records import Encoder

        enc = Encoder(rectype or record_type_for(self.timing.mode), self.timing)
        for chunk in self.chunks():
            yield enc.encode(chunk)

    def run(self) -> PhotonChunk:
        """The whole measurement as one chunk."""
        return PhotonChunk.concatenate(self.chunks(), self.timing)


def simulate(emitters: Emitter | Sequence[Emitter], detection: Detection | None = None,
             duration_s: float = 10.0, seed: int = 0, chunk_s: float = 0.1,
             realtime: bool = False) -> Simulation:
    """Set up a simulated measurement (see :class:`Simulation`); nothing runs until iterated.

    Examples
    --------
    >>> sim = simulate(monomer(mean_excitations=0.1), Detection(mode="T3"), 60.0, seed=3)
    >>> photons = sim.run()                     # or: for chunk in sim.chunks(): ...
    >>> sim.truth.expected_g2_zero, sim.truth.on_fraction()
    """
    return Simulation(emitters, detection, duration_s, seed, chunk_s, realtime)
