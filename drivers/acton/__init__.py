"""Princeton Instruments / Acton SpectraPro spectrographs over a serial line (pyserial).

See :mod:`drivers.acton.spectrograph` for the driver and its rig-file example.
"""

from drivers.acton.spectrograph import ActonSpectrograph

__all__ = ["ActonSpectrograph"]
