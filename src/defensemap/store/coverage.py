"""Write and read the inputs of a coverage computation kept in the store: the controls in
place, the team's named rule sets and the Atomic Red Team tests.

Each import replaces what it covers (the controls, one named rule set, the atomics) inside one
transaction, so the store holds either the previous content or all of the new one.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from defensemap.model.atomics import AtomicIndex, AtomicTest
from defensemap.model.coverage import ControlInPlace, DeployedRule
from defensemap.model.rulesets import RuleSetRead, SkippedFile
from defensemap.store.db import Store


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _count(conn: sqlite3.Connection, sql: str, params: Sequence[object] = ()) -> int:
    return int(conn.execute(sql, params).fetchone()[0])


# --- controls in place -------------------------------------------------------------------------


@dataclass(frozen=True)
class ControlsImport:
    """What the controls import did, and what ``controls list`` shows about it."""

    source: str
    imported_at: str
    controls: int
    replaced: int
    by_framework: dict[str, int]
    by_status: dict[str, int]


def replace_controls(
    store: Store, controls: Sequence[ControlInPlace], source: str
) -> ControlsImport:
    """Store ``controls`` as the controls in place, replacing the previous ones."""
    with store.transaction() as conn:
        replaced = _count(conn, "SELECT count(*) FROM coverage_control")
        conn.execute("DELETE FROM coverage_control")
        conn.execute("DELETE FROM coverage_control_import")
        conn.executemany(
            "INSERT INTO coverage_control"
            " (position, framework, capability_id, status, framework_version, source)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                (i, c.framework, c.capability_id, c.status, c.framework_version, c.source)
                for i, c in enumerate(controls)
            ),
        )
        imported_at = _now()
        conn.execute(
            "INSERT INTO coverage_control_import (id, source, imported_at) VALUES (1, ?, ?)",
            (source, imported_at),
        )
    return _controls_summary(source, imported_at, controls, replaced)


def _controls_summary(
    source: str, imported_at: str, controls: Sequence[ControlInPlace], replaced: int = 0
) -> ControlsImport:
    return ControlsImport(
        source=source,
        imported_at=imported_at,
        controls=len(controls),
        replaced=replaced,
        by_framework=dict(Counter(c.framework for c in controls).most_common()),
        by_status=dict(Counter(c.status for c in controls).most_common()),
    )


def saved_controls(store: Store) -> list[ControlInPlace]:
    """The controls in place, in the order of the imported file."""
    rows = store.conn.execute(
        "SELECT framework, capability_id, status, framework_version, source"
        " FROM coverage_control ORDER BY position"
    ).fetchall()
    return [
        ControlInPlace(
            r["framework"], r["capability_id"], r["status"], r["framework_version"], r["source"]
        )
        for r in rows
    ]


def controls_import(store: Store) -> ControlsImport | None:
    """Where the saved controls came from, or ``None`` when none were imported."""
    row = store.conn.execute("SELECT source, imported_at FROM coverage_control_import").fetchone()
    if row is None:
        return None
    return _controls_summary(row["source"], row["imported_at"], saved_controls(store))


# --- rule sets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleSetInfo:
    """One named rule set: where it was read, when, and what it holds."""

    name: str
    sources: list[str]
    imported_at: str
    files: int
    rules: int
    with_techniques: int
    enabled: int
    by_format: dict[str, int]
    skipped: list[SkippedFile]
    replaced: int = 0

    @property
    def no_technique(self) -> int:
        return self.rules - self.with_techniques


_RULE_COLUMNS = "id, name, origin, techniques, enabled, language, tables, logsource, source"


def replace_rule_set(store: Store, name: str, read: RuleSetRead) -> RuleSetInfo:
    """Store ``read`` as the rule set ``name``, replacing a set of that name."""
    with store.transaction() as conn:
        replaced = _count(conn, "SELECT count(*) FROM rule_set_rule WHERE set_name = ?", (name,))
        conn.execute("DELETE FROM rule_set WHERE name = ?", (name,))
        imported_at = _now()
        conn.execute(
            "INSERT INTO rule_set (name, sources, imported_at, files, by_format, skipped)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                name,
                _dumps(read.sources),
                imported_at,
                read.files,
                _dumps(read.by_format),
                _dumps([s.__dict__ for s in read.skipped]),
            ),
        )
        conn.executemany(
            f"INSERT INTO rule_set_rule (set_name, position, {_RULE_COLUMNS})"
            f" VALUES ({'?, ' * 10}?)",
            _rule_rows(name, read.rules),
        )
    return RuleSetInfo(
        name=name,
        sources=read.sources,
        imported_at=imported_at,
        files=read.files,
        rules=len(read.rules),
        with_techniques=read.with_techniques,
        enabled=read.enabled,
        by_format=read.by_format,
        skipped=read.skipped,
        replaced=replaced,
    )


def _rule_rows(name: str, rules: Iterable[DeployedRule]) -> Iterable[tuple[Any, ...]]:
    for position, r in enumerate(rules):
        yield (
            name,
            position,
            r.id,
            r.name,
            r.origin,
            _dumps(r.techniques),
            int(r.enabled),
            r.language,
            _dumps(r.tables),
            r.logsource,
            r.source,
        )


def rule_sets(store: Store) -> list[RuleSetInfo]:
    """Every saved rule set with its counts, by name."""
    rows = store.conn.execute(
        "SELECT s.*, count(r.id) AS rules, coalesce(sum(r.enabled), 0) AS enabled,"
        " coalesce(sum(r.techniques != '[]'), 0) AS with_techniques"
        " FROM rule_set s LEFT JOIN rule_set_rule r ON r.set_name = s.name"
        " GROUP BY s.name ORDER BY s.name"
    ).fetchall()
    return [
        RuleSetInfo(
            name=r["name"],
            sources=orjson.loads(r["sources"]),
            imported_at=r["imported_at"],
            files=r["files"],
            rules=r["rules"],
            with_techniques=r["with_techniques"],
            enabled=r["enabled"],
            by_format=orjson.loads(r["by_format"]),
            skipped=[SkippedFile(**s) for s in orjson.loads(r["skipped"])],
        )
        for r in rows
    ]


def saved_rules(store: Store, names: Sequence[str] = ()) -> list[DeployedRule]:
    """The rules of every saved rule set (or of the sets ``names``), set by set in file
    order."""
    wanted = f"SELECT name FROM rule_set WHERE name IN ({','.join('?' * len(names))})"
    where = f"WHERE set_name IN ({wanted})" if names else ""
    rows = store.conn.execute(
        f"SELECT {_RULE_COLUMNS} FROM rule_set_rule {where} ORDER BY set_name, position",
        list(names),
    ).fetchall()
    return [
        DeployedRule(
            id=r["id"],
            name=r["name"],
            origin=r["origin"],
            techniques=tuple(orjson.loads(r["techniques"])),
            enabled=bool(r["enabled"]),
            language=r["language"],
            tables=tuple(orjson.loads(r["tables"])),
            source=r["source"],
            logsource=r["logsource"],
        )
        for r in rows
    ]


# --- Atomic Red Team tests ----------------------------------------------------------------------


@dataclass(frozen=True)
class AtomicsImport:
    source: str
    imported_at: str
    tests: int
    techniques: int
    replaced: int = 0


def replace_atomics(store: Store, index: AtomicIndex, source: str) -> AtomicsImport:
    """Store the tests of ``index``, replacing the previously imported ones."""
    with store.transaction() as conn:
        replaced = _count(conn, "SELECT count(*) FROM atomic_test")
        conn.execute("DELETE FROM atomic_test")
        conn.execute("DELETE FROM atomic_import")
        conn.executemany(
            "INSERT INTO atomic_test (guid, name, technique, platforms) VALUES (?, ?, ?, ?)",
            ((t.guid, t.name, t.technique, _dumps(t.platforms)) for t in index.tests.values()),
        )
        imported_at = _now()
        conn.execute(
            "INSERT INTO atomic_import (id, source, imported_at) VALUES (1, ?, ?)",
            (source, imported_at),
        )
    techniques = len({t.technique for t in index.tests.values()})
    return AtomicsImport(source, imported_at, len(index.tests), techniques, replaced)


def atomic_tests(store: Store) -> AtomicIndex | None:
    """The imported Atomic Red Team tests, or ``None`` when none were imported."""
    if store.conn.execute("SELECT 1 FROM atomic_import").fetchone() is None:
        return None
    rows = store.conn.execute(
        "SELECT guid, name, technique, platforms FROM atomic_test ORDER BY technique, guid"
    ).fetchall()
    tests = {
        r["guid"]: AtomicTest(
            r["guid"], r["name"], r["technique"], tuple(orjson.loads(r["platforms"]))
        )
        for r in rows
    }
    return AtomicIndex(tests)


def atomics_import(store: Store) -> AtomicsImport | None:
    """Where the imported tests came from, or ``None``."""
    row = store.conn.execute(
        "SELECT source, imported_at, (SELECT count(*) FROM atomic_test) AS tests,"
        " (SELECT count(DISTINCT technique) FROM atomic_test) AS techniques FROM atomic_import"
    ).fetchone()
    if row is None:
        return None
    return AtomicsImport(row["source"], row["imported_at"], row["tests"], row["techniques"])
