"""Saved coverage inputs: controls and atomics replaced whole, rule sets replaced by name, each
import all-or-nothing, and read back unchanged through a read-only store."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import REPO

from defensemap.errors import StoreError
from defensemap.model.atomics import AtomicIndex, AtomicTest
from defensemap.model.coverage import ControlInPlace, DeployedRule
from defensemap.model.rulesets import RuleSetRead, SkippedFile
from defensemap.sources.rulesets import read_rule_set
from defensemap.store import coverage
from defensemap.store.db import Store, open_store

FIXTURES = REPO / "tests" / "fixtures" / "rulesets"
CONTROLS = [
    ControlInPlace("nist_800_53", "IA-5", "implemented", "rev5", "c.csv:2"),
    ControlInPlace("aws", "aws_rds", "partial", None, "c.csv:3"),
]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(tmp_path / "store.sqlite", write=True)


def _reader(store: Store) -> Store:
    return open_store(store.path)


def test_controls_are_replaced_whole_and_read_back_in_order(store: Store) -> None:
    first = coverage.replace_controls(store, CONTROLS, "c.csv")
    assert (first.controls, first.replaced) == (2, 0)
    assert first.by_status == {"implemented": 1, "partial": 1}
    assert coverage.saved_controls(_reader(store)) == CONTROLS
    newer = [ControlInPlace("kev", "CVE-2024-3400", "planned", None, "d.yaml#/0")]
    second = coverage.replace_controls(store, newer, "d.yaml")
    assert second.replaced == 2
    reader = _reader(store)
    assert coverage.saved_controls(reader) == newer
    info = coverage.controls_import(reader)
    assert info is not None
    assert (info.source, info.controls, info.by_framework) == ("d.yaml", 1, {"kev": 1})


def test_nothing_imported_reads_as_empty(store: Store) -> None:
    reader = _reader(store)
    assert coverage.saved_controls(reader) == []
    assert coverage.controls_import(reader) is None
    assert coverage.saved_rules(reader) == []
    assert coverage.rule_sets(reader) == []
    assert coverage.atomic_tests(reader) is None


def test_a_failed_controls_import_leaves_the_previous_controls(store: Store) -> None:
    coverage.replace_controls(store, CONTROLS, "c.csv")
    bad = [*CONTROLS, ControlInPlace("aws", "x", "maybe", None, "e.csv:9")]  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="rolled back"):
        coverage.replace_controls(store, bad, "e.csv")
    assert coverage.saved_controls(_reader(store)) == CONTROLS


def _read(*rules: DeployedRule) -> RuleSetRead:
    return RuleSetRead(
        sources=["x"], files=1, rules=list(rules), by_format={"sigma": len(rules)}, skipped=[]
    )


def _rule(
    ident: str, techniques: tuple[str, ...] = ("T1059",), enabled: bool = True
) -> DeployedRule:
    return DeployedRule(ident, f"rule {ident}", "sigma", techniques, enabled, "sigma")


def test_rule_sets_are_replaced_by_name_only(store: Store) -> None:
    fixtures = read_rule_set([FIXTURES])
    coverage.replace_rule_set(store, "soc", fixtures)
    coverage.replace_rule_set(store, "lab", _read(_rule("a"), _rule("b", (), False)))
    again = coverage.replace_rule_set(store, "lab", _read(_rule("c")))
    assert again.replaced == 2
    reader = _reader(store)
    sets = {s.name: s for s in coverage.rule_sets(reader)}
    assert (sets["lab"].rules, sets["soc"].rules) == (1, 16)
    soc = sets["soc"]
    assert (soc.with_techniques, soc.no_technique, soc.enabled, soc.files) == (11, 5, 11, 11)
    assert soc.by_format == fixtures.by_format
    assert soc.skipped == fixtures.skipped
    assert coverage.saved_rules(reader, ["soc"]) == fixtures.rules  # every field round-trips
    assert [r.id for r in coverage.saved_rules(reader, ["lab"])] == ["c"]
    assert len(coverage.saved_rules(reader)) == 17


def test_rule_set_skips_round_trip(store: Store) -> None:
    read = _read(_rule("a"))
    read.skipped = [SkippedFile("f.yaml", "not a rule")]
    coverage.replace_rule_set(store, "s", read)
    assert coverage.rule_sets(_reader(store))[0].skipped == [SkippedFile("f.yaml", "not a rule")]


def test_atomics_are_replaced_whole(store: Store) -> None:
    first = AtomicIndex(
        {
            "g1": AtomicTest("g1", "one", "T1059.001", ("windows",)),
            "g2": AtomicTest("g2", "two", "T1059.001", ("windows", "linux")),
            "g3": AtomicTest("g3", "three", "T1003", ()),
        }
    )
    outcome = coverage.replace_atomics(store, first, "art")
    assert (outcome.tests, outcome.techniques, outcome.replaced) == (3, 2, 0)
    loaded = coverage.atomic_tests(_reader(store))
    assert loaded is not None
    assert loaded.tests == first.tests
    assert [t.guid for t in loaded.for_technique("t1059.001")] == ["g1", "g2"]
    second = AtomicIndex({"g9": AtomicTest("g9", "nine", "T1110", ("macos",))})
    assert coverage.replace_atomics(store, second, "art2").replaced == 3
    reader = _reader(store)
    assert coverage.atomic_tests(reader) == second
    info = coverage.atomics_import(reader)
    assert info is not None
    assert (info.source, info.tests, info.techniques) == ("art2", 1, 1)
