"""spad: single-particle fluorescence spectroscopy of quantum dots.

The spine of the suite: the photon data model (:mod:`spad.photons`), time-tag file formats
(:mod:`spad.formats`, entry point :func:`spad.open`), the particle file (:mod:`spad.particle`),
optics and the spectrum model. The spine imports nothing from ``analysis``, ``simulators``,
``drivers`` or ``gui``; the application layer that wires them together (the ``spad`` command
line, reports, acquisition) is :mod:`spad.app`, which ``import spad`` never loads.
"""

import os
import sys

from spad.startup import one_blas_thread

# before numpy loads (spad.photons imports it): OpenBLAS reads its thread count only then
one_blas_thread(getattr(sys, "argv", None) and sys.argv[0] or "", os.environ)

from spad.errors import DeviceError, FormatError, SpadError  # noqa: E402
from spad.photons import SYNC, Measurement, Meta, PhotonChunk, Timing  # noqa: E402
from spad.version import VERSION  # noqa: E402

__version__ = VERSION


def open(path):  # noqa: A001 - the public entry point is deliberately ``spad.open``
    """Open a time-tag file, detecting its format from its content.

    See :func:`spad.formats.open`.
    """
    from spad.formats import open as _open

    return _open(path)


__all__ = ["open", "PhotonChunk", "Measurement", "Meta", "Timing", "SYNC",
           "SpadError", "FormatError", "DeviceError"]
