"""Merge ATT&CK Navigator layers technique by technique (docs/coverage.md, "Navigator layers").

An entry is keyed by technique id and tactic (no tactic is its own key: the entry applies to
every tactic). Its score is the chosen operation over the layers that *score* it — a layer
without the entry, or with the entry but no score, is absent from the arithmetic, never 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from defensemap.errors import InputError
from defensemap.export.navigator import LayerTechnique, layer, validate_layer
from defensemap.sources.navigator_layer import Layer, LayerEntry

OPERATIONS: dict[str, Callable[[list[float]], float]] = {
    "sum": sum,
    "max": max,
    "min": min,
    "mean": lambda scores: sum(scores) / len(scores),
}


@dataclass(frozen=True)
class MergedLayer:
    """The merged document, its JSON bytes (validated), and what went into it."""

    document: dict[str, Any]
    content: bytes
    op: str
    domain: str
    attack_version: str | None


def _major(version: str | None) -> str | None:
    return None if version is None else version.split(".", maxsplit=1)[0]


def _common(layers: Sequence[Layer], what: str, value: Callable[[Layer], str | None]) -> str | None:
    """The one value every layer that states it agrees on; an error naming them otherwise."""
    stated: dict[str, list[str]] = {}
    for item in layers:
        if (v := value(item)) is not None:
            stated.setdefault(v, []).append(item.path)
    if len(stated) > 1:
        detail = "; ".join(f"{v}: {', '.join(paths)}" for v, paths in sorted(stated.items()))
        raise InputError(
            f"the layers differ in {what} ({detail})",
            hint=f"merge only layers of the same {what}",
        )
    return next(iter(stated), None)


def _number(value: float) -> float:
    """Six decimals at most; whole numbers as integers (``7``, not ``7.0``)."""
    rounded = round(value, 6)
    return int(rounded) if rounded.is_integer() else rounded


def _merge_entries(
    entries: list[LayerEntry], combine: Callable[[list[float]], float]
) -> LayerTechnique:
    scores = [e.score for e in entries if e.score is not None]
    colors = {e.color for e in entries}
    comments = list(dict.fromkeys(e.comment for e in entries if e.comment))
    metadata = list(dict.fromkeys(m for e in entries for m in e.metadata))
    score = combine(scores) if scores else None
    return LayerTechnique(
        entries[0].technique_id,
        None if score is None else _number(score),
        color=colors.pop() if len(colors) == 1 else "",
        comment="\n".join(comments),
        metadata=metadata,
        tactic=entries[0].tactic,
        enabled=any(e.enabled for e in entries),
    )


def merge_layers(layers: Sequence[Layer], op: str, name: str | None = None) -> MergedLayer:
    """One layer from several of the same domain and ATT&CK version."""
    if op not in OPERATIONS:
        raise InputError(f"unknown merge operation {op!r}", hint=f"use {', '.join(OPERATIONS)}")
    if len(layers) < 2:
        raise InputError("merge needs two or more layers")
    domain = _common(layers, "domain", lambda item: item.domain) or ""
    version = _common(layers, "ATT&CK version", lambda item: _major(item.attack_version))
    grouped: dict[tuple[str, str], list[LayerEntry]] = {}
    for item in layers:
        for entry in item.techniques:
            grouped.setdefault((entry.technique_id, entry.tactic or ""), []).append(entry)
    techniques = [_merge_entries(e, OPERATIONS[op]) for e in grouped.values()]
    top = max((t.score for t in techniques if t.score is not None), default=0.0)
    document = layer(
        name=name or "merge of " + ", ".join(item.name for item in layers),
        description=f"{op} of the scores of: " + "; ".join(item.name for item in layers),
        domain=domain,
        attack_version=version or "",
        techniques=techniques,
        max_value=top if top > 0 else 1,
    )
    if version is None:
        del document["versions"]["attack"]
    problems = validate_layer(document)
    if problems:
        raise InputError(f"the merged layer is not valid: {problems[0]}")
    content = orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"
    return MergedLayer(document, content, op, domain, version)
