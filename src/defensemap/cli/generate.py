"""`defensemap generate telemetry`: synthetic logs with known attacks for tests and benches."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from defensemap.cli.common import JsonOpt, set_json
from defensemap.cli.output import console, print_json
from defensemap.kb.documents import envelope

generate_app = typer.Typer(help="Generate synthetic data with ground truth.", no_args_is_help=True)


@generate_app.command("telemetry")
def telemetry(
    table: Annotated[
        str,
        typer.Option(
            "--table",
            help="DeviceProcessEvents, SigninLogs, AuditLogs or Sysmon (process creation).",
        ),
    ],
    rows: Annotated[int, typer.Option("--rows", min=0, help="Benign rows to generate.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help=".parquet, .ndjson/.jsonl or .csv")
    ],
    attacks: Annotated[
        Path | None, typer.Option("--attacks", help="YAML/JSON list of attacks to inject.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same bytes.")] = 1,
    json_out: JsonOpt = False,
) -> None:
    """Realistic benign events plus injected attacks; the attacks' row numbers are written to
    FILE.truth.json."""
    from defensemap.generate.telemetry import generate, load_attacks

    set_json(json_out)
    chosen = load_attacks(attacks) if attacks else None
    result = generate(table, rows, output, seed=seed, attacks=chosen)
    if json_out:
        print_json(
            envelope(
                "generate-telemetry",
                {
                    "path": str(result.path),
                    "table": result.table,
                    "rows": result.rows,
                    "attacks": result.attacks,
                },
            )
        )
        return
    console().print(
        f"wrote {result.path}: {result.rows} {result.table} rows, {len(result.attacks)} injected"
        f" attack(s) listed in {result.path}.truth.json",
        markup=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(generate_app, name="generate")
