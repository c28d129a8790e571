"""``spad info`` and ``spad convert`` on real PicoQuant files, Photon-HDF5 files and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

import spad
from spad.app.cli import main
from spad.app.commands.convert import convert
from spad.app.commands.info import si
from spad.formats.photon_hdf5 import PhotonHdf5Reader
from spad.formats.photon_hdf5_writer import write_photon_hdf5
from spad.photons import SYNC, PhotonChunk, Timing

DATA = Path(__file__).parent / "data" / "picoquant-sample-data"
SPAD = Path(sys.executable).with_name("spad")

# Photons per spad detector, counted independently by phconvert's PicoQuant reader
# (its channels are numbered from 0) and in tests/data/README.md.
EXPECTED = {
    "v20_t3.ptu": ("PTU", "T3", {"1": 45012, "2": 32871}),
    "v20_t2.ptu": ("PTU", "T2", {"1": 305565}),
    "v20.ht3": ("HT3", "T3", None),
}


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def read_all(path: Path) -> spad.Measurement:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with spad.open(path) as r:
            return r.read()


def assert_one_error_line(err: str, path: Path | str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"spad: error: {path}: ")
    assert "Traceback" not in err


# --------------------------------------------------------------------------------------------
# spad info


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_info_json_on_real_files(capsys: pytest.CaptureFixture[str], name: str) -> None:
    fmt, mode, photons = EXPECTED[name]
    code, out, err = run_cli(capsys, "info", DATA / name, "--json")
    assert code == 0, err
    s = json.loads(out)
    assert (s["format"], s["mode"]) == (fmt, mode)
    if photons is not None:
        assert s["photons"] == photons
    m = read_all(DATA / name)
    counts = np.bincount(m.photons.detectors, minlength=256)
    assert s["n_photons"] == m.photons.n_photons
    assert s["photons"] == {str(d): int(counts[d]) for d in np.flatnonzero(counts) if d != SYNC}
    assert s["acquisition_time_s"] == m.meta.acquisition_time
    for det, n in s["photons"].items():
        assert s["count_rate_cps"][det] == pytest.approx(n / s["duration_s"])
    assert s["sync_rate_hz"] == m.meta.sync_rate
    assert s["software"] == m.meta.software and s["creation_time"] == m.meta.creation_time


def test_info_text_is_aligned(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "info", DATA / "v20_t3.ptu")
    assert code == 0
    lines = out.splitlines()
    values_at = {len(line) - len(line[line.index("  "):].lstrip()) for line in lines}
    assert len(values_at) == 1  # every value starts in the same column
    text = "\n".join(lines)
    assert "HydraHarp2T3" in text and "SymPhoTime 64" in text
    assert "45,012 photons" in text and "4,501.2 cps" in text
    assert "5 MHz (period 200 ns)" in text and "64 ps" in text


def test_info_t2_sync_events_and_early_stop(capsys: pytest.CaptureFixture[str]) -> None:
    """PicoHarp T2: the sync input is detector 0; the run stopped after 7.65 of 60 s."""
    code, out, _ = run_cli(capsys, "info", DATA / "v30_t2.ptu", "--json")
    s = json.loads(out)
    assert code == 0 and s["mode"] == "T2"
    assert s["sync_events"] == 531477 and s["photons"] == {"1": 388700}
    assert s["duration_s"] == pytest.approx(s["span_s"]) and s["span_s"] < 8
    assert any("count rates use the span" in w for w in s["warnings"])


def test_info_markers_per_channel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = Timing("T3", 1e-7, 1e-11, 1e-7, 10000)
    path = tmp_path / "m.h5"
    write_photon_hdf5(path, PhotonChunk(t, [1, 2, 3], [1, 1, 2], [5, 6, 7],
                                        [1, 2, 2, 9], [1, 4, 4, 4]))
    code, out, _ = run_cli(capsys, "info", path, "--json")
    s = json.loads(out)
    assert code == 0 and s["markers"] == {"1": 1, "4": 3} and s["n_markers"] == 4
    code, out, _ = run_cli(capsys, "info", path)
    assert "4 (ch 1: 1, ch 4: 3)" in out


def test_si_prefixes() -> None:
    assert si(6.4e-11, "s") == "64 ps"
    assert si(4999960.0, "Hz") == "5 MHz"
    assert si(1.0, "s") == "1 s" and si(0, "s") == "0 s" and si(None, "s") == "unknown"
    assert si(999.9e-9, "s") == "999.9 ns" and si(999.97e-9, "s") == "1 us"


@pytest.mark.parametrize("content", ["garbage", "truncated_ptu", "truncated_h5", "missing",
                                     "plain_hdf5"])
def test_info_bad_input_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 content: str) -> None:
    path = tmp_path / "bad.ptu"
    if content == "garbage":
        path.write_bytes(b"\x00\x01 not a time-tag file at all")
    elif content == "truncated_ptu":
        path.write_bytes((DATA / "v20_t3.ptu").read_bytes()[:1000])
    elif content == "truncated_h5":
        good = tmp_path / "good.h5"
        write_photon_hdf5(good, PhotonChunk(Timing("T2", 1e-12), np.arange(50_000),
                                            np.ones(50_000)))
        path = tmp_path / "bad.h5"
        path.write_bytes(good.read_bytes()[:4000])
    elif content == "plain_hdf5":
        path = tmp_path / "plain.h5"
        with h5py.File(path, "w") as f:
            f["data"] = np.arange(3)
    code, out, err = run_cli(capsys, "info", path)
    assert code == 2 and out == ""
    assert_one_error_line(err, path)


def test_info_subprocess(tmp_path: Path) -> None:
    ok = subprocess.run([str(SPAD), "info", str(DATA / "v20_t3.ptu"), "--json"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["photons"] == {"1": 45012, "2": 32871}
    bad = tmp_path / "x.ptu"
    bad.write_bytes(b"PQTTTR\0\0" + b"\xff" * 40)
    fail = subprocess.run([str(SPAD), "info", str(bad)], capture_output=True, text=True,
                          timeout=120)
    assert fail.returncode == 2 and fail.stdout == ""
    assert_one_error_line(fail.stderr, bad)


# --------------------------------------------------------------------------------------------
# spad convert


@pytest.mark.parametrize("name", ["v20_t3.ptu", "v30_t2.ptu", "v20.ht3"])
def test_convert_to_h5_and_back(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                name: str) -> None:
    src = read_all(DATA / name)
    h5 = tmp_path / "out.h5"
    code, out, err = run_cli(capsys, "convert", DATA / name, h5)
    assert code == 0, err
    assert f"{len(src.photons):,} events" in out
    conv = read_all(h5)
    assert conv.photons.equals(src.photons)
    assert conv.meta.acquisition_time == src.meta.acquisition_time
    assert conv.meta.software == src.meta.software
    assert conv.meta.creation_time == src.meta.creation_time
    ptu = tmp_path / "back.ptu"
    code, _, err = run_cli(capsys, "convert", h5, ptu)
    assert code == 0, err
    back = read_all(ptu)
    assert back.photons.equals(src.photons)
    assert back.meta.record_type == f"HydraHarp2{src.meta.mode}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.ptu", "out.h5"]


def test_convert_keeps_markers_and_sync(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    t2 = Timing("T2", 1e-12, sync_period=1e-7)
    sync = np.arange(0, 10_000_000, 100_000)
    phot = np.array([150, 250_020, 5_000_001])
    ts = np.concatenate([sync, phot])
    det = np.concatenate([np.zeros(sync.size), [1, 2, 1]])
    order = np.argsort(ts, kind="stable")
    chunk = PhotonChunk(t2, ts[order], det[order], None, [30, 4_000_000], [1, 8])
    h5 = tmp_path / "in.hdf5"
    write_photon_hdf5(h5, chunk)
    out = tmp_path / "out.ptu"
    code, _, err = run_cli(capsys, "convert", h5, out, "--record-type", "HydraHarp2T2")
    assert code == 0, err
    back = read_all(out)
    assert back.photons.equals(chunk)
    again = tmp_path / "again.h5"
    assert run_cli(capsys, "convert", out, again)[0] == 0
    assert PhotonHdf5Reader(again).read().photons.equals(chunk)


def test_convert_explicit_format_and_progress(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data.bin"
    n, n_markers = convert(str(DATA / "v20_t3.ptu"), str(out), "h5", progress=True)
    err = capsys.readouterr().err
    assert "rec" in err  # the progress bar went to stderr
    assert n == 77883 and n_markers == 0
    assert PhotonHdf5Reader(out).meta.n_records == 77883


@pytest.mark.parametrize("case", ["same_file", "bad_extension", "wrong_record_type",
                                  "record_type_for_h5", "missing_input"])
def test_convert_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
                          ) -> None:
    src = tmp_path / "in.ptu"
    src.write_bytes((DATA / "v20_t3.ptu").read_bytes())
    args: list[object] = ["convert", src, tmp_path / "out.h5"]
    if case == "same_file":
        args = ["convert", src, tmp_path / "." / "in.ptu", "--format", "ptu"]
        culprit = tmp_path / "." / "in.ptu"
    elif case == "bad_extension":
        args = ["convert", src, tmp_path / "out.txt"]
        culprit = tmp_path / "out.txt"
    elif case == "wrong_record_type":
        args = ["convert", src, tmp_path / "out.ptu", "--record-type", "HydraHarp2T2"]
        culprit = src
    elif case == "record_type_for_h5":
        args += ["--record-type", "HydraHarp2T3"]
        culprit = tmp_path / "out.h5"
    else:
        args = ["convert", tmp_path / "nothing.ptu", tmp_path / "out.h5"]
        culprit = tmp_path / "nothing.ptu"
    before = src.read_bytes()
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and out == ""
    assert_one_error_line(err, culprit)
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ptu"]  # nothing left behind


def test_failed_conversion_keeps_existing_output(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Bad photons found mid-stream: no partial file, and the old OUT is untouched."""
    t = Timing("T3", 1e-7, 1e-11, 1e-7, 10000)
    bad = tmp_path / "bad.h5"
    n = 3 << 20  # several conversion chunks, the defect in the last one
    write_photon_hdf5(bad, PhotonChunk(t, np.arange(n), np.ones(n), np.zeros(n)))
    with h5py.File(bad, "a") as f:
        f["photon_data/timestamps"][n - 10] = 0
    out = tmp_path / "out.ptu"
    out.write_bytes(b"previous result")
    code, _, err = run_cli(capsys, "convert", bad, out)
    assert code == 2
    assert_one_error_line(err, bad)
    assert "decrease" in err
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.h5", "out.ptu"]


def test_subcommands_listed() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
