"""g2 from the cross-correlation: synthetic streams of known g2(0), gating, a real file."""

from __future__ import annotations

import numpy as np
import pytest
from spad.analysis.accumulators import CrossCorrelation, DecayHistogram
from spad.analysis.g2 import cw_g2, find_peak_offset, gate_mask, pulse_delays, pulsed_g2
from spad.analysis.photon_collector import PhotonCollector

from spad.photons import PhotonChunk, Timing
from tests.conftest import DATA

PERIOD = 200e-9
RES = 16e-12
NBINS = 12500  # 200 ns / 16 ps
T3 = Timing("T3", PERIOD, RES, PERIOD, NBINS)
REAL = DATA / "picoquant-sample-data" / "v20_t3.ptu"


def emitter(rng, n_pulses, p1, p2, tau_x=20e-9, tau_bx=0.5e-9):
    """Per pulse: one photon with probability p1 (exciton), a biexciton-exciton cascade with
    probability p2 (the biexciton photon first). Returns (pulse, delay_s) of all photons."""
    u = rng.random(n_pulses)
    single = np.flatnonzero(u < p1)
    double = np.flatnonzero((u >= p1) & (u < p1 + p2))
    t_bx = rng.exponential(tau_bx, double.size)
    pulses = np.concatenate((single, double, double))
    delays = np.concatenate((rng.exponential(tau_x, single.size), t_bx,
                             t_bx + rng.exponential(tau_x, double.size)))
    return pulses, delays


def to_chunk(rng, pulses, delays, cable_b=0.0, irf=1e-9, wrap=False):
    """Split photons 50:50 onto detectors 1 and 2 (detector 2 later by ``cable_b``; when
    negative, detector 1 is later by ``-cable_b``). ``wrap``: photons arriving after the next
    sync get that sync, as a T3 tagger records them (else their nanotime exceeds the period)."""
    det = rng.integers(1, 3, pulses.size).astype(np.uint8)
    cable = np.where(det == 2, max(cable_b, 0.0), max(-cable_b, 0.0))
    nt = np.round((delays + irf + cable) / RES)
    if wrap:
        pulses = pulses + (nt // NBINS).astype(np.int64)
        nt = nt % NBINS
    nt = np.minimum(nt, 65535).astype(np.uint16)
    order = np.lexsort((nt, pulses))
    return PhotonChunk(T3, pulses[order], det[order], nt[order])


def g2_truth(p1, p2):
    """Per pulse and detector the mean photon number is p1/2 + p2; a cascade gives an a-b pair
    with probability 1/2, so g2(0) = (p2/2) / (p1/2 + p2)^2."""
    return (p2 / 2) / (p1 / 2 + p2) ** 2


def correlate(chunk, **kw):
    acc = CrossCorrelation(1, 2, max_lag_periods=kw.pop("periods", 5), bin_width_s=1e-9, **kw)
    # feed in pieces, as a reader would
    n = len(chunk)
    for a in range(0, n, 50_000):
        acc.update(chunk.select(slice(a, min(a + 50_000, n))))
    return acc


def gated(chunk, gate_s):
    """The photons of ``chunk`` that pass spad's one time gate (``gate_s`` after each
    detector's own excitation pulse, located from its decay)."""
    photons, decay = PhotonCollector((1, 2)), DecayHistogram(0.128e-9, (1, 2))
    photons.update(chunk)
    decay.update(chunk)
    return chunk.select(gate_mask(photons.result(), pulse_delays(decay.result()), gate_s))


@pytest.mark.parametrize("cable_b", [0.0, 37e-9, -81e-9])
def test_pulsed_g2_known_value_and_peak_location(cable_b):
    rng = np.random.default_rng(20)
    p1, p2 = 0.1, 0.002
    chunk = to_chunk(rng, *emitter(rng, 2_000_000, p1, p2), cable_b=cable_b)
    res = pulsed_g2(correlate(chunk))
    truth = g2_truth(p1, p2)  # 0.37
    # the centre peak sits at the cable delay (+ the mean biexciton-exciton lag, symmetrised
    # to ~0 by the 50:50 split); 1 ns bins
    assert abs(res.centre_lag_s - cable_b) < 1.5e-9
    assert len(res.side_areas) == 8
    # ~2000 centre and ~43,000 side pairs: g2_err ~ 0.009; 0.01 allows for the tails of the
    # 20 ns peaks leaking across the +/- 100 ns windows (e^-5 of a side peak: +0.007)
    assert abs(res.g2 - truth) < 4 * res.g2_err + 0.01
    assert 0.005 < res.g2_err < 0.015
    assert res.g2 == res.g2_raw and res.rho == 1.0


def test_peak_located_when_centre_is_empty():
    rng = np.random.default_rng(21)
    chunk = to_chunk(rng, *emitter(rng, 1_000_000, 0.1, 0.0), cable_b=-63e-9)
    res = pulsed_g2(correlate(chunk))
    # no cascades: the centre window only holds the tails of its neighbours (pairs from
    # adjacent pulses more than T/2 apart: 2 x 0.5 e^-5 of a side peak, ~16 pairs)
    assert abs(res.centre_lag_s + 63e-9) < 1.5e-9
    assert res.centre_area < 35
    assert res.g2 < 0.015 and res.g2_err > 0
    lags = correlate(chunk).result()
    assert abs(find_peak_offset(lags.lags_s, lags.counts, PERIOD) - (PERIOD - 63e-9)) < 1.5e-9


def test_gating_removes_biexciton_photons():
    rng = np.random.default_rng(22)
    p1, p2 = 0.1, 0.0025  # biexciton-rich: g2(0) = 0.45
    chunk = to_chunk(rng, *emitter(rng, 2_000_000, p1, p2))
    ungated = pulsed_g2(correlate(chunk))
    assert abs(ungated.g2 - g2_truth(p1, p2)) < 4 * ungated.g2_err + 0.01
    # a 3 ns gate after the pulse (IRF at 1 ns) keeps ~e^-4 of the 0.5 ns biexciton photons
    gated_g2 = pulsed_g2(correlate(gated(chunk, 3e-9)))
    assert gated_g2.g2 < 0.05
    assert gated_g2.g2 < ungated.g2 - 10 * ungated.g2_err

    # two independent emitters (g2 0.45 each) in one spot: (g + g + 2) / 4, gated ~ 1/2
    p_a, d_a = emitter(rng, 2_000_000, p1, p2)
    p_b, d_b = emitter(rng, 2_000_000, p1, p2)
    pair = to_chunk(rng, np.concatenate((p_a, p_b)), np.concatenate((d_a, d_b)))
    two = pulsed_g2(correlate(pair))
    assert abs(two.g2 - (2 * g2_truth(p1, p2) + 2) / 4) < 4 * two.g2_err + 0.01
    two_gated = pulsed_g2(correlate(gated(pair, 3e-9)))
    assert abs(two_gated.g2 - 0.5) < 4 * two_gated.g2_err + 0.01


def test_gate_counts_from_each_detectors_pulse():
    """The gate keeps a photon when its delay after the sync is at least its own detector's
    pulse delay plus the gate; photons of other detectors and T2 photons before the first sync
    (delay -1) never pass."""
    from spad.analysis.photon_collector import PhotonList

    rng = np.random.default_rng(5)
    n = 5000
    det = rng.integers(1, 4, n).astype(np.uint8)
    delays = rng.integers(-1, 2000, n)
    photons = PhotonList(np.arange(n), delays, det, 25e-12, T3)
    pulse = {1: 2e-9, 2: 10e-9}
    keep = gate_mask(photons, pulse, 5e-9)
    expect = [d in pulse and k * 25e-12 >= pulse[d] + 5e-9 for d, k in zip(det, delays,
                                                                            strict=True)]
    np.testing.assert_array_equal(keep, expect)
    assert 0 < keep.sum() < n
    with pytest.raises(ValueError, match="gate_s"):
        gate_mask(photons, pulse, -1e-9)


def test_background_correction():
    rng = np.random.default_rng(23)
    p1, p2 = 0.1, 0.002
    n_pulses = 2_000_000
    pulses, delays = emitter(rng, n_pulses, p1, p2, tau_x=5e-9)  # short decay: flat floor
    dark_hz = 50e3  # per detector
    duration = n_pulses * PERIOD
    n_dark = rng.poisson(2 * dark_hz * duration)
    dark_pulse = rng.integers(0, n_pulses, n_dark)
    dark_delay = rng.random(n_dark) * PERIOD - 1e-9  # flat over the period (to_chunk adds IRF)
    # dark counts split 50:50 too, so each detector sees dark_hz
    chunk = to_chunk(rng, np.concatenate((pulses, dark_pulse)),
                     np.concatenate((delays, dark_delay)))
    truth = g2_truth(p1, p2)
    acc = correlate(chunk)
    raw = pulsed_g2(acc)
    assert raw.g2_raw > truth + 0.1  # background pushes g2 towards 1
    by_floor = pulsed_g2(acc, floor=True)
    assert abs(by_floor.g2 - truth) < 4 * by_floor.g2_err + 0.01
    by_dark = pulsed_g2(acc, dark_counts_hz=dark_hz)
    assert abs(by_dark.g2 - truth) < 4 * by_dark.g2_err + 0.01
    # signal fraction S/(S+B) per detector: 260 kcps of signal over 310 kcps in all
    assert abs(by_dark.rho - 0.052 / PERIOD / (0.052 / PERIOD + dark_hz)) < 0.01
    assert abs(by_floor.rho - by_dark.rho) < 0.03
    given = pulsed_g2(acc, rho=by_dark.rho)
    assert given.g2 == pytest.approx(by_dark.g2)
    with pytest.raises(ValueError, match="at most one"):
        pulsed_g2(acc, rho=0.9, floor=True)


def test_pulsed_g2_needs_side_peaks_and_period():
    rng = np.random.default_rng(24)
    chunk = to_chunk(rng, *emitter(rng, 100_000, 0.1, 0.002))
    with pytest.raises(ValueError, match="side peak"):
        pulsed_g2(correlate(chunk, periods=1.2))
    t2 = Timing("T2", 1e-12)
    acc = CrossCorrelation(1, 2, max_lag_s=1e-6)
    acc.update(PhotonChunk(t2, [0, 10], [1, 2]))
    with pytest.raises(ValueError, match="sync period"):
        pulsed_g2(acc)


def test_cw_g2_poisson_and_antibunched():
    rng = np.random.default_rng(25)
    t2 = Timing("T2", 1e-12)
    # uncorrelated Poisson photons: g2 = 1 at all lags
    n = 200_000
    t = np.sort(rng.integers(0, 2 * 10**12, n))
    acc = CrossCorrelation(1, 2, max_lag_s=200e-9, bin_width_s=10e-9)
    acc.update(PhotonChunk(t2, t, rng.integers(1, 3, n)))
    flat = cw_g2(acc)
    # ~25 pairs per bin: the mean over 41 bins is within ~0.03 of 1
    assert abs(np.mean(flat.g2) - 1) < 0.1
    assert flat.rate_a_hz == pytest.approx(n / 2 / 2.0, rel=0.02)

    # a two-level emitter pumped at rate k: photons form a renewal process with intervals
    # Exp(k) + Exp(gamma) -> g2(tau) = 1 - exp(-(k + gamma)|tau|)
    k, gamma = 1 / 50e-9, 1 / 20e-9
    m = 400_000
    emitted = np.cumsum(rng.exponential(1 / k, m) + rng.exponential(1 / gamma, m))
    detected = rng.random(m) < 0.3
    times = np.round(emitted[detected] / 1e-12).astype(np.int64)
    acc = CrossCorrelation(1, 2, max_lag_s=300e-9, bin_width_s=5e-9)
    acc.update(PhotonChunk(t2, times, rng.integers(1, 3, times.size)))
    res = cw_g2(acc)
    centre = np.argmin(np.abs(res.lags_s))
    assert res.g2[centre] < 0.15
    expected = 1 - np.exp(-(k + gamma) * np.abs(res.lags_s))
    far = np.abs(res.lags_s) > 100e-9
    assert abs(np.mean(res.g2[far]) - np.mean(expected[far])) < 0.05


def test_real_file_single_emitter():
    import spad

    acc = CrossCorrelation(1, 2, max_lag_periods=10, bin_width_s=1e-9)
    with spad.open(REAL) as reader:
        for chunk in reader.chunks(20_000):
            acc.update(chunk)
    res = pulsed_g2(acc)
    # README: single emitter, g2(0) about 0.15 (our ~9 centre pairs: +/- 0.05 statistics)
    assert abs(res.g2 - 0.15) < 0.05
    assert abs(res.centre_lag_s) < 10e-9
    assert res.side_areas.min() > 30


def decay_rows(chunk):
    """Delay histograms of detectors 1 and 2 on 128 ps bins (8 TCSPC bins)."""
    from spad.analysis.accumulators import DecayHistogram

    acc = DecayHistogram(8 * RES, (1, 2))
    acc.update(chunk)
    return acc.result()


@pytest.mark.parametrize("cable_b", [0.0, -41e-9])
def test_leakage_correction_recovers_long_decay_g2(cable_b):
    rng = np.random.default_rng(26)
    p1, p2 = 0.1, 0.001
    # 35 ns at 200 ns: a side peak puts 0.5 e^(-100/35) = 2.9 % into each neighbouring window
    chunk = to_chunk(rng, *emitter(rng, 3_000_000, p1, p2, tau_x=35e-9), cable_b=cable_b,
                     wrap=True)
    acc = correlate(chunk)
    truth = g2_truth(p1, p2)  # 0.192
    res = pulsed_g2(acc, decay=decay_rows(chunk))
    # the raw ratio carries the tails of the +/-1 peaks (~2 x 2.5 % of a side peak: +0.05,
    # ~8 of its standard errors)
    assert res.g2_raw - truth > 0.03
    assert abs(res.g2 - truth) < 3 * res.g2_err
    assert 0.003 < res.g2_err < 0.01
    # a peak (by sync) lies within its own and the two neighbouring windows; tails of
    # 0.5 e^(-100/35) = 2.9 % on each side, less the photons recorded a sync later (e^-5.7)
    f_left, f_own, f_right = res.peak_fractions
    assert f_left + f_own + f_right == pytest.approx(1.0, abs=1e-3)
    assert 0.015 < f_left < 0.03 and 0.015 < f_right < 0.03
    assert res.centre_area_fit / res.side_area_fit == pytest.approx(res.g2)
    # the same with the histograms given as arrays; and an explicit background correction
    # scales the corrected value
    d = decay_rows(chunk)
    again = pulsed_g2(acc, decay=(d.counts[0], d.counts[1], d.bin_width_s))
    assert again.g2 == pytest.approx(res.g2)
    with_rho = pulsed_g2(acc, decay=d, rho=0.9)
    assert with_rho.g2 == pytest.approx((res.g2 - (1 - 0.81)) / 0.81)


def test_leakage_correction_is_neutral_for_short_decays():
    rng = np.random.default_rng(27)
    chunk = to_chunk(rng, *emitter(rng, 1_000_000, 0.1, 0.002, tau_x=5e-9))
    acc = correlate(chunk)
    res = pulsed_g2(acc, decay=decay_rows(chunk))
    # e^-20 leaks: the solved areas are the window counts
    assert res.g2 == pytest.approx(res.g2_raw, rel=1e-3)
    assert res.peak_fractions[1] > 0.999


def test_leakage_correction_input_errors():
    rng = np.random.default_rng(28)
    chunk = to_chunk(rng, *emitter(rng, 100_000, 0.1, 0.002))
    acc = correlate(chunk)
    d = decay_rows(chunk)
    with pytest.raises(ValueError, match="exclude"):
        pulsed_g2(acc, decay=d, floor=True)
    with pytest.raises(ValueError, match="1-D arrays of one length"):
        pulsed_g2(acc, decay=(d.counts[:1], d.counts[:1], d.bin_width_s))
    from dataclasses import replace

    with pytest.raises(ValueError, match="no row for detector 2"):
        pulsed_g2(acc, decay=replace(d, detectors=(1, 3)))
    with pytest.raises(ValueError, match="empty"):
        pulsed_g2(acc, decay=(np.zeros(10), np.ones(10), 1e-9))
