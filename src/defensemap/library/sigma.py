"""The Sigma rule a detection publishes: its ``sigma`` logic completed with the detection's
own metadata, so every exported, converted or validated rule carries the same identity as the
detection. The detection is the single source: its techniques become the technique tags, its
id, author, dates, references, false positives and severity overwrite the rule's."""

from __future__ import annotations

import re
from typing import Any

from defensemap.model.detection import Detection

_TECHNIQUE_TAG = re.compile(r"^attack\.t\d", re.IGNORECASE)
_ORDER = (
    "title",
    "id",
    "status",
    "description",
    "references",
    "author",
    "date",
    "modified",
    "tags",
    "logsource",
    "detection",
    "falsepositives",
    "level",
)


def effective_sigma(detection: Detection) -> dict[str, Any] | None:
    """The detection's Sigma rule as published; ``None`` when it has no Sigma logic."""
    source = detection.sigma
    if source is None:
        return None
    rule: dict[str, Any] = dict(source)
    rule["title"] = source.get("title") or detection.title
    rule["id"] = str(detection.id)
    rule["status"] = source.get("status") or detection.status
    rule["description"] = _one_line(source.get("description") or detection.description)
    rule["description"] = rule["description"] or detection.title
    references = [r for r in detection.references if "attack.mitre.org" not in r]
    if references:  # ATT&CK pages travel as tags, as Sigma wants
        rule["references"] = references
    rule["author"] = detection.author or "defensemap"
    if detection.created:
        rule["date"] = detection.created.isoformat()
    if detection.modified and detection.modified != detection.created:
        rule["modified"] = detection.modified.isoformat()
    rule["tags"] = _tags(source, detection)
    rule["falsepositives"] = list(detection.false_positives) or source.get(
        "falsepositives", ["Unknown"]
    )
    rule["level"] = detection.severity  # severities are Sigma levels
    return _ordered(rule)


def _tags(source: dict[str, Any], detection: Detection) -> list[str]:
    """The rule's own non-technique tags (tactics …), then the detection's techniques."""
    kept = [
        t for t in source.get("tags") or [] if isinstance(t, str) and not _TECHNIQUE_TAG.match(t)
    ]
    techniques = [f"attack.{t.lower()}" for t in detection.techniques]
    return list(dict.fromkeys([*kept, *techniques]))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _ordered(rule: dict[str, Any]) -> dict[str, Any]:
    """Keys in the order SigmaHQ writes them, unknown keys last."""
    known = {k: rule[k] for k in _ORDER if k in rule}
    return known | {k: v for k, v in rule.items() if k not in known}
