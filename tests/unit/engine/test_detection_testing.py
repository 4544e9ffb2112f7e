"""`defensemap test` semantics beyond one table: events moved to the present, context tables
for correlating KQL, and the partial-Sigma contract (Sigma covers what KQL alerts on)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from defensemap.engine.testing import run_detection_tests, shift_to_now
from defensemap.sources.detections import parse_detection


def test_events_move_to_the_present_keeping_their_gaps() -> None:
    events = {"T": [{"t": "2020-01-01T10:00:00Z", "x": "2020"}, {"t": "2020-01-01T11:30:00Z"}]}
    shift_to_now(events, None)
    first, second = (datetime.fromisoformat(e["t"].replace("Z", "+00:00")) for e in events["T"])
    assert second - first == timedelta(minutes=90)
    assert timedelta(0) < datetime.now(UTC) - second < timedelta(minutes=2)
    assert events["T"][0]["x"] == "2020"  # only timestamps move


def test_an_explicit_now_sets_the_present() -> None:
    events = {"T": [{"t": "2020-01-01T10:00:00Z"}]}
    shift_to_now(events, datetime(2020, 1, 1, 12, 0, tzinfo=UTC))
    moved = datetime.fromisoformat(events["T"][0]["t"].replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - timedelta(hours=2) - moved) < timedelta(minutes=1)


def _event(name: str, minutes: int) -> dict[str, Any]:
    when = datetime(2026, 11, 20, 9, 0, tzinfo=UTC) + timedelta(minutes=minutes)
    return {
        "Timestamp": when.isoformat().replace("+00:00", "Z"),
        "DeviceName": "wks-1",
        "AccountName": "jo",
        "FileName": name,
        "FolderPath": f"C:\\Tools\\{name}",
        "ProcessCommandLine": f"{name} run",
    }


SIGMA = {
    "title": "Tool Run",
    "logsource": {"category": "process_creation", "product": "windows"},
    "detection": {"sel": {"Image|endswith": "\\tool.exe"}, "condition": "sel"},
}
# KQL alerts only on the second run of tool.exe within an hour: Sigma can only see each run.
THRESHOLD_KQL = """DeviceProcessEvents
| where Timestamp > ago(1h)
| where FileName =~ "tool.exe"
| summarize Runs = count() by DeviceName
| where Runs >= 2"""


def _detection(tmp_path: Path, scope: str, kql: str, tests: dict[str, Any]) -> Any:
    data = {
        "id": "3f0c1f9e-5d61-4c3a-9f0e-0d5b1f2a7c11",
        "title": "tool run twice",
        "techniques": ["T1059"],
        "severity": "low",
        "required_tables": ["DeviceProcessEvents"],
        "queries": {"kql": kql},
        "sigma": SIGMA,
        "sigma_scope": scope,
        "tests": tests,
    }
    return parse_detection(data, tmp_path / "d.yml")


def test_partial_sigma_may_alert_more_but_must_cover_kql(tmp_path: Path) -> None:
    tests = {
        "positive": [
            {
                "name": "twice",
                "table": "DeviceProcessEvents",
                "alerts": 1,
                "sigma_alerts": 2,
                "events": [_event("tool.exe", 0), _event("tool.exe", 5)],
            }
        ],
        "negative": [
            {
                "name": "once",
                "table": "DeviceProcessEvents",
                "events": [_event("tool.exe", 0), _event("other.exe", 5)],
            }
        ],
    }
    result = run_detection_tests(_detection(tmp_path, "partial", THRESHOLD_KQL, tests))
    assert result.ok, (result.cases, result.disagreements, result.errors)
    exact = run_detection_tests(_detection(tmp_path, "exact", THRESHOLD_KQL, tests))
    assert not exact.ok  # as an exact pair the same logic disagrees


def test_partial_sigma_that_misses_a_kql_alert_fails(tmp_path: Path) -> None:
    kql = 'DeviceProcessEvents | where FileName in~ ("tool.exe", "other.exe")'
    tests = {
        "positive": [
            {
                "name": "both",
                "table": "DeviceProcessEvents",
                "events": [_event("tool.exe", 0), _event("other.exe", 5)],
            }
        ]
    }
    result = run_detection_tests(_detection(tmp_path, "partial", kql, tests))
    assert not result.ok
    assert any("misses" in d and "[2]" in d for d in result.disagreements), result.disagreements


def test_context_tables_are_loaded_for_the_kql(tmp_path: Path) -> None:
    kql = """DeviceProcessEvents
| where FileName =~ "tool.exe"
| join kind=inner (SigninLogs | project AccountName = UserPrincipalName) on AccountName"""
    signin = {"TimeGenerated": "2026-11-20T08:59:00Z", "UserPrincipalName": "jo", "ResultType": "0"}
    tests = {
        "positive": [
            {
                "name": "signed in",
                "table": "DeviceProcessEvents",
                "alerts": 1,
                "events": [_event("tool.exe", 0)],
                "context": [{"table": "SigninLogs", "events": [signin]}],
            }
        ],
        "negative": [
            {
                "name": "no sign-in",
                "table": "DeviceProcessEvents",
                "sigma_alerts": 1,
                "events": [_event("tool.exe", 0)],
                "context": [
                    {"table": "SigninLogs", "events": [{**signin, "UserPrincipalName": "x"}]}
                ],
            }
        ],
    }
    detection = _detection(tmp_path, "partial", kql, tests)
    result = run_detection_tests(detection)
    assert result.ok, (result.cases, result.disagreements, result.errors)
