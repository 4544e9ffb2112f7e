"""Build the answer documents for techniques, groups, software, campaigns, mitigations,
tactics, data components and detection strategies from one release in the store."""

from __future__ import annotations

from typing import Any

from defensemap.kb.documents import (
    AnalyticDoc,
    CampaignDoc,
    Common,
    DataComponentDoc,
    DataComponentUse,
    DetectionStrategyDoc,
    DetectionStrategySummary,
    GroupDoc,
    LogSource,
    MitigationDoc,
    MutableElement,
    ObjectRef,
    Related,
    SoftwareDoc,
    Status,
    TacticDoc,
    TacticRef,
    TacticTechnique,
    TechniqueDoc,
)
from defensemap.kb.lookup import Found, ReleaseView, find_object, ref
from defensemap.kb.mappings import technique_mappings_or_empty
from defensemap.model.attack import AttackObject, Relationship
from defensemap.model.citations import ReferenceBook
from defensemap.store.db import Store

KILL_CHAINS = ("mitre-attack", "mitre-mobile-attack", "mitre-ics-attack")
# Fields shown elsewhere in a technique document (or pure bookkeeping); every other
# x_mitre_* field appears under ``attributes`` so nothing ATT&CK says is hidden.
_SHOWN_FIELDS = {
    "x_mitre_version",
    "x_mitre_deprecated",
    "x_mitre_domains",
    "x_mitre_platforms",
    "x_mitre_is_subtechnique",
    "x_mitre_modified_by_ref",
    "x_mitre_attack_spec_version",
    "x_mitre_detection",
    "x_mitre_contributors",
}


def _sort_key(item: Related | ObjectRef) -> tuple[str, str]:
    target = item.ref if isinstance(item, Related) else item
    return (target.id or "~", target.name or "")


def _url(obj: AttackObject) -> str | None:
    for entry in obj.raw.get("external_references") or []:
        if isinstance(entry, dict) and entry.get("external_id") == obj.attack_id:
            url = entry.get("url")
            return url if isinstance(url, str) else None
    return None


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _common(found: Found, obj: AttackObject, book: ReferenceBook) -> Common:
    view = found.view
    revoked_by = None
    if obj.revoked:
        links = view.rels(source=obj.stix_id, relationship_type="revoked-by", active_only=False)
        target = view.get(links[0].target_ref) if links else None
        revoked_by = ref(target) if target else None
    return Common(
        id=obj.attack_id,
        stix_id=obj.stix_id,
        name=obj.name,
        kind=obj.kind,
        domain=view.release.domain,
        attack_version=view.release.version,
        url=_url(obj),
        description=book.cite(obj.description, obj.raw.get("external_references")),
        version=obj.version,
        created=obj.created,
        modified=obj.modified,
        status=Status(
            revoked=obj.revoked,
            deprecated=obj.deprecated,
            revoked_by=revoked_by,
            resolved_from=found.resolved_from,
        ),
        contributors=_strings(obj.raw.get("x_mitre_contributors")),
    )


def _related(
    view: ReleaseView,
    rels: list[Relationship],
    book: ReferenceBook,
    *,
    far_end: str,
    kinds: tuple[str, ...] | None = None,
) -> list[Related]:
    """The objects at the other end of ``rels`` (active ones only), with each relationship's
    text; citations are numbered in the sorted display order."""
    ends = view.objects({getattr(r, far_end) for r in rels})
    pairs = []
    for rel in rels:
        obj = ends.get(getattr(rel, far_end))
        if obj is None or obj.revoked or obj.deprecated:
            continue
        if kinds and obj.kind not in kinds:
            continue
        pairs.append((ref(obj), rel))
    pairs.sort(key=lambda p: _sort_key(p[0]))
    return [
        Related(ref=r, description=book.cite(rel.description, rel.raw.get("external_references")))
        for r, rel in pairs
    ]


def _by_type(items: list[Related], *kinds: str) -> list[Related]:
    return [item for item in items if item.ref.kind in kinds]


def tactic_order(view: ReleaseView) -> dict[str, tuple[int, AttackObject]]:
    """Tactic shortname -> (position in the matrix, tactic); current matrices first."""
    tactics = {t.stix_id: t for t in view.of_kind("tactic")}
    matrices = sorted(view.of_kind("matrix"), key=lambda m: m.deprecated)
    order: dict[str, tuple[int, AttackObject]] = {}
    for matrix in matrices:
        for sid in _strings(matrix.raw.get("tactic_refs")):
            tactic = tactics.get(sid)
            short = tactic.raw.get("x_mitre_shortname") if tactic else None
            if tactic and isinstance(short, str) and short not in order:
                order[short] = (len(order), tactic)
    for tactic in tactics.values():
        short = tactic.raw.get("x_mitre_shortname")
        if isinstance(short, str) and short not in order:
            order[short] = (len(order), tactic)
    return order


def _phases(obj: AttackObject) -> list[str]:
    phases = obj.raw.get("kill_chain_phases") or []
    return [
        p["phase_name"]
        for p in phases
        if isinstance(p, dict) and p.get("kill_chain_name") in KILL_CHAINS and p.get("phase_name")
    ]


def _tactics(view: ReleaseView, obj: AttackObject) -> list[TacticRef]:
    order = tactic_order(view)
    refs = []
    for short in _phases(obj):
        position, tactic = order.get(short, (len(order), None))
        refs.append(
            (
                position,
                TacticRef(
                    tactic.attack_id if tactic else None, short, tactic.name if tactic else None
                ),
            )
        )
    return [r for _, r in sorted(refs, key=lambda item: item[0])]


def _analytic(view: ReleaseView, analytic: AttackObject, book: ReferenceBook) -> AnalyticDoc:
    sources = [
        s for s in analytic.raw.get("x_mitre_log_source_references") or [] if isinstance(s, dict)
    ]
    components = view.objects({s.get("x_mitre_data_component_ref", "") for s in sources})
    log_sources = []
    for source in sources:
        component = components.get(source.get("x_mitre_data_component_ref", ""))
        log_sources.append(
            LogSource(
                data_component=ref(component) if component else None,
                name=source.get("name"),
                channel=source.get("channel"),
            )
        )
    elements = [
        MutableElement(field=str(e.get("field", "")), description=str(e.get("description", "")))
        for e in analytic.raw.get("x_mitre_mutable_elements") or []
        if isinstance(e, dict)
    ]
    return AnalyticDoc(
        ref=ref(analytic),
        description=book.cite(analytic.description, analytic.raw.get("external_references")),
        platforms=_strings(analytic.raw.get("x_mitre_platforms")),
        log_sources=log_sources,
        mutable_elements=elements,
    )


def _strategy(
    view: ReleaseView, strategy: AttackObject, book: ReferenceBook
) -> DetectionStrategySummary:
    analytic_ids = _strings(strategy.raw.get("x_mitre_analytic_refs"))
    analytics = view.objects(analytic_ids)
    return DetectionStrategySummary(
        ref=ref(strategy),
        analytics=[_analytic(view, analytics[a], book) for a in analytic_ids if a in analytics],
    )


def _data_source_of(view: ReleaseView, component: AttackObject) -> ObjectRef | None:
    source_id = component.raw.get("x_mitre_data_source_ref")
    source = view.get(source_id) if isinstance(source_id, str) and source_id else None
    return ref(source) if source else None


def _data_components(
    view: ReleaseView,
    detects: list[Relationship],
    strategies: list[DetectionStrategySummary],
    book: ReferenceBook,
) -> list[DataComponentUse]:
    """Data components that see the technique: the ``detects`` relationships of ATT&CK ≤ v17,
    and the log sources of the v18 analytics."""
    uses: dict[str, DataComponentUse] = {}
    for item in _related(view, detects, book, far_end="source_ref", kinds=("data-component",)):
        component = view.get(item.ref.stix_id)
        assert component is not None
        uses[item.ref.stix_id] = DataComponentUse(
            item.ref, _data_source_of(view, component), item.description, "detects relationship"
        )
    for strategy in strategies:
        for analytic in strategy.analytics:
            for source in analytic.log_sources:
                dc = source.data_component
                if dc is None or dc.stix_id in uses:
                    continue
                component = view.get(dc.stix_id)
                data_source = _data_source_of(view, component) if component else None
                uses[dc.stix_id] = DataComponentUse(
                    dc, data_source, "", f"analytic {analytic.ref.id} ({strategy.ref.id})"
                )
    return sorted(uses.values(), key=lambda u: _sort_key(u.ref))


def technique_doc(found: Found) -> TechniqueDoc:
    view, obj = found.view, found.obj
    book = ReferenceBook()
    common = _common(found, obj, book)
    incoming = view.rels(target=obj.stix_id)
    outgoing = view.rels(source=obj.stix_id)
    procedures = _related(
        view,
        [r for r in incoming if r.relationship_type == "uses"],
        book,
        far_end="source_ref",
    )
    mitigations = _related(
        view,
        [r for r in incoming if r.relationship_type == "mitigates"],
        book,
        far_end="source_ref",
    )
    parent_links = [r for r in outgoing if r.relationship_type == "subtechnique-of"]
    parent = view.get(parent_links[0].target_ref) if parent_links else None
    subs = view.objects(
        {r.source_ref for r in incoming if r.relationship_type == "subtechnique-of"}
    )
    detects = [r for r in incoming if r.relationship_type == "detects"]
    strategy_objs = view.objects({r.source_ref for r in detects})
    strategies = [
        _strategy(view, s, book)
        for s in sorted(strategy_objs.values(), key=lambda s: s.attack_id or "")
        if s.kind == "detection-strategy" and not s.revoked and not s.deprecated
    ]
    legacy = obj.raw.get("x_mitre_detection")
    return TechniqueDoc(
        common=common,
        tactics=_tactics(view, obj),
        platforms=_strings(obj.raw.get("x_mitre_platforms")),
        is_subtechnique=bool(obj.raw.get("x_mitre_is_subtechnique")),
        parent=ref(parent) if parent else None,
        subtechniques=sorted(
            (ref(s) for s in subs.values() if not s.revoked and not s.deprecated), key=_sort_key
        ),
        attributes={
            k.removeprefix("x_mitre_"): v
            for k, v in sorted(obj.raw.items())
            if k.startswith("x_mitre_") and k not in _SHOWN_FIELDS
        },
        groups=_by_type(procedures, "group"),
        software=_by_type(procedures, "software"),
        campaigns=_by_type(procedures, "campaign"),
        mitigations=mitigations,
        detection_strategies=strategies,
        data_components=_data_components(view, detects, strategies, book),
        legacy_detection=book.cite(
            legacy if isinstance(legacy, str) else "", obj.raw.get("external_references")
        ),
        references=book.references,
        mappings=technique_mappings_or_empty(
            view.store, obj.attack_id or obj.stix_id, view.release.version, view.release.domain
        ),
    )


def _aliases(obj: AttackObject) -> list[str]:
    names = _strings(obj.raw.get("aliases")) or _strings(obj.raw.get("x_mitre_aliases"))
    return [a for a in names if a != obj.name]


def group_doc(found: Found) -> GroupDoc:
    view, obj = found.view, found.obj
    book = ReferenceBook()
    common = _common(found, obj, book)
    used = _related(
        view, view.rels(source=obj.stix_id, relationship_type="uses"), book, far_end="target_ref"
    )
    campaigns = _related(
        view,
        view.rels(target=obj.stix_id, relationship_type="attributed-to"),
        book,
        far_end="source_ref",
    )
    return GroupDoc(
        common=common,
        aliases=_aliases(obj),
        techniques=_by_type(used, "technique"),
        software=_by_type(used, "software"),
        campaigns=campaigns,
        references=book.references,
    )


def software_doc(found: Found) -> SoftwareDoc:
    view, obj = found.view, found.obj
    book = ReferenceBook()
    common = _common(found, obj, book)
    techniques = _related(
        view,
        view.rels(source=obj.stix_id, relationship_type="uses"),
        book,
        far_end="target_ref",
        kinds=("technique",),
    )
    users = _related(
        view, view.rels(target=obj.stix_id, relationship_type="uses"), book, far_end="source_ref"
    )
    return SoftwareDoc(
        common=common,
        software_type=obj.type,
        aliases=_aliases(obj),
        platforms=_strings(obj.raw.get("x_mitre_platforms")),
        techniques=techniques,
        groups=_by_type(users, "group"),
        campaigns=_by_type(users, "campaign"),
        references=book.references,
    )


def campaign_doc(found: Found) -> CampaignDoc:
    view, obj = found.view, found.obj
    book = ReferenceBook()
    common = _common(found, obj, book)
    attributed = _related(
        view,
        view.rels(source=obj.stix_id, relationship_type="attributed-to"),
        book,
        far_end="target_ref",
    )
    used = _related(
        view, view.rels(source=obj.stix_id, relationship_type="uses"), book, far_end="target_ref"
    )
    first, last = obj.raw.get("first_seen"), obj.raw.get("last_seen")
    return CampaignDoc(
        common=common,
        aliases=_aliases(obj),
        first_seen=first if isinstance(first, str) else None,
        last_seen=last if isinstance(last, str) else None,
        attributed_to=attributed,
        techniques=_by_type(used, "technique"),
        software=_by_type(used, "software"),
        references=book.references,
    )


def mitigation_doc(found: Found) -> MitigationDoc:
    view, obj = found.view, found.obj
    book = ReferenceBook()
    common = _common(found, obj, book)
    techniques = _related(
        view,
        view.rels(source=obj.stix_id, relationship_type="mitigates"),
        book,
        far_end="target_ref",
    )
    return MitigationDoc(common=common, techniques=techniques, references=book.references)


def tactic_doc(found: Found) -> TacticDoc:
    view, obj = found.view, found.obj
    book = ReferenceBook()
    common = _common(found, obj, book)
    short = str(obj.raw.get("x_mitre_shortname") or "")
    position = tactic_order(view).get(short, (None, None))[0]
    techniques = [
        t
        for t in view.of_kind("technique")
        if short in _phases(t) and not t.revoked and not t.deprecated
    ]
    parents = sorted(
        (t for t in techniques if not t.raw.get("x_mitre_is_subtechnique")),
        key=lambda t: t.attack_id or "",
    )
    subs_by_parent: dict[str, list[ObjectRef]] = {}
    for sub in techniques:
        if sub.raw.get("x_mitre_is_subtechnique") and sub.attack_id:
            subs_by_parent.setdefault(sub.attack_id.split(".")[0], []).append(ref(sub))
    return TacticDoc(
        common=common,
        shortname=short,
        position=None if position is None else position + 1,
        techniques=[
            TacticTechnique(
                ref(p), sorted(subs_by_parent.get(p.attack_id or "", []), key=_sort_key)
            )
            for p in parents
        ],
        references=book.references,
    )


def _log_sources(obj: AttackObject) -> list[LogSource]:
    return [
        LogSource(data_component=None, name=s.get("name"), channel=s.get("channel"))
        for s in obj.raw.get("x_mitre_log_sources") or []
        if isinstance(s, dict)
    ]


def data_component_doc(found: Found) -> DataComponentDoc:
    """Techniques are reached through ``detects`` (≤ v17) or through the v18 analytics that
    name this component as a log source and the detection strategies holding them."""
    view, obj = found.view, found.obj
    book = ReferenceBook()
    common = _common(found, obj, book)
    techniques = _related(
        view,
        view.rels(source=obj.stix_id, relationship_type="detects"),
        book,
        far_end="target_ref",
        kinds=("technique",),
    )
    analytics = [
        a
        for a in view.mentioning("analytic", [obj.stix_id])
        if any(
            isinstance(s, dict) and s.get("x_mitre_data_component_ref") == obj.stix_id
            for s in a.raw.get("x_mitre_log_source_references") or []
        )
    ]
    analytic_ids = {a.stix_id for a in analytics}
    strategies = [
        s
        for s in view.mentioning("detection-strategy", sorted(analytic_ids))
        if analytic_ids.intersection(_strings(s.raw.get("x_mitre_analytic_refs")))
    ]
    seen = {t.ref.stix_id for t in techniques}
    for strategy in strategies:
        for item in _related(
            view,
            view.rels(source=strategy.stix_id, relationship_type="detects"),
            book,
            far_end="target_ref",
        ):
            if item.ref.stix_id not in seen:
                seen.add(item.ref.stix_id)
                techniques.append(Related(item.ref, f"via detection strategy {strategy.attack_id}"))
    return DataComponentDoc(
        common=common,
        data_source=_data_source_of(view, obj),
        log_sources=_log_sources(obj),
        techniques=sorted(techniques, key=_sort_key),
        analytics=sorted((ref(a) for a in analytics), key=_sort_key),
        references=book.references,
    )


def detection_strategy_doc(found: Found) -> DetectionStrategyDoc:
    view, obj = found.view, found.obj
    book = ReferenceBook()
    common = _common(found, obj, book)
    targets = view.objects(
        {r.target_ref for r in view.rels(source=obj.stix_id, relationship_type="detects")}
    )
    summary = _strategy(view, obj, book)
    return DetectionStrategyDoc(
        common=common,
        techniques=sorted((ref(t) for t in targets.values()), key=_sort_key),
        analytics=summary.analytics,
        references=book.references,
    )


BUILDERS: dict[str, tuple[tuple[str, ...], Any]] = {
    "technique": (("technique",), technique_doc),
    "group": (("group",), group_doc),
    "software": (("software",), software_doc),
    "campaign": (("campaign",), campaign_doc),
    "mitigation": (("mitigation",), mitigation_doc),
    "tactic": (("tactic",), tactic_doc),
    "data-component": (("data-component",), data_component_doc),
    "detection-strategy": (("detection-strategy",), detection_strategy_doc),
}


def describe(
    store: Store,
    kind: str,
    ident: str,
    attack_version: str | None = None,
    domain: str | None = None,
) -> Any:
    """The document for ``ident`` of ``kind`` (``technique``, ``group`` ...)."""
    kinds, builder = BUILDERS[kind]
    return builder(find_object(store, ident, kinds, attack_version, domain))
