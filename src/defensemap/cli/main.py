"""The ``defensemap`` command: a Typer app with one module per command group."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from defensemap import __version__
from defensemap.cli import attack as attack_commands
from defensemap.cli import content as content_commands
from defensemap.cli import convert as convert_commands
from defensemap.cli import coverage as coverage_commands  # noqa: F401  (registers the command)
from defensemap.cli import coverage_inputs as coverage_input_commands
from defensemap.cli import detections as detection_commands
from defensemap.cli import engine as engine_commands
from defensemap.cli import export as export_commands  # noqa: F401  (registers commands)
from defensemap.cli import generate as generate_commands
from defensemap.cli import mappings as mapping_commands
from defensemap.cli import navigator as navigator_commands
from defensemap.cli import sync as sync_commands
from defensemap.cli import web as web_commands
from defensemap.cli.common import import_app
from defensemap.cli.coverage_app import coverage_app
from defensemap.cli.output import STATE, report_error
from defensemap.errors import DefensemapError

app = typer.Typer(
    name="defensemap",
    help="Local-first, threat-informed defense: what a technique is, what counters it, "
    "how to detect it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"defensemap {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    home: Annotated[
        str | None,
        typer.Option(
            "--home",
            envvar="DEFENSEMAP_HOME",
            help="Data home holding the store (default: the user data directory).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print less.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    STATE.home = home
    STATE.quiet = quiet


app.add_typer(import_app, name="import")
app.add_typer(coverage_app, name="coverage")
sync_commands.register(app)
attack_commands.register(app)
mapping_commands.register(app)
generate_commands.register(app)
engine_commands.register(app)
convert_commands.register(app)
detection_commands.register(app)
content_commands.register(app)
web_commands.register(app)
coverage_input_commands.register(app)
navigator_commands.register(app)


def run() -> None:
    """Console-script entry point: typed errors become one line and exit 2 (bad input) or 1."""
    try:
        app()
    except DefensemapError as error:
        sys.exit(report_error(error))
