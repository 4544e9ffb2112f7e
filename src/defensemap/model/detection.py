"""A defensemap detection: one reviewed YAML file holding the logic (KQL and Sigma), what an
analyst needs around it, and the events that prove it fires (and does not)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

Severity = Literal["informational", "low", "medium", "high", "critical"]
_TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Confidence(_Model):
    level: Literal["low", "medium", "high"]
    reason: str


class Queries(_Model):
    """KQL for Microsoft Sentinel, and for Defender XDR where its tables differ."""

    kql: str | None = None
    defender_kql: str | None = None


class TableEvents(_Model):
    """Events for one more table of a test case (a correlation's sign-in or audit side)."""

    table: str
    events: list[dict[str, Any]] = Field(default_factory=list)
    file: str | None = None


class TestCase(_Model):
    """Events loaded into ``table`` (inline or from ``file``, relative to the detection), plus
    ``context`` tables a correlating KQL query joins; ``alerts`` is how many alerts must come
    out (positive cases default to at least one). ``sigma_alerts`` sets Sigma's own count when
    the detection's Sigma is only the portable part (``sigma_scope: partial``).

    Event times are moved so that ``now`` (default: one minute after the case's latest event)
    is the moment the test runs: queries with ``ago()`` windows see the events as recent."""

    name: str
    now: datetime | None = None
    table: str
    events: list[dict[str, Any]] = Field(default_factory=list)
    file: str | None = None
    alerts: int | None = Field(default=None, ge=0)
    sigma_alerts: int | None = Field(default=None, ge=0)
    context: list[TableEvents] = Field(default_factory=list)


class Tests(_Model):
    positive: list[TestCase] = Field(default_factory=list)
    negative: list[TestCase] = Field(default_factory=list)


class Tuning(_Model):
    description: str
    kql: str | None = None


class HuntingQuery(_Model):
    name: str
    purpose: str
    kql: str


class InvestigationStep(_Model):
    step: str
    kql: str | None = None


class Response(_Model):
    containment: list[str] = Field(default_factory=list)
    eradication: list[str] = Field(default_factory=list)
    recovery: list[str] = Field(default_factory=list)


class AtomicTest(_Model):
    guid: str
    name: str


class AtomicTests(_Model):
    tests: list[AtomicTest] = Field(default_factory=list)
    emulation: str | None = None


class EntityMapping(_Model):
    """Which result column identifies an entity (Sentinel entity mapping, Defender impacted
    asset): ``fields`` maps an identifier (``FullName``, ``HostName``, ``Address``) to a column."""

    entity: Literal[
        "Account",
        "Host",
        "IP",
        "Process",
        "File",
        "CloudApplication",
        "AzureResource",
        "URL",
        "MailMessage",
    ]
    fields: dict[str, str]


#: A schedule timespan: minutes, hours or days, as every export target can express them.
TIMESPAN_PATTERN = r"^\s*(\d+)\s*([mhd])\s*$"


class Schedule(_Model):
    """How often the rule runs and over how much data (KQL timespans: ``5m``, ``1h``, ``14d``)."""

    frequency: str = Field(default="1h", pattern=TIMESPAN_PATTERN)
    period: str = Field(default="1h", pattern=TIMESPAN_PATTERN)
    threshold: int = Field(default=0, ge=0)


class Detection(_Model):
    """One detection. ``sigma_scope`` says what the Sigma rule covers: ``exact`` (the same logic
    as the KQL, so both must alert on the same test events) or ``partial`` (the portable,
    single-source part of a KQL query that also correlates or baselines; Sigma must then alert
    on at least the events KQL alerts on)."""

    id: UUID
    title: str
    description: str = ""
    techniques: list[str]
    platforms: list[str] = Field(default_factory=list)
    severity: Severity
    confidence: Confidence | None = None
    status: Literal["experimental", "test", "stable", "deprecated"] = "experimental"
    author: str = ""
    created: date | None = None
    modified: date | None = None
    version: int = 1
    data_sources: list[str] = Field(default_factory=list)
    required_tables: list[str] = Field(default_factory=list)
    queries: Queries = Field(default_factory=Queries)
    sigma: dict[str, Any] | None = None
    sigma_scope: Literal["exact", "partial"] = "exact"
    entities: list[EntityMapping] = Field(default_factory=list)
    schedule: Schedule = Field(default_factory=Schedule)
    false_positives: list[str] = Field(default_factory=list)
    tuning: list[Tuning] = Field(default_factory=list)
    hunting_queries: list[HuntingQuery] = Field(default_factory=list)
    investigation: list[InvestigationStep] = Field(default_factory=list)
    response: Response = Field(default_factory=Response)
    atomic_tests: AtomicTests = Field(default_factory=AtomicTests)
    related: list[UUID] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list)
    tests: Tests = Field(default_factory=Tests)

    @field_validator("techniques")
    @classmethod
    def _attack_ids(cls, value: list[str]) -> list[str]:
        bad = [t for t in value if not _TECHNIQUE.match(t)]
        if bad or not value:
            raise ValueError(f"techniques must be ATT&CK ids like T1021.007, got {bad or value}")
        return value
