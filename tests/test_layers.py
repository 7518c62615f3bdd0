"""The layering of ``worker`` (docs/architecture.md), read from the source:
every import of every module, resolved to the package it names, must point
down. A test rather than a linter: it needs no dependency and reads the same
files a newcomer does.

Layers, lowest first (a module may import its own subpackage and any layer
below its own; the two packages of one level may not import each other):

    protocol          wire types; imports nothing of worker
    worker._errors    error classes and their codes
    worker._core      dataset, kernels, flows: no anyio, nothing above
    worker._data      loaders, files, the synthetic generator
    worker._run       evaluators, the driver, checkpoints, warm-up
    worker._pool | worker._report
    worker._ray       the Ray executor (SPEC 14; ray itself is imported lazily)
    worker._daemon | worker._batch
    worker._cli, then worker.__main__
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LEVELS = [
    {"protocol"},
    {"worker._errors"},
    {"worker._core"},
    {"worker._data"},
    {"worker._run"},
    {"worker._pool", "worker._report"},
    {"worker._ray"},
    {"worker._daemon", "worker._batch"},
    {"worker._cli"},
    {"worker.__main__"},
]
LEVEL = {unit: i for i, units in enumerate(LEVELS) for unit in units}
# Third-party packages a layer must not pull in (the engine is usable
# without an event loop, logging setup or plotting).
FORBIDDEN = {"worker._core": {"anyio", "structlog", "matplotlib"},
             "worker._data": {"anyio", "structlog", "matplotlib"},
             "protocol": {"worker", "anyio", "numpy", "numba"}}


def modules() -> dict[str, Path]:
    out = {}
    for package in ("worker", "protocol"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def unit_of(module: str) -> str | None:
    """The layer unit a module belongs to (``worker._core.sweeps`` -> ``worker._core``);
    None for the package root ``worker`` (the public surface, checked alone)."""
    parts = module.split(".")
    if parts[0] == "protocol":
        return "protocol"
    if len(parts) == 1:
        return None
    return ".".join(parts[:2])


def imports(module: str, path: Path, *, top_level_only: bool = False) -> list[tuple[str, int]]:
    """Absolute names imported by ``module`` (relative imports resolved), with
    line numbers. ``top_level_only``: leave out imports inside functions and
    ``if TYPE_CHECKING:`` blocks (deliberately lazy: they cannot cycle)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    found = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            child_lazy = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) or (
                isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
            if isinstance(child, ast.Import) and not (top_level_only and lazy):
                found.extend((a.name, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and not (top_level_only and lazy):
                if child.level:
                    anchor = base[:len(base) - (child.level - 1)]
                    target = ".".join(anchor + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if child.module is None or child.level:
                    # ``from . import x`` may name a submodule: count it as one.
                    for a in child.names:
                        sub = f"{target}.{a.name}"
                        found.append((sub if sub in ALL else target, child.lineno))
                else:
                    found.append((target, child.lineno))
            visit(child, child_lazy)

    visit(tree, False)
    return found


ALL = modules()


def test_every_module_is_in_a_layer():
    for name in ALL:
        unit = unit_of(name)
        assert unit is None or unit in LEVEL, f"{name} is in no layer (tests/test_layers.py)"


@pytest.mark.parametrize("name", sorted(ALL))
def test_imports_point_down(name):
    unit = unit_of(name)
    if unit is None:
        # The public surface may use the library layers, never the services.
        allowed = {u for u, lvl in LEVEL.items() if lvl <= LEVEL["worker._run"]}
    else:
        allowed = {u for u, lvl in LEVEL.items() if lvl < LEVEL[unit]} | {unit}
    bad = []
    for target, line in imports(name, ALL[name]):
        top = target.split(".")[0]
        if unit in FORBIDDEN and top in FORBIDDEN[unit]:
            bad.append(f"line {line}: {target} (forbidden in {unit})")
        if top not in ("worker", "protocol") or target == "worker":
            continue  # third party, or the package root (``__version__``)
        to = unit_of(target)
        if to is not None and to not in allowed:
            bad.append(f"line {line}: {target} ({to} is not below {unit or 'worker'})")
    assert not bad, f"{ALL[name].relative_to(ROOT)} imports upward:\n  " + "\n  ".join(bad)


def test_no_import_cycles():
    graph = {name: {t for t, _ in imports(name, path, top_level_only=True) if t in ALL and t != name}
             for name, path in ALL.items()}
    # A package's __init__ importing its own submodules is not a cycle of meaning.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    state: dict[str, int] = {}
    path: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                walk(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The rules above must be able to fail: a core module importing the
    daemon is reported."""
    fake = tmp_path / "worker" / "_core" / "bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from .._daemon.methods import Worker\nimport anyio\n")
    found = imports("worker._core.bad", fake)
    assert ("worker._daemon.methods", 1) in found and ("anyio", 2) in found
    assert unit_of("worker._daemon.methods") not in {
        u for u, lvl in LEVEL.items() if lvl <= LEVEL["worker._core"]}
