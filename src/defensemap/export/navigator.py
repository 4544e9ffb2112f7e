"""ATT&CK Navigator layers (layer format 4.5): building blocks and a format check.

The check (``sources.navigator_layer``, written from the layer format's documented rules)
validates exports and imported layers alike, without a network fetch of the Navigator's schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from defensemap.sources.navigator_layer import layer_problems

LAYER_VERSION = "4.5"
NAVIGATOR_VERSION = "5.1.0"


@dataclass
class LayerTechnique:
    technique_id: str
    score: float | None = None
    color: str = ""
    comment: str = ""
    metadata: list[tuple[str, str]] = field(default_factory=list)
    tactic: str | None = None
    enabled: bool = True

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"techniqueID": self.technique_id}
        if self.tactic is not None:
            entry["tactic"] = self.tactic
        if self.score is not None:
            entry["score"] = self.score
        entry.update(
            {
                "color": self.color,
                "comment": self.comment,
                "enabled": self.enabled,
                "metadata": [{"name": n, "value": v} for n, v in self.metadata],
                "links": [],
                "showSubtechniques": False,
            }
        )
        return entry


def _technique_order(technique: LayerTechnique) -> tuple[str, str]:
    return technique.technique_id, technique.tactic or ""


def layer(
    *,
    name: str,
    description: str,
    domain: str,
    attack_version: str,
    techniques: list[LayerTechnique],
    gradient: tuple[str, ...] = ("#ffffff", "#66b1ff"),
    legend: list[tuple[str, str]] | None = None,
    metadata: list[tuple[str, str]] | None = None,
    max_value: float | None = None,
) -> dict[str, Any]:
    """A complete layer document; techniques sorted by id (then tactic) so output is
    byte-stable. The gradient spans 0 to ``max_value`` (default: the highest score)."""
    scores = [t.score for t in techniques if t.score is not None]
    return {
        "name": name,
        "versions": {
            "attack": attack_version.split(".", maxsplit=1)[0],
            "navigator": NAVIGATOR_VERSION,
            "layer": LAYER_VERSION,
        },
        "domain": domain,
        "description": description,
        "sorting": 0,
        "layout": {
            "layout": "side",
            "aggregateFunction": "average",
            "showID": True,
            "showName": True,
        },
        "hideDisabled": False,
        "techniques": [t.to_json() for t in sorted(techniques, key=_technique_order)],
        "gradient": {
            "colors": list(gradient),
            "minValue": 0,
            "maxValue": max_value or max(scores, default=1) or 1,
        },
        "legendItems": [{"label": label, "color": color} for label, color in legend or []],
        "metadata": [{"name": n, "value": v} for n, v in metadata or []],
        "links": [],
        "showTacticRowBackground": False,
        "tacticRowBackground": "#dddddd",
        "selectTechniquesAcrossTactics": True,
        "selectSubtechniquesWithParent": False,
        "selectVisibleTechniques": False,
    }


def validate_layer(document: Any) -> list[str]:
    """Problems with a layer document, as ``/json/pointer: message``; empty when valid."""
    return [str(problem) for problem in layer_problems(document)]
