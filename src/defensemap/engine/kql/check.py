""":func:`check_kql`: a query checked offline against the catalog, by running its
translation on empty typed tables in a throw-away, locked-down DuckDB."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import duckdb

from defensemap.catalog import Catalog, duckdb_type, load_catalog
from defensemap.engine.kql.diagnose import _duckdb_problem
from defensemap.engine.kql.problems import KqlCheck, KqlProblem
from defensemap.engine.kql.scan import _case_problems, _Token
from defensemap.engine.kql.sql import _sql_refs, _sql_safety_problem
from defensemap.engine.kql.translate import (
    _all_columns,
    _catalog_schema,
    _columns_of,
    _datetime_columns,
    _prepare,
    _resolve_tables,
    _Translation,
)
from defensemap.errors import InputError
from defensemap.logs.duck import QueryTimeoutError, connect, lock_down
from defensemap.logs.duck import with_timeout as _with_timeout

#: How long `check_kql` lets the SQL run on empty tables. Binding is what is checked; a
#: query that is still busy after this (a large `range`) bound fine and counts as ok.
CHECK_TIMEOUT = 10.0
CHECK_MEMORY_LIMIT = "512MB"


def check_kql(
    text: str,
    *,
    catalog: Catalog | None = None,
    extra_tables: Mapping[str, Sequence[tuple[str, str]]] | None = None,
) -> KqlCheck:
    """Check offline that a KQL query would run against tables of the catalog.

    ``extra_tables`` adds (or replaces) tables: name -> ``[(column, KQL type), …]``, for
    custom logs (``MyApp_CL``) the catalog does not know. Raises InputError only for a bad
    ``extra_tables`` type name; every problem with the query is returned, not raised.
    """
    catalog = catalog if catalog is not None else load_catalog()
    typed = _catalog_schema(catalog)
    for name, columns in (extra_tables or {}).items():
        typed[name] = [(column, kql_type) for column, kql_type in columns]
    for name, columns in typed.items():
        for column, kql_type in columns:
            try:
                duckdb_type(kql_type)
            except (ValueError, KeyError):
                raise InputError(
                    f"table {name}: column {column} has unknown KQL type {kql_type!r}"
                ) from None
    schema = {name: [c for c, _ in columns] for name, columns in typed.items()}
    known = sorted(schema)

    tokens, prepared = _prepare(
        text, schema, known, bind_missing=True, datetime_columns=_datetime_columns(typed)
    )
    if isinstance(prepared, list):
        return KqlCheck(False, prepared)
    sql = prepared.sql

    con = connect()
    try:
        refs = _sql_refs(con, sql)
        unsafe = _sql_safety_problem(refs)
        if unsafe is not None:
            return KqlCheck(False, [unsafe], sql=sql)
        tables, problems = _resolve_tables(refs, tokens, known, known, loaded=False)
        if problems:
            return KqlCheck(False, problems, tables, sql)
        problems = _case_problems(tokens, _columns_of(tables, schema))
        if problems:
            return KqlCheck(False, problems, tables, sql)
        for table in tables:
            con.execute(_create_table_sql(table, typed[table]))
        lock_down(con, CHECK_MEMORY_LIMIT)
        problem = _run_empty(con, prepared, tokens, known, _all_columns(tables, schema))
        if problem is not None:
            return KqlCheck(False, [problem], tables, sql)
        return KqlCheck(True, [], tables, sql)
    finally:
        con.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _create_table_sql(table: str, columns: Sequence[tuple[str, str]]) -> str:
    body = ", ".join(f"{_quote(column)} {duckdb_type(kql_type)}" for column, kql_type in columns)
    return f"CREATE TABLE {_quote(table)} ({body})"


def _run_empty(
    con: duckdb.DuckDBPyConnection,
    prepared: _Translation,
    tokens: Sequence[_Token],
    known: Sequence[str],
    columns: Sequence[str],
) -> KqlProblem | None:
    def work() -> None:
        cursor = con.execute(prepared.sql, prepared.parameters or None)
        cursor.fetchmany(1)

    try:
        _with_timeout(con, work, CHECK_TIMEOUT, "kql check")
    except QueryTimeoutError:
        return None  # it bound and started running: the query is well-formed
    except duckdb.Error as exc:
        return _duckdb_problem(exc, tokens, known, columns)
    return None
