"""Detection commands: `import sigma`, `detections`, `detection ID`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from defensemap.cli.common import (
    DomainOpt,
    JsonOpt,
    VersionOpt,
    import_app,
    reading,
    set_json,
    settings,
    writing,
)
from defensemap.cli.output import console, err_console, print_json, progress
from defensemap.cli.render import detections_table
from defensemap.errors import DefensemapError, NotFoundError, SourceError
from defensemap.kb.documents import envelope, to_json
from defensemap.store.db import Store


@dataclass
class LibraryDetections:
    """Our detections as loaded for a view, and a note when there are none to load."""

    detections: list[Any] = field(default_factory=list)
    note: str | None = None
    error: DefensemapError | None = None

    @property
    def broken(self) -> bool:
        return self.error is not None


def library_detections() -> LibraryDetections:
    """The detection library; a missing, empty or broken library is an empty list with a note
    (views that merely include detections must still work)."""
    from defensemap.library.loader import load_library_for_views

    load = load_library_for_views(cache_dir=settings().home / "cache")
    return LibraryDetections(list(load.library.detections), load.note, load.error)


@contextmanager
def optional_store() -> Iterator[Store | None]:
    """The store read-only when there is one (detections work without it, less resolved)."""
    if not settings().store_path.exists():
        yield None
        return
    with reading() as store:
        yield store


# --- import sigma ------------------------------------------------------------------------------


def _scan_with_progress(paths: list[Path]) -> Any:
    from rich.progress import BarColumn, TextColumn

    from defensemap.sources.sigma_rules import scan_rules

    with progress(
        TextColumn("reading Sigma rules"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        transient=True,
    ) as bar:
        task = bar.add_task("scan", total=None)
        scan = scan_rules(paths, lambda done, total: bar.update(task, completed=done, total=total))
    return scan


@import_app.command("sigma")
def import_sigma(
    paths: Annotated[
        list[Path],
        typer.Argument(help="SigmaHQ rule files or folders, e.g. a SigmaHQ/sigma checkout."),
    ],
    strict: Annotated[
        bool, typer.Option("--strict", help="Abort (store unchanged) if any file is unusable.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Import SigmaHQ rules as community rules (Detection Rule License 1.1), replacing the
    previous set. Files that are not usable rules are skipped and listed with why (with
    --strict they abort the import); the rules that load are stored in one transaction."""
    from defensemap.store.sigma import replace_rules

    set_json(json_out)
    scan = _scan_with_progress(paths)
    if strict and scan.skipped:
        first = scan.skipped[0]
        raise SourceError(
            f"{first.where}: {first.reason} ({len(scan.skipped)} unusable file(s);"
            " nothing was imported)",
            hint="fix or remove the file, or import without --strict to skip unusable files",
        )
    if not scan.rules:
        raise SourceError(
            f"no usable Sigma rule in {scan.found} file(s) under {', '.join(scan.sources)}"
            + (
                f"; first problem: {scan.skipped[0].where}: {scan.skipped[0].reason}"
                if scan.skipped
                else ""
            ),
            hint="pass SigmaHQ rule files or folders (*.yml)",
        )
    with writing() as store:
        outcome = replace_rules(store, scan)
    _report_import(outcome, json_out)


def _report_import(outcome: Any, json_out: bool) -> None:
    from defensemap.model.sigma_rules import LICENCE

    if json_out:
        data = {**outcome.__dict__, "licence": LICENCE}
        data["skipped"] = [s.__dict__ for s in outcome.skipped]
        print_json(envelope("import-sigma", data))
        return
    err = err_console()
    for skipped in outcome.skipped:
        err.print(f"skipped: {skipped.where}: {skipped.reason}", markup=False, soft_wrap=True)
    out = console()
    out.print(_logsource_table(outcome.by_logsource))
    replaced = f", replacing {outcome.replaced}" if outcome.replaced else ""
    out.print(
        f"imported {outcome.loaded} community Sigma rule(s) from {outcome.found} file(s)"
        f" ({len(outcome.skipped)} skipped){replaced}",
        markup=False,
        soft_wrap=True,
    )
    from defensemap.kb.detections import COMMUNITY_NOTE

    out.print(COMMUNITY_NOTE, markup=False, soft_wrap=True)


def _logsource_table(by_logsource: dict[str, int], shown: int = 25) -> Table:
    table = Table(title="Rules per logsource (product/category)", title_justify="left")
    table.add_column("Logsource")
    table.add_column("Rules", justify="right")
    for name, count in list(by_logsource.items())[:shown]:
        table.add_row(name, str(count))
    rest = list(by_logsource.values())[shown:]
    if rest:
        table.add_row(f"… {len(rest)} more logsources", str(sum(rest)))
    return table


# --- detections ---------------------------------------------------------------------------------


def detections(
    technique: Annotated[
        str | None, typer.Option("--technique", help="Only for this technique (and its subs).")
    ] = None,
    platform: Annotated[
        str | None, typer.Option("--platform", help="e.g. Windows, Azure AD, aws.")
    ] = None,
    severity: Annotated[
        str | None, typer.Option("--severity", help="e.g. high, or high+ for high and above.")
    ] = None,
    source: Annotated[
        str, typer.Option("--source", help="ours, community (imported SigmaHQ rules) or all.")
    ] = "ours",
    json_out: JsonOpt = False,
) -> None:
    """List detections: defensemap's own, and with --source community or all the imported
    SigmaHQ rules (attributed to their authors)."""
    from defensemap.kb.detections import DetectionFilter, community_notes, list_detections

    set_json(json_out)
    wanted = DetectionFilter(technique, platform, severity, source)
    ours = library_detections() if source != "community" else LibraryDetections()
    if ours.error is not None:
        raise ours.error
    notes = [ours.note] if ours.note else []
    with optional_store() as store:
        found = list_detections(store, ours.detections, wanted)
        notes += community_notes(store, wanted)
    if json_out:
        print_json(
            envelope("detections", {"detections": [to_json(s) for s in found], "notes": notes})
        )
        return
    console().print(detections_table(found, f"{len(found)} detection(s)", with_source=True))
    for note in notes:
        err_console().print(f"note: {note}", markup=False, soft_wrap=True)


# --- detection ID -------------------------------------------------------------------------------


def detection(
    ident: Annotated[str, typer.Argument(help="A detection id, or a community (SigmaHQ) rule id.")],
    attack_version: VersionOpt = None,
    domain: DomainOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """One detection with every field an analyst needs; for a community rule its YAML,
    description and attribution (author, licence, link)."""
    from defensemap.cli.detection_view import render_community_rule, render_detection
    from defensemap.kb.detections import community_rule_doc, detection_doc

    set_json(json_out)
    loaded = _our_detection(ident)
    with optional_store() as store:
        if loaded is not None:
            doc: Any = detection_doc(store, loaded, attack_version, domain)
        elif store is None:
            raise NotFoundError(
                f"no detection {ident!r} in the library, and no store for community rules",
                hint="list detections with `defensemap detections`",
            )
        else:
            doc = community_rule_doc(store, ident, attack_version, domain)
    if loaded is None:
        if json_out:
            print_json(envelope(doc.kind_name, doc.to_json()))
        else:
            render_community_rule(console(), doc)
        return
    support = conversion_support(loaded.detection)
    if json_out:
        data = {**doc.to_json(), "support_matrix": [row.to_json() for row in support]}
        print_json(envelope(doc.kind_name, data))
    else:
        render_detection(console(), doc, support)


def conversion_support(detection: Any) -> list[Any]:
    """The conversion support matrix row per SIEM target (exact, approximate and how, or
    refused and why), from library/convert.py."""
    from defensemap.library.convert import support_matrix

    return support_matrix([detection])


def _our_detection(ident: str) -> Any:
    """The library detection with this id, or ``None`` (it may be a community rule)."""
    library = library_detections()
    wanted = ident.strip().lower()
    for loaded in library.detections:
        if str(loaded.detection.id) == wanted:
            return loaded
    if library.broken:
        err_console().print(f"warning: {library.note}", markup=False, soft_wrap=True)
    return None


def register(app: typer.Typer) -> None:
    app.command("detections")(detections)
    app.command("detection")(detection)
