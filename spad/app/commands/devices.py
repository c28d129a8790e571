"""``spad devices [--config rig.toml] [--json]``: what the rig describes, opened and asked.

For each instrument the rig file names (the default rig: all simulated), print its back-end,
open it, and print its identity and state: the spectrograph's model, serial, position and
gratings; the camera's model, serial, temperature and its status; the tagger's model, serial,
resolution, sync and count rates. An instrument that fails to open is reported with its error
and the others are still tried; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from spad.app.rig import open_camera, open_spectrograph, open_stage, open_tagger
from spad.config import load_rig
from spad.errors import DeviceError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``devices`` sub-command."""
    p = subparsers.add_parser(
        "devices", help="list and open the instruments of a rig file",
        description="List the instruments a rig file describes (default: all simulated), open "
                    "each and print its identity and state.")
    p.add_argument("--config", metavar="RIG.toml", help="rig file (default: simulated rig)")
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


def run(args: argparse.Namespace) -> int:
    rig = load_rig(args.config)
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
                entry.update(describe(inst))
            except DeviceError as exc:
                entry["error"] = str(exc)
                failed = True
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
            print(f"{kind} ({entry.pop('backend')}):")
            for key, value in entry.items():
                if key == "gratings":
                    value = ", ".join(f"{g['index']}: {g['grooves_per_mm']:g} g/mm "
                                      f"{g['blaze']}".rstrip() for g in value)
                print(f"  {key}: {value}")
    return 1 if failed else 0
