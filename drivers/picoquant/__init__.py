"""PicoQuant time taggers (HydraHarp 400, MultiHarp 150/160, PicoHarp 300) through their C
libraries and ctypes. See :mod:`drivers.picoquant.tagger` for the classes and the rig-file
example; :mod:`~drivers.picoquant.library` is the ctypes layer, :mod:`~drivers.picoquant.constants`
and :mod:`~drivers.picoquant.errors` hold the header constants and the errors.
"""

from drivers.picoquant.tagger import FAMILIES, HydraHarp, MultiHarp, PicoHarp, PicoQuantTagger

__all__ = ["FAMILIES", "HydraHarp", "MultiHarp", "PicoHarp", "PicoQuantTagger"]
