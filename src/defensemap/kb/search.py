"""Ranked search over everything loaded: ATT&CK objects of every kind, mapped capabilities
and community (SigmaHQ) rules. Exact ids first, then exact names, then full-text (FTS5) matches."""

from __future__ import annotations

import re
from dataclasses import dataclass

from defensemap.errors import StoreError
from defensemap.kb.lookup import select_releases
from defensemap.kb.mappings import select_sets
from defensemap.model.attack import AttackObject, Release
from defensemap.model.mappings import MappingSet
from defensemap.store import attack as attack_store
from defensemap.store import mappings as mapping_store
from defensemap.store import sigma as sigma_store
from defensemap.store.db import LOAD_HINT, Store
from defensemap.store.search import IndexHit, search_index

_TOKEN = re.compile(r"\w+", re.UNICODE)
MATCH_RANK = {"id": 0, "name": 1, "text": 2}
CAPABILITY = "capability"


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
    framework: str | None = None


def fts_query(text: str) -> str | None:
    """Every word must appear, the last one as a prefix (search-as-you-type)."""
    tokens = _TOKEN.findall(text)
    if not tokens:
        return None
    quoted = [f'"{t}"' for t in tokens]
    quoted[-1] += "*"
    return " ".join(quoted)


def _loaded(
    store: Store, attack_version: str | None, domain: str | None
) -> tuple[list[Release], list[MappingSet]]:
    """ATT&CK releases and default mapping sets to search; either may be missing."""
    try:
        releases = select_releases(store, attack_version, domain)
    except StoreError:
        releases = []
    try:
        sets = select_sets(store)
    except StoreError:
        sets = []
    if not releases and not sets and not sigma_store.rule_count(store):
        raise StoreError("nothing is loaded yet", hint=LOAD_HINT)
    return releases, sets


class _Results:
    """Collects results once each, remembering how they matched."""

    def __init__(self, kinds: list[str] | None) -> None:
        self.kinds = kinds
        self.found: dict[tuple[str, str], SearchResult] = {}

    def wants(self, kind: str) -> bool:
        return not self.kinds or kind in self.kinds

    def add_object(
        self, release: Release, obj: AttackObject, match: str, snippet: str = ""
    ) -> None:
        key = (f"attack:{release.id}", obj.stix_id)
        if key not in self.found and self.wants(obj.kind):
            self.found[key] = SearchResult(
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

    def add_rule(self, rule_id: str, title: str, match: str, snippet: str = "") -> None:
        """A community (SigmaHQ) rule: no ATT&CK release, so domain and version are empty."""
        key = (sigma_store.SCOPE, rule_id.lower())
        if key not in self.found and self.wants(sigma_store.KIND):
            self.found[key] = SearchResult(
                rule_id, title, sigma_store.KIND, "", "", match, snippet, False, False
            )

    def add_capability(
        self, item: MappingSet, cap_id: str, name: str | None, match: str, snippet: str = ""
    ) -> None:
        key = (f"framework:{item.info.framework}", cap_id.lower())
        if key not in self.found and self.wants(CAPABILITY):
            self.found[key] = SearchResult(
                cap_id,
                name,
                CAPABILITY,
                item.info.domain,
                item.info.attack_version,
                match,
                snippet,
                False,
                False,
                item.info.framework,
            )


def search(
    store: Store,
    text: str,
    *,
    limit: int = 20,
    kinds: list[str] | None = None,
    attack_version: str | None = None,
    domain: str | None = None,
) -> list[SearchResult]:
    releases, sets = _loaded(store, attack_version, domain)
    results = _Results(kinds)
    query = text.strip()
    for release in releases:
        for obj in attack_store.find_by_attack_id(store, query, release.id):
            results.add_object(release, obj, "id")
    if results.wants(CAPABILITY):
        _exact_capabilities(store, sets, query, results)
    rule = sigma_store.get_rule(store, query) if results.wants(sigma_store.KIND) else None
    if rule is not None:
        results.add_rule(rule.id, rule.title, "id")
    for release in releases:
        for obj in attack_store.find_by_name(store, query, release.id):
            results.add_object(release, obj, "name")
    match = fts_query(query)
    if match:
        scopes = [f"{attack_store.SCOPE_PREFIX}{r.id}" for r in releases]
        scopes += [f"{mapping_store.SCOPE_PREFIX}{s.id}" for s in sets]
        scopes.append(sigma_store.SCOPE)
        hits = search_index(store, match, scopes, limit, kinds)
        _add_hits(store, hits, releases, sets, results)
    ranked = sorted(
        results.found.values(), key=lambda r: (MATCH_RANK[r.match], r.revoked or r.deprecated)
    )
    return ranked[:limit]


def _exact_capabilities(
    store: Store, sets: list[MappingSet], query: str, results: _Results
) -> None:
    by_id = {s.id: s for s in sets}
    for set_id, row in mapping_store.rows_for(store, list(by_id), capability_id=query):
        results.add_capability(
            by_id[set_id], row.capability_id or query, row.capability_description, "id"
        )


def _add_hits(
    store: Store,
    hits: list[IndexHit],
    releases: list[Release],
    sets: list[MappingSet],
    results: _Results,
) -> None:
    release_of = {f"{attack_store.SCOPE_PREFIX}{r.id}": r for r in releases}
    set_of = {f"{mapping_store.SCOPE_PREFIX}{s.id}": s for s in sets}
    objects: dict[tuple[str, str], AttackObject] = {}
    for scope, release in release_of.items():
        ids = [h.ref for h in hits if h.scope == scope]
        for sid, stored in attack_store.get_objects(store, release.id, ids).items():
            objects[(scope, sid)] = stored
    for hit in hits:
        if hit.scope == sigma_store.SCOPE:
            results.add_rule(hit.ident, hit.title, "text", hit.snippet)
        elif hit.scope in set_of:
            results.add_capability(set_of[hit.scope], hit.ident, hit.title, "text", hit.snippet)
        elif (obj := objects.get((hit.scope, hit.ref))) is not None:
            results.add_object(release_of[hit.scope], obj, "text", hit.snippet)
