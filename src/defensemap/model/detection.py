"""A defensemap detection: one reviewed YAML file holding the logic (KQL and Sigma), what an
analyst needs around it, and the events that prove it fires (and does not)."""

from __future__ import annotations

import re
from datetime import date
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


class TestCase(_Model):
    """Events loaded into ``table`` (inline or from ``file``, relative to the detection);
    ``alerts`` is how many alerts must come out (positive cases default to at least one)."""

    name: str
    table: str
    events: list[dict[str, Any]] = Field(default_factory=list)
    file: str | None = None
    alerts: int | None = None


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


class Detection(_Model):
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
