"""Engine commands: `logs ingest`, `hunt`, `kql check`, `test`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from defensemap.cli.common import JsonOpt, set_json
from defensemap.cli.output import print_json
from defensemap.errors import SourceError, SourceLocation
from defensemap.kb.documents import envelope

kql_app = typer.Typer(help="KQL tools that need no workspace.", no_args_is_help=True)


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
