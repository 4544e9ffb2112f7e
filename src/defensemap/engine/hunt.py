"""Hunting: run detections (defensemap files, ad hoc KQL, Sigma rules) over the logs database
and turn every match into an :class:`Alert`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from defensemap.engine.alerts import Alert, make_alert
from defensemap.errors import SourceError, SourceLocation
from defensemap.logs.duck import user_tables
from defensemap.sources.detections import LoadedDetection, is_detection, parse_detection, read_yaml

ADHOC_ID = "adhoc-kql"
NOT_APPLICABLE = "no loaded table matches its logsource"
_LEVEL_OF_SEVERITY = {
    "informational": "informational",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "critical": "critical",
}


@dataclass(frozen=True)
class Skipped:
    """A rule that did not run, and why (missing table, conversion failure …): never silent."""

    rule_id: str
    title: str
    language: str
    reason: str


@dataclass
class HuntResult:
    alerts: list[Alert] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    rules_run: int = 0


@dataclass(frozen=True)
class RuleFiles:
    """Rule paths split by kind: defensemap detection files and Sigma rule files."""

    detections: list[LoadedDetection]
    sigma: list[Path]


def _yaml_files(paths: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
            )
        elif path.exists():
            found.append(path)
        else:
            raise SourceError(
                "file not found", location=SourceLocation(path=str(path)), hint="check the path"
            )
    return found


def split_rules(paths: Sequence[Path]) -> RuleFiles:
    """Detection files (they have ``techniques`` and ``severity``) vs Sigma rules."""
    detections, sigma = [], []
    for path in _yaml_files(paths):
        data = read_yaml(path)
        if is_detection(data):
            detections.append(parse_detection(data, path))
        else:
            sigma.append(path)
    return RuleFiles(detections, sigma)


def _rows(result: Any) -> list[dict[str, Any]]:
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def run_kql_rule(
    con: duckdb.DuckDBPyConnection,
    *,
    rule_id: str,
    title: str,
    techniques: list[str],
    severity: str,
    kql: str,
    timeout: float,
    tables: list[str],
) -> list[Alert]:
    """One KQL query over the loaded tables; every result row is an alert."""
    from defensemap.engine.kql import run_kql

    result = run_kql(con, kql, timeout=timeout, label=f"{title} ({rule_id})", tables_present=tables)
    return [
        make_alert(
            rule_id=rule_id,
            title=title,
            techniques=techniques,
            severity=severity,
            language="kql",
            row=row,
        )
        for row in _rows(result)
    ]


def missing_tables(detection: LoadedDetection, tables: list[str]) -> list[str]:
    present = {t.lower() for t in tables}
    return [t for t in detection.detection.required_tables if t.lower() not in present]


def hunt_detections(
    con: duckdb.DuckDBPyConnection,
    detections: list[LoadedDetection],
    *,
    timeout: float,
    result: HuntResult,
) -> None:
    """Each detection's KQL, where its tables are loaded."""
    tables = user_tables(con)
    for loaded in detections:
        d = loaded.detection
        if not d.queries.kql:
            continue
        missing = missing_tables(loaded, tables)
        if missing:
            result.skipped.append(
                Skipped(str(d.id), d.title, "kql", f"tables not loaded: {', '.join(missing)}")
            )
            continue
        result.rules_run += 1
        result.alerts += run_kql_rule(
            con,
            rule_id=str(d.id),
            title=d.title,
            techniques=d.techniques,
            severity=d.severity,
            kql=d.queries.kql,
            timeout=timeout,
            tables=tables,
        )


def hunt_adhoc(
    con: duckdb.DuckDBPyConnection, kql: str, *, timeout: float, result: HuntResult
) -> None:
    result.rules_run += 1
    result.alerts += run_kql_rule(
        con,
        rule_id=ADHOC_ID,
        title="ad hoc KQL",
        techniques=[],
        severity="informational",
        kql=kql,
        timeout=timeout,
        tables=user_tables(con),
    )


@dataclass(frozen=True)
class Selection:
    """Run-time rule selection (``--technique``, ``--tactic``, ``--level``, ``--status``)."""

    techniques: tuple[str, ...] = ()
    tactics: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()


def sigma_rules_of(detections: list[LoadedDetection]) -> Any:
    """The Sigma logic embedded in detection files, as one rule set (ids from the files)."""
    from sigma.collection import SigmaCollection

    from defensemap.engine.sigma.rules import RuleSet

    collection = SigmaCollection.from_dicts(
        [{**d.detection.sigma, "id": str(d.detection.id)} for d in detections if d.detection.sigma]
    )
    return RuleSet(rules=[r for r in collection.rules if not hasattr(r, "rules")])


def hunt_sigma(
    con: duckdb.DuckDBPyConnection,
    rules: Any,
    *,
    timeout: float,
    result: HuntResult,
    select: Selection = Selection(),
    tables: list[str] | None = None,
) -> None:
    """Sigma rules, one pass per table (all loaded tables unless ``tables`` names some); every
    rule that cannot run is listed with why."""
    from defensemap.engine.sigma.rules import select_rules
    from defensemap.engine.sigma.run import run_sigma

    chosen = select_rules(
        rules,
        techniques=select.techniques,
        tactics=select.tactics,
        levels=select.levels,
        statuses=select.statuses,
    )
    run = run_sigma(con, chosen, tables=tables or user_tables(con), timeout=timeout)
    result.rules_run += len(run.counts)
    for match in run.matches:
        result.alerts.append(
            make_alert(
                rule_id=match.rule_id,
                title=match.rule_title,
                techniques=list(match.techniques),
                severity=_LEVEL_OF_SEVERITY.get(match.level or "", match.level or "unknown"),
                language="sigma",
                row=match.row,
            )
        )
    for problem in [*chosen.problems, *run.problems]:
        result.skipped.append(Skipped(problem.rule_id, problem.title, "sigma", problem.reason))
    for info in run.not_applicable:
        result.skipped.append(Skipped(info.rule_id, info.title, "sigma", NOT_APPLICABLE))
