"""Rich terminal views of the knowledge-base documents."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from defensemap.kb.documents import (
    AnalyticDoc,
    CampaignDoc,
    Common,
    DataComponentDoc,
    DetectionStrategyDoc,
    GroupDoc,
    MitigationDoc,
    ObjectRef,
    Related,
    SoftwareDoc,
    TacticDoc,
    TechniqueDoc,
)
from defensemap.model.citations import Reference

_CODE_TAG = re.compile(r"</?code>")


def markdown(text: str) -> Markdown:
    """ATT&CK markdown for the terminal; its inline ``<code>`` tags become code spans."""
    return Markdown(_CODE_TAG.sub("`", text or ""), hyperlinks=False)


def label(item: ObjectRef | None) -> str:
    if item is None:
        return "-"
    flags = " (revoked)" if item.revoked else " (deprecated)" if item.deprecated else ""
    return f"{item.id or '-'} {item.name or ''}{flags}".strip()


def _header(common: Common, facts: list[tuple[str, str]]) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for key, value in facts:
        if value:
            grid.add_row(key, value)
    status = common.status
    if status.resolved_from:
        grid.add_row("Note", f"{status.resolved_from} was revoked; showing its replacement")
    if status.revoked:
        grid.add_row("Status", f"REVOKED, replaced by {label(status.revoked_by)}")
    elif status.deprecated:
        grid.add_row("Status", "DEPRECATED")
    grid.add_row(
        "Version", f"{common.version or '-'} (ATT&CK {common.attack_version}, {common.domain})"
    )
    grid.add_row(
        "Created / modified", f"{(common.created or '')[:10]} / {(common.modified or '')[:10]}"
    )
    if common.url:
        grid.add_row("URL", common.url)
    title = Text.assemble((f"{common.id or ''} ", "bold cyan"), (common.name or "", "bold"))
    return Panel(grid, title=title, title_align="left")


def _related_table(title: str, items: Iterable[Related], *, with_text: bool = True) -> Table | None:
    rows = list(items)
    if not rows:
        return None
    table = Table(
        title=f"{title} ({len(rows)})", title_justify="left", show_lines=with_text, expand=True
    )
    table.add_column("ID", no_wrap=True, style="cyan")
    table.add_column("Name", ratio=1)
    if with_text:
        table.add_column("Description", ratio=3)
    for item in rows:
        cells: list[RenderableType] = [item.ref.id or "-", item.ref.name or ""]
        if with_text:
            cells.append(markdown(item.description))
        table.add_row(*cells)
    return table


def _refs_table(title: str, items: Iterable[ObjectRef]) -> Table | None:
    rows = list(items)
    if not rows:
        return None
    table = Table(title=f"{title} ({len(rows)})", title_justify="left")
    table.add_column("ID", style="cyan", no_wrap=True)
    table.add_column("Name")
    for item in rows:
        table.add_row(item.id or "-", item.name or "")
    return table


def _references(refs: list[Reference]) -> Table | None:
    if not refs:
        return None
    table = Table(title="References", title_justify="left", show_header=False, box=None)
    table.add_column(justify="right", style="dim")
    table.add_column()
    for ref in refs:
        text = ref.description or ref.source_name
        table.add_row(f"[{ref.number}]", f"{text} {ref.url or ''}".strip())
    return table


def _analytics(analytics: list[AnalyticDoc]) -> Table | None:
    if not analytics:
        return None
    table = Table(title="Analytics", title_justify="left", show_lines=True, expand=True)
    table.add_column("ID", style="cyan", no_wrap=True)
    table.add_column("Platforms")
    table.add_column("Description", ratio=2)
    table.add_column("Log sources (data component: name / channel)", ratio=2)
    for analytic in analytics:
        sources = "\n".join(
            f"{label(s.data_component)}: {s.name or ''} / {s.channel or ''}"
            for s in analytic.log_sources
        )
        table.add_row(
            analytic.ref.id or "-",
            ", ".join(analytic.platforms),
            markdown(analytic.description),
            sources,
        )
    return table


def _technique(doc: TechniqueDoc) -> list[RenderableType | None]:
    c = doc.common
    facts = [
        ("Tactics", ", ".join(f"{t.id} {t.name}" for t in doc.tactics)),
        ("Platforms", ", ".join(doc.platforms)),
        ("Parent", label(doc.parent) if doc.parent else ""),
        ("Sub-techniques", ", ".join(label(s) for s in doc.subtechniques)),
    ]
    facts += [(k.replace("_", " ").capitalize(), _plain(v)) for k, v in doc.attributes.items()]
    parts: list[RenderableType | None] = [_header(c, facts), markdown(c.description)]
    parts += [
        _related_table("Procedure examples: groups", doc.groups),
        _related_table("Procedure examples: software", doc.software),
        _related_table("Procedure examples: campaigns", doc.campaigns),
        _related_table("Mitigations", doc.mitigations),
    ]
    for strategy in doc.detection_strategies:
        parts.append(Text.assemble(("Detection strategy ", "bold"), label(strategy.ref)))
        parts.append(_analytics(strategy.analytics))
    if doc.data_components:
        table = Table(title="Data components", title_justify="left")
        for column in ("ID", "Name", "Data source", "Via"):
            table.add_column(column)
        for use in doc.data_components:
            table.add_row(use.ref.id or "-", use.ref.name or "", label(use.data_source), use.via)
        parts.append(table)
    if doc.legacy_detection.strip():
        parts += [Text("Detection (ATT&CK text)", style="bold"), markdown(doc.legacy_detection)]
    parts.append(_references(doc.references))
    return parts


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _group(doc: GroupDoc) -> list[RenderableType | None]:
    return [
        _header(doc.common, [("Aliases", ", ".join(doc.aliases))]),
        markdown(doc.common.description),
        _related_table("Techniques used", doc.techniques),
        _related_table("Software", doc.software),
        _related_table("Campaigns", doc.campaigns),
        _references(doc.references),
    ]


def _software(doc: SoftwareDoc) -> list[RenderableType | None]:
    facts = [
        ("Type", doc.software_type),
        ("Aliases", ", ".join(doc.aliases)),
        ("Platforms", ", ".join(doc.platforms)),
    ]
    return [
        _header(doc.common, facts),
        markdown(doc.common.description),
        _related_table("Techniques used", doc.techniques),
        _related_table("Groups that use it", doc.groups),
        _related_table("Campaigns", doc.campaigns),
        _references(doc.references),
    ]


def _campaign(doc: CampaignDoc) -> list[RenderableType | None]:
    facts = [
        ("Aliases", ", ".join(doc.aliases)),
        ("First seen", (doc.first_seen or "")[:10]),
        ("Last seen", (doc.last_seen or "")[:10]),
        ("Attributed to", ", ".join(label(a.ref) for a in doc.attributed_to)),
    ]
    return [
        _header(doc.common, facts),
        markdown(doc.common.description),
        _related_table("Techniques used", doc.techniques),
        _related_table("Software", doc.software),
        _references(doc.references),
    ]


def _mitigation(doc: MitigationDoc) -> list[RenderableType | None]:
    return [
        _header(doc.common, []),
        markdown(doc.common.description),
        _related_table("Techniques addressed", doc.techniques),
        _references(doc.references),
    ]


def _tactic(doc: TacticDoc) -> list[RenderableType | None]:
    table = Table(title=f"Techniques ({len(doc.techniques)})", title_justify="left")
    table.add_column("ID", style="cyan")
    table.add_column("Name")
    table.add_column("Sub-techniques")
    for item in doc.techniques:
        table.add_row(
            item.ref.id or "-", item.ref.name or "", ", ".join(label(s) for s in item.subtechniques)
        )
    facts = [("Shortname", doc.shortname), ("Position", str(doc.position or "-"))]
    return [
        _header(doc.common, facts),
        markdown(doc.common.description),
        table,
        _references(doc.references),
    ]


def _data_component(doc: DataComponentDoc) -> list[RenderableType | None]:
    sources = Table(title="Log sources", title_justify="left")
    sources.add_column("Name")
    sources.add_column("Channel")
    for source in doc.log_sources:
        sources.add_row(source.name or "", source.channel or "")
    return [
        _header(doc.common, [("Data source", label(doc.data_source) if doc.data_source else "")]),
        markdown(doc.common.description),
        sources if doc.log_sources else None,
        _related_table("Techniques detected", doc.techniques, with_text=False),
        _refs_table("Analytics using it", doc.analytics),
        _references(doc.references),
    ]


def _detection_strategy(doc: DetectionStrategyDoc) -> list[RenderableType | None]:
    return [
        _header(doc.common, []),
        markdown(doc.common.description),
        _refs_table("Techniques detected", doc.techniques),
        _analytics(doc.analytics),
        _references(doc.references),
    ]


_VIEWS: dict[type, Any] = {
    TechniqueDoc: _technique,
    GroupDoc: _group,
    SoftwareDoc: _software,
    CampaignDoc: _campaign,
    MitigationDoc: _mitigation,
    TacticDoc: _tactic,
    DataComponentDoc: _data_component,
    DetectionStrategyDoc: _detection_strategy,
}


def render(console: Console, doc: Any) -> None:
    parts = [p for p in _VIEWS[type(doc)](doc) if p is not None]
    console.print(Group(*parts))
