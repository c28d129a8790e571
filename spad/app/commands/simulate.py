"""``spad simulate``: write one simulated particle file (photons, spectrum, ground truth).

    spad simulate --particle monomer|dimer|pair --duration SECONDS --seed N -o FILE
                  [--format h5|ptu] [--neck-nm X] [--mode T3|T2] [--count-rate CPS] ...

The photons stream from the simulator into the writer chunk by chunk, the EMCCD spectrum is
rendered from the same blinking timeline and spectral trajectory, and the truth goes to
``/user/ground_truth`` (see :mod:`spad.particle` for the layout) once the photons are written.

Memory does not depend on the duration: the blinking timeline is drawn batch by batch
(:class:`spad.simulators.blinking.Timeline`), and the stored truth is bounded: the timeline of each
emitter up to its first ``TRUTH_MAX_DWELLS`` dwells and the spectral trajectory up to its first
``TRUTH_MAX_STEPS`` steps (``timeline/complete`` and ``spectral/complete`` say whether that is
the whole run); fractions, ON fraction, g2(0) and the spectral statistics always cover the whole
run. Before starting, the output size is estimated from the stationary state fractions, printed
for runs of a minute or more, and a run that would not fit on the disk is refused.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from spad.errors import SpadError
from spad.simulators.recipe import PARTICLES, build

SPECTRUM_S_DEFAULT = 120.0
"""The experiment integrates a particle's spectrum over 120 s (docs/physics.md, "The
experiment")."""
TRUTH_MAX_DWELLS = 1_000_000
"""Dwells of each emitter's timeline stored in the ground truth (16 MB); the rest is summarised."""
TRUTH_MAX_STEPS = 1_000_000
"""Steps of each emitter's spectral trajectory stored in the ground truth (~3 h at 10 ms)."""
SPECTRUM_MAX_BYTES = 1 << 30
"""Largest EMCCD series simulated in memory (the frames are rendered whole)."""
BYTES_PER_EVENT = {("h5", "T3"): 11, ("h5", "T2"): 9, ("ptu", "T3"): 4, ("ptu", "T2"): 4}
"""Bytes stored per photon: Photon-HDF5 timestamps (8) + detectors (1) (+ nanotimes (2));
PTU: one 32-bit record."""
DISK_MARGIN = 1.2
"""Estimated size times this must fit in the free space (the count is a Poisson estimate and the
stationary fractions are long-run averages)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "simulate", help="write a simulated particle file (photons + spectrum + truth)",
        description="Simulate one quantum-dot particle (monomer, fused dimer, or two dots in "
                    "one focus) and write its photons, EMCCD spectrum and ground truth to a "
                    "particle file (Photon-HDF5, or PTU with a FILE.user.h5 sidecar).")
    p.add_argument("--particle", choices=PARTICLES, default="monomer",
                   help="what is in the focus (default monomer)")
    p.add_argument("--duration", type=float, default=10.0, metavar="SECONDS",
                   help="length of the photon measurement (default 10 s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="output file (.h5 / .hdf5 or .ptu)")
    p.add_argument("--format", choices=("h5", "ptu"), default=None,
                   help="output format (default from the extension: .ptu -> ptu, else h5)")
    p.add_argument("--neck-nm", type=float, default=None, metavar="X",
                   help="dimer neck diameter in nm (default 6; dimers only)")
    p.add_argument("--mode", choices=("T3", "T2"), default="T3", help="tagger mode (default T3)")
    p.add_argument("--count-rate", type=float, default=None, metavar="CPS",
                   help="detected count rate of the brightest state, both detectors together "
                        "(scales the collection efficiency; default ~30 kcps for a monomer)")
    p.add_argument("--vary", action="store_true",
                   help="draw particle-to-particle variation (peak, lifetime, brightness) from "
                        "the seed instead of the nominal preset")
    p.add_argument("--spectrum-s", type=float, default=None, metavar="SECONDS",
                   help=f"length of the EMCCD series from t = 0 (default: the duration, at most "
                        f"{SPECTRUM_S_DEFAULT:g} s); 0 writes no spectrum")
    p.add_argument("--read-mode", choices=("image", "single_track", "fvb"), default="image",
                   help="camera read mode (default image: 16 rows around the track)")
    p.add_argument("--exposure", type=float, default=0.08, metavar="SECONDS",
                   help="EMCCD exposure per frame (default 0.08 s)")
    p.add_argument("--em-gain", type=float, default=100.0, help="EM gain (default 100)")
    p.add_argument("--bleach-s", type=float, default=None, metavar="SECONDS",
                   help="the particle photobleaches at this time (emits nothing after it)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    def bad(msg: str) -> None:
        raise SpadError(f"simulate: {msg}")

    # a recording shorter than a millisecond holds no photon at any count rate spad simulates
    if not (math.isfinite(args.duration) and 1e-3 <= args.duration):
        bad(f"--duration must be at least 0.001 s, not {args.duration:g}")
    if not 0 <= args.seed < 2**63:
        bad(f"--seed must be within 0-{2**63 - 1}, not {args.seed}")
    if args.neck_nm is not None:
        if args.particle != "dimer":
            bad("--neck-nm applies to --particle dimer only")
        if not (math.isfinite(args.neck_nm) and 0 <= args.neck_nm <= 20):
            bad(f"--neck-nm must be within 0-20 nm, not {args.neck_nm:g}")
    if args.count_rate is not None and not (math.isfinite(args.count_rate)
                                            and args.count_rate > 0):
        bad(f"--count-rate must be a positive number of counts per second, "
            f"not {args.count_rate:g}")
    if args.spectrum_s is not None and not (math.isfinite(args.spectrum_s)
                                            and args.spectrum_s >= 0):
        bad(f"--spectrum-s must be >= 0 s, not {args.spectrum_s:g}")
    if not (math.isfinite(args.exposure) and 1e-4 <= args.exposure <= 60):
        bad(f"--exposure must be within 0.1 ms - 60 s, not {args.exposure:g}")
    if args.bleach_s is not None and not (math.isfinite(args.bleach_s) and args.bleach_s >= 0):
        bad(f"--bleach-s must be >= 0 s, not {args.bleach_s:g}")
    if not (1 <= args.em_gain <= 1000):
        bad(f"--em-gain must be within 1-1000, not {args.em_gain:g}")
    from spad.output import check_writable

    check_writable(args.output, overwrite=args.force)
    if args.format == "ptu" or (args.format is None
                                and Path(args.output).suffix.lower() == ".ptu"):
        from spad.particle import sidecar_path

        check_writable(sidecar_path(args.output), overwrite=args.force)


def ground_truth(sim: Any, particle: str, neck_nm: float | None, spectrum: Any,
                 lines: list[Any]) -> dict[str, Any]:
    """The truth stored in ``/user/ground_truth`` of a simulated particle file."""
    from spad.simulators.emitter import dimer_shift_ev
    from spad.simulators.spectrum import spectral_truth

    t = sim.truth
    emitters: dict[str, Any] = {}
    for i, e in enumerate(t.emitters):
        n_dwells = t.n_dwells(i)
        end = t.duration_s
        if n_dwells > TRUTH_MAX_DWELLS:
            end = float(t.timeline(i, _dwell_start(t, i, TRUTH_MAX_DWELLS))[0][-1])
        start, state, dwell = t.timeline(i, end)
        sd = e.spectral_diffusion
        spectral_end = (t.duration_s if sd is None
                        else min(t.duration_s, (TRUTH_MAX_STEPS - 1) * sd.step_s))
        times, peak = t.spectral(i, spectral_end)
        emitters[str(i)] = {
            "name": e.name, "peak_ev": float(e.peak_ev), "fwhm_ev": float(e.fwhm_ev),
            "state_names": t.state_names(i), "state_qy": t.state_qy(i),
            "state_lifetimes_s": {str(k): np.asarray(v)
                                  for k, v in enumerate(t.state_lifetimes_s(i))},
            "state_mean_lifetime_s": t.state_mean_lifetime_s(i),
            "state_intensity_hz": t.state_intensity_hz(i), "alphas": t.alphas(i),
            "fractions": t.fractions(i), "on_fraction": t.on_fraction(i),
            "emission_end_s": t.emission_end_s(i),
            "timeline": {"start_s": np.asarray(start, dtype=float),
                         "state": np.asarray(state, dtype=np.int64),
                         "duration_s": np.asarray(dwell, dtype=float),
                         "end_s": float(end), "n_dwells_run": int(n_dwells),
                         "complete": bool(end >= t.duration_s)},
            "spectral": {"time_s": np.asarray(times, dtype=float),
                         "peak_ev": np.asarray(peak, dtype=float),
                         "complete": bool(spectral_end >= t.duration_s)},
        }
    neck = (6.0 if neck_nm is None else neck_nm) if particle == "dimer" else None
    return {
        "particle": particle, "neck_nm": neck,
        "red_shift_ev": dimer_shift_ev(neck) if neck is not None else 0.0,
        "seed": t.seed, "duration_s": t.duration_s, "mode": sim.timing.mode,
        "expected_g2_zero": float(t.expected_g2_zero), "realised_g2_zero": float(t.g2_zero()),
        "detected_rate_hz": float(t.detected_rate_hz()),
        "emitters": emitters,
        "spectrum": spectral_truth(t, lines, spectrum),
        "parameters_json": json.dumps(t.parameters, default=_json_default),
    }


def _dwell_start(truth: Any, i: int, n: int) -> float:
    """Start time of emitter ``i``'s dwell number ``n`` (bisection on the dwell count)."""
    lo, hi = 0.0, truth.duration_s
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if truth.n_dwells(i, mid) > n:
            hi = mid
        else:
            lo = mid
    return hi


def estimate(emitters: Any, detection: Any, duration_s: float, fmt: str, mode: str
             ) -> tuple[float, float]:
    """Expected registered events and output bytes of a run, before drawing anything.

    From the stationary state fractions of the dwell laws (the brightest state where a mean
    dwell is infinite), plus dark counts.
    """
    ems = emitters if isinstance(emitters, tuple) else (emitters,)
    rate = float(sum(detection.dark_rate_hz))
    for e in ems:
        bright = e.state_moments(detection.efficiency)[0] * e.rep_rate_hz
        f = np.asarray(e.stationary_fractions(), dtype=float)
        rate += float(f @ bright) if np.all(np.isfinite(f)) else float(bright.max())
    events = rate * duration_s
    if mode == "T2" and detection.t2_sync_events:  # every (divided) sync is an event too
        events += duration_s * ems[0].rep_rate_hz / detection.sync_divider
    return events, events * BYTES_PER_EVENT[(fmt, mode)]


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


def simulate_particle(out: Path, particle: str, seed: int, duration_s: float, *,
                      fmt: str = "h5", neck_nm: float | None = None, vary: bool = False,
                      mode: str = "T3", count_rate: float | None = None,
                      spectrum_s: float | None = None, exposure_s: float = 0.08,
                      em_gain: float = 100.0, read_mode: str = "image", overwrite: bool = False,
                      progress: bool = False, bleach_s: float | None = None
                      ) -> tuple[Any, dict[str, Any], Any]:
    """Simulate one particle and write its particle file (what ``spad simulate`` does).

    Parameters are those of the command (see ``spad simulate --help``); ``spectrum_s`` None
    means the duration, at most :data:`SPECTRUM_S_DEFAULT`.

    Returns
    -------
    (written, truth, spectrum)
        The writer's summary (:func:`spad.particle.write_particle`), the ground truth stored in
        the file and the simulated spectrum (``None`` if none was recorded).
    """
    import shutil

    from tqdm import tqdm

    from spad.optics import HC_EV_M
    from spad.particle import write_particle
    from spad.simulators.spectrum import SpectrumSetup, particle_lines, spectrum_from_truth
    from spad.simulators.stream import simulate

    setup = SpectrumSetup(exposure_s=exposure_s, em_gain=em_gain, read_mode=read_mode)
    spectrum_s = (min(duration_s, SPECTRUM_S_DEFAULT) if spectrum_s is None
                  else min(spectrum_s, duration_s))
    n_frames = int(spectrum_s / exposure_s + 1e-9) if spectrum_s >= exposure_s else 0
    rows = len(setup.readout().tracks)
    spectrum_bytes = 8.0 * n_frames * rows * setup.sensor.n_columns
    if spectrum_bytes > SPECTRUM_MAX_BYTES:
        most = SPECTRUM_MAX_BYTES / (8.0 * rows * setup.sensor.n_columns) * exposure_s
        raise SpadError(f"{out}: the spectrum series ({n_frames} frames of {rows} rows) would "
                        f"take {_size(spectrum_bytes)} of memory; use --spectrum-s {most:.0f} "
                        "or less, or a longer --exposure")
    emitters, detection = build(particle, seed, neck_nm, vary, mode, count_rate, bleach_s)
    events, size = estimate(emitters, detection, duration_s, fmt, mode)
    size += spectrum_bytes / 4 + min(16 * TRUTH_MAX_DWELLS, size)  # frames: 16-bit counts
    free = shutil.disk_usage(out.parent if str(out.parent) else ".").free
    if size * DISK_MARGIN > free:
        raise SpadError(f"{out}: about {_size(size)} of output ({events:.3g} photons in "
                        f"{duration_s:g} s) would not fit in the {_size(free)} free on its "
                        "disk; use a shorter --duration")
    if duration_s >= 60:
        print(f"spad simulate: about {events:.3g} photons, {_size(size)}, to {out}",
              file=sys.stderr)
    sim = simulate(emitters, detection, duration_s, seed, chunk_s=1.0)
    lines = particle_lines(sim.truth)
    spectrum = None
    if n_frames:
        spectrum = spectrum_from_truth(sim.truth, setup, duration_s=spectrum_s,
                                       rng=np.random.default_rng([seed, 0x5EC7]))
    truth: dict[str, Any] = {}

    def make_truth() -> dict[str, Any]:  # after the photons: the timeline is drawn by then
        truth.update(ground_truth(sim, particle, neck_nm, spectrum, lines))
        return truth

    peaks = [float(e.peak_ev) for e in sim.truth.emitters]
    neck = (6.0 if neck_nm is None else neck_nm) if particle == "dimer" else None
    description = (f"simulated {particle}"
                   + (f" (neck {neck:g} nm)" if neck is not None else "")
                   + f", seed {seed}, {duration_s:g} s, spad simulate")
    fields: dict[str, Any] = {}
    if fmt == "h5":
        fields = {"excitation_wavelengths": [405e-9],
                  "detection_wavelengths": [HC_EV_M / float(np.mean(peaks))],
                  "sample_name": f"simulated {particle}"}
    chunks = tqdm(sim.chunks(), total=math.ceil(duration_s / sim.chunk_s), unit="s",
                  desc="simulate", file=sys.stderr, leave=False, disable=not progress)
    try:
        written = write_particle(out, chunks, sim.timing, spectrum, make_truth, format=fmt,
                                 description=description, overwrite=overwrite, **fields)
    finally:
        chunks.close()
    return written, truth, spectrum


def run(args: argparse.Namespace) -> int:
    from spad.optics import HC_EV_M

    _check(args)
    out = Path(args.output)
    fmt = args.format or ("ptu" if out.suffix.lower() == ".ptu" else "h5")
    written, truth, spectrum = simulate_particle(
        out, args.particle, args.seed, args.duration, fmt=fmt, neck_nm=args.neck_nm,
        vary=args.vary, mode=args.mode, count_rate=args.count_rate, spectrum_s=args.spectrum_s,
        exposure_s=args.exposure, em_gain=args.em_gain, read_mode=args.read_mode,
        overwrite=args.force, progress=sys.stderr.isatty() and args.duration >= 30,
        bleach_s=args.bleach_s)
    peaks = [float(e["peak_ev"]) for e in truth["emitters"].values()]
    rate = written.n_photons / args.duration
    peak_text = "/".join(f"{p:.4f}" for p in peaks)
    nm_text = "/".join(f"{HC_EV_M / p * 1e9:.1f}" for p in peaks)
    frames = f", {spectrum.n_frames} spectrum frames" if spectrum is not None else ""
    also = f" (+ {written.paths[1].name})" if len(written.paths) > 1 else ""
    print(f"{out}{also}: {args.particle}, {written.n_photons} photons in {args.duration:g} s "
          f"({rate / 1e3:.1f} kcps), truth g2(0) = {truth['expected_g2_zero']:.3f}, "
          f"peak {peak_text} eV ({nm_text} nm){frames}")
    return 0
