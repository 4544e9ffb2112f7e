"""Write and read Mappings Explorer mapping sets in the store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from defensemap.model.mappings import (
    MappingFile,
    MappingRow,
    MappingSet,
    MappingSetInfo,
    framework_label,
)
from defensemap.store.db import Store
from defensemap.util import paused_gc

SCOPE_PREFIX = "mappings:"


@dataclass(frozen=True)
class MappingOutcome:
    """What one file did: ``imported``, ``replaced`` or ``unchanged``."""

    framework: str
    framework_version: str
    attack_version: str
    domain: str
    status: str
    rows_in_file: int
    rows_stored: int
    warnings: list[str]


def ingest_mappings(store: Store, files: Sequence[MappingFile]) -> list[MappingOutcome]:
    """Store every file in one transaction; a file replaces only the set with the same
    framework, framework version, ATT&CK version and domain."""
    with paused_gc(), store.transaction() as conn:
        return [_ingest_one(conn, f) for f in files]


def _ingest_one(conn: sqlite3.Connection, mapping_file: MappingFile) -> MappingOutcome:
    info = mapping_file.info
    key = (info.framework, info.framework_version, info.attack_version, info.domain)
    row = conn.execute(
        "SELECT id, sha256 FROM mapping_set WHERE framework = ? AND framework_version = ?"
        " AND attack_version = ? AND domain = ?",
        key,
    ).fetchone()
    status = "imported"
    if row is not None:
        if row["sha256"] == mapping_file.sha256:
            return _outcome(mapping_file, "unchanged")
        conn.execute("DELETE FROM search_index WHERE scope = ?", (f"{SCOPE_PREFIX}{row['id']}",))
        conn.execute("DELETE FROM mapping_set WHERE id = ?", (row["id"],))
        status = "replaced"
    set_id = _insert_set(conn, mapping_file)
    conn.executemany(
        "INSERT INTO mapping VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (_row(set_id, r) for r in mapping_file.rows),
    )
    conn.executemany(
        "INSERT INTO search_index (ident, title, body, kind, scope, ref) VALUES (?,?,?,?,?,?)",
        _search_rows(set_id, info, mapping_file.rows),
    )
    return _outcome(mapping_file, status)


def _outcome(mapping_file: MappingFile, status: str) -> MappingOutcome:
    info = mapping_file.info
    return MappingOutcome(
        info.framework,
        info.framework_version,
        info.attack_version,
        info.domain,
        status,
        mapping_file.rows_in_file,
        len(mapping_file.rows),
        mapping_file.warnings,
    )


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _insert_set(conn: sqlite3.Connection, mapping_file: MappingFile) -> int:
    info = mapping_file.info
    cursor = conn.execute(
        "INSERT INTO mapping_set (framework, framework_version, attack_version, domain,"
        " mapping_version, creation_date, last_update, author, contact, organization,"
        " version_schema, mapping_types, capability_groups, metadata, source, sha256,"
        " imported_at, rows_in_file) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            info.framework,
            info.framework_version,
            info.attack_version,
            info.domain,
            info.mapping_version,
            info.creation_date,
            info.last_update,
            info.author,
            info.contact,
            info.organization,
            info.version_schema,
            _dumps(info.mapping_types),
            _dumps(info.capability_groups),
            _dumps(info.metadata),
            mapping_file.source,
            mapping_file.sha256,
            datetime.now(UTC).isoformat(timespec="seconds"),
            mapping_file.rows_in_file,
        ),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _row(set_id: int, row: MappingRow) -> tuple[Any, ...]:
    return (
        set_id,
        row.position,
        row.occurrences,
        row.mapping_type,
        row.capability_id,
        row.capability_description,
        row.capability_group,
        row.attack_object_id,
        row.attack_object_name,
        row.score_category,
        row.score_value,
        row.related_score,
        row.comments,
        _dumps(row.references),
        row.status,
        _dumps(row.raw),
    )


def _search_rows(
    set_id: int, info: MappingSetInfo, rows: Iterable[MappingRow]
) -> Iterable[tuple[Any, ...]]:
    """One entry per capability of the set: its id, description and group."""
    seen: set[str] = set()
    for row in rows:
        if not row.capability_id or row.capability_id in seen:
            continue
        seen.add(row.capability_id)
        group = info.capability_groups.get(row.capability_group or "", row.capability_group or "")
        yield (
            row.capability_id,
            row.capability_description or "",
            f"{group} {framework_label(info.framework)}",
            "capability",
            f"{SCOPE_PREFIX}{set_id}",
            f"{info.framework}|{row.capability_id}",
        )


# --- reading -------------------------------------------------------------------------------


def list_sets(store: Store) -> list[MappingSet]:
    rows = store.conn.execute(
        "SELECT s.*, (SELECT count(*) FROM mapping m WHERE m.set_id = s.id) AS rows_stored"
        " FROM mapping_set s ORDER BY framework, framework_version, attack_version, domain"
    ).fetchall()
    return [_to_set(row) for row in rows]


def _to_set(row: sqlite3.Row) -> MappingSet:
    info = MappingSetInfo(
        framework=row["framework"],
        framework_version=row["framework_version"],
        attack_version=row["attack_version"],
        domain=row["domain"],
        mapping_version=row["mapping_version"],
        creation_date=row["creation_date"],
        last_update=row["last_update"],
        author=row["author"],
        contact=row["contact"],
        organization=row["organization"],
        version_schema=row["version_schema"],
        mapping_types=orjson.loads(row["mapping_types"]),
        capability_groups=orjson.loads(row["capability_groups"]),
        metadata=orjson.loads(row["metadata"]),
    )
    return MappingSet(
        id=row["id"],
        info=info,
        source=row["source"],
        sha256=row["sha256"],
        imported_at=row["imported_at"],
        rows_in_file=row["rows_in_file"],
        rows_stored=row["rows_stored"],
    )


def _to_row(row: sqlite3.Row) -> MappingRow:
    return MappingRow(
        position=row["position"],
        occurrences=row["occurrences"],
        mapping_type=row["mapping_type"],
        capability_id=row["capability_id"],
        capability_description=row["capability_description"],
        capability_group=row["capability_group"],
        attack_object_id=row["attack_object_id"],
        attack_object_name=row["attack_object_name"],
        score_category=row["score_category"],
        score_value=row["score_value"],
        related_score=row["related_score"],
        comments=row["comments"],
        references=orjson.loads(row["refs"]),
        status=row["status"],
        raw=orjson.loads(row["raw"]),
    )


def _where_in(column: str, values: Sequence[object]) -> str:
    return f"{column} IN ({','.join('?' * len(values))})"


def rows_for(
    store: Store,
    set_ids: Sequence[int],
    *,
    attack_ids: Sequence[str] | None = None,
    capability_id: str | None = None,
) -> list[tuple[int, MappingRow]]:
    """Rows of the given sets, by ATT&CK ids and/or capability id, in file order."""
    if not set_ids:
        return []
    clauses = [_where_in("set_id", set_ids)]
    params: list[object] = list(set_ids)
    if attack_ids is not None:
        if not attack_ids:
            return []
        clauses.append(_where_in("attack_object_id", attack_ids))
        params += list(attack_ids)
    if capability_id is not None:
        clauses.append("capability_id = ?")
        params.append(capability_id)
    rows = store.conn.execute(
        f"SELECT * FROM mapping WHERE {' AND '.join(clauses)} ORDER BY set_id, position", params
    ).fetchall()
    return [(row["set_id"], _to_row(row)) for row in rows]


def row_counts(
    store: Store, set_ids: Sequence[int], attack_ids: Sequence[str], skip_type: str
) -> dict[str, int]:
    """Rows per ATT&CK id in the given sets, leaving out rows of ``skip_type`` that name no
    capability (non-mappable markers)."""
    if not set_ids or not attack_ids:
        return {}
    rows = store.conn.execute(
        "SELECT attack_object_id, count(*) FROM mapping"
        f" WHERE {_where_in('set_id', set_ids)} AND {_where_in('attack_object_id', attack_ids)}"
        " AND NOT (mapping_type = ? AND coalesce(capability_id, '') = '')"
        " GROUP BY attack_object_id",
        [*set_ids, *attack_ids, skip_type],
    ).fetchall()
    return {str(ident): int(n) for ident, n in rows}


@dataclass(frozen=True)
class SetCounts:
    capabilities: int
    techniques: int
    non_mappable: int


def set_counts(store: Store) -> dict[int, SetCounts]:
    """Distinct capabilities and techniques that are mapped to something, and non-mappable
    rows, per set."""
    rows = store.conn.execute(
        "SELECT set_id,"
        " count(DISTINCT CASE WHEN mapping_type != 'non_mappable'"
        " THEN lower(capability_id) END) AS caps,"
        " count(DISTINCT CASE WHEN mapping_type != 'non_mappable'"
        " THEN lower(attack_object_id) END) AS techs,"
        " sum(mapping_type = 'non_mappable') AS non_mappable"
        " FROM mapping GROUP BY set_id"
    ).fetchall()
    return {r["set_id"]: SetCounts(r["caps"], r["techs"], r["non_mappable"] or 0) for r in rows}


def capability_sets(store: Store, capability_id: str) -> list[int]:
    """Sets that mention ``capability_id`` (case-insensitive)."""
    rows = store.conn.execute(
        "SELECT DISTINCT set_id FROM mapping WHERE capability_id = ?", (capability_id,)
    ).fetchall()
    return [r[0] for r in rows]
