"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def pytest_sessionfinish(session, exitstatus) -> None:  # noqa: ANN001, ARG001
    """The suite leaves no process behind: the live-analysis worker some tests started is
    stopped (it would also end by itself when this process ends: it watches its parent)."""
    import sys

    engine = sys.modules.get("spad.app.acquisition.engine")
    if engine is not None:
        engine.shutdown_workers()


@pytest.fixture
def data_dir() -> Path:
    """Folder of test files shipped with the project (see tests/data/README.md)."""
    return DATA


def chunk_with_bursts(chunks, bursts, rate_hz, seed):
    """A T3 stream as one chunk, with burst photons (``rate_hz``, random detector 1-2 and
    nanotime) added at each ``(start_s, duration_s)`` of ``bursts``."""
    import numpy as np

    from spad.photons import PhotonChunk

    chunks = list(chunks)
    timing = chunks[0].timing
    ts = np.concatenate([c.timestamps for c in chunks])
    det = np.concatenate([c.detectors for c in chunks])
    nt = np.concatenate([c.nanotimes for c in chunks])
    rng = np.random.default_rng(seed)
    for s, d in bursts:
        n = int(rate_hz * d)
        t = np.sort(rng.uniform(s, s + d, n))
        ts = np.concatenate([ts, np.round(t / timing.timestamp_unit).astype(ts.dtype)])
        det = np.concatenate([det, rng.integers(1, 3, n).astype(det.dtype)])
        nt = np.concatenate([nt, rng.integers(0, int(timing.tcspc_num_bins), n)
                             .astype(nt.dtype)])
    order = np.argsort(ts, kind="stable")
    return PhotonChunk(timing, ts[order], det[order], nt[order])
