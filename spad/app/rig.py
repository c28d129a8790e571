"""Opening the instruments a rig file names (the wiring of :mod:`spad.config` to the drivers).

:func:`open_rig` is what acquisition, the GUI and ``spad devices`` call::

    with open_rig("rig.toml") as rig:          # None: the default, fully simulated rig
        rig.spectrograph.set_centre_wavelength(630e-9)
        frame = rig.camera.snap()
        rig.tagger.start(10.0)

Each instrument is opened in turn (spectrograph, camera, stage, tagger) and all are closed on
leaving the block, also after an error; if one fails to open, those already open are closed and the
:class:`~spad.errors.DeviceError` naming it propagates. Simulated back-ends come from
:mod:`spad.simulators.instruments` and :mod:`spad.simulators.tagger`; real ones from ``drivers/``,
imported
only when the rig asks for them.

A rig with a ``[stage]`` table has ``rig.stage`` (a
:class:`~spad.drivers.interfaces.stage.StageInterface`, else ``None``). A simulated tagger then
looks at the simulated slide (``[slide]``) through the focus the simulated stage moves
(:class:`spad.simulators.slide.SlideTagger`); without a stage but with ``[slide]`` it sees a new
particle of the slide's mix at each recording (:class:`spad.simulators.slide.MixTagger`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from spad.config import (
    CameraSettings,
    Rig,
    SlideSettings,
    SpectrographSettings,
    StageSettings,
    TaggerSettings,
    load_rig,
)
from spad.drivers.interfaces.camera import CameraInterface
from spad.drivers.interfaces.spectrograph import SpectrographInterface
from spad.drivers.interfaces.stage import StageInterface
from spad.drivers.interfaces.tagger import TimeTagger

__all__ = ["Instruments", "open_rig", "open_spectrograph", "open_camera", "open_tagger",
           "open_stage"]


@dataclass
class Instruments:
    """The open instruments of a rig, and the settings they were opened with: the one rig type
    of the acquisition engine, ``spad acquire`` and the desktop app (from a rig file,
    :func:`open_rig`, or the simulated particle rig,
    :func:`spad.app.acquisition.simrig.simulated_rig`)."""

    tagger: TimeTagger
    camera: CameraInterface | None
    spectrograph: SpectrographInterface | None
    rig: Rig | None = None
    """``None``: not opened from a rig file (the simulated particle rig)."""
    stage: StageInterface | None = None
    """The sample stage (a rig file with a ``[stage]`` table), else ``None``."""
    slide: Any = None
    """The simulated slide (:class:`spad.simulators.slide.Slide`) of a simulated rig with a
    stage: its truth, for tests and demos."""


def open_spectrograph(s: SpectrographSettings, clock: Any = None) -> SpectrographInterface:
    """Create and open the spectrograph of ``s`` (a simulated one runs on ``clock``, default
    the wall clock)."""
    if s.backend == "acton":
        from spad.drivers.acton import ActonSpectrograph
        mono: SpectrographInterface = ActonSpectrograph(
            s.port, link=s.link, timeout_s=s.timeout_s, focal_length_m=s.focal_length_m,
            inclusion_angle_deg=s.inclusion_angle_deg, pixel_size_m=s.pixel_size_m)
    else:
        from spad.simulators.instruments import SimulatedSpectrograph
        mono = SimulatedSpectrograph(focal_length_m=s.focal_length_m, clock=clock)
    mono.open()
    return mono


def open_camera(s: CameraSettings, spectrograph: SpectrographInterface | None = None,
                clock: Any = None) -> CameraInterface:
    """Create and open the camera of ``s`` (a simulated one looks through ``spectrograph``
    and runs on ``clock``, default the wall clock)."""
    if s.backend == "andor":
        from spad.drivers.andor import AndorCamera
        cam: CameraInterface = AndorCamera(
            s.index, temperature_c=s.temperature_c, exposure_s=s.exposure_s,
            em_gain=s.em_gain, advanced_em_gain=s.advanced_em_gain, preamp=s.preamp,
            hsspeed=s.hsspeed, sensitivity_e_per_adu=s.sensitivity_e_per_adu)
        cam.open()
        return cam
    from spad.simulators.instruments import SimulatedCamera
    cam = SimulatedCamera(spectrograph=spectrograph, clock=clock)
    cam.open()
    try:
        cam.set_exposure(s.exposure_s)
        cam.set_em_gain(s.em_gain)
        cam.set_temperature(s.temperature_c)
        cam.set_read_mode("fvb")          # as the Andor driver opens: spectra, not images
    except BaseException:
        cam.close()
        raise
    return cam


def open_stage(s: StageSettings, *, realtime: bool = True, clock: Any = None
               ) -> StageInterface:
    """Create and open the sample stage of ``s`` (a simulated one runs on ``clock``; default
    the wall clock, or a simulated clock of its own with ``realtime=False``)."""
    if s.backend == "pi":
        from spad.drivers.pi import PIStage

        stage: StageInterface = PIStage(s.connection, serial=s.serial, address=s.address,
                                        ip_port=s.ip_port, port=s.port, baud=s.baud,
                                        axes=tuple(s.axes.split()), units_per_m=s.units_per_m,
                                        timeout_ms=s.timeout_ms)
    else:
        from spad.simulators.instruments import ManualClock
        from spad.simulators.stage import SimulatedStage, StageMotion

        if clock is None and not realtime:
            clock = ManualClock()
        stage = SimulatedStage(StageMotion(clock=clock))
    stage.open()
    return stage


def _slide_tagger(slide: SlideSettings, stage: StageInterface | None, camera: Any,
                  seed: int, realtime: bool, clock: Any) -> tuple[TimeTagger, Any]:
    """The simulated tagger over the slide (with a simulated stage) or its mix (without)."""
    from spad.simulators.instruments import SimulatedCamera
    from spad.simulators.slide import MixTagger, Slide, SlideTagger, spec_from_settings
    from spad.simulators.stage import SimulatedStage

    spec = spec_from_settings(slide)
    cam = camera if isinstance(camera, SimulatedCamera) else None
    if isinstance(stage, SimulatedStage):
        sl = Slide(spec)
        return SlideTagger(sl, stage, cam, seed=seed, realtime=realtime, clock=clock), sl
    return MixTagger(spec, cam, realtime=realtime, clock=clock), None


def open_tagger(s: TaggerSettings, *, seed: int = 0, realtime: bool = True,
                tagger: TimeTagger | None = None, clock: Any = None) -> TimeTagger:
    """Create, open and configure the time tagger of ``s``.

    ``seed`` and ``realtime`` only concern the simulated tagger (a monomer in focus; records at
    the pace of the wall clock unless ``realtime=False``).
    """
    offsets = tuple(x * 1e-9 for x in s.detector_offsets_ns)
    if len(offsets) == 1:
        offsets *= len(s.detectors)
    if s.backend == "picoquant":
        from spad.drivers.picoquant import FAMILIES
        tagger: Any = FAMILIES[s.family](
            library=s.library or None, serial=s.serial, mode=s.mode, reference=s.reference,
            sync_level_mv=s.sync_level_mv, sync_zero_cross_mv=s.sync_zero_cross_mv,
            input_levels_mv=s.input_levels_mv or (50.0,),
            input_zero_cross_mv=s.input_zero_cross_mv or (10.0,), detectors=s.detectors)
        tagger.open()
    elif s.backend == "swabian":
        from spad.drivers.swabian import SwabianTagger
        tagger = SwabianTagger(serial=s.serial, detectors=s.detectors,
                               sync_level_v=s.sync_level_mv / 1e3,
                               input_levels_v=tuple(v / 1e3 for v in s.input_levels_mv)
                               or (0.5,))
        tagger.open()
    elif tagger is not None:
        tagger.open()
    else:
        from spad.simulators.detection import Detection
        from spad.simulators.emitter import monomer
        from spad.simulators.tagger import SimulatedTagger
        tagger = SimulatedTagger(monomer(rng=seed), Detection(), seed=seed, realtime=realtime,
                                 clock=clock)
        tagger.open()
    try:
        tagger.configure(s.mode, s.sync_divider, s.binning, offsets, s.sync_offset_ns * 1e-9)
    except BaseException:
        tagger.close()
        raise
    return tagger


@contextmanager
def open_rig(config_path: str | os.PathLike[str] | Rig | None = None, *, seed: int = 0,
             realtime: bool = True) -> Iterator[Instruments]:
    """Open every instrument of the rig file ``config_path`` (``None``: all simulated; or a
    checked :class:`~spad.config.Rig`).

    With a simulated tagger and ``realtime=False``, the simulated instruments share the
    tagger's simulated clock (it moves on as photons are delivered, and as the stage and the
    spectrograph wait): a fast run records the same as a real-time one on any machine.

    Yields
    ------
    Instruments
        ``.tagger``, ``.camera``, ``.spectrograph`` (the drivers/interfaces types) and ``.rig``.
    """
    rig = config_path if isinstance(config_path, Rig) else load_rig(config_path)
    clock = None
    if not realtime and rig.tagger.backend == "simulated":
        from spad.simulators.instruments import ManualClock
        clock = ManualClock()
    with ExitStack() as stack:
        mono = open_spectrograph(rig.spectrograph, clock)
        stack.callback(mono.close)
        cam = open_camera(rig.camera, mono, clock)
        stack.callback(cam.close)
        stage = slide = sim = None
        if rig.stage is not None:
            stage = open_stage(rig.stage, realtime=realtime, clock=clock)
            stack.callback(stage.close)
        if rig.tagger.backend == "simulated" and (stage is not None or rig.slide is not None):
            sim, slide = _slide_tagger(rig.slide or SlideSettings(), stage, cam, seed, realtime,
                                       clock)
        tagger = open_tagger(rig.tagger, seed=seed, realtime=realtime, tagger=sim, clock=clock)
        stack.callback(tagger.close)
        yield Instruments(tagger, cam, mono, rig, stage, slide)
