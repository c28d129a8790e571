"""The two HBT detectors read off the recording when the user did not choose them."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
from spad.analysis.detector_choice import choose_detectors, detectors_for_file
from spad.analysis.particle import analyze_particle
from spad.analysis.settings import AnalysisSettings, irf_from_file

import spad
from spad.app.cli import main
from spad.photons import PhotonChunk, Timing
from tests.conftest import DATA

PQ = DATA / "picoquant-sample-data"
NOTE = "detectors 0 and 1 correlated: detector 2 recorded nothing"


def _first_chunk(path: Path) -> PhotonChunk:
    with spad.open(path) as reader:
        return next(reader.chunks())


def _t2_stream(sync_ticks: np.ndarray, photon_ticks: dict[int, np.ndarray]) -> PhotonChunk:
    """A T2 stream (1 ps ticks, 1 MHz stated sync) of the sync events ``sync_ticks`` and the
    photons ``photon_ticks[detector]``, in time order."""
    ts = [sync_ticks.astype(np.int64), *(t.astype(np.int64) for t in photon_ticks.values())]
    det = [np.zeros(sync_ticks.size, np.uint8),
           *(np.full(t.size, d, np.uint8) for d, t in photon_ticks.items())]
    t, dd = np.concatenate(ts), np.concatenate(det)
    order = np.argsort(t, kind="stable")
    return PhotonChunk(Timing("T2", 1e-12, sync_period=1e-6), t[order], dd[order])


def _t2_chunk(sync_ticks: np.ndarray, photons: dict[int, int], seed: int = 1) -> PhotonChunk:
    """:func:`_t2_stream` with uniformly spread photons, ``photons[detector]`` of each, over
    the span of the sync events."""
    rng = np.random.default_rng(seed)
    end = int(sync_ticks[-1]) if sync_ticks.size else 10**12
    return _t2_stream(sync_ticks, {d: np.sort(rng.integers(0, end, n))
                                   for d, n in photons.items()})


def _write_ptu(path: Path, chunk: PhotonChunk) -> Path:
    """``chunk`` as a HydraHarp v2 T2 PTU file."""
    from spad.formats.ptu import PtuWriter

    with PtuWriter(path, "HydraHarp2T2", chunk.timing) as w:
        w.write(chunk)
    return path


def _laser_sync(n: int = 200_000) -> np.ndarray:
    return np.arange(n, dtype=np.int64) * 1_000_000   # every 1 µs, on the dot


def _records(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


# --------------------------------------------------------------------------- the rule

def test_sync_input_carrying_a_detector_is_chosen() -> None:
    # v30_t2.ptu: a PicoHarp in T2 with the second APD on the sync input
    (a, b), note = choose_detectors(_first_chunk(PQ / "v30_t2.ptu"), (1, 2))
    assert (a, b) == (0, 1)
    assert note is not None and note.startswith(NOTE) and "--detectors A B" in note


@pytest.mark.parametrize("name", ["v20.ht3", "v20_t3.ptu", "v20_t2.ptu", "v50.t3r"])
def test_configured_pair_kept(name: str) -> None:
    """Both configured detectors recorded (v20.ht3 has channels 1-4, v20_t3.ptu 1-2), or
    fewer than two channels did (v20_t2.ptu, v50.t3r: channel 1 only): (1, 2) stays, and the
    settings are the very object given, so the analysis is the one of before."""
    # the public .t3r is truncated and counts a 100 ns clock: its reader warns of both
    expect = (pytest.warns(UserWarning) if name.endswith(".t3r")
              else contextlib.nullcontext())
    with expect:
        chunk = _first_chunk(PQ / name)
        assert choose_detectors(chunk, (1, 2)) == ((1, 2), None)
        s = AnalysisSettings()
        assert detectors_for_file(PQ / name, s) == (s, [])
        assert detectors_for_file(PQ / name, s)[0] is s


def test_periodic_laser_sync_is_never_chosen() -> None:
    sync = _laser_sync()
    # the sync holds by far the most events, but it is the laser's clock
    chunk = _t2_chunk(sync, {1: 5000, 3: 4000})
    assert choose_detectors(chunk, (1, 2))[0] == (1, 3)
    # with one detector besides the laser clock, nothing to choose: the configured pair stays
    assert choose_detectors(_t2_chunk(sync, {1: 5000}), (1, 2)) == ((1, 2), None)
    # a laser clock with a missed edge now and then (multiples of the period) is still one
    dropped = np.delete(sync, np.arange(0, sync.size, 7))
    assert choose_detectors(_t2_chunk(dropped, {1: 5000, 3: 4000}), (1, 2))[0] == (1, 3)
    # too few sync events to tell a clock from a detector: not counted
    assert choose_detectors(_t2_chunk(sync[:40], {1: 30}), (1, 2)) == ((1, 2), None)


def test_sync_input_with_photons_is_counted() -> None:
    # the same numbers of events as the laser clock, at random (exponential) intervals
    rng = np.random.default_rng(4)
    sync = np.cumsum(rng.exponential(1e6, 200_000)).astype(np.int64)
    chunk = _t2_chunk(sync, {1: 5000, 3: 4000})
    (a, b), note = choose_detectors(chunk, (1, 2))
    assert (a, b) == (0, 1)   # the two with the most events, in increasing order
    assert note.startswith("detectors 0 and 1 correlated: detector 2 recorded nothing")
    # both configured ones silent: both named
    (a, b), note = choose_detectors(_t2_chunk(sync, {3: 5000, 4: 4000}), (1, 2))
    assert (a, b) == (0, 3) and "detectors 1 and 2 recorded nothing" in note


def test_empty_recording_keeps_the_configured_pair() -> None:
    empty = _t2_chunk(np.zeros(0, np.int64), {})
    assert choose_detectors(empty, (1, 2)) == ((1, 2), None)
    assert choose_detectors(None, (1, 2)) == ((1, 2), None)


def test_chosen_detectors_never_override_a_choice() -> None:
    s = AnalysisSettings(auto_detectors=False)
    assert detectors_for_file(PQ / "v30_t2.ptu", s)[0] is s


def test_a_per_detector_irf_is_dropped_with_the_detectors() -> None:
    per_detector = AnalysisSettings(irf=np.ones((2, 8)))
    s, notes = detectors_for_file(PQ / "v30_t2.ptu", per_detector)
    assert s.detectors == (0, 1) and s.irf is None
    assert len(notes) == 2 and "IRF" in notes[1] and "detectors 1 and 2" in notes[1]
    summed = AnalysisSettings(irf=np.ones(8))   # already summed: not tied to detectors
    s, notes = detectors_for_file(PQ / "v30_t2.ptu", summed)
    assert s.detectors == (0, 1) and s.irf is summed.irf and len(notes) == 1


def _irf_file(path: Path, detectors: tuple[int, ...]) -> None:
    """A T2 IRF recording: the laser on the sync input every 1 µs and, on each of
    ``detectors``, photons 2 ns after some of the pulses (20 ps jitter)."""
    rng = np.random.default_rng(5)
    sync = _laser_sync(200_000)
    delayed = {}
    for d in detectors:
        pulses = np.sort(rng.choice(sync.size, 20_000, replace=False))
        delayed[d] = sync[pulses] + 2000 + rng.normal(0, 20, pulses.size).astype(np.int64)
    _write_ptu(path, _t2_stream(sync, delayed))


def test_a_measured_irf_follows_the_chosen_detectors(tmp_path) -> None:
    """spad analyze --irf on a file whose detectors are chosen: the IRF is histogrammed again
    from its recording on those detectors; if they have no photons in it, it is dropped."""
    particle = _write_ptu(tmp_path / "apds_1_3.ptu",
                          _t2_chunk(_laser_sync(1_000_000), {1: 20_000, 3: 15_000}))
    _irf_file(tmp_path / "irf_123.ptu", (1, 2, 3))
    given = AnalysisSettings()
    given.irf, given.irf_path = irf_from_file(tmp_path / "irf_123.ptu", given), \
        str(tmp_path / "irf_123.ptu")
    s, notes = detectors_for_file(particle, given)
    assert s.detectors == (1, 3) and len(notes) == 1          # the detectors' note only
    expected = irf_from_file(tmp_path / "irf_123.ptu", AnalysisSettings(detectors=(1, 3)))
    np.testing.assert_array_equal(s.irf, expected)
    assert not np.array_equal(s.irf, given.irf)   # detector 3's row, not detector 2's
    # an IRF recorded on detector 2 only has nothing for 1 and 3: dropped, and said
    _irf_file(tmp_path / "irf_2.ptu", (2,))
    given.irf, given.irf_path = irf_from_file(tmp_path / "irf_2.ptu", given), \
        str(tmp_path / "irf_2.ptu")
    s, notes = detectors_for_file(particle, given)
    assert s.detectors == (1, 3) and s.irf is None
    assert len(notes) == 2 and "Gaussian IRF" in notes[1]


# --------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def v30_records() -> dict[str, dict]:
    """``spad analyze v30_t2.ptu --json`` without and with ``--detectors 0 1``, and
    ``spad replay`` of it."""
    import contextlib
    import io

    out = {}
    for key, argv in (("auto", ["analyze", "--json"]), ("given", ["analyze", "--json",
                                                                  "--detectors", "0", "1"]),
                      ("replay", ["replay", "--json"])):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main([argv[0], str(PQ / "v30_t2.ptu"), *argv[1:]]) == 0
        out[key] = json.loads(buf.getvalue())
    return out


def test_v30_t2_gets_a_g2_and_the_note(v30_records) -> None:
    rec = v30_records["auto"]
    # no sync in this T2 file and peaks 12.5 ns apart: the correlogram fit, its floor fitted
    # (nothing measures the background here; with the floor at zero it read 1.24 +/- 0.07,
    # the window ratio 1.14)
    assert rec["g2_zero"] == pytest.approx(1.55, abs=0.05) and rec["g2_zero_err"] < 0.25
    # light bunched beyond what any number of independent emitters gives: no verdict
    assert rec["classification"]["label"] == "uncertain"
    assert "is above 1" in rec["classification"]["reason"]
    assert rec["notes"][0].startswith(NOTE)
    assert not any("no photons on detector" in n for n in rec["notes"])


def test_chosen_detectors_give_the_numbers_of_the_same_pair_given(v30_records) -> None:
    auto, given = dict(v30_records["auto"]), v30_records["given"]
    assert auto.pop("notes")[1:] == given.pop("notes")
    assert auto == given


def test_replay_ends_with_the_result_of_spad_analyze(v30_records) -> None:
    assert v30_records["replay"] == v30_records["auto"]


def test_explicit_detectors_are_kept(capsys) -> None:
    assert main(["analyze", str(PQ / "v30_t2.ptu"), "--json", "--detectors", "1", "2"]) == 0
    rec = _records(capsys)[0]
    assert rec["g2_zero"] is None
    assert any("no photons on detector 2" in n for n in rec["notes"])
    assert not any("correlated" in n for n in rec["notes"])


def test_v20_t2_still_has_no_g2(capsys) -> None:
    assert main(["analyze", str(PQ / "v20_t2.ptu"), "--json"]) == 0
    rec = _records(capsys)[0]
    assert rec["g2_zero"] is None
    assert any("no photons on detector 2: no g2" in n for n in rec["notes"])
    assert not any("correlated" in n for n in rec["notes"])


def test_batch_settings_choose_only_when_detectors_left_out(tmp_path) -> None:
    from spad.app.commands.batch import load_settings

    assert load_settings(None)[0].auto_detectors
    f = tmp_path / "s.json"
    f.write_text('{"detectors": [1, 2]}')
    s = load_settings(f)[0]
    assert s.detectors == (1, 2) and not s.auto_detectors


def test_periodic_laser_sync_file_correlates_its_two_detectors(tmp_path) -> None:
    """A HydraHarp T2 file with the laser on the sync input and the APDs on channels 1 and 3
    (detector 2 unwired): those two are correlated, never the sync."""
    path = _write_ptu(tmp_path / "laser_sync.ptu",
                      _t2_chunk(_laser_sync(1_000_000), {1: 20_000, 3: 15_000}))
    r = analyze_particle(path)
    assert r.photons.n_photons > 0
    assert r.photons.notes[0].startswith(
        "detectors 1 and 3 correlated: detector 2 recorded nothing")
    assert r.photons.correlation is not None
    assert r.photons.correlation.counts.sum() > 0


def test_an_open_reader_is_read_not_the_file_again(monkeypatch) -> None:
    """analyze_particle opens the recording once: the detector choice reads its first chunk
    from the analysis' reader (the same choice as from the path)."""
    s = AnalysisSettings()
    from_path = detectors_for_file(PQ / "v30_t2.ptu", s)
    opened = []
    real_open = spad.open

    def counting_open(path):  # noqa: ANN001, ANN202
        opened.append(Path(path).name)
        return real_open(path)

    with real_open(PQ / "v30_t2.ptu") as reader:
        monkeypatch.setattr(spad, "open", counting_open)
        from_reader = detectors_for_file(PQ / "v30_t2.ptu", s, reader)
    assert opened == []
    assert from_reader[0].detectors == from_path[0].detectors == (0, 1)
    assert from_reader[1] == from_path[1]
    result = analyze_particle(PQ / "v30_t2.ptu", s)
    assert opened == ["v30_t2.ptu"]
    assert result.photons.notes[0] == from_path[1][0]
