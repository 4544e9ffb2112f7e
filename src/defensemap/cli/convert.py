"""`defensemap convert ID --to TARGET`: a detection's Sigma logic in another SIEM's language."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from defensemap.cli.common import JsonOpt, set_json
from defensemap.cli.output import console, err_console, print_json
from defensemap.errors import ExportError, InputError, SchemaError, SourceLocation
from defensemap.kb.documents import envelope

if TYPE_CHECKING:
    from defensemap.library.convert import Conversion

_TARGET_HELP = "splunk, elastic-esql, elastic-lucene, logscale, secops, qradar, kusto, or all"


def _source(ident: str) -> tuple[dict[str, Any], list[str], dict[str, Any], str]:
    """(Sigma rule, table hints, what was converted, sigma_scope) for a library detection id
    or a Sigma / detection YAML file."""
    from defensemap.library.loader import load_library
    from defensemap.sources.detections import is_detection, parse_detection, read_yaml

    path = Path(ident)
    if path.suffix.lower() in (".yml", ".yaml") or path.exists():
        data = read_yaml(path)
        if is_detection(data):
            loaded = parse_detection(data, path)
        elif isinstance(data, dict) and "detection" in data:
            about = {"path": str(path), "title": data.get("title"), "author": data.get("author")}
            return data, [], about, "exact"
        else:
            raise SchemaError(
                "neither a Sigma rule nor a defensemap detection",
                location=SourceLocation(path=str(path)),
                hint="give a Sigma rule (logsource + detection) or a detection file",
            )
    else:
        library = load_library()
        if not library.has(ident):
            return _community_source(ident)
        loaded = library.get(ident)
    detection = loaded.detection
    if detection.sigma is None:
        raise InputError(
            f"detection {detection.id} has no Sigma rule to convert",
            location=SourceLocation(path=str(loaded.path), pointer="/sigma"),
        )
    about = {"id": str(detection.id), "title": detection.title, "path": str(loaded.path)}
    return detection.sigma, list(detection.required_tables), about, detection.sigma_scope


def _community_source(ident: str) -> tuple[dict[str, Any], list[str], dict[str, Any], str]:
    """An imported SigmaHQ rule, with the attribution its licence asks for."""
    import yaml

    from defensemap.cli.common import reading, settings
    from defensemap.errors import NotFoundError
    from defensemap.kb.detections import attribution, community_rule

    if not settings().store_path.exists():
        raise NotFoundError(
            f"no detection {ident!r} in the library",
            hint="list them with `defensemap detections`; community rules are loaded with"
            " `defensemap import sigma PATH`",
        )
    with reading() as store:
        rule = community_rule(store, ident)
    about = {
        "id": rule.id,
        "title": rule.title,
        "path": rule.path,
        "author": rule.author,
        "attribution": attribution(rule).text,
    }
    return yaml.safe_load(rule.yaml), [], about, "exact"


def _convert_all(
    sigma: dict[str, Any], tables: list[str], scope: str, targets: list[str]
) -> list[Conversion]:
    from defensemap.library.convert import convert, scoped

    return [scoped(convert(sigma, t, tables=tables), scope) for t in targets]


def _print(result: Conversion, about: dict[str, Any]) -> None:
    out = console()
    pipelines = ", ".join(result.pipelines) or "none"
    lines = [
        f"// {result.target}: {result.language}",
        f"// backend: {result.backend} · pipelines: {pipelines} · status: {result.status}",
    ]
    if about.get("attribution"):
        lines.append(f"// {about['attribution']}")
    elif about.get("author"):
        lines.append(f"// Sigma rule by {about['author']} ({about['path']})")
    lines += [f"// note: {note}" for note in result.notes]
    if result.query is not None:
        lines.append(result.query)
    out.print("\n".join(lines), markup=False, soft_wrap=True, highlight=False)


def convert_command(
    ident: Annotated[
        str,
        typer.Argument(
            help="Detection id, imported SigmaHQ rule id, or a Sigma / detection YAML file."
        ),
    ],
    to: Annotated[str, typer.Option("--to", help=_TARGET_HELP)] = "all",
    json_out: JsonOpt = False,
) -> None:
    """Convert a detection's Sigma rule with pySigma backends, naming backend, pipelines and
    whether the result is exact, approximate or refused."""
    from defensemap.library.convert import TARGETS

    set_json(json_out)
    if to != "all" and to not in TARGETS:
        raise InputError(f"unknown target {to!r}", hint=f"use one of: {_TARGET_HELP}")
    sigma, tables, about, scope = _source(ident)
    targets = list(TARGETS) if to == "all" else [to]
    results = _convert_all(sigma, tables, scope, targets)
    if json_out:
        print_json(
            envelope("convert", {"source": about, "conversions": [r.to_json() for r in results]})
        )
    else:
        for i, result in enumerate(results):
            if i:
                console().print("")
            _print(result, about)
    refused = results[0] if to != "all" and results[0].status == "refused" else None
    if refused is not None:
        error = ExportError(
            f"{refused.target}: conversion refused: {'; '.join(refused.notes)}",
            hint="see `defensemap convert ID --to all` for the targets that can express it",
        )
        if json_out:
            err_console().print(f"error: {error}", markup=False, soft_wrap=True)
            sys.exit(error.exit_code)
        raise error


def register(app: typer.Typer) -> None:
    app.command("convert")(convert_command)
