"""Accuracy tests of the streaming photon simulator, its detection chain and simulated tagger.

Statistical tests use fixed seeds; tolerances are a few standard errors of the quantity tested.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy.optimize import brentq
from spad.simulators.detection import Detection, irf_quantiles
from spad.simulators.emitter import Emitter, PowerLaw, State, monomer
from spad.simulators.stream import simulate
from spad.simulators.tagger import SimulatedTagger

from spad.errors import DeviceError
from spad.formats.records import Decoder, Encoder
from spad.photons import PhotonChunk

QUIET = dict(dark_rate_hz=0.0, afterpulse_probability=0.0)


def pulsed_g2(chunk: PhotonChunk, max_lag: int = 6) -> tuple[float, float]:
    """g2(0) of T3 data from coincidences by sync number: centre / mean side peak, and its
    standard error (Poisson counts)."""
    s1 = np.sort(chunk.timestamps[chunk.detectors == 1])
    s2 = np.sort(chunk.timestamps[chunk.detectors == 2])

    def pairs(lag: int) -> int:
        x = s1 + lag
        return int((np.searchsorted(s2, x, "right") - np.searchsorted(s2, x, "left")).sum())

    centre = pairs(0)
    side = [pairs(k) for k in range(-max_lag, max_lag + 1) if k != 0]
    mean_side = float(np.mean(side))
    g = centre / mean_side
    se = g * math.sqrt(1 / max(centre, 1) + 1 / sum(side))
    return g, se


# -- photon statistics --------------------------------------------------------------------------
# At 2.5 MHz (400 ns period) a 30 ns decay is complete before the next pulse (e^-13). At 5 MHz
# 0.13 % of photons arrive after the next sync and add ~2 x 0.0013 to a by-sync g2(0).
# Dead time loses the second of two same-pulse photons on one detector; that lowers the side
# peaks more than the centre (a real bias of measured g2, ~1 % for two emitters), so the
# comparisons with the ideal formula run without it, and the pair test corrects for it.
SLOW = dict(rep_rate_hz=2.5e6, mean_excitations=0.2)
G2 = dict(collection_efficiency=0.5, detector_efficiency=0.6, dead_time_s=0.0, **QUIET)

def test_monomer_g2_zero_matches_analytic() -> None:
    det = Detection(**G2)
    sim = simulate(monomer(blinking=False, **SLOW), det, duration_s=10.0, seed=1)
    g, se = pulsed_g2(sim.run())
    want = sim.truth.g2_zero()
    assert want == pytest.approx(0.084, abs=0.001)
    assert abs(g - want) < 4 * se, (g, se, want)  # se ~ 0.0025


def test_blinking_monomer_g2_uses_realised_state_fractions() -> None:
    det = Detection(**G2)
    sim = simulate(monomer(**SLOW), det, duration_s=10.0, seed=2)
    g, se = pulsed_g2(sim.run())
    assert abs(g - sim.truth.g2_zero()) < 4 * se


def test_two_independent_emitters_g2_near_half() -> None:
    det = Detection(collection_efficiency=0.5, detector_efficiency=0.6, **QUIET)  # 22 ns dead
    e = monomer(blinking=False, **SLOW)
    sim = simulate([e, e], det, duration_s=4.0, seed=3)
    g, se = pulsed_g2(sim.run())
    want = sim.truth.g2_zero()
    assert 0.5 < want < 0.6
    # First-order dead-time correction: the side peaks scale with the registered fraction of
    # each detector's photons (~0.993), the centre hardly changes.
    c = sim.counts
    kept = [r / p for r, p in zip(c["registered"], c["photons"], strict=True)]
    assert 0.98 < kept[0] < 0.999
    assert abs(g * kept[0] * kept[1] - want) < 4 * se  # se ~ 0.005


# -- decays and blinking truth ------------------------------------------------------------------

def _tail_lifetime(t: np.ndarray, window: float) -> float:
    """MLE lifetime of exponential delays ``t`` observed in ``[0, window)``."""
    m = t.mean()

    def f(tau: float) -> float:
        return tau - window / math.expm1(window / tau) - m
    return brentq(f, window / 500, 10 * window)


def test_on_state_decay_recovers_configured_lifetime() -> None:
    det = Detection(**QUIET)
    sim = simulate(monomer(), det, duration_s=10.0, seed=4)
    ph = sim.run()
    starts, states, dwells = sim.truth.timeline()
    # Photons inside ON dwells, via the dwell each photon time falls in.
    t = ph.times_s()
    k = np.searchsorted(starts, t, side="right") - 1
    on = states[k] == 0
    delay = ph.nanotimes[on] * det.bin_s + det.bin_s / 2 - det.offsets_s[0]
    # detector 2 is 2.4 ns later; fit its own tail from its own offset.
    delay[ph.detectors[on] == 2] -= det.offsets_s[1] - det.offsets_s[0]
    start = 3e-9  # past the rise (jitter FWHM 0.35 ns) and the 0.6 ns biexciton
    period = sim.timing.timestamp_unit
    x = delay[(delay > start) & (delay < period - det.offsets_s[1] - 1e-9)] - start
    tau = _tail_lifetime(x, period - det.offsets_s[1] - 1e-9 - start)
    assert tau == pytest.approx(30e-9, abs=4 * 30e-9 / math.sqrt(x.size))  # ~0.1 ns


def test_truth_dwell_exponents_by_mle() -> None:
    on = State("ON", 0.9, (30e-9,), dwell=PowerLaw(1.5, 1e-4))
    off = State("OFF", 0.05, (2e-9,), dwell=PowerLaw(1.7, 1e-4))
    sim = simulate(Emitter("m", (on, off)), duration_s=2000.0, seed=5)
    starts, states, dwells = sim.truth.timeline()  # the timeline only: no photons drawn
    st, d = states[1:-1], dwells[1:-1]  # the first and last dwells are censored
    for k, alpha in enumerate(sim.truth.alphas()):
        t = d[st == k]
        a = 1 + t.size / np.log(t / 1e-4).sum()
        assert t.size > 500
        assert abs(a - alpha) < 0.1
    assert sim.truth.fractions().sum() == pytest.approx(1.0)


def test_truth_contents() -> None:
    sim = simulate(monomer(), duration_s=30.0, seed=6)
    tr = sim.truth
    assert tr.state_names() == ["ON", "OFF"]
    assert list(tr.alphas()) == [1.4, 1.6]
    assert tr.state_mean_lifetime_s()[0] == pytest.approx(30e-9)
    assert 0.5 < tr.on_fraction() <= 1.0 and 0.8 < tr.expected_on_fraction() < 0.95
    assert tr.parameters["emitters"][0]["states"][0]["qy"] == 0.9
    assert tr.parameters["detection"]["dead_time_s"] == (22e-9, 22e-9)
    # Bright particle: 5-50 kcps detected in the ON state.
    assert 5e3 < tr.state_intensity_hz()[0] < 50e3
    t, peak = tr.spectral()
    assert t[-1] >= 30.0 and np.std(peak) > 0 and abs(np.mean(peak) - 2.0) < 0.03


# -- detection chain ----------------------------------------------------------------------------

def test_count_rate_matches_configuration() -> None:
    det = Detection(dark_rate_hz=0.0, afterpulse_probability=0.0)
    sim = simulate(monomer(blinking=False), det, duration_s=5.0, seed=7)
    n = sim.run().n_photons
    rate = sim.truth.detected_rate_hz()
    # Dead-time loss (non-paralysable, per detector) is ~R_det * tau_dead ~ 0.04 %.
    expected = rate * 5.0 * (1 - rate / 2 * 22e-9)
    assert abs(n - expected) < 4 * math.sqrt(expected)


def test_dead_time_non_paralysable() -> None:
    # A Poissonian 5 Mcps source (dark counts) behind a 50 ns dead time: R / (1 + R tau).
    r, tau = 5e6, 50e-9
    det = Detection(dark_rate_hz=r, dead_time_s=tau, afterpulse_probability=0.0)
    sim = simulate(monomer(mean_excitations=0.0), det, duration_s=0.05, seed=8, chunk_s=0.01)
    ph = sim.run()
    t = ph.times_s()
    for d in (1, 2):
        td = t[ph.detectors == d]
        assert np.diff(td).min() >= tau - det.bin_s
        want = r / (1 + r * tau) * 0.05
        assert abs(td.size - want) < 4 * math.sqrt(want)


def test_dead_time_holds_for_bright_emitter_photons() -> None:
    det = Detection(collection_efficiency=1.0, detector_efficiency=1.0, dead_time_s=40e-9)
    sim = simulate(monomer(mean_excitations=2.0, blinking=False), det, duration_s=0.02, seed=9)
    ph = sim.run()
    t = ph.times_s()
    for d in (1, 2):
        assert np.diff(t[ph.detectors == d]).min() >= 40e-9 - det.bin_s


def test_dark_count_rate() -> None:
    det = Detection(dark_rate_hz=(300.0, 500.0), afterpulse_probability=0.0)
    sim = simulate(monomer(mean_excitations=0.0), det, duration_s=20.0, seed=10)
    ph = sim.run()
    for d, r in ((1, 300.0), (2, 500.0)):
        n = int(np.count_nonzero(ph.detectors == d))
        assert abs(n - r * 20) < 4 * math.sqrt(r * 20)


def test_afterpulsing_probability_from_interval_statistics() -> None:
    # Poissonian events plus afterpulses: intervals shorter than w after the dead time are
    # either background (rate r) or afterpulses (probability p, delay ~ exp(100 ns)).
    r, p, tau_ap, dead, dur = 2000.0, 0.01, 100e-9, 22e-9, 60.0
    det = Detection(dark_rate_hz=r, afterpulse_probability=p, afterpulse_tau_s=(tau_ap,),
                    afterpulse_weights=(1.0,), dead_time_s=dead, mode="T2")
    sim = simulate(monomer(mean_excitations=0.0), det, duration_s=dur, seed=11, chunk_s=5.0)
    ph = sim.run()
    w = 1e-6
    t = ph.times_s()
    estimates, ses = [], []
    for d in (1, 2):
        dt = np.diff(t[ph.detectors == d])
        n = dt.size
        close = int(np.count_nonzero(dt < dead + w))
        background = n * -math.expm1(-r * w)
        estimates.append((close - background) / n / -math.expm1(-w / tau_ap))
        ses.append(math.sqrt(close) / n)
    est, se = float(np.mean(estimates)), float(np.hypot(*ses) / 2)
    assert abs(est - p) < 4 * se  # se ~ 0.0004
    c = sim.counts
    assert sum(c["afterpulses"]) / sum(c["registered"]) == pytest.approx(p, rel=0.1)


def test_jitter_tables() -> None:
    det = Detection(jitter_fwhm_s=0.35e-9)
    q = irf_quantiles(det)
    rng = np.random.default_rng(0)
    x = np.interp(rng.random(200000) * (q.size - 1), np.arange(q.size), q)
    sigma = 0.35e-9 / 2.3548
    assert x.std() == pytest.approx(sigma, rel=0.01) and abs(x.mean()) < 0.01 * sigma
    # A measured IRF: a single bin at 1 ns delays everything by 1-1.01 ns.
    irf = np.zeros(200)
    irf[100] = 5.0
    q = irf_quantiles(Detection(irf=irf, irf_dt_s=10e-12))
    assert q.min() >= 1e-9 - 1e-15 and q.max() <= 1.01e-9 + 1e-15


def test_cable_delays_move_the_zero_delay_peak() -> None:
    det = Detection(collection_efficiency=0.5, detector_efficiency=0.6, mode="T2", **QUIET,
                    offsets_s=(1e-9, 4e-9))
    # A fast emitter so that the zero-delay peak is narrow (0.2 ns X, 0.1 ns BX).
    fast = Emitter("fast", (State("ON", 0.9, (0.2e-9,)),), mean_excitations=1.0,
                   bx_qy_ratio=0.5, bx_lifetime_s=0.1e-9)
    sim = simulate(fast, det, 0.5, seed=12)
    ph = sim.run()
    t = ph.times_s()
    t1, t2 = t[ph.detectors == 1], t[ph.detectors == 2]
    i = np.clip(np.searchsorted(t2, t1 - 20e-9), 0, t2.size - 1)  # nearest det-2 event
    lag = t2[i] - t1
    lag = lag[np.abs(lag) < 20e-9]
    # The zero-delay peak sits at the cable-delay difference, 3 ns, not at 0.
    hist, edges = np.histogram(lag, bins=np.arange(-20e-9, 20e-9, 0.25e-9))
    assert edges[np.argmax(hist)] == pytest.approx(3e-9, abs=0.5e-9)
    assert np.median(lag) == pytest.approx(3e-9, abs=0.2e-9)


# -- streaming, determinism, formats ------------------------------------------------------------

def test_same_seed_same_photons_for_any_chunk_size() -> None:
    e = monomer()
    a = simulate(e, duration_s=1.0, seed=13, chunk_s=0.1).run()
    b = simulate(e, duration_s=1.0, seed=13, chunk_s=0.0377).run()
    c = simulate(e, duration_s=1.0, seed=14).run()
    assert len(a) > 1000 and a.equals(b)
    assert not a.equals(c)
    sim = simulate(e, duration_s=1.0, seed=13, chunk_s=0.25)
    chunks = list(sim.chunks())
    assert len(chunks) == 4
    assert PhotonChunk.concatenate(chunks).equals(a)
    assert PhotonChunk.concatenate(sim.chunks()).equals(a)  # a second pass: the same
    period = sim.timing.timestamp_unit
    for k, ch in enumerate(chunks):
        ts = ch.times_s()
        assert np.all(np.diff(ts) >= 0)
        assert ts.min() >= k * 0.25 - period and ts.max() < (k + 1) * 0.25 + period


def test_t2_and_t3_describe_the_same_photons() -> None:
    e = monomer()
    t3 = simulate(e, Detection(mode="T3"), 0.5, seed=15).run()
    t2 = simulate(e, Detection(mode="T2"), 0.5, seed=15).run()
    assert np.array_equal(t3.detectors, t2.detectors)
    assert np.abs(t3.times_s() - t2.times_s()).max() <= 16e-12 + 1e-12
    assert t2.timing.timestamp_unit == 1e-12 and t3.timing.nanotime_unit == 16e-12


def test_t2_sync_events_kept_as_detector_0() -> None:
    det = Detection(mode="T2", t2_sync_events=True, sync_divider=4)
    sim = simulate(monomer(), det, 0.01, seed=16, chunk_s=0.003)
    ph = sim.run()
    syncs = ph.timestamps[ph.detectors == 0]
    assert syncs.size == round(0.01 * 5e6 / 4)
    assert np.all(np.diff(syncs) == 800000)  # 4 x 200 ns in ps
    assert np.all(np.diff(ph.timestamps) >= 0)


def test_records_round_trip_through_the_decoder() -> None:
    sim = simulate(monomer(), duration_s=0.5, seed=17)
    words = np.concatenate(list(sim.records()))
    assert words.dtype == np.uint32
    back = Decoder("HydraHarp2T3", sim.timing).decode(words)
    assert back.equals(sim.run())


def test_realtime_paces_to_the_wall_clock() -> None:
    sim = simulate(monomer(), duration_s=0.3, seed=18, chunk_s=0.1, realtime=True)
    t = time.monotonic()
    n = sum(1 for _ in sim.chunks())
    assert n == 3 and time.monotonic() - t >= 0.3


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="rep_rate_hz"):
        simulate([monomer(), monomer(rep_rate_hz=2.5e6)])
    with pytest.raises(ValueError, match="duration_s"):
        simulate(monomer(), duration_s=0.0)
    with pytest.raises(ValueError, match="bins"):
        Detection(bin_s=1e-12).timing(5e6)
    with pytest.raises(ValueError, match="afterpulse_probability"):
        Detection(afterpulse_probability=1.5)


# -- simulated tagger ---------------------------------------------------------------------------

def test_simulated_tagger_t3_records_match_the_stream() -> None:
    tagger = SimulatedTagger(monomer(), seed=19, fifo_records=5000)
    tagger.open()
    cfg = tagger.configure("T3", binning=5, offsets_s=(1e-9,))
    assert cfg.binning == 5 and tagger.timing.nanotime_unit == 32e-12
    tagger.start(0.5)
    reads = []
    while (r := tagger.read()) is not None:
        reads.append(r)
    assert not tagger.running
    assert max(r.size for r in reads) <= 5000 and len(reads) > 2
    dec = Decoder(tagger.record_type, tagger.timing).decode(np.concatenate(reads))
    truth_det = tagger.simulation.detection
    assert truth_det.offsets_s[0] == pytest.approx(Detection().offsets_s[0] + 1e-9)
    ref = simulate(monomer(), truth_det, 0.5, seed=19).run()
    assert dec.equals(ref)


def test_simulated_tagger_t2_records_syncs_and_stops() -> None:
    tagger = SimulatedTagger(monomer(), seed=20)
    with pytest.raises(DeviceError, match="not opened"):
        tagger.start(1.0)
    tagger.open()
    assert tagger.is_opened()
    tagger.configure("T2", sync_divider=16)
    assert tagger.record_type == "HydraHarp2T2"
    tagger.start(10.0)
    first = tagger.read()
    tagger.stop()
    rest = []
    while (r := tagger.read()) is not None:
        rest.append(r)
    dec = Decoder(tagger.record_type, tagger.timing).decode(np.concatenate([first, *rest]))
    assert np.count_nonzero(dec.detectors == 0) > 0 and dec.n_photons > 0
    assert dec.times_s().max() < 1.0  # stopped long before 10 s
    assert tagger.sync_rate_hz() == 5e6 and len(tagger.count_rates_hz()) == 2
    with pytest.raises(DeviceError, match="Simulated"):
        tagger.configure("T3", binning=0)  # 200 ns in 1 ps bins: beyond 15 bits
    with pytest.raises(DeviceError, match="start"):
        SimulatedTagger(monomer()).read()
    tagger.close()
    assert not tagger.is_opened()


def test_encoder_accepts_stream_chunks_in_order() -> None:
    sim = simulate(monomer(), Detection(mode="T2", t2_sync_events=True, sync_divider=8), 0.05,
                   seed=21, chunk_s=0.01)
    enc = Encoder("HydraHarp2T2", sim.timing)
    words = np.concatenate([enc.encode(c) for c in sim.chunks()])
    assert Decoder("HydraHarp2T2", sim.timing).decode(words).equals(sim.run())
