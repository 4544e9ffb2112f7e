"""The ``coverage`` JSON document (docs/json-output.md), shared by `defensemap coverage --json`
and `/api/v1/coverage`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from defensemap.coverage import scoring
from defensemap.coverage.summary import summarize
from defensemap.model.coverage import CoverageReport


def coverage_json(report: CoverageReport) -> dict[str, Any]:
    inputs = report.inputs
    return {
        "attack_version": inputs.attack_version,
        "profile": asdict(inputs.profile),
        "inputs": {
            "controls": [asdict(c) for c in inputs.controls],
            # community rules are the imported SigmaHQ set: counted, not echoed (thousands)
            "rules": [asdict(r) for r in inputs.rules if r.origin != "community"],
            "community_rules": sum(1 for r in inputs.rules if r.origin == "community"),
            "tables": None if inputs.tables is None else sorted(inputs.tables),
        },
        "summary": asdict(summarize(report)),
        "techniques": [
            {
                **asdict(t),
                "band": scoring.band(t.score),
                "priority": scoring.gap_priority(t.threat_weight, t.score),
            }
            for t in report.techniques
        ],
        "gaps": [t.technique for t in report.gaps],
        "notes": list(report.notes),
    }
