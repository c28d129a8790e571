"""PicoQuant time taggers (HydraHarp 400, MultiHarp 150/160, PicoHarp 300) through their C
libraries and ctypes. See :mod:`spad.drivers.picoquant.tagger` for the classes and the rig-file
example; :mod:`~spad.drivers.picoquant.library` is the ctypes layer,
:mod:`~spad.drivers.picoquant.constants`
and :mod:`~spad.drivers.picoquant.errors` hold the header constants and the errors.
"""

from spad.drivers.picoquant.tagger import FAMILIES, HydraHarp, MultiHarp, PicoHarp, PicoQuantTagger

__all__ = ["FAMILIES", "HydraHarp", "MultiHarp", "PicoHarp", "PicoQuantTagger"]
