from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from defensemap.errors import StoreError
from defensemap.store.db import _statements, migrations, open_store, schema_version


def test_new_store_is_created_at_the_latest_schema(tmp_path: Path) -> None:
    store = open_store(tmp_path / "a" / "store.sqlite", write=True)
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == schema_version()
    tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"attack_release", "attack_object", "attack_relationship", "search_index"} <= tables
    store.close()


def test_migrations_are_numbered_without_gaps() -> None:
    numbers = [m.version for m in migrations()]
    assert numbers == list(range(1, len(numbers) + 1))


def test_reopening_does_not_migrate_twice(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    open_store(path, write=True).close()
    open_store(path, write=True).close()
    reader = open_store(path)
    assert reader.conn.execute("PRAGMA user_version").fetchone()[0] == schema_version()
    reader.close()


def test_store_from_a_newer_defensemap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {schema_version() + 1}")
    conn.close()
    with pytest.raises(StoreError, match=r"newer|upgrade"):
        open_store(path, write=True)


def test_missing_store_for_reading_says_how_to_load(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as info:
        open_store(tmp_path / "none.sqlite")
    assert "defensemap sync" in str(info.value)


def test_corrupt_store_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        open_store(path)


def test_reader_cannot_write(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    open_store(path, write=True).close()
    reader = open_store(path)
    with pytest.raises(StoreError, match="read-only"), reader.transaction():
        pass
    with pytest.raises(sqlite3.OperationalError):
        reader.conn.execute("CREATE TABLE x (a)")


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store.sqlite", write=True)
    with pytest.raises(RuntimeError), store.transaction() as conn:
        conn.execute("CREATE TABLE scratch (a)")
        raise RuntimeError("boom")
    names = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master")}
    assert "scratch" not in names


def test_statement_splitter_keeps_triggers_and_skips_comments() -> None:
    sql = "-- note\nCREATE TABLE a (x);\nCREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END;\n"
    assert _statements(sql) == [
        "CREATE TABLE a (x);",
        "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END;",
    ]
