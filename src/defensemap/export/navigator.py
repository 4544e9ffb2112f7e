"""ATT&CK Navigator layers (layer format 4.5): building blocks and a format check.

The check is written here from the layer format's documented rules so exports (and, later,
imported layers) are validated without a network fetch of the Navigator's schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

LAYER_VERSION = "4.5"
NAVIGATOR_VERSION = "5.1.0"
DOMAINS = ("enterprise-attack", "mobile-attack", "ics-attack")
_TECHNIQUE_ID = re.compile(r"^T\d{4}(\.\d{3})?$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$")
_TACTIC = re.compile(r"^[a-z]+(-[a-z]+)*$")


@dataclass
class LayerTechnique:
    technique_id: str
    score: float | None = None
    color: str = ""
    comment: str = ""
    metadata: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"techniqueID": self.technique_id}
        if self.score is not None:
            entry["score"] = self.score
        entry.update(
            {
                "color": self.color,
                "comment": self.comment,
                "enabled": True,
                "metadata": [{"name": n, "value": v} for n, v in self.metadata],
                "links": [],
                "showSubtechniques": False,
            }
        )
        return entry


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
) -> dict[str, Any]:
    """A complete layer document; techniques sorted by id so output is byte-stable."""
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
        "techniques": [t.to_json() for t in sorted(techniques, key=lambda t: t.technique_id)],
        "gradient": {
            "colors": list(gradient),
            "minValue": 0,
            "maxValue": max(scores, default=1) or 1,
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


def _check_metadata(items: Any, where: str, errors: list[str]) -> None:
    if not isinstance(items, list):
        errors.append(f"{where}: must be a list")
        return
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(f"{where}/{i}: must be an object")
        elif item.get("divider") is True:
            continue
        elif not isinstance(item.get("name"), str) or not isinstance(item.get("value"), str):
            errors.append(f"{where}/{i}: needs string 'name' and 'value'")


def _check_technique(entry: Any, where: str, errors: list[str]) -> None:
    if not isinstance(entry, dict):
        errors.append(f"{where}: must be an object")
        return
    technique_id = entry.get("techniqueID")
    if not isinstance(technique_id, str) or not _TECHNIQUE_ID.match(technique_id):
        errors.append(f"{where}/techniqueID: must look like T1234 or T1234.001")
    if "tactic" in entry and not (
        isinstance(entry["tactic"], str) and _TACTIC.match(entry["tactic"])
    ):
        errors.append(f"{where}/tactic: must be a tactic shortname like 'lateral-movement'")
    score = entry.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
        errors.append(f"{where}/score: must be a number")
    color = entry.get("color", "")
    if color and not (isinstance(color, str) and _COLOR.match(color)):
        errors.append(f"{where}/color: must be '' or #rrggbb")
    for key in ("comment",):
        if key in entry and not isinstance(entry[key], str):
            errors.append(f"{where}/{key}: must be a string")
    for key in ("enabled", "showSubtechniques"):
        if key in entry and not isinstance(entry[key], bool):
            errors.append(f"{where}/{key}: must be true or false")
    if "metadata" in entry:
        _check_metadata(entry["metadata"], f"{where}/metadata", errors)


def validate_layer(document: Any) -> list[str]:
    """Problems with a layer document, as ``/json/pointer: message``; empty when valid."""
    errors: list[str] = []
    if not isinstance(document, dict):
        return ["/: a layer must be a JSON object"]
    if not isinstance(document.get("name"), str) or not document["name"]:
        errors.append("/name: required non-empty string")
    versions = document.get("versions")
    if not isinstance(versions, dict) or not isinstance(versions.get("layer"), str):
        errors.append("/versions/layer: required string")
    elif not re.match(r"^\d+\.\d+$", versions["layer"]):
        errors.append("/versions/layer: must look like 4.5")
    if document.get("domain") not in DOMAINS:
        errors.append(f"/domain: must be one of {', '.join(DOMAINS)}")
    techniques = document.get("techniques", [])
    if not isinstance(techniques, list):
        errors.append("/techniques: must be a list")
    else:
        for i, entry in enumerate(techniques):
            _check_technique(entry, f"/techniques/{i}", errors)
    gradient = document.get("gradient")
    if gradient is not None:
        colors = gradient.get("colors") if isinstance(gradient, dict) else None
        if (
            not isinstance(colors, list)
            or len(colors) < 2
            or not all(isinstance(c, str) and _COLOR.match(c) for c in colors)
        ):
            errors.append("/gradient/colors: needs two or more #rrggbb colours")
        bounds = []
        for key in ("minValue", "maxValue"):
            value = gradient.get(key) if isinstance(gradient, dict) else None
            if isinstance(value, bool) or not isinstance(value, int | float):
                errors.append(f"/gradient/{key}: must be a number")
            else:
                bounds.append(value)
        if len(bounds) == 2 and not bounds[1] > bounds[0]:
            errors.append("/gradient/maxValue: must be greater than minValue")
    for i, item in enumerate(document.get("legendItems", []) or []):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("label"), str)
            or not _COLOR.match(str(item.get("color", "")))
        ):
            errors.append(f"/legendItems/{i}: needs a string label and a #rrggbb color")
    if "metadata" in document:
        _check_metadata(document["metadata"], "/metadata", errors)
    return errors
