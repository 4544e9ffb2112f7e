"""`/api/v1/…`: the CLI's ``--json`` documents over HTTP, same envelope, same kinds.

Every parameter is bounded (length, pattern, choice); a bad one is a 400 naming it, an
unknown id a 404, both as the JSON error shape of ``docs/json-output.md``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response

from defensemap.errors import InputError, NotFoundError
from defensemap.kb.documents import envelope, to_json
from defensemap.web.context import json_response, web

if TYPE_CHECKING:
    from defensemap.library.loader import Library
    from defensemap.model.coverage import ControlInPlace, CoverageReport, DeployedRule
    from defensemap.store.db import Store

router = APIRouter(prefix="/api/v1", tags=["api"])

MAX_ACTORS = 20
MAX_LIST = 20
MAX_ITEM = 100

VersionQuery = Annotated[
    str | None, Query(max_length=16, pattern=r"^v?\d+(\.\d+)*$", description="e.g. 16.1")
]
IdPath = Annotated[str, Path(min_length=1, max_length=MAX_ITEM, description="Id or exact name.")]
FrameworkName = Annotated[
    str, Path(max_length=40, pattern=r"^[A-Za-z0-9_.\-]+$", description="e.g. nist_800_53, m365.")
]
FrameworkQuery = Annotated[
    str | None, Query(max_length=40, pattern=r"^[A-Za-z0-9_.\- ]+$", description="e.g. m365.")
]
FrameworkVersionQuery = Annotated[
    str | None, Query(max_length=40, pattern=r"^[A-Za-z0-9_./\- ]+$", description="e.g. rev5.")
]
SearchKind = Literal[
    "technique",
    "group",
    "software",
    "campaign",
    "mitigation",
    "tactic",
    "data-component",
    "data-source",
    "detection-strategy",
    "analytic",
    "capability",
    "sigma-rule",
]
Domain = Literal["enterprise", "mobile", "ics"]
DiffKind = Literal[
    "technique",
    "group",
    "software",
    "campaign",
    "mitigation",
    "tactic",
    "data-component",
    "detection-strategy",
]
MappedOnQuery = Annotated[
    str | None,
    Query(max_length=16, pattern=r"^\d+(\.\d+)*$", description="ATT&CK version of the set."),
]
TextList = Annotated[list[str] | None, Query(description=f"Repeatable; at most {MAX_LIST}.")]

DESCRIBED = {
    "group": ("groups", "A group: aliases, techniques and software it uses, campaigns."),
    "software": ("software", "Malware or a tool: techniques, groups and campaigns."),
    "campaign": ("campaigns", "A campaign: attribution, dates, techniques and software."),
    "mitigation": ("mitigations", "A mitigation and the techniques it addresses."),
    "tactic": ("tactics", "A tactic and its techniques in matrix order."),
    "data-component": ("data-components", "A data component: log sources and techniques."),
    "detection-strategy": ("detection-strategies", "An ATT&CK v18 detection strategy."),
}


def _ok(request: Request, kind: str, data: Any) -> Response:
    return json_response(request, envelope(kind, data))


@router.get("/status", summary="What is loaded")
def status(request: Request) -> Response:
    """What is loaded: ATT&CK releases, mapping sets, and what to run next."""
    from defensemap.kb.status import status as build

    return _ok(request, "status", to_json(build(web(request).settings)))


@router.get("/search", summary="Search every object kind")
def search(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=200, description="Words, an id or a name.")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    kind: Annotated[list[SearchKind] | None, Query(description="Only these kinds.")] = None,
    attack_version: VersionQuery = None,
) -> Response:
    """Ranked search: exact ids, exact names and aliases, then full text."""
    from defensemap.kb.search import search as run

    kinds: list[str] | None = list(kind) if kind else None
    with web(request).store() as store:
        results = run(store, q, limit=limit, kinds=kinds, attack_version=attack_version)
    return _ok(request, "search", {"query": q, "results": [to_json(r) for r in results]})


@router.get("/techniques/{technique_id}", summary="A technique")
def technique(
    request: Request, technique_id: IdPath, attack_version: VersionQuery = None
) -> Response:
    """Everything the technique page shows, as the `technique` JSON document."""
    from defensemap.web.documents import technique_document

    context = web(request)
    with context.store() as store:
        doc = technique_document(store, context.library(), technique_id, attack_version)
    return _ok(request, "technique", to_json(doc))


def describe_document(store: Store, kind: str, ident: str, attack_version: str | None) -> Any:
    """The CLI's document for an ATT&CK object other than a technique."""
    from defensemap.kb.attack import describe

    return describe(store, kind, ident.strip(), attack_version, None)


def _describe_endpoint(kind: str) -> Callable[..., Response]:
    def endpoint(request: Request, ident: IdPath, attack_version: VersionQuery = None) -> Response:
        with web(request).store() as store:
            doc = describe_document(store, kind, ident, attack_version)
        return _ok(request, kind, to_json(doc))

    return endpoint


for _kind, (_prefix, _summary) in DESCRIBED.items():
    router.add_api_route(
        f"/{_prefix}/{{ident}}",
        _describe_endpoint(_kind),
        methods=["GET"],
        summary=_summary,
        name=_kind,
    )


def known_framework(store: Store, name: str | None, parameter: str) -> str | None:
    """A framework filter must name a loaded framework: else a 400 naming the parameter."""
    from defensemap.kb.mappings import normalize_framework
    from defensemap.store.mappings import list_sets

    if name is None:
        return None
    try:
        return normalize_framework(store, name, list_sets(store))
    except NotFoundError as error:
        raise InputError(f"{parameter}: {error.message}", hint=error.hint) from error


@router.get("/techniques/{technique_id}/mappings", summary="What counters a technique")
def mappings(
    request: Request,
    technique_id: IdPath,
    framework: FrameworkQuery = None,
    framework_version: FrameworkVersionQuery = None,
    attack_version: VersionQuery = None,
) -> Response:
    """Every mapped capability per framework (the newest set of each), as `mappings`."""
    from defensemap.kb.mappings import technique_mappings

    with web(request).store() as store:
        blocks = technique_mappings(
            store,
            technique_id,
            attack_version=attack_version,
            framework=known_framework(store, framework, "framework"),
            framework_version=framework_version,
        )
    data = {"technique": technique_id, "frameworks": [to_json(b) for b in blocks]}
    return _ok(request, "mappings", data)


@router.get("/capabilities/{framework}/{capability_id:path}", summary="A mapped capability")
def capability(
    request: Request,
    framework: FrameworkName,
    capability_id: IdPath,
    framework_version: FrameworkVersionQuery = None,
    mapped_on: MappedOnQuery = None,
    attack_version: VersionQuery = None,
) -> Response:
    """The capability and every technique it maps to, per mapping type, as `capability`."""
    from defensemap.kb.mappings import capability as find

    with web(request).store() as store:
        docs = find(
            store,
            capability_id.rstrip("/"),  # VERIS ids hold "/"; a trailing one is not the id
            framework=framework,
            framework_version=framework_version,
            mapped_on=mapped_on,
            attack_version=attack_version,
        )
    return _ok(request, "capability", [to_json(d) for d in docs])


@router.get("/frameworks", summary="Loaded frameworks")
def frameworks(request: Request) -> Response:
    """Loaded frameworks, their mapping sets and counts, as `frameworks`."""
    from defensemap.kb.mappings import frameworks as summaries

    with web(request).store() as store:
        found = summaries(store)
    return _ok(request, "frameworks", [to_json(s) for s in found])


@router.get("/frameworks/{framework}", summary="A framework")
def framework(
    request: Request,
    framework: FrameworkName,
    framework_version: FrameworkVersionQuery = None,
    mapped_on: MappedOnQuery = None,
    domain: Domain | None = None,
) -> Response:
    """Capability groups → capabilities, and what was judged non-mappable, as `framework`."""
    from defensemap.kb.lookup import normalize_domain
    from defensemap.kb.mappings import framework_doc

    with web(request).store() as store:
        doc = framework_doc(
            store,
            framework,
            framework_version=framework_version,
            mapped_on=mapped_on,
            domain=normalize_domain(domain),
        )
    return _ok(request, "framework", to_json(doc))


# --- detections ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectionList:
    """The `detections` document: summaries plus what the list leaves out and why."""

    detections: list[Any]
    notes: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"detections": [to_json(s) for s in self.detections], "notes": self.notes}


def detection_list(
    store: Store,
    library: Library,
    technique: str | None,
    platform: str | None,
    severity: str | None,
    source: str,
) -> DetectionList:
    """The library and (when asked) the community rules, filtered as `defensemap detections`."""
    from defensemap.kb.detections import DetectionFilter, community_notes, list_detections

    wanted = DetectionFilter(technique, platform, severity, source)
    ours = library.detections if source != "community" else []
    return DetectionList(list_detections(store, ours, wanted), community_notes(store, wanted))


@router.get("/detections", summary="Detections: library and community")
def detections(
    request: Request,
    technique: Annotated[str | None, Query(max_length=16, pattern=r"^[Tt]\d{4}(\.\d{3})?$")] = None,
    platform: Annotated[str | None, Query(max_length=40)] = None,
    severity: Annotated[
        str | None,
        Query(pattern=r"^(?i:informational|low|medium|high|critical)\+?$", max_length=16),
    ] = None,
    source: Literal["ours", "community", "all"] = "ours",
) -> Response:
    """Our detections, and with `source=community|all` the imported SigmaHQ rules."""
    context = web(request)
    with context.store() as store:
        found = detection_list(store, context.library(), technique, platform, severity, source)
    return _ok(request, "detections", found.to_json())


@router.get("/detections/{detection_id}", summary="A detection or community rule")
def detection(
    request: Request, detection_id: IdPath, attack_version: VersionQuery = None
) -> Response:
    """One detection with its conversion support matrix (kind `detection`), or a community
    rule with its attribution, as `defensemap detection ID --json`."""
    from defensemap.kb.detections import community_rule_doc, detection_doc
    from defensemap.library.convert import support_matrix

    library = web(request).library()
    with web(request).store() as store:
        if not library.has(detection_id):
            rule = community_rule_doc(store, detection_id.strip(), attack_version)
            return _ok(request, rule.kind_name, rule.to_json())
        loaded = library.get(detection_id)
        doc = detection_doc(store, loaded, attack_version)
    support = support_matrix([loaded.detection])
    data = {**doc.to_json(), "support_matrix": [row.to_json() for row in support]}
    return _ok(request, doc.kind_name, data)


# --- coverage -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoverageQuery:
    """A coverage request: the threat profile and the what-ifs, bounded for a web request."""

    groups: list[str] = field(default_factory=list)
    campaigns: list[str] = field(default_factory=list)
    software: list[str] = field(default_factory=list)
    tactics: list[str] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)
    cves: list[str] = field(default_factory=list)
    kev: bool = False
    detections: list[str] = field(default_factory=list)
    framework_all: list[str] = field(default_factory=list)

    def check(self) -> None:
        actors = len(self.groups) + len(self.campaigns) + len(self.software)
        if actors > MAX_ACTORS:
            raise InputError(f"group/campaign/software: at most {MAX_ACTORS} actors, not {actors}")
        for name, values in vars(self).items():
            if isinstance(values, list):
                _bounded(name, values)

    def selection(self) -> dict[str, Any]:
        return {
            "groups": self.groups,
            "campaigns": self.campaigns,
            "software": self.software,
            "tactics": self.tactics,
            "platforms": self.platforms,
            "cves": self.cves,
            "kev": self.kev,
        }


def _bounded(name: str, values: list[str]) -> None:
    if len(values) > MAX_LIST:
        raise InputError(f"{name}: at most {MAX_LIST} values, not {len(values)}")
    for value in values:
        if not value.strip() or len(value) > MAX_ITEM:
            raise InputError(f"{name}: each value must be 1–{MAX_ITEM} characters")


def _controls(store: Store, frameworks: list[str]) -> list[ControlInPlace]:
    """The saved controls, plus every capability of the what-if frameworks, implemented."""
    from defensemap.coverage.inputs import framework_controls
    from defensemap.store.coverage import saved_controls

    found = saved_controls(store)
    for name in frameworks:
        found += framework_controls(store, name)
    return found


def _rules(store: Store, library: Library, detections: list[str]) -> list[DeployedRule]:
    """The saved rule sets, plus the library detections asked for (``all`` or ids)."""
    from defensemap.coverage.inputs import library_rules
    from defensemap.store.coverage import saved_rules

    wanted = [d.strip() for d in detections]
    found: list[DeployedRule] = []
    if wanted and wanted != ["none"]:
        found += library_rules(library, ids=None if wanted == ["all"] else wanted)
    return found + saved_rules(store)


def coverage_report(
    store: Store, library: Library, query: CoverageQuery, attack_version: str | None
) -> CoverageReport:
    """`defensemap coverage` with the saved controls and rule sets (no files: the web
    reads nothing but the store), plus the query's what-ifs."""
    from defensemap.coverage.compute import compute_coverage
    from defensemap.kb.lookup import select_releases
    from defensemap.kb.threat import resolve_profile
    from defensemap.model.coverage import CoverageInputs
    from defensemap.store.coverage import atomic_tests

    query.check()
    if not any(query.selection().values()):
        raise InputError(
            "no threat profile given",
            hint="name adversaries with group=/campaign=/software=, or select with "
            "tactic=/platform=/cve=/kev=true",
        )
    version = select_releases(store, attack_version, "enterprise-attack")[0].version
    profile = resolve_profile(store, **query.selection(), attack_version=version)
    inputs = CoverageInputs(
        attack_version=version,
        profile=profile,
        controls=tuple(_controls(store, query.framework_all)),
        rules=tuple(_rules(store, library, query.detections)),
    )
    return compute_coverage(store, inputs, atomics=atomic_tests(store), library=library)


@router.get("/coverage", summary="Coverage of a threat profile")
def coverage(
    request: Request,
    group: TextList = None,
    campaign: TextList = None,
    software: TextList = None,
    tactic: TextList = None,
    platform: TextList = None,
    cve: TextList = None,
    kev: bool = False,
    detections: Annotated[
        list[str] | None, Query(description="Library detections deployed: all, none or ids.")
    ] = None,
    framework_all: TextList = None,
    attack_version: VersionQuery = None,
) -> Response:
    """Scores, ranked gaps and next steps for the profile, with the saved controls and rule
    sets, as `defensemap coverage --json`; at most 20 actors."""
    from defensemap.coverage.document import coverage_json

    query = CoverageQuery(
        group or [],
        campaign or [],
        software or [],
        tactic or [],
        platform or [],
        cve or [],
        kev,
        detections or [],
        framework_all or [],
    )
    context = web(request)
    with context.store() as store:
        report = coverage_report(store, context.library(), query, attack_version)
    return _ok(request, "coverage", coverage_json(report))


# --- versions -----------------------------------------------------------------------------------


@router.get("/attack/diff", summary="What changed between two ATT&CK versions")
def attack_diff(
    request: Request,
    old: Annotated[str, Query(max_length=16, pattern=r"^v?\d+(\.\d+)*$", description="e.g. 16.1")],
    new: Annotated[str, Query(max_length=16, pattern=r"^v?\d+(\.\d+)*$", description="e.g. 18.1")],
    domain: Domain = "enterprise",
    kind: DiffKind = "technique",
) -> Response:
    """Added, removed, revoked, deprecated, renamed and changed objects, as `attack-diff`."""
    from defensemap.kb.diff import diff

    with web(request).store() as store:
        doc = diff(store, old, new, domain, kind)
    return _ok(request, "attack-diff", to_json(doc))
