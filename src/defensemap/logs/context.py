"""What planning a file shares across the format readers: its context, the prepared
reader, and the names reserved for ingestion's own columns."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from defensemap.catalog import Catalog
from defensemap.errors import SchemaError
from defensemap.logs.duck import RECORD_COLUMN, SOURCE_COLUMN
from defensemap.logs.formats import _Source
from defensemap.logs.progress import _Progress

_MAX_REPORTED_LINES = 20

_GLOB_CHARS = re.compile(r"[*?\[\]{}]")

_RESERVED = frozenset(c.casefold() for c in (SOURCE_COLUMN, RECORD_COLUMN))
_INTERNAL_PREFIX = "__dm_"
_RN = "__dm_rn"
_REC = "__dm_rec"


@dataclass
class _Context:
    con: duckdb.DuckDBPyConnection
    tmp: Path
    index: int
    skip_bad: bool
    progress: _Progress
    catalog: Catalog

    def temp(self, name: str) -> Path:
        return self.tmp / f"{self.index}-{name}"


@dataclass
class _Prepared:
    """A file made readable: a SELECT yielding its columns plus the record number."""

    format: str
    reader: str  # SQL; selects source columns and _REC
    params: list[Any]
    columns: list[tuple[str, str, str]]  # (name, type as read, proposed column type)
    expected_rows: int | None = None
    skipped: int = 0
    bad_lines: tuple[int, ...] = ()
    needs_prepass: bool = False
    windows: bool = False
    channels: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    csv_rejects: tuple[str, str] | None = None  # temp table names for the pre-pass
    csv_header: int = 0  # lines before the first data row
    time_formats: tuple[str, ...] = ()  # strptime formats the reader detected


def _reserved(name: str) -> bool:
    folded = name.casefold()
    return folded in _RESERVED or folded.startswith(_INTERNAL_PREFIX)


def _check_internal(source: _Source, name: str) -> None:
    if name.casefold().startswith(_INTERNAL_PREFIX):
        raise SchemaError(
            f"column name {name!r} is reserved (names starting with {_INTERNAL_PREFIX})",
            location=source.where,
            hint="rename the column in the file",
        )


def _label(fmt: str, source: _Source) -> str:
    return fmt + ("+gzip" if source.gzip else "")


def _duck_path(ctx: _Context, path: Path, name: str) -> str:
    """A path DuckDB will not glob-expand: files with glob characters get a symlink."""
    text = str(path)
    if not _GLOB_CHARS.search(text):
        return text
    link = ctx.temp(name + "".join(path.suffixes[-2:]).replace("*", "_"))
    try:
        link.symlink_to(path)
    except OSError:
        return text
    return str(link)
