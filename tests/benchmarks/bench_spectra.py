"""Speed of the spectrum analysis (issue 5: batch ``spad analyze``).

Run as a script: ``.venv/bin/python tests/benchmarks/bench_spectra.py``. Simulates a monomer,
a fused dimer and a pair of dots (60 s, ``--vary``, seed 3; 750 EMCCD frames of 16 x 512
pixels) with ``spad simulate`` into a temporary directory, reads each spectrum with
:func:`spad.formats.spectra.open_spectrum` and prints the CPU time (``time.process_time``,
fairer than wall time on a busy machine) of each stage of
:func:`spad.analysis.spectra.analyze_spectrum` and of the whole call. Goal: < 0.3 s per particle.

Numba compilation is excluded (a warm-up call first). Each figure is the best of ``REPEATS``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from spad.analysis import spectra

from spad.formats.spectra import open_spectrum

REPEATS = 3
PARTICLES = ("monomer", "dimer", "pair")


def _best(run: Callable[[], Any]) -> tuple[float, Any]:
    """Best CPU seconds of ``run()`` over the repeats, and its last result."""
    best, out = float("inf"), None
    for _ in range(REPEATS):
        t0 = time.process_time()
        out = run()
        best = min(best, time.process_time() - t0)
    return best, out


def _simulate(particle: str, folder: Path) -> Path:
    path = folder / f"{particle}.h5"
    spad_exe = Path(sys.executable).with_name("spad")
    subprocess.run([str(spad_exe), "simulate", "--particle", particle, "--duration", "60",
                    "--seed", "3", "--vary", "-o", str(path)], check=True,
                   capture_output=True)
    return path


def bench_file(path: Path) -> dict[str, float]:
    """CPU seconds per stage of the analysis of one particle file."""
    data = open_spectrum(path)
    slope = None
    if data.preamp_gain_e_per_adu is not None:
        slope = spectra.excess_noise_sq(data.em_gain) * data.em_gain / data.preamp_gain_e_per_adu
    t: dict[str, float] = {}
    t["bias"], d = _best(lambda: spectra.subtract_bias(data))
    t["cosmic rays"], _ = _best(lambda: spectra.remove_cosmic_rays(d.frames, noise_slope=slope))
    t["reduce (all)"], red = _best(lambda: spectra.reduce_spectrum(data))
    t["fit"], _ = _best(lambda: spectra.fit_spectrum(
        red.wavelength_m, red.counts, red.variance, noise_slope=red.noise_slope,
        noise_floor=red.noise_floor, unit=red.unit))
    t["analyze_spectrum"], res = _best(lambda: spectra.analyze_spectrum(data))
    print(f"  {data.n_frames} frames {tuple(np.shape(data.frames)[1:])}: peak "
          f"{res.peak_ev:.4f} ± {res.errors['peak_ev']:.4f} eV, FWHM {res.fwhm_mev:.1f} meV, "
          f"{res.n_peaks} peak(s), {res.info['cosmic_pixels']} cosmic-ray pixels")
    return t


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = {p: _simulate(p, Path(tmp)) for p in PARTICLES}
        # Warm-up: numba compilation (or loading its cache) is not part of the figures.
        spectra.analyze_spectrum(open_spectrum(paths["monomer"]))
        for particle, path in paths.items():
            print(f"{particle}:")
            for stage, sec in bench_file(path).items():
                print(f"  {stage:<18s} {sec:7.3f} s CPU")


if __name__ == "__main__":
    main()
