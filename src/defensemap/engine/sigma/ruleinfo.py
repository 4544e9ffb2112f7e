"""What is known and reported about Sigma rules: the loaded :class:`RuleSet`, each rule's
:class:`RuleInfo`, and the problems and warnings that name a rule."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sigma.correlations import SigmaCorrelationRule
from sigma.rule import SigmaRule

_TECHNIQUE_TAG = re.compile(r"t\d{4}(\.\d{3})?\Z")
_OTHER_ATTACK_TAG = re.compile(r"([gs]\d{4}|ta\d{4}|detection\..*)\Z")


@dataclass(frozen=True)
class RuleProblem:
    """A rule that could not be loaded, converted or evaluated, and why."""

    rule_id: str
    title: str
    path: str | None
    reason: str

    def __str__(self) -> str:
        where = f" ({self.path})" if self.path else ""
        return f"{self.title} [{self.rule_id}]{where}: {self.reason}"


@dataclass(frozen=True)
class RuleWarning:
    """A converted rule that uses fields the table lacks (those conditions are false)."""

    rule_id: str
    title: str
    table: str
    fields: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.title} [{self.rule_id}] on {self.table}: no column {', '.join(self.fields)}"


@dataclass(frozen=True)
class RuleInfo:
    """What a match or a problem reports about its rule."""

    rule_id: str
    title: str
    level: str | None
    status: str | None
    tags: tuple[str, ...]
    techniques: tuple[str, ...]
    tactics: tuple[str, ...]
    path: str | None
    category: str | None
    product: str | None
    service: str | None

    @classmethod
    def of(cls, rule: SigmaRule | SigmaCorrelationRule) -> RuleInfo:
        tags = tuple(str(t) for t in rule.tags)
        attack = [t.name.lower() for t in rule.tags if t.namespace.lower() == "attack"]
        techniques = tuple(sorted({t.upper() for t in attack if _TECHNIQUE_TAG.match(t)}))
        tactics = tuple(
            sorted(
                {
                    _tactic_name(t)
                    for t in attack
                    if not _TECHNIQUE_TAG.match(t) and not _OTHER_ATTACK_TAG.match(t)
                }
            )
        )
        logsource = rule.logsource if isinstance(rule, SigmaRule) else None
        return cls(
            rule_id=rule_key(rule),
            title=rule.title or rule_key(rule),
            level=rule.level.name.lower() if rule.level else None,
            status=rule.status.name.lower() if rule.status else None,
            tags=tags,
            techniques=techniques,
            tactics=tactics,
            path=_rule_path(rule),
            category=logsource.category if logsource else None,
            product=logsource.product if logsource else None,
            service=logsource.service if logsource else None,
        )

    def problem(self, reason: str) -> RuleProblem:
        return RuleProblem(self.rule_id, self.title, self.path, reason)


def _tactic_name(tag: str) -> str:
    return tag.casefold().replace("_", "-").replace(" ", "-")


def rule_key(rule: SigmaRule | SigmaCorrelationRule) -> str:
    """A rule's id (its UUID, else its name, else its title)."""
    if rule.id is not None:
        return str(rule.id)
    return rule.name or rule.title or "<untitled>"


def _rule_path(rule: SigmaRule | SigmaCorrelationRule) -> str | None:
    source = rule.source
    return str(source.path) if source is not None and source.path is not None else None


@dataclass
class RuleSet:
    """Loaded (and possibly selected) rules.

    ``support`` holds detection rules only needed because a selected correlation references
    them (and says ``generate: false``): they are evaluated but their own matches not reported.
    """

    rules: list[SigmaRule] = field(default_factory=list)
    correlations: list[SigmaCorrelationRule] = field(default_factory=list)
    problems: list[RuleProblem] = field(default_factory=list)
    support: list[SigmaRule] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rules) + len(self.correlations)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return re.sub(r"\s+", " ", text)
