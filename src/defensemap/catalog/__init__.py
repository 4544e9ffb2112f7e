"""Column schemas of Microsoft Sentinel and Defender XDR tables, in our own TSV format.

The detection engine runs KQL on local logs with DuckDB. It needs to know, without a live
workspace, which tables exist, which columns they have and of what KQL type: to create empty
typed tables for validating a query, to type ingested exports, to guess which table an export
came from, and to check that every column a detection uses exists.

Each table is one file in ``catalog/tables``::

    # DeviceProcessEvents — one-line description
    # source: both
    Timestamp<TAB>datetime
    DeviceId<TAB>string

Files are read lazily (nothing happens at import time) and parsed once per process.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Literal, cast

from defensemap.errors import SchemaError, SourceLocation

__all__ = [
    "KQL_TYPES",
    "SOURCES",
    "Catalog",
    "Column",
    "Source",
    "Table",
    "duckdb_type",
    "load_catalog",
    "normalize_type",
    "parse_table",
]

Source = Literal["defender-xdr", "sentinel", "both"]
SOURCES: tuple[Source, ...] = ("defender-xdr", "sentinel", "both")

# The normalised KQL scalar types and the DuckDB type each is stored as. ``guid`` stays text
# because exports write it as text; ``dynamic`` becomes JSON so its paths can be queried.
_DUCKDB_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "int": "INTEGER",
    "long": "BIGINT",
    "real": "DOUBLE",
    "bool": "BOOLEAN",
    "datetime": "TIMESTAMP",
    "dynamic": "JSON",
    "guid": "VARCHAR",
    "timespan": "INTERVAL",
    "decimal": "DECIMAL(38,18)",
}
KQL_TYPES: frozenset[str] = frozenset(_DUCKDB_TYPES)

# Other spellings of the same types seen in Kusto docs, getschema output and .NET names.
_TYPE_ALIASES: dict[str, str] = {
    "bigint": "long",
    "int64": "long",
    "system.int64": "long",
    "int32": "int",
    "system.int32": "int",
    "double": "real",
    "float": "real",
    "system.double": "real",
    "boolean": "bool",
    "system.boolean": "bool",
    "date": "datetime",
    "system.datetime": "datetime",
    "time": "timespan",
    "system.timespan": "timespan",
    "uniqueid": "guid",
    "uuid": "guid",
    "system.guid": "guid",
    "system.string": "string",
    "system.object": "dynamic",
    "object": "dynamic",
    "system.data.sqltypes.sqldecimal": "decimal",
}

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_HEADER = re.compile(r"#\s*(?P<name>\S+)\s+—\s+(?P<description>\S.*)\Z")
_SOURCE = re.compile(r"#\s*source:\s*(?P<source>\S+)\s*\Z")


@dataclass(frozen=True)
class Column:
    """One column: its exact (case-sensitive, as KQL sees it) name and normalised KQL type."""

    name: str
    type: str

    @property
    def duckdb_type(self) -> str:
        """The DuckDB type this column is stored as."""
        return _DUCKDB_TYPES[self.type]


@dataclass(frozen=True)
class Table:
    """A table's schema; columns are in the service's documented order."""

    name: str
    description: str
    source: Source | None
    columns: tuple[Column, ...]
    _exact: dict[str, Column] = field(init=False, repr=False, compare=False, hash=False)
    _folded: dict[str, list[Column]] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        folded: dict[str, list[Column]] = {}
        for col in self.columns:
            folded.setdefault(col.name.casefold(), []).append(col)
        object.__setattr__(self, "_exact", {c.name: c for c in self.columns})
        object.__setattr__(self, "_folded", folded)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column | None:
        """Look a column up by exact name, else case-insensitively.

        KQL names are case-sensitive, but exports and hand-written queries often differ in
        case only; the returned column carries the canonical spelling. A case-insensitive
        name shared by two real columns (AzureDiagnostics has ``clientIP_s`` and
        ``clientIp_s``) is ambiguous and gives None unless spelled exactly.
        """
        exact = self._exact.get(name)
        if exact is not None:
            return exact
        matches = self._folded.get(name.casefold(), [])
        return matches[0] if len(matches) == 1 else None

    def folded_names(self) -> frozenset[str]:
        """Case-folded column names, for case-insensitive set comparisons."""
        return frozenset(self._folded)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.column(name) is not None


class Catalog:
    """All known tables, looked up case-insensitively by name."""

    def __init__(self, tables: Iterable[Table]) -> None:
        self._tables: dict[str, Table] = {}
        for table in tables:
            key = table.name.casefold()
            if key in self._tables:
                raise SchemaError(f"table {table.name!r} is defined twice")
            self._tables[key] = table
        self._weights = _column_weights(self._tables.values())

    def table(self, name: str) -> Table | None:
        return self._tables.get(name.casefold())

    def names(self) -> tuple[str, ...]:
        """Canonical table names, sorted."""
        return tuple(sorted(t.name for t in self._tables.values()))

    def tables(self) -> Iterator[Table]:
        return iter(sorted(self._tables.values(), key=lambda t: t.name))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.casefold() in self._tables

    def __len__(self) -> int:
        return len(self._tables)

    def infer_table(
        self, columns: Iterable[str], *, min_matches: int = 3, min_share: float = 0.6
    ) -> tuple[str, float] | None:
        """Guess which table an exported log file came from, by its column names.

        A table qualifies when at least ``min_matches`` of the given columns, and at least
        ``min_share`` of them, are its columns (case-insensitively), and the matches include
        at least one column that is not in most tables (``TimeGenerated``, ``TenantId`` and
        ``Type`` alone identify nothing).

        Qualifying tables are ranked by a weighted Tversky index, a Jaccard-like score in
        which each column counts by how rare it is across the catalog. A given column the
        table lacks costs fully (an export is a projection of one table, so a missing column
        is strong evidence against it); a table column the export lacks costs a twentieth
        (an export often projects a few of a table's many columns). So among tables that
        explain the export, the one whose distinctive columns it covers best wins. Returns
        the table name and the score (1.0: the same column set), or None when nothing
        qualifies.
        """
        given = {c.casefold() for c in columns}
        if not given:
            return None
        best: tuple[float, str] | None = None
        for table in self._tables.values():
            score = self._score(table, given, min_matches, min_share)
            if score is not None and (best is None or (score, table.name) > best):
                best = (score, table.name)
        return None if best is None else (best[1], round(best[0], 4))

    def _score(
        self, table: Table, given: set[str], min_matches: int, min_share: float
    ) -> float | None:
        """The table's match score for the given (case-folded) columns, if it qualifies."""
        own = table.folded_names()
        matched = given & own
        if len(matched) < min_matches or len(matched) / len(given) < min_share:
            return None
        if not any(self._weight(c) > self._common_weight for c in matched):
            return None
        w_matched = self._total(matched)
        missing_from_table = self._total(given - own)
        not_exported = self._total(own - given)
        return w_matched / (w_matched + missing_from_table + _UNEXPORTED_COST * not_exported)

    def _total(self, folded_names: Iterable[str]) -> float:
        return sum(self._weight(c) for c in folded_names)

    def _weight(self, folded_name: str) -> float:
        # A column unknown to the catalog weighs like one unique to a single table.
        return self._weights.get(folded_name, self._weights[""])

    @property
    def _common_weight(self) -> float:
        """Weight of a column found in half the tables: anything rarer discriminates."""
        return math.log(1 + 2.0)


# How much a table column absent from the export lowers the score, relative to an export
# column absent from the table (see Catalog.infer_table). Tuned on random column subsets
# of every catalog table: higher values let small tables steal projections of big ones.
_UNEXPORTED_COST = 0.05


def _column_weights(tables: Iterable[Table]) -> dict[str, float]:
    """Inverse document frequency of each (case-folded) column name over the tables."""
    counts: Counter[str] = Counter()
    total = 0
    for table in tables:
        counts.update(table.folded_names())
        total += 1
    total = max(total, 1)
    weights = {name: math.log(1 + total / n) for name, n in counts.items()}
    weights[""] = math.log(1 + total)
    return weights


def normalize_type(kql_type: str) -> str:
    """Map a KQL type name or alias (``bigint``, ``boolean``, ``System.Double``) to ours.

    Raises ValueError for names that are not a KQL scalar type.
    """
    key = kql_type.strip().casefold()
    if key in KQL_TYPES:
        return key
    if key in _TYPE_ALIASES:
        return _TYPE_ALIASES[key]
    raise ValueError(f"unknown KQL type {kql_type!r}")


def duckdb_type(kql_type: str) -> str:
    """The DuckDB column type used to store values of a KQL type (aliases accepted)."""
    return _DUCKDB_TYPES[normalize_type(kql_type)]


def parse_table(text: str, source_name: str) -> Table:
    """Parse one catalog file; ``source_name`` is used in error locations.

    Raises SchemaError naming the file and line of the first problem, so a bad edit to a
    catalog file points straight at itself.
    """
    lines = text.splitlines()
    if not lines:
        raise _error(source_name, 1, "empty catalog file")
    name, description = _parse_header(lines[0], source_name)
    source: Source | None = None
    columns: list[Column] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines[1:], start=2):
        line = raw.rstrip("\r")
        if source is None and not columns and _SOURCE.match(line):
            source = _parse_source(line, source_name, number)
        elif not line.strip() or line.startswith("#"):
            continue
        else:
            columns.append(_parse_column(line, source_name, number, seen))
    if not columns:
        raise _error(source_name, len(lines), f"table {name} has no columns")
    return Table(name, description, source, tuple(columns))


def _parse_header(line: str, source_name: str) -> tuple[str, str]:
    match = _HEADER.match(line.strip())
    if match is None or not _NAME.match(match["name"]):
        raise _error(source_name, 1, "first line must be '# <TableName> — <description>'")
    return match["name"], match["description"].strip()


def _parse_source(line: str, source_name: str, number: int) -> Source:
    match = _SOURCE.match(line)
    value = match["source"] if match else ""
    if value not in SOURCES:
        raise _error(source_name, number, f"unknown source {value!r}", f"use one of {SOURCES}")
    return cast(Source, value)


def _parse_column(line: str, source_name: str, number: int, seen: dict[str, int]) -> Column:
    parts = line.split("\t")
    if len(parts) != 2:
        raise _error(source_name, number, f"expected 'name<TAB>type', got {line!r}")
    name, kql_type = parts[0].strip(), parts[1].strip()
    if not _NAME.match(name):
        raise _error(source_name, number, f"invalid column name {name!r}")
    if kql_type not in KQL_TYPES:
        allowed = ", ".join(sorted(KQL_TYPES))
        raise _error(source_name, number, f"unknown type {kql_type!r}", f"use one of {allowed}")
    if name in seen:
        raise _error(source_name, number, f"duplicate column {name!r} (first on line {seen[name]})")
    seen[name] = number
    return Column(name, kql_type)


def _error(source_name: str, line: int, message: str, hint: str | None = None) -> SchemaError:
    return SchemaError(message, location=SourceLocation(path=source_name, line=line), hint=hint)


@cache
def load_catalog() -> Catalog:
    """The catalog shipped with defensemap, parsed on first use and then cached."""
    folder = resources.files("defensemap.catalog") / "tables"
    tables = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".tsv"):
            continue
        source_name = f"catalog/tables/{entry.name}"
        table = parse_table(entry.read_text(encoding="utf-8"), source_name)
        if table.name != entry.name.removesuffix(".tsv"):
            raise _error(source_name, 1, f"table {table.name!r} must be in {table.name}.tsv")
        tables.append(table)
    return Catalog(tables)
