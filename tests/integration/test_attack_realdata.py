"""The knowledge base on the real ATT&CK releases in ../shared/data/attack."""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from tests.conftest import ENTERPRISE_16, ENTERPRISE_18, ICS_18_STIX21, MOBILE_18

from defensemap.errors import NotFoundError
from defensemap.kb.attack import describe
from defensemap.kb.diff import diff
from defensemap.kb.documents import to_json
from defensemap.kb.search import search
from defensemap.store.attack import list_releases
from defensemap.store.db import Store, open_store

BUNDLES = {
    ("enterprise-attack", "18.1"): ENTERPRISE_18,
    ("enterprise-attack", "16.1"): ENTERPRISE_16,
    ("mobile-attack", "18.1"): MOBILE_18,
    ("ics-attack", "18.1"): ICS_18_STIX21,
}


@pytest.fixture(scope="module")
def store(loaded_store_path: Path) -> Store:
    return open_store(loaded_store_path)


def _objects(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["objects"]


def _attack_id(obj: dict) -> str | None:
    for ref in obj.get("external_references", []):
        if ref.get("source_name") == "mitre-attack" and ref.get("external_id"):
            return ref["external_id"]
    return None


@pytest.mark.parametrize(("domain", "version"), list(BUNDLES))
def test_every_object_of_every_type_is_stored(store: Store, domain: str, version: str) -> None:
    objects = _objects(BUNDLES[(domain, version)])
    expected = Counter(o["type"] for o in objects)
    release = next(r for r in list_releases(store) if (r.domain, r.version) == (domain, version))
    assert release.counts == dict(expected)
    rows = store.conn.execute(
        "SELECT type, count(*) FROM attack_object WHERE release_id = ? GROUP BY type", (release.id,)
    ).fetchall()
    stored = {row[0]: row[1] for row in rows}
    stored["relationship"] = store.conn.execute(
        "SELECT count(*) FROM attack_relationship WHERE release_id = ?", (release.id,)
    ).fetchone()[0]
    assert stored == dict(expected)


def test_raw_json_is_kept_whole(store: Store) -> None:
    original = next(o for o in _objects(ENTERPRISE_18) if _attack_id(o) == "T1021.007")
    raw = store.conn.execute(
        "SELECT raw FROM attack_object WHERE stix_id = ?", (original["id"],)
    ).fetchone()[0]
    assert json.loads(raw) == original


def test_versions_and_domains_are_read_from_the_bundles(store: Store) -> None:
    found = {(r.domain, r.version, r.spec_version) for r in list_releases(store)}
    assert found == {
        ("enterprise-attack", "18.1", "2.0"),
        ("enterprise-attack", "16.1", "2.0"),
        ("mobile-attack", "18.1", "2.0"),
        ("ics-attack", "18.1", "2.1"),
    }


def test_t1021_007_fields(store: Store) -> None:
    doc = to_json(describe(store, "technique", "T1021.007"))
    assert doc["name"] == "Cloud Services"
    assert doc["attack_version"] == "18.1"
    assert doc["domain"] == "enterprise-attack"
    assert doc["tactics"] == [
        {"id": "TA0008", "shortname": "lateral-movement", "name": "Lateral Movement"}
    ]
    assert doc["platforms"] == ["IaaS", "Identity Provider", "Office Suite", "SaaS"]
    assert doc["parent"]["id"] == "T1021"
    assert doc["is_subtechnique"] is True
    assert [g["ref"]["id"] for g in doc["groups"]] == ["G0016", "G1015", "G1053"]
    assert [c["ref"]["id"] for c in doc["campaigns"]] == ["C0027"]
    assert [m["ref"]["id"] for m in doc["mitigations"]] == ["M1026", "M1032"]
    strategies = doc["detection_strategies"]
    assert [s["ref"]["id"] for s in strategies] == ["DET0008"]
    assert [a["ref"]["id"] for a in strategies[0]["analytics"]] == [
        "AN0017",
        "AN0018",
        "AN0019",
        "AN0020",
    ]
    assert {d["ref"]["id"] for d in doc["data_components"]} >= {"DC0067", "DC0064"}
    assert doc["version"] == "1.1"
    assert doc["status"] == {
        "revoked": False,
        "deprecated": False,
        "revoked_by": None,
        "resolved_from": None,
    }


def test_citations_become_numbered_references(store: Store) -> None:
    doc = to_json(describe(store, "group", "G0016"))
    texts = [doc["description"]] + [
        t["description"] for key in ("techniques", "software", "campaigns") for t in doc[key]
    ]
    assert not any("(Citation:" in t for t in texts)
    cited = {int(n) for t in texts for n in re.findall(r"\[(\d+)\]", t)}
    numbers = [r["number"] for r in doc["references"]]
    assert numbers == list(range(1, len(numbers) + 1))
    assert cited == set(numbers)
    assert all(r["description"] or r["url"] for r in doc["references"])


def test_subtechnique_and_parent_link_both_ways(store: Store) -> None:
    parent = to_json(describe(store, "technique", "T1021"))
    assert "T1021.007" in [s["id"] for s in parent["subtechniques"]]
    assert parent["is_subtechnique"] is False
    assert parent["parent"] is None


def test_revoked_id_resolves_to_its_replacement(store: Store) -> None:
    doc = to_json(describe(store, "technique", "T1086"))
    assert doc["id"] == "T1059.001"
    assert doc["status"]["resolved_from"] == "T1086"


def test_technique_revoked_in_18_1_is_active_in_16_1(store: Store) -> None:
    old = to_json(describe(store, "technique", "T1574.002", attack_version="16.1"))
    assert old["name"] == "DLL Side-Loading"
    assert old["status"]["revoked"] is False
    new = to_json(describe(store, "technique", "T1574.002"))
    assert new["status"]["resolved_from"] == "T1574.002"
    assert new["id"] == "T1574.001"


def test_detects_relationships_that_exist_only_in_16_1(store: Store) -> None:
    """16.1 links data components to techniques with `detects`; 18.1 dropped those for
    detection strategies and analytics."""
    old = to_json(describe(store, "technique", "T1021.007", attack_version="16.1"))
    assert [(d["ref"]["name"], d["data_source"]["name"]) for d in old["data_components"]] == [
        ("Logon Session Creation", "Logon Session")
    ]
    assert old["detection_strategies"] == []
    component = to_json(
        describe(store, "data-component", "Logon Session Creation", attack_version="16.1")
    )
    assert "T1021.007" in [t["ref"]["id"] for t in component["techniques"]]


def test_v18_detection_strategy_with_analytics(store: Store) -> None:
    doc = to_json(describe(store, "detection-strategy", "DET0008"))
    assert doc["name"] == "Behavioral Detection of Remote Cloud Logins via Valid Accounts"
    assert [t["id"] for t in doc["techniques"]] == ["T1021.007"]
    first = doc["analytics"][0]
    assert first["ref"]["id"] == "AN0017"
    assert first["platforms"] == ["IaaS"]
    assert first["log_sources"][0]["data_component"]["id"] == "DC0067"
    assert first["log_sources"][0]["name"] == "AWS:CloudTrail"
    assert {e["field"] for e in first["mutable_elements"]} >= {"IPGeoRiskScore"}


def test_tactics_follow_matrix_order(store: Store) -> None:
    order = [
        to_json(describe(store, "tactic", f"TA{n:04d}"))["position"] for n in (43, 42, 1, 8, 40)
    ]
    assert order == [1, 2, 3, 10, 14]
    lateral = to_json(describe(store, "tactic", "TA0008"))
    remote = next(t for t in lateral["techniques"] if t["ref"]["id"] == "T1021")
    assert "T1021.007" in [s["id"] for s in remote["subtechniques"]]


@pytest.mark.parametrize(
    ("kind", "ident", "name"),
    [
        ("group", "G0016", "APT29"),
        ("software", "S0154", "Cobalt Strike"),
        ("campaign", "C0024", "SolarWinds Compromise"),
        ("mitigation", "M1032", "Multi-factor Authentication"),
        ("tactic", "TA0008", "Lateral Movement"),
        ("data-component", "DC0067", "Logon Session Creation"),
        (
            "detection-strategy",
            "DET0008",
            "Behavioral Detection of Remote Cloud Logins via Valid Accounts",
        ),
        ("group", "apt29", "APT29"),
        ("technique", "t1021.007", "Cloud Services"),
    ],
)
def test_every_kind_can_be_described(store: Store, kind: str, ident: str, name: str) -> None:
    assert to_json(describe(store, kind, ident))["name"] == name


def test_relationship_counts_match_the_bundle(store: Store) -> None:
    objects = _objects(ENTERPRISE_18)
    by_id = {o["id"]: o for o in objects}
    group = next(o for o in objects if _attack_id(o) == "G0016")
    uses = {
        _attack_id(by_id[r["target_ref"]])
        for r in objects
        if r["type"] == "relationship"
        and r["relationship_type"] == "uses"
        and r["source_ref"] == group["id"]
        and by_id[r["target_ref"]]["type"] == "attack-pattern"
        and not r.get("revoked")
        and not r.get("x_mitre_deprecated")
        and not by_id[r["target_ref"]].get("revoked")
        and not by_id[r["target_ref"]].get("x_mitre_deprecated")
    }
    doc = to_json(describe(store, "group", "G0016"))
    assert {t["ref"]["id"] for t in doc["techniques"]} == uses


def test_mobile_and_ics_are_side_by_side(store: Store) -> None:
    mobile = to_json(describe(store, "technique", "T1660", domain="mobile"))
    assert mobile["domain"] == "mobile-attack"
    ics = to_json(describe(store, "technique", "T0800", domain="ics"))
    assert ics["domain"] == "ics-attack"


def test_unknown_id_is_a_clear_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="T9999"):
        describe(store, "technique", "T9999")


def test_search_ranks_exact_ids_and_names_first(store: Store) -> None:
    assert search(store, "T1021.007")[0].id == "T1021.007"
    assert search(store, "apt29")[0].id == "G0016"
    assert "G0016" in [r.id for r in search(store, "Cozy Bear")]
    hits = search(store, "cloud serv", kinds=["technique"])
    assert "T1021.007" in [r.id for r in hits[:10]]
    assert all(r.kind == "technique" for r in hits)
    assert (
        search(store, "Process Creation", attack_version="18.1", domain="enterprise")[0].kind
        == "data-component"
    )


def test_diff_16_1_to_18_1_matches_an_independent_count(store: Store) -> None:
    old = {o["id"]: o for o in _objects(ENTERPRISE_16) if o["type"] == "attack-pattern"}
    new = {o["id"]: o for o in _objects(ENTERPRISE_18) if o["type"] == "attack-pattern"}
    result = diff(store, "16.1", "18.1")
    assert {r.stix_id for r in result.added} == set(new) - set(old)
    assert {r.stix_id for r in result.removed} == set(old) - set(new)
    newly_revoked = {
        sid
        for sid, o in new.items()
        if o.get("revoked") and sid in old and not old[sid].get("revoked")
    }
    assert {r.ref.stix_id for r in result.revoked} == newly_revoked
    t1574 = next(r for r in result.revoked if r.ref.id == "T1574.002")
    assert t1574.replaced_by is not None and t1574.replaced_by.id == "T1574.001"
    assert ("T1176", "Browser Extensions") in {(r.ref.id, r.old_name) for r in result.renamed}
    assert len(result.added) == 36


def test_store_is_a_valid_sqlite_file(loaded_store_path: Path) -> None:
    conn = sqlite3.connect(loaded_store_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1
