"""Surveys on the simulated rig: slide, scan, finding, optimiser, visits, resume, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from spad.app.acquisition import AcquisitionSettings
from spad.app.rig import open_rig
from spad.app.survey import Survey, SurveyLog, SurveySettings
from spad.app.survey_scan import Area, Candidate, count_rate, find_particles, optimise, raster_scan
from spad.config import ConfigError, Rig, SlideSettings, StageSettings, parse_rig
from spad.errors import SpadError


def _rig(n: int = 6, size: float = 4e-6, seed: int = 5, **slide):
    return open_rig(Rig(stage=StageSettings(), slide=SlideSettings(
        n_particles=n, size_m=size, seed=seed, **slide)), realtime=False)


def _area(size: float = 4e-6, step: float = 100e-9) -> Area:
    h = size / 2 + 0.5e-6
    return Area(100e-6 - h, 100e-6 - h, 100e-6 + h, 100e-6 + h, step, 0.005)


def test_count_rate_follows_the_psf():
    with _rig(n=1) as rig:
        p = rig.slide.particles[0]
        rates = []
        for dx in (0.0, 61e-9, 122e-9, 1e-6):
            rig.stage.move_to(x_m=p.x_m + dx, y_m=p.y_m)
            rates.append(count_rate(rig.tagger, 0.2))
        assert rates[0] > 5e3
        # exp(-1/2) and exp(-2) of the centre (within Poisson noise), dark counts far away
        assert rates[1] / rates[0] == pytest.approx(np.exp(-0.5), rel=0.15)
        assert rates[2] / rates[0] == pytest.approx(np.exp(-2), rel=0.3)
        assert rates[3] < 0.02 * rates[0]


def test_scan_finds_every_particle_once():
    with _rig(n=8) as rig:
        area = _area()
        rows = []
        image = raster_scan(rig.stage, rig.tagger, area, on_row=lambda i, img: rows.append(i))
        assert rows == list(range(area.shape[0])) and np.isfinite(image).all()
        found = find_particles(image, area)
        truth = rig.slide.particles
        nearest = [int(np.argmin([np.hypot(p.x_m - c.x_m, p.y_m - c.y_m) for p in truth]))
                   for c in found]
        dist = [np.hypot(truth[k].x_m - c.x_m, truth[k].y_m - c.y_m)
                for k, c in zip(nearest, found, strict=True)]
        assert len(found) == len(truth) == len(set(nearest))      # all, no duplicates
        assert max(dist) < 60e-9


def test_finding_respects_threshold_and_separation():
    area = Area(0, 0, 2e-6, 2e-6, 100e-9, 0.01)
    yy, xx = np.mgrid[0:21, 0:21] * 100e-9
    spot = lambda x, y, a: a * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 61e-9 ** 2))  # noqa: E731
    img = 100 + spot(0.5e-6, 0.5e-6, 2e4) + spot(0.9e-6, 0.5e-6, 1e4) + spot(1.5e-6, 1.5e-6,
                                                                                 3e3)
    got = find_particles(img, area, min_separation_m=0.5e-6)
    assert [round(c.x_m * 1e7) for c in got] == [5, 15]          # the close pair is one
    assert len(find_particles(img, area, min_separation_m=0.3e-6)) == 3
    assert len(find_particles(img, area, threshold_hz=5e3, min_separation_m=0.3e-6)) == 2


def test_optimiser_centres_and_reports_an_empty_spot():
    with _rig(n=3) as rig:
        p = rig.slide.particles[0]
        opt = optimise(rig.stage, rig.tagger, p.x_m + 150e-9, p.y_m - 100e-9)
        assert opt.found
        assert np.hypot(opt.x_m - p.x_m, opt.y_m - p.y_m) < 15e-9
        assert opt.sigma_m == pytest.approx(61e-9, rel=0.2)
        pos = rig.stage.get_position()
        assert (pos["x"], pos["y"]) == pytest.approx((opt.x_m, opt.y_m), abs=1e-12)
        empty = optimise(rig.stage, rig.tagger, 90e-6, 90e-6)   # nothing there
        assert not empty.found and empty.note


def test_survey_records_each_particle_once_and_skips_bleached(tmp_path):
    settings = SurveySettings(area=_area(), acquisition=AcquisitionSettings(
        duration_s=4.0, until_confident=0.95))
    with _rig(n=4, seed=11, fragile_fraction=0.5) as rig:
        fragile = {p.index for p in rig.slide.particles if p.bleach_dose_s is not None}
        assert fragile and len(fragile) < 4
        survey = Survey(rig, tmp_path, settings)
        events = []
        survey.add_callback(lambda ev: events.append(ev.kind))
        report = survey.run()
        recorded = rig.tagger.focus.history
    assert report["candidates"] == 4 and report["pending"] == 0
    assert report["done"] == 4 - len(fragile) and report["skipped"] == len(fragile)
    # every recording was of a particle, each of a different one, none of a bleached one
    assert None not in recorded and len(set(recorded)) == len(recorded) == report["done"]
    assert not fragile & set(recorded)
    assert all("bleached" in n for n in report["skipped_notes"].values())
    files = sorted(tmp_path.glob("p*.h5"))
    assert len(files) == report["done"]
    from spad.formats.photon_hdf5 import read_user_group
    stage = read_user_group(files[0], "acquisition")["stage"]
    assert 90e-6 < stage["x_m"] < 110e-6
    assert (tmp_path / "report" / "survey.png").stat().st_size > 10_000
    stats = json.loads((tmp_path / "report" / "survey.json").read_text())
    assert sum(stats["verdicts"].values()) == report["done"]
    assert {"scan_row", "candidates", "visit", "progress", "particle", "finished"} <= set(events)


def test_fast_rig_runs_camera_stage_and_tagger_on_one_simulated_clock(tmp_path):
    from spad.simulators.instruments import ManualClock, WallClock

    from spad.app.acquisition import Acquisition

    with _rig(n=1, seed=2) as rig:
        clock = rig.tagger.clock
        assert isinstance(clock, ManualClock)
        assert rig.camera.clock is clock and rig.stage.motion.clock is clock
        assert rig.spectrograph.clock is clock
        p = rig.slide.particles[0]
        rig.stage.move_to(x_m=p.x_m, y_m=p.y_m)
        t0 = clock.now()
        out = Acquisition(rig, AcquisitionSettings(duration_s=2.5, exposure_s=0.5),
                          path=tmp_path / "p.h5", analysis_worker=False).run()
        # the clock moved by the photons delivered, not by the machine's speed: 2.5 s hold
        # four whole 0.5-s exposures (each plus its 1.5 ms read-out), whatever the wall time
        assert clock.now() - t0 == pytest.approx(2.5)
        assert out.state.frames == 4
        assert out.result.record()["peak_ev"] is not None
    with open_rig(Rig(stage=StageSettings(), slide=SlideSettings(n_particles=1)),
                  realtime=True) as rig:
        assert isinstance(rig.camera.clock, WallClock) and rig.tagger.clock is not None


def test_fast_survey_stops_each_particle_when_sure(tmp_path):
    """On the simulated clock with the live analysis in step with the photons, stop-when-sure
    ends the recordings as in real time on a fast enough machine: well before the cap."""
    settings = SurveySettings(area=_area(3e-6), acquisition=AcquisitionSettings(
        duration_s=30.0, until_confident=0.95))
    with _rig(n=2, size=3e-6, seed=3) as rig:
        survey = Survey(rig, tmp_path, settings, analysis_worker=False)
        kinds = []
        survey.add_callback(lambda ev: kinds.append(ev.kind))
        report = survey.run()
    assert report["done"] == 2
    for r in survey.records.values():
        assert r["stop_reason"] == "confident" and r["recorded_s"] < 15, r
        assert r["peak_ev"] is not None
    assert kinds.index("visit") < kinds.index("recording") < kinds.index("particle")


def test_survey_refuses_a_folder_with_a_survey_and_a_rig_without_stage(tmp_path):
    SurveyLog(tmp_path).append("scan", area=_area().to_dict())
    with _rig(n=1) as rig, pytest.raises(SpadError, match="--resume"):
        Survey(rig, tmp_path)
    with open_rig(None, realtime=False) as rig, pytest.raises(SpadError, match="no sample stage"):
        Survey(rig, tmp_path / "new")


def test_resume_redoes_only_the_cut_off_particle(tmp_path):
    """A log as kill -9 leaves it: #1 done, #2 started (file cut off), #3 not started."""
    area = _area(size=3e-6)
    settings = SurveySettings(area=area, acquisition=AcquisitionSettings(
        duration_s=3.0, until_confident=0.95))
    with _rig(n=3, size=3e-6, seed=4) as rig:
        image = raster_scan(rig.stage, rig.tagger, area)
        found = find_particles(image, area)
        assert len(found) == 3
        np.savez(tmp_path / "scan.npz", image=image, xs=area.xs, ys=area.ys)
        log = SurveyLog(tmp_path)
        log.append("scan", area=area.to_dict())
        log.append("candidates", candidates=[c.to_dict() for c in found])
        log.append("visit", id=1, particle="p001", file="p001_x.h5")
        log.append("end", id=1, status="done", particle="p001", file="p001_x.h5",
                   verdict="monomer", position={"x": 1.0}, offset_m=[0.0, 0.0],
                   record={"file": "p001_x.h5", "classification": {"label": "monomer"},
                           "peak_ev": 2.0, "g2_zero": 0.1, "lifetime_ns": 30.0, "error": None})
        log.append("visit", id=2, particle="p002", file="p002_x.h5")
        (tmp_path / "p002_x.h5").write_bytes(b"cut off")
        survey = Survey(rig, tmp_path, settings, resume=True)
        assert [c.status for c in survey.candidates] == ["done", "pending", "pending"]
        visits = []
        survey.add_callback(lambda ev: visits.append(ev.data.id) if ev.kind == "visit" else 0)
        report = survey.run()
    assert visits == [2, 3]
    assert report["done"] == 3 and report["cut_off_files"] == ["p002_x.h5"]
    assert (tmp_path / "p002_x.h5").read_bytes() == b"cut off"       # kept, never overwritten
    assert len(list(tmp_path.glob("p00[3-4]_*.h5"))) == 2


def test_edited_candidate_list_is_what_is_visited(tmp_path):
    with _rig(n=2, size=2e-6, seed=8) as rig:
        settings = SurveySettings(area=_area(size=2e-6), acquisition=AcquisitionSettings(
            duration_s=2.0))
        survey = Survey(rig, tmp_path, settings)
        p = rig.slide.particles[1]
        survey.set_candidates([Candidate(7, p.x_m, p.y_m)])
        extra = survey.add_candidate(90e-6, 90e-6)          # an empty spot, added by hand
        assert [c.id for c in survey.candidates] == [7, 8] and extra.id == 8
        survey.image = np.zeros((2, 2))                     # scan done: visit the list
        survey.area = settings.area
        report = survey.run()
        assert rig.tagger.focus.history == [1]
    assert report["done"] == 1 and report["skipped"] == 1   # nothing recorded at the empty spot


def test_rig_file_stage_and_slide_tables():
    rig = parse_rig('[stage]\nbackend = "pi"\nconnection = "tcp"\naddress = "10.0.0.5"\n'
                    '[slide]\nn_particles = 12\ndimer_fraction = 0.25\nneck_nm = [5.0, 7.0]\n',
                    "rig.toml")
    assert rig.stage.backend == "pi" and rig.stage.address == "10.0.0.5"
    assert rig.slide.n_particles == 12 and rig.slide.neck_nm == (5.0, 7.0)
    with pytest.raises(ConfigError, match=r"rig.toml: \[stage\] address"):
        parse_rig('[stage]\nbackend = "pi"\nconnection = "tcp"\n', "rig.toml")
    with pytest.raises(ConfigError, match=r"\[slide\] dimer_fraction: 2"):
        parse_rig("[slide]\ndimer_fraction = 2.0\n", "rig.toml")
    assert parse_rig("").stage is None


def test_mix_rig_gives_a_new_particle_each_recording():
    with open_rig(Rig(slide=SlideSettings(seed=3, dimer_fraction=0.5)), realtime=False) as rig:
        peaks, kinds = [], []
        for _ in range(6):
            rig.tagger.start(1.0)
            while rig.tagger.read() is not None:
                pass
            p = rig.tagger.particle
            kinds.append(p.kind)
            peaks.append(rig.camera.scene.lines[0].peak_ev)
    assert len(set(peaks)) == 6 and {"monomer", "dimer"} == set(kinds)


def test_cli_kill_9_then_resume_completes_without_redoing(tmp_path):
    out = tmp_path / "s"
    base = [sys.executable, "-m", "spad.app.cli", "survey", "-o", str(out), "--particles", "3",
            "--fast", "--duration", "3"]
    cmd = [*base, "--seed", "4"]
    # its own session: kill -9 takes the whole process group, the survey and its analysis
    # worker, as a crash of the machine would (and leaves no process behind)
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
    log = out / "survey.jsonl"
    try:
        deadline = time.monotonic() + 300
        # kill while the second particle is being recorded (one end, two visits)
        while time.monotonic() < deadline and child.poll() is None:
            text = log.read_text() if log.exists() else ""
            if text.count('"event": "end"') == 1 and text.count('"event": "visit"') == 2:
                break
            time.sleep(0.05)
        assert child.poll() is None, child.stderr.read().decode()
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        child.stderr.close()
    done_before = [json.loads(x)["id"] for x in log.read_text().splitlines()
                   if '"event": "end"' in x]
    # the slide's seed comes back from the log
    res = subprocess.run([*base, "--resume"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    entries = [json.loads(x) for x in log.read_text().splitlines()]
    visits = [e["id"] for e in entries if e["event"] == "visit"]
    ends = [e["id"] for e in entries if e["event"] == "end"]
    assert sorted(set(ends)) == [1, 2, 3] and len(ends) == 3       # each finished once
    assert visits.count(done_before[0]) == 1                       # never redone
    assert any(e["event"] == "resume" for e in entries)
    assert "recorded" in res.stderr and (out / "survey_report.json").exists()


def test_cli_errors_are_one_line(tmp_path, capsys):
    from spad.app.cli import main

    rig = tmp_path / "rig.toml"
    rig.write_text('[tagger]\nbackend = "simulated"\n')
    for args, msg in ((["--config", str(rig)], "no [stage] table"),
                      (["--area", "1,2,3"], "--area"),
                      (["--resume"], "no survey to resume"),
                      (["--dimer-fraction", "3"], "--dimer-fraction")):
        assert main(["survey", "-o", str(tmp_path / "s"), "--fast", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("spad: error:") and msg in err, err
        assert "Traceback" not in err


def test_drift_is_followed_between_particles(tmp_path):
    """The sample drifts 20 nm per second of light: up to 0.4 µm by the end of the scan and
    ~0.1 µm per particle after it, more than the optimiser's ±0.3 µm reach within a few
    particles. Centring on each particle measures the offset; the next target is corrected by
    it, so every particle is still found where the optimiser looks. (Without the correction
    the same survey recorded 2 of the 5 and lost the others: "fitted centre outside it".)"""
    settings = SurveySettings(area=_area(size=3e-6), acquisition=AcquisitionSettings(
        duration_s=3.0))
    with _rig(n=5, size=3e-6, seed=2, drift_m_per_s=(20e-9, 20e-9)) as rig:
        survey = Survey(rig, tmp_path, settings)
        report = survey.run()
        recorded = rig.tagger.focus.history
        drifted = rig.slide.drift()
    assert report["done"] == 5 and None not in recorded and len(set(recorded)) == 5
    # the correction in use at the end: the sample has moved up and to the right since the
    # scan, by no more than it drifted in all
    assert 0.3e-6 < report["drift_m"][0] < drifted[0]
    assert 0.3e-6 < report["drift_m"][1] < drifted[1]
