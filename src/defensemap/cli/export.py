"""`defensemap export …`: write mappings (and, later, detections) in other tools' formats."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from defensemap.cli.common import DomainOpt, export_app, reading
from defensemap.cli.mappings import FrameworkOpt, FrameworkVersionOpt
from defensemap.cli.output import console
from defensemap.errors import InputError

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
