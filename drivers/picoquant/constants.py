"""Constants of PicoQuant's TTTR libraries, from their headers (hhdefin.h v3.0, mhdefin.h
v3.x, phdefin.h v3.0) and the TTTR-mode demos (HH400-v3.x-Demos, MH150-Demos, PH300-v3.x-Demos,
``tttrmode.py`` / ``tttrmode.c``). tests/test_driver_picoquant_headers.py checks each value
against PicoQuant's published headers (kept unmodified in tests/fake_picoquant/vendor/).
"""

from __future__ import annotations

MAXDEVNUM = 8
"""Device indices tried by ``OpenDevice``."""

MODE_T2 = 2
MODE_T3 = 3
MODES = {"T2": MODE_T2, "T3": MODE_T3}

REFSRC_INTERNAL = 0
REFSRC_EXTERNAL = 1            # 10 MHz external reference
REFERENCES = {"internal": REFSRC_INTERNAL, "external": REFSRC_EXTERNAL}

TTREADMAX_HH = 131072          # HH_ReadFiFo count; hhdefin.h
TTREADMAX_PH = 131072          # PH_ReadFiFo count; phdefin.h
TTREADMAX_MH = 1048576         # MH_ReadFiFo has no count: the buffer must hold this; mhdefin.h

# GetFlags bits. HydraHarp and MultiHarp share them; the PicoHarp's differ.
FLAG_FIFOFULL = 0x0002
FLAG_SYNC_LOST = 0x0004
FLAG_REF_LOST = 0x0008
FLAG_SYSERROR = 0x0010
FLAG_ACTIVE = 0x0020
FLAG_CNTS_DROPPED = 0x0040     # MultiHarp only
PH_FLAG_FIFOFULL = 0x0003
PH_FLAG_SYSERROR = 0x0100

EDGE_RISING = 1
EDGE_FALLING = 0

SYNCDIVMAX = {"hydraharp": 16, "multiharp": 16, "picoharp": 8}
CHANOFFS_PS = 99999            # |Set*ChannelOffset| limit, ps (HH, MH; PH sync offset)
ACQTMAX_MS = 360000000         # StartMeas limit (100 h)
COUNTRATE_WAIT_S = 0.15        # "allow 100 ms for valid new count rate readings" (demos)

ERROR_DEVICE_OPEN_FAIL = -1    # errorcodes.h: no device at this index
ERROR_USB_BULKRD_FAIL = -37    # errorcodes.h: what a device that has gone away returns
