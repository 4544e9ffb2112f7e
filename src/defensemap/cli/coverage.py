"""`defensemap coverage`: controls + detections + data + adversaries → scores, ranked gaps,
next steps; in the terminal, as JSON, Navigator layers, CSV and an HTML report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from defensemap.cli.common import JsonOpt, VersionOpt, reading, set_json, settings
from defensemap.cli.coverage_app import coverage_app
from defensemap.cli.output import STATE, console, err_console, print_json, progress
from defensemap.errors import InputError
from defensemap.kb.documents import envelope

if TYPE_CHECKING:
    from defensemap.library.loader import Library
    from defensemap.model.atomics import AtomicIndex
    from defensemap.model.coverage import (
        ControlInPlace,
        CoverageReport,
        DeployedRule,
        ThreatProfile,
    )
    from defensemap.store.db import Store


@dataclass(frozen=True)
class DetectionChoice:
    """Which detections are deployed: library ones (all, none or ids, narrowed by technique),
    community rules, saved rule sets, and whether to run the library's tests."""

    detections: list[str]
    techniques: list[str]
    community: bool
    saved_rules: bool
    test: bool


@coverage_app.callback(invoke_without_command=True)
def coverage(
    ctx: typer.Context,
    group: Annotated[
        list[str] | None, typer.Option("--group", help="ATT&CK group id or name.")
    ] = None,
    campaign: Annotated[
        list[str] | None, typer.Option("--campaign", help="Campaign id or name.")
    ] = None,
    software: Annotated[
        list[str] | None, typer.Option("--software", help="Software id or name.")
    ] = None,
    tactic: Annotated[
        list[str] | None, typer.Option("--tactic", help="Every technique of a tactic.")
    ] = None,
    platform: Annotated[
        list[str] | None, typer.Option("--platform", help="Every technique of a platform.")
    ] = None,
    layer: Annotated[
        list[Path] | None, typer.Option("--layer", help="Navigator layer as threat profile.")
    ] = None,
    cve: Annotated[
        list[str] | None, typer.Option("--cve", help="Exploited CVE (KEV mappings).")
    ] = None,
    kev: Annotated[
        bool, typer.Option("--kev", help="Every CVE of the imported KEV mappings.")
    ] = False,
    controls: Annotated[
        Path | None, typer.Option("--controls", help="Controls CSV/YAML (default: saved controls).")
    ] = None,
    framework_all: Annotated[
        list[str] | None,
        typer.Option(
            "--framework-all", help="What-if: every capability of framework F implemented."
        ),
    ] = None,
    detections: Annotated[
        list[str] | None,
        typer.Option(
            "--detections", help="Library detections deployed: all, none (default) or ids."
        ),
    ] = None,
    technique: Annotated[
        list[str] | None,
        typer.Option("--technique", help="Deploy the library detections of these techniques."),
    ] = None,
    community: Annotated[
        bool, typer.Option("--community", help="Count imported SigmaHQ rules as deployed.")
    ] = False,
    rules: Annotated[
        str, typer.Option("--rules", help="Saved rule sets: saved (default) or none.")
    ] = "saved",
    tables: Annotated[
        Path | None, typer.Option("--tables", help="Tables collected, one per line.")
    ] = None,
    logs_db: Annotated[
        Path | None, typer.Option("--logs-db", help="Tables of an ingested logs database.")
    ] = None,
    test: Annotated[
        bool, typer.Option("--test", help="Run the library's tests (tested ✓/✗).")
    ] = False,
    atomics: Annotated[
        str | None, typer.Option("--atomics", help="Atomic Red Team folder (default: saved tests).")
    ] = None,
    attack_version: VersionOpt = None,
    json_out: JsonOpt = False,
    navigator: Annotated[
        str | None,
        typer.Option("--navigator", help="Write PREFIX-coverage/-threat/-gaps.json layers."),
    ] = None,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Write one CSV row per technique.")
    ] = None,
    report_file: Annotated[
        Path | None, typer.Option("--report", help="Write a self-contained HTML report.")
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Gaps shown in the terminal.")] = 10,
) -> None:
    """Score every technique of a threat profile against the controls in place, the detections
    deployed and the data collected; rank the gaps and name the cheapest next step for each.
    docs/coverage.md explains every number."""
    if ctx.invoked_subcommand is not None:
        return
    from defensemap.coverage.compute import compute_coverage
    from defensemap.kb.lookup import select_releases
    from defensemap.kb.threat import resolve_profile
    from defensemap.model.coverage import CoverageInputs

    set_json(json_out)
    if rules not in ("saved", "none"):
        raise InputError(f"--rules must be saved or none, not {rules!r}")
    if tables and logs_db:
        raise InputError("give --tables or --logs-db, not both")
    choice = DetectionChoice(detections or [], technique or [], community, rules == "saved", test)
    selection: dict[str, Any] = {
        "groups": group or [],
        "campaigns": campaign or [],
        "software": software or [],
        "tactics": tactic or [],
        "platforms": platform or [],
        "layers": layer or [],
        "cves": cve or [],
        "kev": kev,
    }
    if not any(selection.values()):
        raise InputError(
            "no threat profile given",
            hint="name adversaries with --group/--campaign/--software, or select with "
            "--tactic/--platform/--layer/--cve/--kev",
        )
    with reading() as store:
        version = select_releases(store, attack_version, "enterprise-attack")[0].version
        profile = resolve_profile(store, **selection, attack_version=version)
        library = _library()
        inputs = CoverageInputs(
            attack_version=version,
            profile=profile,
            controls=tuple(_controls(store, controls, framework_all or [])),
            rules=tuple(_rules(store, library, choice, profile)),
            tables=_tables(tables, logs_db),
        )
        report = compute_coverage(store, inputs, atomics=_atomics(store, atomics), library=library)
        _write_files(store, report, navigator, csv_file, report_file)
    _show(report, json_out, top)


# --- inputs -------------------------------------------------------------------------------------


def _library() -> Library:
    from defensemap.library.loader import load_library

    return load_library(cache_dir=settings().home / "cache")


def _controls(store: Store, path: Path | None, frameworks: list[str]) -> list[ControlInPlace]:
    """The controls file, else the saved controls; plus every capability of the what-if
    frameworks, implemented."""
    from defensemap.coverage.inputs import framework_controls
    from defensemap.sources.controls import load_controls
    from defensemap.store.coverage import saved_controls

    found = load_controls(path) if path else saved_controls(store)
    for framework in frameworks:
        found += framework_controls(store, framework)
    return found


def _rules(
    store: Store, library: Library, choice: DetectionChoice, profile: ThreatProfile
) -> list[DeployedRule]:
    from defensemap.coverage.inputs import community_rules, library_rules
    from defensemap.store.coverage import saved_rules

    found: list[DeployedRule] = []
    wanted = [d.strip() for d in choice.detections]
    if wanted != ["none"] and (wanted or choice.techniques):
        ids = None if wanted in ([], ["all"]) else wanted
        chosen = library_rules(library, ids=ids, technique=choice.techniques or None)
        if choice.test and chosen:
            results = _test_results(library, chosen)
            chosen = library_rules(library, ids=[r.id for r in chosen], test_results=results)
        found += chosen
    if choice.community:
        found += community_rules(store)
    if choice.saved_rules:
        found += saved_rules(store)
    return found


def _test_results(library: Library, chosen: list[DeployedRule]) -> dict[str, Any]:
    """Each deployed library detection's own tests (``defensemap test``), with a progress bar."""
    from rich.progress import BarColumn, TextColumn

    from defensemap.engine.testing import run_detection_tests

    results: dict[str, Any] = {}
    columns = (TextColumn("testing detections"), BarColumn(), TextColumn("{task.completed}"))
    with progress(*columns, transient=True) as bar:
        task = bar.add_task("test", total=len(chosen))
        for rule in chosen:
            results[rule.id] = run_detection_tests(library.get(rule.id))
            bar.advance(task)
    return results


def _tables(path: Path | None, logs_db: Path | None) -> frozenset[str] | None:
    from defensemap.coverage.inputs import tables_from_file, tables_from_logs_db

    if path:
        return tables_from_file(path)
    if logs_db:
        return tables_from_logs_db(logs_db)
    return None


def _atomics(store: Store, option: str | None) -> AtomicIndex | None:
    from defensemap.sources.atomics import load_atomics
    from defensemap.store.coverage import atomic_tests

    if option and option != "saved":
        return load_atomics(Path(option))
    return atomic_tests(store)


# --- outputs ------------------------------------------------------------------------------------


def _write_files(
    store: Store,
    report: CoverageReport,
    navigator: str | None,
    csv_file: Path | None,
    report_file: Path | None,
) -> None:
    from defensemap.export.coverage import (
        attack_matrix,
        coverage_csv,
        coverage_html,
        coverage_layers,
    )

    written: dict[Path, bytes] = {}
    if navigator or report_file:
        matrix = attack_matrix(store, report.inputs.attack_version)
        if navigator:
            for suffix, data in coverage_layers(report, matrix).items():
                written[Path(f"{navigator}-{suffix}.json")] = data
        if report_file:
            written[report_file] = coverage_html(report, matrix)
    if csv_file:
        written[csv_file] = coverage_csv(report)
    for path, data in written.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if not STATE.quiet:
            err_console().print(f"wrote {path}", markup=False, soft_wrap=True)


def _show(report: CoverageReport, json_out: bool, top: int) -> None:
    if json_out:
        from defensemap.coverage.document import coverage_json

        print_json(envelope("coverage", coverage_json(report)))
        return
    out = console()
    out.print(_summary_table(report))
    if report.gaps:
        out.print(_gap_table(report, top))
    out.print(_totals(report), markup=False, soft_wrap=True)
    for note in report.notes:
        err_console().print(f"note: {note}", markup=False, soft_wrap=True)


def _profile_text(report: CoverageReport) -> str:
    actors = report.inputs.profile.actors
    shown = ", ".join(f"{a.id} {a.name}" if a.name != a.id else a.id for a in actors[:6])
    return shown + (f" and {len(actors) - 6} more" if len(actors) > 6 else "")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {name}" for name, n in counts.items()) or "none"


def _summary_table(report: CoverageReport) -> Table:
    from defensemap.coverage.summary import summarize

    summary = summarize(report)
    table = Table(title=f"Coverage on ATT&CK {report.inputs.attack_version}", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    tables = "unknown" if summary.tables is None else f"{summary.tables} collected"
    for label, value in (
        ("threat profile", _profile_text(report)),
        ("controls in place", _counts(summary.controls)),
        ("detections deployed", _counts(summary.rules)),
        ("log tables", tables),
        ("techniques in profile", str(summary.techniques)),
        ("average score", f"{summary.average_score:g} / 100"),
        ("by band", _counts(summary.bands)),
    ):
        table.add_row(label, value)
    return table


def _gap_table(report: CoverageReport, top: int) -> Table:
    from defensemap.coverage.scoring import fmt

    table = Table(title=f"Top {min(top, len(report.gaps))} of {len(report.gaps)} gaps")
    table.add_column("#", justify="right")
    table.add_column("technique", overflow="fold")
    table.add_column("weight", justify="right")
    table.add_column("score", justify="right")
    table.add_column("next step", overflow="fold")
    for rank, item in enumerate(report.gaps[:top], 1):
        step = item.next_steps[0].detail if item.next_steps else ""
        table.add_row(
            str(rank),
            f"{item.technique} {item.name}",
            str(item.threat_weight),
            f"{fmt(item.score)} ({fmt(item.protect)}+{fmt(item.detect)})",
            step,
        )
    return table


def _totals(report: CoverageReport) -> str:
    full = len(report.techniques) - len(report.gaps)
    return (
        f"{len(report.techniques)} technique(s): {full} fully covered, {len(report.gaps)} gap(s);"
        " `--json` or `--report FILE.html` for every technique's reason and validation plan"
    )
