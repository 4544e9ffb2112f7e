"""Ranked search over every ATT&CK object kind: exact ids, then exact names, then FTS5."""

from __future__ import annotations

import re
from dataclasses import dataclass

from defensemap.kb.lookup import select_releases
from defensemap.model.attack import AttackObject, Release
from defensemap.store import attack as attack_store
from defensemap.store.db import Store

_TOKEN = re.compile(r"\w+", re.UNICODE)
MATCH_RANK = {"id": 0, "name": 1, "text": 2}


@dataclass(frozen=True)
class SearchResult:
    id: str | None
    name: str | None
    kind: str
    domain: str
    attack_version: str
    match: str
    snippet: str
    revoked: bool
    deprecated: bool


def fts_query(text: str) -> str | None:
    """Every word must appear, the last one as a prefix (search-as-you-type)."""
    tokens = _TOKEN.findall(text)
    if not tokens:
        return None
    quoted = [f'"{t}"' for t in tokens]
    quoted[-1] += "*"
    return " ".join(quoted)


def search(
    store: Store,
    text: str,
    *,
    limit: int = 20,
    kinds: list[str] | None = None,
    attack_version: str | None = None,
    domain: str | None = None,
) -> list[SearchResult]:
    releases = select_releases(store, attack_version, domain)
    by_id = {r.id: r for r in releases}
    found: dict[tuple[int, str], SearchResult] = {}

    def add(release: Release, obj: AttackObject, match: str, snippet: str = "") -> None:
        key = (release.id, obj.stix_id)
        if key in found or (kinds and obj.kind not in kinds):
            return
        found[key] = SearchResult(
            obj.attack_id,
            obj.name,
            obj.kind,
            release.domain,
            release.version,
            match,
            snippet,
            obj.revoked,
            obj.deprecated,
        )

    query = text.strip()
    for release in releases:
        for obj in attack_store.find_by_attack_id(store, query, release.id):
            add(release, obj, "id")
    for release in releases:
        for obj in attack_store.find_by_name(store, query, release.id):
            add(release, obj, "name")
    match = fts_query(query)
    if match:
        hits = attack_store.search_attack(store, match, list(by_id), limit, kinds)
        objects: dict[tuple[int, str], AttackObject] = {}
        for release_id in {h.release_id for h in hits}:
            ids = [h.stix_id for h in hits if h.release_id == release_id]
            for sid, stored in attack_store.get_objects(store, release_id, ids).items():
                objects[(release_id, sid)] = stored
        for hit in hits:
            hit_obj = objects.get((hit.release_id, hit.stix_id))
            if hit_obj is not None:
                add(by_id[hit.release_id], hit_obj, "text", hit.snippet)
    ranked = sorted(found.values(), key=lambda r: (MATCH_RANK[r.match], r.revoked or r.deprecated))
    return ranked[:limit]
