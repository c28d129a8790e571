"""Record family numbers, shared by both decoders of :mod:`spad.formats.records`.

The compiled kernels (:mod:`spad.formats.kernels`, numba) and the numpy decoder
(:mod:`spad.formats.records_numpy`) take the family as a number. It lives here, apart from both,
so that the numpy decoder can name a family without importing numba.

Record families, all records little-endian uint32:

- ``PH_T3``: PicoHarp T3, channel 4 | dtime 12 | nsync 16 bits (MSB first).
- ``PH_T2``: PicoHarp T2, channel 4 | time 28.
- ``HH_T3``: HydraHarp v1/v2, TimeHarp 260, MultiHarp T3: special 1 | channel 6 | dtime 15 |
  nsync 10.
- ``HH_T2``: the same instruments in T2: special 1 | channel 6 | time 25.
- ``TH_T3``: TimeHarp 200 (.t3r): reserved 1 | valid 1 | route 2 | data 12 | time tag 16.
- ``BH_SPC``: Becker & Hickl SPC-130/134/140/150/160/830 FIFO: invalid 1 | mtov 1 | gap 1 |
  mark 1 | adc 12 | rout 4 | macrotime 12.

``multi`` (an argument of both decoders) is true where an overflow record carries the number
of wraps in its time field (0 meaning 1), false where every overflow record is one wrap.
"""

from __future__ import annotations

PH_T3 = 0
PH_T2 = 1
HH_T3 = 2
HH_T2 = 3
TH_T3 = 4
BH_SPC = 5

FAMILIES = (PH_T3, PH_T2, HH_T3, HH_T2, TH_T3, BH_SPC)
