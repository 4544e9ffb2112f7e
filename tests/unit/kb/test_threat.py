"""Threat profiles on a tiny hand-built enterprise release: two groups, a campaign, a software,
five techniques (plus a revoked and a deprecated one), a revoked group and a KEV mapping file.
Every expectation below is written out by hand from the objects defined here."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.attack_bundles import small_bundle, write_bundle

from defensemap.errors import InputError, NotFoundError, SchemaError, StoreError
from defensemap.kb.threat import plain_text, resolve_profile, validation_plan
from defensemap.model.atomics import AtomicIndex, AtomicTest
from defensemap.model.coverage import AtomicCheck, Procedure, ThreatActor, ThreatProfile
from defensemap.sources.attack_stix import load_bundle
from defensemap.sources.mappings import load_mapping_file
from defensemap.store.attack import ingest_attack
from defensemap.store.db import Store, open_store
from defensemap.store.mappings import ingest_mappings

_IDS = uuid.UUID("5b0f4d3e-8a61-4c2e-9d7f-1e2a3b4c5d6e")
_DATES = {"created": "2020-01-14T17:18:32.126Z", "modified": "2024-10-15T16:01:34.519Z"}


def sid(kind: str, attack_id: str) -> str:
    return f"{kind}--{uuid.uuid5(_IDS, attack_id)}"


def _ref(attack_id: str) -> list[dict[str, str]]:
    return [{"source_name": "mitre-attack", "external_id": attack_id, "url": "https://x.test"}]


def _tactic(attack_id: str, name: str, short: str) -> dict[str, Any]:
    return {
        "type": "x-mitre-tactic",
        "id": sid("x-mitre-tactic", attack_id),
        **_DATES,
        "name": name,
        "description": f"The {name} tactic.",
        "x_mitre_shortname": short,
        "external_references": _ref(attack_id),
    }


def _technique(attack_id: str, name: str, tactic: str, platforms: list[str], **extra: Any) -> Any:
    return {
        "type": "attack-pattern",
        "id": sid("attack-pattern", attack_id),
        **_DATES,
        "name": name,
        "description": f"Invented technique {attack_id}.",
        "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": tactic}],
        "external_references": _ref(attack_id),
        "x_mitre_platforms": platforms,
        "x_mitre_is_subtechnique": "." in attack_id,
        **extra,
    }


def _actor(stix_type: str, attack_id: str, name: str, aliases: list[str], **extra: Any) -> Any:
    key = "x_mitre_aliases" if stix_type in ("tool", "malware") else "aliases"
    return {
        "type": stix_type,
        "id": sid(stix_type, attack_id),
        **_DATES,
        "name": name,
        "description": f"Invented {stix_type} {name}.",
        key: aliases,
        "external_references": _ref(attack_id),
        **extra,
    }


def _rel(rel_type: str, source: str, target: str, text: str = "") -> dict[str, Any]:
    return {
        "type": "relationship",
        "id": sid("relationship", f"{source}|{rel_type}|{target}"),
        **_DATES,
        "relationship_type": rel_type,
        "source_ref": source,
        "target_ref": target,
        **({"description": text} if text else {}),
    }


G1, G2, OLD = (sid("intrusion-set", i) for i in ("G0001", "G0002", "G0003"))
CAMPAIGN, TOOL = sid("campaign", "C0001"), sid("tool", "S0001")
T = {i: sid("attack-pattern", i) for i in ("T1059", "T1059.001", "T1078", "T1099", "T1098")}
T["T1021"] = small_bundle()["objects"][2]["id"]
T["T1021.001"] = small_bundle()["objects"][3]["id"]


def tiny_bundle() -> dict[str, Any]:
    """tests.attack_bundles' TA0008 / T1021 / T1021.001 plus the objects of this profile."""
    bundle = small_bundle()
    matrix = bundle["objects"][0]
    objects = [
        _tactic("TA0002", "Execution", "execution"),
        _tactic("TA0001", "Initial Access", "initial-access"),
        _technique("T1059", "Command and Scripting Interpreter", "execution", ["Windows", "Linux"]),
        _technique("T1059.001", "PowerShell", "execution", ["Windows"]),
        _technique("T1078", "Valid Accounts", "initial-access", ["IaaS", "Windows"]),
        _technique("T1099", "Timestomp", "initial-access", ["Windows"], revoked=True),
        _technique("T1098", "Old Trick", "execution", ["Windows"], x_mitre_deprecated=True),
        _actor("intrusion-set", "G0001", "Alpha Group", ["Alpha Group", "Red Fox"]),
        _actor("intrusion-set", "G0002", "Beta Team", ["Beta Team", "Blue Owl"]),
        _actor("intrusion-set", "G0003", "Old Gamma", ["Old Gamma"], revoked=True),
        _actor("intrusion-set", "G0004", "Delta Crew", [], x_mitre_deprecated=True),
        _actor("campaign", "C0001", "Operation Lantern", ["Operation Lantern"]),
        _actor("tool", "S0001", "Hammer", ["Hammer", "HMR"]),
        _rel("revoked-by", T["T1099"], T["T1078"]),
        _rel("revoked-by", OLD, G2),
        _rel(
            "uses",
            G1,
            T["T1021.001"],
            "[Alpha Group](https://attack.mitre.org/groups/G0001) moved over RDP."
            "(Citation: Invented Report)",
        ),
        _rel("uses", G1, T["T1059"], "Alpha Group ran cmd.exe ."),
        _rel("uses", G2, T["T1078"], "Beta Team logged in with stolen accounts."),
        _rel("uses", G2, T["T1099"], "Beta Team used a revoked technique."),
        _rel("uses", G2, T["T1098"], "Beta Team used a deprecated technique."),
        _rel("uses", G2, T["T1059.001"], "Beta Team ran PowerShell."),
        _rel("uses", G2, TOOL, "Beta Team used Hammer."),
        _rel("uses", CAMPAIGN, T["T1021"], "During Operation Lantern, the actors used SSH."),
        _rel("attributed-to", CAMPAIGN, G1),
        _rel("uses", TOOL, T["T1059.001"], "Hammer runs PowerShell."),
        _rel("uses", sid("intrusion-set", "G0004"), T["T1078"], "Delta Crew phished."),
        _rel("uses", TOOL, T["T1021"], "Hammer spreads over remote services."),
    ]
    matrix["tactic_refs"] += [o["id"] for o in objects[:2]]
    bundle["objects"] += objects
    return bundle


def kev_file() -> dict[str, Any]:
    """Two CVEs in a KEV-style file mapped on ATT&CK 16.1; one row names a technique revoked
    in the tiny release, one a technique it does not have."""

    def row(cve: str, mapping_type: str, technique: str) -> dict[str, Any]:
        return {
            "capability_id": cve,
            "capability_group": "invented",
            "capability_description": f"Invented product flaw {cve[-4:]}",
            "mapping_type": mapping_type,
            "attack_object_id": technique,
            "attack_object_name": technique,
            "references": [],
            "comments": "",
            "status": "complete",
        }

    types = ("exploitation_technique", "primary_impact", "secondary_impact")
    return {
        "metadata": {
            "mapping_version": "",
            "technology_domain": "enterprise",
            "attack_version": "16.1",
            "mapping_framework": "kev",
            "mapping_framework_version": "07/28/2025",
            "creation_date": "07/28/2025",
            "last_update": "07/28/2025",
            "mapping_types": {t: {"name": t, "description": ""} for t in types},
            "capability_groups": {"invented": "Invented"},
        },
        "mapping_objects": [
            row("CVE-2024-0001", "exploitation_technique", "T1078"),
            row("CVE-2024-0001", "primary_impact", "T1059.001"),
            row("CVE-2024-0001", "secondary_impact", "T1099"),
            row("CVE-2023-0002", "exploitation_technique", "T1021"),
            row("CVE-2023-0002", "primary_impact", "T1021"),
            row("CVE-2023-0002", "secondary_impact", "T1650"),
        ],
    }


def _store(tmp_path: Path, *, kev: bool) -> Store:
    bundle = load_bundle(write_bundle(tmp_path / "enterprise-attack-18.1.json", tiny_bundle()))
    store = open_store(tmp_path / "defensemap.sqlite", write=True)
    ingest_attack(store, [bundle])
    if kev:
        path = tmp_path / "kev-07.28.2025_attack-16.1-enterprise.json"
        path.write_text(json.dumps(kev_file()), encoding="utf-8")
        ingest_mappings(store, [load_mapping_file(path)])
    return store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = _store(tmp_path, kev=True)
    yield opened
    opened.close()


# --- groups, campaigns, software ------------------------------------------------------------

EXPECTED = ThreatProfile(
    actors=(
        ThreatActor("G0001", "Alpha Group", "group"),
        ThreatActor("G0002", "Beta Team", "group"),
        ThreatActor("C0001", "Operation Lantern (attributed to G0001 Alpha Group)", "campaign"),
        ThreatActor("S0001", "Hammer", "software"),
    ),
    procedures=(
        Procedure("G0001", "T1021.001", "Alpha Group moved over RDP."),
        Procedure("G0001", "T1059", "Alpha Group ran cmd.exe."),
        Procedure("G0002", "T1059.001", "Beta Team ran PowerShell."),
        Procedure(
            "G0002",
            "T1078",
            "Beta Team logged in with stolen accounts.; Beta Team used a revoked technique.",
        ),
        Procedure("C0001", "T1021", "During Operation Lantern, the actors used SSH."),
        Procedure("S0001", "T1021", "Hammer spreads over remote services."),
        Procedure("S0001", "T1059.001", "Hammer runs PowerShell."),
    ),
    notes=(
        "T1098 Old Trick (Beta Team) is deprecated in ATT&CK 18.1: left out",
        "T1099 Timestomp (Beta Team) was revoked by T1078 Valid Accounts: counted as T1078",
    ),
)


def test_groups_campaign_software_give_the_hand_computed_profile(store: Store) -> None:
    profile = resolve_profile(
        store, groups=["G0001", "Blue Owl"], campaigns=["operation lantern"], software=["hmr"]
    )
    # The group's use of software S0001 brings none of Hammer's techniques; the campaign
    # brings only its own T1021, not its attributed group's; T1021.001 stays a sub-technique.
    assert profile == EXPECTED
    assert profile.techniques() == {"T1021", "T1021.001", "T1059", "T1059.001", "T1078"}


@pytest.mark.parametrize("ident", ["G0002", "g0002", "Beta Team", "BETA TEAM", "blue owl"])
def test_a_group_is_found_by_id_name_or_alias(store: Store, ident: str) -> None:
    profile = resolve_profile(store, groups=[ident])
    assert profile.actors == (ThreatActor("G0002", "Beta Team", "group"),)
    assert [p.technique for p in profile.procedures] == ["T1059.001", "T1078"]


def test_a_revoked_group_follows_its_replacement_and_says_so(store: Store) -> None:
    profile = resolve_profile(store, groups=["G0003"])
    assert profile.actors == (ThreatActor("G0002", "Beta Team", "group"),)
    assert profile.notes[0] == "G0003 Old Gamma was revoked by G0002 Beta Team: using it"


def test_a_deprecated_group_asked_for_is_kept_with_a_note(store: Store) -> None:
    profile = resolve_profile(store, groups=["delta crew"])
    assert profile == ThreatProfile(
        (ThreatActor("G0004", "Delta Crew", "group"),),
        (Procedure("G0004", "T1078", "Delta Crew phished."),),
        ("G0004 Delta Crew is deprecated in ATT&CK 18.1",),
    )


def test_the_same_actor_asked_twice_is_counted_once(store: Store) -> None:
    profile = resolve_profile(store, groups=["G0002", "Beta Team", "G0003"])
    assert len(profile.actors) == 1
    assert len(profile.procedures) == 2


def test_an_alias_shared_by_two_groups_is_reported_as_ambiguous(tmp_path: Path) -> None:
    bundle = tiny_bundle()
    for obj in bundle["objects"]:
        if obj.get("name") in ("Alpha Group", "Beta Team"):
            obj["aliases"].append("Shared Bear")
    store = open_store(tmp_path / "s.sqlite", write=True)
    ingest_attack(
        store, [load_bundle(write_bundle(tmp_path / "enterprise-attack-18.1.json", bundle))]
    )
    with pytest.raises(NotFoundError) as caught:
        resolve_profile(store, groups=["shared bear"])
    assert "'shared bear' (ambiguous: G0001 Alpha Group, G0002 Beta Team; pass the id)" in str(
        caught.value
    )


# --- tactics and platforms ------------------------------------------------------------------


@pytest.mark.parametrize("ident", ["TA0002", "execution", "Execution"])
def test_a_tactic_selects_its_active_techniques(store: Store, ident: str) -> None:
    profile = resolve_profile(store, tactics=[ident])
    text = "all techniques of tactic TA0002 Execution"
    assert profile == ThreatProfile(
        (ThreatActor("TA0002", "Execution", "tactic"),),
        (Procedure("TA0002", "T1059", text), Procedure("TA0002", "T1059.001", text)),
    )  # the deprecated T1098 of the same tactic is not selected


def test_a_platform_selects_its_techniques_case_insensitively(store: Store) -> None:
    profile = resolve_profile(store, platforms=["iaas", "LINUX"])
    assert profile.actors == (
        ThreatActor("IaaS", "IaaS", "platform"),
        ThreatActor("Linux", "Linux", "platform"),
    )
    assert [(p.actor_id, p.technique, p.description) for p in profile.procedures] == [
        ("IaaS", "T1078", "all techniques of platform IaaS"),
        ("Linux", "T1021", "all techniques of platform Linux"),
        ("Linux", "T1059", "all techniques of platform Linux"),
    ]


# --- Navigator layers -----------------------------------------------------------------------


def _layer(tmp_path: Path, techniques: list[dict[str, Any]], **extra: Any) -> Path:
    document = {
        "name": "Invented threats",
        "versions": {"layer": "4.5", "attack": "18", "navigator": "5.1.0"},
        "domain": "enterprise-attack",
        "techniques": techniques,
        **extra,
    }
    path = tmp_path / "threats.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_a_layer_selects_enabled_techniques_scored_above_zero(store: Store, tmp_path: Path) -> None:
    path = _layer(
        tmp_path,
        [
            {"techniqueID": "T1021", "tactic": "lateral-movement", "score": 3, "comment": "seen"},
            {"techniqueID": "T1059", "score": 0, "comment": "unscored"},
            {"techniqueID": "T1059.001", "score": 2, "enabled": False},
            {"techniqueID": "T1078", "score": 1.5},
            {"techniqueID": "T1099", "score": 1, "comment": "old id"},
            {"techniqueID": "T1021.001"},
        ],
    )
    profile = resolve_profile(store, layers=[path])
    assert profile == ThreatProfile(
        (ThreatActor("threats.json", "Invented threats", "layer"),),
        (
            Procedure("threats.json", "T1021", "seen"),
            Procedure("threats.json", "T1078", "score 1.5 in layer Invented threats; old id"),
        ),
        (
            "T1099 Timestomp (Invented threats) was revoked by T1078 Valid Accounts:"
            " counted as T1078",
        ),
    )


def test_the_same_layer_given_twice_is_one_actor(store: Store, tmp_path: Path) -> None:
    path = _layer(tmp_path, [{"techniqueID": "T1059"}])
    relative = Path(os.path.relpath(path))
    profile = resolve_profile(store, layers=[path, relative, str(path)])
    assert [a.id for a in profile.actors] == ["threats.json"]
    assert len(profile.procedures) == 1


def test_a_layer_without_scores_selects_every_enabled_technique(
    store: Store, tmp_path: Path
) -> None:
    path = _layer(
        tmp_path,
        [{"techniqueID": "T1059"}, {"techniqueID": "T1078", "enabled": False}],
    )
    profile = resolve_profile(store, layers=[str(path)])
    assert profile.procedures == (
        Procedure("threats.json", "T1059", "selected in layer Invented threats"),
    )


def test_a_mobile_layer_is_refused(store: Store, tmp_path: Path) -> None:
    path = _layer(tmp_path, [{"techniqueID": "T1059"}], domain="mobile-attack")
    with pytest.raises(InputError, match="for mobile-attack"):
        resolve_profile(store, layers=[path])


def test_a_malformed_layer_names_the_file(store: Store, tmp_path: Path) -> None:
    path = _layer(tmp_path, [{"techniqueID": "1059"}])
    with pytest.raises(SchemaError) as caught:
        resolve_profile(store, layers=[path])
    assert str(path) in str(caught.value) and "/techniques/0/techniqueID" in str(caught.value)


# --- exploited vulnerabilities --------------------------------------------------------------


def test_a_cve_brings_its_kev_techniques_with_the_mapping_type(store: Store) -> None:
    profile = resolve_profile(store, cves=["cve-2024-0001"])
    assert profile == ThreatProfile(
        (ThreatActor("CVE-2024-0001", "Invented product flaw 0001", "cve"),),
        (
            Procedure("CVE-2024-0001", "T1059.001", "Primary Impact"),
            Procedure("CVE-2024-0001", "T1078", "Exploitation Technique; Secondary Impact"),
        ),
        (
            "T1099 Timestomp (Invented product flaw 0001) was revoked by T1078 Valid Accounts:"
            " counted as T1078",
        ),
    )


def test_kev_takes_every_cve_oldest_first(store: Store) -> None:
    profile = resolve_profile(store, kev=True)
    assert [a.id for a in profile.actors] == ["CVE-2023-0002", "CVE-2024-0001"]
    assert profile.procedures[0] == Procedure(
        "CVE-2023-0002", "T1021", "Exploitation Technique; Primary Impact"
    )
    assert "CVE-2023-0002: T1650 (KEV, mapped on ATT&CK 16.1) is not in ATT&CK 18.1: left out" in (
        profile.notes
    )


def test_cves_without_kev_mappings_is_a_store_error(tmp_path: Path) -> None:
    store = _store(tmp_path, kev=False)
    for asked in ({"cves": ["CVE-2024-0001"]}, {"kev": True}):
        with pytest.raises(StoreError) as caught:
            resolve_profile(store, **asked)  # type: ignore[arg-type]
        assert "import mappings" in str(caught.value) and "sync --mappings" in str(caught.value)


# --- unknown input --------------------------------------------------------------------------


def test_every_unknown_id_is_listed_in_one_error(store: Store, tmp_path: Path) -> None:
    path = _layer(tmp_path, [{"techniqueID": "T9999", "score": 1}])
    with pytest.raises(NotFoundError) as caught:
        resolve_profile(
            store,
            groups=["G0001", "G0404", "Nobody"],
            campaigns=["C0404"],
            software=["G0001"],
            tactics=["TA0404"],
            platforms=["Amiga"],
            layers=[path],
            cves=["CVE-2099-0404"],
        )
    error = caught.value
    assert error.message == (
        "not found in ATT&CK enterprise 18.1: group 'G0404', group 'Nobody', campaign 'C0404',"
        " software 'G0001', tactic 'TA0404', platform 'Amiga', technique 'T9999' (layer"
        " threats.json), CVE 'CVE-2099-0404' (not in KEV 07/28/2025)"
    )
    assert error.hint == (
        "look names up with `defensemap search NAME`; platforms: IaaS, Linux, Windows, macOS"
    )


def test_an_attack_version_that_is_not_loaded_is_reported(store: Store) -> None:
    with pytest.raises(NotFoundError, match=r"ATT&CK 9\.0"):
        resolve_profile(store, groups=["G0001"], attack_version="9.0")


def test_plain_text_keeps_link_labels_and_drops_citations() -> None:
    assert plain_text(
        "[A](https://a.test) used [B](https://b.test) .(Citation: R1)(Citation: R2)"
    ) == ("A used B.")


# --- validation plan ------------------------------------------------------------------------


def _atomics() -> AtomicIndex:
    tests = [
        AtomicTest("c3", "Zeta dump", "T1003", ("windows",)),
        AtomicTest("a1", "alpha dump", "T1003", ("linux", "macos")),
        AtomicTest("b2", "Alpha dump", "T1003", ("iaas:aws",)),
        AtomicTest("d4", "LSASS minidump", "T1003.001", ("windows",)),
        AtomicTest("e5", "Other", "T1059", ("windows",)),
    ]
    return AtomicIndex({t.guid: t for t in tests})


def test_validation_plan_lists_the_techniques_own_tests_by_name() -> None:
    assert validation_plan(_atomics(), "t1003") == [
        AtomicCheck("a1", "alpha dump", "T1003", ("linux", "macos")),
        AtomicCheck("b2", "Alpha dump", "T1003", ("iaas:aws",)),
        AtomicCheck("c3", "Zeta dump", "T1003", ("windows",)),
    ]
    assert validation_plan(_atomics(), "T1003.001") == [
        AtomicCheck("d4", "LSASS minidump", "T1003.001", ("windows",))
    ]
    assert validation_plan(_atomics(), "T1021") == []


def test_validation_plan_adds_sub_techniques_only_when_asked() -> None:
    plan = validation_plan(_atomics(), "T1003", include_subtechniques=True)
    assert [c.guid for c in plan] == ["a1", "b2", "c3", "d4"]
