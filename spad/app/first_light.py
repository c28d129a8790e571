"""First light at the lab: a short self-test of each instrument (``spad devices --check``).

Each check takes an open instrument, measures a few numbers and says pass or fail, naming what
is wrong:

- tagger (:func:`check_tagger`): one measurement of ``duration_s`` (1 s) through the whole data
  path (start, read, decode), counting each detector's photons and, in T2, the sync records;
  the sync rate from its counter; the resolution, record units and clock it reports (PicoQuant:
  internal or external reference; Swabian: clock period). It fails without a sync signal,
  with a detector that counts nothing, or when records were lost;
- camera (:func:`check_camera`): temperature and cooler status, one frame at the set exposure,
  its mean and how many pixels sit at the ADC's full scale. It fails with the cooler off or a
  drifted temperature, without a frame, with saturated pixels, or with a frame of one value
  (no read-out);
- spectrograph (:func:`check_spectrograph`): a move of +1 nm and back, each end read back, and
  the grating in the turret. It fails when either end is more than :data:`MOVE_TOLERANCE_M`
  from its target (a drive that does not turn or loses steps) or the grating is unknown.

A :class:`~spad.errors.DeviceError` during a check is a failure with the device's message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spad.errors import DeviceError
from spad.formats.records import Decoder
from spad.photons import SYNC

MOVE_TOLERANCE_M = 0.2e-9
"""Largest accepted error of the round-trip move: the wavelength accuracy Princeton Instruments
specifies for the Acton SpectraPro series (+-0.2 nm with a 1200 g/mm grating)."""

MOVE_STEP_M = 1e-9
"""The small move of the spectrograph check."""

FRAME_TIMEOUT_S = 10.0
"""How long the camera check waits for its frame beyond the exposure."""

MIN_SYNC_HZ = 1e3
"""Below this the sync input sees no laser (pulsed lasers run at 1-80 MHz)."""


@dataclass
class Check:
    """Outcome of one instrument's self-test: its numbers and the problems found."""

    numbers: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, **self.numbers, "problems": list(self.problems)}


def _guarded(check: Check, fn: Any, *args: Any) -> Check:
    try:
        fn(check, *args)
    except DeviceError as exc:
        check.problems.append(str(exc))
    return check


def check_tagger(tagger: Any, duration_s: float = 1.0) -> Check:
    """Count rates over ``duration_s``, sync rate, resolution (see the module docstring)."""
    return _guarded(Check(), _tagger, tagger, duration_s)


def _tagger(check: Check, tagger: Any, duration_s: float) -> None:
    cfg = tagger.config
    n = check.numbers
    n.update(mode=cfg.mode, record_type=tagger.record_type,
             base_resolution_ps=round(tagger.base_resolution_s * 1e12, 3))
    info = tagger.get_device_info() if hasattr(tagger, "get_device_info") else {}
    n.update({k: info[k] for k in ("reference_clock", "clock_period_ps") if k in info})
    sync_hz = float(tagger.sync_rate_hz())
    n["sync_rate_hz"] = round(sync_hz, 1)
    if sync_hz < MIN_SYNC_HZ:
        check.problems.append(f"no sync signal: the sync input counts {sync_hz:g} Hz "
                              "(laser off, or its sync cable unplugged?)")
        if cfg.mode == "T3":
            return                  # T3 records are timed against the sync: nothing to count
    timing = tagger.timing
    if timing.nanotime_unit:
        n["tcspc_bin_ps"] = round(timing.nanotime_unit * 1e12, 3)
    decoder = Decoder(tagger.record_type, timing)
    counts = np.zeros(tagger.n_channels + 1, np.int64)     # index 0: sync records (T2)
    tagger.start(duration_s)
    try:
        while (words := tagger.read()) is not None:
            det = decoder.decode(words).detectors
            if det.size:
                counts += np.bincount(det.astype(np.int64), minlength=counts.size)[:counts.size]
    finally:
        tagger.stop()
    n["counted_rates_hz"] = [round(float(c) / duration_s, 1) for c in counts[1:]]
    if cfg.mode == "T2":
        n["sync_records_per_s"] = round(float(counts[SYNC]) / duration_s, 1)
    for i, c in enumerate(counts[1:], start=1):
        if c == 0:
            check.problems.append(f"detector {i}: no counts in {duration_s:g} s (detector off, "
                                  "or its cable unplugged?)")
    if decoder.n_gaps:
        check.problems.append(f"{decoder.n_gaps} records follow lost data (FIFO overrun)")


def check_camera(camera: Any, timeout_s: float | None = None) -> Check:
    """Temperature, status and one frame, waiting ``timeout_s`` (default
    :data:`FRAME_TIMEOUT_S`) beyond the exposure (see the module docstring)."""
    return _guarded(Check(), _camera, camera,
                    FRAME_TIMEOUT_S if timeout_s is None else timeout_s)


def _camera(check: Check, camera: Any, timeout_s: float) -> None:
    n = check.numbers
    temperature = float(camera.get_temperature())
    status = camera.get_temperature_status()
    n.update(temperature_c=round(temperature, 1), temperature_status=status)
    if status == "off":
        check.problems.append(f"cooler off (sensor at {temperature:.1f} °C)")
    elif status == "drifted":
        check.problems.append(f"temperature drifted from its set point ({temperature:.1f} °C)")
    exposure = float(camera.get_exposure())
    n["exposure_s"] = exposure
    frame = np.asarray(camera.snap(exposure + timeout_s))
    info = camera.get_device_info() if hasattr(camera, "get_device_info") else {}
    if "adc_bits" in info:
        full_scale = 2 ** int(info["adc_bits"]) - 1
    else:                           # a camera that does not say: its data type's largest value
        full_scale = int(np.iinfo(frame.dtype).max) if frame.dtype.kind in "iu" else math.inf
    saturated = int(np.count_nonzero(frame >= full_scale))
    n.update(frame_shape=list(frame.shape), frame_mean_adu=round(float(frame.mean()), 1),
             frame_max_adu=int(frame.max()), saturated_pixels=saturated)
    if saturated:
        check.problems.append(f"{saturated} of {frame.size} pixels saturated (at {full_scale} "
                              "ADU, the ADC's full scale): light leak, shutter open to the "
                              "room, or EM gain too high")
    if frame.size > 1 and int(frame.max()) == int(frame.min()):
        check.problems.append(f"every pixel reads {int(frame.max())} ADU: no read-out")


def check_spectrograph(mono: Any) -> Check:
    """A small move and back, and the grating (see the module docstring)."""
    return _guarded(Check(), _spectrograph, mono)


def _spectrograph(check: Check, mono: Any) -> None:
    n = check.numbers
    gratings = [g.index for g in mono.get_gratings()]
    grating = mono.get_grating()
    n.update(grating=grating, gratings=gratings)
    if grating not in gratings:
        check.problems.append(f"grating {grating} is not in the turret {gratings}")
    start = float(mono.get_centre_wavelength())
    target = start + MOVE_STEP_M
    mono.set_centre_wavelength(target)
    there = float(mono.get_centre_wavelength())
    mono.set_centre_wavelength(start)
    back = float(mono.get_centre_wavelength())
    n.update(start_nm=round(start * 1e9, 3), moved_to_nm=round(there * 1e9, 3),
             back_at_nm=round(back * 1e9, 3))
    for what, want, got in (("move", target, there), ("return", start, back)):
        if not (math.isfinite(got) and abs(got - want) <= MOVE_TOLERANCE_M):
            check.problems.append(f"{what} to {want * 1e9:.3f} nm ended at {got * 1e9:.3f} nm "
                                  f"(off by more than {MOVE_TOLERANCE_M * 1e9:g} nm: drive "
                                  "stuck or losing steps?)")
