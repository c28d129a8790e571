"""lmfit without its optional pandas and matplotlib.

lmfit (1.3) imports pandas (to serialise DataFrames and to align Series) and matplotlib (to
plot a ModelResult) whenever they are installed, and both are, for ``spad batch`` and the
reports. Together they were ~1.2 s of the ~4 s start of ``spad analyze`` (``python -X
importtime``, issue 21), for features spad never uses: it calls ``Parameters`` and
``Minimizer`` only. While lmfit is imported they are hidden (a ``None`` entry in
``sys.modules`` makes ``import pandas`` raise ImportError, which lmfit catches and then does
without), unless something has loaded them already; afterwards the entries are removed, so
whoever needs pandas or matplotlib later imports them as usual.
"""

from __future__ import annotations

import sys
from types import ModuleType

OPTIONAL = ("pandas", "matplotlib")
"""lmfit's optional imports that spad does not use."""


def _import_lmfit() -> ModuleType:
    hidden = [name for name in OPTIONAL if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import lmfit
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    return lmfit


lmfit = _import_lmfit()
