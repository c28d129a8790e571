"""The analysis' stand-ins for scipy.stats and scipy.signal give their numbers bit for bit (they
exist only to spare every particle the import of those packages)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal, stats
from spad.analysis import distributions as d
from spad.analysis.g2 import full_convolution


def _same(a: object, b: object) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    assert a.dtype == b.dtype
    # bit for bit, NaN where NaN
    assert np.array_equal(a.view(np.uint64), b.view(np.uint64)), (a, b)


RNG = np.random.default_rng(7)
EDGES = np.array([-np.inf, -3.0, -1.0, -0.5, 0.0, 1e-300, 0.3, 1.0, 2.5, 7.0, 40.0, 1e3, 1e6,
                  np.inf, np.nan])


def test_chi2_sf():
    x = np.concatenate([EDGES, RNG.exponential(3.0, 200)])
    for df in (1, 2, 3.5):
        _same(d.chi2_sf(x, df), stats.chi2.sf(x, df))
        for v in x[:20]:
            _same(d.chi2_sf(float(v), df), stats.chi2.sf(float(v), df))
    _same(d.chi2_sf(x, 0), stats.chi2.sf(x, 0))    # bad shape: NaN
    _same(d.chi2_sf(x, np.nan), stats.chi2.sf(x, np.nan))


def test_f_sf():
    x = np.concatenate([EDGES, RNG.exponential(2.0, 200)])
    for dfn, dfd in ((1, 10), (3, 57), (2.5, 400), (0, 5), (4, -1)):
        _same(d.f_sf(x, dfn, dfd), stats.f.sf(x, dfn, dfd))
        _same(d.f_sf(3.2, dfn, dfd), stats.f.sf(3.2, dfn, dfd))


@pytest.mark.filterwarnings("ignore:invalid value")   # both, at k = inf
def test_poisson_sf_and_pmf():
    k = np.concatenate([EDGES, RNG.integers(0, 400, 300).astype(float), [2.5, 7.9]])
    mu = np.concatenate([RNG.uniform(0, 300, k.size - 5), [0.0, 0.0, -1.0, np.nan, 1e-9]])
    _same(d.poisson_sf(k - 1, mu), stats.poisson.sf(k - 1, mu))
    _same(d.poisson_pmf(k - 1, mu), stats.poisson.pmf(k - 1, mu))
    for kk, m in ((-1.0, 3.0), (0.0, 0.0), (5.0, 2.5), (5.5, 2.5)):
        _same(d.poisson_sf(kk, m), stats.poisson.sf(kk, m))
        _same(d.poisson_pmf(kk, m), stats.poisson.pmf(kk, m))
    empty = np.array([])
    _same(d.poisson_sf(empty, empty), stats.poisson.sf(empty, empty))


@pytest.mark.filterwarnings("ignore:Precision loss")   # scipy's, on the near-constant sample
@pytest.mark.parametrize("bias", [True, False])
def test_skew_and_kurtosis(bias):
    samples = [RNG.poisson(lam, n).astype(float) for lam, n in ((3, 4), (30, 5), (300, 1000))]
    samples += [RNG.normal(0, 1, 50), RNG.exponential(1.0, 7), np.r_[np.zeros(99), 1.0],
                np.full(6, 2.0), np.r_[1e9, 1e9 + 1e-6, 1e9, 1e9]]
    for x in samples:
        for ours, theirs in ((d.skew, stats.skew), (d.kurtosis, stats.kurtosis)):
            with np.errstate(all="ignore"):
                ref = float(theirs(x, bias=bias))
            _same(ours(x, bias=bias), ref)


def test_full_convolution_is_fftconvolve():
    for na, nb in ((1, 1), (1, 9), (2, 3), (17, 17), (250, 250), (1000, 997), (4097, 4097)):
        a, b = RNG.poisson(50, na).astype(float), RNG.exponential(3.0, nb)
        _same(full_convolution(b, a[::-1]), signal.fftconvolve(b, a[::-1]))
        ai = RNG.integers(0, 9, na)
        _same(full_convolution(ai, b), signal.fftconvolve(ai, b))
    _same(full_convolution(np.array([]), np.ones(3)), signal.fftconvolve(np.array([]), np.ones(3)))


def test_gaussian_fwhm_factor_is_lmfits():
    # written out in spectrum_fit so that the module need not import lmfit
    from spad.analysis.lmfit_lean import lmfit
    from spad.analysis.spectrum_fit import GAUSSIAN_FWHM_FACTOR

    assert GAUSSIAN_FWHM_FACTOR == float(f"{lmfit.models.GaussianModel.fwhm_factor:.7f}")
