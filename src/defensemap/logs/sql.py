"""SQL that ingestion builds: quoting, the row → line number mapping, and the mapping and
conversion of column types."""

from __future__ import annotations

import re
from typing import Any

import duckdb

# Line-number corrections (blank NDJSON lines, rejected CSV rows) are applied in SQL by a
# balanced CASE tree; beyond this many, NDJSON takes the tagged-copy path instead.
_MAX_THRESHOLDS = 4096

# Sentinel and Defender portal CSV exports write datetimes in US style.
_DATETIME_FORMATS = (
    "%m/%d/%Y, %I:%M:%S.%g %p",
    "%m/%d/%Y, %I:%M:%S %p",
    "%m/%d/%Y %I:%M:%S.%g %p",
    "%m/%d/%Y %I:%M:%S %p",
    "%b %d, %Y %I:%M:%S %p",
)


def _one(result: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    """The first row, after running the statement to its end (``fetchone`` can leave it
    unfinished, and DuckDB writes CSV rejects only when a scan completes)."""
    rows = result.fetchall()
    return tuple(rows[0]) if rows else None


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _select_list(columns: dict[str, str]) -> str:
    return ", ".join(_q(n) for n in columns)


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
