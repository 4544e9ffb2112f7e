"""Build the pieces of ``CoverageInputs`` from what defensemap already knows: library
detections (with their test results), imported community rules, the tables of a logs
database or a list, and "every capability of framework F implemented" for what-if runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from defensemap.errors import InputError, NotFoundError, SourceError, SourceLocation
from defensemap.kb.mappings import select_sets
from defensemap.library.loader import Library
from defensemap.model.coverage import ControlInPlace, DeployedRule
from defensemap.model.mappings import NON_MAPPABLE
from defensemap.sources.detections import LoadedDetection
from defensemap.store import mappings as mapping_store
from defensemap.store.db import Store
from defensemap.store.sigma import list_rules

if TYPE_CHECKING:
    from defensemap.engine.testing import DetectionResult


def library_rules(
    library: Library,
    *,
    technique: Iterable[str] | None = None,
    ids: Iterable[str] | None = None,
    test_results: Mapping[str, DetectionResult] | None = None,
) -> list[DeployedRule]:
    """Library detections as deployed rules: all, those naming one of ``technique`` (exact
    ids), or those of ``ids`` (every unknown id named in one error). ``test_results`` (by
    detection id) marks them tested ✓/✗; without it, whether they fire is unknown."""
    chosen = library.detections
    if ids is not None:
        wanted = [i.strip() for i in ids]
        unknown = [i for i in wanted if not library.has(i)]
        if unknown:
            raise NotFoundError(
                f"no detection {', '.join(unknown)} in the library",
                hint="list them with `defensemap detections`",
            )
        chosen = [library.get(i) for i in dict.fromkeys(w.lower() for w in wanted)]
    if technique is not None:
        techniques = {t.strip().upper() for t in technique}
        chosen = [d for d in chosen if techniques & set(d.detection.techniques)]
    return [_library_rule(d, test_results) for d in chosen]


def _library_rule(
    loaded: LoadedDetection, test_results: Mapping[str, DetectionResult] | None
) -> DeployedRule:
    detection = loaded.detection
    result = (test_results or {}).get(str(detection.id))
    return DeployedRule(
        id=str(detection.id),
        name=detection.title,
        origin="library",
        techniques=tuple(t.upper() for t in detection.techniques),
        language="kql",
        tables=tuple(detection.required_tables),
        tested=None if result is None else result.ok,
        source=str(loaded.path),
    )


# Techniques per community-rule query: SQLite refuses deeper expression trees than ~1000.
_TECHNIQUES_PER_QUERY = 200


def community_rules(store: Store, techniques: Iterable[str] = ()) -> list[DeployedRule]:
    """Imported SigmaHQ rules (all, or those tagged with ``techniques`` or their
    sub-techniques). A Sigma logsource names no table, so their tables are unknown."""
    wanted = sorted(set(techniques))
    chunks = [
        wanted[i : i + _TECHNIQUES_PER_QUERY] for i in range(0, len(wanted), _TECHNIQUES_PER_QUERY)
    ]
    found = {rule.id: rule for chunk in chunks or [[]] for rule in list_rules(store, tuple(chunk))}
    return [
        DeployedRule(
            id=rule.id,
            name=rule.title,
            origin="community",
            techniques=tuple(t.upper() for t in rule.techniques),
            language="sigma",
            source=rule.source_url,
        )
        for rule in found.values()
    ]


def tables_from_logs_db(path: Path) -> frozenset[str]:
    """The tables of an ingested logs database (``defensemap logs ingest``)."""
    from defensemap.logs.duck import logs_database, user_tables

    if not path.is_file():
        raise InputError(
            "no such logs database",
            location=SourceLocation(path=str(path)),
            hint="ingest logs with `defensemap logs ingest FILE --db PATH`",
        )
    with logs_database(path, read_only=True) as con:
        return frozenset(user_tables(con))


def tables_from_file(path: Path) -> frozenset[str]:
    """One table name per line; blank lines and ``#`` comments are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(
            f"cannot read the table list: {exc}",
            location=SourceLocation(path=str(path)),
            hint="give a text file with one table name per line",
        ) from None
    names = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return frozenset(name for name in names if name)


def framework_controls(
    store: Store, framework: str, framework_version: str | None = None
) -> list[ControlInPlace]:
    """What-if: every capability of the framework's chosen mapping set, implemented."""
    chosen = select_sets(
        store,
        framework=framework,
        framework_version=framework_version,
        domain="enterprise-attack",
    )[0]
    capabilities = sorted(
        {
            row.capability_id
            for _, row in mapping_store.rows_for(store, [chosen.id])
            if row.capability_id and row.mapping_type != NON_MAPPABLE
        }
    )
    return [
        ControlInPlace(
            framework=chosen.info.framework,
            capability_id=capability,
            status="implemented",
            framework_version=chosen.info.framework_version,
            source=f"--framework-all {framework}",
        )
        for capability in capabilities
    ]
