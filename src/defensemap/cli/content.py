"""`defensemap content validate` and `defensemap schema detection`: keep the detection library
reviewable and let editors validate detection files as they are written."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from defensemap.cli.common import JsonOpt, set_json, settings
from defensemap.cli.output import console, print_json
from defensemap.errors import DefensemapError, InputError
from defensemap.kb.documents import envelope

if TYPE_CHECKING:
    from defensemap.kb.vocabulary import AttackVocabulary
    from defensemap.library.validate import ValidationReport

content_app = typer.Typer(help="Check the detection library.", no_args_is_help=True)
schema_app = typer.Typer(help="JSON Schemas of defensemap's file formats.", no_args_is_help=True)


@content_app.command("validate")
def validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Detection files or folders (default: the library)."),
    ] = None,
    atomics: Annotated[
        Path | None,
        typer.Option("--atomics", help="Atomic Red Team checkout to check test GUIDs against."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Schema, unique ids, complete fields, ATT&CK references, tables and columns, every KQL
    on empty typed tables, Sigma validators and atomic test GUIDs. Exit 1 on any error."""
    from defensemap.library.loader import content_dir
    from defensemap.library.sigma_checks import SigmaChecker
    from defensemap.library.validate import validate_library
    from defensemap.sources.atomics import load_atomics

    set_json(json_out)
    vocabulary, bundle = _attack_reference()
    report = validate_library(
        paths or [content_dir() / "detections"],
        vocabulary=vocabulary,
        atomics=load_atomics(atomics) if atomics else None,
        sigma=SigmaChecker(bundle),
    )
    if report.checked == 0:
        raise InputError("no detection files found", hint="pass detection YAML files or folders")
    if json_out:
        print_json(
            envelope(
                "content-validate",
                {
                    "checked": report.checked,
                    "ok": report.ok,
                    "findings": [f.__dict__ for f in report.findings],
                    "notes": report.notes,
                },
            )
        )
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _attack_reference() -> tuple[AttackVocabulary | None, Path | None]:
    """The ATT&CK vocabulary and an offline bundle for pySigma, when the store has ATT&CK."""
    from defensemap.kb.vocabulary import attack_vocabulary, write_attack_bundle
    from defensemap.store.db import open_store

    path = settings().store_path
    if not path.exists():
        return None, None
    store = open_store(path)
    try:
        vocabulary = attack_vocabulary(store)
        bundle = write_attack_bundle(
            store, settings().home / "cache" / f"attack-{vocabulary.release}.json"
        )
    except DefensemapError:
        return None, None
    finally:
        store.close()
    return vocabulary, bundle


def _print_report(report: ValidationReport) -> None:
    out = console()
    for finding in report.findings:
        out.print(
            f"{finding.path}: {finding.severity}: [{finding.check}] {finding.message}",
            markup=False,
            soft_wrap=True,
        )
    for note in report.notes:
        out.print(f"note: {note}", markup=False, soft_wrap=True, style="dim")
    warnings = len(report.findings) - len(report.errors)
    verdict = "ok" if report.ok else f"{len(report.errors)} error(s)"
    if warnings:
        verdict += f", {warnings} warning(s)"
    out.print(f"{report.checked} detection(s) checked: {verdict}", markup=False)


@schema_app.command("detection")
def detection_schema(
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write.")] = None,
) -> None:
    """The JSON Schema of a detection file (for editors: yaml-language-server, VS Code)."""
    import orjson

    from defensemap.model.detection import Detection

    schema = Detection.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://defensemap.dev/schemas/detection.json"
    text = orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    if output:
        output.write_bytes(text)
    else:
        typer.echo(text.decode(), nl=False)


def register(app: typer.Typer) -> None:
    app.add_typer(content_app, name="content")
    app.add_typer(schema_app, name="schema")
