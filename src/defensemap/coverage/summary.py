"""The numbers a coverage report opens with: how many techniques, how well covered, and what
the inputs were."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from defensemap.coverage import scoring
from defensemap.model.coverage import CoverageReport


@dataclass(frozen=True)
class CoverageSummary:
    techniques: int
    average_score: float
    bands: dict[str, int]
    gaps: int
    controls: dict[str, int]
    rules: dict[str, int]
    tables: int | None


def summarize(report: CoverageReport) -> CoverageSummary:
    """Counts by score band (high/medium/low/none), controls by status, rules by origin."""
    scores = [t.score for t in report.techniques]
    bands = Counter(scoring.band(score) for score in scores)
    order = [name for name, _ in scoring.BANDS] + [scoring.NO_COVERAGE]
    inputs = report.inputs
    return CoverageSummary(
        techniques=len(scores),
        average_score=round(sum(scores) / len(scores), 1) if scores else 0.0,
        bands={name: bands.get(name, 0) for name in order},
        gaps=len(report.gaps),
        controls=dict(sorted(Counter(c.status for c in inputs.controls).items())),
        rules=dict(sorted(Counter(r.origin for r in inputs.rules).items())),
        tables=None if inputs.tables is None else len(inputs.tables),
    )
