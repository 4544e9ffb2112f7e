"""ATT&CK commands: import, sync, status, the object views, search, versions and diff."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from defensemap.cli.common import (
    DomainOpt,
    JsonOpt,
    VersionOpt,
    ensure_unique,
    import_app,
    parse_with_progress,
    print_outcomes,
    reading,
    set_json,
    settings,
    writing,
)
from defensemap.cli.output import console, err_console, print_json
from defensemap.kb.documents import envelope, to_json
from defensemap.model.attack import AttackBundle

attack_app = typer.Typer(help="ATT&CK releases: versions and diffs.", no_args_is_help=True)


def load_with_progress(paths: list[Path], attack_version: str | None) -> list[AttackBundle]:
    from defensemap.sources.attack_stix import load_bundle

    bundles = parse_with_progress(paths, lambda p: load_bundle(p, attack_version), "bundles")
    ensure_unique(bundles, lambda b: f"{b.domain} {b.version}", lambda b: b.source, "ATT&CK")
    return bundles


def store_bundles(bundles: list[AttackBundle], json_out: bool, kind: str) -> None:
    from defensemap.store.attack import ingest_attack

    with writing() as store:
        outcomes = ingest_attack(store, bundles)
    print_outcomes(
        outcomes,
        kind,
        json_out,
        lambda o: f"{o.status}: ATT&CK {o.domain} {o.version} ({sum(o.counts.values())} objects)",
    )


@import_app.command("attack")
def import_attack(
    files: Annotated[list[Path], typer.Argument(help="STIX 2.0/2.1 bundles, .json or .json.gz.")],
    attack_version: Annotated[
        str | None,
        typer.Option(
            "--attack-version", help="Version to record when the bundle does not say (STIX 2.0)."
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Import ATT&CK bundles; all files land in one transaction or none does."""
    set_json(json_out)
    bundles = load_with_progress(files, attack_version)
    store_bundles(bundles, json_out, "import-attack")


def status(json_out: JsonOpt = False) -> None:
    """What is loaded, where the store is, and what to run next."""
    from defensemap.kb.status import status as compute

    set_json(json_out)
    doc = compute(settings())
    if json_out:
        print_json(envelope("status", to_json(doc)))
        return
    out = console()
    out.print(f"[bold]Data home[/]  {doc.home}")
    size = f"{doc.store_bytes / 2**20:.1f} MiB" if doc.store_exists else "not created yet"
    out.print(f"[bold]Store[/]      {doc.store_path} ({size}, schema v{doc.schema_version})")
    if doc.attack:
        table = Table(title="ATT&CK releases", title_justify="left")
        for column in (
            "Domain",
            "Version",
            "STIX",
            "Objects",
            "Relationships",
            "Imported",
            "Source",
        ):
            table.add_column(column)
        for r in doc.attack:
            table.add_row(
                r.domain,
                r.version,
                r.spec_version,
                str(r.objects),
                str(r.relationships),
                r.imported_at,
                r.source,
            )
        out.print(table)
    if doc.mappings:
        table = Table(title="Mappings", title_justify="left")
        for column in ("Framework", "Version", "Mapped on ATT&CK", "Domain", "Rows"):
            table.add_column(column)
        for m in doc.mappings:
            table.add_row(m.framework, m.framework_version, m.attack_version, m.domain, str(m.rows))
        out.print(table)
    for step in doc.next_steps:
        out.print(f"[yellow]next:[/] {step}", markup=True, highlight=False)


def _describe_command(kind: str, help_text: str) -> Callable[..., None]:
    def command(
        ident: Annotated[str, typer.Argument(help="ATT&CK id or exact name.")],
        attack_version: VersionOpt = None,
        domain: DomainOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        from defensemap.kb.attack import describe

        set_json(json_out)
        library = _library_for(kind)
        if library is not None and library.broken:
            err_console().print(f"warning: {library.note}", markup=False, soft_wrap=True)
        with reading() as store:
            doc = describe(store, kind, ident, attack_version, domain)
            if library is not None:
                from defensemap.kb.detections import with_detections

                doc = with_detections(store, doc, library.detections)
        if json_out:
            print_json(envelope(kind, to_json(doc)))
            return
        from defensemap.cli.render import render

        render(console(), doc)
        if library is not None and library.note and not library.broken:
            console().print(f"({library.note})", style="dim", markup=False)

    command.__doc__ = help_text
    return command


def _library_for(kind: str) -> Any:
    """The detection library for the technique page ("How to detect it"), else ``None``."""
    if kind != "technique":
        return None
    from defensemap.cli.detections import library_detections

    return library_detections()


def search(
    text: Annotated[str, typer.Argument(help="Words, an id (T1021.007) or a name.")],
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="Maximum results.")] = 20,
    kind: Annotated[
        list[str] | None, typer.Option("--kind", help="Only these kinds (technique, group, ...).")
    ] = None,
    attack_version: VersionOpt = None,
    domain: DomainOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Ranked full-text search over every ATT&CK object kind."""
    from defensemap.kb.search import search as run_search

    set_json(json_out)
    with reading() as store:
        results = run_search(
            store, text, limit=limit, kinds=kind, attack_version=attack_version, domain=domain
        )
    if json_out:
        print_json(envelope("search", {"query": text, "results": [to_json(r) for r in results]}))
        return
    table = Table(title=f"{len(results)} result(s) for {text!r}", title_justify="left", expand=True)
    for column in ("ID", "Name", "Kind", "Source", "Match"):
        table.add_column(column, no_wrap=column != "Name")
    for r in results:
        flag = " (revoked)" if r.revoked else " (deprecated)" if r.deprecated else ""
        table.add_row(
            r.id or "-",
            f"{r.name or ''}{flag}",
            r.kind,
            _source(r),
            r.match,
        )
    console().print(table)


def _source(result: Any) -> str:
    """Where a search hit comes from: an ATT&CK release or a mapping framework."""
    if result.kind == "sigma-rule":
        return "SigmaHQ community rule (DRL-1.1)"
    domain = result.domain.removesuffix("-attack")
    if result.framework:
        from defensemap.model.mappings import framework_label

        return f"{framework_label(result.framework)} (ATT&CK {result.attack_version} {domain})"
    return f"ATT&CK {result.attack_version} {domain}"


@attack_app.command("versions")
def versions(json_out: JsonOpt = False) -> None:
    """ATT&CK releases in the store."""
    from defensemap.store.attack import list_releases

    set_json(json_out)
    with reading() as store:
        releases = list_releases(store)
    rows = [
        {
            "domain": r.domain,
            "version": r.version,
            "spec_version": r.spec_version,
            "imported_at": r.imported_at,
            "source": r.source,
            "sha256": r.sha256,
        }
        for r in releases
    ]
    if json_out:
        print_json(envelope("attack-versions", rows))
        return
    table = Table(title="ATT&CK versions", title_justify="left")
    for column in ("Domain", "Version", "STIX", "Imported", "Source"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["domain"], row["version"], row["spec_version"], row["imported_at"], row["source"]
        )
    console().print(table)


@attack_app.command("diff")
def attack_diff(
    old: Annotated[str, typer.Argument(help="Older version, e.g. 16.1.")],
    new: Annotated[str, typer.Argument(help="Newer version, e.g. 18.1.")],
    domain: Annotated[
        str, typer.Option("--domain", help="enterprise, mobile or ics.")
    ] = "enterprise",
    kind: Annotated[str, typer.Option("--kind", help="Object kind to compare.")] = "technique",
    json_out: JsonOpt = False,
) -> None:
    """Added, removed, revoked, deprecated, renamed and changed objects between versions."""
    from defensemap.kb.diff import diff

    set_json(json_out)
    with reading() as store:
        doc = diff(store, old, new, domain, kind)
    if json_out:
        print_json(envelope("attack-diff", to_json(doc)))
        return
    _print_diff(doc)


def _print_diff(doc: Any) -> None:
    out = console()
    out.print(f"[bold]ATT&CK {doc.domain}: {doc.old_version} → {doc.new_version} ({doc.kind})[/]")
    sections = [
        ("Added", [(r.id, r.name, "") for r in doc.added]),
        ("Removed", [(r.id, r.name, "") for r in doc.removed]),
        (
            "Revoked",
            [
                (r.ref.id, r.ref.name, f"→ {r.replaced_by.id if r.replaced_by else '?'}")
                for r in doc.revoked
            ],
        ),
        ("Deprecated", [(r.id, r.name, "") for r in doc.deprecated]),
        ("Renamed", [(r.ref.id, r.ref.name, f"was {r.old_name}") for r in doc.renamed]),
        ("Changed", [(c.ref.id, c.ref.name, ", ".join(c.fields)) for c in doc.changed]),
    ]
    for title, rows in sections:
        table = Table(title=f"{title} ({len(rows)})", title_justify="left")
        for column in ("ID", "Name", ""):
            table.add_column(column)
        for row in rows:
            table.add_row(row[0] or "-", row[1] or "", row[2])
        out.print(table)


DESCRIBED = {
    "technique": "A technique or sub-technique: description, tactics, procedures, mitigations, "
    "detection.",
    "group": "A group: aliases, techniques and software it uses, campaigns.",
    "software": "Malware or a tool: techniques, groups and campaigns that use it.",
    "campaign": "A campaign: attribution, dates, techniques and software used.",
    "mitigation": "A mitigation and the techniques it addresses.",
    "tactic": "A tactic and its techniques in matrix order.",
    "data-component": "A data component: log sources and the techniques it detects.",
    "detection-strategy": "An ATT&CK v18 detection strategy with its analytics.",
}


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    for kind, help_text in DESCRIBED.items():
        app.command(kind, help=help_text)(_describe_command(kind, help_text))
    app.command("search")(search)
    app.add_typer(attack_app, name="attack")
