"""``spad simulate``: write one simulated particle file (photons, spectrum, ground truth).

    spad simulate --particle monomer|dimer|pair --duration SECONDS --seed N -o FILE
                  [--format h5|ptu] [--neck-nm X] [--mode T3|T2] [--count-rate CPS] ...

The photons stream from the simulator into the writer chunk by chunk (bounded memory), the
EMCCD spectrum is rendered from the same blinking timeline and spectral trajectory, and the
truth goes to ``/user/ground_truth`` (see :mod:`spad.particle` for the layout).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from spad.errors import SpadError

PARTICLES = ("monomer", "dimer", "pair")
SPECTRUM_S_DEFAULT = 120.0
"""The experiment integrates a particle's spectrum over 120 s (docs/physics.md, "The
experiment")."""


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

    if not (math.isfinite(args.duration) and args.duration > 0):
        bad(f"--duration must be a positive number of seconds, not {args.duration:g}")
    if args.seed < 0:
        bad(f"--seed must be >= 0, not {args.seed}")
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
    out = Path(args.output)
    if not out.parent.is_dir():
        bad(f"{out.parent}: no such directory")


def build(particle: str, seed: int, neck_nm: float | None = None, vary: bool = False,
          mode: str = "T3", count_rate: float | None = None,
          bleach_s: float | None = None) -> tuple[Any, Any]:
    """Emitters and detection chain for one simulated particle.

    Returns
    -------
    (emitters, detection)
        ``emitters`` is an Emitter or a pair of them; ``detection`` a
        :class:`simulators.detection.Detection` whose collection efficiency gives
        ``count_rate`` (cps, both detectors) in the brightest state, if given. With
        ``bleach_s`` every emitter photobleaches at that time.
    """
    from simulators.detection import Detection
    from simulators.emitter import dimer, monomer, pair

    rng = np.random.default_rng(seed) if vary else None
    if particle == "monomer":
        emitters: Any = monomer(rng=rng)
    elif particle == "dimer":
        emitters = dimer(6.0 if neck_nm is None else neck_nm, rng=rng)
    elif particle == "pair":
        emitters = pair(rng=rng)
    else:
        raise SpadError(f"simulate: unknown particle {particle!r} (use {', '.join(PARTICLES)})")
    if bleach_s is not None:
        emitters = (tuple(dataclasses.replace(e, bleach_s=bleach_s) for e in emitters)
                    if isinstance(emitters, tuple) else
                    dataclasses.replace(emitters, bleach_s=bleach_s))
    detection = Detection(mode=mode)
    if count_rate is not None:
        ems = emitters if isinstance(emitters, tuple) else (emitters,)
        # Mean detected photons per pulse are proportional to the detection efficiency.
        bright = sum(float(e.state_moments(detection.efficiency)[0].max() * e.rep_rate_hz)
                     for e in ems)
        collection = detection.collection_efficiency * count_rate / bright
        if collection > 1:
            most = bright / detection.collection_efficiency
            raise SpadError(f"simulate: --count-rate {count_rate:g} cps is out of reach: at "
                            f"most {most:.0f} cps with every photon collected")
        detection = detection.replace(collection_efficiency=collection)
    return emitters, detection


def ground_truth(sim: Any, particle: str, neck_nm: float | None, spectrum: Any,
                 lines: list[Any]) -> dict[str, Any]:
    """The truth stored in ``/user/ground_truth`` of a simulated particle file."""
    from simulators.emitter import dimer_shift_ev
    from simulators.spectrum import spectral_truth

    t = sim.truth
    emitters: dict[str, Any] = {}
    for i, e in enumerate(t.emitters):
        start, state, dwell = t.timeline(i)
        times, peak = t.spectral(i)
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
                         "duration_s": np.asarray(dwell, dtype=float)},
            "spectral": {"time_s": np.asarray(times, dtype=float),
                         "peak_ev": np.asarray(peak, dtype=float)},
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
    from tqdm import tqdm

    from simulators.spectrum import SpectrumSetup, particle_lines, spectrum_from_truth
    from simulators.stream import simulate
    from spad.optics import HC_EV_M
    from spad.particle import write_particle

    emitters, detection = build(particle, seed, neck_nm, vary, mode, count_rate, bleach_s)
    sim = simulate(emitters, detection, duration_s, seed, chunk_s=1.0)
    lines = particle_lines(sim.truth)
    spectrum_s = (min(duration_s, SPECTRUM_S_DEFAULT) if spectrum_s is None
                  else min(spectrum_s, duration_s))
    spectrum = None
    if spectrum_s >= exposure_s:
        setup = SpectrumSetup(exposure_s=exposure_s, em_gain=em_gain, read_mode=read_mode)
        spectrum = spectrum_from_truth(sim.truth, setup, duration_s=spectrum_s,
                                       rng=np.random.default_rng([seed, 0x5EC7]))
    truth = ground_truth(sim, particle, neck_nm, spectrum, lines)
    peaks = [float(e.peak_ev) for e in sim.truth.emitters]
    description = (f"simulated {particle}"
                   + (f" (neck {truth['neck_nm']:g} nm)" if truth["neck_nm"] is not None else "")
                   + f", seed {seed}, {duration_s:g} s, spad simulate")
    fields: dict[str, Any] = {}
    if fmt == "h5":
        fields = {"excitation_wavelengths": [405e-9],
                  "detection_wavelengths": [HC_EV_M / float(np.mean(peaks))],
                  "sample_name": f"simulated {particle}"}
    chunks = tqdm(sim.chunks(), total=math.ceil(duration_s / sim.chunk_s), unit="s",
                  desc="simulate", file=sys.stderr, leave=False, disable=not progress)
    written = write_particle(out, chunks, sim.timing, spectrum, truth, format=fmt,
                             description=description, overwrite=overwrite, **fields)
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
