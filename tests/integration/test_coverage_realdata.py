"""Coverage on the full enterprise matrix: APT29 + APT28, NIST 800-53 rev5 controls and the
detection library, through the engine and the `defensemap coverage` command."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import SHARED_DATA, CliResult

from defensemap.coverage import scoring
from defensemap.coverage.compute import compute_coverage
from defensemap.coverage.inputs import framework_controls, library_rules
from defensemap.kb.threat import resolve_profile
from defensemap.library.loader import Library, load_library
from defensemap.model.coverage import ControlInPlace, CoverageInputs, CoverageReport
from defensemap.sources.atomics import load_atomics
from defensemap.store.db import Store, open_store

pytestmark = pytest.mark.realdata
Cli = Any


@pytest.fixture(scope="module")
def store(loaded_store_path: Path) -> Store:
    return open_store(loaded_store_path)


@pytest.fixture(scope="module")
def library() -> Library:
    return load_library()


def _controls(store: Store) -> tuple[ControlInPlace, ...]:
    """Half of NIST rev5 implemented, a quarter partial, the rest planned."""
    every = framework_controls(store, "nist_800_53", "rev5")
    statuses = ("implemented", "implemented", "partial", "planned")
    return tuple(
        ControlInPlace(c.framework, c.capability_id, statuses[i % 4], c.framework_version)  # type: ignore[arg-type]
        for i, c in enumerate(every)
    )


@pytest.fixture(scope="module")
def report(store: Store, library: Library) -> CoverageReport:
    profile = resolve_profile(store, groups=["G0016", "G0007"], attack_version="18.1")
    rules = library_rules(library)
    inputs = CoverageInputs(
        "18.1", profile, _controls(store), tuple(rules), frozenset({"SigninLogs", "AuditLogs"})
    )
    atomics = load_atomics(SHARED_DATA / "atomic-red-team")
    return compute_coverage(store, inputs, atomics=atomics, library=library)


def test_every_profile_technique_is_scored_within_bounds(report: CoverageReport) -> None:
    techniques = {t.technique for t in report.techniques}
    assert techniques == set(report.inputs.profile.techniques())
    assert len(techniques) > 100
    for item in report.techniques:
        assert 0 <= item.protect <= 50 and 0 <= item.detect <= 50
        assert item.score == item.protect + item.detect
        assert 1 <= item.threat_weight <= 2
        assert item.name != item.technique and item.tactics


def test_reasons_name_everything_counted(report: CoverageReport) -> None:
    counted = 0
    for item in report.techniques:
        assert item.reason.startswith(f"Score {scoring.fmt(item.score)}: ")
        for hit in item.controls:
            assert re.search(rf"\b{re.escape(hit.capability_id)} \({hit.status}", item.reason)
        for detection in item.detections:
            assert repr(detection.name) in item.reason
            counted += detection.points > 0
    assert counted > 0
    assert any("(partial, mitigates: 7.5)" in t.reason for t in report.techniques)


def test_gaps_are_ranked_and_have_a_next_step(report: CoverageReport) -> None:
    gaps = report.gaps
    assert [t.technique for t in gaps] == [
        t.technique
        for t in sorted(
            (t for t in report.techniques if t.score < 100),
            key=lambda t: (-(t.threat_weight * (100 - t.score)), t.technique),
        )
    ]
    for item in gaps:
        assert item.next_steps
        kinds = [scoring.STEP_ORDER[s.kind] for s in item.next_steps]
        assert kinds == sorted(kinds)
        assert all(s.gain > 0 for s in item.next_steps if s.kind != "write-detection")


def test_library_detections_and_missing_tables(report: CoverageReport) -> None:
    """Library detections count where their tables are collected; those needing
    DeviceProcessEvents (not collected) count 0 and make "collect it" a next step."""
    (item,) = [t for t in report.techniques if t.technique == "T1078.004"]
    assert item.detections and item.detect > 0
    not_deployable = [d for t in report.techniques for d in t.detections if d.deployable is False]
    assert not_deployable
    assert all(d.points == 0 and d.missing_tables for d in not_deployable)
    collect = [s for t in report.gaps for s in t.next_steps if s.kind == "collect-table"]
    assert any(s.target == "DeviceProcessEvents" for s in collect)


def test_validation_plan_uses_the_atomics(report: CoverageReport) -> None:
    planned = [t for t in report.techniques if t.validation]
    assert len(planned) > 20
    for item in planned:
        assert all(check.technique == item.technique for check in item.validation)


# --- the command ----------------------------------------------------------------------------


def test_command_json(loaded_home: Path, cli: Cli, tmp_path: Path) -> None:
    result: CliResult = cli(
        "coverage", "--group", "G0016", "--group", "APT28", "--framework-all", "nist",
        "--detections", "all", "--rules", "none", "--json",
        "--atomics", str(SHARED_DATA / "atomic-red-team"),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    document = result.json()
    assert isinstance(document, dict) and document["kind"] == "coverage"
    data = document["data"]
    assert [a["id"] for a in data["profile"]["actors"]] == ["G0016", "G0007"]
    summary = data["summary"]
    assert summary["techniques"] == len(data["techniques"]) > 100
    assert sum(summary["bands"].values()) == summary["techniques"]
    assert summary["rules"] == {"library": 43}
    by_id = {t["technique"]: t for t in data["techniques"]}
    assert data["gaps"] and all(by_id[g]["score"] < 100 for g in data["gaps"])
    priorities = [by_id[g]["priority"] for g in data["gaps"]]
    assert priorities == sorted(priorities, reverse=True)


def test_command_terminal(loaded_home: Path, cli: Cli, tmp_path: Path) -> None:
    tables = tmp_path / "tables.txt"
    tables.write_text("# what we collect\nSigninLogs\nAuditLogs\n", encoding="utf-8")
    result = cli(
        "coverage", "--group", "G0016", "--detections", "all", "--rules", "none",
        "--tables", str(tables), "--top", "3", "--navigator", str(tmp_path / "apt29"),
        "--csv", str(tmp_path / "apt29.csv"), "--report", str(tmp_path / "apt29.html"),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    for name in ("apt29-coverage.json", "apt29-threat.json", "apt29-gaps.json"):
        assert json.loads((tmp_path / name).read_bytes())["domain"] == "enterprise-attack"
        assert f"wrote {tmp_path / name}" in result.stderr
    assert (tmp_path / "apt29.csv").read_text(encoding="utf-8").startswith("technique,")
    assert (tmp_path / "apt29.html").read_bytes().startswith(b"<!DOCTYPE html>")
    assert "G0016 APT29" in result.stdout
    assert "Top 3 of" in result.stdout
    assert "2 collected" in result.stdout
    assert re.search(r"\d+ technique\(s\): \d+ fully covered, \d+ gap\(s\)", result.stdout)


def test_unknown_ids_are_listed_in_one_error(loaded_home: Path, cli: Cli) -> None:
    result = cli("coverage", "--group", "G9998", "--group", "G0016", "--group", "G9999")
    assert result.exit_code == 2
    assert "G9998" in result.stderr and "G9999" in result.stderr
    result = cli("coverage", "--group", "G0016", "--detections", "nope-1", "--detections", "nope-2")
    assert result.exit_code == 2
    assert "nope-1, nope-2" in result.stderr


def test_unknown_capabilities_are_listed_in_one_error(
    loaded_home: Path, cli: Cli, tmp_path: Path
) -> None:
    controls = tmp_path / "controls.csv"
    controls.write_text(
        "framework,capability_id,status\nnist_800_53,AC-02,implemented\n"
        "nist_800_53,ZZ-01,implemented\nnist_800_53,ZZ-02,partial\n",
        encoding="utf-8",
    )
    result = cli("coverage", "--group", "G0016", "--controls", str(controls))
    assert result.exit_code == 2
    assert "ZZ-01" in result.stderr and "ZZ-02" in result.stderr
    assert "AC-02" not in result.stderr


def test_no_profile_is_refused(loaded_home: Path, cli: Cli) -> None:
    result = cli("coverage", "--detections", "all")
    assert result.exit_code == 2
    assert "no threat profile" in result.stderr


def test_nist_ids_match_with_or_without_leading_zeros(store: Store) -> None:
    """The newest rev5 files write IA-05, people (and older files) write IA-5."""
    profile = resolve_profile(store, groups=["G0016"], attack_version="18.1")
    results = []
    for spelling in ("IA-5", "IA-05", "ia-05"):
        control = ControlInPlace("nist_800_53", spelling, "implemented", "rev5")
        inputs = CoverageInputs("18.1", profile, (control,), (), None)
        report = compute_coverage(store, inputs)
        results.append({t.technique: t.protect for t in report.techniques if t.controls})
    assert results[0] and results[0] == results[1] == results[2]
