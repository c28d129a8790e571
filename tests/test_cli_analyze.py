"""``spad analyze`` end to end on simulated particle files and a real recording."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spad.app.cli import main
from tests.conftest import DATA

FIELDS = {"file", "duration_s", "photons", "count_rate_cps", "g2_zero", "g2_zero_err",
          "g2_zero_gated", "lifetime_ns", "lifetime_err_ns", "on_fraction", "n_levels",
          "alpha_on", "alpha_off", "peak_ev", "peak_nm", "fwhm_mev", "classification"}


@pytest.fixture(scope="module")
def particles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("particles")
    out = {}
    for kind, seed in (("monomer", 1), ("dimer", 2)):
        path = folder / f"{kind}.h5"
        assert main(["simulate", "--particle", kind, "--duration", "15", "--seed", str(seed),
                     "-o", str(path)]) == 0
        out[kind] = path
    return out


def _records(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_json_lines_and_verdicts(particles, capsys, tmp_path) -> None:
    code = main(["analyze", str(particles["monomer"]), str(particles["dimer"]), "--json",
                 "--jobs", "1", "--report", str(tmp_path / "report")])
    assert code == 0
    recs = {Path(r["file"]).stem: r for r in _records(capsys)}
    assert set(recs) == {"monomer", "dimer"}
    for r in recs.values():
        assert FIELDS <= set(r)
        assert r["peak_ev"] is not None and r["fwhm_mev"] is not None
        assert set(r["classification"]) >= {"label", "probability"}
    assert recs["monomer"]["g2_zero"] < 0.25 < recs["dimer"]["g2_zero"]
    assert recs["monomer"]["classification"]["label"] == "monomer"
    assert recs["dimer"]["classification"]["label"] == "dimer"
    # the dimer is red-shifted relative to the monomer
    assert recs["dimer"]["peak_ev"] < recs["monomer"]["peak_ev"]
    rep = tmp_path / "report"
    for name in ("monomer.png", "dimer.png", "population.csv", "population.png",
                 "population.json"):
        assert (rep / name).stat().st_size > 0
    assert len((rep / "population.csv").read_text().splitlines()) == 3


def test_photons_only_file_and_bad_file_in_one_batch(capsys, tmp_path) -> None:
    bad = tmp_path / "garbage.ptu"
    bad.write_bytes(b"PQTTTR\0\0" + b"\x07" * 100)
    real = DATA / "picoquant-sample-data" / "v20_t3.ptu"
    code = main(["analyze", str(real), str(bad), "--json", "--jobs", "2"])
    captured = capsys.readouterr()
    assert code == 1
    errors = [line for line in captured.err.splitlines() if line.startswith("spad: error:")]
    assert len(errors) == 1 and "garbage.ptu" in errors[0]
    assert "Traceback" not in captured.err
    (rec,) = [json.loads(line) for line in captured.out.splitlines()]
    assert rec["peak_ev"] is None and rec["fwhm_mev"] is None
    assert rec["g2_zero_raw"] == pytest.approx(0.15, abs=0.05)
    assert rec["classification"]["model"] == "photons"


def test_save_stores_results_in_the_particle_file(particles, capsys, tmp_path) -> None:
    import shutil

    import h5py

    from tests.conftest import DATA

    ptu = tmp_path / "v20_t3.ptu"
    shutil.copy(DATA / "picoquant-sample-data" / "v20_t3.ptu", ptu)
    h5 = tmp_path / "monomer.h5"
    shutil.copy(particles["monomer"], h5)
    assert main(["analyze", str(h5), str(ptu), "--json", "--jobs", "1", "--save"]) == 0
    recs = {Path(r["file"]).name: r for r in _records(capsys)}
    with h5py.File(h5, "r") as f:
        g = f["user/analysis"]
        assert g["summary/g2_zero"][()] == recs["monomer.h5"]["g2_zero"]
        assert g["classification/label"][()].decode() == "monomer"
        assert g["trace/counts"].shape[0] == 2
        assert json.loads(g["result_json"][()])["record"]["file"] == str(h5)
        assert "photon_data" in f  # the recording itself is untouched
    assert ptu.read_bytes() == (DATA / "picoquant-sample-data" / "v20_t3.ptu").read_bytes()
    with h5py.File(tmp_path / "v20_t3.user.h5", "r") as f:
        assert f["user/analysis/summary/photons"][()] == 77883


def test_readable_summary(particles, capsys) -> None:
    assert main(["analyze", str(particles["monomer"]), "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "verdict" in out and "g2(0)" in out and "spectrum     peak" in out


def test_spectrum_count_must_match_files(particles, capsys) -> None:
    code = main(["analyze", str(particles["monomer"]), str(particles["dimer"]),
                 "--spectrum", str(particles["monomer"])])
    assert code == 2
    assert "--spectrum given 1 times for 2 files" in capsys.readouterr().err


def test_bleached_tail_roi_and_real_emitter_fit_quality(tmp_path, capsys) -> None:
    import h5py

    path = tmp_path / "bleach.h5"
    assert main(["simulate", "--particle", "monomer", "--duration", "12", "--seed", "6",
                 "--bleach-s", "7", "-o", str(path)]) == 0
    with h5py.File(path, "r") as f:
        end = float(f["user/ground_truth/emitters/0/emission_end_s"][()])
    real = DATA / "picoquant-sample-data" / "v20_t3.ptu"
    capsys.readouterr()
    assert main(["analyze", str(path), str(real), "--json", "--jobs", "1"]) == 0
    sim, rec = _records(capsys)
    assert sim["roi_source"] == "auto" and abs(sim["roi_end_s"] - end) < 0.05
    assert sim["duration_s"] == pytest.approx(sim["roi_end_s"] - sim["roi_start_s"])
    # the real single emitter: no burst, no dark tail, a decay fit without correlated residuals
    assert rec["roi_source"] == "whole" and rec["n_bursts"] == 0
    assert rec["lifetime_durbin_watson"] > rec["lifetime_dw_bound_5pct"]
    assert 0.8 < rec["lifetime_chi2_reduced"] < 1.2
    assert rec["switching_rate_hz"] > 0
    assert main(["analyze", str(path), "--json", "--jobs", "1", "--roi", "1:5"]) == 0
    (manual,) = _records(capsys)
    assert manual["roi_source"] == "set" and manual["duration_s"] == pytest.approx(4.0)
    assert main(["analyze", str(path), "--roi", "5:1"]) == 2
    assert "--roi" in capsys.readouterr().err


def test_delay_ns_picks_the_coincidence_peak(capsys) -> None:
    """--delay-ns on the real single emitter: the peak nearest the given delay is the one the
    data pick (-2.5 ns), and a delay one period (200 ns) away reads a side peak (~1)."""
    real = str(DATA / "picoquant-sample-data" / "v20_t3.ptu")
    assert main(["analyze", real, "--json", "--jobs", "1", "--delay-ns", "-2"]) == 0
    near = _records(capsys)[0]
    assert near["g2_zero_delay_s"] == pytest.approx(-2.5e-9, abs=0.5e-9)
    assert near["g2_zero"] < 0.3
    assert main(["analyze", real, "--json", "--jobs", "1", "--delay-ns", "198"]) == 0
    side = _records(capsys)[0]
    assert side["g2_zero_delay_s"] == pytest.approx(197.5e-9, abs=1e-9)
    assert side["g2_zero_raw"] > 0.6


@pytest.fixture()
def held_collection():  # noqa: ANN201
    """The ``spad`` program's start-up hold on garbage collection, undone afterwards."""
    import gc

    from spad.app import memory

    memory.hold_collection()
    assert not gc.isenabled()
    yield
    memory.resume_collection()
    gc.unfreeze()
    assert gc.isenabled()


def test_collection_resumes_after_the_first_particle(particles, capsys, monkeypatch,
                                                     held_collection) -> None:
    """The start-up's hold on garbage collection (spad.app.memory.hold_collection) lasts
    until ``spad analyze``'s first particle is analysed; the others run with collection on."""
    import gc

    from spad.app.commands import analyze

    seen = []
    one = analyze._one

    def spy(*args):  # noqa: ANN002, ANN202
        seen.append(gc.isenabled())
        return one(*args)

    monkeypatch.setattr(analyze, "_one", spy)
    files = [str(particles["monomer"]), str(particles["dimer"]), str(particles["monomer"])]
    assert main(["analyze", *files, "--json", "--jobs", "1"]) == 0
    assert seen == [False, True, True]
    assert gc.isenabled()
    assert len(_records(capsys)) == 3


def test_collection_resumes_before_workers_fork(particles, capsys, monkeypatch,
                                                held_collection) -> None:
    """Worker processes would inherit the hold: it ends before they are started."""
    import contextlib
    import gc

    from spad.app.commands import analyze

    seen = []

    @contextlib.contextmanager
    def mapped(func, jobs, settings, args):  # noqa: ANN001, ANN202
        seen.append(gc.isenabled())
        yield (func(p, s, settings) for p, s in jobs)

    monkeypatch.setattr(analyze, "_mapped", mapped)
    assert main(["analyze", str(particles["monomer"]), str(particles["dimer"]), "--json",
                 "--jobs", "2"]) == 0
    assert seen == [True]
    assert len(_records(capsys)) == 2


def test_other_commands_run_with_collection_on(particles, monkeypatch,
                                               held_collection) -> None:
    """A command that does not set ``collect_late`` (``spad simulate``) runs with garbage
    collection on: the hold ends when the arguments are parsed."""
    import gc

    from spad.app.commands import simulate

    seen = []
    run = simulate.run

    def spy(args):  # noqa: ANN001, ANN202
        seen.append(gc.isenabled())
        return run(args)

    monkeypatch.setattr(simulate, "run", spy)
    out = particles["monomer"].with_name("again.h5")
    assert main(["simulate", "--duration", "1", "--seed", "3", "--spectrum-s", "0",
                 "-o", str(out)]) == 0
    assert seen == [True]
