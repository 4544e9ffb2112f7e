"""The scoring model's rules, one by one (docs/coverage.md, "Scoring model")."""

from __future__ import annotations

import pytest

from defensemap.coverage import scoring
from defensemap.model.coverage import DeployedRule


@pytest.mark.parametrize(
    ("status", "mapping_type", "category", "value", "expected"),
    [
        ("implemented", "protects", None, None, ("protect", 15)),
        ("implemented", "mitigates", None, None, ("protect", 15)),
        ("partial", "mitigates", None, None, ("protect", 7.5)),
        ("planned", "mitigates", None, None, ("protect", 0)),
        ("not-applicable", "protects", None, None, ("protect", 0)),
        ("implemented", "technique_scores", "protect", "minimal", ("protect", 10)),
        ("implemented", "technique_scores", "protect", "partial", ("protect", 25)),
        ("implemented", "technique_scores", "protect", "significant", ("protect", 50)),
        ("partial", "technique_scores", "protect", "significant", ("protect", 25)),
        ("implemented", "technique_scores", "detect", "partial", ("detect", 25)),
        ("implemented", "technique_scores", "respond", "significant", ("protect", 25)),
        ("partial", "technique_scores", "respond", "partial", ("protect", 6.25)),
        ("implemented", "crwd-ams", "detect", "significant", ("detect", 50)),
        ("implemented", "exploitation_technique", None, None, (None, 0)),
        ("implemented", "related_to", None, None, (None, 0)),
        ("implemented", "technique_scores", "protect", None, (None, 0)),
    ],
)
def test_control_points(
    status: str, mapping_type: str, category: str | None, value: str | None, expected: object
) -> None:
    assert scoring.control_points(status, mapping_type, category, value) == expected  # type: ignore[arg-type]


def _rule(**fields: object) -> DeployedRule:
    base: dict[str, object] = {"id": "r", "name": "R", "origin": "library", "techniques": ("T1",)}
    return DeployedRule(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rule", "deployable", "points"),
    [
        (_rule(tested=True), True, 30),
        (_rule(tested=True), None, 30),
        (_rule(tested=False), True, 10),
        (_rule(), True, 20),
        (_rule(origin="community"), None, 15),
        (_rule(origin="sentinel"), True, 15),
        (_rule(tested=True), False, 0),
        (_rule(tested=True, enabled=False), True, 0),
    ],
)
def test_rule_points(rule: DeployedRule, deployable: bool | None, points: float) -> None:
    assert scoring.rule_points(rule, deployable) == points


def test_deployability_needs_both_sides() -> None:
    rule = _rule(tables=("SigninLogs", "AuditLogs"))
    assert scoring.deployable(rule, None) is None
    assert scoring.deployable(_rule(), frozenset({"SigninLogs"})) is None
    assert scoring.deployable(rule, frozenset({"signinlogs", "AuditLogs"})) is True
    assert scoring.deployable(rule, frozenset({"SigninLogs"})) is False
    assert scoring.missing_tables(rule, frozenset({"SigninLogs"})) == ("AuditLogs",)


def test_caps_weight_priority_and_bands() -> None:
    assert scoring.capped([15, 15, 15, 15], scoring.PROTECT_CAP) == 50
    assert scoring.capped([30, 15], scoring.DETECT_CAP) == 45
    assert scoring.threat_weight(["G1", "G2", "G1"]) == 2
    assert scoring.gap_priority(2, 40) == 120
    assert scoring.gap_priority(1, 100) == 0
    assert [scoring.band(s) for s in (100, 70, 69.5, 40, 7.5, 0)] == [
        "high",
        "high",
        "medium",
        "medium",
        "low",
        "none",
    ]
    assert scoring.fmt(7.5) == "7.5"
    assert scoring.fmt(15.0) == "15"
