"""An import that dies half-way (``kill -9``, an exception, Ctrl-C) leaves the store exactly as
it was: same releases, same rows, a clean ``integrity_check``, and readable at once."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.attack_bundles import release_counts, small_bundle, store_digest, write_bundle
from tests.conftest import ENTERPRISE_18

from defensemap.sources.attack_stix import load_bundle
from defensemap.store import attack as store_attack
from defensemap.store.attack import ingest_attack, list_releases
from defensemap.store.db import open_store

STORE = "defensemap.sqlite"
CLI = [sys.executable, "-m", "defensemap"]


def _home_with_small_release(folder: Path) -> Path:
    """A data home whose store holds the small enterprise 99.1 bundle."""
    home = folder / "home"
    bundle = load_bundle(write_bundle(folder / "enterprise-attack-99.1.json", small_bundle()))
    store = open_store(home / STORE, write=True)
    try:
        ingest_attack(store, [bundle])
    finally:
        store.close()
    return home


def _state(home: Path) -> tuple[Any, ...]:
    """Everything an interrupted import must leave alone, read the way users read it."""
    store = open_store(home / STORE)  # read-only, as every query command opens it
    try:
        releases = [(r.domain, r.version, r.sha256, r.counts) for r in list_releases(store)]
    finally:
        store.close()
    return releases, release_counts(home / STORE), store_digest(home / STORE)


def _integrity(home: Path) -> str:
    conn = sqlite3.connect(home / STORE)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def _has_18(home: Path) -> bool:
    conn = sqlite3.connect(home / STORE)
    try:
        row = conn.execute(
            "SELECT count(*) FROM attack_release WHERE domain = 'enterprise-attack'"
            " AND version = '18.1'"
        ).fetchone()
    finally:
        conn.close()
    return bool(row[0])


def _import_and_kill(home: Path, delay: float, log: Path) -> bool:
    """Start the real CLI importing enterprise 18.1, ``kill -9`` it ``delay`` seconds after its
    rollback journal appears (i.e. inside the write transaction). False if it finished first."""
    journal = home / f"{STORE}-journal"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*CLI, "--home", str(home), "--quiet", "import", "attack", str(ENTERPRISE_18)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline:
                if journal.exists():
                    if delay:
                        time.sleep(delay)
                    if proc.poll() is not None:
                        break
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=30)
                    return True
                time.sleep(0.001)
            return False
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


def _grew(home: Path, template: Path) -> bool:
    """The killed import had already written pages into the database file itself, so only
    the hot journal can restore it (a kill before that tests much less)."""
    return (home / STORE).stat().st_size > (template / STORE).stat().st_size


@pytest.mark.realdata
@pytest.mark.slow
def test_kill_9_mid_import_leaves_the_store_as_before(shared_data: Path, tmp_path: Path) -> None:
    template = _home_with_small_release(tmp_path / "template")
    before = _state(template)
    assert [r[:2] for r in before[0]] == [("enterprise-attack", "99.1")]

    delay = 0.0  # after the journal appears: at once first, then deeper into the inserts
    kills, deep = 0, 0
    for attempt in range(15):
        home = tmp_path / f"home-{attempt}"
        shutil.copytree(template, home)
        log = tmp_path / f"import-{attempt}.log"
        journal = home / f"{STORE}-journal"
        if not _import_and_kill(home, delay, log) or (not journal.exists() and _has_18(home)):
            delay /= 2  # the import finished (or committed) before the kill
            continue
        assert journal.exists(), "killed inside the transaction, a journal must remain"
        grew = _grew(home, template)

        # The first thing to touch the store after the crash is a read-only reader.
        assert _state(home) == before, log.read_text(errors="replace")
        assert not _grew(home, template), "the rollback truncates the file to its old size"
        # whatever journal is left now is not hot: plain read-only connections work again
        conn = sqlite3.connect(f"file:{home / STORE}?mode=ro", uri=True)
        assert conn.execute("SELECT count(*) FROM attack_release").fetchone() == (1,)
        conn.close()
        assert _integrity(home) == "ok"
        assert not _has_18(home)
        kills += 1
        deep += grew
        if kills >= 3 and deep >= 2:
            break
        delay = delay * 1.5 + 0.05
    assert kills >= 3, "could not kill the import inside its transaction"
    assert deep >= 1, "no kill happened after the import had written into the database file"

    # The store is fully usable afterwards: the interrupted import can simply be run again.
    store = open_store(home / STORE, write=True)
    try:
        (outcome,) = ingest_attack(store, [load_bundle(ENTERPRISE_18)])
    finally:
        store.close()
    assert outcome.status == "imported"
    assert [r[:2] for r in _state(home)[0]] == [
        ("enterprise-attack", "99.1"),
        ("enterprise-attack", "18.1"),
    ]
    assert _integrity(home) == "ok"


@pytest.mark.realdata
@pytest.mark.slow
def test_cli_reads_the_store_right_after_a_kill(
    shared_data: Path, tmp_path: Path, cli: Any
) -> None:
    """``defensemap attack versions`` as the first command after a crash answers normally,
    though a read-only SQLite connection cannot roll back the hot journal itself."""
    template = _home_with_small_release(tmp_path / "template")
    delay = 0.15
    for attempt in range(10):
        home = tmp_path / f"home-{attempt}"
        shutil.copytree(template, home)
        if not _import_and_kill(home, delay, tmp_path / "import.log"):
            delay /= 2
            continue
        if not _grew(home, template):
            delay = delay * 1.5 + 0.05
            continue
        result = cli("--home", str(home), "attack", "versions", "--json")
        assert result.exit_code == 0, result.stderr
        assert [(r["domain"], r["version"]) for r in result.json()["data"]] == [
            ("enterprise-attack", "99.1")
        ]
        assert _integrity(home) == "ok"
        return
    pytest.fail("could not kill the import after it wrote into the database file")


# --- an exception inside the transaction ------------------------------------------------------


def _fail_after(monkeypatch: pytest.MonkeyPatch, calls: int, error: BaseException) -> list[int]:
    """Make the ``calls``-th relationship row raise ``error`` (mid-``executemany``)."""
    seen: list[int] = []
    real = store_attack._relationship_row

    def row(release_id: int, rel: Any) -> Any:
        seen.append(release_id)
        if len(seen) == calls:
            raise error
        return real(release_id, rel)

    monkeypatch.setattr(store_attack, "_relationship_row", row)
    return seen


@pytest.mark.parametrize(
    "error", [RuntimeError("boom"), KeyboardInterrupt()], ids=["exception", "ctrl-c"]
)
def test_exception_mid_ingest_leaves_the_store_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    """A new version fully written, then an existing one deleted and half rewritten: rolled
    back, both in the database and in the full-text index."""
    home = _home_with_small_release(tmp_path)
    before = _state(home)
    new = load_bundle(write_bundle(tmp_path / "enterprise-attack-99.2.json", small_bundle(" 2")))
    changed = load_bundle(
        write_bundle(tmp_path / "new" / "enterprise-attack-99.1.json", small_bundle(" x"))
    )
    seen = _fail_after(monkeypatch, 2, error)
    store = open_store(home / STORE, write=True)
    try:
        with pytest.raises(type(error)):
            ingest_attack(store, [new, changed])
        assert len(set(seen)) == 2, "the failure must hit the second release"
        assert not store.conn.in_transaction
    finally:
        store.close()
    assert _state(home) == before
    assert _integrity(home) == "ok"
    assert not (home / f"{STORE}-journal").exists()


@pytest.mark.realdata
@pytest.mark.slow
def test_exception_deep_into_a_real_import_leaves_the_store_unchanged(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _home_with_small_release(tmp_path)
    before = _state(home)
    bundle = load_bundle(ENTERPRISE_18)
    seen = _fail_after(monkeypatch, len(bundle.relationships) - 10, RuntimeError("boom"))
    store = open_store(home / STORE, write=True)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            ingest_attack(store, [bundle])
    finally:
        store.close()
    assert len(seen) == len(bundle.relationships) - 10
    assert _state(home) == before
    assert _integrity(home) == "ok"
