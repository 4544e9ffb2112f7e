"""The coverage scoring model: every constant in one place, every rule a small pure function.

A technique scores ``protect + detect`` (0–100). Protect points (0–50) come from the controls
in place that map to it, detect points (0–50) from the detections that run for it (and from
controls whose mapping scores detection). docs/coverage.md explains each number with a worked
example; keep the two in step.
"""

from __future__ import annotations

from collections.abc import Iterable

from defensemap.model.coverage import ControlStatus, DeployedRule, StepKind

PROTECT_CAP = 50.0
DETECT_CAP = 50.0
MAX_SCORE = PROTECT_CAP + DETECT_CAP

# How much of a mapping's points a control earns by its implementation status.
STATUS_FACTOR: dict[str, float] = {
    "implemented": 1.0,
    "partial": 0.5,
    "planned": 0.0,
    "not-applicable": 0.0,
}

# Mapping types that say "this capability protects against the technique".
PROTECTING_TYPES = frozenset({"protects", "mitigates"})
PROTECTS_POINTS = 15.0

# Technique-scores mappings (and framework types that carry a score, such as Intel vPro's):
# the value's points go to the side the category names; respond counts as protect at half.
SCORE_VALUE_POINTS: dict[str, float] = {"minimal": 10.0, "partial": 25.0, "significant": 50.0}
RESPOND_FACTOR = 0.5

# Detection points per deployed, enabled rule naming the technique.
TESTED_POINTS = 30.0
FAILING_TESTS_POINTS = 10.0
LIBRARY_UNTESTED_POINTS = 20.0
IMPORTED_UNTESTED_POINTS = 15.0

# Score bands for summaries: the lowest score of each band, highest band first.
BANDS: tuple[tuple[str, float], ...] = (("high", 70.0), ("medium", 40.0), ("low", 0.01))
NO_COVERAGE = "none"

# Next steps, cheapest first.
STEP_ORDER: dict[StepKind, int] = {
    "enable-detection": 0,
    "collect-table": 1,
    "implement-control": 2,
    "write-detection": 3,
}
# At most this many steps of each kind per technique (the best ones).
STEPS_PER_KIND = 3


def control_points(
    status: ControlStatus,
    mapping_type: str,
    score_category: str | None,
    score_value: str | None,
) -> tuple[str | None, float]:
    """The side (``protect``/``detect``, or None when it counts nothing) and the points one
    mapping of a control earns for a technique."""
    factor = STATUS_FACTOR[status]
    if score_category and score_value in SCORE_VALUE_POINTS:
        value = SCORE_VALUE_POINTS[score_value]
        if score_category == "protect":
            return "protect", value * factor
        if score_category == "detect":
            return "detect", value * factor
        if score_category == "respond":
            return "protect", value * RESPOND_FACTOR * factor
        return None, 0.0
    if mapping_type in PROTECTING_TYPES:
        return "protect", PROTECTS_POINTS * factor
    return None, 0.0


def deployable(rule: DeployedRule, tables: frozenset[str] | None) -> bool | None:
    """Whether the data the rule needs is collected; None when either side is unknown."""
    if tables is None or not rule.tables:
        return None
    return not missing_tables(rule, tables)


def missing_tables(rule: DeployedRule, tables: frozenset[str] | None) -> tuple[str, ...]:
    """The rule's tables that are not collected (case-insensitive, as Sentinel names are)."""
    if tables is None:
        return ()
    have = {t.casefold() for t in tables}
    return tuple(t for t in rule.tables if t.casefold() not in have)


def rule_points(rule: DeployedRule, is_deployable: bool | None) -> float:
    """What one rule contributes: nothing when disabled or missing data; otherwise by how
    well it is proven to fire."""
    if not rule.enabled or is_deployable is False:
        return 0.0
    if rule.tested is True:
        return TESTED_POINTS
    if rule.tested is False:
        return FAILING_TESTS_POINTS
    return LIBRARY_UNTESTED_POINTS if rule.origin == "library" else IMPORTED_UNTESTED_POINTS


def capped(points: Iterable[float], cap: float) -> float:
    return min(cap, float(sum(points)))


def threat_weight(actor_ids: Iterable[str]) -> int:
    """How many distinct selected actors use the technique."""
    return len(set(actor_ids))


def gap_priority(weight: int, score: float) -> float:
    """Threat weight × missing coverage: what to fix first."""
    return weight * (MAX_SCORE - score)


def band(score: float) -> str:
    for name, lowest in BANDS:
        if score >= lowest:
            return name
    return NO_COVERAGE


def fmt(points: float) -> str:
    """Points as people write them: ``15``, ``7.5``."""
    return f"{points:g}"
