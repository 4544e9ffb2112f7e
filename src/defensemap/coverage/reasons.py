"""The one sentence that explains a technique's score: every control and detection that
counted (with its points), what was listed but did not count, and the data it lacks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from defensemap.coverage import scoring
from defensemap.model.coverage import ControlHit, DetectionHit, TechniqueCoverage
from defensemap.model.mappings import framework_label


def control_basis(hit: ControlHit) -> str:
    """What the mapping says: ``protects`` or a technique score such as ``detect partial``."""
    if hit.score_category and hit.score_value:
        return f"{hit.score_category} {hit.score_value}"
    return hit.mapping_type


def tested_label(tested: bool | None) -> str:
    return {True: "tested ✓", False: "tests fail ✗", None: "untested"}[tested]


def _controls_text(hits: Iterable[ControlHit]) -> str:
    """``NIST 800-53 IA-05 (implemented, protects: 15), AC-02 (partial, protects: 7.5)``,
    grouped by framework."""
    by_framework: dict[str, list[str]] = defaultdict(list)
    for hit in hits:
        by_framework[framework_label(hit.framework)].append(
            f"{hit.capability_id} ({hit.status}, {control_basis(hit)}: {scoring.fmt(hit.points)})"
        )
    return "; ".join(f"{label} {', '.join(items)}" for label, items in by_framework.items())


def _detection_text(hit: DetectionHit) -> str:
    return f"{hit.name!r} ({hit.origin}, {tested_label(hit.tested)}: {scoring.fmt(hit.points)})"


def _not_counted(hit: DetectionHit) -> str:
    if not hit.enabled:
        why = "disabled"
    else:
        why = f"not deployable: needs {', '.join(hit.missing_tables)}"
    return f"{hit.name!r} ({why})"


def _side(total: float, cap: float, parts: list[str], nothing: str) -> str:
    if not parts:
        return nothing
    capped = f", capped at {scoring.fmt(cap)}" if total >= cap else ""
    return f"{scoring.fmt(total)}{capped} from {'; '.join(parts)}"


def reason(coverage: TechniqueCoverage, tables_known: bool) -> str:
    """``Score 52.5: protect 22.5 from NIST 800-53 IA-05 (implemented, protects: 15), AC-02
    (partial, protects: 7.5); detect 30 from 'Rule' (library, tested ✓: 30); no tables
    missing.``"""
    counted = [h for h in coverage.controls if h.points > 0]
    protect_hits = [h for h in counted if h.score_category != "detect"]
    detect_hits = [h for h in counted if h.score_category == "detect"]
    detections = [d for d in coverage.detections if d.points > 0]
    protect = _side(
        coverage.protect,
        scoring.PROTECT_CAP,
        [_controls_text(protect_hits)] if protect_hits else [],
        "0 (no control in place protects it)",
    )
    detect_parts = ([_controls_text(detect_hits)] if detect_hits else []) + [
        _detection_text(d) for d in detections
    ]
    detect = _side(coverage.detect, scoring.DETECT_CAP, detect_parts, "0 (nothing detects it)")
    sentence = f"Score {scoring.fmt(coverage.score)}: protect {protect}; detect {detect}"
    ignored = [
        *(
            f"{h.capability_id} ({h.status}, {control_basis(h)})"
            for h in coverage.controls
            if h.points == 0
        ),
        *(_not_counted(d) for d in coverage.detections if d.points == 0),
    ]
    if ignored:
        sentence += f"; not counted: {', '.join(ignored)}"
    return f"{sentence}; {_data_text(coverage, tables_known)}."


def _data_text(coverage: TechniqueCoverage, tables_known: bool) -> str:
    if not tables_known:
        return "data collected unknown"
    if coverage.tables_missing:
        return f"tables missing: {', '.join(coverage.tables_missing)}"
    return "no tables missing"
