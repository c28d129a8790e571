"""Photon-HDF5 reader/writer: round trips, spec validation with phconvert, foreign files, errors."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from spad.errors import FormatError
from spad.formats.photon_hdf5 import PhotonHdf5Reader, is_photon_hdf5, read_user_group
from spad.formats.photon_hdf5_writer import (
    PhotonHdf5Writer,
    write_photon_hdf5,
    write_user_group,
)
from spad.photons import SYNC, Measurement, PhotonChunk, Timing

REAL = Path(__file__).parent / "data" / "picoquant-sample-data"
T3 = Timing("T3", 2e-7, 6.4e-11, 2e-7, 3125)
T2 = Timing("T2", 1e-12, sync_period=1e-7)


def random_t3(rng: np.random.Generator, n: int, start: int = 0, n_markers: int = 0
              ) -> PhotonChunk:
    ts = start + np.cumsum(rng.integers(0, 50, n))
    mt = np.sort(rng.integers(start, int(ts[-1]) + 100, n_markers))
    return PhotonChunk(T3, ts, rng.integers(1, 3, n), rng.integers(0, 3125, n),
                       mt, rng.integers(1, 16, n_markers))


def random_t2(rng: np.random.Generator, n: int, start: int = 0) -> PhotonChunk:
    """Photons on detectors 1, 2 interleaved with sync events (detector 0) every 100 ns."""
    sync = start + np.arange(n) * 100_000
    phot = start + np.sort(rng.integers(0, n * 100_000, n // 4))
    ts = np.concatenate([sync, phot])
    det = np.concatenate([np.zeros(n, np.uint8), rng.integers(1, 3, n // 4)])
    order = np.argsort(ts, kind="stable")
    return PhotonChunk(T2, ts[order], det[order], None, [start + 5], [2])


def validate(path: Path) -> None:
    import phconvert
    import tables

    # Opened here because phconvert leaves a file it opened itself open.
    with tables.open_file(str(path)) as h5, warnings.catch_warnings():
        # Missing optional fields (author, wavelengths) are warnings, not violations.
        warnings.simplefilter("ignore")
        phconvert.hdf5.assert_valid_photon_hdf5(h5)


# --------------------------------------------------------------------------------------------
# Round trips


def test_t3_round_trip_many_chunks_with_markers(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    chunks, start = [], 0
    for _ in range(7):
        c = random_t3(rng, 1000, start, n_markers=5)
        chunks.append(c)
        start = int(c.timestamps[-1]) + 1
    path = tmp_path / "t3.h5"
    with PhotonHdf5Writer(path, T3, description="seven chunks") as w:
        for c in chunks:
            w.write(c)
    whole = PhotonChunk.concatenate(chunks)
    # Markers of chunk k may lie beyond the photons of chunk k: compare them as sorted sets.
    order = np.argsort(whole.marker_times, kind="stable")
    expected = PhotonChunk(T3, whole.timestamps, whole.detectors, whole.nanotimes,
                           whole.marker_times[order], whole.marker_channels[order])
    with PhotonHdf5Reader(path) as r:
        m = r.read()
        assert m.photons.equals(expected)
        for n in (7, 333, 1000, 10_000):
            assert PhotonChunk.concatenate(r.chunks(n)).equals(expected)
        sizes = [len(c) for c in r.chunks(333)]
        assert max(sizes) == 333 and sum(sizes) == 7000
    meta = m.meta
    assert (meta.format, meta.record_type, meta.mode) == ("Photon-HDF5", "generic", "T3")
    assert meta.timing == T3
    assert meta.sync_rate == pytest.approx(5e6)
    assert meta.n_records == 7000 and meta.comment == "seven chunks"
    span = (whole.timestamps[-1] - whole.timestamps[0]) * T3.timestamp_unit
    assert meta.acquisition_time == pytest.approx(span)
    assert meta.software == "spad" and meta.warnings == []
    assert meta.tags["setup/num_split_ch"] == 2
    validate(path)


def test_t2_sync_events_stay_detector_zero(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    a = random_t2(rng, 400)
    b = random_t2(rng, 400, start=int(a.timestamps[-1]) + 1)
    path = tmp_path / "t2.h5"
    with PhotonHdf5Writer(path, T2, acquisition_duration=12.5) as w:
        w.write(a)
        w.write(b)
    m = PhotonHdf5Reader(path).read()
    assert m.photons.equals(PhotonChunk.concatenate([a, b]))
    assert np.count_nonzero(m.photons.detectors == SYNC) == 800
    assert m.meta.mode == "T2" and m.meta.timing == T2 and m.meta.acquisition_time == 12.5
    with h5py.File(path) as f:
        assert f["photon_data/measurement_specs/detectors_specs/non_photon_id1"][()].tolist() \
            == [SYNC]
        ids = f["setup/detectors/id"][()].tolist()
        labels = [s.decode() for s in f["setup/detectors/label"][()]]
        assert labels[ids.index(SYNC)] == "sync"
        assert f["setup/detectors/counts"][()][ids.index(SYNC)] == 800
    validate(path)


def test_t2_without_sync_rate_is_valid(tmp_path: Path) -> None:
    timing = Timing("T2", 4e-12)
    chunk = PhotonChunk(timing, [1, 5, 9], [1, 2, 1])
    path = tmp_path / "nosync.h5"
    write_photon_hdf5(path, chunk, split_channels=((1,), (2,)))
    validate(path)
    m = PhotonHdf5Reader(path).read()
    assert m.meta.sync_rate is None and m.photons.equals(chunk)


def test_write_measurement_keeps_provenance(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    chunk = random_t3(rng, 50)
    src = tmp_path / "src.h5"
    write_photon_hdf5(src, chunk, description="original", software="acq", author="me")
    m = PhotonHdf5Reader(src).read()
    out = tmp_path / "copy.h5"
    write_photon_hdf5(out, m)
    copy = PhotonHdf5Reader(out).read()
    assert copy.photons.equals(m.photons)
    assert copy.meta.comment == "original" and copy.meta.software == "acq"
    assert copy.meta.creation_time == m.meta.creation_time
    assert copy.meta.acquisition_time == pytest.approx(m.meta.acquisition_time)
    validate(out)


def test_empty_stream_and_markers_only(tmp_path: Path) -> None:
    path = tmp_path / "empty.h5"
    with PhotonHdf5Writer(path, T3):
        pass
    m = PhotonHdf5Reader(path).read()
    assert len(m.photons) == 0 and m.meta.acquisition_time == 0.0
    path = tmp_path / "markers.h5"
    write_photon_hdf5(path, PhotonChunk(T3, marker_times=[3, 9], marker_channels=[1, 4]))
    m = PhotonHdf5Reader(path).read()
    assert m.photons.marker_times.tolist() == [3, 9]
    assert m.photons.marker_channels.tolist() == [1, 4]


def test_crash_keeps_flushed_chunks(tmp_path: Path) -> None:
    """A process killed after three writes leaves a readable file with all three chunks."""
    path = tmp_path / "crash.h5"
    code = f"""
import os, numpy as np
from spad.photons import PhotonChunk, Timing
from spad.formats.photon_hdf5_writer import PhotonHdf5Writer
t = Timing("T3", 2e-7, 6.4e-11, 2e-7, 3125)
w = PhotonHdf5Writer({str(path)!r}, t)
for k in range(3):
    w.write(PhotonChunk(t, np.arange(100) + 1000 * k, np.ones(100), np.zeros(100)))
os._exit(1)
"""
    subprocess.run([sys.executable, "-c", code], check=False, timeout=60)
    m = PhotonHdf5Reader(path).read()
    assert len(m.photons) == 300
    assert m.meta.acquisition_time == pytest.approx((2099 - 0) * 2e-7)


def test_writer_rejects_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "w.h5"
    with PhotonHdf5Writer(path, T3) as w:
        w.write(PhotonChunk(T3, [10, 20], [1, 2], [0, 0]))
        with pytest.raises(FormatError, match="decrease"):
            w.write(PhotonChunk(T3, [5], [1], [0]))
        with pytest.raises(ValueError, match="timing"):
            w.write(PhotonChunk(T2, [30], [1]))
    with pytest.raises(FileExistsError):
        PhotonHdf5Writer(path, T3)
    PhotonHdf5Writer(path, T3, overwrite=True).close()
    with pytest.raises(ValueError, match="lifetime"):
        PhotonHdf5Writer(tmp_path / "x.h5", T2, lifetime=True)


# --------------------------------------------------------------------------------------------
# Validation with phconvert (must be able to fail)


@pytest.mark.parametrize("breakage", ["drop_setup_field", "wrong_title", "wrong_counts",
                                      "unknown_field"])
def test_broken_files_fail_validation(tmp_path: Path, breakage: str) -> None:
    from phconvert.hdf5 import Invalid_PhotonHDF5

    path = tmp_path / "b.h5"
    write_photon_hdf5(path, random_t3(np.random.default_rng(4), 100))
    validate(path)
    with h5py.File(path, "a") as f:
        if breakage == "drop_setup_field":
            del f["setup/num_split_ch"]
        elif breakage == "wrong_title":
            f["photon_data/timestamps"].attrs["TITLE"] = np.bytes_(b"timestamps")
        elif breakage == "wrong_counts":
            f["setup/detectors/counts"][0] += 1
        else:
            f["setup"].create_dataset("laser_power", data=1.0)
    with pytest.raises((Invalid_PhotonHDF5, AssertionError)):
        validate(path)


# --------------------------------------------------------------------------------------------
# Files written by phconvert


def phconvert_file(ptu: Path, out: Path) -> dict:
    """Convert a PicoQuant file to Photon-HDF5 with phconvert itself; return its photon data."""
    import phconvert as phc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, _ = phc.loader.loadfile_ptu(str(ptu))
        pd = data["photon_data"]
        specs = pd["measurement_specs"]
        specs["measurement_type"] = "generic"
        ids = specs["detectors_specs"].pop("spectral_polarization_split_chN")
        for i, d in enumerate(ids, 1):
            specs["detectors_specs"][f"split_ch{i}"] = np.array([d], np.uint8)
        data["setup"].update(num_spectral_ch=1, num_polarization_ch=1, num_split_ch=len(ids),
                             excitation_cw=[False], excitation_alternated=[False])
        data["setup"]["detectors"]["label"] = np.array([b"APD"] * len(ids))
        if "laser_repetition_rates" not in data["setup"]:  # T2: phconvert leaves it out
            data["setup"]["lifetime"] = False
            data["setup"]["laser_repetition_rates"] = np.array([0.0])
            specs["laser_repetition_rate"] = 0.0
        data["identity"].update(author="test", author_affiliation="test")
        data["description"] = "written by phconvert"
        phc.hdf5.save_photon_hdf5(data, h5_fname=str(out), overwrite=True)
    return pd


@pytest.mark.parametrize("name", ["v20_t3.ptu", "v30_t2.ptu"])
def test_reads_phconvert_output(tmp_path: Path, name: str) -> None:
    out = tmp_path / (name + ".h5")
    pd = phconvert_file(REAL / name, out)
    assert is_photon_hdf5(out)
    m = PhotonHdf5Reader(out).read()
    np.testing.assert_array_equal(m.photons.timestamps, pd["timestamps"])
    # phconvert numbers PicoQuant channels from 0, spad from 1.
    np.testing.assert_array_equal(m.photons.detectors, pd["detectors"].astype(int) + 1)
    assert any("shifted by +1" in w for w in m.meta.warnings)
    assert m.meta.comment == "written by phconvert"
    assert m.meta.timing.timestamp_unit == pd["timestamps_specs"]["timestamps_unit"]
    if "nanotimes" in pd:
        np.testing.assert_array_equal(m.photons.nanotimes, pd["nanotimes"])
        assert m.meta.mode == "T3"
        rate = np.atleast_1d(pd["measurement_specs"]["laser_repetition_rate"])[0]
        assert m.meta.sync_rate == pytest.approx(rate)
        assert m.meta.software == "SymPhoTime 64"
    else:
        assert m.meta.mode == "T2" and m.meta.sync_rate is None


def test_phconvert_output_matches_our_ptu_reader(tmp_path: Path) -> None:
    from spad.formats import ptu
    out = tmp_path / "t3.h5"
    phconvert_file(REAL / "v20_t3.ptu", out)
    ours = PhotonHdf5Reader(out).read()
    with ptu.PtuReader(REAL / "v20_t3.ptu") as r:
        direct = r.read()
    np.testing.assert_array_equal(ours.photons.timestamps, direct.photons.timestamps)
    np.testing.assert_array_equal(ours.photons.detectors, direct.photons.detectors)
    np.testing.assert_array_equal(ours.photons.nanotimes, direct.photons.nanotimes)


def test_converted_files_are_valid(tmp_path: Path) -> None:
    """What ``spad convert`` writes (4 detectors, provenance, the PicoQuant header in /user)."""
    from spad.app.commands.convert import convert

    out = tmp_path / "ht3.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        convert(str(REAL / "v20.ht3"), str(out))
    validate(out)
    with h5py.File(out) as f:
        assert f["setup/num_split_ch"][()] == 4
        assert f["provenance/software"][()] == b"HydraHarp AcqUI"
        assert f["user/source_header/tags/SyncRate"][()] == 998898


# --------------------------------------------------------------------------------------------
# Bad input


def test_detection(tmp_path: Path) -> None:
    good = tmp_path / "g.h5"
    write_photon_hdf5(good, PhotonChunk(T3, [1], [1], [1]))
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    text = tmp_path / "t.h5"
    text.write_text("hello")
    assert is_photon_hdf5(good)
    assert not is_photon_hdf5(other)
    assert not is_photon_hdf5(text)
    assert not is_photon_hdf5(tmp_path / "missing.h5")


def _broken(tmp_path: Path, edit) -> Path:  # noqa: ANN001
    path = tmp_path / "e.h5"
    write_photon_hdf5(path, PhotonChunk(T3, [1, 2, 3, 4], [1, 2, 1, 2], [5, 6, 7, 8]))
    with h5py.File(path, "a") as f:
        edit(f)
    return path


def _set(f: h5py.File, name: str, data: np.ndarray) -> None:
    del f[name]
    f[name] = data


@pytest.mark.parametrize("edit, field", [
    (lambda f: f.__delitem__("photon_data"), "/photon_data"),
    (lambda f: f.__delitem__("photon_data/timestamps_specs/timestamps_unit"), "timestamps_unit"),
    (lambda f: f.__delitem__("photon_data/timestamps"), "/photon_data/timestamps"),
    (lambda f: f.__delitem__("photon_data/nanotimes_specs/tcspc_unit"), "tcspc_unit"),
    (lambda f: _set(f, "photon_data/detectors", np.ones(3, np.uint8)), "/photon_data/detectors"),
    (lambda f: _set(f, "photon_data/nanotimes", np.ones(5, np.uint16)), "/photon_data/nanotimes"),
    (lambda f: _set(f, "photon_data/timestamps", np.ones(4) * 0.5), "/photon_data/timestamps"),
    (lambda f: _set(f, "photon_data/timestamps_specs/timestamps_unit", 5.0), "timestamps_unit"),
])
def test_bad_files_raise_format_error(tmp_path: Path, edit, field: str) -> None:  # noqa: ANN001
    path = _broken(tmp_path, edit)
    with pytest.raises(FormatError, match=field) as exc:
        PhotonHdf5Reader(path)
    assert str(path) in str(exc.value)


def test_non_monotonic_timestamps(tmp_path: Path) -> None:
    path = _broken(tmp_path, lambda f: f["photon_data/timestamps"].__setitem__(2, 0))
    r = PhotonHdf5Reader(path)
    with pytest.raises(FormatError, match="decrease at index 2"):
        r.read()
    with pytest.raises(FormatError, match="decrease at index 2"):
        list(r.chunks(2))  # the drop is at a chunk boundary


def test_foreign_and_truncated_files(tmp_path: Path) -> None:
    text = tmp_path / "a.h5"
    text.write_bytes(b"PQTTTR\0\0" + bytes(100))
    with pytest.raises(FormatError, match="not an HDF5 file"):
        PhotonHdf5Reader(text)
    good = tmp_path / "g.h5"
    write_photon_hdf5(good, random_t3(np.random.default_rng(5), 100_000))
    cut = tmp_path / "cut.h5"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(FormatError, match=str(cut)):
        PhotonHdf5Reader(cut).read()
    with pytest.raises(FileNotFoundError):
        PhotonHdf5Reader(tmp_path / "missing.h5")


# --------------------------------------------------------------------------------------------
# /user groups


def test_user_group_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "u.h5"
    data = {
        "model": "monomer", "g2_zero": 0.08, "n_photons": 12345, "gated": True, "none": None,
        "states": ["ON", "OFF", "grey"],
        "levels": {"rates_cps": np.array([5e3, 3e4]), "dwell": {"alpha": 1.5}},
        "trace": np.arange(10, dtype=np.uint16), "lifetimes_s": [30e-9, 2e-9],
    }
    write_photon_hdf5(path, PhotonChunk(T3, [1], [1], [1]), user={"sim": data})
    back = read_user_group(path, "sim")
    assert back["model"] == "monomer" and back["g2_zero"] == 0.08
    assert back["n_photons"] == 12345 and back["gated"] is True and back["none"] is None
    assert back["states"] == ["ON", "OFF", "grey"]
    np.testing.assert_array_equal(back["levels"]["rates_cps"], [5e3, 3e4])
    assert back["levels"]["dwell"] == {"alpha": 1.5}
    assert back["trace"].dtype == np.uint16
    np.testing.assert_array_equal(back["lifetimes_s"], [30e-9, 2e-9])
    # Replacing a group, and writing next to an open file's photon data.
    write_user_group(path, "sim", {"model": "dimer"})
    assert read_user_group(path, "sim") == {"model": "dimer"}
    with h5py.File(path, "a") as f:
        write_user_group(f, "fit", {"tau_s": 2.5e-8})
        assert read_user_group(f, "fit") == {"tau_s": 2.5e-8}
    validate(path)  # /user content never breaks validity
    with pytest.raises(ValueError, match="'/'"):
        write_user_group(path, "bad", {"a/b": 1})
    with pytest.raises(TypeError):
        write_user_group(path, "bad", {"x": object()})
    with pytest.raises(KeyError):
        read_user_group(path, "nothing")


def test_measurement_round_trip_through_reader_read(tmp_path: Path) -> None:
    chunk = random_t3(np.random.default_rng(6), 200, n_markers=3)
    path = tmp_path / "m.h5"
    write_photon_hdf5(path, chunk)
    m = PhotonHdf5Reader(path).read()
    assert isinstance(m, Measurement)
    assert m.duration_s() == pytest.approx(m.meta.acquisition_time)
