"""From KQL text to DuckDB SQL: static refusals, translation with duckdb-kql against a
schema, and the tables and columns the translation reads."""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from defensemap.catalog import Catalog
from defensemap.engine.kql.diagnose import (
    _parse_problem,
    _schema_problem,
    _unknown_table,
    _unsupported_problem,
)
from defensemap.engine.kql.problems import KqlProblem
from defensemap.engine.kql.rewrite import (
    CAPPED_AGGREGATES,
    Rewritten,
    capped_aggregate,
    rewrite,
)
from defensemap.engine.kql.scan import _find_ident, _prev_is, _static_problems, _Token, _tokens
from defensemap.engine.kql.sql import _base_tables, _SqlRefs
from defensemap.engine.kql_functions import INVOKE_PRELUDES, STORED_FUNCTIONS

if TYPE_CHECKING:
    from duckdb_kql.stored_functions import ResolvedFunctions


TableSchema = dict[str, list[tuple[str, str]]]  # table -> [(column, KQL type)]


def _catalog_schema(catalog: Catalog) -> TableSchema:
    """Every catalog table's columns. A column whose name differs from an earlier one only
    in case (AzureDiagnostics ``clientIP_s``/``clientIp_s``) is dropped: DuckDB cannot hold
    both, and duckdb-kql refuses a schema with both."""
    out: TableSchema = {}
    for table in catalog.tables():
        seen: set[str] = set()
        columns: list[tuple[str, str]] = []
        for column in table.columns:
            if column.name.casefold() in seen:
                continue
            seen.add(column.name.casefold())
            columns.append((column.name, column.type))
        out[table.name] = columns
    return out


@dataclass
class _Translation:
    sql: str
    parameters: dict[str, Any]


def _datetime_columns(typed: Mapping[str, Sequence[tuple[str, str]]]) -> set[str]:
    """Columns that are datetime in every table that has them (``[(column, KQL type)]``)."""
    kinds: dict[str, set[str]] = {}
    for columns in typed.values():
        for column, kql_type in columns:
            kinds.setdefault(column, set()).add(kql_type)
    return {column for column, types in kinds.items() if types == {"datetime"}}


@functools.cache
def _stored_functions() -> ResolvedFunctions:
    """The provided built-ins, parsed once: duckdb-kql parses a list of definitions on every
    call (about 60 ms for ours) but takes an already-parsed registry as it is."""
    from duckdb_kql.stored_functions import parse_functions

    parsed = parse_functions(list(STORED_FUNCTIONS))
    assert parsed is not None
    return parsed


def _prelude(tokens: Sequence[_Token]) -> str:
    """The ``let`` definitions for ``invoke Name()`` forms the query uses."""
    parts = []
    for name, prelude in INVOKE_PRELUDES.items():
        for index, token in enumerate(tokens):
            if token.text == name and _prev_is(tokens, index, "invoke"):
                parts.append(prelude)
                break
    return "".join(parts)


def _translate(
    text: str,
    tokens: Sequence[_Token],
    schema: Mapping[str, list[str]],
    known: Sequence[str],
    *,
    bind_missing: bool,
    datetime_columns: Collection[str] = (),
    catalog_tables: Collection[str] = (),
) -> _Translation | KqlProblem:
    import duckdb_kql
    from duckdb_kql import errors as kql_errors

    prelude = _prelude(tokens)
    rewritten = rewrite(text, datetime_columns)
    capped = capped_aggregate(rewritten.text)
    if capped is not None:
        return _capped_problem(rewritten, *capped)
    source = prelude + rewritten.text
    parameters: dict[str, Any] | None = None
    if bind_missing and "query_parameters" in text:
        # Checking offline: a declared parameter without a default is bound to null, so
        # the query still binds and its columns are checked.
        try:
            declared = duckdb_kql.query_parameters(source)
        except kql_errors.KqlError:
            declared = []
        parameters = {p.name: None for p in declared if p.required} or None
    try:
        result = duckdb_kql.to_sql(
            source,
            schema=dict(schema),
            parameters=parameters,
            allow_write=False,
            functions=_stored_functions(),
        )
    except kql_errors.KqlSyntaxError as exc:
        first = exc.diagnostics[0] if exc.diagnostics else None
        if first is None:
            return KqlProblem("parse_error", "query", None, None, str(exc))
        line, column0 = _locate(rewritten, len(prelude), first.span.line, first.span.column)
        return _parse_problem(text, line, column0, first.message, tokens)
    except kql_errors.KqlUnsupportedError as exc:
        span = getattr(exc, "span", None)
        where = None if span is None else _locate(rewritten, len(prelude), span.line, span.column)
        return _unsupported_problem(exc, text, tokens, where)
    except kql_errors.KqlSchemaError as exc:
        return _schema_problem(exc, tokens, known, list(schema), catalog_tables or known)
    except (kql_errors.KqlError, ValueError, TypeError) as exc:
        return KqlProblem("unsupported_feature", "query", None, None, str(exc))
    if result.unbound:
        names = ", ".join(result.unbound)
        return KqlProblem(
            "unsupported_feature",
            names,
            None,
            None,
            f"declared query parameter(s) {names} have no value and no default",
        )
    return _Translation(str(result), dict(result.parameters))


def _capped_problem(rewritten: Rewritten, name: str, offset: int) -> KqlProblem:
    before = rewritten.text[:offset]
    line, column0 = rewritten.to_original(before.count("\n") + 1, offset - before.rfind("\n") - 1)
    return KqlProblem(
        "unsupported_feature",
        f"{name}(…, maxSize)",
        line,
        column0 + 1,
        f"{name}() with a maxSize here would be answered without the cap; "
        + (
            f"name the result (X = {name}(e, n)) with a literal n, or drop the cap"
            if name in CAPPED_AGGREGATES
            else "drop the cap"
        ),
    )


def _locate(rewritten: Rewritten, prelude: int, line: int, column0: int) -> tuple[int, int]:
    """A position duckdb-kql reports (after the one-line prelude and the rewrites) as a
    1-based line and 0-based column of the text the user wrote."""
    if line == 1:
        column0 = max(0, column0 - prelude)
    return rewritten.to_original(line, column0)


def _prepare(
    text: str,
    schema: Mapping[str, list[str]],
    known: Sequence[str],
    *,
    bind_missing: bool,
    datetime_columns: Collection[str] = (),
    catalog_tables: Collection[str] = (),
) -> tuple[list[_Token], _Translation | list[KqlProblem]]:
    """Static refusals, exact rewrites, parsing and translation, in that order.
    ``datetime_columns`` are the columns known to be datetime (for ``between``);
    ``catalog_tables`` every table the catalog knows, loaded or not (default ``known``)."""
    tokens = _tokens(text)
    if not tokens:
        return tokens, [KqlProblem("parse_error", "query", 1, 1, "the query is empty")]
    problems = _static_problems(text, tokens)
    if problems:
        return tokens, problems
    # Parsed once, by to_sql: its KqlSyntaxError carries the same diagnostics as validate().
    translated = _translate(
        text,
        tokens,
        schema,
        known,
        bind_missing=bind_missing,
        datetime_columns=datetime_columns,
        catalog_tables=catalog_tables,
    )
    if isinstance(translated, KqlProblem):
        return tokens, [translated]
    return tokens, translated


def _resolve_tables(
    refs: _SqlRefs,
    tokens: Sequence[_Token],
    available: Sequence[str],
    known: Sequence[str],
    *,
    loaded: bool,
) -> tuple[list[str], list[KqlProblem]]:
    """The tables the SQL reads, and unknown_table problems for those not available.
    Matching is exact: KQL table names are case-sensitive."""
    names: list[str] = []
    problems: list[KqlProblem] = []
    for catalog_name, schema_name, name in _base_tables(refs):
        qualified = ".".join(p for p in (catalog_name, schema_name, name) if p)
        if qualified in available:
            names.append(qualified)
            continue
        token = _find_ident(tokens, name)
        line = token.line if token else None
        column = token.column if token else None
        in_catalog = qualified in known
        problems.append(
            _unknown_table(
                qualified,
                known if not in_catalog else available,
                line,
                column,
                loaded=loaded and in_catalog,
            )
        )
    return names, problems


def _columns_of(tables: Sequence[str], schema: Mapping[str, list[str]]) -> dict[str, str]:
    folded: dict[str, str] = {}
    for table in tables:
        for column in schema.get(table, []):
            folded.setdefault(column.casefold(), column)
    return folded


def _all_columns(tables: Sequence[str], schema: Mapping[str, list[str]]) -> list[str]:
    return [column for table in tables for column in schema.get(table, [])]
