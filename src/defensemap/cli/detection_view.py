"""Rich views of one detection (every field, in the order an analyst works through them) and
of one community rule (with its attribution)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import yaml
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from defensemap.cli.render import markdown
from defensemap.kb.detections import CommunityRuleDoc, DetectionDoc, TechniqueRef
from defensemap.library.convert import SupportRow
from defensemap.model.detection import Detection, EntityMapping, TestCase


def _facts(rows: Iterable[tuple[str, str]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for key, value in rows:
        if value:
            grid.add_row(key, value)
    return grid


def _heading(text: str) -> Text:
    return Text(text, style="bold underline")


def _code(text: str, lexer: str) -> Syntax:
    return Syntax(text.rstrip(), lexer, word_wrap=True, background_color="default")


def _bullets(items: Iterable[str]) -> Text:
    return Text("\n".join(f"• {item}" for item in items))


def technique_line(ref: TechniqueRef) -> str:
    """``T1021.007 Cloud Services (lateral-movement)``, saying when ATT&CK disagrees."""
    tactics = ", ".join(t.name or t.shortname for t in ref.tactics)
    text = f"{ref.id} {ref.name or ''}".strip() + (f" ({tactics})" if tactics else "")
    if ref.status == "revoked":
        text += f" — revoked, now {ref.current_id}"
    elif ref.status == "missing":
        text += " — not in the loaded ATT&CK"
    return text


def _header(doc: DetectionDoc) -> Panel:
    d = doc.detection
    confidence = f"{d.confidence.level}: {d.confidence.reason}" if d.confidence else "-"
    facts = [
        ("ID", str(d.id)),
        ("Severity", d.severity),
        ("Confidence", confidence),
        ("Status", f"{d.status} (version {d.version})"),
        ("Author", d.author),
        ("Created / modified", f"{d.created or '-'} / {d.modified or '-'}"),
        ("Techniques", "\n".join(technique_line(t) for t in doc.technique_refs)),
        ("Tactics", ", ".join(f"{t.id or '-'} {t.name or t.shortname}" for t in doc.tactics)),
        ("Platforms", ", ".join(d.platforms)),
        ("Data sources", ", ".join(d.data_sources)),
        ("Required tables", ", ".join(d.required_tables)),
        ("Schedule", _schedule(d)),
        ("Entities", "; ".join(_entity(e) for e in d.entities)),
        ("File", doc.path),
    ]
    return Panel(_facts(facts), title=Text(d.title, style="bold"), title_align="left")


def _schedule(d: Detection) -> str:
    s = d.schedule
    return f"every {s.frequency} over {s.period}, alert when results > {s.threshold}"


def _entity(entity: EntityMapping) -> str:
    return f"{entity.entity} ({', '.join(f'{k}={v}' for k, v in entity.fields.items())})"


def _queries(d: Detection) -> list[RenderableType]:
    parts: list[RenderableType] = []
    if d.queries.kql:
        parts += [_heading("KQL — Microsoft Sentinel"), _code(d.queries.kql, "kql")]
    if d.queries.defender_kql:
        parts += [_heading("KQL — Microsoft Defender XDR"), _code(d.queries.defender_kql, "kql")]
    if d.sigma:
        sigma = yaml.safe_dump(d.sigma, sort_keys=False, allow_unicode=True)
        parts += [_heading(f"Sigma (scope: {d.sigma_scope})"), _code(sigma, "yaml")]
    return parts


def _triage(d: Detection) -> list[RenderableType]:
    parts: list[RenderableType] = []
    if d.false_positives:
        parts += [_heading("False positives"), _bullets(d.false_positives)]
    for number, tuning in enumerate(d.tuning, 1):
        parts += [_heading(f"Tuning {number}"), markdown(tuning.description)]
        if tuning.kql:
            parts.append(_code(tuning.kql, "kql"))
    for query in d.hunting_queries:
        parts += [_heading(f"Hunting: {query.name}"), Text(query.purpose), _code(query.kql, "kql")]
    if d.investigation:
        parts.append(_heading("Investigation"))
    for number, step in enumerate(d.investigation, 1):
        parts.append(Text(f"{number}. {step.step}"))
        if step.kql:
            parts.append(_code(step.kql, "kql"))
    return parts


def _response(d: Detection) -> list[RenderableType]:
    parts: list[RenderableType] = []
    for phase in ("containment", "eradication", "recovery"):
        steps = getattr(d.response, phase)
        if steps:
            parts += [_heading(f"Response: {phase}"), _bullets(steps)]
    atomic = d.atomic_tests
    if atomic.tests or atomic.emulation:
        parts.append(_heading("Atomic tests (emulation)"))
        parts += [_bullets(f"{t.guid} {t.name}" for t in atomic.tests)] if atomic.tests else []
        parts += [markdown(atomic.emulation)] if atomic.emulation else []
    if d.related:
        parts += [_heading("Related detections"), _bullets(str(r) for r in d.related)]
    if d.references:
        parts += [_heading("References"), _bullets(d.references)]
    return parts


def _case_line(kind: str, case: TestCase) -> str:
    expected = "≥1" if case.alerts is None and kind == "positive" else str(case.alerts or 0)
    context = f" + {', '.join(c.table for c in case.context)}" if case.context else ""
    source = f"{len(case.events)} event(s)" + (f" + {case.file}" if case.file else "")
    return f"{kind}: {case.name} — {case.table}{context}, {source}, expects {expected} alert(s)"


def _tests(d: Detection) -> list[RenderableType]:
    lines = [_case_line("positive", c) for c in d.tests.positive]
    lines += [_case_line("negative", c) for c in d.tests.negative]
    if not lines:
        return [_heading("Test cases"), Text("none", style="dim")]
    title = f"Test cases ({len(d.tests.positive)} positive, {len(d.tests.negative)} negative)"
    return [_heading(title), _bullets(lines)]


def _support(rows: Sequence[SupportRow]) -> list[RenderableType]:
    """Each SIEM target's verdict for the detection's Sigma rule."""
    table = Table(title="Conversions (support matrix)", title_justify="left", expand=True)
    for column, ratio in (("Target", 1), ("Verdict", 1), ("Backend · pipelines", 2), ("Notes", 4)):
        table.add_column(column, ratio=ratio, overflow="fold")
    for row in rows:
        backend = " · ".join([row.backend, *row.pipelines])
        table.add_row(row.target, row.status, backend, "\n".join(row.notes))
    return [table] if rows else []


def render_detection(console: Console, doc: DetectionDoc, support: Sequence[SupportRow]) -> None:
    d = doc.detection
    parts: list[RenderableType] = [_header(doc), markdown(d.description)]
    parts += _queries(d) + _support(support) + _triage(d) + _response(d) + _tests(d)
    console.print(Group(*parts))


def render_community_rule(console: Console, doc: CommunityRuleDoc) -> None:
    logsource = "/".join(v for v in doc.logsource.values() if v)
    facts = [
        ("ID", doc.id),
        ("Source", "SigmaHQ community rule"),
        ("Author", doc.author),
        ("Licence", f"{doc.attribution.licence} ({doc.attribution.licence_url})"),
        ("Link", doc.attribution.source_url),
        ("Level", doc.level or "-"),
        ("Status", doc.status or "-"),
        ("Date / modified", f"{doc.date or '-'} / {doc.modified or '-'}"),
        ("Techniques", "\n".join(technique_line(t) for t in doc.technique_refs)),
        ("Tactics", ", ".join(doc.tactics)),
        ("Logsource", logsource),
        ("Path", doc.path),
    ]
    parts: list[RenderableType] = [
        Panel(_facts(facts), title=Text(doc.title, style="bold"), title_align="left"),
        Text(doc.description),
    ]
    if doc.false_positives:
        parts += [_heading("False positives"), _bullets(doc.false_positives)]
    if doc.references:
        parts += [_heading("References"), _bullets(doc.references)]
    parts += [_heading("Sigma rule (as published)"), _code(doc.yaml, "yaml")]
    parts.append(Text(f"Attribution: {doc.attribution.text}", style="italic"))
    console.print(Group(*parts))
