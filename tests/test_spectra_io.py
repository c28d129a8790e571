"""Spectrum importers on real vendor files, synthetic CSV/HDF5, and broken input."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy import ndimage

from spad.errors import FormatError
from spad.formats.spectra import (
    detect_spectrum_format,
    open_spectrum,
    read_particle_spectrum,
    read_sif,
    read_spe,
    read_spectrum_csv,
)
from spad.optics import HC_EV_M

SPECTRA = Path(__file__).parent / "data" / "spectra"
CLI0 = SPECTRA / "sif_parser" / "cli-0.sif"
KINETIC = SPECTRA / "sif_parser" / "measurement.sif"
SPE3 = SPECTRA / "SPE_Handler" / "Test5.spe"
SPE2 = SPECTRA / "SPE_Handler" / "Testfile_Single_SPE2.SPE"


# ------------------------------------------------------------------------------------ SIF


def test_sif_single_spectrum_with_calibration():
    d = open_spectrum(CLI0)
    assert d.frames.shape == (1, 1024)
    assert d.wavelength_m[0] == pytest.approx(586.589e-9, abs=1e-12)
    assert d.wavelength_m[-1] == pytest.approx(1008.577e-9, abs=1e-12)
    assert d.exposure_s == pytest.approx(0.1)
    assert d.em_gain == 1.0  # DU420 is a conventional CCD
    assert d.bias_adu == 0.0  # "Counts (Bg corrected per second)": nothing left to remove
    # The stored polynomial (0-based column, metres) reproduces the wavelength axis.
    coeffs = d.calibration["coefficients_m"]
    assert np.allclose(np.polyval(coeffs, np.arange(1024)), d.wavelength_m, rtol=0, atol=1e-15)
    # The broad PL band the source describes, near 810 nm.
    peak = d.wavelength_m[np.argmax(ndimage.median_filter(d.frames[0], 15))]
    assert 790e-9 < peak < 830e-9


def test_sif_calibration_uses_one_based_pixels():
    # Solis evaluates its coefficients at pixel numbers 1..N: column 0 is pixel 1.
    d = read_sif(CLI0)
    a = [586.168707875138, 0.420772833220337, -4.17477930541102e-06, -3.80478799111788e-09]
    p1 = sum(c * 1.0**i for i, c in enumerate(a))
    assert d.wavelength_m[0] == pytest.approx(p1 * 1e-9, rel=1e-12)


def test_sif_kinetic_series():
    d = open_spectrum(KINETIC)
    assert d.frames.shape == (20, 1024)
    assert d.n_frames == 20
    assert 529.9e-9 < d.wavelength_m.min() < 530.1e-9
    assert 592.7e-9 < d.wavelength_m.max() < 593.0e-9
    assert d.exposure_s == pytest.approx(3.0)
    assert d.em_gain == 1.0  # an iStar ICCD: its gain is the MCP's, not an EM gain
    assert d.metadata["detector_type"].startswith("DH334")


def test_sif_detected_by_content_not_name(tmp_path):
    p = tmp_path / "spectrum.txt"
    shutil.copy(CLI0, p)
    assert detect_spectrum_format(p) == "sif"
    assert open_spectrum(p).frames.shape == (1, 1024)


@pytest.mark.parametrize("keep", [40, 300, 2000, 2910 + 4 * 1000])
def test_sif_truncated(tmp_path, keep):
    p = tmp_path / "cut.sif"
    p.write_bytes(CLI0.read_bytes()[:keep])
    with pytest.raises(FormatError, match="cut.sif"):
        open_spectrum(p)


def test_sif_truncated_kinetic_series(tmp_path):
    p = tmp_path / "cut.sif"
    p.write_bytes(KINETIC.read_bytes()[:-4096])  # last frame incomplete
    with pytest.raises(FormatError, match="truncated|corrupt"):
        read_sif(p)


# ------------------------------------------------------------------------------------ SPE


def test_spe3_lightfield():
    d = open_spectrum(SPE3)
    assert d.frames.shape == (5, 512)
    assert d.metadata["spe_version"] == 3.0
    assert d.wavelength_m[0] == pytest.approx(842.81013e-9, abs=1e-13)
    assert 950.0e-9 < d.wavelength_m[-1] < 950.3e-9
    assert np.all(np.diff(d.wavelength_m) > 0)
    assert d.exposure_s == pytest.approx(1.0)  # LightField stores 1000 ms
    raw = SPE3.read_bytes()
    first = np.frombuffer(raw, "<u2", 512, 4100)
    assert np.array_equal(d.frames[0], first)


def test_spe2_winspec():
    d = open_spectrum(SPE2)
    assert d.frames.shape == (35, 1340)
    assert d.metadata["spe_version"] == pytest.approx(2.2, abs=1e-3)
    assert d.exposure_s == pytest.approx(30.0)
    # The header's calibration points (pixel number -> nm) must be hit exactly: pixel numbers
    # are 1-based, so column 0 is 627.18 nm, column 1339 is 759.04 nm and the centre 670.5 ...
    assert d.wavelength_m[0] == pytest.approx(627.1822928553368e-9, rel=1e-9)
    assert d.wavelength_m[-1] == pytest.approx(759.0392447658533e-9, rel=1e-9)
    centre = np.interp(669.5, np.arange(1340), d.wavelength_m)
    assert centre == pytest.approx(693.681e-9, abs=2e-13)
    # ... and it is a Raman file: the brightest line is the laser given in the header, 636.3 nm.
    laser = struct.unpack_from("<d", SPE2.read_bytes(), 3311)[0]
    brightest = d.wavelength_m[np.argmax(d.frames.sum(axis=0))]
    assert brightest == pytest.approx(laser * 1e-9, abs=0.5e-9)


def test_spe_truncated_data(tmp_path):
    p = tmp_path / "cut.spe"
    p.write_bytes(SPE2.read_bytes()[:-1000])
    with pytest.raises(FormatError, match="truncated SPE"):
        read_spe(p)


def test_spe3_footer_cut(tmp_path):
    raw = SPE3.read_bytes()
    p = tmp_path / "cut3.spe"
    p.write_bytes(raw[:9220 + 500])  # data intact, XML footer broken off
    with pytest.raises(FormatError, match="XML footer"):
        read_spe(p)
    p.write_bytes(raw[:6000])  # footer offset now beyond the end of the file
    with pytest.raises(FormatError, match="outside the file"):
        read_spe(p)


def test_spe_header_only(tmp_path):
    p = tmp_path / "head.spe"
    p.write_bytes(SPE2.read_bytes()[:4100])
    with pytest.raises(FormatError, match="truncated SPE"):
        open_spectrum(p)


# ------------------------------------------------------------------------------------ foreign


def test_garbage_and_empty(tmp_path):
    rng = np.random.default_rng(1)
    p = tmp_path / "noise.bin"
    p.write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes() + b"\x00")
    with pytest.raises(FormatError, match="noise.bin"):
        open_spectrum(p)
    e = tmp_path / "empty.sif"
    e.write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        open_spectrum(e)
    t = tmp_path / "words.csv"
    t.write_text("hello world\nthis is not a spectrum\n")
    with pytest.raises(FormatError, match="words.csv"):
        open_spectrum(t)
    with pytest.raises(FormatError, match="cannot read"):
        open_spectrum(tmp_path / "missing.sif")


# ------------------------------------------------------------------------------------ CSV


def _write(path: Path, header: str | None, x: np.ndarray, *ys: np.ndarray, sep: str = ","):
    lines = [] if header is None else [header]
    lines += [sep.join(f"{v:.10g}" for v in row) for row in zip(x, *ys, strict=True)]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("scale,header", [(1e9, None), (1.0, None), (1e9, "Wavelength (nm),Counts"),
                                          (1.0, "wavelength_m,counts")])
def test_csv_wavelength_units(tmp_path, scale, header):
    wl = np.linspace(600e-9, 660e-9, 50)
    y = np.arange(50.0)
    p = tmp_path / "s.csv"
    _write(p, header, wl * scale, y)
    d = open_spectrum(p)
    assert np.allclose(d.wavelength_m, wl, rtol=1e-9)
    assert np.array_equal(d.frames, y[np.newaxis])
    assert d.metadata["axis_unit"] == ("nm" if scale == 1e9 else "m")


def test_csv_energy_axis_and_frames(tmp_path):
    e = np.linspace(1.9, 2.1, 40)
    p = tmp_path / "e.tsv"
    _write(p, "# exported\nenergy_eV\tframe1\tframe2", e, np.ones(40), 2 * np.ones(40),
           sep="\t")
    d = read_spectrum_csv(p)
    assert d.frames.shape == (2, 40)
    assert np.allclose(d.wavelength_m, HC_EV_M / e)
    assert d.metadata["axis_unit"] == "ev"


def test_csv_ambiguous_or_contradictory(tmp_path):
    p = tmp_path / "a.csv"
    _write(p, None, np.linspace(5, 50, 20), np.ones(20))  # 5-50: no unit fits
    with pytest.raises(FormatError, match="cannot tell the unit"):
        open_spectrum(p)
    _write(p, "wavelength_nm,counts", np.linspace(1.9, 2.1, 20), np.ones(20))
    with pytest.raises(FormatError, match="says nm"):
        open_spectrum(p)
    p.write_text("600,1\n610,2,3\n")
    with pytest.raises(FormatError, match="unequal|non-numeric"):
        open_spectrum(p)
    p.write_text("600\n610\n")
    with pytest.raises(FormatError, match="two columns"):
        open_spectrum(p)


# ------------------------------------------------------------------------------------ HDF5


def test_particle_spectrum_round_trip(tmp_path):
    from spad import particle
    from spad.spectrum import SpectrumData

    src = SpectrumData(frames=np.arange(3 * 4 * 16, dtype=float).reshape(3, 4, 16),
                       wavelength_m=np.linspace(600e-9, 660e-9, 16), exposure_s=0.08,
                       em_gain=300.0, bias_adu=300.0, preamp_gain_e_per_adu=10.0,
                       calibration={"method": "grating", "order": 1}, signal_rows=(1, 3))
    p = tmp_path / "particle.h5"
    with h5py.File(p, "w") as f:
        particle.write_spectrum_group(f, src)
    d = open_spectrum(p)
    assert np.array_equal(d.frames, src.frames)
    assert np.array_equal(d.wavelength_m, src.wavelength_m)
    assert (d.em_gain, d.bias_adu, d.preamp_gain_e_per_adu) == (300.0, 300.0, 10.0)
    assert d.calibration["method"] == "grating" and d.signal_rows == (1, 3)


def test_particle_file_without_spectrum(tmp_path):
    p = tmp_path / "photons_only.h5"
    with h5py.File(p, "w") as f:
        f.create_group("photon_data")
    with pytest.raises(FormatError, match="no /user/spectrum"):
        read_particle_spectrum(p)
    q = tmp_path / "nm.h5"
    with h5py.File(q, "w") as f:
        g = f.create_group("user/spectrum")
        g["frames"] = np.ones((1, 8))
        g["wavelength_m"] = np.linspace(600, 660, 8)  # nanometres where metres belong
    with pytest.raises(FormatError, match="metres"):
        open_spectrum(q)
