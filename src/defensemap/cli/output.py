"""How the CLI prints: JSON envelopes on stdout, one-line errors on stderr, Rich for people."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import orjson
from rich.console import Console
from rich.progress import Progress, ProgressColumn
from rich.text import Text

from defensemap.errors import DefensemapError


@dataclass
class CliState:
    """Options every command shares (set by the root callback and ``--json`` flags)."""

    home: str | None = None
    json: bool = False
    quiet: bool = False


STATE = CliState()


def console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def err_console() -> Console:
    return Console(stderr=True, highlight=False)


def progress(*columns: ProgressColumn | str, transient: bool = False) -> Progress:
    """A progress display on stderr, silent under --quiet/--json or when stderr is not a
    terminal (a bar redrawn into a log file or a pipe is noise)."""
    stderr = err_console()
    return Progress(
        *columns,
        console=stderr,
        transient=transient,
        disable=STATE.quiet or STATE.json or not stderr.is_terminal,
    )


def _default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(document: Any) -> str:
    return orjson.dumps(document, default=_default, option=orjson.OPT_INDENT_2).decode()


def print_json(document: Any) -> None:
    sys.stdout.write(dumps(document) + "\n")
    sys.stdout.flush()


def report_error(error: DefensemapError) -> int:
    """One clear line on stderr (and the JSON error shape on stdout under ``--json``)."""
    if STATE.json:
        print_json({"ok": False, "error": error.to_dict(), "status": error.exit_code})
    err_console().print(Text.assemble(("error: ", "bold red"), str(error)), soft_wrap=True)
    return error.exit_code
