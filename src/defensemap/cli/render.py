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
    AttackResolution,
    CampaignDoc,
    Common,
    DataComponentDoc,
    DetectionStrategyDoc,
    DetectionSummary,
    FrameworkMappings,
    GroupDoc,
    MappingView,
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
    parts.append(Text("What counters it", style="bold"))
    parts += _mapping_tables(doc.mappings) or [
        Text("No mappings loaded for this technique.", style="dim")
    ]
    parts.append(Text("How to detect it", style="bold"))
    parts += _how_to_detect(doc)
    return parts


def _how_to_detect(doc: TechniqueDoc) -> list[RenderableType]:
    """Our detections, then the community rules with their attribution."""
    parts: list[RenderableType] = [
        _our_detections(doc.detections)
        or Text("No defensemap detection names this technique.", style="dim")
    ]
    parts += _community_rules(doc.common.id or "", doc.community_rules) or [
        Text(
            "No community (SigmaHQ) rule tagged with this technique is imported"
            " (`defensemap import sigma PATH`).",
            style="dim",
        )
    ]
    return parts


def _our_detections(items: list[DetectionSummary]) -> Table | None:
    if not items:
        return None
    return detections_table(items, f"defensemap detections ({len(items)})", with_source=False)


def detections_table(items: list[DetectionSummary], title: str, *, with_source: bool) -> Table:
    """Detection summaries, ours and (``with_source``) community rules with their author."""
    table = Table(title=title, title_justify="left", expand=True)
    columns = [("ID", 2), ("Title", 4), ("Techniques", 2), ("Severity", 1), ("Confidence", 1)]
    columns += [("Tables / logsource", 2), ("Source", 2)] if with_source else [("Tables", 2)]
    for column, ratio in columns:
        table.add_column(
            column, ratio=ratio, overflow="fold", min_width=36 if column == "ID" else None
        )
    for item in items:
        row = [
            item.id,
            item.title,
            ", ".join(item.techniques),
            item.severity or "-",
            item.confidence or "-",
            ", ".join(item.tables) or item.logsource or "-",
        ]
        if with_source:
            row.append(f"SigmaHQ\n{item.attribution.author}" if item.attribution else "defensemap")
        table.add_row(*row)
    return table


COMMUNITY_SHOWN = 25


def _community_rules(technique: str, items: list[DetectionSummary]) -> list[RenderableType]:
    """The most severe rules (all of them with ``--json``), each with author and link."""
    if not items:
        return []
    table = Table(
        title=f"Community rules — SigmaHQ ({len(items)})",
        title_justify="left",
        show_lines=True,
        expand=True,
    )
    for column, ratio in (("Title", 3), ("Level", 1), ("Author", 2), ("Rule (link)", 4)):
        table.add_column(column, ratio=ratio, overflow="fold")
    for item in items[:COMMUNITY_SHOWN]:
        attribution = item.attribution
        table.add_row(
            item.title,
            item.severity or "-",
            attribution.author if attribution else "-",
            f"{item.id}\n{attribution.source_url if attribution else ''}",
        )
    parts: list[RenderableType] = [table]
    if len(items) > COMMUNITY_SHOWN:
        parts.append(
            Text(
                f"… {len(items) - COMMUNITY_SHOWN} more: `defensemap detections --technique"
                f" {technique} --source community`",
                style="dim",
            )
        )
    parts.append(
        Text(
            "Community rules are © their authors (above), published by SigmaHQ under the"
            " Detection Rule License 1.1 (DRL-1.1, https://github.com/SigmaHQ/Detection-Rule-License);"
            " each link is the rule's source.",
            style="italic",
        )
    )
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


def _score(view: MappingView) -> str:
    return " / ".join(x for x in (view.score_category, view.score_value) if x)


def _resolution(att: AttackResolution) -> str:
    """How the mapped id reads on the user's ATT&CK version."""
    if att.status == "revoked":
        return f"{att.mapped_id} revoked → {att.current_id or '?'}"
    if att.status in ("deprecated", "missing"):
        return f"{att.mapped_id} ({att.status} in {att.attack_version})"
    return att.mapped_id or "-"


def _mapping_tables(blocks: list[FrameworkMappings]) -> list[RenderableType]:
    tables: list[RenderableType] = []
    for block in blocks:
        table = Table(
            title=f"{block.label} {block.framework_version} — mapped on ATT&CK"
            f" {block.mapped_on} ({len(block.rows)})",
            title_justify="left",
            show_lines=True,
            expand=True,
        )
        for column, ratio in (
            ("Capability", 1),
            ("Description", 2),
            ("Group", 1),
            ("Type", 1),
            ("Score", 1),
            ("Technique", 1),
            ("Comments", 4),
        ):
            table.add_column(column, ratio=ratio)
        for row in block.rows:
            comments = (row.comments or "") + "".join(f"\n{ref}" for ref in row.references)
            table.add_row(
                row.capability_id or "-",
                row.capability_description or "",
                row.capability_group_name or row.capability_group or "",
                row.mapping_type_label,
                _score(row),
                _resolution(row.attack),
                comments.strip(),
            )
        tables.append(table)
    return tables


def render_mappings(console: Console, blocks: list[FrameworkMappings]) -> None:
    console.print(Group(*_mapping_tables(blocks)))


def render_capability(console: Console, doc: Any) -> None:
    title = Text.assemble((f"{doc.capability_id} ", "bold cyan"), (doc.description or "", "bold"))
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row(
        "Framework",
        f"{doc.label} {doc.framework_version} (mapped on ATT&CK {doc.mapped_on}, {doc.domain})",
    )
    facts.add_row("Group", doc.capability_group_name or doc.capability_group or "-")
    facts.add_row("Shown on", f"ATT&CK {doc.attack_version or '(not loaded: ids unchecked)'}")
    parts: list[RenderableType] = [Panel(facts, title=title, title_align="left")]
    for group in doc.mapping_types:
        table = Table(title=f"{group.label} ({len(group.rows)})", title_justify="left", expand=True)
        for column in ("Technique", "Name", "Score", "Comments"):
            table.add_column(column, ratio=3 if column == "Comments" else 1)
        for row in group.rows:
            table.add_row(
                _resolution(row.attack),
                row.attack.current_name or row.attack.mapped_name or "",
                _score(row),
                row.comments or "",
            )
        parts.append(table)
    console.print(Group(*parts))


def render_framework(console: Console, doc: Any) -> None:
    header = (
        f"{doc.label} {doc.framework_version} — mapped on ATT&CK {doc.mapped_on} ({doc.domain})"
        f"\nTypes: {', '.join(doc.mapping_types.values())};"
        f" by {doc.organization or doc.author or '-'};"
        f" created {doc.creation_date or '-'}, updated {doc.last_update or '-'}"
    )
    parts: list[RenderableType] = [Panel(header, title=doc.framework, title_align="left")]
    for group in doc.capability_groups:
        table = Table(title=f"{group.name} ({len(group.capabilities)})", title_justify="left")
        for column in ("Capability", "Description", "Mappings", "Techniques"):
            table.add_column(column)
        for cap in group.capabilities:
            table.add_row(cap.id, cap.description or "", str(cap.mappings), str(cap.techniques))
        parts.append(table)
    for title, items in (
        ("Non-mappable techniques", doc.non_mappable_techniques),
        ("Non-mappable capabilities", doc.non_mappable_capabilities),
    ):
        if items:
            table = Table(title=f"{title} ({len(items)})", title_justify="left")
            for column in ("ID", "Name", "Comments"):
                table.add_column(column)
            for item in items:
                table.add_row(item.id or "-", item.name or "", item.comments or "")
            parts.append(table)
    console.print(Group(*parts))
