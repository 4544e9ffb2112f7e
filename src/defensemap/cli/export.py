"""`defensemap export …`: write mappings and detections in other tools' formats."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from defensemap.cli.common import DomainOpt, export_app, reading
from defensemap.cli.mappings import FrameworkOpt, FrameworkVersionOpt
from defensemap.cli.output import console, err_console
from defensemap.errors import ExportError, InputError, StoreError

FORMATS = ("csv", "xlsx", "json", "yaml", "stix", "navigator")


@export_app.command("mappings")
def export_mappings(
    framework: FrameworkOpt = None,
    framework_version: FrameworkVersionOpt = None,
    attack_version: Annotated[
        str | None,
        typer.Option("--attack-version", help="Choose the set mapped on this ATT&CK version."),
    ] = None,
    domain: DomainOpt = None,
    capability_group: Annotated[
        str | None, typer.Option("--capability-group", help="Only this capability group.")
    ] = None,
    capability: Annotated[
        str | None, typer.Option("--capability", help="Only this capability.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help=f"One of: {', '.join(FORMATS)}.")] = "csv",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write.")] = None,
) -> None:
    """Export one mapping set (newest unless narrowed) as CSV, XLSX, JSON, YAML, STIX 2.1
    or an ATT&CK Navigator layer."""
    from defensemap.export.mappings import EXPORTERS, build_export
    from defensemap.kb.lookup import normalize_domain

    if framework is None:
        raise InputError("--framework is required", hint="see `defensemap frameworks`")
    if fmt not in EXPORTERS:
        raise InputError(f"unknown format {fmt!r}", hint=f"use one of: {', '.join(EXPORTERS)}")
    if output is None:
        raise InputError("-o FILE is required")
    with reading() as store:
        export = build_export(
            store,
            framework,
            framework_version=framework_version,
            mapped_on=attack_version,
            domain=normalize_domain(domain),
            capability_group=capability_group,
            capability=capability,
            with_techniques=fmt == "stix",
        )
        content = EXPORTERS[fmt](export)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(content)
    console().print(
        f"wrote {output} ({fmt}, {len(export.rows)} rows of {export.title})",
        markup=False,
        soft_wrap=True,
    )


@export_app.command("detections")
def export_detections_command(
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="sentinel-yaml, sentinel-arm, defender-custom, elastic-ndjson, splunk, sigma"
            " or navigator.",
        ),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder to write into.")],
    technique: Annotated[
        list[str] | None,
        typer.Option("--technique", help="Only detections of this technique (and its subs)."),
    ] = None,
) -> None:
    """Export the detection library in a SIEM's or tool's import format; detections a format
    cannot carry are listed with the reason and not written."""
    from defensemap.export.detections import FORMATS, NEEDS_ATTACK, export_detections
    from defensemap.library.loader import load_library

    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    library = load_library()
    chosen = _select(library, technique or [])
    attack = _attack_context(fmt, chosen) if fmt in NEEDS_ATTACK else None
    result = export_detections(chosen, fmt, attack)
    output.mkdir(parents=True, exist_ok=True)
    for name, content in sorted(result.files.items()):
        (output / name).write_bytes(content)
    console().print(
        f"wrote {len(result.files)} file(s) to {output} ({fmt}): {len(result.exported)}"
        f" detection(s) exported, {len(result.skipped)} skipped",
        markup=False,
        soft_wrap=True,
    )
    for skipped in result.skipped:
        err_console().print(
            f"skipped {skipped.detection_id} ({skipped.title}): {skipped.reason}",
            markup=False,
            soft_wrap=True,
        )


def _select(library: Any, techniques: list[str]) -> list[Any]:
    """The library's detections, or those of the given techniques, in library order."""
    if not techniques:
        chosen = list(library.detections)
    else:
        wanted = {
            str(d.detection.id)
            for t in techniques
            for d in library.for_technique(t, with_subs=True)
        }
        chosen = [d for d in library.detections if str(d.detection.id) in wanted]
    if not chosen:
        raise InputError(
            "no detections to export" + (f" for {', '.join(techniques)}" if techniques else ""),
            hint="list them with `defensemap detections`",
        )
    return chosen


def _attack_context(fmt: str, chosen: list[Any]) -> Any:
    from defensemap.kb.vocabulary import attack_vocabulary
    from defensemap.store.db import LOAD_HINT

    try:
        with reading() as store:
            return attack_vocabulary(store)
    except StoreError as exc:
        raise ExportError(
            f"the {fmt} export needs ATT&CK tactics and technique names: {exc.message}",
            hint=LOAD_HINT,
        ) from None
