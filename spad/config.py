"""The rig file: which instruments a microscope has and how each is set up (TOML).

A rig file has up to three tables, ``[tagger]``, ``[camera]`` and ``[spectrograph]``. Each names
its back-end (``"simulated"`` or a real driver) and that driver's settings; a missing table or a
missing file means the simulated instrument. A ``[stage]`` table adds a sample stage (none
without it), and ``[slide]`` sets what a simulated rig's slide holds (see below). Every key is
checked: an unknown key, a value of the wrong type or an impossible setting is one
:class:`~spad.errors.ConfigError` naming the file and the key
(``rig.toml: [camera] em_gain: 5000 outside 1..1000``).

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

    [stage]
    backend = "pi"                 # "simulated" or "pi" (Physik Instrumente, through pipython)
    connection = "usb"             # "usb", "tcp" or "rs232"
    serial = ""                    # usb: the controller's serial number, "" = the only one
    address = ""                   # tcp: the controller's IP address
    ip_port = 50000
    port = ""                      # rs232: e.g. /dev/ttyUSB1 or COM4
    baud = 115200
    axes = "1 2 3"                 # the controller's axis identifiers for x, y (and z)
    units_per_m = 1e6              # controller units per metre (µm for PI piezo stages)
    timeout_ms = 1000              # pipython's timeout for one answer
    settle_timeout_s = 5.0         # longest wait for a move to be on target

    [slide]                        # the simulated rig's slide (simulated tagger only)
    n_particles = 30
    dimer_fraction = 0.5           # the rest are monomers
    neck_nm = [4.0, 8.0]           # dimer neck diameters, drawn uniformly
    centre_m = [100e-6, 100e-6]    # centre of the populated square, stage coordinates
    size_m = 10e-6                 # side of the populated square
    min_separation_m = 1e-6
    fragile_fraction = 0.0         # particles that photobleach after a light dose ...
    bleach_dose_s = [0.02, 0.08]   # ... of this many seconds in the focus centre
    count_rate_hz = 0.0            # monomer bright-state rate in focus (0: ~30 kcps)
    drift_m_per_s = [0.0, 0.0]     # sample drift per second of light on it
    seed = -1                      # -1: a new slide (and new particles) every time

With a simulated tagger and a simulated stage the rig's tagger looks at the slide through the
focus the stage moves (:mod:`spad.simulators.slide`); with a simulated tagger and ``[slide]`` but
no stage, each recording is a new particle of the slide's mix.

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

__all__ = ["ConfigError", "TaggerSettings", "CameraSettings", "SpectrographSettings",
           "StageSettings", "SlideSettings", "Rig", "load_rig", "parse_rig"]


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
class StageSettings:
    """``[stage]`` of the rig file."""

    backend: str = "simulated"
    connection: str = "usb"
    serial: str = ""
    address: str = ""
    ip_port: int = 50000
    port: str = ""
    baud: int = 115200
    axes: str = "1 2 3"
    units_per_m: float = 1e6
    timeout_ms: int = 1000
    settle_timeout_s: float = 5.0


@dataclass(frozen=True)
class SlideSettings:
    """``[slide]`` of the rig file (the simulated slide, :mod:`spad.simulators.slide`)."""

    n_particles: int = 30
    dimer_fraction: float = 0.5
    neck_nm: tuple[float, ...] = (4.0, 8.0)
    centre_m: tuple[float, ...] = (100e-6, 100e-6)
    size_m: float = 10e-6
    min_separation_m: float = 1e-6
    fragile_fraction: float = 0.0
    bleach_dose_s: tuple[float, ...] = (0.02, 0.08)
    count_rate_hz: float = 0.0
    drift_m_per_s: tuple[float, ...] = (0.0, 0.0)
    seed: int = -1


@dataclass(frozen=True)
class Rig:
    """A whole rig file, checked. ``path`` is ``None`` for the default (simulated) rig;
    ``stage`` is ``None`` without a ``[stage]`` table, ``slide`` without a ``[slide]`` table."""

    tagger: TaggerSettings = field(default_factory=TaggerSettings)
    camera: CameraSettings = field(default_factory=CameraSettings)
    spectrograph: SpectrographSettings = field(default_factory=SpectrographSettings)
    path: str | None = None
    stage: StageSettings | None = None
    slide: SlideSettings | None = None


# Allowed values and ranges; a key absent here only has its type checked.
_CHOICES = {
    ("tagger", "backend"): ("simulated", "picoquant", "swabian"),
    ("tagger", "family"): ("hydraharp", "multiharp", "picoharp"),
    ("tagger", "mode"): ("T2", "T3"),
    ("tagger", "reference"): ("internal", "external"),
    ("camera", "backend"): ("simulated", "andor"),
    ("spectrograph", "backend"): ("simulated", "acton"),
    ("spectrograph", "link"): ("rs232", "usb"),
    ("stage", "backend"): ("simulated", "pi"),
    ("stage", "connection"): ("usb", "tcp", "rs232"),
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
    ("stage", "ip_port"): (1, 65535),
    ("stage", "baud"): (300, 4_000_000),
    ("stage", "units_per_m"): (1.0, 1e12),
    ("stage", "timeout_ms"): (10, 600_000),
    ("stage", "settle_timeout_s"): (0.01, 600.0),
    ("slide", "n_particles"): (0, 10_000),
    ("slide", "dimer_fraction"): (0.0, 1.0),
    ("slide", "neck_nm"): (0.0, 20.0),
    ("slide", "centre_m"): (-1.0, 1.0),
    ("slide", "size_m"): (1e-7, 1e-2),
    ("slide", "min_separation_m"): (0.0, 1e-3),
    ("slide", "fragile_fraction"): (0.0, 1.0),
    ("slide", "bleach_dose_s"): (0.0, 1e6),
    ("slide", "count_rate_hz"): (0.0, 1e8),
    ("slide", "drift_m_per_s"): (-1e-6, 1e-6),
    ("slide", "seed"): (-1, 2**31 - 1),
}
_TABLES = {"tagger": TaggerSettings, "camera": CameraSettings,
           "spectrograph": SpectrographSettings, "stage": StageSettings,
           "slide": SlideSettings}


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
    if isinstance(s, StageSettings):
        if not 2 <= len(s.axes.split()) <= 3:
            raise ConfigError(f"{where} axes: {s.axes!r} must name 2 or 3 controller axes "
                              "(x y [z]), e.g. \"1 2 3\"")
        if s.backend == "pi" and s.connection == "tcp" and not s.address:
            raise ConfigError(f"{where} address: a tcp connection needs the controller's "
                              "IP address")
        if s.backend == "pi" and s.connection == "rs232" and not s.port:
            raise ConfigError(f"{where} port: an rs232 connection needs a serial port")
    if isinstance(s, SlideSettings):
        for key in ("neck_nm", "centre_m", "bleach_dose_s", "drift_m_per_s"):
            v = getattr(s, key)
            pair = key in ("centre_m", "drift_m_per_s")
            if len(v) != 2 or (not pair and v[0] > v[1]):
                raise ConfigError(f"{where} {key}: give two numbers"
                                  + (" (x, y)" if pair else " (low, high)"))
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
