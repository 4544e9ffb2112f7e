"""The documents defensemap answers with: one shape for the CLI, ``--json`` and the web.

Field names here are the stable ``--json`` contract documented in ``docs/json-output.md``;
add fields freely, never rename or remove one without bumping ``SCHEMA_VERSION``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from defensemap.model.citations import Reference

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ObjectRef:
    """A pointer to another ATT&CK object, enough to print or link it."""

    id: str | None
    name: str | None
    kind: str
    stix_id: str
    revoked: bool = False
    deprecated: bool = False


@dataclass(frozen=True)
class Related:
    """A related object plus the relationship's own text (procedure example, mitigation note)."""

    ref: ObjectRef
    description: str


@dataclass(frozen=True)
class TacticRef:
    id: str | None
    shortname: str
    name: str | None


@dataclass(frozen=True)
class Status:
    revoked: bool
    deprecated: bool
    revoked_by: ObjectRef | None = None
    resolved_from: str | None = None


@dataclass(frozen=True)
class Common:
    """Fields every ATT&CK object document carries."""

    id: str | None
    stix_id: str
    name: str | None
    kind: str
    domain: str
    attack_version: str
    url: str | None
    description: str
    version: str | None
    created: str | None
    modified: str | None
    status: Status
    contributors: list[str]


@dataclass(frozen=True)
class LogSource:
    data_component: ObjectRef | None
    name: str | None
    channel: str | None


@dataclass(frozen=True)
class MutableElement:
    field: str
    description: str


@dataclass(frozen=True)
class AnalyticDoc:
    ref: ObjectRef
    description: str
    platforms: list[str]
    log_sources: list[LogSource]
    mutable_elements: list[MutableElement]


@dataclass(frozen=True)
class DetectionStrategySummary:
    ref: ObjectRef
    analytics: list[AnalyticDoc]


@dataclass(frozen=True)
class DataComponentUse:
    ref: ObjectRef
    data_source: ObjectRef | None
    description: str
    via: str


@dataclass(frozen=True)
class AttackResolution:
    """Where a mapped ATT&CK id lands on the version the user looks at.

    ``status``: ``current`` (same id), ``revoked`` (redirected to ``current_id``),
    ``deprecated``, ``missing`` (not in that version) or ``unchecked`` (no ATT&CK loaded).
    """

    mapped_id: str | None
    mapped_name: str | None
    current_id: str | None
    current_name: str | None
    status: str
    attack_version: str | None


@dataclass(frozen=True)
class MappingView:
    capability_id: str | None
    capability_description: str | None
    capability_group: str | None
    capability_group_name: str | None
    mapping_type: str
    mapping_type_label: str
    score_category: str | None
    score_value: str | None
    related_score: str | None
    comments: str | None
    references: list[str]
    status: str | None
    occurrences: int
    mapped_on: str
    attack: AttackResolution


@dataclass(frozen=True)
class FrameworkMappings:
    """The rows of one mapping set, as one tab of the Mappings Explorer page."""

    framework: str
    label: str
    framework_version: str
    mapped_on: str
    domain: str
    mapping_types: dict[str, str]
    rows: list[MappingView] = field(default_factory=list)


@dataclass(frozen=True)
class Attribution:
    """Who wrote a community rule and under which licence: shown wherever the rule is shown
    or converted (the Detection Rule License requires the author and a link)."""

    author: str
    licence: str
    licence_url: str
    source_url: str
    text: str


@dataclass(frozen=True)
class DetectionSummary:
    """One line of a detection list: one of ours (``source`` ``defensemap``) or a community
    rule (``sigmahq``, with its ``attribution``); ``severity`` is a Sigma rule's level."""

    id: str
    title: str
    techniques: list[str]
    severity: str | None
    confidence: str | None
    platforms: list[str]
    tables: list[str]
    logsource: str | None
    status: str | None
    source: str
    attribution: Attribution | None = None


@dataclass(frozen=True)
class TechniqueDoc:
    common: Common
    tactics: list[TacticRef]
    platforms: list[str]
    is_subtechnique: bool
    parent: ObjectRef | None
    subtechniques: list[ObjectRef]
    attributes: dict[str, Any]
    groups: list[Related]
    software: list[Related]
    campaigns: list[Related]
    mitigations: list[Related]
    detection_strategies: list[DetectionStrategySummary]
    data_components: list[DataComponentUse]
    legacy_detection: str
    references: list[Reference]
    mappings: list[FrameworkMappings]
    detections: list[DetectionSummary] = field(default_factory=list)
    community_rules: list[DetectionSummary] = field(default_factory=list)
    kind_name: str = field(default="technique", init=False)


@dataclass(frozen=True)
class GroupDoc:
    common: Common
    aliases: list[str]
    techniques: list[Related]
    software: list[Related]
    campaigns: list[Related]
    references: list[Reference]
    kind_name: str = field(default="group", init=False)


@dataclass(frozen=True)
class SoftwareDoc:
    common: Common
    software_type: str
    aliases: list[str]
    platforms: list[str]
    techniques: list[Related]
    groups: list[Related]
    campaigns: list[Related]
    references: list[Reference]
    kind_name: str = field(default="software", init=False)


@dataclass(frozen=True)
class CampaignDoc:
    common: Common
    aliases: list[str]
    first_seen: str | None
    last_seen: str | None
    attributed_to: list[Related]
    techniques: list[Related]
    software: list[Related]
    references: list[Reference]
    kind_name: str = field(default="campaign", init=False)


@dataclass(frozen=True)
class MitigationDoc:
    common: Common
    techniques: list[Related]
    references: list[Reference]
    kind_name: str = field(default="mitigation", init=False)


@dataclass(frozen=True)
class TacticTechnique:
    ref: ObjectRef
    subtechniques: list[ObjectRef]


@dataclass(frozen=True)
class TacticDoc:
    common: Common
    shortname: str
    position: int | None
    techniques: list[TacticTechnique]
    references: list[Reference]
    kind_name: str = field(default="tactic", init=False)


@dataclass(frozen=True)
class DataComponentDoc:
    common: Common
    data_source: ObjectRef | None
    log_sources: list[LogSource]
    techniques: list[Related]
    analytics: list[ObjectRef]
    references: list[Reference]
    kind_name: str = field(default="data-component", init=False)


@dataclass(frozen=True)
class DetectionStrategyDoc:
    common: Common
    techniques: list[ObjectRef]
    analytics: list[AnalyticDoc]
    references: list[Reference]
    kind_name: str = field(default="detection-strategy", init=False)


Document = (
    TechniqueDoc
    | GroupDoc
    | SoftwareDoc
    | CampaignDoc
    | MitigationDoc
    | TacticDoc
    | DataComponentDoc
    | DetectionStrategyDoc
)


def to_json(doc: Any) -> dict[str, Any]:
    """A document as the ``data`` of a ``--json`` envelope: ``common`` fields flattened in."""
    data = asdict(doc)
    data.pop("kind_name", None)
    common = data.pop("common", None)
    return {**common, **data} if common else data


def envelope(kind: str, data: Any) -> dict[str, Any]:
    """The stable success shape of every ``--json`` answer."""
    return {"ok": True, "kind": kind, "schema_version": SCHEMA_VERSION, "data": data}
