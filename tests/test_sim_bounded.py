"""spad simulate in bounded memory: the timeline index, the spectral walk, the capped truth."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from spad.simulators.blinking import Timeline
from spad.simulators.emitter import dimer, monomer
from spad.simulators.recipe import build
from spad.simulators.stream import SpectralWalk, simulate

from spad.app.cli import main
from spad.app.commands import simulate as simulate_cmd


def test_timeline_keeps_a_few_batches_and_exact_fractions() -> None:
    tl = Timeline(dimer(), seed=3, key=(1, 0))
    for t in np.arange(0.0, 200.0, 0.1):  # streaming, as the photon generator does
        tl.segments(t, t + 0.1)
    assert tl.n_batches > 20
    assert len(tl._recent) <= Timeline._KEEP  # noqa: SLF001 - the memory bound itself
    starts, states, dwells = tl.dwells(200.0)  # redrawn identically on demand
    f = np.bincount(states, weights=dwells, minlength=len(dimer().states)) / 200.0
    assert tl.fractions(200.0) == pytest.approx(f, rel=1e-9, abs=1e-12)
    assert tl.count(200.0) == starts.size
    fresh = Timeline(dimer(), seed=3, key=(1, 0))
    assert np.array_equal(fresh.dwells(200.0)[0], starts)


def test_spectral_walk_is_the_same_however_far_it_is_drawn() -> None:
    w1 = SpectralWalk(monomer(), 5, (5, 0))
    w2 = SpectralWalk(monomer(), 5, (5, 0))
    t_long, x_long = w1.values(2000.0)  # three blocks
    t_short, x_short = w2.values(700.0)
    assert np.array_equal(x_long[:x_short.size], x_short)
    mean, sd = w1.stats(2000.0)
    assert mean == pytest.approx(x_long.mean(), abs=1e-12)
    assert sd == pytest.approx(x_long.std(), rel=1e-6)
    assert 0.002 < sd < 0.02


def test_streamed_photons_do_not_depend_on_drawing_the_truth_first() -> None:
    a = simulate(dimer(), duration_s=2.0, seed=4, chunk_s=0.3)
    a.truth.fractions()  # the whole timeline drawn before any photon
    b = simulate(dimer(), duration_s=2.0, seed=4, chunk_s=0.7)
    assert a.run().equals(b.run())


def test_stored_truth_is_capped_and_says_so(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(simulate_cmd, "TRUTH_MAX_DWELLS", 300)
    monkeypatch.setattr(simulate_cmd, "TRUTH_MAX_STEPS", 500)
    out = tmp_path / "d.h5"
    assert main(["simulate", "--particle", "dimer", "--duration", "8", "--spectrum-s", "0",
                 "-o", str(out)]) == 0
    with h5py.File(out) as f:
        e = f["user/ground_truth/emitters/0"]
        tl = e["timeline"]
        assert tl["start_s"].size == 300 and not tl["complete"][()]
        assert tl["n_dwells_run"][()] > 300 and 0 < tl["end_s"][()] < 8
        assert e["spectral/time_s"].size <= 500 and not e["spectral/complete"][()]
        assert 0 < e["on_fraction"][()] <= 1  # still over the whole run


def test_estimate_is_close_to_what_is_written(tmp_path, capsys) -> None:
    emitters, detection = build("monomer", 0)
    events, size = simulate_cmd.estimate(emitters, detection, 60.0, "ptu", "T3")
    assert main(["simulate", "--duration", "60", "--spectrum-s", "0", "-o",
                 str(tmp_path / "m.ptu")]) == 0
    n = int(capsys.readouterr().out.split(" photons")[0].split()[-1])
    assert 0.5 < n / events < 2.0  # blinking: a 60 s run is not the long-run average
