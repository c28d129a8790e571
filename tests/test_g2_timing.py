"""g2 on any timing: simulated laser HBT recordings (Poissonian light, g2(0) = 1) in T2 and T3
at 5-320 MHz with cable delays of several periods, with and without a sync; an antibunched
emitter whose zero-delay peak lies periods away from lag 0; continuous light."""

from __future__ import annotations

import numpy as np
import pytest
from spad.analysis.accumulators import CrossCorrelation, DecayHistogram
from spad.analysis.g2_timing import analyze_g2, correlation_range, find_period, zero_peak
from spad.simulators.detection import Detection
from spad.simulators.emitter import Emitter, State
from spad.simulators.stream import simulate

from spad.photons import PhotonChunk, Timing


def laser(rep_hz, mode="T3", offsets=(1e-9, 25e-9), duration_s=4.0, seed=1, **det):
    """A pulsed laser seen through the HBT: the simulator's emitter with every photon of a
    pulse independent (biexciton yield equal to the exciton's, <N> = 0.01: g2(0) = 0.993) and a
    20 ps decay, far below the IRF (50 ps jitter)."""
    e = Emitter("laser", (State("ON", 1.0, (20e-12,)),), rep_rate_hz=rep_hz,
                mean_excitations=0.01, bx_qy_ratio=1.0, bx_lifetime_s=20e-12)
    d = Detection(collection_efficiency=1.0, detector_efficiency=0.5, offsets_s=offsets,
                  mode=mode, jitter_fwhm_s=50e-12, bin_s=16e-12, **det)
    return simulate(e, d, duration_s=duration_s, seed=seed)


def no_sync(chunk):
    """The T2 stream as a file without sync events and without a stated sync rate."""
    keep = chunk.detectors != 0
    return PhotonChunk(Timing("T2", chunk.timing.timestamp_unit), chunk.timestamps[keep],
                       chunk.detectors[keep], None)


def correlate(chunk, period):
    lag, width = correlation_range(period)
    acc = CrossCorrelation(1, 2, max_lag_s=lag, bin_width_s=width)
    acc.update(chunk)
    return acc.result()


CASES = [  # (rep rate, mode, detector delays, stated sync, sync divider, duration)
    (5e6, "T3", (1e-9, 25e-9), True, 1, 12.0),
    (20e6, "T3", (1e-9, 25e-9), True, 1, 4.0),
    (80e6, "T3", (1e-9, 25e-9), True, 1, 2.0),
    (80e6, "T3", (25e-9, 1e-9), True, 4, 2.0),
    (20e6, "T2", (0.0, 24e-9), False, 1, 4.0),
    (80e6, "T2", (1e-9, 25e-9), True, 1, 2.0),
    (250e6, "T2", (0.0, 24e-9), False, 1, 1.0),
    (320e6, "T2", (24e-9, 0.0), False, 1, 1.0),
]


@pytest.mark.parametrize("rep,mode,offsets,sync,divider,duration", CASES)
def test_laser_g2_is_one_on_every_timing(rep, mode, offsets, sync, divider, duration):
    sim = laser(rep, mode, offsets, duration, sync_divider=divider,
                t2_sync_events=(mode == "T2" and sync))
    chunk = sim.run()
    if not sync:
        chunk = no_sync(chunk)
    stated = chunk.timing.sync_period
    corr = correlate(chunk, stated)
    decay = None
    if mode == "T3":
        acc = DecayHistogram(None, (1, 2))
        acc.update(chunk)
        decay = acc.result()
    res = analyze_g2(corr, stated, decay=decay)
    assert res.excitation == "pulsed"
    assert res.period_s == pytest.approx(1 / rep, rel=1e-3)
    truth = sim.truth.expected_g2_zero
    g, err = res.g2_zero, res.g2_zero_err
    assert g is not None and 0 < err < 0.08
    # Poissonian: 1 within its error (the simulated laser's 0.993 within the same error)
    assert abs(g - 1.0) < 3 * err + (1 - truth), (g, err, res.notes)
    assert abs(g - res.pulsed.g2_raw) < 3 * err  # the correction never leaves the raw ratio
    if divider > 1:
        assert not res.decay_usable and any("divided" in n for n in res.notes)


def test_laser_decay_correction_reduces_to_raw_ratio():
    """A decay far below the window: the tail correction changes nothing."""
    chunk = laser(80e6, "T3", (1e-9, 25e-9), 1.0).run()
    acc = DecayHistogram(None, (1, 2))
    acc.update(chunk)
    res = analyze_g2(correlate(chunk, chunk.timing.sync_period), chunk.timing.sync_period,
                     decay=acc.result())
    assert res.pulsed.correction == "none"
    assert res.g2_zero == res.pulsed.g2_raw


def antibunched(rep_hz, offsets, mode="T2", duration_s=6.0, tau=2e-9):
    e = Emitter("dot", (State("ON", 0.9, (tau,)),), rep_rate_hz=rep_hz, mean_excitations=0.3,
                bx_qy_ratio=0.05, bx_lifetime_s=0.3e-9)
    d = Detection(collection_efficiency=0.5, detector_efficiency=0.5, offsets_s=offsets,
                  mode=mode, jitter_fwhm_s=100e-12, dark_rate_hz=50.0)
    return simulate(e, d, duration_s=duration_s, seed=3)


def test_zero_peak_found_periods_away_from_lag_zero():
    """T2 without sync at 40 MHz, detector b 60 ns (2.4 periods) late: the empty peak is
    found at +60 ns, not at the peak nearest 0; a given delay picks it too."""
    sim = antibunched(40e6, (0.0, 60e-9))
    chunk = no_sync(sim.run())
    corr = correlate(chunk, None)
    res = analyze_g2(corr)
    assert res.excitation == "pulsed" and res.zero.source == "outlier"
    assert res.zero.lag_s == pytest.approx(60e-9, abs=0.5e-9)
    truth = sim.truth.expected_g2_zero
    assert abs(res.g2_zero - truth) < 3 * res.g2_zero_err + 0.02
    assert not any("overlap" in n for n in res.notes)
    given = zero_peak(corr, res.period_s, res.comb.offset_s, delay_s=59e-9)
    assert given.lag_s == pytest.approx(res.zero.lag_s)
    # read at lag 0 (between peaks / the neighbouring peak) it would be a laser: ~1
    at0 = analyze_g2(corr, delay_s=0.0)
    assert at0.g2_zero > 0.8


def test_continuous_light_has_no_comb():
    rng = np.random.default_rng(5)
    t = np.sort(rng.uniform(0, 2.0, 200_000))
    ticks = np.round(t / 1e-12).astype(np.int64)
    det = rng.integers(1, 3, t.size).astype(np.uint8)
    chunk = PhotonChunk(Timing("T2", 1e-12), ticks, det, None)
    corr = correlate(chunk, None)
    assert find_period(corr) is None
    res = analyze_g2(corr)
    assert res.excitation == "cw" and res.cw is not None
    assert abs(res.g2_zero - 1.0) < 3 * res.g2_zero_err
    assert abs(np.nanmean(res.cw.g2) - 1.0) < 0.03
    assert res.cw.lags_s[res.cw.lags_s.size // 2] == 0.0


def test_overlapping_peaks_without_decay_are_flagged():
    """8 ns at 40 MHz, no sync (no decay): the raw ratio carries the neighbours' tails."""
    chunk = no_sync(antibunched(40e6, (0.0, 3e-9), tau=8e-9, duration_s=3.0).run())
    res = analyze_g2(correlate(chunk, None))
    assert res.excitation == "pulsed"
    assert any("overlap" in n for n in res.notes)


def test_background_from_the_decay_floor_recovers_a_dim_single_dot():
    """3 kcps with 300 dark counts/s per detector (20 % of the counts): the raw ratio rises to
    ~0.4; subtracting the background measured from the decay's floor gives the truth back."""
    from spad.analysis.photon_analysis import analyze_photons
    from spad.simulators.emitter import monomer

    e = monomer(blinking=False, mean_excitations=0.1)
    d = Detection(collection_efficiency=0.0075, dark_rate_hz=300.0)
    sim = simulate(e, d, duration_s=40.0, seed=11)
    r = analyze_photons(sim.run())
    truth = sim.truth.expected_g2_zero
    assert 2e3 < r.count_rate_cps < 5e3
    assert r.g2_zero_raw > truth + 0.15
    assert "decay floor" in r.g2_correction
    assert r.g2_background_cps == pytest.approx(600.0, rel=0.25)
    assert abs(r.g2_zero - truth) < 3 * r.g2_zero_err
    assert r.g2_zero_err > r.g2_zero_raw_err  # the background's uncertainty is in it


@pytest.mark.parametrize("mode,divider,sync", [("T3", 1, True), ("T3", 4, True),
                                               ("T2", 1, False)])
def test_laser_end_to_end(mode, divider, sync):
    """analyze_photons on an 80 MHz laser HBT with a 24 ns cable delay: g2(0) = 1, no gated
    g2(0) (nothing arrives 5 ns after an IRF-limited pulse), no lifetime from a divided sync."""
    from spad.analysis.photon_analysis import analyze_photons

    chunk = laser(80e6, mode, (1e-9, 25e-9), 1.5, sync_divider=divider).run()
    if not sync:
        chunk = no_sync(chunk)
    r = analyze_photons(chunk)
    assert r.g2_excitation == "pulsed"
    assert r.g2_period_s == pytest.approx(12.5e-9, rel=1e-3)
    assert abs(r.g2_zero - 1.0) < 3 * r.g2_zero_err + 0.007
    assert r.g2_zero_gated is None
    if divider > 1:
        assert r.lifetime_ns is None and any("not the laser's" in n for n in r.notes)


def test_background_from_the_off_level_without_a_decay():
    """T2 without sync (no decay floor): a blinking dot at ~7 kcps with 600 dark counts/s
    per detector. The dark OFF level's rate is only an upper bound on the background (it read
    g2(0) too low); the correlogram fit measures the uncorrelated floor itself, and g2(0)
    comes back down to the truth, the floor's error in its own."""
    from spad.analysis.photon_analysis import analyze_photons
    from spad.simulators.emitter import monomer

    e = monomer(mean_excitations=0.1)
    d = Detection(collection_efficiency=0.03, dark_rate_hz=600.0, mode="T2")
    sim = simulate(e, d, duration_s=60.0, seed=12)
    r = analyze_photons(no_sync(sim.run()))
    truth = sim.truth.expected_g2_zero
    assert r.g2_excitation == "pulsed" and "fitted floor" in r.g2_correction
    assert "off level" not in r.g2_correction
    assert r.g2_zero_raw > truth + 0.1
    assert abs(r.g2_zero - truth) < 3 * r.g2_zero_err + 0.02
    assert r.g2_zero < r.g2_zero_raw


def test_t2_sync_input_carrying_a_detector_is_no_laser_clock():
    """A T2 file whose sync input is an APD (PicoQuant's v30_t2.ptu sample: 70 kHz of
    exponential intervals) has no laser period: no decay or lifetime (was an 11 µs 'lifetime'),
    while a T2 stream with the laser on the sync input stays pulsed."""
    from spad.analysis.photon_analysis import (
        SYNC_PERIODIC_MIN,
        AnalysisSettings,
        analyze_photons,
        sync_periodic_fraction,
    )

    sim = laser(5e6, mode="T2", duration_s=0.5, t2_sync_events=True)
    chunk = sim.run()
    assert chunk.timing.sync_period and (chunk.detectors == 0).sum() > 1000
    assert sync_periodic_fraction(chunk) > 0.99
    # the same stream with Poisson events on the sync input at the stated rate
    rng = np.random.default_rng(3)
    photons = chunk.detectors != 0
    unit = chunk.timing.timestamp_unit
    span = int(chunk.timestamps[-1] - chunk.timestamps[0])
    n_sync = int(span * unit / chunk.timing.sync_period / 70)  # a 70 kHz-like APD
    fake = np.sort(rng.integers(chunk.timestamps[0], chunk.timestamps[-1], n_sync))
    ts = np.concatenate([chunk.timestamps[photons], fake])
    det = np.concatenate([chunk.detectors[photons], np.zeros(n_sync, np.uint8)])
    order = np.argsort(ts, kind="stable")
    apd = PhotonChunk(chunk.timing, ts[order], det[order], None)
    assert sync_periodic_fraction(apd) < 0.1 < SYNC_PERIODIC_MIN
    out = analyze_photons([apd], AnalysisSettings())
    assert out.lifetime_ns is None and out.lifetime_all is None and out.decay is None
    assert any("sync input is not periodic" in n for n in out.notes)
    pulsed = analyze_photons([chunk], AnalysisSettings())
    assert pulsed.decay is not None
    assert not any("sync input is not periodic" in n for n in pulsed.notes)
