"""Live acquisition and replay of its recording give identical photons and results."""

from __future__ import annotations

import pytest
from spad.analysis.photon_analysis import analyze_photons
from spad.simulators.detection import Detection
from spad.simulators.emitter import monomer
from spad.simulators.tagger import SimulatedTagger

import spad
from spad.app.acquisition import live_chunks
from spad.formats.ptu import PtuWriter
from spad.photons import PhotonChunk


def test_live_analysis_equals_replay_of_the_recording(tmp_path) -> None:
    tagger = SimulatedTagger(monomer(), Detection(), seed=11, fifo_records=4096)
    path = tmp_path / "live.ptu"
    with tagger, PtuWriter(path, tagger.record_type, tagger.timing) as writer:
        live = list(live_chunks(tagger, 3.0, sink=writer))
    assert len(live) > 10  # really streamed in many FIFO reads
    live_result = analyze_photons(iter(live))
    with spad.open(path) as reader:
        replayed = reader.read().photons
        replay_result = analyze_photons(reader.chunks(n_records=100_000))
    assert PhotonChunk.concatenate(live).equals(replayed)
    assert live_result.summary() == replay_result.summary()
    assert live_result.g2_zero is not None and live_result.g2_zero < 0.3


def test_bad_duration_is_refused() -> None:
    tagger = SimulatedTagger(monomer(), Detection(), seed=1)
    with tagger, pytest.raises(ValueError, match="duration_s"):
        next(live_chunks(tagger, 0.0))
