"""What reading a team's existing rule sets gives, before anything is stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from defensemap.model.coverage import DeployedRule

RuleFormat = Literal["sentinel-yaml", "sentinel-arm", "elastic-ndjson", "sigma", "splunk"]


@dataclass(frozen=True)
class SkippedFile:
    """A file or entry that holds no rule to import: ``where`` is ``file[:line]``."""

    where: str
    reason: str


@dataclass(frozen=True)
class ReadRule:
    rule: DeployedRule
    format: RuleFormat


@dataclass
class RuleSetRead:
    """Everything read from the given paths, before anything is stored."""

    sources: list[str]
    files: int = 0
    rules: list[DeployedRule] = field(default_factory=list)
    by_format: dict[str, int] = field(default_factory=dict)
    skipped: list[SkippedFile] = field(default_factory=list)

    @property
    def with_techniques(self) -> int:
        return sum(1 for r in self.rules if r.techniques)

    @property
    def enabled(self) -> int:
        return sum(1 for r in self.rules if r.enabled)
