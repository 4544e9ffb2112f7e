"""SigmaHQ community rules as defensemap keeps them: someone else's work under the Detection
Rule License 1.1, so each keeps its author, its YAML as written and a link to its file."""

from __future__ import annotations

from dataclasses import dataclass

LICENCE = "DRL-1.1"
LICENCE_NAME = "Detection Rule License 1.1"
LICENCE_URL = "https://github.com/SigmaHQ/Detection-Rule-License"


@dataclass(frozen=True)
class CommunityRule:
    """One SigmaHQ rule as stored: what lists and filters need, plus its text and source."""

    id: str
    title: str
    description: str
    status: str | None
    level: str | None
    author: str
    date: str | None
    modified: str | None
    product: str | None
    category: str | None
    service: str | None
    techniques: tuple[str, ...]
    tactics: tuple[str, ...]
    tags: tuple[str, ...]
    references: tuple[str, ...]
    false_positives: tuple[str, ...]
    yaml: str
    path: str
    source_url: str
    licence: str = LICENCE

    @property
    def logsource(self) -> str:
        """``product/category/service``, the parts the rule gives."""
        return "/".join(p for p in (self.product, self.category, self.service) if p)


@dataclass(frozen=True)
class SkippedRule:
    """A rule file that was not loaded: ``where`` is ``file[:line:column]``."""

    where: str
    reason: str


@dataclass(frozen=True)
class SigmaScan:
    """Everything read from the given paths, before anything is stored."""

    sources: list[str]
    found: int
    rules: list[CommunityRule]
    skipped: list[SkippedRule]
