"""Alerts: one per matching event, in the shape every output format shares."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson

from defensemap.logs.duck import RECORD_COLUMN, SOURCE_COLUMN

TIME_COLUMNS = ("Timestamp", "TimeGenerated", "TimeCreated", "CreatedDateTime", "ActivityDateTime")


@dataclass(frozen=True)
class Alert:
    rule_id: str
    rule_title: str
    techniques: list[str]
    severity: str
    language: str
    time: str | None
    source: str
    event: dict[str, Any] = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "rule_title": self.rule_title,
            "techniques": self.techniques,
            "severity": self.severity,
            "language": self.language,
            "time": self.time,
            "source": self.source,
            "event": self.event,
        }


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def make_alert(
    *,
    rule_id: str,
    title: str,
    techniques: list[str],
    severity: str,
    language: str,
    row: dict[str, Any],
) -> Alert:
    """An alert for one result row; provenance columns become ``source`` (file:record)."""
    event = {
        k: _plain(v)
        for k, v in row.items()
        if k not in (SOURCE_COLUMN, RECORD_COLUMN) and v is not None
    }
    source = str(row.get(SOURCE_COLUMN) or "")
    if row.get(RECORD_COLUMN) is not None:
        source += f":{row[RECORD_COLUMN]}"
    time = next((str(event[c]) for c in TIME_COLUMNS if c in event), None)
    return Alert(rule_id, title, techniques, severity, language, time, source, event)


def to_ndjson(alerts: Iterable[Alert]) -> str:
    return "".join(orjson.dumps(a.to_json(), default=str).decode() + "\n" for a in alerts)


def to_csv(alerts: Iterable[Alert]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["rule_id", "rule_title", "techniques", "severity", "language", "time", "source", "event"]
    )
    for a in alerts:
        writer.writerow(
            [
                a.rule_id,
                a.rule_title,
                ";".join(a.techniques),
                a.severity,
                a.language,
                a.time or "",
                a.source,
                orjson.dumps(a.event, default=str).decode(),
            ]
        )
    return buffer.getvalue()


def summary(alerts: Iterable[Alert]) -> Counter[tuple[str, str, str]]:
    """Alerts per (rule id, title, language)."""
    return Counter((a.rule_id, a.rule_title, a.language) for a in alerts)
