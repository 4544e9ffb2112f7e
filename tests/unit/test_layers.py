"""Data flows one way: a package imports only from the layers below it (and its own), so the
store never depends on the CLI and sources never depend on the store."""

from __future__ import annotations

import ast

from tests.conftest import REPO

SRC = REPO / "src" / "defensemap"
# Lower number = lower layer. Packages on one level may not import each other.
LAYERS = {
    "errors": 0,
    "config": 0,
    "util": 0,
    "model": 1,
    "catalog": 1,
    "sources": 2,
    "store": 2,
    "kb": 3,
    "logs": 3,
    "generate": 3,
    "engine": 4,
    "library": 5,
    "coverage": 6,
    "export": 7,
    "web": 8,
    "cli": 9,
}


def _package(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "defensemap" or len(parts) < 2:
        return None
    return parts[1]


def _imports(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_packages_import_only_lower_layers() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC)
        if len(relative.parts) == 1:
            continue  # defensemap/__init__.py, __main__.py
        own = relative.parts[0].removesuffix(".py")
        assert own in LAYERS, f"{own} has no layer: add it to LAYERS"
        for module in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            other = _package(module)
            if other is None or other == own or other not in LAYERS:
                continue
            if LAYERS[other] >= LAYERS[own]:
                problems.append(f"{relative} imports {module}")
    assert not problems, "\n".join(problems)
