"""Write and read ATT&CK releases in the store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from defensemap.model.attack import (
    AttackBundle,
    AttackObject,
    Relationship,
    Release,
    version_key,
)
from defensemap.store.db import Store
from defensemap.util import paused_gc

SCOPE_PREFIX = "attack:"


@dataclass(frozen=True)
class IngestOutcome:
    """What one bundle did to the store: ``imported``, ``replaced`` or ``unchanged``."""

    domain: str
    version: str
    status: str
    counts: dict[str, int]
    warnings: list[str]


def ingest_attack(store: Store, bundles: Sequence[AttackBundle]) -> list[IngestOutcome]:
    """Store every bundle in one transaction; a release already present with the same bytes is
    left alone, one with different bytes is replaced, other releases are never touched."""
    outcomes = []
    with paused_gc(), store.transaction() as conn:
        for bundle in bundles:
            outcomes.append(_ingest_one(conn, bundle))
    return outcomes


def _ingest_one(conn: sqlite3.Connection, bundle: AttackBundle) -> IngestOutcome:
    row = conn.execute(
        "SELECT id, sha256 FROM attack_release WHERE domain = ? AND version = ?",
        (bundle.domain, bundle.version),
    ).fetchone()
    status = "imported"
    if row is not None:
        if row["sha256"] == bundle.sha256:
            return IngestOutcome(
                bundle.domain, bundle.version, "unchanged", bundle.counts(), bundle.warnings
            )
        _delete_release(conn, row["id"])
        status = "replaced"
    release_id = _insert_release(conn, bundle)
    conn.executemany(
        "INSERT INTO attack_object VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (_object_row(release_id, obj) for obj in bundle.objects),
    )
    conn.executemany(
        "INSERT INTO attack_relationship VALUES (?,?,?,?,?,?,?,?,?)",
        (_relationship_row(release_id, rel) for rel in bundle.relationships),
    )
    conn.executemany(
        "INSERT INTO search_index (ident, title, body, kind, scope, ref) VALUES (?,?,?,?,?,?)",
        _search_rows(release_id, bundle.objects),
    )
    return IngestOutcome(bundle.domain, bundle.version, status, bundle.counts(), bundle.warnings)


def _insert_release(conn: sqlite3.Connection, bundle: AttackBundle) -> int:
    cursor = conn.execute(
        "INSERT INTO attack_release (domain, version, spec_version, attack_spec_version, source,"
        " sha256, imported_at, counts, warnings) VALUES (?,?,?,?,?,?,?,?,?)",
        (
            bundle.domain,
            bundle.version,
            bundle.spec_version,
            bundle.attack_spec_version,
            bundle.source,
            bundle.sha256,
            datetime.now(UTC).isoformat(timespec="seconds"),
            orjson.dumps(bundle.counts()).decode(),
            orjson.dumps(bundle.warnings).decode(),
        ),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _delete_release(conn: sqlite3.Connection, release_id: int) -> None:
    conn.execute("DELETE FROM search_index WHERE scope = ?", (f"{SCOPE_PREFIX}{release_id}",))
    conn.execute("DELETE FROM attack_release WHERE id = ?", (release_id,))


def _object_row(release_id: int, obj: AttackObject) -> tuple[Any, ...]:
    return (
        release_id,
        obj.stix_id,
        obj.type,
        obj.kind,
        obj.attack_id,
        obj.name,
        obj.description,
        obj.created,
        obj.modified,
        obj.version,
        int(obj.revoked),
        int(obj.deprecated),
        orjson.dumps(obj.raw).decode(),
    )


def _relationship_row(release_id: int, rel: Relationship) -> tuple[Any, ...]:
    return (
        release_id,
        rel.stix_id,
        rel.relationship_type,
        rel.source_ref,
        rel.target_ref,
        rel.description,
        int(rel.revoked),
        int(rel.deprecated),
        orjson.dumps(rel.raw).decode(),
    )


def _search_rows(release_id: int, objects: Iterable[AttackObject]) -> Iterable[tuple[Any, ...]]:
    scope = f"{SCOPE_PREFIX}{release_id}"
    for obj in objects:
        if not obj.name and not obj.attack_id:
            continue
        aliases = obj.raw.get("aliases") or obj.raw.get("x_mitre_aliases") or []
        extra = [a for a in aliases if isinstance(a, str) and a != obj.name]
        title = " ".join([obj.name or "", *extra]).strip()
        yield (obj.attack_id or "", title, obj.description or "", obj.kind, scope, obj.stix_id)


# --- reading -------------------------------------------------------------------------------

_OBJECT_COLUMNS = (
    "stix_id, type, kind, attack_id, name, description, created, modified, version,"
    " revoked, deprecated, raw"
)


def list_releases(store: Store) -> list[Release]:
    """Every imported release, newest version first within each domain."""
    rows = store.conn.execute("SELECT * FROM attack_release").fetchall()
    releases = [
        Release(
            id=row["id"],
            domain=row["domain"],
            version=row["version"],
            spec_version=row["spec_version"],
            attack_spec_version=row["attack_spec_version"],
            source=row["source"],
            sha256=row["sha256"],
            imported_at=row["imported_at"],
            counts=orjson.loads(row["counts"]),
            warnings=orjson.loads(row["warnings"]),
        )
        for row in rows
    ]
    return sorted(releases, key=lambda r: (r.domain, tuple(-p for p in version_key(r.version))))


def _to_object(row: sqlite3.Row) -> AttackObject:
    return AttackObject(
        stix_id=row["stix_id"],
        type=row["type"],
        kind=row["kind"],
        attack_id=row["attack_id"],
        name=row["name"],
        description=row["description"],
        created=row["created"],
        modified=row["modified"],
        version=row["version"],
        revoked=bool(row["revoked"]),
        deprecated=bool(row["deprecated"]),
        raw=orjson.loads(row["raw"]),
    )


def _to_relationship(row: sqlite3.Row) -> Relationship:
    return Relationship(
        stix_id=row["stix_id"],
        relationship_type=row["relationship_type"],
        source_ref=row["source_ref"],
        target_ref=row["target_ref"],
        description=row["description"],
        revoked=bool(row["revoked"]),
        deprecated=bool(row["deprecated"]),
        raw=orjson.loads(row["raw"]),
    )


def find_by_attack_id(store: Store, attack_id: str, release_id: int) -> list[AttackObject]:
    """Objects of a release carrying this ATT&CK id (case-insensitive)."""
    rows = store.conn.execute(
        f"SELECT {_OBJECT_COLUMNS} FROM attack_object WHERE attack_id = ? AND release_id = ?",
        (attack_id, release_id),
    ).fetchall()
    return [_to_object(row) for row in rows]


def find_by_name(store: Store, name: str, release_id: int) -> list[AttackObject]:
    """Objects of a release with exactly this name (case-insensitive)."""
    rows = store.conn.execute(
        f"SELECT {_OBJECT_COLUMNS} FROM attack_object"
        " WHERE name = ? COLLATE NOCASE AND release_id = ?",
        (name, release_id),
    ).fetchall()
    return [_to_object(row) for row in rows]


def get_objects(store: Store, release_id: int, stix_ids: Iterable[str]) -> dict[str, AttackObject]:
    """Objects by STIX id; missing ids are simply absent from the result."""
    ids = sorted(set(stix_ids))
    found: dict[str, AttackObject] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = store.conn.execute(
            f"SELECT {_OBJECT_COLUMNS} FROM attack_object"
            f" WHERE release_id = ? AND stix_id IN ({marks})",
            (release_id, *chunk),
        ).fetchall()
        found.update((row["stix_id"], _to_object(row)) for row in rows)
    return found


def objects_of_kind(store: Store, release_id: int, kind: str) -> list[AttackObject]:
    rows = store.conn.execute(
        f"SELECT {_OBJECT_COLUMNS} FROM attack_object WHERE release_id = ? AND kind = ?",
        (release_id, kind),
    ).fetchall()
    return [_to_object(row) for row in rows]


def objects_mentioning(
    store: Store, release_id: int, kind: str, needles: Sequence[str]
) -> list[AttackObject]:
    """Objects of ``kind`` whose raw JSON contains any of ``needles`` (a cheap filter for
    references held inside object properties; callers check the property itself)."""
    found: list[AttackObject] = []
    for start in range(0, len(needles), 200):
        chunk = list(needles[start : start + 200])
        if not chunk:
            continue
        where = " OR ".join("instr(raw, ?) > 0" for _ in chunk)
        rows = store.conn.execute(
            f"SELECT {_OBJECT_COLUMNS} FROM attack_object"
            f" WHERE release_id = ? AND kind = ? AND ({where})",
            (release_id, kind, *chunk),
        ).fetchall()
        found += [_to_object(row) for row in rows]
    return list({o.stix_id: o for o in found}.values())


def relationships(
    store: Store,
    release_id: int,
    *,
    source: str | None = None,
    target: str | None = None,
    relationship_type: str | None = None,
) -> list[Relationship]:
    """Relationships of a release from ``source`` and/or to ``target``, optionally of one type."""
    clauses: list[str] = ["release_id = ?"]
    params: list[int | str] = [release_id]
    for column, value in (
        ("source_ref", source),
        ("target_ref", target),
        ("relationship_type", relationship_type),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    rows = store.conn.execute(
        "SELECT stix_id, relationship_type, source_ref, target_ref, description, revoked,"
        f" deprecated, raw FROM attack_relationship WHERE {' AND '.join(clauses)}",
        params,
    ).fetchall()
    return [_to_relationship(row) for row in rows]
