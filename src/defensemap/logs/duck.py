"""DuckDB connections for logs: where the logs database lives, and how user queries are
confined (no files, no network, no extension installs, bounded memory and time)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import duckdb

from defensemap.errors import DefensemapError, StoreError

T = TypeVar("T")
DEFAULT_MEMORY_LIMIT = "2GB"
DEFAULT_TIMEOUT = 60.0
SOURCE_COLUMN = "_dm_source"
RECORD_COLUMN = "_dm_record"
PROVENANCE_COLUMNS = (SOURCE_COLUMN, RECORD_COLUMN)


class QueryTimeoutError(DefensemapError):
    """A detection ran longer than allowed and was interrupted."""

    code = "timeout"


def connect(path: Path | None = None, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A logs database (``:memory:`` when ``path`` is None), in UTC as KQL expects."""
    try:
        con = duckdb.connect(str(path) if path else ":memory:", read_only=read_only)
    except duckdb.Error as exc:
        raise StoreError(f"cannot open the logs database {path}: {exc}") from None
    con.execute("SET TimeZone = 'UTC'")
    return con


def lock_down(con: duckdb.DuckDBPyConnection, memory_limit: str = DEFAULT_MEMORY_LIMIT) -> None:
    """After ingest, before any user query: no file or network access, no extension
    installs or loads, a memory limit, and the configuration frozen so a query cannot undo it."""
    for statement in (
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
        f"SET memory_limit = '{memory_limit}'",
        "SET enable_external_access = false",
        "SET lock_configuration = true",
    ):
        con.execute(statement)


def with_timeout(
    con: duckdb.DuckDBPyConnection, work: Callable[[], T], seconds: float, label: str
) -> T:
    """Run ``work`` on ``con``; interrupt it after ``seconds`` and say which rule it was."""
    timer = threading.Timer(seconds, con.interrupt)
    timer.start()
    try:
        return work()
    except duckdb.InterruptException:
        raise QueryTimeoutError(
            f"{label} ran longer than {seconds:g} s and was stopped",
            hint="raise --timeout, or narrow the rule or the logs",
        ) from None
    finally:
        timer.cancel()


@contextmanager
def logs_database(
    path: Path | None, *, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(path, read_only=read_only)
    try:
        yield con
    finally:
        con.close()


def user_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Tables holding ingested logs, sorted."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        " ORDER BY table_name"
    ).fetchall()
    return [r[0] for r in rows]
