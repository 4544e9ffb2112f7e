"""ATT&CK Navigator layer commands: `navigator import FILE` (what a layer holds and what it
would mean as a threat profile or as claimed coverage) and `navigator merge A B -o OUT`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from defensemap.cli.common import JsonOpt, VersionOpt, reading, set_json
from defensemap.cli.output import console, print_json
from defensemap.errors import DefensemapError, InputError
from defensemap.kb.documents import envelope
from defensemap.sources.navigator_layer import Layer, LayerEntry, load_layer
from defensemap.store.db import Store

navigator_app = typer.Typer(
    help="Read, check and merge ATT&CK Navigator layers (layer format 4.3–4.5).",
    no_args_is_help=True,
)
USES = ("profile", "controls")
_COMMENT_WIDTH = 60


@dataclass(frozen=True)
class KnownTechnique:
    name: str
    status: str  # current, revoked or deprecated


@dataclass(frozen=True)
class Resolution:
    """A layer read against the store: the release its ids were checked on (None when that
    domain is not loaded), what it selects, and notes on what did not resolve."""

    label: str | None
    techniques: dict[str, KnownTechnique]
    selected: list[str]
    notes: list[str]

    def status(self, technique_id: str) -> str | None:
        if self.label is None:
            return None
        known = self.techniques.get(technique_id)
        return known.status if known else "unknown"


def _known_techniques(
    store: Store, layer: Layer, attack_version: str | None
) -> tuple[str, dict[str, KnownTechnique]]:
    from defensemap.kb.lookup import ReleaseView, select_releases

    release = select_releases(store, attack_version, layer.domain)[0]
    techniques = {
        o.attack_id: KnownTechnique(
            o.name or o.attack_id,
            "revoked" if o.revoked else "deprecated" if o.deprecated else "current",
        )
        for o in ReleaseView(store, release).of_kind("technique")
        if o.attack_id
    }
    return f"{release.domain} {release.version}", techniques


def _profile_techniques(store: Store, path: Path, attack_version: str | None) -> list[str]:
    """Exactly what ``coverage --layer FILE`` resolves (kb.threat does the selecting)."""
    from defensemap.kb.threat import resolve_profile

    profile = resolve_profile(store, layers=(path,), attack_version=attack_version)
    return sorted(profile.techniques())


def resolve(layer: Layer, use: str, attack_version: str | None) -> Resolution:
    """Names and states from the store's release of the layer's domain, and the technique
    list the layer stands for as a profile or as claimed coverage."""
    notes: list[str] = []
    label: str | None = None
    techniques: dict[str, KnownTechnique] = {}
    with reading() as store:
        try:
            label, techniques = _known_techniques(store, layer, attack_version)
        except DefensemapError as error:
            notes.append(f"technique ids not checked against ATT&CK: {error}")
        if use == "controls":
            selected = sorted(
                {e.technique_id for e in layer.techniques if e.enabled and (e.score or 0) > 0}
            )
        else:
            try:
                selected = _profile_techniques(store, Path(layer.path), attack_version)
            except DefensemapError as error:
                selected = []
                notes.append(f"coverage --layer would refuse this layer: {error}")
    return Resolution(label, techniques, selected, notes)


def _percent(entry: LayerEntry, layer: Layer) -> float | None:
    """A score on the layer's own scale (its gradient, else 0..highest score) as 0–100."""
    if entry.score is None:
        return None
    scores = [e.score for e in layer.techniques if e.score is not None]
    low, high = layer.score_range or (0.0, max(scores))
    if high <= low:
        return 100.0 if entry.score > low else 0.0
    return round(min(max((entry.score - low) / (high - low), 0.0), 1.0) * 100, 1)


def _current(release: Resolution) -> set[str]:
    return {tid for tid, known in release.techniques.items() if known.status == "current"}


def import_document(layer: Layer, use: str, release: Resolution) -> dict[str, Any]:
    """What `navigator import` shows, as the `navigator-import` JSON document."""
    techniques = [
        {
            "technique_id": e.technique_id,
            "name": known.name if (known := release.techniques.get(e.technique_id)) else None,
            "tactic": e.tactic,
            "score": e.score,
            "percent": _percent(e, layer) if use == "controls" else None,
            "comment": e.comment,
            "enabled": e.enabled,
            "status": release.status(e.technique_id),
        }
        for e in layer.techniques
    ]
    odd = sorted({e.technique_id for e in layer.techniques} - _current(release))
    notes = list(release.notes)
    if release.label and odd:
        notes.append(f"not current techniques of {release.label}: {', '.join(odd)}")
    return {
        "path": layer.path,
        "name": layer.name,
        "domain": layer.domain,
        "attack_version": layer.attack_version,
        "layer_version": layer.layer_version,
        "description": layer.description,
        "as": use,
        "release": release.label,
        "techniques": techniques,
        "selected": release.selected,
        "notes": notes,
    }


def _print_import(doc: dict[str, Any]) -> None:
    out = console()
    out.print(
        f"{doc['path']}: {doc['name']!r}, {doc['domain']}, ATT&CK "
        f"{doc['attack_version'] or '(not stated)'}, layer format {doc['layer_version']}, "
        f"{len(doc['techniques'])} entries",
        markup=False,
        soft_wrap=True,
    )
    controls = doc["as"] == "controls"
    table = Table()
    table.add_column("technique", no_wrap=True)
    for column in ("name", "tactic", "score", *(["coverage %"] if controls else [])):
        table.add_column(column)
    for column in ("enabled", "status", "comment"):
        table.add_column(column)
    for t in doc["techniques"]:
        comment = t["comment"].replace("\n", " ")
        cells = [t["technique_id"], t["name"] or "", t["tactic"] or "(all)", _score(t["score"])]
        cells += [_score(t["percent"])] if controls else []
        cells += ["yes" if t["enabled"] else "no", t["status"] or "", comment[:_COMMENT_WIDTH]]
        table.add_row(*cells)
    out.print(table)
    for note in doc["notes"]:
        out.print(f"note: {note}", markup=False, soft_wrap=True)
    _print_meaning(doc)


def _score(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _print_meaning(doc: dict[str, Any]) -> None:
    out = console()
    selected = doc["selected"]
    if doc["as"] == "profile":
        out.print(
            f"threat profile (as coverage --layer reads it): {len(selected)} technique(s): "
            f"{', '.join(selected) or '-'}\nuse it: defensemap coverage --layer {doc['path']}",
            markup=False,
            soft_wrap=True,
        )
    else:
        out.print(
            f"claimed coverage: {len(selected)} technique(s) enabled with a score above 0: "
            f"{', '.join(selected) or '-'}",
            markup=False,
            soft_wrap=True,
        )


@navigator_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="A Navigator layer (.json).")],
    use: Annotated[
        str, typer.Option("--as", help="Read it as a threat profile or as claimed coverage.")
    ] = "profile",
    attack_version: VersionOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show what a layer holds (techniques, tactics, scores, comments) and what it would mean:
    the technique list of a threat profile (`--as profile`, for `coverage --layer FILE`) or
    the coverage it claims (`--as controls`, scores on the layer's own scale as 0–100)."""
    set_json(json_out)
    if use not in USES:
        raise InputError(f"unknown --as {use!r}", hint=f"use {' or '.join(USES)}")
    layer = load_layer(file)
    doc = import_document(layer, use, resolve(layer, use, attack_version))
    if json_out:
        print_json(envelope("navigator-import", doc))
    else:
        _print_import(doc)


@navigator_app.command("merge")
def merge_command(
    files: Annotated[list[Path], typer.Argument(help="Two or more layers.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Layer file to write.")],
    op: Annotated[
        str, typer.Option("--op", help="Score arithmetic: sum, max, min or mean.")
    ] = "max",
    name: Annotated[str | None, typer.Option("--name", help="Name of the merged layer.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Merge layers technique by technique (techniqueID + tactic): the score is --op over the
    layers that score the technique (absent is not 0), comments joined, enabled if enabled
    anywhere. Domains and ATT&CK versions must match."""
    from defensemap.export.layer_merge import merge_layers

    set_json(json_out)
    layers = [load_layer(path) for path in files]
    merged = merge_layers(layers, op, name)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(merged.content)
    techniques = merged.document["techniques"]
    summary = {
        "output": str(output),
        "name": merged.document["name"],
        "op": op,
        "domain": merged.domain,
        "attack_version": merged.attack_version,
        "layers": [{"path": x.path, "name": x.name, "entries": len(x.techniques)} for x in layers],
        "entries": len(techniques),
        "scored": sum(1 for t in techniques if "score" in t),
    }
    if json_out:
        print_json(envelope("navigator-merge", summary))
        return
    console().print(
        f"wrote {output}: {summary['entries']} entries ({summary['scored']} scored, {op}) "
        f"from {len(layers)} layers",
        markup=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(navigator_app, name="navigator")
