"""A simulated rig with a chosen particle in focus: a simulated HydraHarp looking at one
simulated monomer, dimer or pair, and a simulated EMCCD behind a simulated spectrograph seeing
the same particle's emission lines. With ``particle="mix"`` every recording is a new particle
of a slide's mix of monomers and dimers with their spread
(:class:`spad.simulators.slide.MixTagger`; the desktop app's live mode uses it).
(``spad.app.rig.open_rig(None)``, the default simulated rig of a rig file, has a fixed monomer
and a camera that sees no particle; ``spad acquire`` uses this one without ``--config`` so
that ``--particle`` and ``--seed`` choose what is recorded.)"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from spad.app.rig import Instruments
from spad.simulators.recipe import build


@contextmanager
def simulated_rig(particle: str = "monomer", seed: int = 0, realtime: bool = True,
                  count_rate: float | None = None, camera: bool = True,
                  vary: bool = True, dimer_fraction: float = 0.5) -> Iterator[Instruments]:
    """``with simulated_rig("dimer", seed=3) as rig:`` -> ``rig.tagger``, ``rig.camera``,
    ``rig.spectrograph`` (camera and spectrograph ``None`` with ``camera=False``).
    ``dimer_fraction`` is the mix of ``particle="mix"``.

    With ``realtime=False`` the camera and spectrograph run on the tagger's simulated clock
    (it moves on as photons are delivered), so what a fast recording holds (frames included)
    does not depend on the machine's speed."""
    from spad.simulators.instruments import (
        ManualClock,
        Scene,
        SimulatedCamera,
        SimulatedSpectrograph,
        WallClock,
    )
    from spad.simulators.slide import MixTagger, SlideSpec
    from spad.simulators.spectrum import particle_lines
    from spad.simulators.stream import Simulation
    from spad.simulators.tagger import SimulatedTagger

    clock = WallClock() if realtime else ManualClock()
    spectrograph = cam = None
    if camera:
        spectrograph = SimulatedSpectrograph(clock=clock)
        cam = SimulatedCamera(None, spectrograph, seed=seed, clock=clock)
    if particle == "mix":
        spec = SlideSpec(n_particles=0, dimer_fraction=dimer_fraction,
                         count_rate_hz=count_rate, seed=seed)
        tagger: SimulatedTagger = MixTagger(spec, cam, realtime=realtime, clock=clock)
    else:
        emitters, detection = build(particle, seed, None, vary, "T3", count_rate)
        tagger = SimulatedTagger(emitters, detection, seed=seed, realtime=realtime,
                                 clock=clock)
        if cam is not None:
            truth = Simulation(emitters, detection, 1.0, seed).truth
            cam.scene = Scene(lines=particle_lines(truth))
    tagger.open()
    if cam is not None:
        spectrograph.open()
        cam.open()
    try:
        yield Instruments(tagger, cam, spectrograph)
    finally:
        tagger.close()
        for dev in (cam, spectrograph):
            if dev is not None:
                dev.close()
