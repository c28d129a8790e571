"""Streaming accumulators: exact against brute-force references, invariant under chunking."""

from __future__ import annotations

import numpy as np
import pytest
from spad.analysis.accumulators import CrossCorrelation, DecayHistogram
from spad.analysis.flid import FLID_MAX_BINS, FLIDHistogram
from spad.analysis.trace import IntensityTrace

from spad.photons import SYNC, PhotonChunk, Timing

# T3: 100 ns sync period, 25 ps TCSPC bins -> exactly 4000 bins per period
T3 = Timing("T3", 100e-9, 25e-12, 100e-9, 4000)
# T2: 1 ps ticks, 100 ns sync
T2 = Timing("T2", 1e-12, None, 100e-9)


def t3_stream(rng: np.random.Generator, n: int, n_sync: int, n_det: int = 2) -> PhotonChunk:
    """Dense random T3 photons with many coincidences (same sync and nanotime)."""
    ns = np.sort(rng.integers(0, n_sync, n))
    nt = rng.integers(0, 4000, n)
    nt[rng.random(n) < 0.2] = 1000  # exact coincidences across detectors
    det = rng.integers(1, n_det + 1, n)
    return PhotonChunk(T3, ns, det, nt)


def t2_stream(rng: np.random.Generator, n: int, span: int, sync_every: int = 100_000
              ) -> PhotonChunk:
    """Random T2 photons on two detectors, with sync events every ``sync_every`` ticks."""
    t = rng.integers(0, span, n)
    t[: n // 5] = (t[: n // 5] // 500) * 500  # many lags exactly on bin edges
    syncs = np.arange(0, span, sync_every)
    ts = np.concatenate((t, syncs))
    det = np.concatenate((rng.integers(1, 3, n), np.zeros(syncs.size, dtype=int)))
    order = np.argsort(ts, kind="stable")
    return PhotonChunk(T2, ts[order], det[order].astype(np.uint8))


def split(chunk: PhotonChunk, rng: np.random.Generator, n_pieces: int) -> list[PhotonChunk]:
    """Random split points, including empty pieces and cuts between equal timestamps."""
    cuts = np.sort(rng.integers(0, len(chunk) + 1, n_pieces - 1))
    bounds = np.concatenate(([0], cuts, [len(chunk)]))
    idx = np.arange(len(chunk))
    return [chunk.select((idx >= a) & (idx < b)) for a, b in zip(bounds[:-1], bounds[1:],
                                                                 strict=True)]


def feed(acc, chunks):
    for c in chunks:
        acc.update(c)
    return acc.result()


def brute_correlation(chunk: PhotonChunk, a: int, b: int, w: int, m: int) -> np.ndarray:
    """All ordered pairs (i != j), det_i = a, det_j = b, lag t_j - t_i in fine units, binned in
    integers: bin = floor((lag + (m + 1/2) w) / w)."""
    if chunk.timing.is_t3:
        period = round(chunk.timing.timestamp_unit / chunk.timing.nanotime_unit)
        t = chunk.timestamps * period + chunk.nanotimes.astype(np.int64)
    else:
        t = chunk.timestamps
    ia = np.flatnonzero(chunk.detectors == a)
    ib = np.flatnonzero(chunk.detectors == b)
    lag = t[ib][None, :] - t[ia][:, None]
    valid = ib[None, :] != ia[:, None]
    k = (2 * lag[valid] + (2 * m + 1) * w) // (2 * w)
    k = k[(k >= 0) & (k < 2 * m + 1)]
    return np.bincount(k, minlength=2 * m + 1)


@pytest.mark.parametrize("width_s", [50e-12, 75e-12, 1e-9])
def test_t3_correlation_exact_and_chunk_invariant(width_s):
    rng = np.random.default_rng(1)
    chunk = t3_stream(rng, 3000, 4000)
    whole = feed(CrossCorrelation(1, 2, max_lag_periods=3, bin_width_s=width_s), [chunk])
    w = round(width_s / 25e-12)
    m = int(np.ceil(3 * 4000 / w))
    ref = brute_correlation(chunk, 1, 2, w, m)
    assert whole.counts.sum() > 2000
    np.testing.assert_array_equal(whole.counts, ref)
    assert whole.counts[m] > 0  # lag 0 coincidences counted
    for seed in range(5):
        parts = split(chunk, np.random.default_rng(seed), 12)
        got = feed(CrossCorrelation(1, 2, max_lag_periods=3, bin_width_s=width_s), parts)
        np.testing.assert_array_equal(got.counts, whole.counts)
    assert whole.n_a == np.count_nonzero(chunk.detectors == 1)
    np.testing.assert_allclose(whole.lags_s[m], 0.0)
    np.testing.assert_allclose(np.diff(whole.bin_edges_s), w * 25e-12)


def test_t2_correlation_exact_and_chunk_invariant():
    rng = np.random.default_rng(2)
    chunk = t2_stream(rng, 3000, 3_000_000_000 // 1000)
    whole = feed(CrossCorrelation(1, 2, max_lag_s=20e-9, bin_width_s=1e-9), [chunk])
    ref = brute_correlation(chunk, 1, 2, 1000, 20)
    assert ref.sum() > 100
    np.testing.assert_array_equal(whole.counts, ref)
    for seed in range(5):
        got = feed(CrossCorrelation(1, 2, max_lag_s=20e-9, bin_width_s=1e-9),
                   split(chunk, np.random.default_rng(seed), 30))
        np.testing.assert_array_equal(got.counts, whole.counts)


def test_t2_correlation_pairs_on_bin_edges():
    # lags of exactly +/- 500 ticks sit on the edge between bins 0 and +/-1 of 1000-tick bins
    ts = np.array([0, 500, 1000, 1500, 3000])
    det = np.array([1, 2, 1, 2, 2])
    chunk = PhotonChunk(T2, ts, det)
    got = feed(CrossCorrelation(1, 2, max_lag_s=3e-9, bin_width_s=1e-9), [chunk])
    # lags b - a: 500, 1500, 3000, -500, 500, 2000 -> bins [(k-1/2)w, (k+1/2)w), k = -3..3:
    # -500 -> k=0, 500 -> k=1 (twice), 1500 and 2000 -> k=2, 3000 -> k=3
    np.testing.assert_array_equal(got.counts, [0, 0, 0, 1, 2, 2, 1])
    for cut in range(1, 5):
        parts = [chunk.select(np.arange(5) < cut), chunk.select(np.arange(5) >= cut)]
        assert np.array_equal(feed(CrossCorrelation(1, 2, max_lag_s=3e-9, bin_width_s=1e-9),
                                   parts).counts, got.counts)


def test_correlation_dense_window_grows_ring():
    # ~3000 photons inside one look-back window: the ring buffer (1024 to start) must grow,
    # also in the middle of a chunk, without losing or repeating a pair
    rng = np.random.default_rng(12)
    ts = np.sort(rng.integers(0, 30_000, 6000))
    chunk = PhotonChunk(T2, ts, rng.integers(1, 3, 6000))
    ref = brute_correlation(chunk, 1, 2, 1000, 10)
    assert ref.sum() > 1_000_000
    np.testing.assert_array_equal(
        feed(CrossCorrelation(1, 2, max_lag_s=10e-9, bin_width_s=1e-9), [chunk]).counts, ref)
    np.testing.assert_array_equal(
        feed(CrossCorrelation(1, 2, max_lag_s=10e-9, bin_width_s=1e-9),
             split(chunk, rng, 7)).counts, ref)


def test_t3_correlation_non_integer_period_matches_float_reference():
    # real files: sync period not a whole number of TCSPC bins (200.0016 ns / 64 ps)
    timing = Timing("T3", 2.000016e-7, 6.4e-11, 2.000016e-7, 3125)
    rng = np.random.default_rng(3)
    ns = np.sort(rng.integers(0, 3000, 2000))
    chunk = PhotonChunk(timing, ns, rng.integers(1, 3, 2000), rng.integers(0, 3125, 2000))
    got = feed(CrossCorrelation(1, 2, max_lag_periods=2, bin_width_s=1e-9), [chunk])
    p = timing.timestamp_unit / timing.nanotime_unit
    t_s = chunk.times_s()
    ia, ib = np.flatnonzero(chunk.detectors == 1), np.flatnonzero(chunk.detectors == 2)
    lag_s = (t_s[ib][None, :] - t_s[ia][:, None]).ravel()
    ref, _ = np.histogram(lag_s, got.bin_edges_s)
    # lags in float seconds move a pair only when it sits exactly on an edge (same-sync pairs
    # at integer multiples of the half bin), and then only into the neighbouring bin
    assert got.counts.sum() == ref.sum()
    assert np.abs(np.cumsum(got.counts - ref)).max() <= 3
    lag = ((chunk.timestamps[ib][None, :] - chunk.timestamps[ia][:, None]) * p
           + (chunk.nanotimes[ib].astype(np.int64)[None, :]
              - chunk.nanotimes[ia].astype(np.int64)[:, None])).ravel()
    w = round(1e-9 / 6.4e-11)
    m = (len(got.counts) - 1) // 2
    k = np.floor((lag + (m + 0.5) * w) / w)
    k = k[(k >= 0) & (k < 2 * m + 1)].astype(int)
    np.testing.assert_array_equal(got.counts, np.bincount(k, minlength=2 * m + 1))
    parts = split(chunk, rng, 17)
    np.testing.assert_array_equal(
        feed(CrossCorrelation(1, 2, max_lag_periods=2, bin_width_s=1e-9), parts).counts,
        got.counts)


def test_t3_correlation_nanotimes_beyond_period():
    # nanotimes larger than the sync period (TCSPC range > period) still pair exactly
    timing = Timing("T3", 100e-9, 25e-12, 100e-9, 16000)
    rng = np.random.default_rng(4)
    ns = np.sort(rng.integers(0, 2000, 1500))
    chunk = PhotonChunk(timing, ns, rng.integers(1, 3, 1500), rng.integers(0, 16000, 1500))
    w, m = 40, 200  # 1 ns bins, +/- 2 periods
    ref = brute_correlation(chunk, 1, 2, w, m)
    for seed in range(3):
        got = feed(CrossCorrelation(1, 2, max_lag_periods=2, bin_width_s=1e-9),
                   split(chunk, np.random.default_rng(seed), 25))
        np.testing.assert_array_equal(got.counts, ref)


def test_autocorrelation_counts_both_signs():
    rng = np.random.default_rng(5)
    chunk = t3_stream(rng, 1000, 1000, n_det=1)
    # odd width in TCSPC bins: no integer lag sits on an edge, so the histogram is symmetric
    got = feed(CrossCorrelation(1, 1, max_lag_periods=2, bin_width_s=41 * 25e-12), [chunk])
    m = (len(got.counts) - 1) // 2
    np.testing.assert_array_equal(got.counts, brute_correlation(chunk, 1, 1, 41, m))
    np.testing.assert_array_equal(got.counts, got.counts[::-1])


def test_correlation_serialise_resume_and_merge():
    rng = np.random.default_rng(7)
    chunk = t3_stream(rng, 2000, 2000)
    parts = split(chunk, rng, 6)
    whole = feed(CrossCorrelation(1, 2, max_lag_periods=2), [chunk])
    acc = CrossCorrelation(1, 2, max_lag_periods=2)
    for p in parts[:3]:
        acc.update(p)
    acc = CrossCorrelation.from_dict(acc.to_dict())
    np.testing.assert_array_equal(feed(acc, parts[3:]).counts, whole.counts)
    other = CrossCorrelation(1, 2, max_lag_periods=2)
    other.update(chunk)
    acc.merge(other)
    np.testing.assert_array_equal(acc.result().counts, 2 * whole.counts)
    assert acc.result().n_a == 2 * whole.n_a


def test_correlation_rejects_bad_input():
    with pytest.raises(ValueError, match="exactly one"):
        CrossCorrelation(1, 2)
    acc = CrossCorrelation(1, 2, max_lag_periods=2)
    acc.update(PhotonChunk(T3, [5, 6], [1, 2], [0, 0]))
    with pytest.raises(ValueError, match="backwards"):
        acc.update(PhotonChunk(T3, [4], [1], [0]))
    with pytest.raises(ValueError, match="timing"):
        acc.update(PhotonChunk(T2, [10], [1]))
    with pytest.raises(ValueError, match="sync period"):
        CrossCorrelation(1, 2, max_lag_periods=2).update(PhotonChunk(Timing("T2", 1e-12), [1],
                                                                     [1]))


def test_intensity_trace_exact_and_chunk_invariant():
    rng = np.random.default_rng(8)
    chunk = t2_stream(rng, 5000, 10_000_000)
    w = 1_000_000  # 1 us in ticks; one photon in five sits on a multiple of 500 ticks
    ts = chunk.timestamps[:: 7].copy()
    ts = np.sort(np.concatenate((ts, np.arange(3, 9) * w)))  # photons exactly on bin edges
    chunk = PhotonChunk(T2, ts, np.where(np.arange(ts.size) % 3 == 0, 2, 1))
    whole = feed(IntensityTrace(1e-6), [chunk])
    first = ts[0] // w
    for row, d in enumerate((1, 2)):
        ref = np.bincount(ts[chunk.detectors == d] // w - first, minlength=whole.counts.shape[1])
        np.testing.assert_array_equal(whole.counts[row], ref)
    assert whole.total.sum() == ts.size
    assert whole.complete.tolist() == [True] * (whole.total.size - 1) + [False]
    np.testing.assert_allclose(whole.bin_edges_s[0], first * 1e-6)
    for seed in range(4):
        got = feed(IntensityTrace(1e-6), split(chunk, np.random.default_rng(seed), 40))
        np.testing.assert_array_equal(got.counts, whole.counts)
        np.testing.assert_array_equal(got.bin_edges_s, whole.bin_edges_s)
    resumed = IntensityTrace(1e-6)
    parts = split(chunk, rng, 5)
    resumed.update(parts[0])
    resumed = IntensityTrace.from_dict(resumed.to_dict())
    np.testing.assert_array_equal(feed(resumed, parts[1:]).counts, whole.counts)


def test_decay_histogram_t3_and_t2():
    rng = np.random.default_rng(9)
    chunk = t3_stream(rng, 4000, 4000)
    whole = feed(DecayHistogram(bin_width_s=100e-12), [chunk])  # 4 native bins per bin
    for row, d in enumerate((1, 2)):
        ref = np.bincount(chunk.nanotimes[chunk.detectors == d] // 4, minlength=1000)
        np.testing.assert_array_equal(whole.counts[row], ref)
    np.testing.assert_allclose(whole.bin_edges_s[-1], 100e-9)
    got = feed(DecayHistogram(bin_width_s=100e-12), split(chunk, rng, 20))
    np.testing.assert_array_equal(got.counts, whole.counts)

    c2 = t2_stream(rng, 4000, 30_000_000)
    c2 = c2.select(np.arange(len(c2)) >= 3)  # may start before the first sync
    is_sync = c2.detectors == SYNC
    last_idx = np.maximum.accumulate(np.where(is_sync, np.arange(len(c2)), -1))
    has = (last_idx >= 0) & ~is_sync
    delay = c2.timestamps[has] - c2.timestamps[last_idx[has]]
    whole2 = feed(DecayHistogram(bin_width_s=1e-9), [c2])
    assert whole2.counts.shape == (2, 100)
    for row, d in enumerate((1, 2)):
        ref = np.bincount(delay[c2.detectors[has] == d] // 1000, minlength=101)
        np.testing.assert_array_equal(whole2.counts[row], ref[:100])
    # photons listed before a sync at the same tick are a full period late: out of range
    assert whole2.n_out_of_range == np.count_nonzero(delay >= 100_000) > 0
    assert whole2.n_without_sync == np.count_nonzero((last_idx < 0) & ~is_sync)
    for seed in range(3):
        got2 = feed(DecayHistogram(bin_width_s=1e-9), split(c2, np.random.default_rng(seed), 50))
        np.testing.assert_array_equal(got2.counts, whole2.counts)
    d2 = DecayHistogram.from_dict(DecayHistogram(bin_width_s=1e-9).to_dict())
    feed(d2, [c2])
    d2.merge(d2.from_dict(d2.to_dict()))
    np.testing.assert_array_equal(d2.result().counts, 2 * whole2.counts)


def test_decay_histogram_out_of_range_counted():
    chunk = PhotonChunk(T3, [0, 1, 2], [1, 1, 2], [10, 3999, 4500])
    got = feed(DecayHistogram(range_s=4000 * T3.nanotime_unit), [chunk])
    assert got.counts.sum() == 2 and got.n_out_of_range == 1
    # by default the T3 histogram grows to hold a delay beyond the stated bins (a header that
    # contradicts the data): nothing is dropped, and merging grown histograms works
    grown = DecayHistogram()
    feed(grown, [chunk])
    got = grown.result()
    assert got.counts.sum() == 3 and got.n_out_of_range == 0 and got.counts.shape[1] == 4501
    plain = DecayHistogram()
    feed(plain, [PhotonChunk(T3, [0], [1], [10])])
    plain.merge(grown)
    assert plain.result().counts.sum() == 4
    with pytest.raises(ValueError, match="range_s"):
        DecayHistogram().update(PhotonChunk(Timing("T2", 1e-12), [1], [1]))


def test_flid_exact_and_chunk_invariant():
    rng = np.random.default_rng(10)
    chunk = t3_stream(rng, 5000, 100_000)
    w = 1000  # 100 us bins in syncs
    whole = feed(FLIDHistogram(100e-6, delay_bin_s=1e-9), [chunk])
    b = chunk.timestamps // w - chunk.timestamps[0] // w
    n = np.bincount(b)
    s = np.bincount(b, weights=chunk.nanotimes).astype(np.int64)
    np.testing.assert_array_equal(whole.counts_per_bin, n)
    full = n[:-1] > 0
    j = s[:-1][full] // (n[:-1][full] * 40)
    ref = np.zeros_like(whole.histogram)
    np.add.at(ref, (n[:-1][full], j), 1)
    np.testing.assert_array_equal(whole.histogram, ref)
    assert whole.histogram.sum() == np.count_nonzero(full)
    np.testing.assert_allclose(whole.mean_delay_s[0], s[0] / n[0] * 25e-12)
    for seed in range(3):
        got = feed(FLIDHistogram(100e-6, delay_bin_s=1e-9),
                   split(chunk, np.random.default_rng(seed), 30))
        np.testing.assert_array_equal(got.histogram, whole.histogram)
    resumed = FLIDHistogram.from_dict(FLIDHistogram(100e-6, delay_bin_s=1e-9).to_dict())
    np.testing.assert_array_equal(feed(resumed, [chunk]).histogram, whole.histogram)


def test_flid_separates_two_states():
    # bright long-lived bins vs dim short-lived bins land in different FLID regions
    rng = np.random.default_rng(11)
    ns_bright = np.sort(rng.integers(0, 50_000, 20_000))
    ns_dim = np.sort(rng.integers(50_000, 100_000, 4_000))
    nt = np.concatenate((rng.exponential(800, 20_000), rng.exponential(80, 4_000)))
    chunk = PhotonChunk(T3, np.concatenate((ns_bright, ns_dim)),
                        np.ones(24_000, dtype=np.uint8), np.minimum(nt, 3999))
    got = feed(FLIDHistogram(1e-3, detectors=(1,)), [chunk])
    # 1 ms = 10,000 syncs: five bins of ~4000 photons (mean 20 ns), five of ~800 (2 ns)
    bright = got.counts_per_bin > 2000
    assert bright.sum() == 5
    assert np.mean(got.mean_delay_s[bright]) > 5 * np.mean(got.mean_delay_s[~bright])
    rows, cols = np.nonzero(got.histogram)
    counts = got.count_edges[rows]
    # in the 2-D histogram bright bins sit at long, dim bins at short mean delays
    assert got.delay_edges_s[cols[counts > 2000]].min() > 15e-9
    assert got.delay_edges_s[cols[counts < 2000] + 1].max() < 5e-9


def test_flid_axes_widen_to_at_most_max_bins():
    # ~20,000 photons per bin and a 1 us period in 25 ps units: one bin per count and per
    # 100 ps would be 20,000 x 10,000 bins; both axes widen by whole factors instead
    rng = np.random.default_rng(12)
    n = 400_000
    timing = Timing("T3", 1e-6, sync_period=1e-6, nanotime_unit=25e-12,
                    tcspc_num_bins=40_000)
    ns = np.sort(rng.integers(0, 20_000, n))
    chunk = PhotonChunk(timing, ns, np.ones(n, dtype=np.uint8),
                        rng.integers(0, 40_000, n))
    got = feed(FLIDHistogram(1e-3, detectors=(1,)), [chunk])
    assert got.histogram.shape[0] <= FLID_MAX_BINS and got.histogram.shape[1] <= FLID_MAX_BINS
    assert got.histogram.sum() == np.count_nonzero(got.counts_per_bin[:-1])
    count_bin = got.count_edges[1] - got.count_edges[0]
    assert count_bin > 1 and got.count_edges[-1] > got.counts_per_bin[:-1].max()
    assert got.delay_bin_s > 100e-12 and got.delay_edges_s[-1] >= 1e-6 - got.delay_bin_s
    # every full bin lands where its count and mean delay say
    full = got.counts_per_bin[:-1]
    i = full // count_bin
    j = np.floor(got.mean_delay_s[:-1] / got.delay_bin_s + 1e-9).astype(int)
    ref = np.zeros_like(got.histogram)
    np.add.at(ref, (i, j), 1)
    np.testing.assert_array_equal(got.histogram, ref)
