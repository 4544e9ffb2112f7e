"""ATT&CK objects as loaded from STIX, before and after they reach the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DOMAINS = ("enterprise-attack", "mobile-attack", "ics-attack")

# STIX type -> the word users and the CLI use for it. Anything else is kept as "unknown".
KIND_BY_TYPE: dict[str, str] = {
    "attack-pattern": "technique",
    "x-mitre-tactic": "tactic",
    "x-mitre-matrix": "matrix",
    "intrusion-set": "group",
    "malware": "software",
    "tool": "software",
    "campaign": "campaign",
    "course-of-action": "mitigation",
    "x-mitre-data-source": "data-source",
    "x-mitre-data-component": "data-component",
    "x-mitre-detection-strategy": "detection-strategy",
    "x-mitre-analytic": "analytic",
    "x-mitre-asset": "asset",
    "x-mitre-collection": "collection",
    "identity": "identity",
    "marking-definition": "marking",
}

RELATIONSHIP_TYPE = "relationship"


def short_domain(domain: str) -> str:
    """``enterprise-attack`` -> ``enterprise``; the short form is what users type."""
    return domain.removesuffix("-attack")


def version_key(version: str) -> tuple[int, ...]:
    """Sort ATT&CK versions numerically (``9.0`` < ``16.1`` < ``18.1``)."""
    parts = []
    for piece in version.split("."):
        parts.append(int(piece) if piece.isdecimal() else 0)  # int('²') raises
    return tuple(parts)


@dataclass(frozen=True)
class AttackObject:
    """Any non-relationship STIX object of an ATT&CK bundle, with its raw JSON kept whole."""

    stix_id: str
    type: str
    kind: str
    attack_id: str | None
    name: str | None
    description: str | None
    created: str | None
    modified: str | None
    version: str | None
    revoked: bool
    deprecated: bool
    raw: dict[str, Any]


@dataclass(frozen=True)
class Relationship:
    """A STIX relationship (uses, mitigates, subtechnique-of, detects, attributed-to, ...)."""

    stix_id: str
    relationship_type: str
    source_ref: str
    target_ref: str
    description: str | None
    revoked: bool
    deprecated: bool
    raw: dict[str, Any]


@dataclass(frozen=True)
class AttackBundle:
    """One parsed ATT&CK release of one domain, ready to be stored."""

    domain: str
    version: str
    spec_version: str
    attack_spec_version: str | None
    source: str
    sha256: str
    objects: list[AttackObject]
    relationships: list[Relationship]
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Objects per STIX type, relationships included."""
        counts: dict[str, int] = {}
        for obj in self.objects:
            counts[obj.type] = counts.get(obj.type, 0) + 1
        if self.relationships:
            counts[RELATIONSHIP_TYPE] = len(self.relationships)
        return dict(sorted(counts.items()))


@dataclass(frozen=True)
class Release:
    """One imported ATT&CK release as recorded in the store."""

    id: int
    domain: str
    version: str
    spec_version: str
    attack_spec_version: str | None
    source: str
    sha256: str
    imported_at: str
    counts: dict[str, int]
    warnings: list[str]

    @property
    def label(self) -> str:
        return f"{short_domain(self.domain)} {self.version}"
