"""Coverage inputs kept in the store: `coverage controls import|list`, `coverage rules
import|list` and `import atomics`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, SpinnerColumn, TextColumn
from rich.table import Table

from defensemap.cli.common import JsonOpt, import_app, reading, set_json, writing
from defensemap.cli.coverage_app import coverage_app
from defensemap.cli.output import console, err_console, print_json, progress
from defensemap.errors import SourceError
from defensemap.kb.documents import envelope

controls_app = typer.Typer(
    help="The controls in place (framework capabilities and how far each is implemented).",
    no_args_is_help=True,
)
rules_app = typer.Typer(
    help="The team's existing detection rules (Sentinel, Elastic, Sigma, Splunk).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the `controls` and `rules` groups to `coverage` (`import atomics` registers itself
    on the import group when this module is imported)."""
    del app  # the groups hang off the shared coverage sub-app, registered by cli/coverage.py
    coverage_app.add_typer(controls_app, name="controls")
    coverage_app.add_typer(rules_app, name="rules")


def _say(text: str) -> None:
    console().print(text, markup=False, soft_wrap=True)


def _warn(text: str) -> None:
    err_console().print(text, markup=False, soft_wrap=True)


@contextmanager
def _spinner(text: str) -> Iterator[None]:
    with progress(SpinnerColumn(), TextColumn(text), transient=True) as bar:
        bar.add_task(text, total=None)
        yield


# --- coverage controls -------------------------------------------------------------------------


@controls_app.command("import")
def controls_import(
    file: Annotated[
        Path, typer.Argument(help="CSV or YAML: framework, capability_id, status per control.")
    ],
    json_out: JsonOpt = False,
) -> None:
    """Import the controls in place, replacing the previous ones. The file is taken whole or
    refused whole; capability ids the loaded mappings do not know are listed as warnings."""
    from defensemap.kb.controls import unknown_capabilities
    from defensemap.sources.controls import load_controls
    from defensemap.store.coverage import replace_controls
    from defensemap.store.mappings import list_sets

    set_json(json_out)
    controls = load_controls(file)
    if not controls:
        raise SourceError(f"{file}: no controls in the file", hint="add one row per control")
    with writing() as store:
        outcome = replace_controls(store, controls, str(file))
        checked = bool(list_sets(store))
        unknown = unknown_capabilities(store, controls) if checked else []
    notes = [] if checked else ["no mappings loaded: capability ids were not checked"]
    if json_out:
        data = {**asdict(outcome), "unknown": [asdict(c) for c in unknown], "notes": notes}
        print_json(envelope("coverage-controls-import", data))
        return
    console().print(_controls_table(outcome.by_framework, controls))
    replaced = f", replacing {outcome.replaced}" if outcome.replaced else ""
    _say(f"imported {outcome.controls} control(s) from {file}{replaced}")
    for control in unknown:
        _warn(
            f"warning: {control.source}: {control.framework} {control.capability_id} is not in"
            " the mapping set coverage judges it by (the newest, or the version it names)"
        )
    for note in notes:
        _warn(f"note: {note}")


def _controls_table(by_framework: dict[str, int], controls: list[Any]) -> Table:
    from defensemap.sources.controls import STATUSES

    table = Table(title="Controls per framework", title_justify="left")
    table.add_column("Framework")
    for status in STATUSES:
        table.add_column(status, justify="right")
    for framework in by_framework:
        counts = [
            sum(1 for c in controls if c.framework == framework and c.status == s) for s in STATUSES
        ]
        table.add_row(framework, *(str(n) for n in counts))
    return table


@controls_app.command("list")
def controls_list(json_out: JsonOpt = False) -> None:
    """The controls in place, as imported."""
    from defensemap.store.coverage import controls_import as import_info
    from defensemap.store.coverage import saved_controls

    set_json(json_out)
    with reading() as store:
        info = import_info(store)
        controls = saved_controls(store)
    notes = [] if info else ["no controls imported: `defensemap coverage controls import FILE`"]
    if json_out:
        data = {
            "source": info.source if info else None,
            "imported_at": info.imported_at if info else None,
            "controls": [asdict(c) for c in controls],
            "notes": notes,
        }
        print_json(envelope("coverage-controls", data))
        return
    table = Table(title=f"{len(controls)} control(s) in place", title_justify="left")
    for column in ("Framework", "Capability", "Status", "Version", "Source"):
        table.add_column(column)
    for c in controls:
        table.add_row(c.framework, c.capability_id, c.status, c.framework_version or "", c.source)
    console().print(table)
    if info:
        _say(f"imported from {info.source} at {info.imported_at}")
    for note in notes:
        _warn(f"note: {note}")


# --- coverage rules ----------------------------------------------------------------------------


def _read_with_progress(paths: list[Path]) -> Any:
    from defensemap.sources.rulesets import read_rule_set

    with progress(
        TextColumn("reading rules"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} files"),
        transient=True,
    ) as bar:
        task = bar.add_task("read", total=None)
        update: Callable[[int, int], None] = lambda done, total: bar.update(  # noqa: E731
            task, completed=done, total=total
        )
        return read_rule_set(paths, update)


def _set_name(paths: list[Path], name: str | None) -> str:
    """The set's name: ``--name``, else the first path's file or folder name."""
    chosen = (name or paths[0].resolve().stem or "rules").strip()
    if not chosen:
        raise SourceError("the rule set name is empty", hint="pass --name NAME")
    return chosen


@rules_app.command("import")
def rules_import(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Rule files or folders: Sentinel YAML/ARM JSON, Kibana .ndjson, Sigma,"
            " savedsearches.conf."
        ),
    ],
    name: Annotated[
        str | None,
        typer.Option("--name", help="Name of the rule set (default: the first path's name)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Import existing detection rules as a named rule set (re-importing a name replaces that
    set). The format of each file is detected; malformed rule files abort the import."""
    from defensemap.store.coverage import replace_rule_set

    set_json(json_out)
    set_name = _set_name(paths, name)
    read = _read_with_progress(paths)
    if not read.rules:
        first = f"; first skipped: {read.skipped[0].where}: {read.skipped[0].reason}"
        raise SourceError(
            f"no rules in {read.files} file(s) under {', '.join(read.sources)}"
            + (first if read.skipped else ""),
            hint="pass Sentinel, Elastic, Sigma or Splunk rule files or folders",
        )
    with writing() as store:
        outcome = replace_rule_set(store, set_name, read)
    if json_out:
        print_json(envelope("coverage-rules-import", _set_json(outcome)))
        return
    for skipped in outcome.skipped:
        _warn(f"skipped: {skipped.where}: {skipped.reason}")
    console().print(_formats_table(outcome.by_format))
    replaced = f", replacing {outcome.replaced}" if outcome.replaced else ""
    _say(
        f"imported rule set {outcome.name!r}: {outcome.rules} rule(s) from {outcome.files}"
        f" file(s), {outcome.enabled} enabled, {outcome.with_techniques} with ATT&CK"
        f" techniques, {outcome.no_technique} with no ATT&CK technique"
        f" ({len(outcome.skipped)} skipped){replaced}"
    )


def _set_json(info: Any) -> dict[str, Any]:
    return {**asdict(info), "no_technique": info.no_technique}


def _formats_table(by_format: dict[str, int]) -> Table:
    table = Table(title="Rules per format", title_justify="left")
    table.add_column("Format")
    table.add_column("Rules", justify="right")
    for fmt, count in by_format.items():
        table.add_row(fmt, str(count))
    return table


@rules_app.command("list")
def rules_list(
    name: Annotated[
        str | None, typer.Option("--name", help="Also list the rules of this set.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """The saved rule sets with their counts (and, with --name, the rules of one set)."""
    from defensemap.errors import NotFoundError
    from defensemap.store.coverage import rule_sets, saved_rules

    set_json(json_out)
    with reading() as store:
        sets = rule_sets(store)
        if name is not None and name.casefold() not in {s.name.casefold() for s in sets}:
            known = ", ".join(s.name for s in sets) or "none"
            raise NotFoundError(f"no rule set named {name!r}", hint=f"saved sets: {known}")
        rules = saved_rules(store, [name]) if name is not None else saved_rules(store)
    if json_out:
        data = {"sets": [_set_json(s) for s in sets], "rules": [asdict(r) for r in rules]}
        print_json(envelope("coverage-rules", data))
        return
    console().print(_sets_table(sets))
    if name is not None:
        console().print(_rules_table(rules, name))
    if not sets:
        _warn("note: no rule sets imported: `defensemap coverage rules import PATH`")


def _sets_table(sets: list[Any]) -> Table:
    table = Table(title=f"{len(sets)} rule set(s)", title_justify="left")
    for column in ("Name", "Rules", "Enabled", "With ATT&CK", "No ATT&CK", "Formats", "Imported"):
        table.add_column(column, justify="right" if column[0] in "REWN" else "left")
    for s in sets:
        formats = "\n".join(f"{k} {v}" for k, v in s.by_format.items())
        table.add_row(
            s.name,
            str(s.rules),
            str(s.enabled),
            str(s.with_techniques),
            str(s.no_technique),
            formats,
            s.imported_at,
        )
    return table


def _rules_table(rules: list[Any], name: str) -> Table:
    table = Table(title=f"Rules of {name}", title_justify="left")
    for column in ("Id", "Name", "Origin", "Enabled", "Language", "Techniques"):
        table.add_column(column)
    for r in rules:
        techniques = ", ".join(r.techniques) or "no ATT&CK technique"
        enabled = "yes" if r.enabled else "no"
        table.add_row(r.id, r.name, r.origin, enabled, r.language, techniques)
    return table


# --- import atomics ----------------------------------------------------------------------------


@import_app.command("atomics")
def import_atomics(
    path: Annotated[
        Path,
        typer.Argument(help="A checkout of redcanaryco/atomic-red-team, or its atomics folder."),
    ],
    json_out: JsonOpt = False,
) -> None:
    """Import the Atomic Red Team test definitions (replacing the previous ones), so coverage
    can name the tests that should make each detection fire."""
    from defensemap.sources.atomics import load_atomics
    from defensemap.store.coverage import replace_atomics

    set_json(json_out)
    with _spinner(f"reading Atomic Red Team tests under {path}"):
        index = load_atomics(path)
    with writing() as store:
        outcome = replace_atomics(store, index, str(path))
    if json_out:
        print_json(envelope("import-atomics", asdict(outcome)))
        return
    replaced = f", replacing {outcome.replaced}" if outcome.replaced else ""
    _say(
        f"imported {outcome.tests} Atomic Red Team test(s) for {outcome.techniques}"
        f" technique(s) from {path}{replaced}"
    )
