"""What counters a technique: Mappings Explorer mappings, shown on the user's ATT&CK version.

Every mapping file was made for one ATT&CK version. Each row is checked against the release
the user asks about: ids carried over, redirected where the technique was revoked (and marked
so), flagged where deprecated or gone. Rows always say which version they were mapped on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from defensemap.errors import DefensemapError, InputError, NotFoundError, StoreError
from defensemap.kb.documents import AttackResolution, FrameworkMappings, MappingView
from defensemap.kb.lookup import (
    MAX_REVOCATION_HOPS,
    Found,
    ReleaseView,
    best_by_id,
    find_object,
    follow_revoked,
    select_releases,
)
from defensemap.model.attack import AttackObject, Release, version_key
from defensemap.model.mappings import (
    FRAMEWORK_ALIASES,
    NON_MAPPABLE,
    MappingRow,
    MappingSet,
    framework_label,
    mapping_type_label,
)
from defensemap.store import mappings as mapping_store
from defensemap.store.db import Store

MAPPINGS_HINT = (
    "load mappings with `defensemap sync --mappings` (online) or "
    "`defensemap import mappings PATH` (offline)"
)


# --- choosing mapping sets ------------------------------------------------------------------


def normalize_framework(store: Store, name: str, sets: list[MappingSet]) -> str:
    key = name.strip().lower()
    key = FRAMEWORK_ALIASES.get(key, key)
    known = sorted({s.info.framework for s in sets})
    if key not in known:
        raise NotFoundError(
            f"no mappings for framework {name!r}",
            hint=f"loaded: {', '.join(known)}" if known else MAPPINGS_HINT,
        )
    return key


def _date_key(date: str | None) -> tuple[int, ...]:
    if not date or date.count("/") != 2:
        return (0,)
    month, day, year = date.split("/")
    return (int(year), int(month), int(day)) if (month + day + year).isdecimal() else (0,)


def _newness(item: MappingSet) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return version_key(item.info.attack_version), _date_key(
        item.info.last_update or item.info.creation_date
    )


def _same_version(a: str, b: str) -> bool:
    """``07/18/2025``, ``07.18.2025`` and ``REV5``/``rev5`` name the same framework version."""

    def norm(text: str) -> str:
        return "".join(ch for ch in text.lower() if ch.isalnum())

    return norm(a) == norm(b)


def select_sets(
    store: Store,
    *,
    framework: str | None = None,
    framework_version: str | None = None,
    mapped_on: str | None = None,
    domain: str | None = None,
    all_versions: bool = False,
) -> list[MappingSet]:
    """The sets to answer from: by default the newest set of each framework and domain
    (newest ATT&CK version, then newest update); filters narrow the choice."""
    sets = mapping_store.list_sets(store)
    if not sets:
        raise StoreError("no mappings are loaded", hint=MAPPINGS_HINT)
    chosen = sets
    if framework:
        fw = normalize_framework(store, framework, sets)
        chosen = [s for s in chosen if s.info.framework == fw]
    if framework_version:
        chosen = [s for s in chosen if _same_version(s.info.framework_version, framework_version)]
    if mapped_on:
        chosen = [s for s in chosen if s.info.attack_version == mapped_on]
    if domain:
        chosen = [s for s in chosen if s.info.domain == domain]
    if not chosen:
        wanted = " ".join(x for x in (framework, framework_version, mapped_on, domain) if x)
        available = sorted(
            {
                f"{s.info.framework} {s.info.framework_version} (ATT&CK {s.info.attack_version})"
                for s in sets
            }
        )
        raise NotFoundError(
            f"no mapping set matches {wanted}", hint=f"loaded: {'; '.join(available)}"
        )
    return chosen if all_versions else newest_sets(chosen)


def newest_sets(sets: list[MappingSet]) -> list[MappingSet]:
    """The newest set of each framework and domain (ATT&CK version, then update)."""
    newest: dict[tuple[str, str], MappingSet] = {}
    for item in sets:
        key = (item.info.framework, item.info.domain)
        if key not in newest or _newness(item) > _newness(newest[key]):
            newest[key] = item
    return sorted(
        newest.values(), key=lambda s: (framework_label(s.info.framework).lower(), s.info.domain)
    )


# --- resolving ATT&CK ids on the user's version ---------------------------------------------


class AttackResolver:
    """Resolves mapped ATT&CK ids against one release, asking the store per distinct id: a
    page resolves tens of ids, and loading every technique first cost 50 ms a page."""

    def __init__(self, store: Store, release: Release | None) -> None:
        self.release = release
        self._view = ReleaseView(store, release) if release is not None else None
        self._techniques: dict[str, AttackObject | None] = {}

    def resolve(self, attack_id: str | None, name: str | None) -> AttackResolution:
        version = self.release.version if self.release else None
        if self._view is None or not attack_id:
            return AttackResolution(attack_id, name, attack_id, name, "unchecked", version)
        obj = self._technique(attack_id.upper())
        if obj is None:
            return AttackResolution(attack_id, name, None, None, "missing", version)
        if obj.revoked:
            target = follow_revoked(self._view, obj)
            current = (None, None) if target.revoked else (target.attack_id, target.name)
            return AttackResolution(attack_id, name, *current, "revoked", version)
        status = "deprecated" if obj.deprecated else "current"
        return AttackResolution(attack_id, name, obj.attack_id, obj.name, status, version)

    def _technique(self, attack_id: str) -> AttackObject | None:
        if attack_id not in self._techniques and self._view is not None:
            self._techniques[attack_id] = best_by_id(self._view, attack_id, ("technique",))
        return self._techniques.get(attack_id)


def resolver_for(store: Store, domain: str, attack_version: str | None) -> AttackResolver:
    """A resolver on the user's version of ``domain`` (newest loaded), or an unchecking one
    when that ATT&CK release is not loaded."""
    try:
        release = select_releases(store, attack_version, domain)[0]
    except DefensemapError:
        if attack_version:
            raise
        release = None
    return AttackResolver(store, release)


# --- views ----------------------------------------------------------------------------------


def _view(item: MappingSet, row: MappingRow, resolution: AttackResolution) -> MappingView:
    groups = item.info.capability_groups
    return MappingView(
        capability_id=row.capability_id,
        capability_description=row.capability_description,
        capability_group=row.capability_group,
        capability_group_name=groups.get(row.capability_group or "")
        if row.capability_group
        else None,
        mapping_type=row.mapping_type,
        mapping_type_label=mapping_type_label(row.mapping_type, item.info.mapping_types),
        score_category=row.score_category,
        score_value=row.score_value,
        related_score=row.related_score,
        comments=row.comments,
        references=row.references,
        status=row.status,
        occurrences=row.occurrences,
        mapped_on=item.info.attack_version,
        attack=resolution,
    )


def _framework_block(item: MappingSet, views: list[MappingView]) -> FrameworkMappings:
    types = {v.mapping_type: v.mapping_type_label for v in views}
    return FrameworkMappings(
        framework=item.info.framework,
        label=framework_label(item.info.framework),
        framework_version=item.info.framework_version,
        mapped_on=item.info.attack_version,
        domain=item.info.domain,
        mapping_types=dict(sorted(types.items())),
        rows=views,
    )


def _row_order(view: MappingView) -> tuple[str, str, str]:
    return (view.capability_group or "", view.capability_id or "", view.score_category or "")


class _TechniqueResolution:
    """Resolves the ids that land on one technique: its own id and every id that was
    revoked into it (followed through the ``revoked-by`` chain, using indexed lookups)."""

    def __init__(self, found: Found | None, ident: str) -> None:
        self.version = found.view.release.version if found else None
        self.target = found.obj if found else None
        self.redirected: dict[str, AttackObject] = {}
        self.ids = {ident.strip().upper()}
        if found is None:
            return
        view, obj = found.view, found.obj
        self.ids.add((obj.attack_id or "").upper())
        frontier = [obj.stix_id]
        for _ in range(MAX_REVOCATION_HOPS):
            links = [
                link.source_ref
                for stix_id in frontier
                for link in view.rels(
                    target=stix_id, relationship_type="revoked-by", active_only=False
                )
            ]
            if not links:
                break
            for old in view.objects(links).values():
                if old.attack_id:
                    self.redirected[old.attack_id.upper()] = old
            frontier = links
        self.ids |= set(self.redirected)

    def __call__(self, attack_id: str | None, name: str | None) -> AttackResolution:
        target = self.target
        if target is None or not attack_id:
            return AttackResolution(attack_id, name, attack_id, name, "unchecked", self.version)
        if attack_id.upper() in self.redirected:
            status = "revoked"
        else:
            status = "deprecated" if target.deprecated else "current"
        return AttackResolution(
            attack_id, name, target.attack_id, target.name, status, self.version
        )


def technique_mappings(
    store: Store,
    ident: str,
    *,
    attack_version: str | None = None,
    domain: str | None = None,
    framework: str | None = None,
    framework_version: str | None = None,
    all_versions: bool = False,
) -> list[FrameworkMappings]:
    """Every capability mapped to the technique, per mapping set, on the user's version."""
    found = None
    try:
        found = find_object(store, ident, ("technique",), attack_version, domain)
    except NotFoundError:
        if attack_version:
            raise
    except StoreError:
        found = None
    target_domain = found.view.release.domain if found else domain
    sets = select_sets(
        store,
        framework=framework,
        framework_version=framework_version,
        domain=target_domain,
        all_versions=all_versions,
    )
    resolve = _TechniqueResolution(found, ident)
    by_set: dict[int, list[MappingView]] = defaultdict(list)
    set_by_id = {s.id: s for s in sets}
    rows = mapping_store.rows_for(store, list(set_by_id), attack_ids=sorted(resolve.ids))
    for set_id, row in rows:
        if row.mapping_type == NON_MAPPABLE and not row.capability_id:
            continue
        item = set_by_id[set_id]
        by_set[set_id].append(
            _view(item, row, resolve(row.attack_object_id, row.attack_object_name))
        )
    return [
        _framework_block(item, sorted(by_set[item.id], key=_row_order))
        for item in sets
        if by_set.get(item.id)
    ]


def technique_mappings_or_empty(
    store: Store, ident: str, attack_version: str | None, domain: str
) -> list[FrameworkMappings]:
    """For the technique page: no mappings loaded is an empty section, not an error."""
    try:
        return technique_mappings(store, ident, attack_version=attack_version, domain=domain)
    except (StoreError, NotFoundError):
        return []


def mapping_counts(
    store: Store, idents: Sequence[str], attack_version: str | None, domain: str
) -> dict[str, int]:
    """Mapped rows per technique, counted as `technique_mappings` shows them, in one query
    over the newest sets: a group page shows this for each of its tens of techniques."""
    counts = dict.fromkeys(idents, 0)
    try:
        sets = select_sets(store, domain=domain)
    except (StoreError, NotFoundError):
        return counts
    owners: dict[str, list[str]] = defaultdict(list)
    for ident in idents:
        try:
            found: Found | None = find_object(store, ident, ("technique",), attack_version, domain)
        except (NotFoundError, StoreError):
            found = None
        for alias in _TechniqueResolution(found, ident).ids:
            owners[alias].append(ident)
    found_rows = mapping_store.row_counts(store, [s.id for s in sets], sorted(owners), NON_MAPPABLE)
    for attack_id, n in found_rows.items():
        for ident in owners.get(attack_id.upper(), []):
            counts[ident] += n
    return counts


@dataclass(frozen=True)
class CapabilityTypeGroup:
    mapping_type: str
    label: str
    rows: list[MappingView]


@dataclass(frozen=True)
class CapabilityDoc:
    framework: str
    label: str
    framework_version: str
    mapped_on: str
    domain: str
    capability_id: str
    description: str | None
    capability_group: str | None
    capability_group_name: str | None
    attack_version: str | None
    mapping_types: list[CapabilityTypeGroup]


def capability(
    store: Store,
    capability_id: str,
    *,
    framework: str | None = None,
    framework_version: str | None = None,
    mapped_on: str | None = None,
    attack_version: str | None = None,
) -> list[CapabilityDoc]:
    """The capability and every technique it maps to, per mapping type, in each chosen set.

    A capability the newest set of its framework dropped (older Azure and AWS sets name
    services since retired or renamed) is answered from the newest set that still maps it."""
    chosen = select_sets(
        store,
        framework=framework,
        framework_version=framework_version,
        mapped_on=mapped_on,
        all_versions=True,
    )
    mentioned = set(mapping_store.capability_sets(store, capability_id.strip()))
    sets = [s for s in newest_sets(chosen) if s.id in mentioned]
    if not sets:
        sets = newest_sets([s for s in chosen if s.id in mentioned])
    if not sets:
        raise NotFoundError(
            f"no capability {capability_id!r}{' in ' + framework if framework else ''}",
            hint=f"try `defensemap search {capability_id}`",
        )
    frameworks = sorted({s.info.framework for s in sets})
    if len(frameworks) > 1 and not framework:
        raise InputError(
            f"{capability_id} exists in several frameworks: {', '.join(frameworks)}",
            hint="pass --framework",
        )
    return [_capability_doc(store, item, capability_id.strip(), attack_version) for item in sets]


def _capability_doc(
    store: Store, item: MappingSet, capability_id: str, attack_version: str | None
) -> CapabilityDoc:
    resolver = resolver_for(store, item.info.domain, attack_version)
    rows = [r for _, r in mapping_store.rows_for(store, [item.id], capability_id=capability_id)]
    grouped: dict[str, list[MappingView]] = defaultdict(list)
    for row in rows:
        grouped[row.mapping_type].append(
            _view(item, row, resolver.resolve(row.attack_object_id, row.attack_object_name))
        )
    first = rows[0]
    return CapabilityDoc(
        framework=item.info.framework,
        label=framework_label(item.info.framework),
        framework_version=item.info.framework_version,
        mapped_on=item.info.attack_version,
        domain=item.info.domain,
        capability_id=first.capability_id or capability_id,
        description=first.capability_description,
        capability_group=first.capability_group,
        capability_group_name=item.info.capability_groups.get(first.capability_group or ""),
        attack_version=resolver.release.version if resolver.release else None,
        mapping_types=[
            CapabilityTypeGroup(
                key,
                mapping_type_label(key, item.info.mapping_types),
                sorted(views, key=lambda v: (v.attack.mapped_id or "", v.score_category or "")),
            )
            for key, views in sorted(grouped.items())
        ],
    )


@dataclass(frozen=True)
class SetSummary:
    framework_version: str
    attack_version: str
    domain: str
    rows_in_file: int
    rows_stored: int
    duplicate_rows: int
    capabilities: int
    techniques: int
    non_mappable: int
    source: str
    imported_at: str


@dataclass(frozen=True)
class FrameworkSummary:
    framework: str
    label: str
    sets: list[SetSummary]


def frameworks(store: Store) -> list[FrameworkSummary]:
    sets = mapping_store.list_sets(store)
    if not sets:
        raise StoreError("no mappings are loaded", hint=MAPPINGS_HINT)
    counts = mapping_store.set_counts(store)
    by_framework: dict[str, list[SetSummary]] = defaultdict(list)
    for item in sorted(sets, key=_newness, reverse=True):
        c = counts.get(item.id, mapping_store.SetCounts(0, 0, 0))
        by_framework[item.info.framework].append(
            SetSummary(
                framework_version=item.info.framework_version,
                attack_version=item.info.attack_version,
                domain=item.info.domain,
                rows_in_file=item.rows_in_file,
                rows_stored=item.rows_stored,
                duplicate_rows=item.rows_in_file - item.rows_stored,
                capabilities=c.capabilities,
                techniques=c.techniques,
                non_mappable=c.non_mappable,
                source=item.source,
                imported_at=item.imported_at,
            )
        )
    return [
        FrameworkSummary(fw, framework_label(fw), summaries)
        for fw, summaries in sorted(
            by_framework.items(), key=lambda kv: framework_label(kv[0]).lower()
        )
    ]


@dataclass(frozen=True)
class CapabilitySummary:
    id: str
    description: str | None
    mappings: int
    techniques: int


@dataclass(frozen=True)
class CapabilityGroupDoc:
    id: str
    name: str
    capabilities: list[CapabilitySummary]


@dataclass(frozen=True)
class NonMappable:
    id: str | None
    name: str | None
    comments: str | None


@dataclass(frozen=True)
class FrameworkDoc:
    framework: str
    label: str
    framework_version: str
    mapped_on: str
    domain: str
    author: str | None
    organization: str | None
    creation_date: str | None
    last_update: str | None
    mapping_types: dict[str, str]
    capability_groups: list[CapabilityGroupDoc]
    non_mappable_techniques: list[NonMappable]
    non_mappable_capabilities: list[NonMappable]


def framework_doc(
    store: Store,
    framework: str,
    *,
    framework_version: str | None = None,
    mapped_on: str | None = None,
    domain: str | None = None,
) -> FrameworkDoc:
    """Capability groups -> capabilities (with counts) and what was judged non-mappable."""
    item = select_sets(
        store,
        framework=framework,
        framework_version=framework_version,
        mapped_on=mapped_on,
        domain=domain,
    )[0]
    rows = [r for _, r in mapping_store.rows_for(store, [item.id])]
    caps: dict[tuple[str, str], list[MappingRow]] = defaultdict(list)
    for row in rows:
        if row.capability_id and row.mapping_type != NON_MAPPABLE:
            caps[(row.capability_group or "", row.capability_id)].append(row)
    by_group: dict[str, list[CapabilitySummary]] = defaultdict(list)
    for (group, cap_id), cap_rows in caps.items():
        by_group[group].append(
            CapabilitySummary(
                id=cap_id,
                description=cap_rows[0].capability_description,
                mappings=len(cap_rows),
                techniques=len({r.attack_object_id for r in cap_rows if r.attack_object_id}),
            )
        )
    names = item.info.capability_groups
    group_ids = list(names) + sorted(g for g in by_group if g not in names)
    non_mappable = [r for r in rows if r.mapping_type == NON_MAPPABLE]
    return FrameworkDoc(
        framework=item.info.framework,
        label=framework_label(item.info.framework),
        framework_version=item.info.framework_version,
        mapped_on=item.info.attack_version,
        domain=item.info.domain,
        author=item.info.author,
        organization=item.info.organization,
        creation_date=item.info.creation_date,
        last_update=item.info.last_update,
        mapping_types={
            k: mapping_type_label(k, item.info.mapping_types)
            for k in sorted(item.info.mapping_types)
        },
        capability_groups=[
            CapabilityGroupDoc(g, names.get(g, g), sorted(by_group[g], key=lambda c: c.id))
            for g in group_ids
            if by_group.get(g)
        ],
        non_mappable_techniques=sorted(
            (
                NonMappable(r.attack_object_id, r.attack_object_name, r.comments)
                for r in non_mappable
                if r.attack_object_id
            ),
            key=lambda n: n.id or "",
        ),
        non_mappable_capabilities=sorted(
            (
                NonMappable(r.capability_id, r.capability_description, r.comments)
                for r in non_mappable
                if r.capability_id
            ),
            key=lambda n: n.id or "",
        ),
    )
