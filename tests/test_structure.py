"""The shape of the code: device/'s imports have no cycles and point only where DESIGN.md allows.

Static (ast): every ``import``/``from`` in ``device/**/*.py``, module-level or
inside a function (lazy imports count: they run sooner or later), resolved to
the module it loads. Fails on an import cycle among device modules, on device
importing a workstation package (training, export, bench, demo), and on
device.hardware importing device.screen (the display backend is handed its
renderer). Dynamic (subprocess): importing every device module loads no
training code, TensorFlow/Keras, matplotlib or OpenCV.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from device.config import PROJECT_ROOT

DEVICE = PROJECT_ROOT / "device"
WORKSTATION_PACKAGES = ("training", "export", "bench", "demo")
HEAVY_MODULES = ("training", "keras", "tensorflow", "matplotlib", "cv2")


# ------------------------------------------------------------------ static: the import graph


def module_name(path: Path, root: Path = PROJECT_ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def device_modules(root: Path = PROJECT_ROOT) -> dict[str, Path]:
    """Every module under device/ by dotted name."""
    return {module_name(p, root): p for p in sorted((root / "device").rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(name: str, path: Path, known: set[str]) -> list[tuple[str, int, bool]]:
    """(imported module, line, runs at runtime) for each import statement anywhere in the file.

    ``from a.b import c`` is an edge to ``a.b.c`` when that is a module, else to
    ``a.b``. Relative imports are resolved against the file's package. Imports
    under ``if TYPE_CHECKING:`` never run, so they can't close a cycle, but
    still count for the layering rules.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, runtime: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, runtime)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno, runtime) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub if sub in known else target, node.lineno, runtime))
        for child in ast.iter_child_nodes(node):
            visit(child, runtime)

    visit(tree, True)
    return found


def import_graph(root: Path = PROJECT_ROOT) -> tuple[dict[str, set[str]], list[tuple[str, str, int]]]:
    """(runtime edges between device modules, every (importer, imported, line) for the layering rules)."""
    modules = device_modules(root)
    known = set(modules)
    edges: dict[str, set[str]] = {m: set() for m in modules}
    every: list[tuple[str, str, int]] = []
    for name, path in modules.items():
        for target, line, runtime in imports_of(name, path, known):
            every.append((name, target, line))
            if runtime and target in known and target != name:
                edges[name].add(target)
    return edges, every


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return [_cycle_through(comp, edges) for comp in components]


def _cycle_through(component: list[str], edges: dict[str, set[str]]) -> list[str]:
    """A concrete cycle inside a strongly connected component, starting at its first module (BFS back to it)."""
    inside = set(component)
    start = component[0]
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(edges[v] & inside):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, v, start]
                if w not in came_from:
                    came_from[w] = v
                    nxt.append(w)
        frontier = nxt
    return component  # unreachable for a real component


def layering_violations(every: list[tuple[str, str, int]]) -> list[str]:
    bad = []
    for importer, target, line in every:
        top = target.split(".")[0]
        where = f"{importer.replace('.', '/')}.py:{line}"
        if top in WORKSTATION_PACKAGES:
            bad.append(f"{where}: device imports the workstation package {target}")
        if (importer == "device.hardware" or importer.startswith("device.hardware.")) and (
                target == "device.screen" or target.startswith("device.screen.")):
            bad.append(f"{where}: device.hardware imports {target} (hand the backend its renderer instead)")
    return bad


def test_device_imports_have_no_cycle():
    edges, _ = import_graph()
    found = [" -> ".join(c) for c in cycles(edges)]
    assert not found, "import cycles among device modules:\n  " + "\n  ".join(found)


def test_device_imports_only_what_design_allows():
    _, every = import_graph()
    bad = layering_violations(every)
    assert not bad, "\n".join(bad)


def test_the_checks_see_lazy_relative_and_from_imports(tmp_path):
    """The walker on a small fake tree: it must find what a real violation looks like."""
    pkg = tmp_path / "device"
    (pkg / "hardware").mkdir(parents=True)
    (pkg / "screen").mkdir()
    for init in (pkg, pkg / "hardware", pkg / "screen"):
        (init / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from device import b  # lazy: still an edge\n")
    (pkg / "b.py").write_text("from .c import thing\n")
    (pkg / "c.py").write_text("import device.a\nthing = 1\n")
    (pkg / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from device.a import f\n"
                              "def g():\n    from training.scoring import score_notes\n")
    (pkg / "hardware" / "display.py").write_text("from ..screen import render\n")
    (pkg / "screen" / "render.py").write_text("import numpy\n")
    edges, every = import_graph(tmp_path)
    assert cycles(edges) == [["device.a", "device.b", "device.c", "device.a"]]
    assert "device.a" not in edges["device.d"]  # TYPE_CHECKING only: not a runtime edge
    bad = layering_violations(every)
    assert any(b.startswith("device/d.py:5: device imports the workstation package training.scoring") for b in bad)
    assert any(b.startswith("device/hardware/display.py:1: device.hardware imports device.screen.render")
               for b in bad)
    assert len(bad) == 2


# ------------------------------------------------------------------ dynamic: what importing loads

IMPORT_ALL = """
import importlib, pkgutil, sys
import {package}
failed = []
for info in pkgutil.walk_packages({package}.__path__, "{package}.", onerror=lambda name: failed.append(name)):
    try:
        importlib.import_module(info.name)
    except Exception as e:  # report every module that can't even be imported
        failed.append(f"{{info.name}}: {{type(e).__name__}}: {{e}}")
print("FAILED", failed)
print("LOADED", sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r})))
"""


def import_everything(package: str, heavy: tuple[str, ...]) -> tuple[list[str], list[str]]:
    r = subprocess.run([sys.executable, "-c", IMPORT_ALL.format(package=package, heavy=heavy)], cwd=PROJECT_ROOT,
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy",
                                PYTHONPATH=str(PROJECT_ROOT)))
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines() if line.startswith(("FAILED", "LOADED")))
    return ast.literal_eval(lines["FAILED"]), ast.literal_eval(lines["LOADED"])


@pytest.mark.device_venv
def test_importing_every_device_module_loads_no_workstation_code():
    """cv2 may be loaded only inside the camera backend's functions, never by importing a module."""
    failed, loaded = import_everything("device", HEAVY_MODULES)
    assert not failed, failed
    assert not loaded, f"importing device.* loaded {loaded}"


def test_training_datasets_get_the_class_list_without_pygame():
    failed, loaded = import_everything("training.datasets", ("pygame", "tensorflow", "keras", "matplotlib"))
    assert not failed, failed
    assert not loaded, f"importing training.datasets.* loaded {loaded}"
