"""An independent check of ATT&CK Navigator layers for tests: the layer format 4.5 as a JSON
Schema, written from the format's specification (``layers/spec/v4.5/layerformat.md`` in
mitre-attack/attack-navigator), separately from ``defensemap.export.navigator.validate_layer``.

The Navigator publishes no JSON Schema of its own; this one follows the spec's tables (types,
required fields, enumerations) and is closed (``additionalProperties: false``) so a misspelt
field fails too. ``maxValue > minValue`` is spec prose, checked in :func:`schema_errors`.
"""

from __future__ import annotations

from typing import Any

_HEX = {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"}
_META = {
    "type": "array",
    "items": {
        "oneOf": [
            {
                "type": "object",
                "required": ["name", "value"],
                "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
                "additionalProperties": False,
            },
            {
                "type": "object",
                "required": ["divider"],
                "properties": {"divider": {"type": "boolean"}},
                "additionalProperties": False,
            },
        ]
    },
}
_LINKS = {
    "type": "array",
    "items": {
        "type": "object",
        "anyOf": [{"required": ["label", "url"]}, {"required": ["divider"]}],
        "properties": {
            "label": {"type": "string"},
            "url": {"type": "string", "pattern": "^[a-z][a-z0-9+.-]*://"},
            "divider": {"type": "boolean"},
        },
        "additionalProperties": False,
    },
}
LAYER_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["name", "domain"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "versions": {
            "type": "object",
            "required": ["navigator", "layer"],
            "additionalProperties": False,
            "properties": {
                "attack": {"type": "string", "pattern": "^[0-9]+$"},
                "navigator": {"type": "string", "pattern": "^[0-9]+\\.[0-9]+\\.[0-9]+$"},
                "layer": {"const": "4.5"},
            },
        },
        "domain": {"enum": ["enterprise-attack", "mobile-attack", "ics-attack"]},
        "description": {"type": "string"},
        "customDataURL": {"type": "string"},
        "filters": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"platforms": {"type": "array", "items": {"type": "string"}}},
        },
        "sorting": {"enum": [0, 1, 2, 3]},
        "layout": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "layout": {"enum": ["side", "flat", "mini"]},
                "showID": {"type": "boolean"},
                "showName": {"type": "boolean"},
                "showAggregateScores": {"type": "boolean"},
                "countUnscored": {"type": "boolean"},
                "aggregateFunction": {"enum": ["average", "min", "max", "sum"]},
                "expandedSubtechniques": {"enum": ["none", "all", "annotated"]},
            },
        },
        "hideDisabled": {"type": "boolean"},
        "techniques": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["techniqueID"],
                "additionalProperties": False,
                "properties": {
                    "techniqueID": {"type": "string", "pattern": "^T[0-9]{4}(\\.[0-9]{3})?$"},
                    "tactic": {"type": "string", "pattern": "^[a-z]+(-[a-z]+)*$"},
                    "comment": {"type": "string"},
                    "enabled": {"type": "boolean"},
                    "score": {"type": "number"},
                    "color": {"anyOf": [{"const": ""}, _HEX]},
                    "metadata": _META,
                    "links": _LINKS,
                    "showSubtechniques": {"type": "boolean"},
                },
            },
        },
        "gradient": {
            "type": "object",
            "required": ["colors", "minValue", "maxValue"],
            "additionalProperties": False,
            "properties": {
                "colors": {"type": "array", "minItems": 2, "items": _HEX},
                "minValue": {"type": "number"},
                "maxValue": {"type": "number"},
            },
        },
        "legendItems": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["label", "color"],
                "additionalProperties": False,
                "properties": {"label": {"type": "string"}, "color": _HEX},
            },
        },
        "showTacticRowBackground": {"type": "boolean"},
        "tacticRowBackground": _HEX,
        "selectTechniquesAcrossTactics": {"type": "boolean"},
        "selectSubtechniquesWithParent": {"type": "boolean"},
        "selectVisibleTechniques": {"type": "boolean"},
        "metadata": _META,
        "links": _LINKS,
    },
}


def schema_errors(layer: Any) -> list[str]:
    """Problems the schema finds (``/json/pointer: message``); empty when the layer is valid."""
    from jsonschema import Draft202012Validator

    errors = [
        f"/{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in Draft202012Validator(LAYER_SCHEMA).iter_errors(layer)
    ]
    gradient = layer.get("gradient") if isinstance(layer, dict) else None
    bounds = [gradient.get(k) for k in ("minValue", "maxValue")] if gradient else []
    if all(isinstance(b, int | float) for b in bounds) and bounds and bounds[1] <= bounds[0]:
        errors.append("/gradient: maxValue must be > minValue")
    return errors
