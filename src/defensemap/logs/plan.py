"""Plan a file's load before anything is written: make it readable, choose its table, map
and type its columns, and count the values that will not convert."""

from __future__ import annotations

import re
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from defensemap.catalog import Catalog, Table
from defensemap.errors import InputError, ParseError, SchemaError, SourceError, SourceLocation
from defensemap.logs.context import (
    _INTERNAL_PREFIX,
    _MAX_REPORTED_LINES,
    _REC,
    _RN,
    _Context,
    _Prepared,
    _reserved,
)
from defensemap.logs.duck import RECORD_COLUMN, SOURCE_COLUMN
from defensemap.logs.events import _WINDOWS_TYPES, WINDOWS_EVENTS_TABLE, _prepare_evtx
from defensemap.logs.formats import _duck_error, _Source
from defensemap.logs.readers import (
    _prepare_csv,
    _prepare_json_documents,
    _prepare_ndjson,
    _prepare_parquet,
)
from defensemap.logs.sql import (
    _MAX_THRESHOLDS,
    _convert,
    _line_expr,
    _one,
    _present,
    _q,
    _thresholds,
)

_UTC_SUFFIX = re.compile(r"\s*\[(UTC|utc)\]\Z")


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
