"""Threat profiles on the real enterprise ATT&CK 18.1 and KEV mappings: every expected set of
techniques is computed here with ``json`` alone from the files in ../shared/data."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import ENTERPRISE_18, MAPPINGS_DIR, SHARED_DATA

from defensemap.errors import NotFoundError
from defensemap.kb.threat import resolve_profile, validation_plan
from defensemap.model.coverage import ThreatActor, ThreatProfile
from defensemap.sources.atomics import load_atomics
from defensemap.store.db import Store, open_store

pytestmark = pytest.mark.realdata

KEV_16 = (
    MAPPINGS_DIR
    / "kev/attack-16.1/kev-07.28.2025/enterprise/kev-07.28.2025_attack-16.1-enterprise.json"
)
ATOMICS = SHARED_DATA / "atomic-red-team"
TYPE_LABELS = {
    "exploitation_technique": "Exploitation Technique",
    "primary_impact": "Primary Impact",
    "secondary_impact": "Secondary Impact",
}


@pytest.fixture(scope="module")
def store(loaded_store_path: Path) -> Iterator[Store]:
    opened = open_store(loaded_store_path)
    yield opened
    opened.close()


# --- independent reading of the bundle ------------------------------------------------------


@cache
def _bundle() -> dict[str, dict[str, Any]]:
    objects = json.loads(ENTERPRISE_18.read_text(encoding="utf-8"))["objects"]
    return {o["id"]: o for o in objects}


def _attack_id(obj: dict[str, Any]) -> str:
    return next(
        r["external_id"]
        for r in obj["external_references"]
        if r.get("source_name") == "mitre-attack"
    )


def _active(obj: dict[str, Any]) -> bool:
    return not obj.get("revoked") and not obj.get("x_mitre_deprecated")


def _object(attack_id: str, stix_type: str) -> dict[str, Any]:
    return next(
        o
        for o in _bundle().values()
        if o["type"] == stix_type and _active(o) and _attack_id(o) == attack_id
    )


def _used_by(attack_id: str, stix_type: str) -> set[str]:
    """Techniques the object ``uses`` directly (active relationships to active techniques)."""
    source = _object(attack_id, stix_type)["id"]
    objects = _bundle()
    return {
        _attack_id(objects[o["target_ref"]])
        for o in objects.values()
        if o["type"] == "relationship"
        and o["relationship_type"] == "uses"
        and o["source_ref"] == source
        and o["target_ref"].startswith("attack-pattern--")
        and _active(o)
        and _active(objects[o["target_ref"]])
    }


def _techniques(keep: Any) -> set[str]:
    return {
        _attack_id(o)
        for o in _bundle().values()
        if o["type"] == "attack-pattern" and _active(o) and keep(o)
    }


def _of(profile: ThreatProfile, actor_id: str) -> set[str]:
    return {p.technique for p in profile.procedures if p.actor_id == actor_id}


# --- groups, campaigns, software ------------------------------------------------------------


@pytest.mark.parametrize("ident", ["G0016", "APT29", "apt29", "Cozy Bear", "NOBELIUM"])
def test_apt29_by_id_name_or_alias_uses_what_attack_says(store: Store, ident: str) -> None:
    profile = resolve_profile(store, groups=[ident])
    assert profile.actors == (ThreatActor("G0016", "APT29", "group"),)
    expected = _used_by("G0016", "intrusion-set")
    assert len(expected) > 50
    assert profile.techniques() == expected
    assert len(profile.procedures) == len(expected)
    for procedure in profile.procedures:  # ATT&CK's procedure text, as plain text
        assert "APT29" in procedure.description
        assert "](" not in procedure.description and "(Citation:" not in procedure.description


def test_the_revoked_unc2452_resolves_to_apt29(store: Store) -> None:
    profile = resolve_profile(store, groups=["G0118"])
    assert profile.actors == (ThreatActor("G0016", "APT29", "group"),)
    assert profile.techniques() == _used_by("G0016", "intrusion-set")
    assert profile.notes == ("G0118 UNC2452 was revoked by G0016 APT29: using it",)


def test_a_campaign_brings_its_own_techniques_and_names_its_group(store: Store) -> None:
    profile = resolve_profile(store, campaigns=["C0024"])
    assert profile.actors == (
        ThreatActor("C0024", "SolarWinds Compromise (attributed to G0016 APT29)", "campaign"),
    )
    assert profile.techniques() == _used_by("C0024", "campaign")
    assert profile.techniques() != _used_by("G0016", "intrusion-set")


def test_software_by_name_uses_what_attack_says(store: Store) -> None:
    profile = resolve_profile(store, software=["cobalt strike"])
    assert profile.actors == (ThreatActor("S0154", "Cobalt Strike", "software"),)
    assert profile.techniques() == _used_by("S0154", "malware")


def test_twenty_groups_resolve_well_under_the_budget(store: Store) -> None:
    groups = sorted(
        _attack_id(o) for o in _bundle().values() if o["type"] == "intrusion-set" and _active(o)
    )[:20]
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        profile = resolve_profile(store, groups=groups)
        timings.append(time.perf_counter() - started)
    assert len(profile.actors) == 20
    expected = sum(len(_used_by(g, "intrusion-set")) for g in groups)
    assert len(profile.procedures) == expected
    assert min(timings) < 0.3, timings


# --- tactics, platforms, layers -------------------------------------------------------------


def test_tactic_ta0008_selects_every_lateral_movement_technique(store: Store) -> None:
    profile = resolve_profile(store, tactics=["TA0008"])
    expected = _techniques(
        lambda o: any(
            p["kill_chain_name"] == "mitre-attack" and p["phase_name"] == "lateral-movement"
            for p in o.get("kill_chain_phases", [])
        )
    )
    assert len(expected) > 15
    assert profile.techniques() == expected
    assert {p.description for p in profile.procedures} == {
        "all techniques of tactic TA0008 Lateral Movement"
    }


def test_platform_iaas_selects_every_iaas_technique(store: Store) -> None:
    profile = resolve_profile(store, platforms=["iaas"])
    expected = _techniques(lambda o: "IaaS" in o.get("x_mitre_platforms", []))
    assert len(expected) > 50
    assert profile.actors == (ThreatActor("IaaS", "IaaS", "platform"),)
    assert profile.techniques() == expected


def test_a_layer_with_a_revoked_technique_counts_its_replacement(
    store: Store, tmp_path: Path
) -> None:
    objects = _bundle()
    old, new = next(
        (objects[o["source_ref"]], objects[o["target_ref"]])
        for o in sorted(objects.values(), key=lambda o: o["id"])
        if o["type"] == "relationship"
        and o["relationship_type"] == "revoked-by"
        and o["source_ref"].startswith("attack-pattern--")
        and _active(objects[o["target_ref"]])
    )
    layer = {
        "name": "Revoked ids",
        "versions": {"layer": "4.5", "attack": "18"},
        "domain": "enterprise-attack",
        "techniques": [{"techniqueID": _attack_id(old), "score": 1, "comment": "old id"}],
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(layer), encoding="utf-8")
    profile = resolve_profile(store, layers=[path])
    assert profile.techniques() == {_attack_id(new)}
    assert profile.notes == (
        f"{_attack_id(old)} {old['name']} (Revoked ids) was revoked by {_attack_id(new)}"
        f" {new['name']}: counted as {_attack_id(new)}",
    )


# --- exploited vulnerabilities --------------------------------------------------------------


@cache
def _kev_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(KEV_16.read_text(encoding="utf-8"))["mapping_objects"]
    return rows


def test_a_kev_cve_brings_its_techniques_with_mapping_types(store: Store) -> None:
    cve = "CVE-2021-44077"
    rows = [r for r in _kev_rows() if r["capability_id"] == cve]
    expected: dict[str, list[str]] = {}
    for row in rows:
        expected.setdefault(row["attack_object_id"], []).append(TYPE_LABELS[row["mapping_type"]])
    assert expected.keys() <= _techniques(lambda o: True)  # all current in 18.1
    profile = resolve_profile(store, cves=[cve.lower()])
    assert profile.actors == (ThreatActor(cve, rows[0]["capability_description"], "cve"),)
    assert {p.technique: p.description for p in profile.procedures} == {
        t: "; ".join(labels) for t, labels in expected.items()
    }


def test_kev_takes_every_cve_of_the_newest_set(store: Store) -> None:
    profile = resolve_profile(store, kev=True)
    cves = {r["capability_id"] for r in _kev_rows() if r["capability_id"]}
    assert {a.id for a in profile.actors} == cves
    assert {a.kind for a in profile.actors} == {"cve"}
    assert len(profile.techniques()) > 100


# --- unknown input --------------------------------------------------------------------------


def test_unknown_ids_of_every_kind_are_listed_together(store: Store) -> None:
    with pytest.raises(NotFoundError) as caught:
        resolve_profile(
            store,
            groups=["G0016", "G9999"],
            campaigns=["No Such Campaign"],
            software=["S9999"],
            tactics=["TA0099"],
            platforms=["Amiga"],
            cves=["CVE-1999-0001"],
        )
    message = str(caught.value)
    for shown in (
        "group 'G9999'",
        "campaign 'No Such Campaign'",
        "software 'S9999'",
        "tactic 'TA0099'",
        "platform 'Amiga'",
        "CVE 'CVE-1999-0001' (not in KEV 07/28/2025)",
        "`defensemap search NAME`",
        "platforms: Containers, ESXi, IaaS",
    ):
        assert shown in message
    assert "G0016" not in message


# --- validation plan ------------------------------------------------------------------------


def test_validation_plan_matches_the_atomic_red_team_file() -> None:
    data = yaml.safe_load((ATOMICS / "atomics/T1003/T1003.yaml").read_text(encoding="utf-8"))
    expected = sorted(
        (t["name"].casefold(), t["auto_generated_guid"], tuple(t["supported_platforms"]))
        for t in data["atomic_tests"]
    )
    plan = validation_plan(load_atomics(ATOMICS), "T1003")
    assert [(c.name.casefold(), c.guid, c.platforms) for c in plan] == expected
    assert {c.technique for c in plan} == {"T1003"}
