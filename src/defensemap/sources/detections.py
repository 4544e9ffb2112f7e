"""Load defensemap detection files (YAML) into :class:`Detection` objects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from defensemap.errors import ParseError, SchemaError, SourceError, SourceLocation
from defensemap.model.detection import Detection
from defensemap.sources.validation import first_problem
from defensemap.sources.yamlfiles import load_yaml


@dataclass(frozen=True)
class LoadedDetection:
    """A detection and the file it came from (test event files are relative to it)."""

    detection: Detection
    path: Path

    def case_events(self, events: list[dict[str, Any]], file: str | None) -> list[dict[str, Any]]:
        """Inline events plus those of the case's NDJSON/JSON file."""
        if not file:
            return events
        return events + read_event_file(self.path.parent / file)


def is_detection(data: Any) -> bool:
    """A defensemap detection (not a Sigma rule): it has ``techniques`` and ``severity``."""
    return isinstance(data, dict) and "techniques" in data and "severity" in data


def read_yaml(path: Path) -> Any:
    """YAML with errors that name the file, line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError(
            f"cannot read: {exc.strerror}", location=SourceLocation(path=str(path))
        ) from None
    return load_yaml(text, path)


def parse_detection(data: Any, path: Path) -> LoadedDetection:
    try:
        detection = Detection.model_validate(data)
    except ValidationError as exc:
        where, message = first_problem(exc)
        raise SchemaError(
            message,
            location=SourceLocation(path=str(path), pointer=where or "/"),
            hint="see `defensemap schema detection` for the format",
        ) from None
    return LoadedDetection(detection, path)


def load_detection(path: Path) -> LoadedDetection:
    return parse_detection(read_yaml(path), path)


def read_event_file(path: Path) -> list[dict[str, Any]]:
    """Test events: a JSON array or NDJSON objects."""
    import orjson

    try:
        text = path.read_bytes()
    except OSError as exc:
        raise SourceError(
            f"cannot read: {exc.strerror}", location=SourceLocation(path=str(path))
        ) from None
    stripped = text.lstrip()
    try:
        if stripped.startswith(b"["):
            data = orjson.loads(text)
        else:
            data = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    except orjson.JSONDecodeError as exc:
        raise ParseError(
            f"not valid JSON: {exc.msg}", location=SourceLocation(path=str(path))
        ) from None
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise SchemaError(
            "expected JSON objects (one event each)", location=SourceLocation(path=str(path))
        )
    return data
