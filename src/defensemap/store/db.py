"""The knowledge store: one SQLite file with FTS5, versioned by ``PRAGMA user_version``.

Readers open it read-only; only import commands write, each inside one transaction, so a
failure, a crash or ``kill -9`` leaves the file exactly as it was before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from defensemap.errors import SourceLocation, StoreError

LOAD_HINT = (
    "load data with `defensemap sync` and `defensemap sync --mappings` (online), or"
    " `defensemap import attack FILE` and `defensemap import mappings PATH` (offline)"
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Numbered ``NNNN_name.sql`` files shipped in ``store/migrations``, in order."""
    folder = resources.files("defensemap.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        stem = entry.name.removesuffix(".sql")
        if entry.name.endswith(".sql") and stem[:4].isdigit():
            found.append(Migration(int(stem[:4]), stem[5:], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def schema_version() -> int:
    """The store version this defensemap writes."""
    return migrations()[-1].version


class Store:
    """A connection to the store; use :func:`open_store` to get one."""

    def __init__(self, conn: sqlite3.Connection, path: Path, writable: bool) -> None:
        self.conn = conn
        self.path = path
        self.writable = writable

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing write: commit on success, roll back on any exception."""
        if not self.writable:
            raise StoreError("the store is open read-only", location=None)
        where = SourceLocation(path=str(self.path))
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(
                f"cannot write the store: {exc}",
                location=where,
                hint="another defensemap command is writing it; retry when it has finished",
            ) from None
        try:
            yield self.conn
            self.conn.commit()
        except sqlite3.DatabaseError as exc:
            self.conn.rollback()
            raise StoreError(
                f"write failed and was rolled back, the store is unchanged: {exc}",
                location=where,
                hint="check free disk space and that the store file is writable",
            ) from exc
        except BaseException:
            self.conn.rollback()
            raise


def open_store(path: Path, *, write: bool = False) -> Store:
    """Open (and, for writers, create and migrate) the store at ``path``."""
    if write:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(path, "rwc")
        _migrate(conn, path)
    else:
        if not path.exists():
            raise StoreError(f"no store at {path}", hint=LOAD_HINT)
        if Path(f"{path}-journal").exists():
            # a writer crashed (or is running): only a read-write connection can roll back
            # its hot journal, a read-only one fails with "attempt to write a readonly database"
            with suppress(StoreError):  # read-only media: the read-only open below decides
                _connect(path, "rw").close()
        conn = _connect(path, "ro")
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        if current != schema_version():
            conn.close()
            _migrate_file(path)
            conn = _connect(path, "ro")
    return Store(conn, path, write)


def _connect(path: Path, mode: str) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(
            f"file:{path}?mode={mode}", uri=True, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"cannot open the store: {exc}",
            hint="move the file aside and import again, or pass another --home",
        ) from None
    conn.row_factory = sqlite3.Row
    return conn


def _migrate_file(path: Path) -> None:
    conn = _connect(path, "rw")
    try:
        _migrate(conn, path)
    finally:
        conn.close()


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Apply pending migrations, each in its own transaction with its version bump."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    latest = schema_version()
    if current > latest:
        raise StoreError(
            f"the store at {path} has schema version {current}; this defensemap knows {latest}",
            hint="upgrade defensemap, or use another --home",
        )
    for migration in migrations():
        if migration.version <= current:
            continue
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _statements(migration.sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {migration.version:d}")
            conn.commit()
        except sqlite3.DatabaseError as exc:
            conn.rollback()
            raise StoreError(
                f"migration {migration.version:04d}_{migration.name} failed: {exc}"
            ) from None


def _statements(sql: str) -> list[str]:
    """Split a migration script into statements (``executescript`` would commit midway)."""
    statements, buffer = [], ""
    for line in sql.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
