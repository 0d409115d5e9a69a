"""The layers of hil/ hold: no import cycle between its modules, not even a type-only one.

Every import counts, wherever it stands: at module level, under ``if TYPE_CHECKING:`` and
inside functions. A function-level import hides a cycle from Python at import time, but the
two modules still depend on each other, so the layering is broken all the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

import hil

HIL = Path(hil.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted(HIL.rglob("*.py")):
        rel = path.relative_to(HIL.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module a dotted name lives in: itself, or the closest enclosing module."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    """Module -> the hil modules it imports (every `import` statement, at any depth)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from pkg import sub` imports the submodule when there is one
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            for t in targets:
                dep = _resolve(t, modules) if t.split(".")[0] == "hil" else None
                if dep and dep != mod:
                    graph[mod].add(dep)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
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
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _explain(comp: list[str], graph: dict[str, set[str]]) -> str:
    members = set(comp)
    edges = [f"{a} -> {b}" for a in comp for b in sorted(graph[a] & members)]
    return "cycle: " + ", ".join(comp) + " (" + "; ".join(edges) + ")"


def test_the_checker_sees_a_cycle_and_names_it() -> None:
    graph = {"hil.a": {"hil.b"}, "hil.b": {"hil.c"}, "hil.c": {"hil.a"}, "hil.d": {"hil.a"}}
    found = cycles(graph)
    assert found == [["hil.a", "hil.b", "hil.c"]]
    assert "hil.c -> hil.a" in _explain(found[0], graph)


def test_the_graph_reads_type_only_and_function_level_imports() -> None:
    graph = import_graph()
    # hil.core.target imports its parts factory inside a function only
    assert "hil.core.parts" in graph["hil.core.target"]
    assert "hil.core.errors" in graph["hil.drivers.shell"]


def test_hil_has_no_import_cycle() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles in hil/:\n" + "\n".join(_explain(c, graph) for c in found)


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for dep in graph[todo.pop()] - seen:
            seen.add(dep)
            todo.append(dep)
    return seen


def test_the_production_twin_does_not_embed_the_simulated_board() -> None:
    """The simulated board is a test double: the twin's daemon shares only kvmd's MSD
    rules with it (`hil.emulated.kvmd.msd`), never the double itself."""
    graph = import_graph()
    used = _reachable(graph, "hil.emulated.daemon")
    assert "hil.emulated.kvmd.msd" in used
    assert "hil.emulated.kvmd.simulated" not in used
