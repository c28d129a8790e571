"""Hardware interfaces shared by real instruments and their simulators (Qudi style)."""

from drivers.interfaces.base import Instrument
from drivers.interfaces.camera import CameraInterface
from drivers.interfaces.spectrograph import Grating, SpectrographInterface
from drivers.interfaces.tagger import TaggerConfig, TimeTagger

__all__ = ["CameraInterface", "Grating", "Instrument", "SpectrographInterface", "TaggerConfig",
           "TimeTagger"]
