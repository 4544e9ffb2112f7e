"""Threat-informed coverage: what an organisation has in place (controls, deployed rules, log
tables), what it worries about (a threat profile), and what the computation answers per
technique. Pure data; reading inputs lives in ``sources``, the computation in ``coverage``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ControlStatus = Literal["implemented", "partial", "planned", "not-applicable"]
RuleOrigin = Literal["library", "community", "sentinel", "elastic", "sigma", "splunk"]
ActorKind = Literal["group", "campaign", "software", "tactic", "platform", "layer", "cve"]
StepKind = Literal["enable-detection", "collect-table", "implement-control", "write-detection"]


@dataclass(frozen=True)
class ControlInPlace:
    """One capability of a mapping framework (``nist_800_53`` / ``IA-05``) and how far it is
    implemented; ``source`` is where it was read (``controls.csv:12``)."""

    framework: str
    capability_id: str
    status: ControlStatus
    framework_version: str | None = None
    source: str = ""


@dataclass(frozen=True)
class DeployedRule:
    """A detection the organisation runs: from the library, a community (SigmaHQ) rule, or a
    rule of an existing rule set. ``tables`` is the data it needs (empty when unknown);
    ``tested`` is ``None`` when nothing proves it fires."""

    id: str
    name: str
    origin: RuleOrigin
    techniques: tuple[str, ...]
    enabled: bool = True
    language: str = ""
    tables: tuple[str, ...] = ()
    tested: bool | None = None
    source: str = ""
    # Sigma rules name their data as ``product/category/service``, not as tables.
    logsource: str = ""


@dataclass(frozen=True)
class ThreatActor:
    """Something in the threat profile: an ATT&CK group, campaign or software, or a selection
    (all techniques of a tactic or platform, a Navigator layer, an exploited CVE)."""

    id: str
    name: str
    kind: ActorKind


@dataclass(frozen=True)
class Procedure:
    """How an actor uses a technique (the relationship's text for ATT&CK objects; the
    selection rule or layer comment otherwise)."""

    actor_id: str
    technique: str
    description: str = ""


@dataclass(frozen=True)
class ThreatProfile:
    """``notes`` say what resolving the profile changed or dropped (a revoked id followed to
    its replacement, a deprecated or unknown technique left out)."""

    actors: tuple[ThreatActor, ...]
    procedures: tuple[Procedure, ...]
    notes: tuple[str, ...] = ()

    def techniques(self) -> frozenset[str]:
        return frozenset(p.technique for p in self.procedures)


@dataclass(frozen=True)
class CoverageInputs:
    """Everything a coverage computation reads. ``tables`` is ``None`` when the data
    collected is unknown (deployability is then not judged)."""

    attack_version: str
    profile: ThreatProfile
    controls: tuple[ControlInPlace, ...] = ()
    rules: tuple[DeployedRule, ...] = ()
    tables: frozenset[str] | None = None


@dataclass(frozen=True)
class ControlHit:
    """A mapped capability the organisation has (or plans), with what it contributes."""

    framework: str
    capability_id: str
    description: str
    status: ControlStatus
    mapping_type: str
    score_category: str | None
    score_value: str | None
    points: float


@dataclass(frozen=True)
class DetectionHit:
    rule_id: str
    name: str
    origin: RuleOrigin
    enabled: bool
    tested: bool | None
    deployable: bool | None
    missing_tables: tuple[str, ...]
    points: float


@dataclass(frozen=True)
class NextStep:
    """The cheapest action that raises a technique's score, and by how much."""

    kind: StepKind
    target: str
    detail: str
    gain: float


@dataclass(frozen=True)
class AtomicCheck:
    """An Atomic Red Team test that should make a detection fire (or show the gap)."""

    guid: str
    name: str
    technique: str
    platforms: tuple[str, ...] = ()


@dataclass(frozen=True)
class TechniqueCoverage:
    technique: str
    name: str
    tactics: tuple[str, ...]
    threat_weight: int
    procedures: tuple[Procedure, ...]
    controls: tuple[ControlHit, ...]
    detections: tuple[DetectionHit, ...]
    tables_available: tuple[str, ...]
    tables_missing: tuple[str, ...]
    protect: float
    detect: float
    score: float
    reason: str
    next_steps: tuple[NextStep, ...] = ()
    validation: tuple[AtomicCheck, ...] = ()


@dataclass(frozen=True)
class CoverageReport:
    inputs: CoverageInputs
    techniques: tuple[TechniqueCoverage, ...]
    gaps: tuple[TechniqueCoverage, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
