"""The particle recipe: the emitters and the detection chain of one simulated particle
(monomer, fused dimer or two dots in one focus), shared by ``spad simulate``, the simulated rig
of ``spad acquire`` (:mod:`spad.app.acquisition.simrig`) and the tests."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from spad.errors import SpadError

PARTICLES = ("monomer", "dimer", "pair")
"""What can be in the focus."""


def build(particle: str, seed: int, neck_nm: float | None = None, vary: bool = False,
          mode: str = "T3", count_rate: float | None = None,
          bleach_s: float | None = None) -> tuple[Any, Any]:
    """Emitters and detection chain for one simulated particle.

    Returns
    -------
    (emitters, detection)
        ``emitters`` is an Emitter or a pair of them; ``detection`` a
        :class:`spad.simulators.detection.Detection` whose collection efficiency gives
        ``count_rate`` (cps, both detectors) in the brightest state, if given. With
        ``bleach_s`` every emitter photobleaches at that time.
    """
    from spad.simulators.detection import Detection
    from spad.simulators.emitter import dimer, monomer, pair

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
