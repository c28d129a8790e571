"""Swabian Instruments Time Tagger through its Python API (optional: ``pip install
swabian-timetagger``). See :mod:`spad.drivers.swabian.tagger`.
"""

from spad.drivers.swabian.tagger import SwabianTagger

__all__ = ["SwabianTagger"]
