"""The house's layers, read from the folder names (docs/architecture.md).

The folders analysis/, drivers/, gui/ and simulators/ install as ``spad.analysis``,
``spad.drivers``, ``spad.gui`` and ``spad.simulators`` (one import namespace, pyproject.toml).
Each package is imported alone in a fresh interpreter and what it pulled in is inspected: the
spine (``spad`` without ``spad.app`` and the four folders) loads nothing above it,
``spad.analysis`` loads no instrument,
simulator, GUI or application code, and so on. A package-level import cycle (``spad.formats``
importing ``spad.analysis`` importing ``spad.formats``) shows up here as a forbidden module in
``sys.modules``.
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
ANALYSIS, DRIVERS, GUI, SIMULATORS = "spad.analysis", "spad.drivers", "spad.gui", "spad.simulators"
ABOVE_SPINE = ["spad.app", ANALYSIS, SIMULATORS, DRIVERS, GUI]
FORBIDDEN = {
    "spad": [*ABOVE_SPINE, *OPTIONAL],
    "spad.formats": [*ABOVE_SPINE, *OPTIONAL],
    "spad.particle": [*ABOVE_SPINE, *OPTIONAL],
    ANALYSIS: ["spad.app", SIMULATORS, DRIVERS, GUI, *OPTIONAL],
    "spad.drivers.interfaces": ["spad.app", ANALYSIS, SIMULATORS, GUI, *OPTIONAL],
    DRIVERS: ["spad.app", ANALYSIS, SIMULATORS, GUI, "PyQt5", "pyqtgraph"],
    SIMULATORS: ["spad.app", ANALYSIS, GUI, *OPTIONAL],
    "spad.app": [GUI, *OPTIONAL],
}


def _loaded_after_import(module: str) -> list[str]:
    code = (
        "import importlib, json, sys, pkgutil\n"
        "def walk(name):\n"
        "    m = importlib.import_module(name)\n"
        "    for info in pkgutil.iter_modules(getattr(m, '__path__', [])):\n"
        "        child = name + '.' + info.name\n"
        f"        if child in {ABOVE_SPINE!r} and name == 'spad':\n"
        "            continue  # the floors above the spine are walked on their own\n"
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
    # The walk skipped the floors above on purpose; check nothing else pulled them in.
    assert _offenders(loaded, FORBIDDEN["spad"]) == []
    assert "spad.formats.ptu" in loaded and "spad.particle" in loaded


def test_offenders_detects_a_violation() -> None:
    """The check itself can fail: a module under a forbidden prefix is reported."""
    assert _offenders(["spad.analysis.g2", "spad.analysisx", "spad.photons"], [ANALYSIS]) == [
        "spad.analysis.g2"]


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


def test_every_package_is_installed_under_spad() -> None:
    """pyproject.toml lists every package folder, mapped into the one ``spad`` namespace, and
    nothing installs a top-level name other than ``spad``."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    conf = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = {"spad": "spad", **conf["package-dir"]}
    listed = set(conf["packages"])
    found = set()
    for top, folder in dirs.items():
        for init in (root / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(root / folder).parts
            found.add(".".join((top, *rel)))
    assert found == listed
    assert {p.split(".")[0] for p in listed} == {"spad"}


def test_no_module_takes_a_private_name_from_another() -> None:
    """A name with a leading underscore is its module's own: another module that needs it
    gets a public name (issue 21 item 4), so the two cannot drift apart unseen."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    taken = []
    for folder in ("spad", "analysis", "drivers", "gui", "simulators"):
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("spad")
                        and any(a.name.startswith("_") and not a.name.startswith("__")
                                for a in node.names)):
                    taken.append(f"{path.relative_to(root)}:{node.lineno} {node.module}")
    assert not taken, taken


def _import_graph() -> dict[str, set[str]]:
    """Each module of the five folders -> the spad modules it imports by name, at module level
    or inside a function (``from spad.x import y`` counts as importing ``spad.x.y`` where that
    is a module, else ``spad.x``); the implicit import of a module's parent package is left
    out."""
    import ast
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    conf = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    files: dict[str, Path] = {}
    for top, folder in {"spad": "spad", **conf["package-dir"]}.items():
        if top.count(".") > 1:
            continue
        for path in (root / folder).rglob("*.py"):
            rel = path.relative_to(root / folder).with_suffix("").parts
            name = ".".join((top, *rel))
            files[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in files}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([*package.split(".")[:len(package.split(".")) - node.level
                                                        + 1], *([base] if base else [])])
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    edges.add(sub if sub in files else base)
        graph[name] = {e for e in edges if e in files and e != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    """No module imports, even inside a function, one that imports it back, directly or
    through others (issue 21): what sits below never needs what sits above."""
    assert _cycles(_import_graph()) == []


def test_cycles_finds_a_cycle_through_three_modules() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_the_version_is_pyprojects() -> None:
    """spad.version.VERSION, which the files spad writes carry, is the installed version."""
    import tomllib
    from pathlib import Path

    import spad
    from spad.version import VERSION

    root = Path(__file__).resolve().parents[1]
    assert VERSION == tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    assert spad.__version__ == VERSION
