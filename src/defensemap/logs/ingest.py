"""Load log files into DuckDB tables: NDJSON, JSON arrays, CSV, Parquet, EVTX, EVTX as JSON.

``ingest(con, paths)`` plans every file first, then loads them all in one transaction, so a
bad file anywhere leaves the logs database exactly as it was.

Planning a file (outside the transaction, reading only):

1. **Sniff the format** from the extension and the first bytes (gzip is looked through).
2. **Read its schema** with DuckDB's own readers (``read_json`` with ``sample_size=-1`` so
   a type seen only at the end of a big file is not missed, ``read_csv``, ``read_parquet``).
   Windows events (``.evtx``, or JSON with the ``Event.System`` nesting) are flattened in
   Python by :func:`defensemap.logs.flatten.flatten_event` and written to a temporary NDJSON
   file that ``read_json`` then loads (see ``events._EventWriter`` for why).
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

This module is the entry point and runs the load; the steps live beside it: ``formats``
(sniffing, reading), ``readers`` and ``events`` (a SQL reader per format), ``plan`` (table
and column planning, the pre-pass), ``sql`` (SQL fragments, type conversions) and
``progress``.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import duckdb

from defensemap.catalog import load_catalog
from defensemap.errors import InputError, SourceError, StoreError
from defensemap.logs.context import _INTERNAL_PREFIX, _REC, _RESERVED, _Context
from defensemap.logs.duck import RECORD_COLUMN, SOURCE_COLUMN
from defensemap.logs.events import WINDOWS_EVENTS_TABLE
from defensemap.logs.formats import _duck_error, _sniff
from defensemap.logs.plan import _Plan, _plan, _Tables, _TableState
from defensemap.logs.progress import ProgressCallback, _Progress
from defensemap.logs.sql import _one, _q

__all__ = [
    "WINDOWS_EVENTS_TABLE",
    "IngestReport",
    "ProgressCallback",
    "detect_format",
    "ingest",
    "validate_table_name",
]

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}\Z")


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
