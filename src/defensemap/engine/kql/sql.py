"""The generated SQL, on DuckDB's own parse tree (``json_serialize_sql``): what it reads,
and whether it is one SELECT over tables and generators."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from defensemap.engine.kql.problems import KqlProblem

#: Table functions duckdb-kql emits for `range`, `mv-expand` and friends. Anything else
#: (read_csv, read_parquet, glob, query, …) in a translation is refused.
SAFE_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest", "json_each", "json_tree"})
UNSAFE_FUNCTIONS = frozenset({"getenv", "current_setting", "read_text", "read_blob"})


@dataclass
class _SqlRefs:
    tables: list[tuple[str, str, str]] = field(default_factory=list)  # catalog, schema, name
    ctes: set[str] = field(default_factory=set)
    table_functions: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    error: str | None = None


def _sql_refs(con: duckdb.DuckDBPyConnection, sql: str) -> _SqlRefs:
    """What the SQL reads, from ``json_serialize_sql``: base tables, CTE names, table
    functions and scalar functions. A statement that is not a single SELECT cannot be
    serialised and comes back with ``error`` set."""
    import orjson

    refs = _SqlRefs()
    try:
        raw = con.execute("SELECT json_serialize_sql($1::VARCHAR)", [sql]).fetchall()[0][0]
    except duckdb.Error as exc:
        refs.error = str(exc).splitlines()[0]
        return refs
    tree = orjson.loads(raw)
    if tree.get("error"):
        refs.error = str(tree.get("error_message") or "not a SELECT statement")
        return refs
    statements = tree.get("statements") or []
    if len(statements) != 1:
        refs.error = f"{len(statements)} statements where one SELECT was expected"
        return refs
    _walk(statements, refs)
    return refs


def _walk(node: object, refs: _SqlRefs) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, refs)
        return
    if not isinstance(node, dict):
        return
    cte_map = node.get("cte_map")
    if isinstance(cte_map, dict):
        for entry in cte_map.get("map") or []:
            if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                refs.ctes.add(entry["key"])
    kind = node.get("type")
    if kind == "BASE_TABLE":
        refs.tables.append(
            (
                str(node.get("catalog_name") or ""),
                str(node.get("schema_name") or ""),
                str(node.get("table_name") or ""),
            )
        )
    elif kind == "TABLE_FUNCTION":
        function = node.get("function")
        if isinstance(function, dict):
            refs.table_functions.add(str(function.get("function_name", "")).lower())
    if node.get("class") == "FUNCTION" and kind == "FUNCTION":
        refs.functions.add(str(node.get("function_name", "")).lower())
    for value in node.values():
        if isinstance(value, dict | list):
            _walk(value, refs)


def _sql_safety_problem(refs: _SqlRefs) -> KqlProblem | None:
    """Defence in depth: a translation must be one SELECT over tables and generators."""
    if refs.error is not None:
        return KqlProblem(
            "unsafe",
            "generated SQL",
            None,
            None,
            f"the translation is not a single SELECT ({refs.error}); refused",
        )
    reading = sorted(refs.table_functions - SAFE_TABLE_FUNCTIONS)
    if reading:
        return KqlProblem(
            "unsafe",
            reading[0],
            None,
            None,
            f"the translation calls the table function {reading[0]}(), which could read "
            "files or other databases; refused",
        )
    calls = sorted(refs.functions & UNSAFE_FUNCTIONS)
    if calls:
        return KqlProblem(
            "unsafe",
            calls[0],
            None,
            None,
            f"the translation calls {calls[0]}(), which reads outside the logs; refused",
        )
    return None


def _base_tables(refs: _SqlRefs) -> list[tuple[str, str, str]]:
    """Referenced tables that are not CTEs, in first-use order, without repeats."""
    seen: set[tuple[str, str, str]] = set()
    out: list[tuple[str, str, str]] = []
    for ref in refs.tables:
        catalog, schema, name = ref
        if not catalog and not schema and name in refs.ctes:
            continue
        if ref not in seen:
            seen.add(ref)
            out.append(ref)
    return out
