"""Swabian Instruments Time Tagger through its Python API (optional: ``pip install
swabian-timetagger``). See :mod:`drivers.swabian.tagger`.
"""

from drivers.swabian.tagger import SwabianTagger

__all__ = ["SwabianTagger"]
