"""A coverage report in the forms people share: three ATT&CK Navigator layers (coverage, threat
profile, gaps), a CSV with one row per technique, and a self-contained HTML report with an
ATT&CK matrix heat map.

Every output is byte-stable for the same report (fixed orders, no timestamps) so it can be
diffed and committed. The HTML needs nothing but itself: inline CSS, no scripts, no fetches;
every text from the inputs (rule names, procedure text, layer comments) is escaped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import orjson

from defensemap.export.navigator import LayerTechnique, layer, validate_layer
from defensemap.kb.vocabulary import ATTACK_URL, ENTERPRISE, TechniqueInfo, attack_vocabulary
from defensemap.model.coverage import (
    ControlHit,
    CoverageReport,
    DetectionHit,
    NextStep,
    TechniqueCoverage,
)
from defensemap.store.db import Store

COVERAGE_GRADIENT = ("#ff6666", "#ffe766", "#8ec843")
THREAT_GRADIENT = ("#ffffff", "#ff6666")
GAPS_GRADIENT = ("#ffffff", "#c0392b")
MAX_SCORE = 100
CSV_FIELDS = (
    "technique",
    "name",
    "tactics",
    "threat_weight",
    "protect",
    "detect",
    "score",
    "controls",
    "detections",
    "missing_tables",
    "next_step",
    "reason",
)


@dataclass(frozen=True)
class MatrixTechnique:
    id: str
    name: str
    subtechniques: tuple[MatrixTechnique, ...] = ()

    @property
    def url(self) -> str:
        return f"{ATTACK_URL}/techniques/{self.id.replace('.', '/')}/"


@dataclass(frozen=True)
class MatrixTactic:
    id: str
    shortname: str
    name: str
    techniques: tuple[MatrixTechnique, ...]


@dataclass(frozen=True)
class Matrix:
    """The enterprise matrix of one ATT&CK release: tactics in matrix order, each with its
    techniques (by name, as the Navigator shows them) and their sub-techniques (by id)."""

    attack_version: str
    domain: str
    tactics: tuple[MatrixTactic, ...]

    def cells(self) -> list[tuple[MatrixTactic, MatrixTechnique]]:
        """Every (tactic, technique or sub-technique) the heat map draws, in drawing order."""
        return [
            (tactic, cell)
            for tactic in self.tactics
            for technique in tactic.techniques
            for cell in (technique, *technique.subtechniques)
        ]


def _tactic_techniques(shortname: str, current: list[TechniqueInfo]) -> tuple[MatrixTechnique, ...]:
    def in_tactic(info: TechniqueInfo) -> bool:
        return any(t.shortname == shortname for t in info.tactics)

    subs: dict[str, list[TechniqueInfo]] = {}
    for info in current:
        if info.parent and in_tactic(info):
            subs.setdefault(info.parent, []).append(info)
    parents = [i for i in current if i.parent is None and in_tactic(i)]
    return tuple(
        MatrixTechnique(
            parent.id,
            parent.name,
            tuple(
                MatrixTechnique(s.id, s.name)
                for s in sorted(subs.get(parent.id, []), key=lambda s: s.id)
            ),
        )
        for parent in sorted(parents, key=lambda p: (p.name.casefold(), p.id))
    )


def attack_matrix(store: Store, attack_version: str | None = None) -> Matrix:
    """The enterprise matrix of the chosen (default: newest) release, without revoked or
    deprecated techniques."""
    vocabulary = attack_vocabulary(store, attack_version)
    current = [t for t in vocabulary.techniques.values() if not t.revoked and not t.deprecated]
    tactics = sorted(
        {tactic.id: tactic for info in current for tactic in info.tactics}.values(),
        key=lambda t: t.position,
    )
    return Matrix(
        vocabulary.version,
        ENTERPRISE,
        tuple(
            MatrixTactic(t.id, t.shortname, t.name, _tactic_techniques(t.shortname, current))
            for t in tactics
        ),
    )


# --- shared wording -------------------------------------------------------------------------


def _num(value: float) -> str:
    return f"{round(value, 1):g}"


def _json_number(value: float) -> int | float:
    rounded = round(value, 1)
    return int(rounded) if rounded.is_integer() else rounded


def _tested(value: bool | None) -> str:
    return {True: "tested", False: "test fails", None: "untested"}[value]


def _deployable(value: bool | None) -> str:
    return {True: "deployable", False: "not deployable", None: "deployability unknown"}[value]


def control_text(hit: ControlHit) -> str:
    score = " ".join(s for s in (hit.score_category, hit.score_value) if s)
    return (
        f"{hit.framework} {hit.capability_id}: {hit.mapping_type}"
        f"{f' ({score})' if score else ''}, {hit.status}, +{_num(hit.points)}"
    )


def detection_text(hit: DetectionHit) -> str:
    state = ", ".join(
        [
            "enabled" if hit.enabled else "disabled",
            _tested(hit.tested),
            _deployable(hit.deployable),
        ]
    )
    return f"{hit.name} [{hit.origin} {hit.rule_id}]: {state}, +{_num(hit.points)}"


def step_text(step: NextStep) -> str:
    return f"{step.kind} {step.target}: {step.detail} (+{_num(step.gain)})"


def _actor_names(report: CoverageReport) -> dict[str, str]:
    return {a.id: a.name for a in report.inputs.profile.actors}


def _procedure_lines(report: CoverageReport, item: TechniqueCoverage) -> list[str]:
    names = _actor_names(report)
    return [
        f"{names.get(p.actor_id, p.actor_id)} ({p.actor_id})"
        + (f": {p.description}" if p.description else "")
        for p in item.procedures
    ]


def _by_id(items: Iterable[TechniqueCoverage]) -> list[TechniqueCoverage]:
    return sorted(items, key=lambda t: t.technique)


def _in_profile(report: CoverageReport) -> list[TechniqueCoverage]:
    profile = report.inputs.profile.techniques()
    return _by_id(t for t in report.techniques if t.technique in profile)


def _profile_label(report: CoverageReport) -> str:
    actors = report.inputs.profile.actors
    return ", ".join(f"{a.name} ({a.id})" for a in actors) or "no actors"


# --- Navigator layers -----------------------------------------------------------------------


def _coverage_entry(item: TechniqueCoverage) -> LayerTechnique:
    metadata = [("protect", _num(item.protect)), ("detect", _num(item.detect))]
    metadata += [("control", control_text(c)) for c in item.controls]
    metadata += [("detection", detection_text(d)) for d in item.detections]
    metadata += [("missing table", t) for t in item.tables_missing]
    return LayerTechnique(
        item.technique, _json_number(item.score), comment=item.reason, metadata=metadata
    )


def _threat_entry(report: CoverageReport, item: TechniqueCoverage) -> LayerTechnique:
    lines = _procedure_lines(report, item)
    return LayerTechnique(
        item.technique,
        item.threat_weight,
        comment="\n".join(lines),
        metadata=[("procedure", line) for line in lines],
    )


def _gap_entry(rank: int, total: int, item: TechniqueCoverage) -> LayerTechnique:
    steps = [step_text(s) for s in item.next_steps]
    return LayerTechnique(
        item.technique,
        total - rank + 1,
        comment=f"#{rank}: {steps[0] if steps else item.reason}",
        metadata=[
            ("rank", str(rank)),
            ("score", _num(item.score)),
            ("threat weight", str(item.threat_weight)),
            *(("next step", s) for s in steps),
        ],
    )


def _layer_bytes(document: dict[str, Any]) -> bytes:
    problems = validate_layer(document)
    if problems:  # a bug here, not bad input: the builder must produce valid layers
        raise AssertionError(f"invalid {document['name']} layer: {problems}")
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"


def coverage_layers(report: CoverageReport, matrix: Matrix) -> dict[str, bytes]:
    """Three layers (format 4.5) by file suffix: ``coverage`` (score 0–100, red → yellow →
    green), ``threat`` (threat weight) and ``gaps`` (priority: the first gap scores highest)."""
    version = report.inputs.attack_version
    profile = _profile_label(report)
    gaps = list(report.gaps)
    documents = {
        "coverage": layer(
            name="defensemap coverage",
            description=f"Coverage score 0-100 per technique of the threat profile: {profile}",
            techniques=[_coverage_entry(t) for t in _in_profile(report)],
            gradient=COVERAGE_GRADIENT,
            max_value=MAX_SCORE,
            legend=[("not covered", COVERAGE_GRADIENT[0]), ("covered", COVERAGE_GRADIENT[-1])],
            domain=matrix.domain,
            attack_version=version,
        ),
        "threat": layer(
            name="defensemap threat profile",
            description=f"Threat weight: how many selected actors use the technique: {profile}",
            techniques=[_threat_entry(report, t) for t in _in_profile(report)],
            gradient=THREAT_GRADIENT,
            domain=matrix.domain,
            attack_version=version,
        ),
        "gaps": layer(
            name="defensemap gaps",
            description="Ranked gaps; the darker, the sooner to fix (score = gaps - rank + 1)",
            techniques=[_gap_entry(i, len(gaps), t) for i, t in enumerate(gaps, 1)],
            gradient=GAPS_GRADIENT,
            domain=matrix.domain,
            attack_version=version,
        ),
    }
    return {suffix: _layer_bytes(document) for suffix, document in documents.items()}


# --- CSV ------------------------------------------------------------------------------------


def _csv_row(item: TechniqueCoverage) -> list[str]:
    return [
        item.technique,
        item.name,
        "; ".join(item.tactics),
        str(item.threat_weight),
        _num(item.protect),
        _num(item.detect),
        _num(item.score),
        "; ".join(control_text(c) for c in item.controls),
        "; ".join(detection_text(d) for d in item.detections),
        "; ".join(item.tables_missing),
        step_text(item.next_steps[0]) if item.next_steps else "",
        item.reason,
    ]


def coverage_csv(report: CoverageReport) -> bytes:
    """One row per technique of the report, by technique id."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    writer.writerows(_csv_row(item) for item in _by_id(report.techniques))
    return buffer.getvalue().encode()


# --- HTML -----------------------------------------------------------------------------------

_BUCKETS = 10
_CSS = """
:root{color-scheme:light dark;--bg:#ffffff;--fg:#1d2329;--muted:#5c6670;--line:#d5dae0;
--panel:#f4f6f8;--out:#e3e6ea;--out-fg:#7a838c;--link:#0b5cad}
@media (prefers-color-scheme:dark){:root{--bg:#15191d;--fg:#e4e8ec;--muted:#9aa4ae;
--line:#343b42;--panel:#1e2328;--out:#2a3036;--out-fg:#8a949e;--link:#7db7f0}}
*{box-sizing:border-box}
body{margin:0 auto;max-width:110rem;padding:1.5rem;background:var(--bg);color:var(--fg);
font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif}
a{color:var(--link)}
h1,h2,h3{line-height:1.2}
.muted{color:var(--muted)}
.numbers{display:flex;flex-wrap:wrap;gap:.75rem;padding:0;list-style:none}
.numbers li{background:var(--panel);border:1px solid var(--line);border-radius:6px;
padding:.5rem .9rem;min-width:8rem}
.numbers b{display:block;font-size:1.5rem}
.matrix{display:grid;grid-auto-flow:column;grid-auto-columns:minmax(8.5rem,1fr);gap:4px;
overflow-x:auto;padding-bottom:.5rem}
.tactic h3{font-size:.8rem;margin:0 0 4px;padding:.3rem;background:var(--panel);
border:1px solid var(--line);text-align:center}
.cell{display:block;margin:0 0 3px;padding:.25rem .35rem;border-radius:3px;font-size:.72rem;
color:#111;text-decoration:none;border:1px solid rgba(0,0,0,.15)}
.cell b{float:right;margin-left:.3rem}
.cell.sub{margin-left:.6rem}
.cell.out{background:var(--out);color:var(--out-fg);border-color:transparent}
.subs summary{font-size:.68rem;color:var(--muted);cursor:pointer;margin:0 0 3px .3rem}
.legend{display:flex;gap:2px;align-items:center;font-size:.75rem;margin:.5rem 0}
.legend span{padding:.1rem .4rem;border-radius:3px;color:#111}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem;font-size:.85rem}
th,td{border:1px solid var(--line);padding:.3rem .45rem;text-align:left;vertical-align:top}
th{background:var(--panel)}
section.technique{border-top:1px solid var(--line);padding-top:.5rem;margin-top:1.5rem}
.ok{color:#2e8b3a}.bad{color:#c0392b}
"""


def _hex(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def _gradient_color(fraction: float, colors: tuple[str, ...] = COVERAGE_GRADIENT) -> str:
    """The colour at ``fraction`` (0..1) of an even multi-stop gradient, as the Navigator
    paints it."""
    position = min(max(fraction, 0.0), 1.0) * (len(colors) - 1)
    low = min(int(position), len(colors) - 2)
    start, end, t = _hex(colors[low]), _hex(colors[low + 1]), position - low
    r, g, b = (round(a + (z - a) * t) for a, z in zip(start, end, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def score_bucket(score: float) -> int:
    """The colour step: 0–9 → 0, 10–19 → 1, … 100 → 10 (the legend shows lower bounds)."""
    return int(min(max(score, 0.0), MAX_SCORE) * _BUCKETS // MAX_SCORE)


def _style() -> str:
    buckets = "".join(
        f".s{i}{{background:{_gradient_color(i / _BUCKETS)}}}" for i in range(_BUCKETS + 1)
    )
    return f"<style>{_CSS.strip()}\n{buckets}</style>"


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _attack_url(technique: str) -> str:
    return f"{ATTACK_URL}/techniques/{technique.replace('.', '/')}/"


def _summary(report: CoverageReport, matrix: Matrix) -> str:
    items = _in_profile(report)
    inputs = report.inputs
    drawn = {cell.id for _, cell in matrix.cells()}
    average = sum(t.score for t in items) / len(items) if items else 0.0
    numbers = [
        ("actors", len(inputs.profile.actors)),
        ("techniques in the profile", len(items)),
        ("average score", _num(average)),
        ("protected (protect > 0)", sum(1 for t in items if t.protect > 0)),
        ("detected (detect > 0)", sum(1 for t in items if t.detect > 0)),
        ("not covered (score 0)", sum(1 for t in items if t.score <= 0)),
        ("ranked gaps", len(report.gaps)),
        ("controls in place", len(inputs.controls)),
        ("rules deployed", len(inputs.rules)),
        ("log tables", "unknown" if inputs.tables is None else len(inputs.tables)),
        ("profile techniques off the matrix", sum(1 for t in items if t.technique not in drawn)),
    ]
    lis = "".join(f"<li><b>{_e(value)}</b>{_e(label)}</li>" for label, value in numbers)
    return f'<h2 id="summary">Summary</h2><ul class="numbers">{lis}</ul>'


def _cell(
    technique: MatrixTechnique,
    found: dict[str, TechniqueCoverage],
    profile: frozenset[str],
    sub: bool,
) -> str:
    item = found.get(technique.id)
    label = f"{technique.id} {technique.name}"
    sub_class = " sub" if sub else ""
    if item is None or technique.id not in profile:
        href = f"#{technique.id}" if item else technique.url
        title = f"{label}: not in the threat profile"
        return (
            f'<a class="cell out{sub_class}" href="{_e(href)}" title="{_e(title)}">{_e(label)}</a>'
        )
    title = (
        f"{label}: score {_num(item.score)}/100 (protect {_num(item.protect)}, detect "
        f"{_num(item.detect)}), threat weight {item.threat_weight}. {item.reason}"
    )
    return (
        f'<a class="cell s{score_bucket(item.score)}{sub_class}" href="#{_e(technique.id)}" '
        f'title="{_e(title)}">{_e(label)}<b>{_e(_num(item.score))}</b></a>'
    )


def _tactic_column(
    tactic: MatrixTactic, found: dict[str, TechniqueCoverage], profile: frozenset[str]
) -> str:
    parts = [f'<div class="tactic"><h3 title="{_e(tactic.id)}">{_e(tactic.name)}</h3>']
    for technique in tactic.techniques:
        parts.append(_cell(technique, found, profile, sub=False))
        if technique.subtechniques:
            is_open = any(s.id in profile for s in technique.subtechniques)
            cells = "".join(_cell(s, found, profile, sub=True) for s in technique.subtechniques)
            count = len(technique.subtechniques)
            parts.append(
                f'<details class="subs"{" open" if is_open else ""}><summary>'
                f"{count} sub-technique{'' if count == 1 else 's'}</summary>{cells}</details>"
            )
    parts.append("</div>")
    return "".join(parts)


def _heatmap(report: CoverageReport, matrix: Matrix) -> str:
    found = {t.technique: t for t in report.techniques}
    profile = report.inputs.profile.techniques()
    legend = "".join(
        f'<span class="s{i}">{i * MAX_SCORE // _BUCKETS}</span>' for i in range(_BUCKETS + 1)
    )
    columns = "".join(_tactic_column(t, found, profile) for t in matrix.tactics)
    return (
        f'<h2 id="matrix">ATT&amp;CK matrix (enterprise {_e(matrix.attack_version)})</h2>'
        f'<div class="legend">score {legend}<span class="cell out">not in the profile</span>'
        f'</div><div class="matrix">{columns}</div>'
    )


def _gap_list(report: CoverageReport) -> str:
    if not report.gaps:
        return '<h2 id="gaps">Ranked gaps</h2><p>No gaps.</p>'
    rows = "".join(
        f'<li><a href="#{_e(t.technique)}">{_e(t.technique)} {_e(t.name)}</a> '
        f'<span class="muted">score {_e(_num(t.score))}, threat weight {t.threat_weight}'
        f"</span>{_steps(t.next_steps)}</li>"
        for t in report.gaps
    )
    return f'<h2 id="gaps">Ranked gaps</h2><ol class="gaps">{rows}</ol>'


def _steps(steps: tuple[NextStep, ...]) -> str:
    if not steps:
        return ""
    items = "".join(
        f"<li><b>{_e(s.kind)}</b> {_e(s.target)}: {_e(s.detail)} (+{_e(_num(s.gain))})</li>"
        for s in steps
    )
    return f"<ul>{items}</ul>"


def _table(headers: tuple[str, ...], rows: Sequence[Sequence[str]], empty: str) -> str:
    """A table whose cells are already HTML (each escaped where it was built)."""
    if not rows:
        return f'<p class="muted">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _mark(value: bool | None, yes: str, no: str) -> str:
    if value is None:
        return '<span class="muted">– unknown</span>'
    return f'<span class="ok">✓ {yes}</span>' if value else f'<span class="bad">✗ {no}</span>'


def _controls_table(item: TechniqueCoverage) -> str:
    rows = [
        (
            _e(f"{c.framework} {c.capability_id}"),
            _e(c.description),
            _e(c.status),
            _e(c.mapping_type),
            _e(" ".join(s for s in (c.score_category, c.score_value) if s) or "–"),
            _e(_num(c.points)),
        )
        for c in item.controls
    ]
    headers = ("control", "description", "status", "mapping type", "score", "points")
    return _table(headers, rows, "No control in place is mapped to this technique.")


def _detections_table(item: TechniqueCoverage) -> str:
    rows = [
        (
            f"{_e(d.name)}<br><span class='muted'>{_e(d.origin)} {_e(d.rule_id)}</span>",
            _mark(d.enabled, "enabled", "disabled"),
            _mark(d.tested, "tested", "test fails") if d.tested is not None else "– untested",
            _mark(d.deployable, "deployable", "not deployable"),
            _e(", ".join(d.missing_tables) or "–"),
            _e(_num(d.points)),
        )
        for d in item.detections
    ]
    headers = ("detection", "enabled", "tested", "deployable", "missing tables", "points")
    return _table(headers, rows, "No deployed detection covers this technique.")


def _procedures(report: CoverageReport, item: TechniqueCoverage) -> str:
    lines = _procedure_lines(report, item)
    items = "".join(f"<li>{_e(line)}</li>" for line in lines)
    return f"<ul>{items}</ul>" if lines else ""


def _validation(item: TechniqueCoverage) -> str:
    if not item.validation:
        return '<p class="muted">No Atomic Red Team test for this technique.</p>'
    items = "".join(
        f"<li>{_e(a.name)} <span class='muted'>{_e(a.technique)} · {_e(a.guid)}</span></li>"
        for a in item.validation
    )
    return f"<ul>{items}</ul>"


def _section(report: CoverageReport, item: TechniqueCoverage) -> str:
    tid = _e(item.technique)
    tables = ", ".join(item.tables_available) or "–"
    return (
        f'<section class="technique" id="{tid}"><h3>{tid} {_e(item.name)} '
        f'<a href="{_e(_attack_url(item.technique))}">ATT&amp;CK</a></h3>'
        f"<p><b>Score {_e(_num(item.score))}</b> (protect {_e(_num(item.protect))}, detect "
        f"{_e(_num(item.detect))}) · tactics: {_e(', '.join(item.tactics) or '–')}</p>"
        f"<p>{_e(item.reason)}</p>"
        f"<h4>Threat weight {item.threat_weight}</h4>{_procedures(report, item)}"
        f"<h4>Controls</h4>{_controls_table(item)}"
        f"<h4>Detections</h4>{_detections_table(item)}"
        f"<h4>Data</h4><p>collected: {_e(tables)}; missing: "
        f"{_e(', '.join(item.tables_missing) or '–')}</p>"
        f"<h4>Next steps</h4>{_steps(item.next_steps) or '<p class=muted>None.</p>'}"
        f"<h4>Validation plan</h4>{_validation(item)}</section>"
    )


def coverage_html(report: CoverageReport, matrix: Matrix) -> bytes:
    """The whole report as one HTML file that opens offline, in light or dark mode."""
    title = f"defensemap coverage: {_profile_label(report)}"
    notes = "".join(f"<li>{_e(n)}</li>" for n in report.notes)
    sections = "".join(_section(report, t) for t in _by_id(report.techniques))
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title>{_style()}</head><body>"
        f"<h1>Threat-informed coverage</h1><p class='muted'>{_e(_profile_label(report))} · "
        f"ATT&amp;CK {_e(report.inputs.attack_version)}</p>"
        f"{_summary(report, matrix)}{_heatmap(report, matrix)}{_gap_list(report)}"
        + (f'<h2 id="notes">Notes</h2><ul>{notes}</ul>' if notes else "")
        + f'<h2 id="techniques">Techniques</h2>{sections}'
        "<footer class='muted'><p>Generated by defensemap from the inputs named above; "
        "every number is explained in its technique's section.</p></footer>"
        "</body></html>\n"
    )
    return page.encode()
