"""``spad simulate``: particle files that read back, truth consistent with the data, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import curve_fit

from spad.app.cli import main
from spad.optics import spectrum_to_energy
from spad.particle import read_particle

SPAD = Path(sys.executable).with_name("spad")


def test_monomer_h5_reads_back_with_consistent_truth(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "m.h5"
    assert main(["simulate", "--particle", "monomer", "--duration", "2", "--seed", "1",
                 "-o", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and "monomer" in line and "photons" in line and "g2(0)" in line
    p = read_particle(out)
    t = p.truth
    assert t["particle"] == "monomer" and t["mode"] == "T3" and t["neck_nm"] is None
    assert f"g2(0) = {t['expected_g2_zero']:.3f}" in line
    n = len(p.measurement.photons)
    assert f"{n} photons" in line
    # photons per second agree with the truth's expected detected rate (dead time and
    # afterpulses change it by ~1 %; Poisson plus blinking scatter over 2 s stays below 5 %)
    assert n / 2.0 == pytest.approx(t["detected_rate_hz"], rel=0.05)
    assert p.spectrum.n_frames == 25 and p.spectrum.exposure_s == 0.08
    timeline = t["emitters"]["0"]["timeline"]
    assert timeline["start_s"][0] == 0.0 and np.all(np.diff(timeline["start_s"]) > 0)
    assert main(["info", str(out)]) == 0


def test_dimer_ptu_peak_is_red_shifted_in_the_spectrum(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "d.ptu"
    assert main(["simulate", "--particle", "dimer", "--neck-nm", "5", "--duration", "4",
                 "--seed", "3", "-o", str(out)]) == 0
    assert (tmp_path / "d.user.h5").exists()
    p = read_particle(out)
    assert p.measurement.meta.format.startswith("PTU")
    t = p.truth
    assert t["neck_nm"] == 5.0 and t["red_shift_ev"] == pytest.approx(0.021)
    peak = t["emitters"]["0"]["peak_ev"]
    assert peak == pytest.approx(2.0 - 0.021)
    # the spectrum in the file, read as the analysis would: track rows minus background rows,
    # bias-subtracted, summed, as a density in energy, fitted with a Gaussian: the peak is the
    # light-weighted peak of the truth (spectral diffusion moves it off the nominal value)
    s = p.spectrum
    frames = s.frames.astype(float) - s.bias_adu
    (a, b), (c, d) = s.signal_rows, s.background_rows
    counts = frames[:, a:b].sum(axis=(0, 1)) - frames[:, c:d].mean(axis=1).sum(axis=0) * (b - a)
    e, dens = spectrum_to_energy(s.wavelength_m, counts / np.gradient(s.wavelength_m))
    (_, e0, sigma, _), cov = curve_fit(
        lambda x, h, x0, w, c0: h * np.exp(-0.5 * ((x - x0) / w) ** 2) + c0, e, dens,
        p0=[dens.max(), peak, 0.035, 0.0])
    assert e0 == pytest.approx(t["spectrum"]["weighted_peak_ev"], abs=max(0.002,
                                                                           4 * cov[1, 1] ** 0.5))
    # the line is the dimer's (broadened) width, plus a little spectral diffusion blur
    assert 2.3548 * abs(sigma) == pytest.approx(t["emitters"]["0"]["fwhm_ev"], rel=0.1)
    assert main(["info", str(out)]) == 0


def test_t2_pair_with_count_rate(tmp_path: Path) -> None:
    out = tmp_path / "pair.h5"
    assert main(["simulate", "--particle", "pair", "--duration", "1", "--mode", "T2",
                 "--count-rate", "20000", "--spectrum-s", "0", "-o", str(out)]) == 0
    p = read_particle(out)
    assert p.measurement.timing.mode == "T2" and p.spectrum is None
    t = p.truth
    bright = sum(float(np.max(e["state_intensity_hz"])) for e in t["emitters"].values())
    assert bright == pytest.approx(20000, rel=1e-6)
    assert 0.4 < t["expected_g2_zero"] < 0.7


@pytest.mark.parametrize("argv, message", [
    (["--duration", "-1"], "--duration must be at least 0.001 s"),
    (["--neck-nm", "4"], "--neck-nm applies to --particle dimer only"),
    (["--particle", "dimer", "--neck-nm", "-3"], "--neck-nm must be within"),
    (["--particle", "trimer"], "invalid choice"),
    (["--duration", "ten"], "invalid float value"),
    (["--count-rate", "1e12"], "out of reach"),
])
def test_bad_arguments_give_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                 argv: list[str], message: str) -> None:
    out = tmp_path / "x.h5"
    try:
        code = main(["simulate", "-o", str(out), *argv])
    except SystemExit as exc:          # argparse-level errors
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err
    assert not out.exists()


def test_existing_output_is_not_overwritten_without_force(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "x.h5"
    out.write_bytes(b"precious")
    assert main(["simulate", "--duration", "0.2", "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert main(["simulate", "--duration", "0.2", "-o", str(out), "--force"]) == 0


def test_command_line_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "cli.h5"
    sim = subprocess.run([str(SPAD), "simulate", "--duration", "1", "-o", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert sim.returncode == 0, sim.stderr
    assert sim.stdout.count("\n") == 1 and "Traceback" not in sim.stderr
    info = subprocess.run([str(SPAD), "info", str(out)], capture_output=True, text=True,
                          timeout=120)
    assert info.returncode == 0, info.stderr


def test_particle_file_from_simulate_is_valid_photon_hdf5(tmp_path: Path) -> None:
    import warnings

    import phconvert
    import tables

    out = tmp_path / "v.h5"
    assert main(["simulate", "--particle", "dimer", "--duration", "0.5", "-o", str(out)]) == 0
    with tables.open_file(str(out)) as h5, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        phconvert.hdf5.assert_valid_photon_hdf5(h5)
