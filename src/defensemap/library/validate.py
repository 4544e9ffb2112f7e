"""`defensemap content validate`: everything about a detection that can be checked without
running it on events (``defensemap test`` does that part).

Per detection: the file loads against the model; ids are unique; every field a SOC relies on
is filled in; techniques, data sources and related ids resolve; required tables are in the
schema catalog and cover what the KQL reads; every KQL (rule, Defender variant, tuning,
hunting, investigation) runs on empty typed tables; the published Sigma rule passes the
pySigma core and SigmaHQ validators and tags the same techniques; atomic test GUIDs exist in
Atomic Red Team. Findings name the file and the field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from defensemap.catalog import load_catalog
from defensemap.errors import DefensemapError
from defensemap.kb.vocabulary import AttackVocabulary
from defensemap.library.loader import detection_files
from defensemap.library.sigma_checks import SigmaChecker
from defensemap.model.atomics import AtomicIndex
from defensemap.model.detection import Detection
from defensemap.sources.detections import LoadedDetection, load_detection

if TYPE_CHECKING:
    from defensemap.engine.kql import KqlCheck

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    path: str
    detection_id: str | None
    check: str
    message: str
    severity: Severity = "error"


@dataclass
class ValidationReport:
    checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class Context:
    """What checks compare against; ``None`` parts are reported as not checked."""

    vocabulary: AttackVocabulary | None
    atomics: AtomicIndex | None
    sigma: SigmaChecker
    library_ids: frozenset[str]


Check = Callable[[Detection, Context], Iterator[tuple[str, str] | tuple[str, str, Severity]]]


def validate_library(
    paths: Iterable[Path],
    *,
    vocabulary: AttackVocabulary | None,
    atomics: AtomicIndex | None,
    sigma: SigmaChecker,
) -> ValidationReport:
    report = ValidationReport()
    loaded = _load_all(detection_files(paths), report)
    ids = frozenset(str(d.detection.id) for d in loaded)
    context = Context(vocabulary, atomics, sigma, ids)
    if vocabulary is None:
        report.notes.append("ATT&CK references not checked: no ATT&CK data in the store")
    if atomics is None:
        report.notes.append("atomic test GUIDs not checked: give --atomics PATH")
    for item in loaded:
        report.checked += 1
        for check in CHECKS:
            for name, message, *severity in check(item.detection, context):
                report.findings.append(
                    Finding(str(item.path), str(item.detection.id), name, message, *severity)
                )
    report.notes += sigma.notes()
    return report


def _load_all(paths: list[Path], report: ValidationReport) -> list[LoadedDetection]:
    """Every file that loads; a file that does not is a finding, and the rest still run."""
    loaded: list[LoadedDetection] = []
    seen: dict[str, Path] = {}
    for path in paths:
        try:
            item = load_detection(path)
        except DefensemapError as exc:
            report.checked += 1
            report.findings.append(Finding(str(path), None, "schema", str(exc)))
            continue
        key = str(item.detection.id)
        if key in seen:
            report.findings.append(Finding(str(path), key, "id", f"id also used by {seen[key]}"))
            continue
        seen[key] = path
        loaded.append(item)
    return loaded


_REQUIRED_TEXT: dict[str, Callable[[Detection], object]] = {
    "description": lambda d: d.description.strip(),
    "confidence": lambda d: d.confidence,
    "data_sources": lambda d: d.data_sources,
    "required_tables": lambda d: d.required_tables,
    "queries.kql": lambda d: d.queries.kql,
    "sigma": lambda d: d.sigma,
    "false_positives": lambda d: d.false_positives,
    "tuning": lambda d: d.tuning,
    "hunting_queries": lambda d: d.hunting_queries,
    "investigation": lambda d: d.investigation,
    "response.containment": lambda d: d.response.containment,
    "response.eradication": lambda d: d.response.eradication,
    "response.recovery": lambda d: d.response.recovery,
    "atomic_tests": lambda d: d.atomic_tests.tests or d.atomic_tests.emulation,
    "references": lambda d: d.references,
    "entities": lambda d: d.entities,
    "tests.positive": lambda d: d.tests.positive,
    "tests.negative": lambda d: d.tests.negative,
}


def check_complete(d: Detection, ctx: Context) -> Iterator[tuple[str, str]]:
    """A library detection ships every field: an empty one is what paywalled libraries hide."""
    for name, value in _REQUIRED_TEXT.items():
        if not value(d):
            yield "complete", f"{name} is empty"


def check_attack(d: Detection, ctx: Context) -> Iterator[tuple[str, str]]:
    vocabulary = ctx.vocabulary
    if vocabulary is None:
        return
    for technique in d.techniques:
        info = vocabulary.technique(technique)
        if info is None:
            yield "attack", f"technique {technique} is not in ATT&CK {vocabulary.release}"
        elif info.revoked or info.deprecated:
            state = "revoked" if info.revoked else "deprecated"
            yield "attack", f"technique {technique} is {state} in ATT&CK {vocabulary.release}"
    for source in d.data_sources:
        if not vocabulary.is_data_source(source):
            yield (
                "data_sources",
                f"{source!r} is not an ATT&CK data component or analytic in "
                f"{vocabulary.release} (see `defensemap technique {d.techniques[0]}`)",
            )


def check_related(d: Detection, ctx: Context) -> Iterator[tuple[str, str]]:
    for related in d.related:
        if related == d.id:
            yield "related", "a detection cannot be related to itself"
        elif str(related) not in ctx.library_ids:
            yield "related", f"related detection {related} is not in the library"


@lru_cache(maxsize=4096)
def _check_kql(text: str) -> KqlCheck:
    """Checks are pure in the query text; library snippets repeat (shared pivots)."""
    from defensemap.engine.kql import check_kql

    return check_kql(text)


def check_tables_and_kql(d: Detection, ctx: Context) -> Iterator[tuple[str, str]]:
    catalog = load_catalog()
    for table in d.required_tables:
        if catalog.table(table) is None:
            yield "tables", f"required table {table} is not in the schema catalog"
    required = set(d.required_tables)
    for where, text in _kql_snippets(d):
        result = _check_kql(text)
        for problem in result.problems:
            place = f" at {problem.line}:{problem.column}" if problem.line else ""
            yield "kql", f"{where}{place}: {problem.kind}: {problem.message}"
        if where == "queries.kql" and result.ok:
            unlisted = sorted(set(result.tables) - required)
            if unlisted:
                yield "tables", f"queries.kql reads {', '.join(unlisted)}, not in required_tables"


def _kql_snippets(d: Detection) -> Iterator[tuple[str, str]]:
    if d.queries.kql:
        yield "queries.kql", d.queries.kql
    if d.queries.defender_kql:
        yield "queries.defender_kql", d.queries.defender_kql
    for i, tuning in enumerate(d.tuning):
        if tuning.kql:
            yield f"tuning[{i}].kql", tuning.kql
    for i, hunt in enumerate(d.hunting_queries):
        yield f"hunting_queries[{i}] ({hunt.name})", hunt.kql
    for i, step in enumerate(d.investigation):
        if step.kql:
            yield f"investigation[{i}].kql", step.kql


def check_sigma(d: Detection, ctx: Context) -> Iterator[tuple[str, str]]:
    for message in ctx.sigma.problems(d):
        yield "sigma", message


def check_atomics(d: Detection, ctx: Context) -> Iterator[tuple[str, str]]:
    if ctx.atomics is None:
        return
    for test in d.atomic_tests.tests:
        known = ctx.atomics.find(test.guid)
        if known is None:
            yield "atomic_tests", f"no Atomic Red Team test has GUID {test.guid}"
            continue
        if known.name != test.name:
            yield "atomic_tests", f"test {test.guid} is named {known.name!r}, not {test.name!r}"
        if not any(known.technique.startswith(t.split(".")[0]) for t in d.techniques):
            yield (
                "atomic_tests",
                f"test {test.guid} emulates {known.technique}, not one of {d.techniques}",
            )


def check_conversions(d: Detection, ctx: Context) -> Iterator[tuple[str, str, Severity]]:
    """Every target converts or says why not; a refusal is a warning (the backend cannot
    express the rule), while KQL generated for Sentinel that would not run is an error."""
    from defensemap.library.convert import TARGETS, convert_detection

    for target in TARGETS:
        result = convert_detection(d, target)
        if result.status == "refused":
            yield "conversion", f"{target}: refused: {'; '.join(result.notes)}", "warning"
        elif target == "kusto" and result.query:
            for problem in _check_kql(result.query).problems:
                yield "conversion", f"kusto output does not run: {problem.message}", "error"


CHECKS: tuple[Check, ...] = (
    check_complete,
    check_attack,
    check_related,
    check_tables_and_kql,
    check_sigma,
    check_atomics,
    check_conversions,
)
