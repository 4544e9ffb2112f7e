"""Bad-input tables build their files lazily in ``tmp_path``; these make such builders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def raw_case(content: bytes, name: str) -> Callable[[Path], Path]:
    """A case whose file holds exactly ``content``."""

    def make(tmp_path: Path) -> Path:
        path = tmp_path / name
        path.write_bytes(content)
        return path

    return make


def mutated_case(
    build: Callable[[], dict[str, Any]],
    write: Callable[[Path, dict[str, Any]], Path],
    change: Callable[[dict[str, Any]], object],
    name: str,
) -> Callable[[Path], Path]:
    """A case that writes a fresh valid document after ``change`` edited it in place."""

    def make(tmp_path: Path) -> Path:
        document = build()
        change(document)
        return write(tmp_path / name, document)

    return make
