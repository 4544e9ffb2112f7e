"""The one full-text index over everything the store knows (ATT&CK objects, capabilities)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from defensemap.store.db import Store


@dataclass(frozen=True)
class IndexHit:
    scope: str
    ref: str
    kind: str
    ident: str
    title: str
    snippet: str
    score: float


def search_index(
    store: Store,
    match: str,
    scopes: Sequence[str],
    limit: int,
    kinds: Sequence[str] | None = None,
) -> list[IndexHit]:
    """FTS5 hits ranked by bm25 (ids and names weigh more than text) within ``scopes``."""
    if not scopes:
        return []
    where = f"search_index MATCH ? AND scope IN ({','.join('?' * len(scopes))})"
    params: list[str | int] = [match, *scopes]
    if kinds:
        where += f" AND kind IN ({','.join('?' * len(kinds))})"
        params += list(kinds)
    rows = store.conn.execute(
        "SELECT scope, ref, kind, ident, title,"
        " snippet(search_index, 2, '[', ']', '…', 12) AS snippet,"
        " bm25(search_index, 10.0, 5.0, 1.0) AS score"
        f" FROM search_index WHERE {where} ORDER BY score LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [
        IndexHit(r["scope"], r["ref"], r["kind"], r["ident"], r["title"], r["snippet"], r["score"])
        for r in rows
    ]
