"""The rig file: which instruments a microscope has and how each is set up (TOML).

A rig file has up to three tables, ``[tagger]``, ``[camera]`` and ``[spectrograph]``. Each names
its back-end (``"simulated"`` or a real driver) and that driver's settings; a missing table or a
missing file means the simulated instrument. Every key is checked: an unknown key, a value of
the wrong type or an impossible setting is one :class:`~spad.errors.ConfigError` naming the file
and the key (``rig.toml: [camera] em_gain: 5000 outside 1..1000``).

Example (all keys, with their defaults where they have one)::

    [tagger]
    backend = "picoquant"          # "simulated", "picoquant" or "swabian"
    family = "hydraharp"           # picoquant: "hydraharp", "multiharp" or "picoharp"
    library = "/opt/picoquant/hhlib/libhh400.so"   # or $SPAD_PICOQUANT_LIBRARY
    serial = ""                    # open this serial number; "" = the first device found
    mode = "T3"                    # "T2" or "T3"
    reference = "internal"         # reference clock: "internal" or "external" (10 MHz)
    sync_divider = 1
    binning = 3                    # T3 bin = base resolution x 2**binning (8 ps at 1 ps:
                                   # 32768 bins then span 262 ns, a laser down to 3.8 MHz)
    sync_level_mv = 50.0           # CFD discriminator level (HydraHarp, PicoHarp) or
    sync_zero_cross_mv = 10.0      # edge-trigger level (MultiHarp; zero cross unused)
    input_levels_mv = [50.0, 50.0]
    input_zero_cross_mv = [10.0, 10.0]
    sync_offset_ns = 0.0           # cable delay compensation of the sync input
    detector_offsets_ns = [0.0, 0.0]
    detectors = [1, 2]             # tagger inputs (from 1) wired to the two APDs

    [camera]
    backend = "andor"              # "simulated" or "andor"
    index = 0                      # Andor SDK camera index
    temperature_c = -80.0
    exposure_s = 0.1
    em_gain = 1.0                  # EM multiplication gain (1 = off)
    advanced_em_gain = false       # allow EM gain above 300 (can age the sensor)
    preamp = 0                     # pre-amplifier setting index (Andor "PreAmpGain" index)
    hsspeed = 0                    # horizontal read-out speed index
    sensitivity_e_per_adu = [16.0, 8.0, 4.0]   # per preamp index, from the test sheet

    [spectrograph]
    backend = "acton"              # "simulated" or "acton"
    port = "/dev/ttyUSB0"          # COM3 on Windows
    link = "usb"                   # "rs232" echoes every command, "usb" does not
    timeout_s = 5.0                # for one reply; moves have their own timeout
    focal_length_m = 0.300
    inclusion_angle_deg = 30.0
    pixel_size_m = 16e-6

The loader only reads and checks; :mod:`spad.app.rig` opens the instruments.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from spad.errors import SpadError

__all__ = ["ConfigError", "TaggerSettings", "CameraSettings", "SpectrographSettings", "Rig",
           "load_rig", "parse_rig"]


class ConfigError(SpadError, ValueError):
    """A rig file is unreadable or holds an unknown key, a wrong type or an impossible value."""


@dataclass(frozen=True)
class TaggerSettings:
    """``[tagger]`` of the rig file (see the module docstring)."""

    backend: str = "simulated"
    family: str = "hydraharp"
    library: str = ""
    serial: str = ""
    mode: str = "T3"
    reference: str = "internal"
    sync_divider: int = 1
    binning: int = 3
    sync_level_mv: float = 50.0
    sync_zero_cross_mv: float = 10.0
    input_levels_mv: tuple[float, ...] = (50.0, 50.0)
    input_zero_cross_mv: tuple[float, ...] = (10.0, 10.0)
    sync_offset_ns: float = 0.0
    detector_offsets_ns: tuple[float, ...] = (0.0, 0.0)
    detectors: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class CameraSettings:
    """``[camera]`` of the rig file."""

    backend: str = "simulated"
    index: int = 0
    temperature_c: float = -80.0
    exposure_s: float = 0.1
    em_gain: float = 1.0
    advanced_em_gain: bool = False
    preamp: int = 0
    hsspeed: int = 0
    sensitivity_e_per_adu: tuple[float, ...] = ()


@dataclass(frozen=True)
class SpectrographSettings:
    """``[spectrograph]`` of the rig file."""

    backend: str = "simulated"
    port: str = ""
    link: str = "usb"
    timeout_s: float = 5.0
    focal_length_m: float = 0.300
    inclusion_angle_deg: float = 30.0
    pixel_size_m: float = 16e-6


@dataclass(frozen=True)
class Rig:
    """A whole rig file, checked. ``path`` is ``None`` for the default (simulated) rig."""

    tagger: TaggerSettings = field(default_factory=TaggerSettings)
    camera: CameraSettings = field(default_factory=CameraSettings)
    spectrograph: SpectrographSettings = field(default_factory=SpectrographSettings)
    path: str | None = None


# Allowed values and ranges; a key absent here only has its type checked.
_CHOICES = {
    ("tagger", "backend"): ("simulated", "picoquant", "swabian"),
    ("tagger", "family"): ("hydraharp", "multiharp", "picoharp"),
    ("tagger", "mode"): ("T2", "T3"),
    ("tagger", "reference"): ("internal", "external"),
    ("camera", "backend"): ("simulated", "andor"),
    ("spectrograph", "backend"): ("simulated", "acton"),
    ("spectrograph", "link"): ("rs232", "usb"),
}
_RANGES = {
    ("tagger", "sync_divider"): (1, 16),
    ("tagger", "binning"): (0, 24),
    ("tagger", "sync_level_mv"): (-1200.0, 1200.0),
    ("tagger", "sync_zero_cross_mv"): (0.0, 40.0),
    ("tagger", "input_levels_mv"): (-1200.0, 1200.0),
    ("tagger", "input_zero_cross_mv"): (0.0, 40.0),
    ("tagger", "sync_offset_ns"): (-99.999, 99.999),
    ("tagger", "detector_offsets_ns"): (-99.999, 99.999),
    ("tagger", "detectors"): (1, 64),
    ("camera", "index"): (0, 7),
    ("camera", "temperature_c"): (-120.0, 30.0),
    ("camera", "exposure_s"): (1e-5, 3600.0),
    ("camera", "em_gain"): (1.0, 1000.0),
    ("camera", "preamp"): (0, 7),
    ("camera", "hsspeed"): (0, 7),
    ("camera", "sensitivity_e_per_adu"): (1e-3, 1e3),
    ("spectrograph", "timeout_s"): (0.05, 600.0),
    ("spectrograph", "focal_length_m"): (0.05, 2.0),
    ("spectrograph", "inclusion_angle_deg"): (0.0, 90.0),
    ("spectrograph", "pixel_size_m"): (1e-7, 1e-3),
}
_TABLES = {"tagger": TaggerSettings, "camera": CameraSettings,
           "spectrograph": SpectrographSettings}


def _check_scalar(where: str, key: str, kind: type, value: Any) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} {key}: expected true or false, not {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} {key}: expected an integer, not {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} {key}: expected a number, not {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where} {key}: {value!r} is not a finite number")
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where} {key}: expected a string, not {value!r}")
    return value


def _parse_table(name: str, table: Any, source: str) -> Any:
    cls = _TABLES[name]
    where = f"{source}: [{name}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table, not {table!r}")
    types = {f.name: f.type for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in types:
            raise ConfigError(f"{where} unknown key {key!r} (known: {', '.join(types)})")
        kind = types[key]
        if kind.startswith("tuple"):
            item = float if "float" in kind else int
            if not isinstance(value, list):
                raise ConfigError(f"{where} {key}: expected a list, not {value!r}")
            value = tuple(_check_scalar(where, f"{key}[{i}]", item, v)
                          for i, v in enumerate(value))
            items = value
        else:
            value = _check_scalar(where, key, {"str": str, "int": int, "float": float,
                                               "bool": bool}[kind], value)
            items = (value,)
        if (name, key) in _CHOICES and value not in _CHOICES[name, key]:
            raise ConfigError(f"{where} {key}: {value!r} is not one of "
                              f"{', '.join(map(repr, _CHOICES[name, key]))}")
        if (name, key) in _RANGES:
            lo, hi = _RANGES[name, key]
            for v in items:
                if not lo <= v <= hi:
                    raise ConfigError(f"{where} {key}: {v!r} outside {lo:g}..{hi:g}")
        values[key] = value
    settings = cls(**values)
    _check_consistency(where, settings)
    return settings


def _check_consistency(where: str, s: Any) -> None:
    """What single keys cannot say: settings that contradict each other."""
    if isinstance(s, TaggerSettings):
        if len(set(s.detectors)) != len(s.detectors) or not s.detectors:
            raise ConfigError(f"{where} detectors: {list(s.detectors)} must name distinct "
                              "inputs")
        for key in ("input_levels_mv", "input_zero_cross_mv", "detector_offsets_ns"):
            if len(getattr(s, key)) not in (0, 1, len(s.detectors)):
                raise ConfigError(f"{where} {key}: one value per detector "
                                  f"({len(s.detectors)}), not {len(getattr(s, key))}")
    if isinstance(s, CameraSettings):
        if s.em_gain > 300 and not s.advanced_em_gain:
            raise ConfigError(f"{where} em_gain: {s.em_gain:g} above 300 needs "
                              "advanced_em_gain = true (high gain ages the EM register)")
    if isinstance(s, SpectrographSettings) and s.backend == "acton" and not s.port:
        raise ConfigError(f"{where} port: the Acton needs a serial port (e.g. /dev/ttyUSB0)")


def parse_rig(text: str, source: str = "rig file") -> Rig:
    """Check the TOML ``text`` of a rig file; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None
    for key in data:
        if key not in _TABLES:
            raise ConfigError(f"{source}: unknown table or key {key!r} "
                              f"(known: {', '.join(f'[{t}]' for t in _TABLES)})")
    parts = {name: _parse_table(name, data[name], source) for name in _TABLES if name in data}
    return Rig(**parts, path=source)


def load_rig(path: str | os.PathLike[str] | None) -> Rig:
    """Read and check a rig file; ``None`` gives the default, fully simulated rig."""
    if path is None:
        return Rig()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such rig file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the rig file ({exc})") from None
    return parse_rig(text, str(p))
