"""What changed between two ATT&CK versions of a domain."""

from __future__ import annotations

from dataclasses import dataclass

from defensemap.errors import InputError
from defensemap.kb.documents import ObjectRef
from defensemap.kb.lookup import ReleaseView, ref, select_releases
from defensemap.model.attack import AttackObject
from defensemap.store.db import Store

COMPARED_FIELDS = ("description", "tactics", "platforms")


@dataclass(frozen=True)
class Revocation:
    ref: ObjectRef
    replaced_by: ObjectRef | None


@dataclass(frozen=True)
class Rename:
    ref: ObjectRef
    old_name: str | None


@dataclass(frozen=True)
class Change:
    ref: ObjectRef
    fields: list[str]
    old_version: str | None
    new_version: str | None


@dataclass(frozen=True)
class DiffDoc:
    domain: str
    kind: str
    old_version: str
    new_version: str
    added: list[ObjectRef]
    removed: list[ObjectRef]
    revoked: list[Revocation]
    deprecated: list[ObjectRef]
    renamed: list[Rename]
    changed: list[Change]


def _values(obj: AttackObject, field: str) -> object:
    if field == "description":
        return (obj.description or "").strip()
    if field == "tactics":
        phases = obj.raw.get("kill_chain_phases") or []
        return sorted(p.get("phase_name", "") for p in phases if isinstance(p, dict))
    if field == "platforms":
        return sorted(obj.raw.get("x_mitre_platforms") or [])
    raise KeyError(field)


def _key(item: ObjectRef) -> str:
    return item.id or item.stix_id


def diff(
    store: Store, old: str, new: str, domain: str = "enterprise", kind: str = "technique"
) -> DiffDoc:
    """Compare objects of ``kind`` by STIX id between versions ``old`` and ``new``."""
    if old == new:
        raise InputError("the two versions are the same", hint="name two different ATT&CK versions")
    old_release = select_releases(store, old, domain)[0]
    new_release = select_releases(store, new, domain)[0]
    old_view, new_view = ReleaseView(store, old_release), ReleaseView(store, new_release)
    before = {o.stix_id: o for o in old_view.of_kind(kind)}
    after = {o.stix_id: o for o in new_view.of_kind(kind)}
    added = [ref(o) for sid, o in after.items() if sid not in before]
    removed = [ref(o) for sid, o in before.items() if sid not in after]
    revoked, deprecated, renamed, changed = [], [], [], []
    for sid, new_obj in after.items():
        old_obj = before.get(sid)
        if old_obj is None:
            continue
        if new_obj.revoked and not old_obj.revoked:
            links = new_view.rels(source=sid, relationship_type="revoked-by", active_only=False)
            target = new_view.get(links[0].target_ref) if links else None
            revoked.append(Revocation(ref(new_obj), ref(target) if target else None))
            continue
        if new_obj.revoked:
            continue
        if new_obj.deprecated and not old_obj.deprecated:
            deprecated.append(ref(new_obj))
        if new_obj.name != old_obj.name:
            renamed.append(Rename(ref(new_obj), old_obj.name))
        fields = [f for f in COMPARED_FIELDS if _values(old_obj, f) != _values(new_obj, f)]
        if fields:
            changed.append(Change(ref(new_obj), fields, old_obj.version, new_obj.version))
    return DiffDoc(
        domain=new_release.domain,
        kind=kind,
        old_version=old_release.version,
        new_version=new_release.version,
        added=sorted(added, key=_key),
        removed=sorted(removed, key=_key),
        revoked=sorted(revoked, key=lambda r: _key(r.ref)),
        deprecated=sorted(deprecated, key=_key),
        renamed=sorted(renamed, key=lambda r: _key(r.ref)),
        changed=sorted(changed, key=lambda c: _key(c.ref)),
    )
