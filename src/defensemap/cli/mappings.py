"""Mappings Explorer commands: import, mappings, capability, frameworks, framework, export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from defensemap.cli.common import (
    DomainOpt,
    JsonOpt,
    VersionOpt,
    ensure_unique,
    export_app,
    import_app,
    parse_with_progress,
    print_outcomes,
    reading,
    set_json,
    writing,
)
from defensemap.cli.output import console, print_json
from defensemap.kb.documents import envelope, to_json
from defensemap.model.mappings import MappingFile

FrameworkOpt = Annotated[
    str | None, typer.Option("--framework", help="Framework id, e.g. nist_800_53, m365.")
]
FrameworkVersionOpt = Annotated[
    str | None,
    typer.Option("--framework-version", help="Framework version, e.g. rev5 or 07/18/2025."),
]
MappedOnOpt = Annotated[
    str | None,
    typer.Option("--mapped-on", help="The ATT&CK version the mapping file was made for."),
]


def load_mapping_files(paths: list[Path]) -> list[MappingFile]:
    from defensemap.sources.mappings import load_mapping_file

    files = parse_with_progress(paths, load_mapping_file, "mappings")
    ensure_unique(
        files,
        lambda f: (
            f"{f.info.framework} {f.info.framework_version} on ATT&CK"
            f" {f.info.attack_version} {f.info.domain}"
        ),
        lambda f: f.source,
        "mappings",
    )
    return files


def store_mapping_files(files: list[MappingFile], json_out: bool, kind: str) -> None:
    from defensemap.store.mappings import ingest_mappings

    with writing() as store:
        outcomes = ingest_mappings(store, files)
    print_outcomes(
        outcomes,
        kind,
        json_out,
        lambda o: (
            f"{o.status}: {o.framework} {o.framework_version} on ATT&CK {o.attack_version}"
            f" {o.domain} ({o.rows_stored} rows, {o.rows_in_file - o.rows_stored} duplicates)"
        ),
    )


@import_app.command("mappings")
def import_mappings(
    paths: Annotated[
        list[Path], typer.Argument(help="Mapping files or folders (searched recursively).")
    ],
    json_out: JsonOpt = False,
) -> None:
    """Import Mappings Explorer files; all land in one transaction or none does."""
    from defensemap.sources.mappings import collect_files

    set_json(json_out)
    store_mapping_files(load_mapping_files(collect_files(paths)), json_out, "import-mappings")


def mappings(
    technique: Annotated[str, typer.Argument(help="ATT&CK technique id, e.g. T1021.007.")],
    framework: FrameworkOpt = None,
    framework_version: FrameworkVersionOpt = None,
    all_versions: Annotated[
        bool, typer.Option("--all-versions", help="Every mapping set, not only the newest.")
    ] = False,
    attack_version: VersionOpt = None,
    domain: DomainOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """What counters a technique: every mapped capability per framework."""
    from defensemap.kb.mappings import technique_mappings

    set_json(json_out)
    with reading() as store:
        blocks = technique_mappings(
            store,
            technique,
            attack_version=attack_version,
            domain=domain,
            framework=framework,
            framework_version=framework_version,
            all_versions=all_versions,
        )
    if json_out:
        print_json(
            envelope(
                "mappings", {"technique": technique, "frameworks": [to_json(b) for b in blocks]}
            )
        )
        return
    from defensemap.cli.render import render_mappings

    if not blocks:
        console().print(f"No mappings for {technique} in the loaded frameworks.")
    render_mappings(console(), blocks)


def capability(
    capability_id: Annotated[str, typer.Argument(help="Capability id, e.g. IA-05.")],
    framework: FrameworkOpt = None,
    framework_version: FrameworkVersionOpt = None,
    mapped_on: MappedOnOpt = None,
    attack_version: VersionOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """A capability and every technique it maps to, per mapping type."""
    from defensemap.kb.mappings import capability as find_capability

    set_json(json_out)
    with reading() as store:
        docs = find_capability(
            store,
            capability_id,
            framework=framework,
            framework_version=framework_version,
            mapped_on=mapped_on,
            attack_version=attack_version,
        )
    if json_out:
        print_json(envelope("capability", [to_json(d) for d in docs]))
        return
    from defensemap.cli.render import render_capability

    for doc in docs:
        render_capability(console(), doc)


def frameworks(json_out: JsonOpt = False) -> None:
    """Loaded frameworks, their versions and counts."""
    from defensemap.kb.mappings import frameworks as list_frameworks

    set_json(json_out)
    with reading() as store:
        summaries = list_frameworks(store)
    if json_out:
        print_json(envelope("frameworks", [to_json(s) for s in summaries]))
        return
    table = Table(title="Frameworks", title_justify="left")
    for column in (
        "Framework",
        "Version",
        "ATT&CK",
        "Domain",
        "Rows",
        "Dup.",
        "Capabilities",
        "Techniques",
        "Non-mappable",
    ):
        table.add_column(column)
    for summary in summaries:
        for s in summary.sets:
            table.add_row(
                f"{summary.label} ({summary.framework})",
                s.framework_version,
                s.attack_version,
                s.domain.removesuffix("-attack"),
                str(s.rows_stored),
                str(s.duplicate_rows),
                str(s.capabilities),
                str(s.techniques),
                str(s.non_mappable),
            )
    console().print(table)


def framework(
    name: Annotated[str, typer.Argument(help="Framework id, e.g. m365 or nist_800_53.")],
    framework_version: FrameworkVersionOpt = None,
    mapped_on: MappedOnOpt = None,
    domain: DomainOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """A framework's capability groups and capabilities, and its non-mappable techniques."""
    from defensemap.kb.lookup import normalize_domain
    from defensemap.kb.mappings import framework_doc

    set_json(json_out)
    with reading() as store:
        doc = framework_doc(
            store,
            name,
            framework_version=framework_version,
            mapped_on=mapped_on,
            domain=normalize_domain(domain),
        )
    if json_out:
        print_json(envelope("framework", to_json(doc)))
        return
    from defensemap.cli.render import render_framework

    render_framework(console(), doc)


def register(app: typer.Typer) -> None:
    app.command("mappings")(mappings)
    app.command("capability")(capability)
    app.command("frameworks")(frameworks)
    app.command("framework")(framework)
    app.add_typer(export_app, name="export")
