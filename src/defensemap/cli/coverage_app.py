"""The ``defensemap coverage`` sub-app, shared by the coverage command (cli/coverage.py) and
its ``controls`` / ``rules`` sub-commands."""

from __future__ import annotations

import typer

coverage_app = typer.Typer(
    help="Threat-informed coverage: controls + detections + data + adversaries → ranked gaps.",
    invoke_without_command=True,
    no_args_is_help=False,
)
