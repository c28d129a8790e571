"""Live acquisition and replay of its recording give identical photons and results: the chunks
the acquisition engine's one read loop decodes and publishes are the photons of the file it
writes, and analyse to the same numbers."""

from __future__ import annotations

from collections import deque

import pytest
from spad.analysis.photon_analysis import analyze_photons
from spad.simulators.detection import Detection
from spad.simulators.emitter import monomer
from spad.simulators.tagger import SimulatedTagger

import spad
from spad.app.acquisition import Acquisition, AcquisitionSettings
from spad.app.rig import Instruments
from spad.photons import PhotonChunk


def test_live_analysis_equals_replay_of_the_recording(tmp_path) -> None:
    tagger = SimulatedTagger(monomer(), Detection(), seed=11, fifo_records=4096)
    path = tmp_path / "live.h5"
    published: deque[PhotonChunk] = deque()
    with tagger:
        # no live update within the 3 s: only the read loop runs
        acq = Acquisition(Instruments(tagger, None, None),
                          AcquisitionSettings(duration_s=3.0, update_s=100.0), path=path,
                          analysis_worker=False)
        acq.publish_to(photons=published)
        outcome = acq.run()
    assert outcome.error is None
    live = list(published)
    assert len(live) > 10  # really streamed in many FIFO reads
    live_result = analyze_photons(iter(live))
    with spad.open(path) as reader:
        replayed = reader.read().photons
        replay_result = analyze_photons(reader.chunks(n_records=100_000))
    assert PhotonChunk.concatenate(live).equals(replayed)
    assert live_result.summary() == replay_result.summary()
    assert live_result.g2_zero is not None and live_result.g2_zero < 0.3


def test_bad_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="duration"):
        AcquisitionSettings(duration_s=0.0)
