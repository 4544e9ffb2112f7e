"""Options, store access and checks shared by the command modules."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import BarColumn, TextColumn

from defensemap.cli.output import STATE, console, err_console, print_json, progress
from defensemap.config import Settings
from defensemap.errors import InputError
from defensemap.kb.documents import envelope
from defensemap.store.db import Store, open_store

T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the stable JSON document.")]
VersionOpt = Annotated[
    str | None,
    typer.Option("--attack-version", help="ATT&CK version, e.g. 16.1 (default: newest)."),
]
DomainOpt = Annotated[
    str | None,
    typer.Option("--domain", help="enterprise, mobile or ics (default: all, enterprise first)."),
]

import_app = typer.Typer(
    help="Load local files into the store (air-gapped friendly).", no_args_is_help=True
)
export_app = typer.Typer(
    help="Write what the store knows in other tools' formats.", no_args_is_help=True
)


def settings() -> Settings:
    return Settings.resolve(STATE.home)


def set_json(flag: bool) -> None:
    """Remember ``--json`` so errors are printed as JSON too."""
    STATE.json = flag


@contextmanager
def reading() -> Iterator[Store]:
    """The store, read-only, closed afterwards."""
    store = open_store(settings().store_path)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def writing() -> Iterator[Store]:
    """The store for an import (created and migrated if needed), closed afterwards."""
    store = open_store(settings().store_path, write=True)
    try:
        yield store
    finally:
        store.close()


def ensure_unique(
    items: Iterable[T], key: Callable[[T], object], source: Callable[[T], str], what: str
) -> None:
    """Refuse two inputs that would land in the same place of the store."""
    seen: dict[object, str] = {}
    for item in items:
        k = key(item)
        if k in seen:
            raise InputError(
                f"{source(item)} and {seen[k]} are both {what} {k}",
                hint="import one file per release",
            )
        seen[k] = source(item)


def parse_with_progress(paths: list[Path], parse: Callable[[Path], T], what: str) -> list[T]:
    """Parse every file before anything is written (imports are all-or-nothing), showing
    which file is being read."""
    parsed = []
    with progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        transient=True,
    ) as bar:
        task = bar.add_task(f"parsing {what}", total=len(paths))
        for path in paths:
            bar.update(task, description=f"parsing {path.name}")
            parsed.append(parse(path))
            bar.advance(task)
    return parsed


def print_outcomes(
    outcomes: Sequence[Any], kind: str, json_out: bool, line: Callable[[Any], str]
) -> None:
    """What an import did: the JSON list, or one line per file plus its warnings."""
    if json_out:
        print_json(envelope(kind, [o.__dict__ for o in outcomes]))
        return
    out = console()
    for outcome in outcomes:
        out.print(line(outcome), markup=False, soft_wrap=True)
        for warning in outcome.warnings:
            err_console().print(f"warning: {warning}", markup=False, soft_wrap=True)
