"""`defensemap serve`: the web UI and JSON API on the local store (read-only);
`defensemap build-site`: the same pages as a static site."""

from __future__ import annotations

import ipaddress
import re
import time
from pathlib import Path
from typing import Annotated

import typer

from defensemap.cli.common import settings
from defensemap.cli.output import err_console, progress
from defensemap.errors import InputError

TOKEN_ENV = "DEFENSEMAP_TOKEN"


#: Characters that travel unquoted in a header, a cookie and a URL query.
_TOKEN = re.compile(r"[A-Za-z0-9._~-]{16,}")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind (default loopback).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8000,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar=TOKEN_ENV, help="Required for any non-loopback address."),
    ] = None,
) -> None:
    """Serve technique pages, search and the JSON API (`/api/v1`, docs at `/api/docs`)."""
    import uvicorn

    from defensemap.web.app import create_app

    if not _loopback(host) and not token:
        raise InputError(
            f"binding to {host} exposes the store beyond this machine",
            hint=f"give --token (or ${TOKEN_ENV}); every request must then carry it",
        )
    if token is not None and not _TOKEN.fullmatch(token):
        raise InputError(
            "the token must be at least 16 letters, digits or - _ . ~",
            hint="e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(24))'",
        )
    app = create_app(settings(), token=token)
    err_console().print(f"defensemap on http://{host}:{port}/ (Ctrl+C stops)", markup=False)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def build_site(
    out: Annotated[
        Path, typer.Argument(help="Directory to write (new, empty or a previous build).")
    ],
    base_url: Annotated[
        str,
        typer.Option(
            "--base-url", help="Prefix of every link, e.g. https://docs.example/defensemap."
        ),
    ] = "",
    attack_version: Annotated[
        str | None,
        typer.Option(
            "--attack-version", help="ATT&CK release the site shows (default: newest loaded)."
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", min=1, max=32, help="Render processes (default: CPUs, ≤ 4)."),
    ] = None,
) -> None:
    """Write every page (techniques, capabilities, frameworks, groups, software, campaigns,
    detections, …) as OUT/<path>/index.html with a prebuilt search index, for any static host."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from defensemap.web.site import build_site as build

    started = time.perf_counter()
    with progress(
        TextColumn("rendering pages"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    ) as bar:
        task = bar.add_task("pages", total=None)
        report = build(
            settings(),
            out,
            base_url,
            attack_version=attack_version,
            jobs=jobs,
            on_plan=lambda total: bar.update(task, total=total),
            advance=lambda done: bar.advance(task, done),
        )
    seconds = time.perf_counter() - started
    err = err_console()
    err.print(
        f"{report.pages} pages, {report.indexed} search entries → {report.out} in {seconds:.1f} s",
        markup=False,
    )
    if report.missing:
        err.print(
            f"{len(report.missing)} pages have nothing to show (404/503) and were left out, e.g. "
            f"{', '.join(report.missing[:3])}",
            markup=False,
        )
    if report.routes_absent:
        err.print(f"no page route yet for: {', '.join(report.routes_absent)}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("build-site")(build_site)
