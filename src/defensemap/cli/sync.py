"""`defensemap sync`: download official releases and import them in one transaction."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, TaskID, TextColumn, TimeRemainingColumn

from defensemap.cli.attack import load_with_progress, store_bundles
from defensemap.cli.common import JsonOpt, set_json, settings
from defensemap.cli.output import progress
from defensemap.errors import InputError


@contextmanager
def _scratch() -> Iterator[Path]:
    """A download folder inside the data home, removed whatever happens."""
    home = settings().home
    home.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="sync-", dir=home))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _fetch(items: list[tuple[str, str, Path]], hint: str) -> list[Path]:
    """Download (label, url, target) items with one progress bar each."""
    from defensemap.sources import http

    paths = []
    with progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn()
    ) as bar:
        for label, url, target in items:
            task = bar.add_task(label, total=None)

            def update(done: int, total: int | None, task: TaskID = task) -> None:
                bar.update(task, completed=done, total=total)

            paths.append(http.download(url, target, hint, update))
    return paths


def sync(
    source: Annotated[
        str | None,
        typer.Option("--source", help="Mirror with the official repository layout."),
    ] = None,
    domain: Annotated[
        list[str] | None, typer.Option("--domain", help="ATT&CK domain(s) to fetch.")
    ] = None,
    attack_version: Annotated[
        str | None, typer.Option("--attack-version", help="ATT&CK version to fetch.")
    ] = None,
    mappings: Annotated[
        bool, typer.Option("--mappings", help="Fetch the Mappings Explorer files instead.")
    ] = False,
    framework: Annotated[
        list[str] | None, typer.Option("--framework", help="With --mappings: only these.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Download the official ATT&CK releases (or, with --mappings, the Mappings Explorer
    files) and import them atomically."""
    set_json(json_out)
    if mappings:
        _sync_mappings(source, framework or [], json_out)
    else:
        _sync_attack(source, domain or [], attack_version, json_out)


def _sync_attack(
    source: str | None, domain: list[str], attack_version: str | None, json_out: bool
) -> None:
    from defensemap.kb.lookup import normalize_domain
    from defensemap.sources import attack_release

    root = source or attack_release.DEFAULT_SOURCE
    domains = [d for d in (normalize_domain(x) for x in domain) if d]
    chosen = attack_release.choose(attack_release.fetch_index(root), domains, attack_version)
    if not chosen:
        raise InputError(
            f"{root} lists no release for {', '.join(domains) or 'any domain'}"
            f" {attack_version or ''}".strip(),
            hint="run `defensemap sync` without --attack-version for the newest releases",
        )
    with _scratch() as folder:
        items = [
            (f"{r.domain} {r.version}", r.url, folder / f"{r.domain}-{r.version}.json")
            for r in chosen
        ]
        paths = _fetch(items, attack_release.OFFLINE_HINT)
        bundles = [
            replace(bundle, source=release.url)
            for path, release in zip(paths, chosen, strict=True)
            for bundle in load_with_progress([path], release.version)
        ]
        store_bundles(bundles, json_out, "sync")


def _sync_mappings(source: str | None, frameworks: list[str], json_out: bool) -> None:
    from defensemap.cli.mappings import load_mapping_files, store_mapping_files
    from defensemap.sources import mappings_release

    chosen = mappings_release.published(source or mappings_release.DEFAULT_SOURCE, frameworks)
    if not chosen:
        known = sorted({p.split("/", 1)[0] for p in mappings_release.PUBLISHED})
        raise InputError(
            f"no published mappings for {', '.join(frameworks)}", hint=f"known: {', '.join(known)}"
        )
    with _scratch() as folder:
        items = [(d.path.rsplit("/", 1)[-1], d.url, folder / d.path) for d in chosen]
        paths = _fetch(items, mappings_release.OFFLINE_HINT)
        files = [
            replace(f, source=d.url) for f, d in zip(load_mapping_files(paths), chosen, strict=True)
        ]
        store_mapping_files(files, json_out, "sync-mappings")


def register(app: typer.Typer) -> None:
    app.command("sync")(sync)
