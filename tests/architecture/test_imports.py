"""The parts' allowed arrows (docs/design.md), checked on every product module's imports.

Every import counts: top-level, lazy (inside a function) and under `TYPE_CHECKING`, since a
lazy import is still a dependency and a `TYPE_CHECKING` one still couples the parts' types.
"""

from __future__ import annotations

import ast
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# part -> the parts it may import (docs/design.md); every other arrow fails. The rules
# follow: core imports only protocol, protocol nothing, pgwire not core, query/pgwire not cli.
ALLOWED: dict[str, set[str]] = {
    "protocol": set(),  # the leaf
    "core": {"protocol"},
    "sdk": {"protocol"},
    "tracing": {"core", "protocol"},
    "query": {"core", "protocol"},
    "pgwire": {"query"},
    "app": {"pgwire", "query", "tracing", "core"},
    "cli": {"app", "query", "tracing", "core", "protocol"},
}

def package_dirs() -> dict[str, Path]:
    """`rstq.x.y` -> its folder, as pyproject.toml maps them."""
    doc = tomllib.loads((REPO / "pyproject.toml").read_text())
    mapping = doc["tool"]["setuptools"]["package-dir"]
    return {name: REPO / folder for name, folder in mapping.items()}


def modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg, folder in package_dirs().items():
        for f in sorted(folder.glob("*.py")):
            out[pkg if f.stem == "__init__" else f"{pkg}.{f.stem}"] = f
    return out


def imports_of(module: str, path: Path) -> set[str]:
    """Every rstq module `module` imports, wherever the import statement is."""
    package = module if path.stem == "__init__" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
    return {m for m in found if m == "rstq" or m.startswith("rstq.")}


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def part_graph() -> dict[str, dict[str, list[str]]]:
    """part -> imported part -> the `module -> module` edges behind the arrow."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for module, path in modules().items():
        src = part_of(module)
        for target in imports_of(module, path):
            dst = part_of(target)
            if dst and dst != src:
                graph[src][dst].append(f"{module} -> {target}")
    return graph


def test_every_part_is_known() -> None:
    assert {part_of(m) for m in modules()} == set(ALLOWED)


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_only_allowed_arrows(part: str) -> None:
    graph = part_graph()
    bad = [edge for dst, edges in sorted(graph[part].items()) if dst not in ALLOWED[part]
           for edge in edges]
    assert bad == [], f"{part} may import only {sorted(ALLOWED[part])}: {bad}"


def test_no_cycle_between_parts() -> None:
    graph = part_graph()
    seen: set[str] = set()
    stack: list[str] = []

    def visit(node: str) -> None:
        if node in stack:
            cycle = [*stack[stack.index(node):], node]
            edges = [graph[a][b][0] for a, b in zip(cycle, cycle[1:], strict=False)]
            pytest.fail(f"import cycle {' -> '.join(cycle)}: {edges}")
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for dst in sorted(graph[node]):
            visit(dst)
        stack.pop()

    for part in sorted(graph):
        visit(part)


def test_the_checker_sees_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    """A check that cannot fail is no check: feed it every kind of import statement."""
    src = tmp_path / "m.py"
    src.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from rstq.query import engine\n"
        "def f():\n    import rstq.pgwire.server\n    from rstq.tracing.ids import x\n"
        "from . import sibling\nfrom ..protocol import ids\n"
    )
    found = imports_of("rstq.core.log.m", src)
    assert found == {"rstq.query", "rstq.pgwire.server", "rstq.tracing.ids",
                     "rstq.core.log", "rstq.core.protocol"}
