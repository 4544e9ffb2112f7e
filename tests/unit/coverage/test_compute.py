"""compute_coverage on the issue's tiny profile: 2 groups, 5 techniques, 3 controls, 2
detections, every number worked out by hand below (docs/coverage.md has the model).

The world
- ATT&CK 16.1 (hand-made): T1021 Remote Services and its sub-technique T1021.001 (lateral
  movement), T1110 Brute Force and T1078 Valid Accounts (credential access), T1059 Command
  Interpreter (execution).
- NIST 800-53 rev5 (``mitigates``): AC-02 → T1021, T1110; IA-05 → T1110, T1078;
  AC-03 → T1021.001; CM-07 → T1059.
- Azure (technique scores): AZ-1 protect significant → T1078, detect minimal → T1021.001.
- Profile: G1 Alpha uses T1021, T1021.001, T1110, T1059; G2 Beta uses T1021.001, T1110, T1078.
- Controls (3): AC-02 implemented, IA-05 partial, AZ-1 implemented.
- Detections (2): R1 (library, T1021.001, needs SecurityEvent, tests pass);
  R2 (Sentinel, T1110 and T1021, needs SigninLogs, tests unknown).
- Tables collected: SecurityEvent.

By hand (protect + detect = score; priority = weight × (100 − score)):
- T1021: AC-02 15 → protect 15; R2 not deployable (SigninLogs) 0 → detect 0; score 15;
  weight 1 (G1); priority 85. Next: collect SigninLogs (R2 then counts 15) → +15.
- T1021.001: no protecting control (AC-03 not in place) → 0; AZ-1 detect minimal 10 + R1
  tested 30 → detect 40; score 40; weight 2; priority 120. R2 names T1021, not the
  sub-technique, so it is not listed. Next: implement NIST AC-03 (+15).
- T1059: nothing → 0; weight 1; priority 100. Next: implement NIST CM-07 (+15).
- T1078: IA-05 partial 7.5 + AZ-1 protect significant 50 = 57.5, capped at 50; detect 0;
  score 50; weight 1 (G2); priority 50. Implementing IA-05 fully gains nothing (cap), there
  is no detection to enable or table to collect → "write a detection".
- T1110: AC-02 15 + IA-05 partial 7.5 → protect 22.5; R2 not deployable → 0; score 22.5;
  weight 2; priority 155. Next: collect SigninLogs (+15), then implement IA-05 (+7.5).
Gap order: T1110 (155), T1021.001 (120), T1059 (100), T1021 (85), T1078 (50).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from tests.attack_bundles import MATRIX, TACTIC, small_bundle, write_bundle
from tests.mapping_docs import small_mapping, write_mapping

from defensemap.coverage.compute import compute_coverage
from defensemap.errors import InputError, NotFoundError
from defensemap.model.atomics import AtomicIndex, AtomicTest
from defensemap.model.coverage import (
    ControlInPlace,
    CoverageInputs,
    CoverageReport,
    DeployedRule,
    Procedure,
    TechniqueCoverage,
    ThreatActor,
    ThreatProfile,
)
from defensemap.sources.attack_stix import load_bundle
from defensemap.sources.mappings import load_mapping_file
from defensemap.store.attack import ingest_attack
from defensemap.store.db import Store, open_store
from defensemap.store.mappings import ingest_mappings

_TACTICS = {
    "credential-access": ("x-mitre-tactic--2558fd61-8c75-4730-94c4-11926db2a263", "TA0006"),
    "execution": ("x-mitre-tactic--4ca45d45-df4d-4613-8980-bac22d278fa6", "TA0002"),
}
_PREFIX = "attack-pattern--"
_TECHNIQUES = {
    "T1110": (f"{_PREFIX}a93494bb-4b80-4ea1-8695-3236a49916fd", "Brute Force", "credential-access"),
    "T1078": (
        f"{_PREFIX}b17a1a56-e99c-403c-8948-561df0cffe81",
        "Valid Accounts",
        "credential-access",
    ),
    "T1059": (f"{_PREFIX}7385dfaf-6886-4229-9ecd-6fd678040830", "Command Interpreter", "execution"),
}


def _bundle() -> dict[str, Any]:
    """The small bundle (T1021, T1021.001) plus two tactics and three techniques."""
    bundle = small_bundle()
    objects = bundle["objects"]
    for short, (stix_id, attack_id) in _TACTICS.items():
        tactic = copy.deepcopy(objects[TACTIC])
        tactic.update(id=stix_id, name=short.replace("-", " ").title(), x_mitre_shortname=short)
        tactic["external_references"][0].update(external_id=attack_id)
        objects.append(tactic)
        objects[MATRIX]["tactic_refs"].append(stix_id)
    for attack_id, (stix_id, name, phase) in _TECHNIQUES.items():
        technique = copy.deepcopy(objects[2])
        technique.update(id=stix_id, name=name)
        technique["kill_chain_phases"] = [{"kill_chain_name": "mitre-attack", "phase_name": phase}]
        technique["external_references"] = [
            {"source_name": "mitre-attack", "external_id": attack_id, "url": "https://x"}
        ]
        objects.append(technique)
    return bundle


def _rows(framework: str, rows: list[tuple[str, str, str | None, str | None]]) -> dict[str, Any]:
    """A mapping document: (capability, technique, score category, score value) per row."""
    document = small_mapping(framework=framework, version="rev5", capability_id="X")
    base = document["mapping_objects"][0]
    document["metadata"]["mapping_types"] = {
        "mitigates": {"name": "Mitigates", "description": ""},
        "technique_scores": {"name": "Technique Scores", "description": ""},
    }
    document["mapping_objects"] = [
        {
            **base,
            "capability_id": capability,
            "capability_description": f"{capability} control",
            "attack_object_id": technique,
            "mapping_type": "technique_scores" if category else "mitigates",
            "score_category": category,
            "score_value": value,
            "related_score": None,
        }
        for capability, technique, category, value in rows
    ]
    return document


@pytest.fixture
def store(tmp_path: Path) -> Store:
    bundle = load_bundle(write_bundle(tmp_path / "enterprise-attack-16.1.json", _bundle()))
    nist = _rows(
        "nist_800_53",
        [
            ("AC-02", "T1021", None, None),
            ("AC-02", "T1110", None, None),
            ("IA-05", "T1110", None, None),
            ("IA-05", "T1078", None, None),
            ("AC-03", "T1021.001", None, None),
            ("CM-07", "T1059", None, None),
        ],
    )
    azure = _rows(
        "azure",
        [("AZ-1", "T1078", "protect", "significant"), ("AZ-1", "T1021.001", "detect", "minimal")],
    )
    db = open_store(tmp_path / "defensemap.sqlite", write=True)
    ingest_attack(db, [bundle])
    ingest_mappings(
        db,
        [
            load_mapping_file(write_mapping(tmp_path / f"{name}.json", doc))
            for name, doc in (("nist", nist), ("azure", azure))
        ],
    )
    return db


PROFILE = ThreatProfile(
    actors=(ThreatActor("G1", "Alpha", "group"), ThreatActor("G2", "Beta", "group")),
    procedures=tuple(
        Procedure(actor, technique)
        for actor, techniques in (
            ("G1", ("T1021", "T1021.001", "T1110", "T1059")),
            ("G2", ("T1021.001", "T1110", "T1078")),
        )
        for technique in techniques
    ),
)
CONTROLS = (
    ControlInPlace("nist_800_53", "AC-02", "implemented", source="controls.csv:2"),
    ControlInPlace("nist_800_53", "IA-05", "partial", source="controls.csv:3"),
    ControlInPlace("azure", "AZ-1", "implemented", source="controls.csv:4"),
)
R1 = DeployedRule(
    "r1", "RDP logon burst", "library", ("T1021.001",), tables=("SecurityEvent",), tested=True
)
R2 = DeployedRule("r2", "Spray then logon", "sentinel", ("T1110", "T1021"), tables=("SigninLogs",))
INPUTS = CoverageInputs("16.1", PROFILE, CONTROLS, (R1, R2), frozenset({"SecurityEvent"}))


def _by_id(report: CoverageReport) -> dict[str, TechniqueCoverage]:
    return {t.technique: t for t in report.techniques}


def test_every_number_of_the_tiny_profile(store: Store) -> None:
    report = compute_coverage(store, INPUTS)
    got = {t.technique: (t.threat_weight, t.protect, t.detect, t.score) for t in report.techniques}
    assert got == {
        "T1021": (1, 15, 0, 15),
        "T1021.001": (2, 0, 40, 40),
        "T1059": (1, 0, 0, 0),
        "T1078": (1, 50, 0, 50),
        "T1110": (2, 22.5, 0, 22.5),
    }
    assert [t.technique for t in report.gaps] == ["T1110", "T1021.001", "T1059", "T1021", "T1078"]


def test_next_steps_cheapest_first_with_exact_gains(store: Store) -> None:
    techniques = _by_id(compute_coverage(store, INPUTS))
    steps = {t: [(s.kind, s.target, s.gain) for s in c.next_steps] for t, c in techniques.items()}
    assert steps == {
        "T1021": [("collect-table", "SigninLogs", 15)],
        "T1021.001": [("implement-control", "NIST 800-53 AC-03", 15)],
        "T1059": [("implement-control", "NIST 800-53 CM-07", 15)],
        "T1078": [("write-detection", "T1078", 0)],
        "T1110": [
            ("collect-table", "SigninLogs", 15),
            ("implement-control", "NIST 800-53 IA-05", 7.5),
        ],
    }


def test_hits_tables_and_reason(store: Store) -> None:
    techniques = _by_id(compute_coverage(store, INPUTS))
    t1110 = techniques["T1110"]
    assert [(c.capability_id, c.status, c.points) for c in t1110.controls] == [
        ("AC-02", "implemented", 15),
        ("IA-05", "partial", 7.5),
    ]
    (r2,) = t1110.detections
    assert (r2.deployable, r2.missing_tables, r2.points) == (False, ("SigninLogs",), 0)
    assert t1110.tables_missing == ("SigninLogs",)
    assert t1110.reason == (
        "Score 22.5: protect 22.5 from NIST 800-53 AC-02 (implemented, mitigates: 15),"
        " IA-05 (partial, mitigates: 7.5); detect 0 (nothing detects it); not counted:"
        " 'Spray then logon' (not deployable: needs SigninLogs); tables missing: SigninLogs."
    )
    sub = techniques["T1021.001"]
    assert [d.rule_id for d in sub.detections] == ["r1"]  # R2 names the parent only
    assert sub.tables_available == ("SecurityEvent",)
    assert sub.reason == (
        "Score 40: protect 0 (no control in place protects it); detect 40 from Azure AZ-1"
        " (implemented, detect minimal: 10); 'RDP logon burst' (library, tested ✓: 30);"
        " no tables missing."
    )
    assert techniques["T1078"].reason == (
        "Score 50: protect 50, capped at 50 from Azure AZ-1 (implemented, protect significant:"
        " 50); NIST 800-53 IA-05 (partial, mitigates: 7.5); detect 0 (nothing detects it);"
        " no tables missing."
    )
    assert techniques["T1021"].name == "Remote Services"
    assert techniques["T1110"].tactics == ("credential-access",)


def test_unknown_tables_are_not_judged(store: Store) -> None:
    """Without the tables collected, R2 counts as an imported rule (15) for T1110 and T1021."""
    techniques = _by_id(
        compute_coverage(store, CoverageInputs("16.1", PROFILE, CONTROLS, (R1, R2)))
    )
    assert (techniques["T1110"].detect, techniques["T1110"].score) == (15, 37.5)
    assert techniques["T1021"].detections[0].deployable is None
    assert techniques["T1021"].reason.endswith("data collected unknown.")


def test_validation_plan_from_atomics(store: Store) -> None:
    atomics = AtomicIndex(
        {
            "a1": AtomicTest("a1", "Password spray", "T1110", ("windows",)),
            "a2": AtomicTest("a2", "RDP to a host", "T1021.001", ("windows",)),
        }
    )
    techniques = _by_id(compute_coverage(store, INPUTS, atomics=atomics))
    assert [c.guid for c in techniques["T1110"].validation] == ["a1"]
    assert [c.guid for c in techniques["T1021.001"].validation] == ["a2"]
    assert techniques["T1059"].validation == ()


def test_unknown_capabilities_are_listed_in_one_error(store: Store) -> None:
    bad = (
        *CONTROLS,
        ControlInPlace("nist_800_53", "ZZ-99", "implemented", source="controls.csv:5"),
        ControlInPlace("azure", "AZ-404", "partial", source="controls.csv:6"),
    )
    with pytest.raises(InputError) as caught:
        compute_coverage(store, CoverageInputs("16.1", PROFILE, bad))
    message = str(caught.value)
    assert "ZZ-99 (controls.csv:5)" in message
    assert "AZ-404 (controls.csv:6)" in message


def test_unknown_framework_is_refused(store: Store) -> None:
    control = ControlInPlace("iso27001", "A.5.1", "implemented")
    with pytest.raises(NotFoundError, match="iso27001"):
        compute_coverage(store, CoverageInputs("16.1", PROFILE, (control,)))
