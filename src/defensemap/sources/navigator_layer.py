"""ATT&CK Navigator layers (layer format 4.x): the format's rules as checks, and reading a layer
file someone painted (a threat profile, a coverage map) into a typed :class:`Layer`.

The checks live here, below ``export``, so exported layers (``export.navigator.validate_layer``)
and imported ones are held to the same rules; an import also needs what the format leaves
optional but a layer without is useless (a ``techniques`` list, a layer version we know).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from defensemap.errors import SchemaError, SourceLocation
from defensemap.model.attack import DOMAINS
from defensemap.sources.files import read_json

SUPPORTED_LAYER_VERSIONS = ("4.3", "4.4", "4.5")
_TECHNIQUE_ID = re.compile(r"^T\d{4}(\.\d{3})?$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$")
_TACTIC = re.compile(r"^[a-z]+(-[a-z]+)*$")
_ATTACK_VERSION = re.compile(r"^\d+(\.\d+)?$")
_SHOWN_PROBLEMS = 3


@dataclass(frozen=True)
class LayerProblem:
    """One rule a layer document breaks, at a JSON pointer (``/techniques/3/score``)."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer}: {self.message}"


@dataclass(frozen=True)
class LayerEntry:
    """One ``techniques[]`` item; ``tactic`` is ``None`` when it applies to every tactic."""

    technique_id: str
    tactic: str | None = None
    score: float | None = None
    comment: str = ""
    enabled: bool = True
    color: str = ""
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Layer:
    """A Navigator layer as read; ``attack_version`` is ``versions.attack`` (``"18"``) or
    ``None`` when the layer does not say; ``score_range`` is the gradient's (min, max)."""

    path: str
    name: str
    domain: str
    attack_version: str | None
    layer_version: str
    description: str
    techniques: tuple[LayerEntry, ...]
    score_range: tuple[float, float] | None = None

    def technique_ids(self) -> list[str]:
        """The enabled techniques, once each, sorted: what the layer selects."""
        return sorted({e.technique_id for e in self.techniques if e.enabled})


def _check_metadata(items: Any, where: str, problems: list[LayerProblem]) -> None:
    if not isinstance(items, list):
        problems.append(LayerProblem(where, "must be a list"))
        return
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(LayerProblem(f"{where}/{i}", "must be an object"))
        elif item.get("divider") is True:
            continue
        elif not isinstance(item.get("name"), str) or not isinstance(item.get("value"), str):
            problems.append(LayerProblem(f"{where}/{i}", "needs string 'name' and 'value'"))


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_technique(entry: Any, where: str, problems: list[LayerProblem]) -> None:
    if not isinstance(entry, dict):
        problems.append(LayerProblem(where, "must be an object"))
        return
    technique_id = entry.get("techniqueID")
    if not isinstance(technique_id, str) or not _TECHNIQUE_ID.match(technique_id):
        problems.append(LayerProblem(f"{where}/techniqueID", "must look like T1234 or T1234.001"))
    if "tactic" in entry and not (
        isinstance(entry["tactic"], str) and _TACTIC.match(entry["tactic"])
    ):
        problems.append(
            LayerProblem(f"{where}/tactic", "must be a tactic shortname like 'lateral-movement'")
        )
    score = entry.get("score")
    if score is not None and not _is_number(score):
        problems.append(LayerProblem(f"{where}/score", "must be a number"))
    color = entry.get("color", "")
    if color and not (isinstance(color, str) and _COLOR.match(color)):
        problems.append(LayerProblem(f"{where}/color", "must be '' or #rrggbb"))
    if "comment" in entry and not isinstance(entry["comment"], str):
        problems.append(LayerProblem(f"{where}/comment", "must be a string"))
    for key in ("enabled", "showSubtechniques"):
        if key in entry and not isinstance(entry[key], bool):
            problems.append(LayerProblem(f"{where}/{key}", "must be true or false"))
    if "metadata" in entry:
        _check_metadata(entry["metadata"], f"{where}/metadata", problems)


def _check_gradient(gradient: Any, problems: list[LayerProblem]) -> None:
    colors = gradient.get("colors") if isinstance(gradient, dict) else None
    if (
        not isinstance(colors, list)
        or len(colors) < 2
        or not all(isinstance(c, str) and _COLOR.match(c) for c in colors)
    ):
        problems.append(LayerProblem("/gradient/colors", "needs two or more #rrggbb colours"))
    bounds: list[float] = []
    for key in ("minValue", "maxValue"):
        value = gradient.get(key) if isinstance(gradient, dict) else None
        if not _is_number(value):
            problems.append(LayerProblem(f"/gradient/{key}", "must be a number"))
        else:
            bounds.append(value)
    if len(bounds) == 2 and not bounds[1] > bounds[0]:
        problems.append(LayerProblem("/gradient/maxValue", "must be greater than minValue"))


def _check_header(document: dict[str, Any], problems: list[LayerProblem]) -> None:
    if not isinstance(document.get("name"), str) or not document["name"]:
        problems.append(LayerProblem("/name", "required non-empty string"))
    versions = document.get("versions")
    if not isinstance(versions, dict) or not isinstance(versions.get("layer"), str):
        problems.append(LayerProblem("/versions/layer", "required string"))
    elif not re.match(r"^\d+\.\d+$", versions["layer"]):
        problems.append(LayerProblem("/versions/layer", "must look like 4.5"))
    if document.get("domain") not in DOMAINS:
        problems.append(LayerProblem("/domain", f"must be one of {', '.join(DOMAINS)}"))


def layer_problems(document: Any) -> list[LayerProblem]:
    """Every rule of the layer format a document breaks; empty when valid."""
    if not isinstance(document, dict):
        return [LayerProblem("/", "a layer must be a JSON object")]
    problems: list[LayerProblem] = []
    _check_header(document, problems)
    techniques = document.get("techniques", [])
    if not isinstance(techniques, list):
        problems.append(LayerProblem("/techniques", "must be a list"))
    else:
        for i, entry in enumerate(techniques):
            _check_technique(entry, f"/techniques/{i}", problems)
    if document.get("gradient") is not None:
        _check_gradient(document["gradient"], problems)
    for i, item in enumerate(document.get("legendItems", []) or []):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("label"), str)
            or not _COLOR.match(str(item.get("color", "")))
        ):
            problems.append(
                LayerProblem(f"/legendItems/{i}", "needs a string label and a #rrggbb color")
            )
    if "metadata" in document:
        _check_metadata(document["metadata"], "/metadata", problems)
    return problems


def _check_import_versions(versions: dict[str, Any], problems: list[LayerProblem]) -> None:
    layer_version = versions.get("layer")
    known = isinstance(layer_version, str) and re.match(r"^\d+\.\d+$", layer_version)
    if known and layer_version not in SUPPORTED_LAYER_VERSIONS:
        problems.append(
            LayerProblem(
                "/versions/layer",
                f"layer format {layer_version} is not supported "
                f"(read: {', '.join(SUPPORTED_LAYER_VERSIONS)})",
            )
        )
    attack = versions.get("attack")
    if attack is not None and not (isinstance(attack, str) and _ATTACK_VERSION.match(attack)):
        problems.append(LayerProblem("/versions/attack", 'must be a version like "18"'))


def import_problems(document: Any) -> list[LayerProblem]:
    """:func:`layer_problems` plus what reading a layer needs: techniques, a known layer
    version (4.3–4.5) and an ATT&CK version that looks like one."""
    problems = layer_problems(document)
    if not isinstance(document, dict):
        return problems
    if "techniques" not in document:
        problems.append(LayerProblem("/techniques", "required list of techniques"))
    if not isinstance(document.get("description", ""), str):
        problems.append(LayerProblem("/description", "must be a string"))
    versions = document.get("versions")
    if isinstance(versions, dict):
        _check_import_versions(versions, problems)
    return problems


def _entry(item: dict[str, Any]) -> LayerEntry:
    score = item.get("score")
    return LayerEntry(
        technique_id=item["techniqueID"],
        tactic=item.get("tactic"),
        score=None if score is None else float(score),
        comment=item.get("comment", ""),
        enabled=item.get("enabled", True),
        color=item.get("color", ""),
        metadata=tuple(
            (m["name"], m["value"]) for m in item.get("metadata", []) if not m.get("divider")
        ),
    )


def parse_layer(document: Any, path: str) -> Layer:
    """A layer document (already decoded JSON) checked and typed; ``path`` names it in errors."""
    problems = import_problems(document)
    if problems:
        first, rest = problems[0], problems[1:]
        more = f" (and {len(rest)} more: {', '.join(p.pointer for p in rest[:_SHOWN_PROBLEMS])}"
        more += ", …)" if len(rest) > _SHOWN_PROBLEMS else ")"
        raise SchemaError(
            f"not a valid Navigator layer: {first.message}{more if rest else ''}",
            location=SourceLocation(path=path, pointer=first.pointer),
            hint="export the layer again from the ATT&CK Navigator (layer format 4.3–4.5)",
        )
    versions = document["versions"]
    gradient = document.get("gradient")
    return Layer(
        path=path,
        name=document["name"],
        domain=document["domain"],
        attack_version=versions.get("attack"),
        layer_version=versions["layer"],
        description=document.get("description", ""),
        techniques=tuple(_entry(item) for item in document["techniques"]),
        score_range=(gradient["minValue"], gradient["maxValue"]) if gradient else None,
    )


def load_layer(path: Path) -> Layer:
    """Read a Navigator layer file (``.json`` or ``.json.gz``); malformed layers raise a
    :class:`~defensemap.errors.SchemaError` naming the file and the JSON pointer."""
    return parse_layer(read_json(path).data, str(path))
