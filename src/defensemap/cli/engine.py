"""Engine commands: `logs ingest`, `hunt`, `kql check`, `test`."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from defensemap.cli.common import JsonOpt, reading, set_json, settings
from defensemap.cli.output import console, err_console, print_json, progress
from defensemap.errors import InputError, SourceError, SourceLocation
from defensemap.kb.documents import envelope

kql_app = typer.Typer(help="KQL tools that need no workspace.", no_args_is_help=True)
logs_app = typer.Typer(help="Local logs: load them into the logs database.", no_args_is_help=True)

DbOpt = Annotated[
    Path | None,
    typer.Option(
        "--db", help="Logs database (DuckDB file; default: logs.duckdb in the data home)."
    ),
]


def logs_db(db: Path | None) -> Path:
    return db if db is not None else settings().home / "logs.duckdb"


def _ingest_with_progress(
    con: Any, files: list[Path], table: str | None, skip_bad: bool
) -> list[Any]:
    from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn

    from defensemap.logs.ingest import ingest

    with progress(
        TextColumn("ingesting"), BarColumn(), DownloadColumn(), TimeRemainingColumn()
    ) as bar:
        task = bar.add_task("ingest", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return ingest(con, files, table=table, skip_bad=skip_bad, on_progress=update)


def _report_ingest(reports: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "path": str(r.path),
            "format": r.format,
            "table": r.table,
            "table_reason": r.table_reason,
            "rows": r.rows,
            "skipped_bad": r.skipped_bad,
            "bad_lines": list(r.bad_lines),
            "extra_columns": list(r.extra_columns),
            "cast_failures": [list(c) for c in r.cast_failures],
            "warnings": list(r.warnings),
        }
        for r in reports
    ]


@logs_app.command("ingest")
def logs_ingest(
    files: Annotated[list[Path], typer.Argument(help="NDJSON, JSON, CSV, Parquet, EVTX (or .gz).")],
    table: Annotated[str | None, typer.Option("--table", help="Table to load into.")] = None,
    db: DbOpt = None,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Skip malformed lines, and count them.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Load log files into typed tables (all files or none); the table is given, or inferred
    from EVTX channels or a known table's columns, and the output says which."""
    from defensemap.logs.duck import logs_database

    set_json(json_out)
    path = logs_db(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    with logs_database(path) as con:
        reports = _report_ingest(_ingest_with_progress(con, files, table, skip_bad))
    if json_out:
        print_json(envelope("logs-ingest", {"db": str(path), "files": reports}))
        return
    out = console()
    for r in reports:
        skipped = f", skipped {r['skipped_bad']} bad line(s)" if r["skipped_bad"] else ""
        out.print(
            f"{r['path']}: {r['rows']} rows ({r['format']}) into {r['table']}"
            f" [{r['table_reason']}]{skipped}",
            markup=False,
            soft_wrap=True,
        )
        for warning in r["warnings"]:
            err_console().print(f"warning: {warning}", markup=False, soft_wrap=True)


def _read_query(source: str) -> tuple[str, str]:
    """The query text and a name for it: ``-`` (or nothing) is standard input."""
    if source == "-":
        return sys.stdin.read(), "<stdin>"
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except OSError as exc:
        raise SourceError(
            f"cannot read the query: {exc.strerror}", location=SourceLocation(path=str(path))
        ) from None


@kql_app.command("check")
def kql_check(
    source: Annotated[str, typer.Argument(help="A .kql file, or - for standard input.")] = "-",
    json_out: JsonOpt = False,
) -> None:
    """Would this Sentinel/Defender query run? Parse, resolve tables and columns against the
    catalog, translate, and run it on empty typed tables. Exit 0 when it would; otherwise the
    first line is parse_error:, unsupported_feature:, unknown_table:, unknown_column:, unsafe:
    or type_error: with the construct and its line/column (exit 2)."""
    from defensemap.engine.kql import check_kql, format_check

    set_json(json_out)
    text, _name = _read_query(source)
    check = check_kql(text)
    if json_out:
        print_json(envelope("kql-check", check.to_dict()))
    else:
        sys.stdout.write(format_check(check) + "\n")
    raise typer.Exit(0 if check.ok else 2)


@contextmanager
def _hunting_db(
    logs: list[Path], table: str | None, db: Path | None, skip_bad: bool
) -> Iterator[Any]:
    """Ad hoc logs go to a throw-away database file (big files need disk, not RAM); otherwise
    the logs database is opened read-only. Either way it is locked down before any rule runs."""
    from defensemap.logs.duck import connect, lock_down

    with tempfile.TemporaryDirectory(prefix="defensemap-hunt-") as tmp:
        if logs:
            con = connect(Path(tmp) / "hunt.duckdb")
            _ingest_with_progress(con, logs, table, skip_bad)
        else:
            path = logs_db(db)
            if not path.exists():
                raise InputError(
                    f"no logs database at {path}",
                    hint="pass --logs FILE..., or load logs with `defensemap logs ingest`",
                )
            con = connect(path, read_only=True)
        try:
            lock_down(con)
            yield con
        finally:
            con.close()


def _write_alerts(result: Any, fmt: str, output: Path | None) -> None:
    from defensemap.engine.alerts import summary, to_csv, to_ndjson
    from defensemap.engine.hunt import NOT_APPLICABLE

    if fmt not in ("table", "json", "csv"):
        raise InputError(f"unknown format {fmt!r}", hint="use table, json or csv")
    if fmt == "table" and output is None:
        _alerts_table(result.alerts)
    else:
        text = to_ndjson(result.alerts) if fmt in ("json", "table") else to_csv(result.alerts)
        if output is not None:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
    table = Table(
        title=f"{len(result.alerts)} alert(s) from {result.rules_run} rule run(s)",
        title_justify="left",
    )
    for column in ("Rule", "Title", "Language", "Alerts"):
        table.add_column(column)
    for (rule_id, title, language), count in sorted(summary(result.alerts).items()):
        table.add_row(rule_id, title, language, str(count))
    err = err_console()
    err.print(table)
    not_applicable = [s for s in result.skipped if s.reason == NOT_APPLICABLE]
    for skipped in result.skipped:
        if skipped.reason != NOT_APPLICABLE or len(not_applicable) <= _LIST_NOT_APPLICABLE:
            err.print(
                f"not run: {skipped.title} [{skipped.rule_id}] ({skipped.language}): "
                f"{skipped.reason}",
                markup=False,
                soft_wrap=True,
            )
    if len(not_applicable) > _LIST_NOT_APPLICABLE:
        err.print(
            f"not run: {len(not_applicable)} rule(s) whose logsource matches no loaded table,"
            f" e.g. {'; '.join(s.title for s in not_applicable[:3])}",
            markup=False,
            soft_wrap=True,
        )


# Beyond this many, rules for logs that were not loaded are counted, not listed one by one.
_LIST_NOT_APPLICABLE = 20


def _alerts_table(alerts: list[Any]) -> None:
    table = Table(title="Alerts", title_justify="left", expand=True)
    for column in ("Time", "Rule", "Severity", "Source", "Event"):
        table.add_column(column, overflow="fold")
    for a in alerts[:500]:
        event = ", ".join(f"{k}={v}" for k, v in list(a.event.items())[:6])
        table.add_row(a.time or "", a.rule_title, a.severity, a.source, event)
    console().print(table)


def hunt(
    rules: Annotated[
        list[Path] | None, typer.Option("--rules", help="Detection files, Sigma rules or folders.")
    ] = None,
    logs: Annotated[
        list[Path] | None, typer.Option("--logs", help="Log files to hunt in (loaded ad hoc).")
    ] = None,
    kql: Annotated[str | None, typer.Option("--kql", help="An ad hoc KQL query.")] = None,
    community: Annotated[
        bool,
        typer.Option("--community", help="The imported SigmaHQ rules (`defensemap import sigma`)."),
    ] = False,
    table: Annotated[str | None, typer.Option("--table", help="Table for --logs.")] = None,
    db: DbOpt = None,
    technique: Annotated[
        list[str] | None, typer.Option("--technique", help="Only rules for it.")
    ] = None,
    tactic: Annotated[list[str] | None, typer.Option("--tactic", help="Only rules for it.")] = None,
    level: Annotated[list[str] | None, typer.Option("--level", help="e.g. high or high+.")] = None,
    status: Annotated[list[str] | None, typer.Option("--status", help="e.g. stable.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json (NDJSON) or csv.")] = "table",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write alerts here.")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds per query.")] = 60.0,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip malformed log lines.")] = False,
) -> None:
    """Run detections over logs: one alert per matching event, a summary per rule on stderr.
    Exit 0 whether or not anything matched, 2 on bad input."""
    from defensemap.engine.hunt import (
        HuntResult,
        Selection,
        hunt_adhoc,
        hunt_detections,
        hunt_sigma,
        sigma_rules_of,
        split_rules,
    )

    if not rules and not kql and not community:
        raise InputError(
            "nothing to run", hint="pass --rules PATH..., --community and/or --kql QUERY"
        )
    files = split_rules(rules or [])
    select = Selection(
        tuple(technique or []), tuple(tactic or []), tuple(level or []), tuple(status or [])
    )
    result = HuntResult()
    with _hunting_db(logs or [], table, db, skip_bad) as con:
        if kql:
            hunt_adhoc(con, kql, timeout=timeout, result=result)
        hunt_detections(con, files.detections, timeout=timeout, result=result)
        if files.detections:
            hunt_sigma(
                con, sigma_rules_of(files.detections), timeout=timeout, result=result, select=select
            )
        if files.sigma:
            from defensemap.engine.sigma.rules import load_rules

            hunt_sigma(con, load_rules(files.sigma), timeout=timeout, result=result, select=select)
        if community:
            hunt_sigma(con, _community_rules(), timeout=timeout, result=result, select=select)
    _write_alerts(result, fmt, output)
    if community:
        err_console().print(COMMUNITY_ATTRIBUTION, markup=False, soft_wrap=True)


COMMUNITY_ATTRIBUTION = (
    "Community rules: SigmaHQ, Detection Rule License 1.1 — each rule's author and link:"
    " `defensemap detection RULE_ID`."
)


def _community_rules() -> Any:
    """The imported SigmaHQ rules as one rule set, loaded from their stored YAML."""
    from defensemap.engine.sigma.rules import rules_from_yaml
    from defensemap.store.sigma import list_rules

    with reading() as store:
        stored = list_rules(store)
    if not stored:
        raise InputError(
            "no community rules imported", hint="load them with `defensemap import sigma PATH`"
        )
    return rules_from_yaml((rule.path, rule.yaml) for rule in stored)


def _mark(ok: bool | None) -> str:
    return "-" if ok is None else "✓" if ok else "✗"


def test_command(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Detection files or folders (default: content/detections)."),
    ] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds per query.")] = 60.0,
    json_out: JsonOpt = False,
) -> None:
    """Run every detection's positive and negative test events through its KQL and its
    Sigma logic; fail on a missed or extra alert, or when KQL and Sigma disagree."""
    from defensemap.engine.hunt import split_rules
    from defensemap.engine.testing import junit_xml, run_detection_tests

    set_json(json_out)
    from defensemap.library.loader import content_dir

    files = split_rules(paths or [content_dir() / "detections"])
    if not files.detections:
        raise InputError("no detection files found", hint="pass detection YAML files or folders")
    results = [run_detection_tests(d, timeout=timeout) for d in files.detections]
    if junit:
        junit.write_text(junit_xml(results), encoding="utf-8")
    if json_out:
        print_json(
            envelope(
                "test",
                [
                    {
                        "id": r.id,
                        "title": r.title,
                        "path": r.path,
                        "ok": r.ok,
                        "kql": r.language_ok("kql"),
                        "sigma": r.language_ok("sigma"),
                        "cases": [c.__dict__ for c in r.cases],
                        "disagreements": r.disagreements,
                        "errors": r.errors,
                    }
                    for r in results
                ],
            )
        )
    else:
        _print_test_results(results)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


def _print_test_results(results: list[Any]) -> None:
    table = Table(
        title=f"{sum(r.ok for r in results)}/{len(results)} detection(s) pass", title_justify="left"
    )
    for column in ("Detection", "KQL", "Sigma", "Cases", "Problems"):
        table.add_column(column, overflow="fold")
    for r in results:
        passed = sum(c.ok for c in r.cases)
        problems = [c.message for c in r.cases if not c.ok] + r.disagreements + r.errors
        table.add_row(
            r.title,
            _mark(r.language_ok("kql")),
            _mark(r.language_ok("sigma")),
            f"{passed}/{len(r.cases)}",
            "\n".join(problems),
        )
    console().print(table)


def register(app: typer.Typer) -> None:
    app.command("test")(test_command)
    app.command("hunt")(hunt)
    app.add_typer(kql_app, name="kql")
    app.add_typer(logs_app, name="logs")
