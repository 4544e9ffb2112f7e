"""``defensemap import attack`` as a user runs it: bad input is one line and exit 2, a failed
import leaves the store exactly as it was, re-imports are idempotent, versions accumulate."""

from __future__ import annotations

import gzip
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.attack_bundles import (
    RELATIONSHIP,
    SUBTECHNIQUE,
    TECHNIQUE,
    TECHNIQUE_ID,
    encode,
    release_counts,
    small_bundle,
    store_digest,
    write_bundle,
)

from defensemap.store import attack as store_attack
from defensemap.store import db as store_db

A = "enterprise-attack-99.1.json"
B = "enterprise-attack-99.2.json"


def _store(home: Path) -> Path:
    return home / "defensemap.sqlite"


def _one_error_line(result: Any, *fragments: str) -> str:
    """stderr holds exactly one ``error: <location>: <message> — <hint>`` line.

    Blank lines are ignored here: the parsing progress bar leaves one behind when stderr is
    not a terminal (see ``test_stderr_has_no_blank_line``)."""
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    assert " — " in line, f"no hint in {line!r}"
    for fragment in fragments:
        assert fragment in line, line
    return line


def _duplicate(bundle: dict[str, Any]) -> None:
    bundle["objects"][SUBTECHNIQUE]["id"] = TECHNIQUE_ID


def _write(change: Callable[[dict[str, Any]], object], name: str = A) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        bundle = small_bundle()
        change(bundle)
        return write_bundle(folder / name, bundle)

    return make


def _bytes(content: bytes, name: str = A) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        (folder / name).write_bytes(content)
        return folder / name

    return make


def _truncated_gzip(folder: Path) -> Path:
    data = gzip.compress(encode(small_bundle()))
    path = folder / f"{A}.gz"
    path.write_bytes(data[: len(data) // 2])
    return path


BAD_FILES: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    # name: (make, expected code, fragment after the path)
    "not-json": (_bytes(b'{"type": "bundle",\n "objects": [}'), "parse_error", ":2:"),
    "empty": (_bytes(b""), "parse_error", ":1:1"),
    "truncated-gzip": (_truncated_gzip, "parse_error", ": gzip archive is truncated"),
    "json-array": (_bytes(b"[]"), "schema_error", "#/"),
    "no-objects": (_write(lambda b: b.pop("objects")), "schema_error", "#/objects"),
    "duplicate-id": (_write(_duplicate), "schema_error", f"#/objects/3/id ({TECHNIQUE_ID})"),
    "name-int": (
        _write(lambda b: b["objects"][TECHNIQUE].update(name=1)),
        "schema_error",
        "#/objects/2/name",
    ),
    "relationship-no-source": (
        _write(lambda b: b["objects"][RELATIONSHIP].pop("source_ref")),
        "schema_error",
        "#/objects/4/source_ref",
    ),
    "no-version": (_write(lambda b: None, "bundle.json"), "schema_error", ": cannot tell"),
    "missing-file": (lambda folder: folder / "nope.json", "source_error", ": file not found"),
}


@pytest.mark.parametrize("case", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_file_is_one_line_and_exit_2(
    cli: Any, home: Path, tmp_path: Path, case: tuple[Callable[[Path], Path], str, str]
) -> None:
    make, _, where = case
    path = make(tmp_path)
    result = cli("import", "attack", str(path))
    assert result.exit_code == 2
    _one_error_line(result, f"error: {path}{where}")
    assert result.stdout == ""


def test_stderr_has_no_blank_line(cli: Any, home: Path, tmp_path: Path) -> None:
    path = tmp_path / A
    path.write_bytes(b"[]")
    result = cli("import", "attack", str(path))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1, repr(result.stderr)
    assert result.stderr.startswith(f"error: {path}#/: not a STIX bundle")


def test_missing_version_hint_names_the_option(cli: Any, home: Path, tmp_path: Path) -> None:
    path = write_bundle(tmp_path / "bundle.json", small_bundle())
    result = cli("import", "attack", str(path))
    assert result.exit_code == 2
    _one_error_line(result, "--attack-version")
    assert cli("import", "attack", str(path), "--attack-version", "99.7").exit_code == 0
    assert [r["version"] for r in cli("attack", "versions", "--json").json()["data"]] == ["99.7"]


def test_oversized_file_is_refused(
    cli: Any, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEFENSEMAP_MAX_INPUT_MB", "1")
    path = tmp_path / A
    path.write_bytes(encode(small_bundle()) + b" " * (2 << 20))
    result = cli("import", "attack", str(path))
    assert result.exit_code == 2
    _one_error_line(result, str(path), "limit", "DEFENSEMAP_MAX_INPUT_MB")


@pytest.mark.parametrize("case", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_file_json_error_document(
    cli: Any, home: Path, tmp_path: Path, case: tuple[Callable[[Path], Path], str, str]
) -> None:
    make, code, where = case
    path = make(tmp_path)
    result = cli("import", "attack", "--json", str(path))
    assert result.exit_code == 2
    document = result.json()
    assert isinstance(document, dict)
    assert document["ok"] is False
    assert document["status"] == 2
    error = document["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["hint"]
    assert error["location"]["path"] == str(path)
    if where.startswith("#"):
        assert error["location"]["pointer"] == where[1:].split(" ")[0]
    if where.startswith(":") and where[1:2].isdigit():
        assert error["location"]["line"] == int(where[1:].split(":")[0])
    _one_error_line(result, str(path))


# --- the store is all-or-nothing ---------------------------------------------------------------


def _snapshot(cli: Any, home: Path) -> tuple[Any, str, bytes]:
    versions = cli("attack", "versions", "--json")
    assert versions.exit_code == 0, versions.stderr
    return versions.json()["data"], store_digest(_store(home)), _store(home).read_bytes()


@pytest.fixture
def with_a(cli: Any, home: Path, tmp_path: Path) -> Path:
    """A home holding release 99.1 of the small bundle."""
    path = write_bundle(tmp_path / "in" / A, small_bundle())
    result = cli("import", "attack", str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("imported: ATT&CK enterprise-attack 99.1 (5 objects)")
    return home


@pytest.mark.parametrize("bad_first", [False, True], ids=["valid-then-bad", "bad-then-valid"])
def test_a_bad_file_among_good_ones_imports_nothing(
    cli: Any, with_a: Path, tmp_path: Path, bad_first: bool
) -> None:
    before = _snapshot(cli, with_a)
    good = write_bundle(tmp_path / B, small_bundle(" v2"))
    bad = _write(_duplicate, "enterprise-attack-99.3.json")(tmp_path)
    files = [str(bad), str(good)] if bad_first else [str(good), str(bad)]
    result = cli("import", "attack", *files)
    assert result.exit_code == 2
    _one_error_line(result, str(bad), "duplicate id")
    assert _snapshot(cli, with_a) == before
    assert [r["version"] for r in before[0]] == ["99.1"]


def test_two_files_of_one_version_import_nothing(cli: Any, with_a: Path, tmp_path: Path) -> None:
    before = _snapshot(cli, with_a)
    one = write_bundle(tmp_path / "x" / B, small_bundle())
    two = write_bundle(tmp_path / "y" / B, small_bundle(" other"))
    result = cli("import", "attack", str(one), str(two))
    assert result.exit_code == 2
    _one_error_line(result, "99.2")
    assert _snapshot(cli, with_a) == before


@pytest.mark.parametrize(
    "failure",
    [sqlite3.OperationalError("database or disk is full"), sqlite3.IntegrityError("boom")],
    ids=["disk-full", "integrity"],
)
def test_store_failure_mid_import_rolls_back_and_exits_1(
    cli: Any,
    with_a: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: sqlite3.Error,
) -> None:
    """A database error halfway through (disk full, ...) is one line, exit 1, store as before;
    the re-import of 99.1 with new bytes (a replace) must not lose the old 99.1 either."""
    before = _snapshot(cli, with_a)
    new_a = write_bundle(tmp_path / "new" / A, small_bundle(" changed"))
    b = write_bundle(tmp_path / B, small_bundle(" v2"))

    calls: list[str] = []
    real = store_attack._relationship_row

    def broken(release_id: int, rel: Any) -> Any:
        calls.append(rel.stix_id)
        if len(calls) == 2:  # 99.2 is written, 99.1 deleted and half rewritten
            raise failure
        return real(release_id, rel)

    with monkeypatch.context() as patch:
        patch.setattr(store_attack, "_relationship_row", broken)
        result = cli("import", "attack", str(b), str(new_a))
    assert result.exit_code == 1
    assert len(calls) == 2
    _one_error_line(result, str(_store(with_a)), str(failure), "rolled back")
    assert _snapshot(cli, with_a) == before
    assert cli("import", "attack", str(b), str(new_a)).exit_code == 0  # works once repaired


def test_locked_store_is_one_line_and_exit_1(
    cli: Any, with_a: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process writing the store: a clear error after the busy timeout, not a trace."""
    connect = store_db._connect

    def impatient(path: Path, mode: str) -> sqlite3.Connection:
        conn = connect(path, mode)
        conn.execute("PRAGMA busy_timeout = 50")
        return conn

    monkeypatch.setattr(store_db, "_connect", impatient)
    before = _snapshot(cli, with_a)
    other = sqlite3.connect(_store(with_a), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        result = cli("import", "attack", str(write_bundle(tmp_path / B, small_bundle())))
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert result.exit_code == 1
    _one_error_line(result, str(_store(with_a)), "locked")
    assert _snapshot(cli, with_a) == before


# --- idempotent re-imports, accumulating versions ----------------------------------------------


def test_reimporting_the_same_file_changes_nothing(cli: Any, with_a: Path, tmp_path: Path) -> None:
    before = _snapshot(cli, with_a)
    same = tmp_path / "in" / A
    for _ in range(2):
        result = cli("import", "attack", str(same))
        assert result.exit_code == 0, result.stderr
        assert result.stdout.strip() == "unchanged: ATT&CK enterprise-attack 99.1 (5 objects)"
        assert _snapshot(cli, with_a)[:2] == before[:2]
    result = cli("import", "attack", "--json", str(same))
    assert [o["status"] for o in result.json()["data"]] == ["unchanged"]


def test_same_content_compressed_is_unchanged(cli: Any, with_a: Path, tmp_path: Path) -> None:
    """The digest is of the JSON, so the .json.gz of an imported file is the same release."""
    before = _snapshot(cli, with_a)
    packed = tmp_path / f"{A}.gz"
    packed.write_bytes(gzip.compress((tmp_path / "in" / A).read_bytes()))
    result = cli("import", "attack", str(packed))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("unchanged:")
    assert _snapshot(cli, with_a)[:2] == before[:2]


def test_new_version_keeps_the_old_one(cli: Any, with_a: Path, tmp_path: Path) -> None:
    counts_a = release_counts(_store(with_a))
    result = cli("import", "attack", str(write_bundle(tmp_path / B, small_bundle(" v2"))))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("imported: ATT&CK enterprise-attack 99.2")
    versions = cli("attack", "versions", "--json").json()["data"]
    assert [(r["domain"], r["version"]) for r in versions] == [
        ("enterprise-attack", "99.2"),
        ("enterprise-attack", "99.1"),
    ]
    after = release_counts(_store(with_a))
    for key in counts_a:
        assert set(counts_a[key]) <= set(after[key]), key


def test_changed_bytes_replace_only_their_own_version(
    cli: Any, with_a: Path, tmp_path: Path
) -> None:
    b = write_bundle(tmp_path / B, small_bundle(" v2"))
    assert cli("import", "attack", str(b)).exit_code == 0
    before = release_counts(_store(with_a))
    changed = write_bundle(tmp_path / "changed" / A, small_bundle(" changed"))
    result = cli("import", "attack", "--json", str(changed))
    assert result.exit_code == 0, result.stderr
    assert [(o["version"], o["status"]) for o in result.json()["data"]] == [("99.1", "replaced")]
    after = release_counts(_store(with_a))
    b_id = next(r[0] for r in before["releases"] if r[2] == "99.2")
    for key in ("objects", "relationships"):
        assert [row for row in after[key] if row[0] == b_id] == [
            row for row in before[key] if row[0] == b_id
        ]
    assert sorted(r[2] for r in after["releases"]) == ["99.1", "99.2"]
    conn = sqlite3.connect(f"file:{_store(with_a)}?mode=ro", uri=True)
    try:
        names = {
            name
            for (name,) in conn.execute("SELECT name FROM attack_object WHERE name LIKE '%changed'")
        }
        scopes = conn.execute("SELECT count(DISTINCT scope) FROM search_index").fetchone()[0]
        orphans = conn.execute(
            "SELECT count(*) FROM attack_object"
            " WHERE release_id NOT IN (SELECT id FROM attack_release)"
        ).fetchone()[0]
    finally:
        conn.close()
    assert len(names) == 4
    assert scopes == 2
    assert orphans == 0
