"""Hardware interfaces shared by real instruments and their simulators (Qudi style)."""

from drivers.interfaces.tagger import TaggerConfig, TimeTagger

__all__ = ["TaggerConfig", "TimeTagger"]
