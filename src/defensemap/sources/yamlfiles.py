"""YAML as every defensemap reader loads it: libyaml when available (8× faster on the
detection library), and errors that name the file, line and column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from defensemap.errors import ParseError, SourceLocation

LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str, path: Path) -> Any:
    """One YAML document."""
    try:
        return yaml.load(text, Loader=LOADER)
    except yaml.YAMLError as exc:
        raise yaml_error(exc, path) from None


def load_yaml_documents(text: str, path: Path) -> list[Any]:
    """Every non-empty document of a (possibly multi-document) YAML text."""
    try:
        return [d for d in yaml.load_all(text, Loader=LOADER) if d is not None]
    except yaml.YAMLError as exc:
        raise yaml_error(exc, path) from None


def yaml_error(exc: yaml.YAMLError, path: Path) -> ParseError:
    mark = exc.problem_mark if isinstance(exc, yaml.MarkedYAMLError) else None
    problem = exc.problem if isinstance(exc, yaml.MarkedYAMLError) else exc
    return ParseError(
        f"not valid YAML: {problem}",
        location=SourceLocation(
            path=str(path),
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ),
        hint="fix the YAML syntax",
    )
