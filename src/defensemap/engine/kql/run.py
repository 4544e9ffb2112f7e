""":func:`run_kql`: a query run on the live, locked-down logs connection, and its
:class:`KqlResult`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from defensemap.catalog import Catalog, load_catalog
from defensemap.engine.kql.diagnose import _duckdb_problem
from defensemap.engine.kql.problems import KqlError, KqlResourceError
from defensemap.engine.kql.scan import _case_problems
from defensemap.engine.kql.sql import _sql_refs, _sql_safety_problem
from defensemap.engine.kql.translate import (
    _all_columns,
    _columns_of,
    _datetime_columns,
    _prepare,
    _resolve_tables,
)
from defensemap.logs.duck import with_timeout as _with_timeout


@dataclass(frozen=True)
class KqlResult:
    """Rows of a query run by :func:`run_kql`, with their column names and the SQL."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    sql: str
    truncated: bool = False


def _live_schema(
    con: duckdb.DuckDBPyConnection, tables: Sequence[str]
) -> dict[str, list[tuple[str, str]]]:
    """The present tables' columns, each with ``datetime`` for a TIMESTAMP column (the
    only type the rewrites ask about) and its DuckDB type otherwise."""
    wanted = set(tables)
    rows = con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_catalog = current_database() "
        "ORDER BY table_name, ordinal_position"
    ).fetchall()
    schema: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in rows:
        if table in wanted:
            kind = "datetime" if str(data_type).upper().startswith("TIMESTAMP") else str(data_type)
            schema.setdefault(str(table), []).append((str(column), kind))
    return schema


def run_kql(
    con: duckdb.DuckDBPyConnection,
    text: str,
    *,
    timeout: float,
    label: str,
    tables_present: Sequence[str],
    max_rows: int | None = None,
    catalog: Catalog | None = None,
) -> KqlResult:
    """Run a KQL query on the live, locked-down logs connection.

    Refuses unsafe constructs, parse errors, unsupported constructs, tables without loaded
    logs (``tables_present``) and case-mismatched columns before anything runs, by raising
    the matching :class:`KqlError`; then runs the SQL under ``with_timeout`` (raising
    QueryTimeoutError that names ``label``). ``max_rows`` caps the rows fetched
    (``truncated`` says whether more were there).
    """
    catalog = catalog if catalog is not None else load_catalog()
    typed = _live_schema(con, tables_present)
    schema = {name: [column for column, _ in columns] for name, columns in typed.items()}
    present = sorted(schema)
    known = sorted(set(catalog.names()) | set(present))
    tokens, prepared = _prepare(
        text,
        schema,
        present,
        bind_missing=False,
        datetime_columns=_datetime_columns(typed),
        catalog_tables=known,
    )
    if isinstance(prepared, list):
        raise KqlError.from_problem(prepared[0])
    refs = _sql_refs(con, prepared.sql)
    unsafe = _sql_safety_problem(refs)
    if unsafe is not None:
        raise KqlError.from_problem(unsafe)
    tables, problems = _resolve_tables(refs, tokens, present, known, loaded=True)
    if not problems:
        problems = _case_problems(tokens, _columns_of(tables, schema))
    if problems:
        raise KqlError.from_problem(problems[0])

    def work() -> KqlResult:
        cursor = con.execute(prepared.sql, prepared.parameters or None)
        columns = [d[0] for d in cursor.description or []]
        if max_rows is None:
            return KqlResult(columns, cursor.fetchall(), prepared.sql)
        rows = cursor.fetchmany(max_rows + 1)
        return KqlResult(columns, rows[:max_rows], prepared.sql, len(rows) > max_rows)

    try:
        return _with_timeout(con, work, timeout, label)
    except duckdb.OutOfMemoryException as exc:
        raise KqlResourceError(
            f"{label} ran out of memory: {str(exc).splitlines()[0]}",
            hint="narrow the rule or the logs, or raise the memory limit",
        ) from None
    except duckdb.Error as exc:
        problem = _duckdb_problem(exc, tokens, known, _all_columns(tables, schema))
        raise KqlError.from_problem(problem) from None
