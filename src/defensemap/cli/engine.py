"""Engine commands: `logs ingest`, `hunt`, `kql check`, `test`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from defensemap.cli.common import JsonOpt, set_json, settings
from defensemap.cli.output import console, err_console, print_json, progress
from defensemap.errors import SourceError, SourceLocation
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
    from defensemap.engine.duck import logs_database

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


def register(app: typer.Typer) -> None:
    app.add_typer(kql_app, name="kql")
    app.add_typer(logs_app, name="logs")
