"""`defensemap test`: prove each detection with its own events, in KQL and in Sigma.

Every test case loads its events into a fresh, locked-down DuckDB (typed by the catalog, via
the same ingest as real logs) and runs both the detection's KQL and its Sigma logic. A
positive case must alert (exactly ``alerts`` times when given), a negative case must not, and
KQL and Sigma must agree on which events alert; a disagreement fails the detection and names
the events.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import orjson

from defensemap.engine.alerts import Alert
from defensemap.engine.hunt import HuntResult, hunt_sigma, run_kql_rule, sigma_rules_of
from defensemap.errors import DefensemapError
from defensemap.logs.duck import connect, lock_down
from defensemap.logs.ingest import ingest
from defensemap.model.detection import TestCase
from defensemap.sources.detections import LoadedDetection


@dataclass(frozen=True)
class CaseResult:
    name: str
    kind: str
    language: str
    expected: str
    alerts: int
    events: list[int] | None
    ok: bool
    message: str


@dataclass
class DetectionResult:
    id: str
    title: str
    path: str
    cases: list[CaseResult] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def language_ok(self, language: str) -> bool | None:
        mine = [c for c in self.cases if c.language == language]
        return all(c.ok for c in mine) if mine else None

    @property
    def ok(self) -> bool:
        return not self.errors and not self.disagreements and all(c.ok for c in self.cases)


def _expected(kind: str, case: TestCase, language: str, scope: str) -> tuple[str, Any]:
    """What a case expects of one language. A partial Sigma rule (the portable part of a
    correlating KQL query) is held to ``sigma_alerts`` when given; otherwise it must fire on a
    positive case and is not judged on negatives (those differ only in what Sigma cannot see)."""
    wanted = case.alerts
    if language == "sigma" and scope == "partial":
        if case.sigma_alerts is not None:
            return f"{case.sigma_alerts} alert(s)", lambda n: n == case.sigma_alerts
        if kind == "negative":
            return "any (partial Sigma)", lambda n: True
        wanted = None
    if kind == "negative":
        return "no alert", lambda n: n == 0
    if wanted is not None:
        return f"{wanted} alert(s)", lambda n: n == wanted
    return "at least 1 alert", lambda n: n >= 1


def _records(alerts: list[Alert]) -> list[int] | None:
    """Which test events alerted (1-based, as the event list is written); None when the query
    projected the provenance away (a KQL ``project`` or ``summarize``), so only counts compare."""
    found = set()
    for alert in alerts:
        _, _, record = alert.source.rpartition(":")
        if not record.isdecimal():
            return None
        found.add(int(record))
    return sorted(found)


_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _when(value: Any) -> datetime | None:
    if isinstance(value, str) and _ISO_TIME.match(value):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def shift_to_now(by_table: dict[str, list[dict[str, Any]]], now: datetime | None) -> None:
    """Move every ISO-8601 timestamp of the events (top-level values) by one offset so the
    case's ``now`` is the real present; order and gaps between events are kept."""
    times = [t for events in by_table.values() for e in events for t in map(_when, e.values()) if t]
    if not times:
        return
    anchor = now if now is not None else max(times) + timedelta(minutes=1)
    if anchor.tzinfo is None:
        anchor = anchor.replace(tzinfo=UTC)
    offset = datetime.now(UTC) - anchor
    for events in by_table.values():
        for event in events:
            for key, value in event.items():
                when = _when(value)
                if when is not None:
                    event[key] = (when + offset).astimezone(UTC).isoformat().replace("+00:00", "Z")


def _load_case(con: Any, loaded: LoadedDetection, case: TestCase, folder: Path) -> list[str]:
    """The case's events and its context tables' events, each table through the real ingest;
    returns the tables loaded (the case's own first)."""
    by_table: dict[str, list[dict[str, Any]]] = {
        case.table: [dict(e) for e in loaded.case_events(case.events, case.file)]
    }
    for extra in case.context:
        events = loaded.case_events(extra.events, extra.file)
        by_table.setdefault(extra.table, []).extend(dict(e) for e in events)
    shift_to_now(by_table, case.now)
    for table, events in by_table.items():
        path = folder / f"{table}.ndjson"
        path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
        ingest(con, [path], table=table)
    return list(by_table)


def _run_case(
    loaded: LoadedDetection, case: TestCase, kind: str, timeout: float
) -> list[CaseResult]:
    detection = loaded.detection
    results: list[CaseResult] = []
    with tempfile.TemporaryDirectory(prefix="defensemap-test-") as tmp:
        con = connect(Path(tmp) / "case.duckdb")
        try:
            tables = _load_case(con, loaded, case, Path(tmp))
            lock_down(con)
            runs: list[tuple[str, list[Alert]]] = []
            if detection.queries.kql:
                runs.append(
                    (
                        "kql",
                        run_kql_rule(
                            con,
                            rule_id=str(detection.id),
                            title=detection.title,
                            techniques=detection.techniques,
                            severity=detection.severity,
                            kql=detection.queries.kql,
                            timeout=timeout,
                            tables=tables,
                        ),
                    )
                )
            if detection.sigma:
                sigma = HuntResult()
                hunt_sigma(
                    con,
                    sigma_rules_of([loaded]),
                    timeout=timeout,
                    result=sigma,
                    tables=[case.table],
                )
                if sigma.skipped:
                    raise _SigmaNotRun("; ".join(s.reason for s in sigma.skipped))
                runs.append(("sigma", sigma.alerts))
        finally:
            con.close()
    for language, alerts in runs:
        label, check = _expected(kind, case, language, detection.sigma_scope)
        count = len(alerts)
        ok = bool(check(count))
        message = "" if ok else f"expected {label}, got {count}"
        results.append(
            CaseResult(case.name, kind, language, label, count, _records(alerts), ok, message)
        )
    return results


class _SigmaNotRun(DefensemapError):
    """The detection's Sigma logic could not run on the case's table."""


def run_detection_tests(loaded: LoadedDetection, *, timeout: float = 60.0) -> DetectionResult:
    detection = loaded.detection
    result = DetectionResult(str(detection.id), detection.title, str(loaded.path))
    if not detection.tests.positive:
        result.errors.append("no positive test case: a detection must prove it fires")
    for kind, cases in (
        ("positive", detection.tests.positive),
        ("negative", detection.tests.negative),
    ):
        for case in cases:
            try:
                outcomes = _run_case(loaded, case, kind, timeout)
            except DefensemapError as exc:
                result.errors.append(f"{kind} case {case.name!r}: {exc}")
                continue
            result.cases += outcomes
            disagreement = _disagreement(outcomes, detection.sigma_scope)
            if disagreement:
                result.disagreements.append(f"{kind} case {case.name!r}: {disagreement}")
    return result


def _disagreement(outcomes: list[CaseResult], scope: str) -> str | None:
    """KQL and Sigma must alert on the same events (or, when KQL projected its provenance
    away, the same number of them); a partial Sigma rule must cover every event KQL alerts on."""
    by_language = {o.language: o for o in outcomes}
    if len(by_language) < 2:
        return None
    kql, sigma = by_language["kql"], by_language["sigma"]
    if scope == "partial":
        return _not_covered(kql, sigma)
    if kql.events is not None and sigma.events is not None:
        if kql.events != sigma.events:
            return f"KQL alerts on events {kql.events}, Sigma on {sigma.events}"
        return None
    if (kql.alerts > 0) != (sigma.alerts > 0):
        return f"KQL gives {kql.alerts} alert(s), Sigma {sigma.alerts}"
    return None


def _not_covered(kql: CaseResult, sigma: CaseResult) -> str | None:
    if kql.events is not None and sigma.events is not None:
        missed = sorted(set(kql.events) - set(sigma.events))
        return f"KQL alerts on events {missed} the partial Sigma rule misses" if missed else None
    if kql.alerts > 0 and sigma.alerts == 0:
        return f"KQL gives {kql.alerts} alert(s), the partial Sigma rule none"
    return None


def junit_xml(results: list[DetectionResult]) -> str:
    """JUnit XML for CI: one test case per detection test case and language."""
    suite = ElementTree.Element("testsuite", name="defensemap", tests="0", failures="0")
    tests = failures = 0
    for detection in results:
        entries = [
            (f"{c.kind}: {c.name} [{c.language}]", c.message if not c.ok else "")
            for c in detection.cases
        ]
        entries += [(f"{detection.title}: KQL/Sigma agreement", d) for d in detection.disagreements]
        entries += [(f"{detection.title}: error", e) for e in detection.errors]
        for name, failure in entries:
            tests += 1
            case = ElementTree.SubElement(suite, "testcase", classname=detection.title, name=name)
            if failure:
                failures += 1
                ElementTree.SubElement(case, "failure", message=failure).text = failure
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    return ElementTree.tostring(suite, encoding="unicode")
