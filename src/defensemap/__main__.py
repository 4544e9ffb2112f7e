"""``python -m defensemap`` runs the CLI."""

from defensemap.cli.main import run

run()
