"""The package's modules import one another without cycles, and the shared layers name no kind.

Read from the source (``ast``), every import counted, those under ``if TYPE_CHECKING:`` too: a
type import is still a dependency a reader has to follow.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import tiktok_gateway

ROOT = Path(tiktok_gateway.__file__).resolve().parent
PACKAGE = "tiktok_gateway"

# Layers that must speak only of destinations and outcomes (DESIGN, "Destinations as plug-ins").
SHARED = ("ingest", "delivery", "queue", "observe", "telemetry", "endpoints", "admin.health")
KIND_FOLDERS = ("tags.tiktok", "tags.ga4")


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join((PACKAGE, *parts))] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The package modules ``name`` imports (``from a import b`` means ``a.b`` when that is a
    module, else ``a``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in known:
                    yield full
                elif base in known:
                    yield base


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: set(imported(name, path, known)) - {name} for name, path in sorted(known.items())}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_through_others() -> None:
    assert cycles(graph()) == []


def test_the_checker_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]


def test_shared_layers_import_no_destination_kind() -> None:
    """Ingest, delivery, the queue, the observers and the HTTP layer know destinations only
    through the interfaces (``delivery/destination.py``, ``ingest.Placement``, ``tags/kind.py``)."""
    edges = graph()
    offenders = {
        module: sorted(
            other
            for other in imports
            if any(other.startswith(f"{PACKAGE}.{kind}") for kind in KIND_FOLDERS)
        )
        for module, imports in edges.items()
        if any(module.startswith(f"{PACKAGE}.{layer}") for layer in SHARED)
    }
    assert {module: found for module, found in offenders.items() if found} == {}
