"""Choose ATT&CK releases and find objects in them by id or name."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from defensemap.errors import InputError, NotFoundError, StoreError
from defensemap.kb.documents import ObjectRef
from defensemap.model.attack import DOMAINS, AttackObject, Relationship, Release, version_key
from defensemap.store import attack as attack_store
from defensemap.store.db import LOAD_HINT, Store

MAX_REVOCATION_HOPS = 10


def normalize_domain(domain: str | None) -> str | None:
    """Accept ``enterprise`` or ``enterprise-attack`` (any case); ``None`` means all."""
    if domain is None:
        return None
    value = domain.strip().lower()
    full = value if value.endswith("-attack") else f"{value}-attack"
    if full not in DOMAINS:
        raise InputError(f"unknown ATT&CK domain {domain!r}", hint="use enterprise, mobile or ics")
    return full


def select_releases(
    store: Store, attack_version: str | None = None, domain: str | None = None
) -> list[Release]:
    """Releases to answer from: the given version, else the newest of each domain;
    enterprise first, then mobile, then ICS."""
    releases = attack_store.list_releases(store)
    if not releases:
        raise StoreError("no ATT&CK data is loaded", hint=LOAD_HINT)
    wanted_domain = normalize_domain(domain)
    if wanted_domain:
        releases = [r for r in releases if r.domain == wanted_domain]
    if attack_version:
        chosen = [r for r in releases if r.version == attack_version.lstrip("v")]
    else:
        newest: dict[str, Release] = {}
        for release in releases:
            best = newest.get(release.domain)
            if best is None or version_key(release.version) > version_key(best.version):
                newest[release.domain] = release
        chosen = list(newest.values())
    if not chosen:
        loaded = ", ".join(r.label for r in attack_store.list_releases(store))
        raise NotFoundError(
            f"ATT&CK {attack_version or ''} {wanted_domain or ''} is not loaded".replace("  ", " "),
            hint=f"loaded: {loaded}; import it with `defensemap import attack FILE`",
        )
    return sorted(chosen, key=lambda r: DOMAINS.index(r.domain) if r.domain in DOMAINS else 9)


@dataclass
class ReleaseView:
    """One release seen through the store, with a small object cache for a document build."""

    store: Store
    release: Release
    _cache: dict[str, AttackObject] = field(default_factory=dict)

    def objects(self, stix_ids: list[str] | set[str]) -> dict[str, AttackObject]:
        missing = [sid for sid in stix_ids if sid not in self._cache]
        if missing:
            self._cache.update(attack_store.get_objects(self.store, self.release.id, missing))
        return {sid: self._cache[sid] for sid in stix_ids if sid in self._cache}

    def get(self, stix_id: str) -> AttackObject | None:
        return self.objects([stix_id]).get(stix_id)

    def rels(
        self,
        *,
        source: str | None = None,
        target: str | None = None,
        relationship_type: str | None = None,
        active_only: bool = True,
    ) -> list[Relationship]:
        found = attack_store.relationships(
            self.store,
            self.release.id,
            source=source,
            target=target,
            relationship_type=relationship_type,
        )
        if active_only:
            found = [r for r in found if not r.revoked and not r.deprecated]
        return found

    def mentioning(self, kind: str, needles: Sequence[str]) -> list[AttackObject]:
        """Objects of ``kind`` whose properties may reference one of ``needles``."""
        objs = attack_store.objects_mentioning(self.store, self.release.id, kind, needles)
        self._cache.update((o.stix_id, o) for o in objs)
        return objs

    def of_kind(self, kind: str) -> list[AttackObject]:
        objs = attack_store.objects_of_kind(self.store, self.release.id, kind)
        self._cache.update((o.stix_id, o) for o in objs)
        return objs


def ref(obj: AttackObject) -> ObjectRef:
    return ObjectRef(
        id=obj.attack_id,
        name=obj.name,
        kind=obj.kind,
        stix_id=obj.stix_id,
        revoked=obj.revoked,
        deprecated=obj.deprecated,
    )


@dataclass(frozen=True)
class Found:
    """An object found for a user's query; ``resolved_from`` is set when we followed a
    revocation to the replacement."""

    view: ReleaseView
    obj: AttackObject
    resolved_from: str | None


def find_object(
    store: Store,
    ident: str,
    kinds: tuple[str, ...],
    attack_version: str | None = None,
    domain: str | None = None,
) -> Found:
    """Find by ATT&CK id or exact name in the chosen releases; a revoked id resolves to
    its replacement."""
    ident = ident.strip()
    releases = select_releases(store, attack_version, domain)
    for release in releases:
        view = ReleaseView(store, release)
        best = best_by_id(view, ident, kinds) or _preferred(
            o for o in attack_store.find_by_name(store, ident, release.id) if o.kind in kinds
        )
        if best is None:
            continue
        if best.revoked:
            last = follow_revoked(view, best)
            return Found(view, last, None if last.revoked else ident)
        return Found(view, best, None)
    raise _not_found(store, ident, kinds, releases)


def best_by_id(view: ReleaseView, ident: str, kinds: tuple[str, ...]) -> AttackObject | None:
    """The object of ``kinds`` with this ATT&CK id in the view's release (case-insensitive);
    a current one wins over a revoked or deprecated one with the same id."""
    found = attack_store.find_by_attack_id(view.store, ident, view.release.id)
    return _preferred(o for o in found if o.kind in kinds)


def _preferred(candidates: Iterable[AttackObject]) -> AttackObject | None:
    return min(candidates, key=lambda o: (o.revoked, o.deprecated), default=None)


def follow_revoked(view: ReleaseView, obj: AttackObject) -> AttackObject:
    """Where ``obj``'s ``revoked-by`` chain leads: the first object that is not revoked, or
    the last one reached when the chain breaks off (still revoked)."""
    current = obj
    for _ in range(MAX_REVOCATION_HOPS):
        if not current.revoked:
            break
        links = view.rels(source=current.stix_id, relationship_type="revoked-by", active_only=False)
        target = view.get(links[0].target_ref) if links else None
        if target is None:
            break
        current = target
    return current


def _not_found(
    store: Store, ident: str, kinds: tuple[str, ...], searched: list[Release]
) -> NotFoundError:
    searched_ids = {r.id for r in searched}
    elsewhere = [
        r.label
        for r in attack_store.list_releases(store)
        if r.id not in searched_ids
        and any(o.kind in kinds for o in attack_store.find_by_attack_id(store, ident, r.id))
    ]
    label = kinds[0].replace("-", " ")
    where = ", ".join(r.label for r in searched)
    if elsewhere:
        hint = f"it exists in {', '.join(elsewhere)}: pass --attack-version/--domain"
    else:
        hint = f"try `defensemap search {ident}`"
    return NotFoundError(f"no {label} {ident!r} in ATT&CK {where}", hint=hint)
