"""The house's layers, read from the folder names (docs/architecture.md).

Each package is imported alone in a fresh interpreter and what it pulled in is inspected: the
spine (``spad`` without ``spad.app``) loads nothing above it, ``analysis`` loads no instrument,
simulator, GUI or application code, and so on. A package-level import cycle (``spad`` importing
``analysis`` importing ``spad``) shows up here as a forbidden module in ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# What each package may never load, even indirectly. ``spad.app`` is the application layer and
# may load anything but the GUI; gui/ may load everything.
# Optional dependencies (extras "gui" and "instruments" in pyproject.toml): a headless analysis
# machine or a Dask worker has none of them, so nothing but gui/ and the drivers that need them
# may import them at module level.
OPTIONAL = ["PyQt5", "pyqtgraph", "pylablib", "serial"]
FORBIDDEN = {
    "spad": ["spad.app", "analysis", "simulators", "drivers", "gui", *OPTIONAL],
    "spad.formats": ["spad.app", "analysis", "simulators", "drivers", "gui", *OPTIONAL],
    "spad.particle": ["spad.app", "analysis", "simulators", "drivers", "gui", *OPTIONAL],
    "analysis": ["spad.app", "simulators", "drivers", "gui", *OPTIONAL],
    "drivers.interfaces": ["spad.app", "analysis", "simulators", "gui", *OPTIONAL],
    "drivers": ["spad.app", "analysis", "simulators", "gui", "PyQt5", "pyqtgraph"],
    "simulators": ["spad.app", "analysis", "gui", *OPTIONAL],
    "spad.app": ["gui", *OPTIONAL],
}

# The modules of each package, imported one by one (a module-level import anywhere counts).
PACKAGES = ["spad", "analysis", "drivers", "simulators"]


def _loaded_after_import(module: str) -> list[str]:
    code = (
        "import importlib, json, sys, pkgutil\n"
        "def walk(name):\n"
        "    m = importlib.import_module(name)\n"
        "    for info in pkgutil.iter_modules(getattr(m, '__path__', [])):\n"
        "        child = name + '.' + info.name\n"
        "        if child == 'spad.app' and not name.startswith('spad.app'):\n"
        "            continue  # the application layer is a floor of its own\n"
        "        walk(child) if info.ispkg else importlib.import_module(child)\n"
        f"walk({module!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _offenders(loaded: list[str], forbidden: list[str]) -> list[str]:
    return [m for m in loaded if any(m == f or m.startswith(f + ".") for f in forbidden)]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_nothing_above_it(package: str) -> None:
    loaded = _loaded_after_import(package)
    assert _offenders(loaded, FORBIDDEN[package]) == []


def test_spine_modules_do_not_reach_up() -> None:
    """Every module of the spine, imported with all its siblings, still stays in the spine."""
    loaded = _loaded_after_import("spad")
    # The walk skipped spad.app on purpose; check nothing else pulled it in.
    assert _offenders(loaded, FORBIDDEN["spad"]) == []
    assert "spad.formats.ptu" in loaded and "spad.particle" in loaded


def test_offenders_detects_a_violation() -> None:
    """The check itself can fail: a module under a forbidden prefix is reported."""
    assert _offenders(["analysis.g2", "analysisx", "spad.photons"], ["analysis"]) == [
        "analysis.g2"]


def test_sources_cite_nothing_outside_the_repository() -> None:
    """Code cites papers, vendor documents or docs/, never a document that is not part of the
    project, nor a path of somebody's machine."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    offenders = []
    for folder in ("spad", "analysis", "simulators", "drivers", "gui", "docs"):
        for path in (root / folder).rglob("*"):
            if path.suffix in (".py", ".md") and path.is_file():
                text = path.read_text(encoding="utf-8")
                if "DOMAIN.md" in text or "/work/" in text:
                    offenders.append(str(path.relative_to(root)))
    assert offenders == []
