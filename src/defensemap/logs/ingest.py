"""Load log files into DuckDB tables: NDJSON, JSON arrays, CSV, Parquet, EVTX, EVTX as JSON.

``ingest(con, paths)`` plans every file first, then loads them all in one transaction, so a
bad file anywhere leaves the logs database exactly as it was.

Planning a file (outside the transaction, reading only):

1. **Sniff the format** from the extension and the first bytes (gzip is looked through).
2. **Read its schema** with DuckDB's own readers (``read_json`` with ``sample_size=-1`` so
   a type seen only at the end of a big file is not missed, ``read_csv``, ``read_parquet``).
   Windows events (``.evtx``, or JSON with the ``Event.System`` nesting) are flattened in
   Python by :func:`defensemap.logs.flatten.flatten_event` and written to a temporary NDJSON
   file that ``read_json`` then loads (see ``_EventWriter`` for why).
3. **Choose the table**: ``--table``; ``WindowsEvents`` for Windows events; the catalog table
   whose columns the file's match (``Catalog.infer_table``); a catalog table named by the
   file; else the file name. The reason is reported.
4. **Type the columns**: an existing table's types win, then the catalog's (datetime →
   TIMESTAMP in UTC, dynamic → JSON), then the file's own. Conversions that can fail
   (text → TIMESTAMP, text → BIGINT, ...) are counted in a pre-pass: in a catalog or existing
   column the failures are reported; in a column whose type was only guessed from the data
   the column is kept as text instead, so no value is lost.

Malformed input never disappears silently. DuckDB's JSON errors do not give reliable line
numbers (measured: off by one after blank or CRLF lines), so when DuckDB rejects an NDJSON
file it is re-read in Python to find the first bad line exactly; with ``skip_bad`` the good
lines are copied to a temporary file, each tagged with its original line number, and the
bad ones counted. CSV rows DuckDB rejects are taken from its ``store_rejects`` tables.

Memory stays bounded: Python only ever holds one line, one EVTX record or one batch of
records; the big reads are DuckDB's streaming readers.
"""

from __future__ import annotations

import gzip
import re
import stat
import tempfile
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn, cast

import duckdb
import orjson

from defensemap.catalog import Catalog, Table, load_catalog
from defensemap.engine.duck import RECORD_COLUMN, SOURCE_COLUMN
from defensemap.errors import (
    InputError,
    ParseError,
    SchemaError,
    SourceError,
    SourceLocation,
    StoreError,
)
from defensemap.logs.flatten import flatten_event, is_evtx_json

__all__ = [
    "WINDOWS_EVENTS_TABLE",
    "IngestReport",
    "ProgressCallback",
    "detect_format",
    "ingest",
    "validate_table_name",
]

ProgressCallback = Callable[[int, int], None]

WINDOWS_EVENTS_TABLE = "WindowsEvents"
EVTX_MAGIC = b"ElfFile\x00"
PARQUET_MAGIC = b"PAR1"
GZIP_MAGIC = b"\x1f\x8b"
MAX_LINE_BYTES = 16 << 20  # DuckDB's default maximum_object_size for JSON
BATCH = 5000
_HEAD = 64 << 10
_CHUNK = 4 << 20
# Line-number corrections (blank NDJSON lines, rejected CSV rows) are applied in SQL by a
# balanced CASE tree; beyond this many, NDJSON takes the tagged-copy path instead.
_MAX_THRESHOLDS = 4096
_MAX_REPORTED_LINES = 20
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}\Z")
_UTC_SUFFIX = re.compile(r"\s*\[(UTC|utc)\]\Z")
_GLOB_CHARS = re.compile(r"[*?\[\]{}]")
# Sentinel and Defender portal CSV exports write datetimes in US style.
_DATETIME_FORMATS = (
    "%m/%d/%Y, %I:%M:%S.%g %p",
    "%m/%d/%Y, %I:%M:%S %p",
    "%m/%d/%Y %I:%M:%S.%g %p",
    "%m/%d/%Y %I:%M:%S %p",
    "%b %d, %Y %I:%M:%S %p",
)
_RESERVED = frozenset(c.casefold() for c in (SOURCE_COLUMN, RECORD_COLUMN))
_INTERNAL_PREFIX = "__dm_"
_RN = "__dm_rn"
_REC = "__dm_rec"

_WINDOWS_TYPES = {"EventID": "BIGINT", "TimeCreated": "TIMESTAMP"}

_SUFFIXES = {
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".evtx": "evtx",
}
SUPPORTED = ".ndjson, .jsonl, .json, .csv, .tsv (each optionally .gz), .parquet, .evtx"


@dataclass(frozen=True)
class IngestReport:
    """What happened to one input file.

    ``path`` is the path as given (``_dm_source`` in the table holds it resolved to an
    absolute path); ``rows`` the rows added to ``table``. ``format`` is one of ndjson,
    json-array, json (one or more JSON documents), csv, parquet, evtx, evtx-json (with
    ``+gzip`` when compressed). ``table_reason`` says how the table was chosen.
    ``skipped_bad`` counts malformed lines skipped under ``skip_bad``; ``bad_lines`` lists the
    first of them. ``cast_failures`` counts values that could not be converted to a catalog
    or existing column's type (stored as NULL). ``extra_columns`` are columns a catalog table
    does not have (kept, as the file typed them); ``new_columns`` the columns this file added
    to its table. ``warnings``: anything else worth saying (a column kept as text because
    some values did not fit the type its first values suggested, a file column dropped
    because its name is reserved).
    """

    path: Path
    format: str
    table: str
    rows: int
    skipped_bad: int
    table_reason: str
    created_table: bool = False
    new_columns: tuple[str, ...] = ()
    extra_columns: tuple[str, ...] = ()
    cast_failures: tuple[tuple[str, int], ...] = ()
    bad_lines: tuple[int, ...] = ()
    warnings: tuple[str, ...] = ()


def validate_table_name(name: str) -> str:
    """A user-given table name, if it is a plain identifier; else InputError."""
    if not isinstance(name, str) or not _TABLE_NAME.match(name):
        raise InputError(
            f"invalid table name {name!r}",
            hint="use letters, digits and underscores, starting with a letter or underscore",
        )
    if name.casefold().startswith(_INTERNAL_PREFIX) or name.casefold() in _RESERVED:
        raise InputError(f"table name {name!r} is reserved", hint="choose another name")
    return name


def ingest(
    con: duckdb.DuckDBPyConnection,
    paths: Sequence[Path],
    *,
    table: str | None = None,
    skip_bad: bool = False,
    on_progress: ProgressCallback | None = None,
) -> list[IngestReport]:
    """Load ``paths`` into tables of ``con``, all or nothing; one report per file.

    Must not be called inside an open transaction (it runs its own). ``on_progress`` gets
    (bytes done, bytes total) over all files; it may be called from a worker thread.
    Raises InputError (bad table name), SourceError/ParseError/SchemaError naming the file.
    """
    if table is not None:
        table = validate_table_name(table)
    paths = [Path(p) for p in paths]
    if not paths:
        return []
    sources = [_sniff(p) for p in paths]
    catalog = load_catalog()
    with (
        tempfile.TemporaryDirectory(prefix="defensemap-ingest-") as tmp,
        _Progress(con, on_progress, [s.size for s in sources]) as progress,
    ):
        tables = _Tables.load(con)
        plans = []
        for index, source in enumerate(sources):
            progress.file(index)
            ctx = _Context(con, Path(tmp), index, skip_bad, progress, catalog)
            plans.append(_plan(ctx, source, table, tables))
        reports = _load(con, plans, tables, progress)
        progress.finish()
    return reports


def detect_format(path: Path) -> str:
    """The format label ``ingest`` would use for ``path`` (before EVTX-JSON detection)."""
    source = _sniff(Path(path))
    return source.format + ("+gzip" if source.gzip else "")


# --------------------------------------------------------------------------- sniffing


@dataclass(frozen=True)
class _Source:
    path: Path  # as given
    absolute: Path
    format: str  # ndjson, json-array, json, csv, parquet, evtx
    gzip: bool
    size: int

    @property
    def where(self) -> SourceLocation:
        return SourceLocation(path=str(self.path))

    @property
    def compression(self) -> str:
        return "gzip" if self.gzip else "none"


def _sniff(path: Path) -> _Source:
    where = SourceLocation(path=str(path))
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SourceError("file not found", location=where, hint="check the path") from None
    except OSError as exc:
        raise SourceError(f"cannot read the file: {exc.strerror or exc}", location=where) from None
    if stat.S_ISDIR(info.st_mode):
        raise SourceError(
            "is a directory, not a file", location=where, hint="pass the log files themselves"
        )
    if not stat.S_ISREG(info.st_mode):
        raise SourceError(
            "not a regular file", location=where, hint="save the logs to a file first"
        )
    try:
        with path.open("rb") as handle:
            raw = handle.read(_HEAD)
    except OSError as exc:
        raise SourceError(
            f"cannot read the file: {exc.strerror or exc}",
            location=where,
            hint="check the file's permissions",
        ) from None
    if not raw:
        raise SourceError("the file is empty", location=where)
    absolute = path.resolve()
    name = path.name.lower()
    compressed = raw[:2] == GZIP_MAGIC
    if name.endswith(".gz"):
        name = name[:-3]
    suffix = Path(name).suffix
    expected = _SUFFIXES.get(suffix)

    def source(fmt: str) -> _Source:
        return _Source(path, absolute, fmt, compressed, info.st_size)

    if raw.startswith(EVTX_MAGIC):
        return source("evtx")
    if expected == "evtx":
        raise ParseError(
            "not an EVTX file (no 'ElfFile' header)",
            location=where,
            hint="the file is damaged or has the wrong extension",
        )
    if raw.startswith(PARQUET_MAGIC):
        return source("parquet")
    if expected == "parquet":
        raise ParseError("not a Parquet file (no 'PAR1' header)", location=where)
    first = _first_content_byte(path, compressed, where)
    if first is None:
        raise SourceError("the file is empty (only whitespace)", location=where)
    if expected == "csv":
        return source("csv")
    if first == ord("["):
        return source("json-array")
    if first == ord("{"):
        if expected == "ndjson":
            return source("ndjson")
        return source(_json_layout(path, compressed, where))
    if expected in {"ndjson", "json"}:
        raise ParseError(
            f"not JSON: the file starts with {chr(first)!r}",
            location=where,
            hint="the file is damaged or not JSON",
        )
    raise SourceError(
        "unknown log format",
        location=where,
        hint=f"supported: {SUPPORTED}; rename the file to say what it holds",
    )


@contextmanager
def _open_text(
    path: Path, compressed: bool, where: SourceLocation
) -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """(the file's decompressed bytes, the raw file for its position); gzip errors become
    ParseError."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise SourceError(f"cannot read the file: {exc.strerror or exc}", location=where) from None
    with raw:
        try:
            if compressed:
                with gzip.GzipFile(fileobj=raw) as archive:
                    yield cast(IO[bytes], archive), raw
            else:
                yield raw, raw
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise ParseError(
                f"gzip archive is truncated or corrupt ({exc})", location=where
            ) from None


def _first_content_byte(path: Path, compressed: bool, where: SourceLocation) -> int | None:
    with _open_text(path, compressed, where) as (handle, _):
        start = True
        while chunk := handle.read(_CHUNK):
            if start and chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
            start = False
            stripped = chunk.lstrip()
            if stripped:
                return stripped[0]
    return None


def _json_layout(path: Path, compressed: bool, where: SourceLocation) -> str:
    """``{`` first: NDJSON when the first non-blank line is a whole JSON object, else
    one or more (pretty-printed) documents."""
    with _open_text(path, compressed, where) as (handle, _):
        for _, line in _lines(handle):
            if line is None:
                return "ndjson"
            if line.strip():
                try:
                    value = orjson.loads(line)
                except orjson.JSONDecodeError:
                    return "json"
                return "ndjson" if isinstance(value, dict) else "json"
    return "json"


def _lines(handle: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """(1-based line number, line without its newline); None for a line longer than
    MAX_LINE_BYTES, which is skipped over without being held in memory."""
    number = 0
    first = True
    while True:
        line = handle.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if first and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        first = False
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while True:
                rest = handle.readline(_CHUNK)
                if not rest or rest.endswith(b"\n"):
                    break
            yield number, None
            continue
        yield number, line.rstrip(b"\r\n")


# --------------------------------------------------------------------------- planning


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


@dataclass
class _Column:
    source: str
    read_type: str
    target: str
    target_type: str
    pinned: bool  # type fixed by the catalog, WindowsEvents or an existing table
    expr: str = ""
    fallible: bool = False


@dataclass
class _Plan:
    source: _Source
    prepared: _Prepared
    table: str
    reason: str
    columns: list[_Column]
    extra: tuple[str, ...]
    cast_failures: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    created: bool = False
    new_columns: list[str] = field(default_factory=list)


class _TableState:
    def __init__(self, name: str, columns: list[tuple[str, str]], *, exists: bool) -> None:
        self.name = name
        self.exists = exists
        self.columns: dict[str, tuple[str, str]] = {n.casefold(): (n, t) for n, t in columns}
        self.added: list[tuple[str, str]] = []

    def get(self, name: str) -> tuple[str, str] | None:
        return self.columns.get(name.casefold())

    def add(self, name: str, column_type: str) -> bool:
        if name.casefold() in self.columns:
            return False
        self.columns[name.casefold()] = (name, column_type)
        self.added.append((name, column_type))
        return True


class _Tables:
    """The logs database's tables as they will be once the planned files are loaded."""

    def __init__(self, tables: dict[str, _TableState], views: set[str]) -> None:
        self.tables = tables
        self.views = views

    @classmethod
    def load(cls, con: duckdb.DuckDBPyConnection) -> _Tables:
        rows = con.execute(
            "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_catalog, table_schema, table_name)"
            " WHERE c.table_schema = 'main' AND c.table_catalog = current_database()"
            " AND t.table_type = 'BASE TABLE' ORDER BY c.table_name, c.ordinal_position"
        ).fetchall()
        columns: dict[str, list[tuple[str, str]]] = {}
        names: dict[str, str] = {}
        for table_name, column, column_type in rows:
            names[table_name.casefold()] = table_name
            columns.setdefault(table_name.casefold(), []).append((column, column_type))
        views = {
            r[0].casefold()
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
                " AND table_catalog = current_database() AND table_type <> 'BASE TABLE'"
            ).fetchall()
        }
        tables = {k: _TableState(names[k], cols, exists=True) for k, cols in columns.items()}
        return cls(tables, views)

    def get(self, name: str) -> _TableState | None:
        return self.tables.get(name.casefold())

    def ensure(self, name: str, known: Table | None) -> _TableState:
        state = self.get(name)
        if state is None:
            state = _TableState(name, [], exists=False)
            if known is not None:
                for col in known.columns:
                    state.add(col.name, col.duckdb_type)
            self.tables[name.casefold()] = state
        return state


def _plan(ctx: _Context, source: _Source, table: str | None, tables: _Tables) -> _Plan:
    if source.format == "evtx":
        prepared = _prepare_evtx(ctx, source)
    elif source.format == "ndjson":
        prepared = _prepare_ndjson(ctx, source)
    elif source.format in {"json-array", "json"}:
        prepared = _prepare_json_documents(ctx, source)
    elif source.format == "csv":
        prepared = _prepare_csv(ctx, source)
    else:
        prepared = _prepare_parquet(ctx, source)
    _require_records(source, prepared)
    name, reason, known = _choose_table(ctx.catalog, source, prepared, table, tables)
    if name.casefold() in tables.views:
        raise InputError(
            f"{name} is a view, not a table", location=source.where, hint="pass --table"
        )
    plan = _map_columns(source, prepared, name, reason, known, tables)
    ctx.progress.stage(0.45, 0.6)
    _prepass(ctx, plan)
    _require_records(source, prepared)
    plan.created = tables.get(plan.table) is None
    state = tables.ensure(plan.table, known)
    plan.new_columns = [c.target for c in plan.columns if state.add(c.target, c.target_type)]
    state.add(SOURCE_COLUMN, "VARCHAR")
    state.add(RECORD_COLUMN, "BIGINT")
    return plan


def _require_records(source: _Source, prepared: _Prepared) -> None:
    if prepared.expected_rows == 0:
        bad = f" ({prepared.skipped} bad, skipped)" if prepared.skipped else ""
        raise SourceError(f"the file holds no records{bad}", location=source.where)


def _choose_table(
    catalog: Catalog,
    source: _Source,
    prepared: _Prepared,
    table: str | None,
    tables: _Tables,
) -> tuple[str, str, Table | None]:
    if table is not None:
        name, reason = table, "--table"
    elif prepared.windows:
        channels = prepared.channels
        if len(channels) == 1:
            reason = f"EVTX channel {channels[0]}"
        elif channels:
            more = ", …" if len(channels) > 5 else ""
            reason = "EVTX channels " + ", ".join(channels[:5]) + more
        else:
            reason = "EVTX events"
        name = WINDOWS_EVENTS_TABLE
    else:
        names = [_UTC_SUFFIX.sub("", c[0]) for c in prepared.columns if not _reserved(c[0])]
        guess = catalog.infer_table(names)
        if guess is not None:
            name, reason = guess[0], f"inferred from columns ({guess[0]}, score {guess[1]:.2f})"
        elif {"EventID", "Channel"} <= set(names):
            # already-flat Windows events (Sigma field names), e.g. another tool's export
            name, reason = WINDOWS_EVENTS_TABLE, "flat Windows events (EventID and Channel columns)"
        else:
            name, reason = _name_from_file(catalog, source.path)
    known = catalog.table(name)
    if known is not None:
        name = known.name
    existing = tables.get(name)
    if existing is not None:
        name = existing.name
    return name, reason, known


def _name_from_file(catalog: Catalog, path: Path) -> tuple[str, str]:
    stem = path.name.split(".", 1)[0] or "logs"
    folded = stem.casefold()
    best = None
    for known in catalog.names():
        k = known.casefold()
        if (folded == k or (folded.startswith(k) and not folded[len(k)].isalnum())) and (
            best is None or len(known) > len(best)
        ):
            best = known
    if best is not None:
        return best, f"file name (known table {best})"
    name = re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_") or "logs"
    if not name[0].isalpha():
        name = f"logs_{name}"
    name = name[:128]
    if name.casefold().startswith(_INTERNAL_PREFIX):
        name = f"logs{name}"
    return name, "file name"


def _reserved(name: str) -> bool:
    folded = name.casefold()
    return folded in _RESERVED or folded.startswith(_INTERNAL_PREFIX)


def _map_columns(
    source: _Source,
    prepared: _Prepared,
    table: str,
    reason: str,
    known: Table | None,
    tables: _Tables,
) -> _Plan:
    existing = tables.get(table)
    columns: list[_Column] = []
    used: set[str] = set()
    extra: list[str] = []
    notes = list(prepared.warnings)
    for name, read_type, proposed in prepared.columns:
        if _reserved(name):
            notes.append(f"column {name} of the file was dropped: the name is reserved")
            continue
        target, target_type, pinned = name, proposed, False
        in_catalog = False
        if known is not None:
            col = known.column(_UTC_SUFFIX.sub("", name))
            if col is not None:
                target, target_type, pinned, in_catalog = col.name, col.duckdb_type, True, True
        if prepared.windows and not in_catalog:
            target_type, pinned = _WINDOWS_TYPES.get(name, "VARCHAR"), True
        current = existing.get(target) if existing is not None else None
        if current is not None:
            target, target_type, pinned = current[0], current[1], True
        if target.casefold() in used:
            if name.casefold() in used:
                raise SchemaError(
                    f"two columns named {name!r} (column names are case-insensitive)",
                    location=source.where,
                    hint="rename one of them in the file",
                )
            target, target_type, pinned = name, proposed, False
            current = existing.get(target) if existing is not None else None
            if current is not None:
                target, target_type, pinned = current[0], current[1], True
        used.add(target.casefold())
        if known is not None and not in_catalog:
            extra.append(target)
        column = _Column(name, read_type, target, target_type, pinned)
        column.expr, column.fallible = _convert(
            f"src.{_q(name)}",
            read_type,
            target_type,
            unwrap=in_catalog,
            formats=prepared.time_formats,
        )
        columns.append(column)
    if not columns:
        raise SchemaError("the file has no columns to load", location=source.where)
    return _Plan(source, prepared, table, reason, columns, tuple(extra), warnings=notes)


def _prepass(ctx: _Context, plan: _Plan) -> None:
    """Count conversion failures (and CSV rows DuckDB rejects) before loading anything."""
    prepared = plan.prepared
    fallible = [c for c in plan.columns if c.fallible]
    if not fallible and not prepared.needs_prepass:
        return
    checks = ["count(*)"]
    for column in fallible:
        present = _present(f"src.{_q(column.source)}", column.read_type)
        checks.append(f"count(*) FILTER (WHERE {present} AND ({column.expr}) IS NULL)")
    sql = f"SELECT {', '.join(checks)} FROM ({prepared.reader}) AS src"
    row = _run(ctx, plan.source, sql, prepared.params)
    if prepared.csv_rejects is not None:
        _csv_rejects(ctx, plan, int(row[0]))
    elif prepared.expected_rows is None:
        prepared.expected_rows = int(row[0])
    for column, failures in zip(fallible, row[1:], strict=True):
        if not failures:
            continue
        if column.pinned:
            plan.cast_failures[column.target] = int(failures)
        else:
            plan.warnings.append(
                f"column {column.target} kept as text: {failures} value(s) are not"
                f" {column.target_type}"
            )
            column.target_type = "VARCHAR"
            column.expr, column.fallible = _convert(
                f"src.{_q(column.source)}", column.read_type, "VARCHAR"
            )


def _run(ctx: _Context, source: _Source, sql: str, params: list[Any]) -> tuple[Any, ...]:
    try:
        with ctx.progress.query():
            row = _one(ctx.con.execute(sql, params))
    except duckdb.Error as exc:
        raise _duck_error(source, exc) from None
    assert row is not None
    return tuple(row)


def _duck_error(source: _Source, exc: duckdb.Error) -> SourceError:
    message = str(exc).split("\n", 1)[0]
    message = re.sub(r"^[A-Za-z ]*Error: ", "", message)
    if isinstance(exc, duckdb.IOException):
        return SourceError(f"cannot read the file: {message}", location=source.where)
    return ParseError(
        message,
        location=source.where,
        hint="the file is damaged, or not in the format its name says",
    )


# --------------------------------------------------------------------------- NDJSON


@dataclass
class _LineScan:
    lines: int = 0
    records: int = 0  # non-blank lines
    blanks: list[int] | None = field(default_factory=list)  # None: too many to keep


def _prepare_ndjson(ctx: _Context, source: _Source) -> _Prepared:
    with _open_text(source.absolute, source.gzip, source.where) as (handle, _):
        first = next((line for _, line in _lines(handle) if line is None or line.strip()), None)
    if first is not None and _is_evtx_line(first):
        return _prepare_evtx_json(ctx, source, "ndjson")
    ctx.progress.stage(0.0, 0.15)
    scan = _scan_blank_lines(ctx, source)
    path = _duck_path(ctx, source.absolute, "input")
    ctx.progress.stage(0.15, 0.45)
    described = _describe_json(ctx, source, path, "newline_delimited", source.compression)
    if isinstance(described, _DescribeFailure) or scan.blanks is None:
        if isinstance(described, _DescribeFailure) and not ctx.skip_bad:
            _raise_first_bad_line(ctx, source, described)
        return _prepare_tagged_copy(ctx, source)
    read_columns, proposed = _json_columns(source, described)
    thresholds = _thresholds(scan.blanks)
    line = _line_expr(_RN, thresholds, base=0)
    reader = (
        f"SELECT {_select_list(read_columns)}, {line} AS {_REC} FROM ("
        f"SELECT *, row_number() OVER () AS {_RN} FROM read_json(?, format='newline_delimited',"
        " records='true', columns=?, compression=?))"
    )
    return _Prepared(
        format=_label("ndjson", source),
        reader=reader,
        params=[path, read_columns, source.compression],
        columns=proposed,
        expected_rows=scan.records,
    )


def _is_evtx_line(line: bytes) -> bool:
    try:
        return is_evtx_json(orjson.loads(line))
    except orjson.JSONDecodeError:
        return False


def _scan_blank_lines(ctx: _Context, source: _Source) -> _LineScan:
    """Count lines and note blank ones (DuckDB skips them, so row n is not line n)."""
    scan = _LineScan()
    with source.absolute.open("rb") as raw:
        handle = cast(IO[bytes], gzip.GzipFile(fileobj=raw)) if source.gzip else raw
        try:
            carry = b""
            first = True
            while chunk := handle.read(_CHUNK):
                if first and chunk.startswith(b"\xef\xbb\xbf"):
                    chunk = chunk[3:]
                first = False
                data = carry + chunk
                end = data.rfind(b"\n") + 1
                carry = data[end:]
                _scan_block(scan, data[:end])
                ctx.progress.fraction(raw.tell() / max(source.size, 1))
            if carry:
                _scan_block(scan, carry + b"\n")
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise ParseError(
                f"gzip archive is truncated or corrupt ({exc})", location=source.where
            ) from None
    return scan


# A newline followed by a blank line. Searching for newlines (a literal first character)
# keeps the scan at C speed; the lookahead leaves the blank line's own newline to match
# again when several blank lines follow each other.
_BEFORE_BLANK = re.compile(rb"\n(?=[ \t\r]*\n)")
_BLANK_START = re.compile(rb"[ \t\r]*\n")
_MAYBE_BLANK = re.compile(rb"\n[\n\r \t]")  # measured 2x faster than four `in` tests


def _scan_block(scan: _LineScan, block: bytes) -> None:
    """Account for ``block``: whole lines, each ending with a newline."""
    lines = block.count(b"\n")
    starts_blank = _BLANK_START.match(block) is not None
    if not starts_blank and _MAYBE_BLANK.search(block) is None:
        scan.lines += lines  # the common case, decided at memchr speed
        scan.records += lines
        return
    if scan.blanks is None:
        blanks = starts_blank + sum(1 for _ in _BEFORE_BLANK.finditer(block))
    else:
        if starts_blank:
            scan.blanks.append(scan.lines + 1)
        position, line = 0, scan.lines
        for match in _BEFORE_BLANK.finditer(block):
            # the newline ends line `line`; the blank line is the next one
            line += block.count(b"\n", position, match.start()) + 1
            position = match.start() + 1
            scan.blanks.append(line + 1)
            if len(scan.blanks) > _MAX_THRESHOLDS:
                break
        blanks = starts_blank + sum(1 for _ in _BEFORE_BLANK.finditer(block))
        if len(scan.blanks) > _MAX_THRESHOLDS:
            scan.blanks = None
    scan.lines += lines
    scan.records += lines - blanks


@dataclass
class _DescribeFailure:
    error: duckdb.Error


def _describe_json(
    ctx: _Context, source: _Source, path: str, fmt: str, compression: str
) -> list[tuple[str, str]] | _DescribeFailure:
    """Column names and types of a JSON file over all its records (sample_size=-1)."""
    sql = (
        f"SELECT * FROM read_json(?, format='{fmt}', records='true', sample_size=-1,"
        " maximum_depth=2, compression=?) LIMIT 0"
    )
    try:
        with ctx.progress.query():
            result = ctx.con.execute(sql, [path, compression])
    except duckdb.IOException as exc:
        raise _duck_error(source, exc) from None
    except duckdb.Error as exc:
        return _DescribeFailure(exc)
    return [(d[0], str(d[1])) for d in result.description or []]


def _json_columns(
    source: _Source, described: list[tuple[str, str]], *, internal: str | None = None
) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """How to read each JSON column (``columns=`` of read_json) and the proposed type."""
    folded = {name.casefold() for name, _ in described}
    read: dict[str, str] = {}
    proposed: list[tuple[str, str, str]] = []
    for name, detected in described:
        match = re.fullmatch(r"(.+)_\d+", name)
        if match and match[1].casefold() in folded:
            raise SchemaError(
                f"keys that differ only in case ({match[1]!r} …): SQL column names are"
                " case-insensitive",
                location=source.where,
                hint="rename one of the keys",
            )
        if name == internal:
            continue
        _check_internal(source, name)
        read_type, column_type = _read_and_column_type(detected)
        read[name] = read_type
        proposed.append((name, read_type, column_type))
    return read, proposed


def _check_internal(source: _Source, name: str) -> None:
    if name.casefold().startswith(_INTERNAL_PREFIX):
        raise SchemaError(
            f"column name {name!r} is reserved (names starting with {_INTERNAL_PREFIX})",
            location=source.where,
            hint="rename the column in the file",
        )


def _read_and_column_type(detected: str) -> tuple[str, str]:
    """(type to read a JSON value as, column type to propose) for a detected type.

    Temporal values are read as text and converted by us: DuckDB detected their format, but
    that format cannot be handed back to read_json, and the conversion is checked anyway.
    """
    kind = detected.upper()
    if kind == "JSON":
        # at maximum_depth=2 a bare JSON type means values of mixed types (3, "x"): text is
        # what queries compare such values with
        return "JSON", "VARCHAR"
    if _nested(kind):
        return "JSON", "JSON"
    if kind.startswith("TIMESTAMP"):
        return "VARCHAR", "TIMESTAMP"
    if kind in {"DATE", "TIME"}:
        return "VARCHAR", kind
    simple = _simple_type(kind)
    if simple == "VARCHAR":
        return "VARCHAR", "VARCHAR"
    return simple, simple


def _raise_first_bad_line(ctx: _Context, source: _Source, failure: _DescribeFailure) -> NoReturn:
    ctx.progress.stage(0.15, 0.45)
    with _open_text(source.absolute, source.gzip, source.where) as (handle, raw):
        for number, line in _lines(handle):
            if number % 4096 == 0:
                ctx.progress.fraction(raw.tell() / max(source.size, 1))
            problem = _line_problem(line)
            if problem is not None:
                message, column = problem
                raise ParseError(
                    f"malformed line: {message}",
                    location=SourceLocation(path=str(source.path), line=number, column=column),
                    hint="fix or remove the line, or pass --skip-bad to skip (and count) such"
                    " lines",
                )
    raise _duck_error(source, failure.error)


def _line_problem(line: bytes | None) -> tuple[str, int | None] | None:
    """Why a non-blank NDJSON line is not a JSON object; None for good and blank lines."""
    if line is None:
        return f"longer than {MAX_LINE_BYTES >> 20} MiB", None
    if not line.strip():
        return None
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg})", exc.colno
    if not isinstance(value, dict):
        return f"a JSON {type(value).__name__.replace('dict', 'object')}, not an object", 1
    return None


def _prepare_tagged_copy(ctx: _Context, source: _Source) -> _Prepared:
    """Copy the good lines to a temporary file, each tagged with its line number.

    Used with --skip-bad when some lines are bad, and when a file has too many blank lines
    to map row numbers to line numbers in SQL. The tag is spliced into each object's text
    (``{"__dm_rec":7,`` + the rest), so lines are not re-serialised.
    """
    ctx.progress.stage(0.15, 0.35)
    target = ctx.temp("tagged.ndjson")
    good = skipped = 0
    bad_lines: list[int] = []
    with (
        _open_text(source.absolute, source.gzip, source.where) as (handle, raw),
        target.open("wb") as out,
    ):
        for number, line in _lines(handle):
            problem = _line_problem(line)
            if problem is not None:
                if not ctx.skip_bad:
                    raise ParseError(
                        f"malformed line: {problem[0]}",
                        location=SourceLocation(path=str(source.path), line=number),
                        hint="fix or remove the line, or pass --skip-bad",
                    )
                skipped += 1
                if len(bad_lines) < _MAX_REPORTED_LINES:
                    bad_lines.append(number)
                continue
            assert line is not None
            body = line.strip()
            if not body:
                continue
            rest = body[1:].lstrip()
            tag = b'{"%s":%d' % (_REC.encode(), number)
            out.write(tag + (b"" if rest.startswith(b"}") else b",") + rest + b"\n")
            good += 1
            if good % 4096 == 0:
                ctx.progress.fraction(raw.tell() / max(source.size, 1))
    if not good:
        raise SourceError(
            f"the file holds no records ({skipped} bad, skipped)", location=source.where
        )
    path = _duck_path(ctx, target, "tagged")
    ctx.progress.stage(0.35, 0.45)
    described = _describe_json(ctx, source, path, "newline_delimited", "none")
    if isinstance(described, _DescribeFailure):
        raise _duck_error(source, described.error)
    read_columns, proposed = _json_columns(source, described, internal=_REC)
    reader = (
        f"SELECT {_select_list(read_columns)}, {_REC} FROM read_json(?,"
        " format='newline_delimited', records='true', columns=?)"
    )
    return _Prepared(
        format=_label("ndjson", source),
        reader=reader,
        params=[path, {**read_columns, _REC: "BIGINT"}],
        columns=proposed,
        expected_rows=good,
        skipped=skipped,
        bad_lines=tuple(bad_lines),
    )


# --------------------------------------------------------------------------- JSON documents


def _prepare_json_documents(ctx: _Context, source: _Source) -> _Prepared:
    """A JSON array of objects, or one or more whole (pretty-printed) JSON objects."""
    fmt = "array" if source.format == "json-array" else "unstructured"
    path = _duck_path(ctx, source.absolute, "input")
    ctx.progress.stage(0.0, 0.1)
    try:
        sample = ctx.con.execute(
            f"SELECT * FROM read_json(?, format='{fmt}', records='true', maximum_depth=3,"
            " compression=?) LIMIT 0",
            [path, source.compression],
        ).description
    except duckdb.Error as exc:
        raise _json_document_error(source, exc) from None
    names = [d[0] for d in sample or []]
    if names == ["Event"] and "System" in str(sample[0][1] if sample else ""):
        return _prepare_evtx_json(ctx, source, fmt)
    ctx.progress.stage(0.1, 0.45)
    described = _describe_json(ctx, source, path, fmt, source.compression)
    if isinstance(described, _DescribeFailure):
        raise _json_document_error(source, described.error)
    read_columns, proposed = _json_columns(source, described)
    reader = (
        f"SELECT {_select_list(read_columns)}, {_RN} AS {_REC} FROM ("
        f"SELECT *, row_number() OVER () AS {_RN} FROM read_json(?, format='{fmt}',"
        " records='true', columns=?, compression=?))"
    )
    return _Prepared(
        format=_label(source.format, source),
        reader=reader,
        params=[path, read_columns, source.compression],
        columns=proposed,
        needs_prepass=True,
    )


def _json_document_error(source: _Source, exc: duckdb.Error) -> SourceError:
    """A precise location from orjson when the file is small enough to parse whole."""
    hint = "the file is damaged or not JSON; --skip-bad skips lines of NDJSON files only"
    if source.size <= 64 << 20 and not source.gzip:
        try:
            value = orjson.loads(source.absolute.read_bytes())
        except orjson.JSONDecodeError as decode_error:
            return ParseError(
                f"not valid JSON: {decode_error.msg}",
                location=SourceLocation(
                    path=str(source.path), line=decode_error.lineno, column=decode_error.colno
                ),
                hint=hint,
            )
        except OSError:
            pass
        else:
            if value == []:
                return SourceError("the file holds no records", location=source.where)
            items = value if isinstance(value, list) else [value]
            for index, item in enumerate(items):
                if not isinstance(item, dict):
                    return SchemaError(
                        f"record {index + 1} is not a JSON object",
                        location=SourceLocation(path=str(source.path), pointer=f"/{index}"),
                        hint="each record must be a JSON object",
                    )
    error = _duck_error(source, exc)
    error.hint = hint
    return error


# --------------------------------------------------------------------------- CSV, Parquet


def _prepare_csv(ctx: _Context, source: _Source) -> _Prepared:
    path = _duck_path(ctx, source.absolute, "input")
    ctx.progress.stage(0.0, 0.1)
    options = "compression=?, ignore_errors=true"
    try:
        sniff = _one(
            ctx.con.execute(
                f"SELECT HasHeader, SkipRows, Columns, DateFormat, TimestampFormat"
                f" FROM sniff_csv(?, {options})",
                [path, source.compression],
            )
        )
        names = ctx.con.execute(
            f"SELECT * FROM read_csv(?, {options}, all_varchar=true) LIMIT 0",
            [path, source.compression],
        ).description
    except duckdb.Error as exc:
        raise _duck_error(source, exc) from None
    assert sniff is not None
    has_header, skip_rows, sniffed, date_format, timestamp_format = sniff
    names_list = [d[0] for d in names or []]
    types = [c["type"] for c in sniffed or []]
    if len(types) != len(names_list):
        types = ["VARCHAR"] * len(names_list)
    proposed = []
    for name, detected in zip(names_list, types, strict=True):
        _check_internal(source, name)
        _, column_type = _read_and_column_type(detected)
        proposed.append((name, "VARCHAR", column_type))
    rejects = (f"__dm_rejects_{ctx.index}", f"__dm_scans_{ctx.index}")
    header = int(skip_rows or 0) + (1 if has_header else 0)
    prepared = _Prepared(
        format=_label("csv", source),
        reader="",
        params=[],
        columns=proposed,
        needs_prepass=True,
        csv_rejects=rejects,
        time_formats=tuple(f for f in (timestamp_format, date_format) if f),
    )
    # the pre-pass reader records rejected rows; the load reader numbers rows (set later)
    prepared.reader = (
        f"SELECT * FROM read_csv(?, {options}, all_varchar=true, store_rejects=true,"
        f" rejects_table='{rejects[0]}', rejects_scan='{rejects[1]}')"
    )
    prepared.params = [path, source.compression]
    prepared.csv_header = header
    return prepared


def _csv_rejects(ctx: _Context, plan: _Plan, loaded: int) -> None:
    """Read the rows DuckDB rejected; fail on them or count them; set the load reader."""
    prepared = plan.prepared
    assert prepared.csv_rejects is not None
    rejects_table, scans_table = prepared.csv_rejects
    try:
        rows = ctx.con.execute(
            f"SELECT line, error_type::VARCHAR, error_message FROM {rejects_table} ORDER BY line"
        ).fetchall()
    finally:
        for name in (rejects_table, scans_table):
            with suppress(duckdb.Error):
                ctx.con.execute(f"DROP TABLE IF EXISTS temp.{name}")
    # one bad record can be reported once per bad column
    lines = sorted({int(r[0]) for r in rows})
    if lines and not ctx.skip_bad:
        first = next(r for r in rows if int(r[0]) == lines[0])
        raise ParseError(
            f"malformed CSV row: {first[2] or first[1]}",
            location=SourceLocation(path=str(plan.source.path), line=lines[0]),
            hint="fix or remove the row, or pass --skip-bad to skip (and count) such rows",
        )
    header = prepared.csv_header
    prepared.skipped = len(lines)
    prepared.bad_lines = tuple(lines[:_MAX_REPORTED_LINES])
    prepared.expected_rows = loaded
    # data rows before a rejected one shift the numbering of the rows after it
    data_indices = [line - header for line in lines]
    line = _line_expr(_RN, _thresholds(data_indices), base=header)
    if len(data_indices) > _MAX_THRESHOLDS:
        line = f"{_RN} + {header}"
        plan.warnings.append("record numbers after the rejected rows are approximate")
    columns = ", ".join(_q(c[0]) for c in prepared.columns)
    prepared.reader = (
        f"SELECT {columns}, {line} AS {_REC} FROM (SELECT *, row_number() OVER () AS {_RN}"
        " FROM read_csv(?, compression=?, ignore_errors=true, all_varchar=true))"
    )


def _prepare_parquet(ctx: _Context, source: _Source) -> _Prepared:
    path = _duck_path(ctx, source.absolute, "input")
    ctx.progress.stage(0.0, 0.1)
    try:
        description = ctx.con.execute("SELECT * FROM read_parquet(?) LIMIT 0", [path]).description
        count = _one(ctx.con.execute("SELECT count(*) FROM read_parquet(?)", [path]))
    except duckdb.Error as exc:
        raise _duck_error(source, exc) from None
    proposed = []
    for name, detected in ((d[0], str(d[1])) for d in description or []):
        _check_internal(source, name)
        proposed.append((name, detected, _column_type(detected)))
    columns = ", ".join(_q(c[0]) for c in proposed)
    reader = (
        f"SELECT {columns}, file_row_number + 1 AS {_REC}"
        " FROM read_parquet(?, file_row_number=true)"
    )
    return _Prepared(
        format=_label("parquet", source),
        reader=reader,
        params=[path],
        columns=proposed,
        expected_rows=int(count[0]) if count else None,
    )


# --------------------------------------------------------------------------- Windows events


class _EventWriter:
    """Flattened events to a temporary NDJSON file that read_json loads.

    Why a file and not ``executemany``: DuckDB runs an ``executemany`` INSERT one row at a
    time (measured: ~1,700 rows/s for 30 columns), while read_json loads the same rows
    vectorised; the writer also learns the union of all columns before the table is
    touched, so the load is a single ``INSERT BY NAME`` instead of a stream of ``ALTER
    TABLE``s. Memory stays at one record: rows go straight to disk.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = path.open("wb")
        self.columns: dict[str, str] = {}  # case-folded name -> first spelling seen
        self.rows = 0
        self.channels: dict[str, None] = {}

    def write(self, record_number: int, flat: dict[str, Any]) -> None:
        row: dict[str, Any] = {_REC: record_number}
        for key, value in flat.items():
            name = key if not _reserved(key) else f"Data{key}"
            row[self.columns.setdefault(name.casefold(), name)] = value
        channel = flat.get("Channel")
        if isinstance(channel, str) and len(self.channels) < 50:
            self.channels.setdefault(channel, None)
        try:
            data = orjson.dumps(row, default=str)
        except TypeError:  # strings with lone surrogates
            import json

            data = json.dumps(row, default=str, ensure_ascii=False).encode("utf-8", "replace")
        self.handle.write(data + b"\n")
        self.rows += 1

    def close(self) -> None:
        self.handle.close()


def _prepare_evtx(ctx: _Context, source: _Source) -> _Prepared:
    import evtx

    writer = _EventWriter(ctx.temp("events.ndjson"))
    skipped = 0
    ctx.progress.stage(0.0, 0.4)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            parser = evtx.PyEvtxParser(str(source.absolute), skip_errors=ctx.skip_bad)
            for number, record in enumerate(parser.records_json(), start=1):
                try:
                    data = orjson.loads(cast(dict[str, Any], record)["data"])
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    if not ctx.skip_bad:
                        raise ParseError(
                            f"EVTX record {number} is not valid JSON",
                            location=source.where,
                            hint="pass --skip-bad to skip such records",
                        ) from None
                    skipped += 1
                    continue
                writer.write(number, flatten_event(data))
                if caught:
                    skipped += sum(1 for w in caught if issubclass(w.category, RuntimeWarning))
                    caught.clear()
                if number % 1024 == 0:  # about a kilobyte per record
                    ctx.progress.fraction(number * 1024 / max(source.size, 1))
            skipped += sum(1 for w in caught if issubclass(w.category, RuntimeWarning))
    except (RuntimeError, OSError, ValueError) as exc:
        raise ParseError(
            f"cannot read the EVTX file: {exc}",
            location=source.where,
            hint="the file is damaged; pass --skip-bad to skip damaged records",
        ) from None
    finally:
        writer.close()
    return _events_prepared(ctx, source, writer, "evtx", skipped, ())


def _prepare_evtx_json(ctx: _Context, source: _Source, layout: str) -> _Prepared:
    """Windows events exported as JSON: NDJSON lines, an array, or whole documents."""
    writer = _EventWriter(ctx.temp("events.ndjson"))
    skipped = 0
    bad_lines: list[int] = []
    ctx.progress.stage(0.0, 0.4)

    def bad(number: int, message: str, *, line: bool) -> None:
        nonlocal skipped
        if not ctx.skip_bad:
            where = (
                SourceLocation(path=str(source.path), line=number)
                if line
                else SourceLocation(path=str(source.path), pointer=f"/{number - 1}")
            )
            raise ParseError(message, location=where, hint="pass --skip-bad to skip it")
        skipped += 1
        if len(bad_lines) < _MAX_REPORTED_LINES:
            bad_lines.append(number)

    try:
        if layout == "ndjson":
            with _open_text(source.absolute, source.gzip, source.where) as (handle, raw):
                for number, line in _lines(handle):
                    problem = _line_problem(line)
                    if problem is not None:
                        bad(number, f"malformed line: {problem[0]}", line=True)
                        continue
                    assert line is not None
                    if not line.strip():
                        continue
                    record = orjson.loads(line)
                    if not is_evtx_json(record):
                        bad(number, "not a Windows event (no Event.System)", line=True)
                        continue
                    writer.write(number, flatten_event(record))
                    if writer.rows % 4096 == 0:
                        ctx.progress.fraction(raw.tell() / max(source.size, 1))
        else:
            path = _duck_path(ctx, source.absolute, "input")
            try:
                cursor = ctx.con.execute(
                    f"SELECT Event FROM read_json(?, format='{layout}', records='true',"
                    " columns={'Event': 'JSON'}, compression=?)",
                    [path, source.compression],
                )
                number = 0
                while batch := cursor.fetchmany(BATCH):
                    for (event,) in batch:
                        number += 1
                        record = {"Event": orjson.loads(event) if event is not None else None}
                        if not is_evtx_json(record):
                            bad(number, f"record {number} is not a Windows event", line=False)
                            continue
                        writer.write(number, flatten_event(record))
            except duckdb.Error as exc:
                raise _json_document_error(source, exc) from None
    finally:
        writer.close()
    return _events_prepared(ctx, source, writer, "evtx-json", skipped, tuple(bad_lines))


def _events_prepared(
    ctx: _Context,
    source: _Source,
    writer: _EventWriter,
    fmt: str,
    skipped: int,
    bad_lines: tuple[int, ...],
) -> _Prepared:
    names = list(writer.columns.values())
    read_columns = {name: "BIGINT" if name == "EventID" else "VARCHAR" for name in names}
    proposed = [(name, read_columns[name], _WINDOWS_TYPES.get(name, "VARCHAR")) for name in names]
    path = _duck_path(ctx, writer.path, "events")
    reader = (
        f"SELECT {_select_list(read_columns)}, {_REC} FROM read_json(?,"
        " format='newline_delimited', records='true', columns=?)"
    )
    return _Prepared(
        format=_label(fmt, source),
        reader=reader,
        params=[path, {**read_columns, _REC: "BIGINT"}],
        columns=proposed,
        expected_rows=writer.rows,
        skipped=skipped,
        bad_lines=bad_lines,
        windows=True,
        channels=tuple(writer.channels),
    )


# --------------------------------------------------------------------------- loading


def _load(
    con: duckdb.DuckDBPyConnection,
    plans: list[_Plan],
    tables: _Tables,
    progress: _Progress,
) -> list[IngestReport]:
    touched: dict[str, _TableState] = {}
    for plan in plans:
        state = tables.get(plan.table)
        assert state is not None
        touched[state.name.casefold()] = state
    reports = []
    try:
        con.execute("BEGIN TRANSACTION")
    except duckdb.Error as exc:
        raise StoreError(
            f"cannot start the import: {exc}",
            hint="ingest runs its own transaction; do not call it inside one",
        ) from None
    try:
        for state in touched.values():
            try:
                _apply_schema(con, state)
            except duckdb.Error as exc:
                raise StoreError(f"cannot create or change table {state.name}: {exc}") from None
        for index, plan in enumerate(plans):
            progress.file(index)
            progress.stage(0.6, 1.0)
            reports.append(_insert(con, plan, progress))
        try:
            con.execute("COMMIT")
        except duckdb.Error as exc:
            raise StoreError(f"cannot commit the import: {exc}") from None
    except BaseException:
        with suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    return reports


def _apply_schema(con: duckdb.DuckDBPyConnection, state: _TableState) -> None:
    if not state.exists:
        body = ", ".join(f"{_q(n)} {t}" for n, t in state.columns.values())
        con.execute(f"CREATE TABLE main.{_q(state.name)} ({body})")
    else:
        for name, column_type in state.added:
            con.execute(f"ALTER TABLE main.{_q(state.name)} ADD COLUMN {_q(name)} {column_type}")


def _insert(con: duckdb.DuckDBPyConnection, plan: _Plan, progress: _Progress) -> IngestReport:
    prepared = plan.prepared
    select = ", ".join(f"{c.expr} AS {_q(c.target)}" for c in plan.columns)
    sql = (
        f"INSERT INTO main.{_q(plan.table)} BY NAME SELECT {select}, ? AS {_q(SOURCE_COLUMN)},"
        f" src.{_REC} AS {_q(RECORD_COLUMN)} FROM ({prepared.reader}) AS src"
    )
    try:
        with progress.query():
            row = _one(con.execute(sql, [str(plan.source.absolute), *prepared.params]))
    except duckdb.Error as exc:
        raise _duck_error(plan.source, exc) from None
    rows = int(row[0]) if row else 0
    if prepared.expected_rows is not None and rows != prepared.expected_rows:
        raise SourceError(
            f"loaded {rows} rows but the file holds {prepared.expected_rows} records",
            location=plan.source.where,
            hint="please report this with the file",
        )
    return IngestReport(
        path=plan.source.path,
        format=prepared.format,
        table=plan.table,
        rows=rows,
        skipped_bad=prepared.skipped,
        table_reason=plan.reason,
        created_table=plan.created,
        new_columns=tuple(plan.new_columns),
        extra_columns=plan.extra,
        cast_failures=tuple(sorted(plan.cast_failures.items())),
        bad_lines=prepared.bad_lines,
        warnings=tuple(plan.warnings),
    )


# --------------------------------------------------------------------------- SQL helpers


def _one(result: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    """The first row, after running the statement to its end (``fetchone`` can leave it
    unfinished, and DuckDB writes CSV rejects only when a scan completes)."""
    rows = result.fetchall()
    return tuple(rows[0]) if rows else None


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _select_list(columns: dict[str, str]) -> str:
    return ", ".join(_q(n) for n in columns)


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


def _thresholds(positions: list[int]) -> list[tuple[int, int]]:
    """For sorted 1-based positions of lines that yield no row (blank, rejected): the
    (row number from which, lines skipped before it) steps of the row → line mapping."""
    steps: dict[int, int] = {}
    for i, position in enumerate(sorted(positions), start=1):
        steps[position - i + 1] = i
    return sorted(steps.items())


def _line_expr(rn: str, thresholds: list[tuple[int, int]], *, base: int) -> str:
    """``rn`` + lines skipped before it + ``base``, as a balanced CASE tree."""

    def build(lo: int, hi: int, default: int) -> str:
        if lo >= hi:
            return str(default)
        mid = (lo + hi) // 2
        threshold, offset = thresholds[mid]
        return (
            f"CASE WHEN {rn} >= {threshold} THEN {build(mid + 1, hi, offset)}"
            f" ELSE {build(lo, mid, default)} END"
        )

    if len(thresholds) > _MAX_THRESHOLDS:
        thresholds = thresholds[:0]
    offset = build(0, len(thresholds), 0)
    total = f"{offset} + {base}" if base else offset
    return rn if total == "0" else f"{rn} + {total}"


_SIMPLE = {
    "BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
    "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "VARCHAR", "BLOB", "DATE", "TIME", "TIMESTAMP",
    "INTERVAL", "JSON",
}  # fmt: skip
_DECIMAL = re.compile(r"DECIMAL\(\d+,\s*\d+\)\Z")


def _nested(kind: str) -> bool:
    return kind.startswith(("STRUCT", "MAP", "UNION")) or kind.endswith("]")


def _simple_type(kind: str) -> str:
    if kind in _SIMPLE or _DECIMAL.match(kind):
        return kind
    if kind in {"FLOAT4", "REAL"}:
        return "FLOAT"
    if kind in {"INT", "INT4"}:
        return "INTEGER"
    if kind in {"INT8", "LONG"}:
        return "BIGINT"
    return "VARCHAR"


def _column_type(detected: str) -> str:
    """The column type for a value read as ``detected`` (Parquet, existing types)."""
    kind = detected.upper()
    if _nested(kind):
        return "JSON"
    if kind.startswith("TIMESTAMP"):
        return "TIMESTAMP"
    return _simple_type(kind)


_SAFE = {
    ("TINYINT", "SMALLINT"), ("TINYINT", "INTEGER"), ("TINYINT", "BIGINT"),
    ("SMALLINT", "INTEGER"), ("SMALLINT", "BIGINT"), ("INTEGER", "BIGINT"),
    ("UTINYINT", "SMALLINT"), ("UTINYINT", "INTEGER"), ("UTINYINT", "BIGINT"),
    ("USMALLINT", "INTEGER"), ("USMALLINT", "BIGINT"), ("UINTEGER", "BIGINT"),
    ("FLOAT", "DOUBLE"), ("TINYINT", "DOUBLE"), ("SMALLINT", "DOUBLE"),
    ("INTEGER", "DOUBLE"), ("BIGINT", "DOUBLE"), ("DATE", "TIMESTAMP"),
}  # fmt: skip


def _text_of(expr: str, read_type: str) -> str | None:
    kind = read_type.upper()
    if kind == "VARCHAR":
        return expr
    if kind == "JSON":
        return f"({expr} ->> '$')"
    return None


def _present(expr: str, read_type: str) -> str:
    """SQL: the source value is there (not NULL, JSON null or empty text)."""
    text = _text_of(expr, read_type)
    if text is None:
        return f"{expr} IS NOT NULL"
    return f"NULLIF(trim({text}), '') IS NOT NULL"


def _convert(
    expr: str,
    read_type: str,
    target_type: str,
    *,
    unwrap: bool = False,
    formats: tuple[str, ...] = (),
) -> tuple[str, bool]:
    """SQL converting ``expr`` (read as ``read_type``) to ``target_type``, and whether the
    conversion can fail (turn a present value into NULL). ``unwrap``: a JSON string that
    holds a JSON object or array is stored as that object or array. ``formats``: strptime
    formats to try on text before the usual ones (the CSV sniffer's, for one)."""
    src, dst = read_type.upper(), target_type.upper()
    text = _text_of(expr, src)
    if dst == "JSON":
        if src == "JSON" and unwrap:
            # exports often hold dynamic values as JSON text inside a string: unwrap them
            inner = f"({expr} ->> '$')"
            return (
                f"CASE WHEN json_type({expr}) = 'VARCHAR' AND json_valid({inner})"
                f" AND json_type({inner}) IN ('OBJECT', 'ARRAY') THEN CAST({inner} AS JSON)"
                f" ELSE {expr} END",
                False,
            )
        if src == "JSON":
            return expr, False
        if src == "VARCHAR":
            return (
                f"CASE WHEN json_valid({expr}) AND json_type({expr}) IN ('OBJECT', 'ARRAY')"
                f" THEN CAST({expr} AS JSON) ELSE to_json({expr}) END",
                False,
            )
        return f"to_json({expr})", False
    if src == dst:
        return expr, False
    if dst == "VARCHAR":
        if src == "JSON":
            return (
                f"CASE WHEN json_type({expr}) = 'VARCHAR' THEN {expr} ->> '$'"
                f" ELSE CAST({expr} AS VARCHAR) END",
                False,
            )
        if _nested(src):
            return f"CAST(to_json({expr}) AS VARCHAR)", False
        return f"CAST({expr} AS VARCHAR)", False
    if text is not None:
        value = f"NULLIF(trim({text}), '')"
        if dst == "TIMESTAMP":
            tried = dict.fromkeys([*formats, *_DATETIME_FORMATS])
            listed = ", ".join("'" + f.replace("'", "''") + "'" for f in tried)
            return (
                f"COALESCE(timezone('UTC', TRY_CAST({value} AS TIMESTAMPTZ)),"
                f" TRY_STRPTIME({value}, [{listed}]))",
                True,
            )
        return f"TRY_CAST({value} AS {dst})", True
    if dst == "TIMESTAMP" and src.startswith("TIMESTAMP WITH TIME ZONE"):
        return f"timezone('UTC', {expr})", False
    if dst == "TIMESTAMP" and src.startswith("TIMESTAMP"):
        return f"CAST({expr} AS TIMESTAMP)", False
    if (src, dst) in _SAFE:
        return f"CAST({expr} AS {dst})", False
    return f"TRY_CAST({expr} AS {dst})", True


# --------------------------------------------------------------------------- progress


_PLANNING = 0.6  # share of the work before loading starts


class _Progress:
    """Bytes-based progress over all files; DuckDB queries are polled from a thread."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        callback: ProgressCallback | None,
        sizes: list[int],
    ) -> None:
        self.con = con
        self.callback = callback
        self.sizes = [max(s, 1) for s in sizes]
        self.total = sum(self.sizes)
        self.starts = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.index = 0
        self.lo = self.hi = 0.0
        self.reported = -1
        self.lock = threading.Lock()
        self.saved: list[tuple[str, Any]] = []
        self.polling = False

    def __enter__(self) -> _Progress:
        if self.callback is not None:
            try:
                for setting in ("enable_progress_bar", "enable_progress_bar_print"):
                    value = _one(self.con.execute("SELECT current_setting(?)", [setting]))
                    self.saved.append((setting, value[0] if value else None))
                self.con.execute("SET enable_progress_bar = true")
                self.con.execute("SET enable_progress_bar_print = false")
                self.polling = True
            except duckdb.Error:
                self.polling = False
            self._report(0)
        return self

    def __exit__(self, *exc: object) -> None:
        for setting, value in self.saved:
            with suppress(duckdb.Error):
                self.con.execute(f"SET {setting} = {'true' if value else 'false'}")

    def file(self, index: int) -> None:
        self.index = index
        self.lo = self.hi = 0.0

    def stage(self, lo: float, hi: float) -> None:
        self.lo, self.hi = lo, hi
        self.fraction(0.0)

    def fraction(self, done: float) -> None:
        """``done`` of the current stage. A file's stages run from 0 to 1: planning (reading
        and checking) up to _PLANNING, loading after it; all files are planned before any is
        loaded, so the bar covers planning of every file, then loading of every file."""
        if self.callback is None:
            return
        done = min(max(done, 0.0), 1.0)
        within = self.lo + (self.hi - self.lo) * done
        if within <= _PLANNING:
            base, weight, part = 0.0, _PLANNING, within / _PLANNING
        else:
            base, weight, part = _PLANNING, 1 - _PLANNING, (within - _PLANNING) / (1 - _PLANNING)
        position = self.starts[self.index] + self.sizes[self.index] * part
        self._report(int(self.total * base + weight * position))

    def finish(self) -> None:
        if self.callback is not None:
            self._report(self.total)

    def _report(self, value: int) -> None:
        assert self.callback is not None
        with self.lock:
            if value <= self.reported:
                return
            self.reported = value
        self.callback(value, self.total)

    @contextmanager
    def query(self) -> Iterator[None]:
        """Report DuckDB's progress on the running query until the block ends."""
        if self.callback is None or not self.polling:
            yield
            return
        stop = threading.Event()

        def poll() -> None:
            while not stop.wait(0.2):
                with suppress(duckdb.Error, RuntimeError):
                    percent = self.con.query_progress()
                    if percent >= 0:
                        self.fraction(percent / 100)

        thread = threading.Thread(target=poll, name="defensemap-ingest-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
        self.fraction(1.0)
