"""Princeton Instruments / Acton SpectraPro spectrographs over a serial line (pyserial).

See :mod:`spad.drivers.acton.spectrograph` for the driver and its rig-file example.
"""

from spad.drivers.acton.spectrograph import ActonSpectrograph

__all__ = ["ActonSpectrograph"]
