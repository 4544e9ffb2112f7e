"""Mappings Explorer on the real files in ../shared/data/mappings: every row of every file is
stored (identical rows once, with their count), metadata is kept, and the queries answer what
the files say. Expected values are computed here from the JSON with ``json`` alone."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import MAPPINGS_DIR

from defensemap.kb.documents import MappingView
from defensemap.kb.mappings import capability, framework_doc, frameworks, technique_mappings
from defensemap.kb.search import search
from defensemap.sources.mappings import load_mapping_file
from defensemap.store.attack import list_releases
from defensemap.store.db import Store, open_store
from defensemap.store.mappings import ingest_mappings, list_sets

pytestmark = pytest.mark.realdata

FILES = sorted(MAPPINGS_DIR.rglob("*.json")) if MAPPINGS_DIR.is_dir() else []
DOMAINS = {"enterprise": "enterprise-attack", "mobile": "mobile-attack", "ics": "ics-attack"}


def _name(path: Path) -> str:
    return path.name.removesuffix(".json")


def _file(framework: str, version: str, attack: str, domain: str = "enterprise") -> Path:
    return next(
        p for p in FILES if p.name == f"{framework}-{version}_attack-{attack}-{domain}.json"
    )


NIST_REV5_16 = "nist_800_53", "rev5", "16.1"
M365_16 = "m365", "07.18.2025", "16.1"
M365_14 = "m365", "12.11.2023", "14.1"
KEV_MOBILE_15 = "kev", "02.13.2025", "15.1", "mobile"


# --- independent reading of the files -------------------------------------------------------


def _read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _is_non_mappable(obj: dict[str, Any]) -> bool:
    return obj["mapping_type"] in (None, "non_mappable") or obj.get("status") == "non_mappable"


def _key(meta: dict[str, Any]) -> tuple[str, str, str, str]:
    return (
        meta["mapping_framework"],
        meta["mapping_framework_version"],
        meta["attack_version"],
        DOMAINS[meta["technology_domain"]],
    )


def _refs(obj: dict[str, Any]) -> list[str]:
    return [r.strip() for r in obj.get("references") or [] if r.strip()]


@pytest.fixture(scope="module")
def store(loaded_store_path: Path) -> Iterator[Store]:
    opened = open_store(loaded_store_path)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def set_ids(store: Store) -> dict[tuple[str, str, str, str], int]:
    return {
        (s.info.framework, s.info.framework_version, s.info.attack_version, s.info.domain): s.id
        for s in list_sets(store)
    }


# --- every file, every row -------------------------------------------------------------------


def test_all_33_files_are_loaded_as_distinct_sets(
    shared_data: Path, set_ids: dict[tuple[str, str, str, str], int]
) -> None:
    assert len(FILES) == 33
    keys = [_key(_read(p)["metadata"]) for p in FILES]
    assert len(set(keys)) == 33
    assert set(set_ids) == set(keys)


@pytest.mark.parametrize("path", FILES, ids=[_name(p) for p in FILES])
def test_every_row_is_stored_once_with_its_count(
    store: Store, set_ids: dict[tuple[str, str, str, str], int], path: Path
) -> None:
    data = _read(path)
    objects = data["mapping_objects"]
    occurrences = Counter(_canonical(o) for o in objects)
    first: dict[str, int] = {}
    for index, obj in enumerate(objects):
        first.setdefault(_canonical(obj), index)

    set_id = set_ids[_key(data["metadata"])]
    rows = store.conn.execute(
        "SELECT position, occurrences, raw, mapping_type FROM mapping WHERE set_id = ?", (set_id,)
    ).fetchall()
    stored = {_canonical(json.loads(r["raw"])): r for r in rows}

    duplicates = len(objects) - len(occurrences)
    assert len(rows) == len(stored) == len(occurrences)
    assert len(rows) + duplicates == len(objects)
    assert sum(r["occurrences"] for r in rows) == len(objects)
    assert {k: r["occurrences"] for k, r in stored.items()} == dict(occurrences)
    assert {k: r["position"] for k, r in stored.items()} == first
    non_mappable = {k for k in occurrences if _is_non_mappable(json.loads(k))}
    assert {k for k, r in stored.items() if r["mapping_type"] == "non_mappable"} == non_mappable

    (summary,) = [
        s
        for f in frameworks(store)
        for s in f.sets
        if f.framework == data["metadata"]["mapping_framework"]
        and (s.framework_version, s.attack_version, s.domain) == _key(data["metadata"])[1:]
    ]
    assert (summary.rows_in_file, summary.rows_stored, summary.duplicate_rows) == (
        len(objects),
        len(occurrences),
        duplicates,
    )
    assert summary.non_mappable == sum(1 for o in objects if _is_non_mappable(o))
    # capabilities and techniques mapped to something; ids seen only in non-mappable rows
    # are not counted (csa_ccm: 204 capability ids, 57 of them mapped)
    mapped = [o for o in objects if not _is_non_mappable(o)]
    assert summary.capabilities == len(
        {o["capability_id"].lower() for o in mapped if o.get("capability_id")}
    )
    assert summary.techniques == len(
        {o["attack_object_id"].lower() for o in mapped if o.get("attack_object_id")}
    )
    assert summary.source == str(path.resolve())


@pytest.mark.parametrize("path", FILES, ids=[_name(p) for p in FILES])
def test_metadata_is_kept(store: Store, path: Path) -> None:
    meta = _read(path)["metadata"]
    (item,) = [
        s
        for s in list_sets(store)
        if (s.info.framework, s.info.framework_version, s.info.attack_version, s.info.domain)
        == _key(meta)
    ]
    info = item.info
    assert info.metadata == meta
    assert info.mapping_types == meta["mapping_types"]
    assert info.capability_groups == meta["capability_groups"]
    assert (info.creation_date, info.last_update) == (
        meta["creation_date"],
        meta.get("last_update"),
    )
    assert (info.author, info.contact, info.organization) == (
        meta.get("author"),
        meta.get("contact"),
        meta.get("organization"),
    )
    assert info.mapping_version == (meta["mapping_version"] or None)
    assert info.version_schema == meta.get("mapping_framework_version_schema")
    assert item.rows_in_file == len(_read(path)["mapping_objects"])


def test_mappings_skip_no_file_row_on_the_real_duplicates(shared_data: Path) -> None:
    """The loader itself (no store): the files with duplicates, counted independently."""
    expected = {}
    found = {}
    for path in FILES:
        objects = _read(path)["mapping_objects"]
        duplicates = len(objects) - len(Counter(_canonical(o) for o in objects))
        if duplicates:
            expected[_name(path)] = duplicates
            parsed = load_mapping_file(path)
            found[_name(path)] = parsed.duplicate_rows
            assert sum(r.occurrences for r in parsed.rows) == len(objects)
    assert found == expected
    assert expected["m365-07.18.2025_attack-16.1-enterprise"] > 0
    assert expected["nist_800_53-rev5_attack-16.1-enterprise"] > 0


# --- T1021.007 ---------------------------------------------------------------------------------


def _rows_for(path: Path, attack_id: str) -> Counter[str]:
    return Counter(
        _canonical(o) for o in _read(path)["mapping_objects"] if o["attack_object_id"] == attack_id
    )


def test_t1021_007_nist_rev5_newest(store: Store) -> None:
    (block,) = technique_mappings(store, "T1021.007", framework="nist_800_53")
    assert (block.framework, block.framework_version, block.mapped_on, block.domain) == (
        "nist_800_53",
        "rev5",
        "16.1",
        "enterprise-attack",
    )
    ids = [r.capability_id for r in block.rows]
    assert sorted(ids) == sorted(["IA-05", "IA-02", "AC-20", "AC-03", "AC-05", "AC-06", "AC-02"])
    expected = [
        json.loads(k)["capability_id"] for k in _rows_for(_file(*NIST_REV5_16), "T1021.007")
    ]
    assert sorted(ids) == sorted(expected)
    assert ids == sorted(ids)  # grouped by capability group (AC, IA), then by id
    assert {(r.mapping_type, r.mapping_type_label) for r in block.rows} == {
        ("mitigates", "Protects")
    }
    assert block.mapping_types == {"mitigates": "Protects"}
    assert {(r.attack.mapped_id, r.attack.current_id, r.attack.status) for r in block.rows} == {
        ("T1021.007", "T1021.007", "current")
    }
    assert {r.mapped_on for r in block.rows} == {"16.1"}
    ia05 = next(r for r in block.rows if r.capability_id == "IA-05")
    assert (ia05.capability_description, ia05.capability_group) == (
        "Authenticator Management",
        "IA",
    )
    assert ia05.capability_group_name == "Identification and Authentication"


def _expected_views(path: Path, attack_id: str) -> list[tuple[Any, ...]]:
    groups = _read(path)["metadata"]["capability_groups"]
    return sorted(
        (
            o["capability_id"],
            o["capability_description"],
            o["capability_group"],
            groups[o["capability_group"]],
            o["score_category"],
            o["score_value"],
            o["related_score"],
            o["comments"],
            _refs(o),
            o["status"],
            count,
        )
        for key, count in _rows_for(path, attack_id).items()
        for o in [json.loads(key)]
    )


def _actual_views(rows: list[MappingView]) -> list[tuple[Any, ...]]:
    return sorted(
        (
            r.capability_id,
            r.capability_description,
            r.capability_group,
            r.capability_group_name,
            r.score_category,
            r.score_value,
            r.related_score,
            r.comments,
            r.references,
            r.status,
            r.occurrences,
        )
        for r in rows
    )


@pytest.mark.parametrize(
    ("version", "attack", "file"),
    [("07/18/2025", "16.1", M365_16), ("12/11/2023", "14.1", M365_14)],
    ids=["m365-16.1", "m365-14.1"],
)
def test_t1021_007_m365_field_by_field(
    store: Store, version: str, attack: str, file: tuple[str, str, str]
) -> None:
    (block,) = technique_mappings(store, "T1021.007", framework="m365", framework_version=version)
    assert (block.framework_version, block.mapped_on) == (version, attack)
    path = _file(*file)
    assert _actual_views(block.rows) == _expected_views(path, "T1021.007")
    assert {(r.mapping_type, r.mapping_type_label) for r in block.rows} == {
        ("technique_scores", "Technique Scores")
    }
    assert {
        (r.attack.status, r.attack.current_id, r.attack.attack_version) for r in block.rows
    } == {("current", "T1021.007", "18.1")}
    assert {r.mapped_on for r in block.rows} == {attack}
    # a reference with a leading space in the file is stored stripped
    raw_refs = [
        ref for key in _rows_for(path, "T1021.007") for ref in json.loads(key)["references"]
    ]
    if any(ref != ref.strip() for ref in raw_refs):
        assert all(ref == ref.strip() for r in block.rows for ref in r.references)


def test_t1021_007_m365_all_versions_and_version_spellings(store: Store) -> None:
    every = technique_mappings(store, "T1021.007", framework="m365", all_versions=True)
    assert [(b.framework_version, b.mapped_on) for b in every] == [
        ("07/18/2025", "16.1"),
        ("12/11/2023", "14.1"),
    ]
    (newest,) = technique_mappings(store, "T1021.007", framework="microsoft365")
    assert newest.framework_version == "07/18/2025"
    (dotted,) = technique_mappings(
        store, "T1021.007", framework="m365", framework_version="12.11.2023"
    )
    assert dotted.mapped_on == "14.1"


# --- non-mappable, duplicate and revoked rows ----------------------------------------------------


def test_non_mappable_technique_is_listed_not_mapped(store: Store) -> None:
    objects = _read(_file(*NIST_REV5_16))["mapping_objects"]
    (row,) = [o for o in objects if o["attack_object_id"] == "T1496.002"]
    assert _is_non_mappable(row)
    assert row["capability_id"] is None

    doc = framework_doc(store, "nist_800_53")
    assert (doc.framework_version, doc.mapped_on) == ("rev5", "16.1")
    listed = {n.id: n for n in doc.non_mappable_techniques}
    assert listed["T1496.002"].name == row["attack_object_name"]
    assert listed["T1496.002"].comments == row["comments"]
    assert sorted(listed) == sorted(
        {o["attack_object_id"] for o in objects if _is_non_mappable(o) and o["attack_object_id"]}
    )
    blocks = technique_mappings(store, "T1496.002", framework="nist_800_53")
    assert all(r.attack.mapped_id != "T1496.002" for b in blocks for r in b.rows)


def test_non_mappable_capabilities_of_csa_ccm(store: Store) -> None:
    (path,) = [p for p in FILES if p.name.startswith("csa_ccm-")]
    objects = _read(path)["mapping_objects"]
    doc = framework_doc(store, "csa")
    expected = {o["capability_id"] for o in objects if _is_non_mappable(o) and o["capability_id"]}
    assert expected
    assert {n.id for n in doc.non_mappable_capabilities} == expected
    assert len(doc.non_mappable_capabilities) == sum(
        1 for k in Counter(_canonical(o) for o in objects) if _is_non_mappable(json.loads(k))
    )


def test_duplicated_row_is_stored_once_with_occurrences_2(store: Store) -> None:
    objects = _read(_file(*M365_16))["mapping_objects"]
    counts = Counter(_canonical(o) for o in objects)
    duplicate = json.loads(next(k for k, n in counts.items() if n == 2))
    (block,) = technique_mappings(
        store, duplicate["attack_object_id"], framework="m365", attack_version="16.1"
    )
    matching = [
        r
        for r in block.rows
        if (r.capability_id, r.score_category, r.score_value, r.comments, r.references)
        == (
            duplicate["capability_id"],
            duplicate["score_category"],
            duplicate["score_value"],
            duplicate["comments"],
            _refs(duplicate),
        )
    ]
    assert len(matching) == 1
    assert matching[0].occurrences == 2
    assert sum(r.occurrences for r in block.rows) == sum(
        1 for o in objects if o["attack_object_id"] == duplicate["attack_object_id"]
    )


def test_mapping_onto_a_technique_revoked_in_18_1(store: Store) -> None:
    objects = _read(_file(*NIST_REV5_16))["mapping_objects"]
    on_002 = _rows_for(_file(*NIST_REV5_16), "T1574.002")
    on_001 = _rows_for(_file(*NIST_REV5_16), "T1574.001")
    assert on_002
    assert any(o["attack_object_id"] == "T1574.002" for o in objects)

    (block,) = technique_mappings(store, "T1574.001", framework="nist_800_53")
    assert block.mapped_on == "16.1"
    revoked = [r for r in block.rows if r.attack.mapped_id == "T1574.002"]
    assert len(revoked) == len(on_002)
    for row in revoked:
        assert row.attack.status == "revoked"
        assert row.attack.current_id == "T1574.001"
        assert row.attack.mapped_name == "DLL Side-Loading"
        assert row.attack.attack_version == "18.1"
    own = [r for r in block.rows if r.attack.mapped_id == "T1574.001"]
    assert len(own) == len(on_001)
    assert {r.attack.status for r in own} == {"current"}
    assert sorted(r.capability_id for r in revoked) == sorted(
        json.loads(k)["capability_id"] for k in on_002
    )

    (old,) = technique_mappings(store, "T1574.002", framework="nist_800_53", attack_version="16.1")
    assert len(old.rows) == len(on_002)
    assert {
        (r.attack.status, r.attack.mapped_id, r.attack.current_id, r.attack.attack_version)
        for r in old.rows
    } == {("current", "T1574.002", "T1574.002", "16.1")}
    (on_16,) = technique_mappings(
        store, "T1574.001", framework="nist_800_53", attack_version="16.1"
    )
    assert {r.attack.mapped_id for r in on_16.rows} == {"T1574.001"}


# --- capability, frameworks, framework, search --------------------------------------------------


def test_capability_ia_05(store: Store) -> None:
    (doc,) = capability(store, "IA-05", framework="nist_800_53")
    assert (doc.framework, doc.framework_version, doc.mapped_on) == ("nist_800_53", "rev5", "16.1")
    assert (doc.description, doc.capability_group, doc.capability_group_name) == (
        "Authenticator Management",
        "IA",
        "Identification and Authentication",
    )
    assert doc.attack_version == "18.1"
    (group,) = doc.mapping_types
    assert (group.mapping_type, group.label) == ("mitigates", "Protects")
    objects = _read(_file(*NIST_REV5_16))["mapping_objects"]
    expected = Counter(_canonical(o) for o in objects if o["capability_id"] == "IA-05")
    assert len(group.rows) == len(expected)
    assert sorted(r.attack.mapped_id for r in group.rows) == sorted(
        json.loads(k)["attack_object_id"] for k in expected
    )
    assert "T1021.007" in {r.attack.mapped_id for r in group.rows}
    assert capability(store, "ia-05", framework="nist")[0].capability_id == "IA-05"


def test_frameworks_lists_the_10_frameworks(store: Store) -> None:
    listed = frameworks(store)
    expected = {_read(p)["metadata"]["mapping_framework"] for p in FILES}
    assert len(listed) == len(expected) == 10
    assert {f.framework for f in listed} == expected
    assert sum(len(f.sets) for f in listed) == 33
    nist = next(f for f in listed if f.framework == "nist_800_53")
    assert nist.label == "NIST 800-53"
    assert (nist.sets[0].framework_version, nist.sets[0].attack_version) == ("rev5", "16.1")


def test_framework_m365_groups(store: Store) -> None:
    meta = _read(_file(*M365_16))["metadata"]
    objects = _read(_file(*M365_16))["mapping_objects"]
    doc = framework_doc(store, "m365")
    assert (doc.framework_version, doc.mapped_on, doc.label) == (
        "07/18/2025",
        "16.1",
        "Microsoft 365",
    )
    assert (doc.author, doc.organization, doc.creation_date, doc.last_update) == (
        meta["author"],
        meta["organization"],
        meta["creation_date"],
        meta["last_update"],
    )
    assert doc.mapping_types == {"technique_score": "Technique Scores"}
    groups_of: dict[str, set[str]] = {}
    for o in objects:
        if not _is_non_mappable(o):
            groups_of.setdefault(o["capability_id"], set()).add(o["capability_group"])
    placed = {(g.id, c.id) for g in doc.capability_groups for c in g.capabilities}
    assert placed == {(g, cap) for cap, groups in groups_of.items() for g in groups}
    used = {g for gs in groups_of.values() for g in gs}
    assert [g.id for g in doc.capability_groups] == [
        g for g in meta["capability_groups"] if g in used
    ]
    for group in doc.capability_groups:
        assert group.name == meta["capability_groups"][group.id]
        for cap in group.capabilities:
            mine = [
                o
                for o in objects
                if o["capability_id"] == cap.id and o["capability_group"] == group.id
            ]
            assert cap.techniques == len({o["attack_object_id"] for o in mine})
            assert cap.mappings == len({_canonical(o) for o in mine})
    assert doc.non_mappable_techniques == doc.non_mappable_capabilities == []


def test_framework_lists_a_capability_under_every_group_it_is_mapped_in(store: Store) -> None:
    objects = _read(_file(*M365_16))["mapping_objects"]
    by_group: dict[str, set[str]] = {}
    for o in objects:
        if not _is_non_mappable(o):
            by_group.setdefault(o["capability_group"], set()).add(o["capability_id"])
    doc = framework_doc(store, "m365")
    assert {g.id: {c.id for c in g.capabilities} for g in doc.capability_groups} == by_group


def test_search_finds_a_capability_by_id_and_by_text(store: Store) -> None:
    by_id = search(store, "IA-05")
    assert (by_id[0].kind, by_id[0].id, by_id[0].match, by_id[0].framework) == (
        "capability",
        "IA-05",
        "id",
        "nist_800_53",
    )
    by_text = search(store, "Authenticator Management")
    hit = next(r for r in by_text if r.kind == "capability" and r.id == "IA-05")
    assert hit.name == "Authenticator Management"
    assert hit.framework == "nist_800_53"


# --- re-import ----------------------------------------------------------------------------------


def _sets(store: Store) -> dict[tuple[str, str, str, str], tuple[int, str, int, int]]:
    return {
        (s.info.framework, s.info.framework_version, s.info.attack_version, s.info.domain): (
            s.id,
            s.sha256,
            s.rows_in_file,
            s.rows_stored,
        )
        for s in list_sets(store)
    }


@pytest.fixture
def writable(loaded_store_path: Path, tmp_path: Path) -> Iterator[Store]:
    path = tmp_path / "defensemap.sqlite"
    shutil.copy(loaded_store_path, path)
    opened = open_store(path, write=True)
    yield opened
    opened.close()


def test_reimporting_a_file_is_unchanged(writable: Store) -> None:
    before = _sets(writable)
    (outcome,) = ingest_mappings(writable, [load_mapping_file(_file(*M365_16))])
    assert outcome.status == "unchanged"
    assert (outcome.rows_in_file, outcome.rows_stored) == before[
        ("m365", "07/18/2025", "16.1", "enterprise-attack")
    ][2:]
    assert _sets(writable) == before


def test_a_changed_file_replaces_only_its_own_set(writable: Store, tmp_path: Path) -> None:
    """kev 02/13/2025 on 15.1 exists for two domains; replacing mobile must not touch
    enterprise, nor any other set, nor ATT&CK."""
    before = _sets(writable)
    releases = [(r.id, r.domain, r.version) for r in list_releases(writable)]
    key = ("kev", "02/13/2025", "15.1", "mobile-attack")
    old_id = before[key][0]
    old_scope = f"mappings:{old_id}"
    assert writable.conn.execute(
        "SELECT count(*) FROM search_index WHERE scope = ?", (old_scope,)
    ).fetchone()[0]

    data = _read(_file(*KEV_MOBILE_15))
    data["mapping_objects"] = data["mapping_objects"][:-1]
    data["mapping_objects"].append(dict(data["mapping_objects"][0]))  # a new duplicate
    data["mapping_objects"][1]["comments"] = "changed for the test"
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(data), encoding="utf-8")

    (outcome,) = ingest_mappings(writable, [load_mapping_file(changed)])
    assert outcome.status == "replaced"
    after = _sets(writable)
    assert set(after) == set(before)
    new_id, _, rows_in_file, rows_stored = after[key]
    assert new_id != old_id
    assert (rows_in_file, rows_stored) == (
        len(data["mapping_objects"]),
        len(data["mapping_objects"]) - 1,
    )
    assert {k: v for k, v in after.items() if k != key} == {
        k: v for k, v in before.items() if k != key
    }
    conn = writable.conn
    assert (
        conn.execute("SELECT count(*) FROM mapping WHERE set_id = ?", (old_id,)).fetchone()[0] == 0
    )
    assert (
        conn.execute("SELECT count(*) FROM search_index WHERE scope = ?", (old_scope,)).fetchone()[
            0
        ]
        == 0
    )
    assert (
        conn.execute(
            "SELECT comments FROM mapping WHERE set_id = ? AND position = 1", (new_id,)
        ).fetchone()[0]
        == "changed for the test"
    )
    assert [(r.id, r.domain, r.version) for r in list_releases(writable)] == releases


def test_a_new_framework_version_is_added_beside_the_others(
    writable: Store, tmp_path: Path
) -> None:
    before = _sets(writable)
    data = _read(_file(*KEV_MOBILE_15))
    data["metadata"]["mapping_framework_version"] = "01/01/2099"
    added = tmp_path / "added.json"
    added.write_text(json.dumps(data), encoding="utf-8")
    (outcome,) = ingest_mappings(writable, [load_mapping_file(added)])
    assert outcome.status == "imported"
    after = _sets(writable)
    assert {k: v for k, v in after.items() if k in before} == before
    assert set(after) - set(before) == {("kev", "01/01/2099", "15.1", "mobile-attack")}


def test_bulk_counts_equal_the_technique_pages_row_counts(store: Store) -> None:
    """A group page's "N mapped" per technique is what that technique's page lists,
    including rows mapped on an id since revoked into it (T1574.002 → T1574.001 on 18.1)."""
    from defensemap.kb.mappings import mapping_counts

    idents = ["T1021.007", "T1574.001", "T1059.001", "T1003", "t1078.004", "T9999"]
    for version in ("18.1", "16.1"):
        counts = mapping_counts(store, idents, version, "enterprise-attack")
        for ident in idents[:-1]:
            blocks = technique_mappings(store, ident, attack_version=version)
            assert counts[ident] == sum(len(b.rows) for b in blocks) > 0, (ident, version)
        assert counts["T9999"] == 0
