"""The import graph of shared/ and functions/: no cycles, and the use cases below the facade.

Every import counts, those under `if TYPE_CHECKING:` too: a type-only import that closes a
cycle still means two modules that cannot be read one without the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def import_graph() -> dict[str, set[str]]:
    modules = {}
    for package in ("shared", "functions"):
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    graph[name].add(target if target in modules else node.module)
            elif isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names)
    return {name: {t for t in targets if t in modules and t != name} for name, targets in graph.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 40 and graph["shared.services.service"]  # the graph really was read
    assert cycles(graph) == []


def test_the_cycle_finder_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


LAYERS = ("functions", "shared.runtime", "shared.api", "shared.services", "shared.adapters", "shared.core")


def layer(module: str) -> int | None:
    return next((i for i, name in enumerate(LAYERS) if module == name or module.startswith(name + ".")), None)


def test_each_layer_imports_only_those_below_it() -> None:
    """The same rule as pyproject.toml's import-linter contract (make lint), and every module of
    shared/ is in a layer (the seed examples and the CLI stand apart)."""
    graph = import_graph()
    apart = ("shared", "shared.examples", "shared.cli", "shared.cli.api", "shared.cli.coverage", "shared.cli.groups",
             "shared.cli.schedules")
    assert sorted(m for m in graph if layer(m) is None) == sorted(apart)
    back = [(m, t) for m, targets in graph.items() for t in targets
            if layer(m) is not None and layer(t) is not None and layer(t) < layer(m)]  # type: ignore[operator]
    assert back == []
    own = {"shared.cli.api", "shared.cli.coverage", "shared.cli.groups", "shared.cli.schedules"}  # its own only
    cli = {t for m in ("shared.cli", *own) for t in graph[m]}
    assert cli <= own


def test_use_cases_do_not_know_the_facade() -> None:
    """They receive a Context (the ports); only the facade's users import shared.services.service."""
    graph = import_graph()
    importers = sorted(name for name, targets in graph.items() if "shared.services.service" in targets)
    assert importers == ["shared.runtime", "shared.services.drift", "shared.services.sweep"]
