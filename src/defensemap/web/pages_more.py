"""Pages around the technique page: capabilities and frameworks (Mappings Explorer's views),
the other ATT&CK objects, the detection list, the coverage heat map and version diffs.

Every page renders a document the CLI builds (through the same functions as `web/api.py`);
this module only arranges them for templates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from defensemap.web.api import (
    DESCRIBED,
    MAX_ACTORS,
    CoverageQuery,
    Domain,
    FrameworkName,
    FrameworkVersionQuery,
    IdPath,
    MappedOnQuery,
    VersionQuery,
    coverage_report,
    describe_document,
    detection_list,
)
from defensemap.web.context import web

if TYPE_CHECKING:
    from collections.abc import Callable

    from defensemap.export.coverage import Matrix, MatrixTechnique
    from defensemap.kb.documents import Related
    from defensemap.library.loader import Library
    from defensemap.model.coverage import CoverageReport
    from defensemap.store.db import Store

router = APIRouter(include_in_schema=False)

DEFAULT_GROUP = "G0016"
ProfileList = Annotated[list[str] | None, Query(max_length=MAX_ACTORS)]


def _versions(store: Store, domain: str) -> list[str]:
    """The loaded ATT&CK versions of a domain, newest first (the version switcher)."""
    from defensemap.store.attack import list_releases

    return [r.version for r in list_releases(store) if r.domain == domain]


# --- Mappings Explorer views ------------------------------------------------------------------


@router.get("/capabilities/{framework}/{capability_id:path}")
def capability_page(
    request: Request,
    framework: FrameworkName,
    capability_id: IdPath,
    framework_version: FrameworkVersionQuery = None,
    mapped_on: MappedOnQuery = None,
    attack_version: VersionQuery = None,
) -> Response:
    """A capability and every technique it maps to, per mapping type."""
    from defensemap.kb.mappings import capability

    context = web(request)
    with context.store() as store:
        docs = capability(
            store,
            capability_id.rstrip("/"),  # VERIS ids hold "/"; a trailing one is not the id
            framework=framework,
            framework_version=framework_version,
            mapped_on=mapped_on,
            attack_version=attack_version,
        )
    return context.page(request, "capability.html", docs=docs)


@router.get("/frameworks")
def frameworks_page(request: Request) -> Response:
    from defensemap.kb.mappings import frameworks

    context = web(request)
    with context.store() as store:
        summaries = frameworks(store)
    return context.page(request, "frameworks.html", frameworks=summaries)


@router.get("/frameworks/{framework}")
def framework_page(
    request: Request,
    framework: FrameworkName,
    framework_version: FrameworkVersionQuery = None,
    mapped_on: MappedOnQuery = None,
    domain: Domain | None = None,
) -> Response:
    """Capability groups → capabilities, and what the framework judged non-mappable."""
    from defensemap.kb.lookup import normalize_domain
    from defensemap.kb.mappings import framework_doc

    context = web(request)
    with context.store() as store:
        doc = framework_doc(
            store,
            framework,
            framework_version=framework_version,
            mapped_on=mapped_on,
            domain=normalize_domain(domain),
        )
    return context.page(request, "framework.html", doc=doc)


# --- ATT&CK objects -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TechniqueCounts:
    """The coverage column of an adversary page: what the library and the frameworks offer."""

    detections: int
    capabilities: int


def technique_counts(
    store: Store, library: Library, used: list[Related], attack_version: str | None, domain: str
) -> dict[str, TechniqueCounts]:
    """Detections and mapped capabilities for each technique a group, software or campaign
    uses (one mappings query for all of them)."""
    from defensemap.kb.mappings import mapping_counts

    idents = [item.ref.id or "" for item in used]
    mapped = mapping_counts(store, idents, attack_version, domain)
    return {i: TechniqueCounts(len(library.for_technique(i)), mapped[i]) for i in idents}


def _object_page(kind: str) -> Callable[..., Response]:
    def page(request: Request, ident: IdPath, attack_version: VersionQuery = None) -> Response:
        context = web(request)
        with context.store() as store:
            doc = describe_document(store, kind, ident, attack_version)
            versions = _versions(store, doc.common.domain)
            counts = (
                technique_counts(
                    store, context.library(), doc.techniques, attack_version, doc.common.domain
                )
                if kind in {"group", "software", "campaign"}
                else {}
            )
        return context.page(
            request, "attack_object.html", doc=doc, versions=versions, counts=counts
        )

    return page


for _kind, (_prefix, _summary) in DESCRIBED.items():
    router.add_api_route(f"/{_prefix}/{{ident}}", _object_page(_kind), methods=["GET"])


# --- detections ---------------------------------------------------------------------------------


@router.get("/detections")
def detections_page(
    request: Request,
    technique: Annotated[str, Query(max_length=16, pattern=r"^([Tt]\d{4}(\.\d{3})?)?$")] = "",
    platform: Annotated[str, Query(max_length=40)] = "",
    severity: Annotated[
        str, Query(max_length=16, pattern=r"^((?i:informational|low|medium|high|critical)\+?)?$")
    ] = "",
    source: Literal["ours", "community", "all"] = "ours",
) -> Response:
    """Our detections and the community rules, filtered by GET parameters (a plain form)."""
    context = web(request)
    with context.store() as store:
        found = detection_list(
            store,
            context.library(),
            technique or None,
            platform.strip() or None,
            severity or None,
            source,
        )
    filters = {"technique": technique, "platform": platform, "severity": severity, "source": source}
    return context.page(request, "detections.html", found=found, filters=filters)


# --- coverage -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatrixCell:
    """One heat-map cell: a technique, its score when in the profile, its colour band."""

    id: str
    name: str
    score: float | None
    band: str
    subtechniques: tuple[MatrixCell, ...] = ()


def _cell(technique: MatrixTechnique, scores: dict[str, float]) -> MatrixCell:
    from defensemap.export.coverage import score_bucket

    score = scores.get(technique.id)
    band = "out" if score is None else f"band-{score_bucket(score)}"
    subs = tuple(_cell(s, scores) for s in technique.subtechniques)
    return MatrixCell(technique.id, technique.name, score, band, subs)


def heat_map(report: CoverageReport, matrix: Matrix) -> list[tuple[str, list[MatrixCell]]]:
    """Tactic name → cells, in matrix order; techniques outside the profile have no score."""
    profile = report.inputs.profile.techniques()
    scores = {t.technique: t.score for t in report.techniques if t.technique in profile}
    return [
        (tactic.name, [_cell(t, scores) for t in tactic.techniques]) for tactic in matrix.tactics
    ]


def _split(values: list[str] | None) -> list[str]:
    """Form fields hold comma-separated ids; API-style repeated parameters work too."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def _default_profile(store: Store) -> list[str]:
    from defensemap.errors import NotFoundError

    try:
        describe_document(store, "group", DEFAULT_GROUP, None)
    except NotFoundError:
        return []
    return [DEFAULT_GROUP]


@router.get("/coverage")
def coverage_page(
    request: Request,
    group: ProfileList = None,
    campaign: ProfileList = None,
    software: ProfileList = None,
    attack_version: VersionQuery = None,
) -> Response:
    """A threat profile's coverage with the saved controls and rules, as an ATT&CK heat map;
    without a profile, APT29's (when loaded)."""
    from defensemap.coverage.summary import summarize
    from defensemap.export.coverage import attack_matrix

    context = web(request)
    query = CoverageQuery(_split(group), _split(campaign), _split(software))
    with context.store() as store:
        if not any(query.selection().values()):
            query = CoverageQuery(_default_profile(store))
        if not any(query.selection().values()):
            return context.page(request, "coverage.html", profile=query, report=None)
        report = coverage_report(store, context.library(), query, attack_version)
        matrix = attack_matrix(store, report.inputs.attack_version)
    return context.page(
        request,
        "coverage.html",
        profile=query,
        report=report,
        summary=summarize(report),
        tactics=heat_map(report, matrix),
    )


# --- versions -----------------------------------------------------------------------------------


def _diff_versions(store: Store, domain: str, old: str, new: str) -> tuple[str, str] | None:
    """The versions asked for, else the oldest and newest loaded (``None`` with fewer than two)."""
    versions = _versions(store, f"{domain}-attack")
    if old and new:
        return old, new
    if len(versions) < 2:
        return None
    return old or versions[-1], new or versions[0]


@router.get("/diff")
def diff_page(
    request: Request,
    old: Annotated[str, Query(max_length=16, pattern=r"^(v?\d+(\.\d+)*)?$")] = "",
    new: Annotated[str, Query(max_length=16, pattern=r"^(v?\d+(\.\d+)*)?$")] = "",
    domain: Domain = "enterprise",
    kind: Annotated[str, Query(pattern=r"^(technique|group|software|campaign|mitigation)$")] = (
        "technique"
    ),
) -> Response:
    """Added, revoked, renamed and changed objects between two ATT&CK versions."""
    from defensemap.kb.diff import diff

    context = web(request)
    doc: Any = None
    with context.store() as store:
        chosen = _diff_versions(store, domain, old, new)
        if chosen is not None:
            doc = diff(store, chosen[0], chosen[1], domain, kind)
    return context.page(request, "diff.html", doc=doc, domain=domain, kind=kind)
