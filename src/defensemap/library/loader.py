"""Find and load the detection library: every ``*.yml`` under the content folder."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from defensemap.errors import DefensemapError, NotFoundError, SchemaError, SourceLocation
from defensemap.sources.detections import (
    LoadedDetection,
    load_detection,
    parse_detection,
    read_yaml,
)

CONTENT_ENV = "DEFENSEMAP_CONTENT"


def content_dir() -> Path:
    """``$DEFENSEMAP_CONTENT``, else the library shipped in the source tree (``content/``
    beside ``src/``), else the copy packaged inside ``defensemap/content``."""
    env = os.environ.get(CONTENT_ENV)
    if env:
        return Path(env).expanduser()
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent.parent / "content", package / "content"):
        if (candidate / "detections").is_dir():
            return candidate
    return package.parent.parent / "content"


@dataclass
class Library:
    """The loaded detections, by id and in file order."""

    detections: list[LoadedDetection] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_id = {str(d.detection.id): d for d in self.detections}

    def has(self, detection_id: str) -> bool:
        return detection_id.strip().lower() in self._by_id

    def get(self, detection_id: str) -> LoadedDetection:
        found = self._by_id.get(detection_id.strip().lower())
        if found is None:
            raise NotFoundError(
                f"no detection {detection_id!r} in the library",
                hint="list them with `defensemap detections`",
            )
        return found

    def for_technique(self, technique: str, *, with_subs: bool = False) -> list[LoadedDetection]:
        """Detections naming ``technique`` (and its sub-techniques when ``with_subs``)."""
        wanted = technique.upper()
        return [
            d
            for d in self.detections
            if any(
                t == wanted or (with_subs and t.startswith(wanted + "."))
                for t in d.detection.techniques
            )
        ]


def detection_files(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.yml") if p.is_file())
        else:
            found.append(path)
    return found


def load_library(paths: Iterable[Path] | None = None, *, cache_dir: Path | None = None) -> Library:
    """All detections of the library (or of ``paths``); two files with one id is an error
    naming both, because ids are what exports and related-detection links key on.

    With ``cache_dir``, the parsed YAML is kept there as JSON, keyed by every file's path, size
    and modification time: YAML parsing is most of the cost of a technique page."""
    roots = list(paths) if paths is not None else [content_dir() / "detections"]
    files = detection_files(roots)
    raw = _cached_yaml(files, cache_dir) if cache_dir else {}
    loaded: list[LoadedDetection] = []
    seen: dict[str, Path] = {}
    for path in files:
        key = str(path)
        detection = parse_detection(raw[key], path) if key in raw else load_detection(path)
        key = str(detection.detection.id)
        if key in seen:
            raise SchemaError(
                f"detection id {key} is also used by {seen[key]}",
                location=SourceLocation(path=str(path), pointer="/id"),
                hint="give each detection its own UUID (uuidgen)",
            )
        seen[key] = path
        loaded.append(detection)
    return Library(loaded)


@dataclass(frozen=True)
class LibraryLoad:
    """The library as views that merely include detections see it: missing, empty or broken
    is an empty library with a note (and the error), so one bad file cannot take down every
    technique page or CLI view."""

    library: Library
    note: str | None = None
    error: DefensemapError | None = None


def load_library_for_views(cache_dir: Path | None = None) -> LibraryLoad:
    folder = content_dir() / "detections"
    if not folder.is_dir():
        return LibraryLoad(Library(), f"no detection library at {folder}")
    try:
        library = load_library(cache_dir=cache_dir)
    except DefensemapError as error:
        return LibraryLoad(Library(), f"the detection library did not load: {error}", error)
    if not library.detections:
        return LibraryLoad(library, f"the detection library at {folder} is empty")
    return LibraryLoad(library)


def library_stamp(paths: Iterable[Path] | None = None) -> str:
    """Changes whenever a detection file is added, removed or edited (path, size, mtime)."""
    roots = list(paths) if paths is not None else [content_dir() / "detections"]
    return _stamp(detection_files(roots))


def _stamp(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        info = path.stat()
        digest.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _cached_yaml(files: list[Path], cache_dir: Path) -> dict[str, Any]:
    """Parsed YAML of ``files`` from the cache, refreshed when any file changed. The cache is
    only ever a copy: unreadable or stale, it is rebuilt from the files."""
    cache = cache_dir / f"library-{_stamp(files)}.json"
    try:
        data: dict[str, Any] = orjson.loads(cache.read_bytes())
        return data
    except (OSError, orjson.JSONDecodeError):
        pass
    data = {str(path): read_yaml(path) for path in files}
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        for old in cache_dir.glob("library-*.json"):
            old.unlink(missing_ok=True)
        cache.write_bytes(orjson.dumps(data, default=str))
    except (OSError, TypeError):
        pass  # a read-only home, or YAML with non-string keys: works, just slower
    return data
