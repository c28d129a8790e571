"""``spad devices [--config rig.toml] [--check] [--json]``: what the rig describes, opened and
asked.

For each instrument the rig file names (the default rig: all simulated), print its back-end,
open it, and print its identity and state: the spectrograph's model, serial, position and
gratings; the camera's model, serial, temperature and its status; the tagger's model, serial,
resolution, sync and count rates. An instrument that fails to open is reported with its error
and the others are still tried; the exit code is then 1.

``--check`` (first light at the lab) adds each instrument's self-test
(:mod:`spad.app.first_light`): PASS or FAIL with its numbers and each problem named; the exit
code is 0 only when every instrument passes. ``--simulate-fault NAME`` (repeatable) injects a
fault into a simulated instrument, to see what the check reports for it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from spad.errors import DeviceError, SpadError

# Faults the simulated instruments can play (simulators/instruments.py, simulators/tagger.py);
# written out here so that --help lists them without importing the simulators.
SIMULATED_FAULTS = {"stuck": "spectrograph", "position_error": "spectrograph",
                    "cooler_off": "camera", "no_frame": "camera", "saturated": "camera",
                    "no_sync": "tagger", "dead_detector": "tagger"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``devices`` sub-command."""
    p = subparsers.add_parser(
        "devices", help="list and open the instruments of a rig file",
        description="List the instruments a rig file describes (default: all simulated), open "
                    "each and print its identity and state.")
    p.add_argument("--config", metavar="RIG.toml", help="rig file (default: simulated rig)")
    p.add_argument("--check", action="store_true",
                   help="run each instrument's first-light self-test (tagger: 1 s of counts, "
                        "sync rate, resolution; camera: temperature, one frame; "
                        "spectrograph: a 1 nm move and back, grating); exit 0 only if all pass")
    p.add_argument("--simulate-fault", action="append", default=[], metavar="NAME",
                   choices=sorted(SIMULATED_FAULTS),
                   help="with --check: make a simulated instrument play this fault "
                        f"({', '.join(sorted(SIMULATED_FAULTS))}); repeatable")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _info(instrument: Any) -> dict[str, Any]:
    get = getattr(instrument, "get_device_info", None)
    return dict(get()) if get is not None else {}


def _spectrograph(mono: Any) -> dict[str, Any]:
    out = _info(mono)
    out.update(
        centre_wavelength_nm=round(mono.get_centre_wavelength() * 1e9, 3),
        grating=mono.get_grating(),
        gratings=[{"index": g.index, "grooves_per_mm": g.groove_density_per_m / 1e3,
                   "blaze": g.blaze} for g in mono.get_gratings()],
        focal_length_m=mono.get_focal_length())
    return out


def _camera(cam: Any) -> dict[str, Any]:
    out = _info(cam)
    # the size and pixel pitch, unless the device's own info already gave them
    if "n_rows" not in out:
        w, h = cam.get_detector_size()
        out["detector"] = f"{w} x {h}"
    if "pixel_size_m" not in out:
        out["pixel_size_m"] = cam.get_pixel_size()
    out.update(temperature_c=round(cam.get_temperature(), 1),
               temperature_status=cam.get_temperature_status(),
               exposure_s=cam.get_exposure(), em_gain=cam.get_em_gain())
    return out


def _tagger(tagger: Any) -> dict[str, Any]:
    out = {"model": getattr(tagger, "name", type(tagger).__name__)}
    out.update(_info(tagger))
    cfg = tagger.config
    out.update(mode=cfg.mode, record_type=tagger.record_type, inputs=tagger.n_channels,
               base_resolution_ps=round(tagger.base_resolution_s * 1e12, 3),
               sync_divider=cfg.sync_divider, binning=cfg.binning,
               sync_rate_hz=tagger.sync_rate_hz(),
               count_rates_hz=[round(r, 1) for r in tagger.count_rates_hz()])
    warnings = getattr(tagger, "warnings", None)
    if callable(warnings):                  # PicoQuant: rates too high/low, divider, ...
        out["warnings"] = warnings() or "none"
    return out


def _stage(stage: Any) -> dict[str, Any]:
    pos, rng = stage.get_position(), stage.get_range()
    return {"model": getattr(stage, "name", type(stage).__name__),
            "position_um": {a: round(v * 1e6, 3) for a, v in pos.items()},
            "range_um": {a: [round(lo * 1e6, 3), round(hi * 1e6, 3)]
                         for a, (lo, hi) in rng.items()},
            "on_target": stage.is_settled()}


def _faults(args: argparse.Namespace, rig: Any) -> dict[str, list[str]]:
    """``--simulate-fault`` names by instrument, refused for a real instrument."""
    if args.simulate_fault and not args.check:
        raise SpadError("--simulate-fault: only with --check")
    out: dict[str, list[str]] = {}
    for name in args.simulate_fault:
        kind = SIMULATED_FAULTS[name]
        backend = getattr(rig, kind).backend
        if backend != "simulated":
            raise SpadError(f"--simulate-fault {name}: the {kind} of this rig is {backend!r}, "
                            "not simulated")
        out.setdefault(kind, []).append(name)
    return out


def run(args: argparse.Namespace) -> int:
    # imported here, not at the top: every ``spad`` command registers this module's parser,
    # and the self-tests pull in the record decoders (numba)
    from spad.app import first_light
    from spad.app.rig import open_camera, open_spectrograph, open_stage, open_tagger
    from spad.config import load_rig

    checks = {"spectrograph": first_light.check_spectrograph,
              "camera": first_light.check_camera, "tagger": first_light.check_tagger}
    rig = load_rig(args.config)
    faults = _faults(args, rig)
    report: dict[str, Any] = {"rig": rig.path or "default (simulated)"}
    failed = False
    mono = None
    steps = [("spectrograph", rig.spectrograph.backend,
              lambda: open_spectrograph(rig.spectrograph), _spectrograph),
             ("camera", rig.camera.backend, lambda: open_camera(rig.camera, mono), _camera),
             ("tagger", rig.tagger.backend,
              lambda: open_tagger(rig.tagger, realtime=False), _tagger)]
    if rig.stage is not None:
        steps.append(("stage", rig.stage.backend,
                      lambda: open_stage(rig.stage, realtime=False), _stage))
    opened = []
    try:
        for kind, backend, opener, describe in steps:
            entry: dict[str, Any] = {"backend": backend}
            try:
                inst = opener()
                opened.append(inst)
                if kind == "spectrograph":
                    mono = inst
                for fault in faults.get(kind, []):
                    inst.inject(fault)
                entry.update(describe(inst))
            except DeviceError as exc:
                entry["error"] = str(exc)
                failed = True
            if args.check:
                if "error" in entry:
                    entry["check"] = {"passed": False, "problems": [entry["error"]]}
                elif kind in checks:        # the stage has no self-test: its state is shown
                    check = checks[kind](inst)
                    entry["check"] = check.as_dict()
                    failed |= not check.passed
            report[kind] = entry
    finally:
        for inst in reversed(opened):
            inst.close()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"rig: {report['rig']}")
        for kind in ("spectrograph", "camera", "tagger", "stage"):
            if kind not in report:
                continue
            entry = report[kind]
            check = entry.pop("check", None)
            verdict = "" if check is None else (" PASS" if check["passed"] else " FAIL")
            print(f"{kind} ({entry.pop('backend')}):{verdict}")
            for key, value in entry.items():
                if key == "gratings":
                    value = ", ".join(f"{g['index']}: {g['grooves_per_mm']:g} g/mm "
                                      f"{g['blaze']}".rstrip() for g in value)
                print(f"  {key}: {value}")
            if check is not None and "error" not in entry:     # else: the error says it
                print("  self-test:")
                for key, value in check.items():
                    if key not in ("passed", "problems") and entry.get(key) != value:
                        print(f"    {key}: {value}")
                for problem in check["problems"]:
                    print(f"    FAIL: {problem}")
        if args.check:
            print("first light: " + ("all instruments pass" if not failed else "FAILED"))
    return 1 if failed else 0
