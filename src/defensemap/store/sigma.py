"""Write and read the community Sigma rule set (SigmaHQ) in the store.

There is one set: each import replaces it whole, inside one transaction, so the store holds
either the previous rules or all the new ones.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from defensemap.model.sigma_rules import CommunityRule, SigmaScan, SkippedRule
from defensemap.store.db import Store
from defensemap.util import paused_gc

SCOPE = "sigma"
KIND = "sigma-rule"
_COLUMNS = (
    "id, title, description, status, level, author, date, modified, product, category,"
    " service, techniques, tactics, tags, refs, false_positives, yaml, path, source_url, licence"
)


@dataclass(frozen=True)
class SigmaImport:
    """What the last import did (also what ``import sigma`` reports)."""

    sources: list[str]
    imported_at: str
    found: int
    loaded: int
    replaced: int
    skipped: list[SkippedRule]
    by_logsource: dict[str, int]


def replace_rules(store: Store, scan: SigmaScan) -> SigmaImport:
    """Store ``scan`` as the community rule set, replacing the previous one."""
    with paused_gc(), store.transaction() as conn:
        outcome = SigmaImport(
            sources=scan.sources,
            imported_at=datetime.now(UTC).isoformat(timespec="seconds"),
            found=scan.found,
            loaded=len(scan.rules),
            replaced=rule_count(store),
            skipped=scan.skipped,
            by_logsource=_by_logsource(scan.rules),
        )
        for table in ("sigma_rule_technique", "sigma_rule", "sigma_import"):
            conn.execute(f"DELETE FROM {table}")
        conn.execute("DELETE FROM search_index WHERE scope = ?", (SCOPE,))
        conn.executemany(f"INSERT INTO sigma_rule ({_COLUMNS}) VALUES ({'?,' * 19}?)", _rows(scan))
        conn.executemany(
            "INSERT INTO sigma_rule_technique (technique, rule_id) VALUES (?, ?)",
            ((t, r.id) for r in scan.rules for t in r.techniques),
        )
        conn.executemany(
            "INSERT INTO search_index (ident, title, body, kind, scope, ref) VALUES (?,?,?,?,?,?)",
            _search_rows(scan.rules),
        )
        _insert_import(conn, outcome)
    return outcome


def _by_logsource(rules: Iterable[CommunityRule]) -> dict[str, int]:
    """Loaded rules per ``product/category`` (or service), most first."""
    counts = Counter(
        "/".join(p for p in (r.product, r.category or r.service) if p) or "(none)" for r in rules
    )
    return dict(counts.most_common())


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _rows(scan: SigmaScan) -> Iterable[tuple[Any, ...]]:
    for r in scan.rules:
        yield (
            r.id,
            r.title,
            r.description,
            r.status,
            r.level,
            r.author,
            r.date,
            r.modified,
            r.product,
            r.category,
            r.service,
            _dumps(r.techniques),
            _dumps(r.tactics),
            _dumps(r.tags),
            _dumps(r.references),
            _dumps(r.false_positives),
            r.yaml,
            r.path,
            r.source_url,
            r.licence,
        )


def _search_rows(rules: Iterable[CommunityRule]) -> Iterable[tuple[str, ...]]:
    for r in rules:
        body = " ".join([r.description, r.author, r.logsource, *r.tags])
        yield (r.id, r.title, body, KIND, SCOPE, r.id)


def _insert_import(conn: sqlite3.Connection, outcome: SigmaImport) -> None:
    skipped = [{"where": s.where, "reason": s.reason} for s in outcome.skipped]
    conn.execute(
        "INSERT INTO sigma_import (id, sources, imported_at, found, loaded, skipped)"
        " VALUES (1, ?, ?, ?, ?, ?)",
        (
            _dumps(outcome.sources),
            outcome.imported_at,
            outcome.found,
            outcome.loaded,
            _dumps(skipped),
        ),
    )


# --- reading -------------------------------------------------------------------------------


def rule_count(store: Store) -> int:
    return int(store.conn.execute("SELECT count(*) FROM sigma_rule").fetchone()[0])


def _to_rule(row: sqlite3.Row) -> CommunityRule:
    return CommunityRule(
        id=row["id"],
        title=row["title"],
        description=row["description"],
        status=row["status"],
        level=row["level"],
        author=row["author"],
        date=row["date"],
        modified=row["modified"],
        product=row["product"],
        category=row["category"],
        service=row["service"],
        techniques=tuple(orjson.loads(row["techniques"])),
        tactics=tuple(orjson.loads(row["tactics"])),
        tags=tuple(orjson.loads(row["tags"])),
        references=tuple(orjson.loads(row["refs"])),
        false_positives=tuple(orjson.loads(row["false_positives"])),
        yaml=row["yaml"],
        path=row["path"],
        source_url=row["source_url"],
        licence=row["licence"],
    )


def get_rule(store: Store, rule_id: str) -> CommunityRule | None:
    row = store.conn.execute(
        f"SELECT {_COLUMNS} FROM sigma_rule WHERE id = ?",
        (rule_id.strip(),),
    ).fetchone()
    return _to_rule(row) if row else None


def list_rules(store: Store, techniques: Sequence[str] = ()) -> list[CommunityRule]:
    """Every rule, or those tagged with one of ``techniques`` or a sub-technique of one;
    ordered by path (the repository's own order)."""
    if not techniques:
        where, params = "", []
    else:
        clauses = ["t.technique = ? OR t.technique LIKE ?" for _ in techniques]
        params = [p for t in techniques for p in (t.upper(), f"{t.upper()}.%")]
        where = (
            f"WHERE id IN (SELECT rule_id FROM sigma_rule_technique t WHERE {' OR '.join(clauses)})"
        )
    rows = store.conn.execute(
        f"SELECT {_COLUMNS} FROM sigma_rule {where} ORDER BY path",
        params,
    ).fetchall()
    return [_to_rule(r) for r in rows]
