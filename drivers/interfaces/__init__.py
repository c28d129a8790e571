"""Hardware interfaces shared by real instruments and their simulators (Qudi style)."""

from spad.drivers.interfaces.base import Instrument
from spad.drivers.interfaces.camera import CameraInterface
from spad.drivers.interfaces.spectrograph import Grating, SpectrographInterface
from spad.drivers.interfaces.stage import StageInterface
from spad.drivers.interfaces.tagger import TaggerConfig, TimeTagger

__all__ = ["CameraInterface", "Grating", "Instrument", "SpectrographInterface", "TaggerConfig",
           "StageInterface", "TimeTagger"]
