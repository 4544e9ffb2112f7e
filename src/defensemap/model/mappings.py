"""CTID Mappings Explorer mappings: security capabilities mapped to ATT&CK techniques."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

NON_MAPPABLE = "non_mappable"

FRAMEWORK_LABELS: dict[str, str] = {
    "nist_800_53": "NIST 800-53",
    "m365": "Microsoft 365",
    "aws": "AWS",
    "azure": "Azure",
    "gcp": "GCP",
    "kev": "Known Exploited Vulnerabilities",
    "veris": "VERIS",
    "cri_profile": "CRI Profile",
    "csa_ccm": "CSA Cloud Controls Matrix",
    "intel-vpro": "Intel vPro",
}

# Names users type for a framework, besides its id.
FRAMEWORK_ALIASES: dict[str, str] = {
    "nist": "nist_800_53",
    "nist-800-53": "nist_800_53",
    "800-53": "nist_800_53",
    "microsoft365": "m365",
    "cri": "cri_profile",
    "csa": "csa_ccm",
    "ccm": "csa_ccm",
    "intel_vpro": "intel-vpro",
    "vpro": "intel-vpro",
    "cve": "kev",
}

# The labels Mappings Explorer shows; files spell the same type several ways.
MAPPING_TYPE_LABELS: dict[str, str] = {
    "protects": "Protects",
    "mitigates": "Protects",
    "technique_scores": "Technique Scores",
    "non_mappable": "Non-mappable",
    "related_to": "Related To",
    "primary_impact": "Primary Impact",
    "secondary_impact": "Secondary Impact",
    "exploitation_technique": "Exploitation Technique",
    "uncategorized": "Uncategorized",
}
_TYPE_SPELLINGS = {"technique_score": "technique_scores"}


def normalize_mapping_type(raw: str | None, status: str | None) -> str:
    """One key per mapping type; rows with no type are the non-mappable ones."""
    if raw is None or NON_MAPPABLE in (raw, status):
        return NON_MAPPABLE
    return _TYPE_SPELLINGS.get(raw, raw)


def mapping_type_label(key: str, declared: dict[str, dict[str, str]] | None = None) -> str:
    """Mappings Explorer's label; framework-specific types use the file's own name."""
    if key in MAPPING_TYPE_LABELS:
        return MAPPING_TYPE_LABELS[key]
    name = (declared or {}).get(key, {}).get("name")
    return name if name and name != key else key.replace("_", " ").title()


def framework_label(framework: str) -> str:
    return FRAMEWORK_LABELS.get(framework, framework)


@dataclass(frozen=True)
class MappingSetInfo:
    """The metadata of one mapping file: framework + version, made for one ATT&CK version."""

    framework: str
    framework_version: str
    attack_version: str
    domain: str
    mapping_version: str | None
    creation_date: str | None
    last_update: str | None
    author: str | None
    contact: str | None
    organization: str | None
    version_schema: str | None
    mapping_types: dict[str, dict[str, str]]
    capability_groups: dict[str, str]
    metadata: dict[str, Any]


@dataclass(frozen=True)
class MappingRow:
    """One mapping object; ``occurrences`` counts identical copies in the file."""

    position: int
    occurrences: int
    mapping_type: str
    capability_id: str | None
    capability_description: str | None
    capability_group: str | None
    attack_object_id: str | None
    attack_object_name: str | None
    score_category: str | None
    score_value: str | None
    related_score: str | None
    comments: str | None
    references: list[str]
    status: str | None
    raw: dict[str, Any]


@dataclass(frozen=True)
class MappingFile:
    """A parsed mapping file, rows deduplicated, ready to be stored."""

    info: MappingSetInfo
    rows: list[MappingRow]
    rows_in_file: int
    source: str
    sha256: str
    warnings: list[str] = field(default_factory=list)

    @property
    def duplicate_rows(self) -> int:
        return self.rows_in_file - len(self.rows)


@dataclass(frozen=True)
class MappingSet:
    """A mapping file as recorded in the store."""

    id: int
    info: MappingSetInfo
    source: str
    sha256: str
    imported_at: str
    rows_in_file: int
    rows_stored: int

    @property
    def label(self) -> str:
        info = self.info
        return (
            f"{framework_label(info.framework)} {info.framework_version}"
            f" (ATT&CK {info.attack_version} {info.domain.removesuffix('-attack')})"
        )


_LEADING_ZEROS = re.compile(r"(?<!\d)0+(?=\d)")


def capability_key(framework: str, capability_id: str) -> str:
    """How a capability id compares: case-insensitive, and for NIST 800-53 without leading
    zeros, because the newest files write ``IA-05`` where older ones (and people) write
    ``IA-5``."""
    key = capability_id.strip().casefold()
    return _LEADING_ZEROS.sub("", key) if framework == "nist_800_53" else key
