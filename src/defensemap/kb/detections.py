"""How to detect a technique: defensemap's own detections and the community (SigmaHQ) rules, as
list summaries, full documents and the technique page's "How to detect it".

The library is a higher layer than the knowledge base, so callers pass the loaded detections
in; community rules come from the store. Community rules always carry their attribution
(author, Detection Rule License 1.1, link upstream).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from defensemap.errors import InputError, NotFoundError, StoreError
from defensemap.kb.attack import _tactics
from defensemap.kb.documents import Attribution, DetectionSummary, TacticRef, TechniqueDoc
from defensemap.kb.lookup import find_object
from defensemap.model.detection import Detection
from defensemap.model.sigma_rules import LICENCE, LICENCE_NAME, LICENCE_URL, CommunityRule
from defensemap.sources.detections import LoadedDetection
from defensemap.store import sigma as sigma_store
from defensemap.store.db import Store

OURS = "defensemap"
COMMUNITY = "sigmahq"
SOURCES = {"ours": (OURS,), "community": (COMMUNITY,), "all": (OURS, COMMUNITY)}
SEVERITIES = ("informational", "low", "medium", "high", "critical")


def _detection(item: LoadedDetection | Detection) -> Detection:
    return item.detection if isinstance(item, LoadedDetection) else item


def attribution(rule: CommunityRule) -> Attribution:
    author = rule.author or "an unnamed SigmaHQ contributor"
    return Attribution(
        author=author,
        licence=rule.licence,
        licence_url=LICENCE_URL,
        source_url=rule.source_url,
        text=f"“{rule.title}” by {author} (SigmaHQ), {LICENCE_NAME} ({LICENCE}): {rule.source_url}",
    )


def summary(item: LoadedDetection | Detection) -> DetectionSummary:
    d = _detection(item)
    return DetectionSummary(
        id=str(d.id),
        title=d.title,
        techniques=list(d.techniques),
        severity=d.severity,
        confidence=d.confidence.level if d.confidence else None,
        platforms=list(d.platforms),
        tables=list(d.required_tables),
        logsource=None,
        status=d.status,
        source=OURS,
    )


def community_summary(rule: CommunityRule) -> DetectionSummary:
    return DetectionSummary(
        id=rule.id,
        title=rule.title,
        techniques=list(rule.techniques),
        severity=rule.level,
        confidence=None,
        platforms=[rule.product] if rule.product else [],
        tables=[],
        logsource=rule.logsource or None,
        status=rule.status,
        source=COMMUNITY,
        attribution=attribution(rule),
    )


def _names_technique(techniques: Iterable[str], wanted: str) -> bool:
    """``T1059`` matches ``T1059`` and its sub-techniques; ``T1059.001`` only itself."""
    return any(t.upper() == wanted or t.upper().startswith(wanted + ".") for t in techniques)


def with_detections(
    store: Store, doc: TechniqueDoc, detections: Sequence[LoadedDetection | Detection]
) -> TechniqueDoc:
    """The technique page plus "How to detect it": our detections naming the technique (or
    one of its sub-techniques) and the community rules tagged with it."""
    technique = (doc.common.id or "").upper()
    ours = [summary(d) for d in detections if _names_technique(_detection(d).techniques, technique)]
    community = [community_summary(r) for r in sigma_store.list_rules(store, [technique])]
    return replace(doc, detections=ours, community_rules=_by_severity(community))


def _by_severity(items: list[DetectionSummary]) -> list[DetectionSummary]:
    """Most severe first (unknown levels last), then by title."""
    rank = {s: i for i, s in enumerate(reversed(SEVERITIES))}
    return sorted(items, key=lambda s: (rank.get(s.severity or "", len(rank)), s.title.casefold()))


# --- lists -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectionFilter:
    """``detections`` options; each given criterion must hold."""

    technique: str | None = None
    platform: str | None = None
    severity: str | None = None
    source: str = "ours"

    def sources(self) -> tuple[str, ...]:
        if self.source not in SOURCES:
            raise InputError(f"unknown source {self.source!r}", hint="use ours, community or all")
        return SOURCES[self.source]

    def severities(self) -> tuple[str, ...]:
        """``high`` is that severity, ``high+`` that one and above."""
        if self.severity is None:
            return SEVERITIES
        name = self.severity.strip().lower()
        at_least = name.endswith("+")
        name = name.rstrip("+")
        if name not in SEVERITIES:
            raise InputError(
                f"unknown severity {self.severity!r}",
                hint=f"use one of {', '.join(SEVERITIES)}, optionally with + (high+)",
            )
        return SEVERITIES[SEVERITIES.index(name) :] if at_least else (name,)

    def keeps(self, item: DetectionSummary, severities: tuple[str, ...]) -> bool:
        if self.technique and not _names_technique(item.techniques, self.technique.upper()):
            return False
        if self.platform and self.platform.casefold() not in {p.casefold() for p in item.platforms}:
            return False
        return item.severity in severities


def list_detections(
    store: Store | None,
    detections: Sequence[LoadedDetection | Detection],
    wanted: DetectionFilter,
) -> list[DetectionSummary]:
    """Our detections (library order), then community rules (most severe first) when asked
    for and imported (``store`` is ``None`` when there is no store yet)."""
    sources, severities = wanted.sources(), wanted.severities()
    found: list[DetectionSummary] = []
    if OURS in sources:
        found += [summary(d) for d in detections]
    if COMMUNITY in sources and store is not None:
        techniques = [wanted.technique] if wanted.technique else []
        community = [community_summary(r) for r in sigma_store.list_rules(store, techniques)]
        found += _by_severity(community)
    return [s for s in found if wanted.keeps(s, severities)]


# --- full documents ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TechniqueRef:
    """A technique a detection names, as the loaded ATT&CK knows it: ``status`` is ``current``,
    ``revoked`` (``name``/``tactics`` are its replacement ``id``'s), ``missing`` (not in the
    loaded ATT&CK) or ``unchecked`` (no ATT&CK loaded)."""

    id: str
    name: str | None
    tactics: list[TacticRef]
    status: str
    current_id: str | None = None


@dataclass(frozen=True)
class DetectionDoc:
    """Every field of one of our detections, plus its techniques and tactics resolved in
    the knowledge base."""

    detection: Detection
    path: str
    technique_refs: list[TechniqueRef]
    tactics: list[TacticRef]
    source: str = OURS
    kind_name: str = field(default="detection", init=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "path": self.path,
            **self.detection.model_dump(mode="json"),
            "technique_refs": [asdict(t) for t in self.technique_refs],
            "tactics": [asdict(t) for t in self.tactics],
        }


@dataclass(frozen=True)
class CommunityRuleDoc:
    """A SigmaHQ rule with everything it says, its YAML as written and its attribution."""

    id: str
    title: str
    description: str
    status: str | None
    level: str | None
    author: str
    date: str | None
    modified: str | None
    logsource: dict[str, str | None]
    technique_refs: list[TechniqueRef]
    tactics: list[str]
    tags: list[str]
    references: list[str]
    false_positives: list[str]
    path: str
    yaml: str
    attribution: Attribution
    source: str = COMMUNITY
    kind_name: str = field(default="community-rule", init=False)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("kind_name")
        return data


def _technique_ref(
    store: Store | None, technique: str, attack_version: str | None, domain: str | None
) -> TechniqueRef:
    if store is None:
        return TechniqueRef(technique, None, [], "unchecked")
    try:
        found = find_object(store, technique, ("technique",), attack_version, domain)
    except NotFoundError:
        return TechniqueRef(technique, None, [], "missing")
    except StoreError:
        return TechniqueRef(technique, None, [], "unchecked")
    status = "revoked" if found.resolved_from else "current"
    current = found.obj.attack_id if found.resolved_from else None
    return TechniqueRef(technique, found.obj.name, _tactics(found.view, found.obj), status, current)


def technique_refs(
    store: Store | None,
    techniques: Iterable[str],
    attack_version: str | None = None,
    domain: str | None = None,
) -> list[TechniqueRef]:
    return [_technique_ref(store, t, attack_version, domain) for t in techniques]


def _tactics_of(refs: Iterable[TechniqueRef]) -> list[TacticRef]:
    """The tactics of all techniques, each once, in the order they first appear."""
    seen: dict[str, TacticRef] = {}
    for technique in refs:
        for tactic in technique.tactics:
            seen.setdefault(tactic.shortname, tactic)
    return list(seen.values())


def detection_doc(
    store: Store | None,
    loaded: LoadedDetection,
    attack_version: str | None = None,
    domain: str | None = None,
) -> DetectionDoc:
    refs = technique_refs(store, loaded.detection.techniques, attack_version, domain)
    return DetectionDoc(loaded.detection, str(loaded.path), refs, _tactics_of(refs))


def community_rule(store: Store, rule_id: str) -> CommunityRule:
    rule = sigma_store.get_rule(store, rule_id)
    if rule is None:
        raise NotFoundError(
            f"no detection or community rule {rule_id!r}",
            hint="list them with `defensemap detections --source all`; community rules are"
            " loaded with `defensemap import sigma PATH`",
        )
    return rule


def community_rule_doc(
    store: Store, rule_id: str, attack_version: str | None = None, domain: str | None = None
) -> CommunityRuleDoc:
    rule = community_rule(store, rule_id)
    return CommunityRuleDoc(
        id=rule.id,
        title=rule.title,
        description=rule.description,
        status=rule.status,
        level=rule.level,
        author=rule.author,
        date=rule.date,
        modified=rule.modified,
        logsource={"product": rule.product, "category": rule.category, "service": rule.service},
        technique_refs=technique_refs(store, rule.techniques, attack_version, domain),
        tactics=list(rule.tactics),
        tags=list(rule.tags),
        references=list(rule.references),
        false_positives=list(rule.false_positives),
        path=rule.path,
        yaml=rule.yaml,
        attribution=attribution(rule),
    )


COMMUNITY_NOTE = (
    "Community rules are © their authors (SigmaHQ), under the Detection Rule License 1.1:"
    " author and link shown with each rule (`defensemap detection ID`)."
)


def community_notes(store: Store | None, wanted: DetectionFilter) -> list[str]:
    """What a detection list says about community rules: how to load them, or their licence."""
    if "sigmahq" not in wanted.sources():
        return []
    if store is None or sigma_store.rule_count(store) == 0:
        return ["no community rules imported: load them with `defensemap import sigma PATH`"]
    return [COMMUNITY_NOTE]
