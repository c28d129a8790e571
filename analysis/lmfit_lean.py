"""lmfit without its optional pandas and matplotlib, and without loading scipy.stats.

lmfit (1.3) imports pandas (to serialise DataFrames and to align Series) and matplotlib (to
plot a ModelResult) whenever they are installed, and both are, for ``spad batch`` and the
reports. Together they were ~1.2 s of the ~4 s start of ``spad analyze`` (``python -X
importtime``, issue 21), for features spad never uses: it calls ``Parameters`` and
``Minimizer`` only. While lmfit is imported they are hidden (a ``None`` entry in
``sys.modules`` makes ``import pandas`` raise ImportError, which lmfit catches and then does
without), unless something has loaded them already; afterwards the entries are removed, so
whoever needs pandas or matplotlib later imports them as usual.

lmfit also imports names from ``scipy.stats`` (the distributions of its emcee log-posteriors,
of ``Model.eval_uncertainty`` and of ``conf_interval``) and ``scipy.interpolate`` (its
``SplineModel``) at its top. spad uses none of them, and ``scipy.stats`` alone is ~0.15-0.3 s
of start-up, more than the analysis of a short particle. While lmfit is imported those modules
(unless already loaded) are stand-ins whose names are :class:`Deferred`: the real module is
imported when lmfit first uses such a name, so lmfit works in full, and the stand-ins leave
``sys.modules`` with the import, so any other ``import scipy.stats`` gets the real module.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

OPTIONAL = ("pandas", "matplotlib")
"""lmfit's optional imports that spad does not use."""

DEFERRED = ("scipy.stats", "scipy.interpolate")
"""Modules lmfit takes names from at import but calls only in features spad does not use."""


class Deferred:
    """A name of a module not imported yet: the module is imported at the name's first use."""

    def __init__(self, module: str, name: str) -> None:
        self._where = (module, name)

    def resolve(self) -> Any:
        """The real object (imports its module the first time)."""
        module, name = self._where
        return getattr(importlib.import_module(module), name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.resolve(), attr)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{'.'.join(self._where)}, imported at first use>"


class _StandIn(ModuleType):
    """What ``from module import name`` finds while lmfit is imported: a :class:`Deferred`."""

    def __getattr__(self, name: str) -> Deferred:
        if name.startswith("__"):
            raise AttributeError(name)
        return Deferred(self.__name__, name)


def _import_lmfit() -> ModuleType:
    hidden = [name for name in OPTIONAL if name not in sys.modules]
    stand_ins = {name: _StandIn(name) for name in DEFERRED if name not in sys.modules}
    if stand_ins:
        # lmfit.minimizer imports scipy.optimize, which must load before the stand-ins exist
        # (if it, or anything it loads, imported scipy.stats it would get the real one)
        import scipy.optimize  # noqa: F401
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    sys.modules.update(stand_ins)
    try:
        import lmfit
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
    return lmfit


lmfit = _import_lmfit()
