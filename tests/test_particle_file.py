"""The particle file: photons + /user/spectrum + /user/ground_truth, Photon-HDF5 or PTU+sidecar."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from spad.simulators.emccd import Emccd
from spad.simulators.spectrum import EmissionLine, SpectrumSetup, simulate_spectrum

from spad.errors import FormatError
from spad.particle import read_particle, sidecar_path, write_particle
from spad.photons import PhotonChunk, Timing

T3 = Timing("T3", 200e-9, nanotime_unit=16e-12, sync_period=200e-9, tcspc_num_bins=12500)
T2 = Timing("T2", 1e-12, sync_period=200e-9)


def t3_chunks(n_chunks: int = 5, n: int = 2000, seed: int = 1) -> list[PhotonChunk]:
    rng = np.random.default_rng(seed)
    out, start = [], 0
    for _ in range(n_chunks):
        ts = start + np.sort(rng.integers(0, 50 * n, n))
        out.append(PhotonChunk(T3, ts, rng.integers(1, 3, n), rng.integers(0, 12500, n),
                               [int(ts[n // 2])], [1]))
        start = int(ts[-1]) + 1
    return out


def spectrum() -> object:
    setup = SpectrumSetup(sensor=Emccd(n_rows=64, n_columns=128), track_centre_row=32,
                          track_height=12)
    return simulate_spectrum([EmissionLine(1.98, 0.07)], 0.4, setup, rng=4)


TRUTH = {
    "particle": "dimer", "neck_nm": 6.0, "expected_g2_zero": 0.55, "note": None,
    "emitters": [{"name": "a", "peak_ev": 1.972, "state_names": ["L0", "L1"],
                  "state_lifetimes_s": [(4e-9, 10e-9), (8e-9,)],
                  "timeline": {"start_s": np.array([0.0, 0.01, 0.5]),
                               "state": np.array([1, 0, 1])}}],
    "flag": True,
}


def validate(path: Path) -> None:
    import phconvert
    import tables

    with tables.open_file(str(path)) as h5, warnings.catch_warnings():
        warnings.simplefilter("ignore")   # missing optional fields are warnings
        phconvert.hdf5.assert_valid_photon_hdf5(h5)


def check_truth(truth: dict) -> None:
    assert truth["particle"] == "dimer" and truth["neck_nm"] == 6.0
    assert truth["expected_g2_zero"] == 0.55 and truth["note"] is None and truth["flag"] is True
    e = truth["emitters"]["0"]
    assert e["name"] == "a" and e["state_names"] == ["L0", "L1"]
    assert np.allclose(e["state_lifetimes_s"]["0"], [4e-9, 10e-9])
    assert np.array_equal(e["timeline"]["state"], [1, 0, 1])


def check_spectrum(got: object, sent: object) -> None:
    assert np.array_equal(got.frames, sent.frames) and got.frames.dtype == sent.frames.dtype
    assert np.array_equal(got.wavelength_m, sent.wavelength_m)
    for name in ("exposure_s", "em_gain", "bias_adu", "preamp_gain_e_per_adu", "signal_rows",
                 "background_rows", "source"):
        assert getattr(got, name) == getattr(sent, name), name
    assert got.calibration == pytest.approx(sent.calibration) or all(
        got.calibration[k] == sent.calibration[k] for k in sent.calibration)
    assert got.calibration["method"] == "grating"
    assert got.metadata["read_mode"] == "image"


def test_h5_round_trip_streams_chunks_and_validates(tmp_path: Path) -> None:
    chunks = t3_chunks()
    spec = spectrum()
    path = tmp_path / "particle.h5"

    def gen() -> Iterator[PhotonChunk]:
        yield from chunks                        # a generator: streamed, never a list

    written = write_particle(path, gen(), T3, spec, TRUTH, description="test particle")
    assert written.paths == [path] and written.n_photons == 10_000
    validate(path)
    p = read_particle(path)
    whole = PhotonChunk.concatenate(chunks)
    assert np.array_equal(p.measurement.photons.timestamps, whole.timestamps)
    assert np.array_equal(p.measurement.photons.nanotimes, whole.nanotimes)
    assert np.array_equal(p.measurement.photons.marker_times, whole.marker_times)
    check_spectrum(p.spectrum, spec)
    check_truth(p.truth)
    with h5py.File(path) as f:
        assert f["user/spectrum/frames"].compression == "gzip"
        assert f["user/spectrum/frames"].attrs["units"] == "ADU"
    assert list(tmp_path.iterdir()) == [path]         # no temporary left behind
    no_photons = read_particle(path, photons=False)
    assert no_photons.measurement is None and no_photons.truth is not None


def test_ptu_with_sidecar(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    ts = np.sort(rng.integers(0, 10**10, 5000))
    chunk = PhotonChunk(T2, ts, rng.integers(1, 3, 5000))
    spec = spectrum()
    path = tmp_path / "p.ptu"
    written = write_particle(path, chunk, spectrum=spec, truth=TRUTH)
    assert sidecar_path(path) == tmp_path / "p.user.h5"
    assert written.paths == [path, tmp_path / "p.user.h5"]
    p = read_particle(path)
    assert p.measurement.meta.format.startswith("PTU")
    assert np.array_equal(p.measurement.photons.timestamps, ts)
    check_spectrum(p.spectrum, spec)
    check_truth(p.truth)
    with pytest.raises(FormatError, match="without /photon_data"):
        read_particle(tmp_path / "p.user.h5")


def test_without_spectrum_or_truth(tmp_path: Path) -> None:
    path = tmp_path / "bare.h5"
    write_particle(path, t3_chunks(1))
    p = read_particle(path)
    assert p.spectrum is None and p.truth is None and len(p.measurement.photons) == 2000
    lone = tmp_path / "lone.ptu"
    write_particle(lone, t3_chunks(1), truth={"x": 1})
    sidecar_path(lone).unlink()                  # a PTU whose sidecar went missing
    p = read_particle(lone)
    assert p.truth is None and len(p.measurement.photons) == 2000


def test_refuses_to_overwrite_and_failed_write_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "x.h5"
    write_particle(path, t3_chunks(1))
    with pytest.raises(FileExistsError):
        write_particle(path, t3_chunks(1))
    write_particle(path, t3_chunks(2), overwrite=True)
    assert len(read_particle(path).measurement.photons) == 4000

    def broken() -> Iterator[PhotonChunk]:
        yield from t3_chunks(1)
        raise RuntimeError("simulator crashed")

    for name in ("y.h5", "y.ptu"):
        with pytest.raises(RuntimeError, match="crashed"):
            write_particle(tmp_path / name, broken(), T3, truth={"x": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.h5"]
    with pytest.raises(ValueError, match="needs the timing"):
        write_particle(tmp_path / "z.h5", iter(t3_chunks(1)))
    with pytest.raises(FileNotFoundError):
        read_particle(tmp_path / "missing.h5")


def test_corrupt_spectrum_group_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.h5"
    write_particle(path, t3_chunks(1), spectrum=spectrum())
    with h5py.File(path, "a") as f:
        del f["user/spectrum/wavelength_m"]
        f["user/spectrum/wavelength_m"] = np.linspace(600, 650, 128)   # nm, not metres
    with pytest.raises(FormatError, match="metres"):
        read_particle(path)
