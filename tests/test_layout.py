"""The package shows its pipeline: layered subpackages, no import cycle, no private name crossing modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "batchframe"
PIPELINE = ("requests", "providers", "jobs", "results", "progress", "cli", "server")


def test_the_tree_shows_the_pipeline():
    assert not (ROOT / "src").exists()
    assert all((PACKAGE / name / "__init__.py").is_file() for name in PIPELINE)
    root_modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root_modules) <= 8, root_modules


def test_the_layers_contract_is_kept():
    result = subprocess.run([str(Path(sys.executable).with_name("lint-imports"))], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_no_import_cycles_anywhere():
    """Every import counts: top-level, in a function, under TYPE_CHECKING."""
    import grimp

    graph = grimp.build_graph("batchframe")
    cycles = _cycles({m: graph.find_modules_directly_imported_by(m) for m in graph.modules})
    print(f"import cycles: {len(cycles)}")
    assert cycles == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _private_crossings(source: str, module: str) -> list[str]:
    """``from batchframe.x import _name``, and ``obj._attr`` where no class of this module defines ``_attr``
    (a private of another module's object: ``job._session()`` from outside ``job.py``)."""
    tree = ast.parse(source)
    own = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    own |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
            and isinstance(n.value, ast.Name) and n.value.id == "self"}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("batchframe"):
            out += [f"{module}: from {node.module} import {a.name}" for a in node.names if _private(a.name)]
        elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own:
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                out.append(f"{module}:{node.lineno}: .{node.attr}")
    return out


def _private(name: str) -> bool:
    # `_name_` hooks (`_repr_mimebundle_`, `_ipython_display_`) are protocols, not private names.
    return name.startswith("_") and not name.endswith("_")


def test_no_private_name_crosses_a_module():
    crossings = []
    for path in sorted(PACKAGE.rglob("*.py")):
        crossings += _private_crossings(path.read_text(), str(path.relative_to(ROOT)))
    assert crossings == []


def test_the_private_name_check_catches_a_crossing():
    source = "from batchframe.jobs.job import _copy\njob._save()\nself._x = 1\nother._x"
    assert _private_crossings(source, "m") == ["m: from batchframe.jobs.job import _copy", "m:2: ._save"]


@pytest.mark.slow
def test_mypy_passes():
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
