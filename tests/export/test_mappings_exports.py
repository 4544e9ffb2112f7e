"""`defensemap export mappings` on a small synthetic store, format by format.

Two invented mapping files (a NIST-style ``mitigates`` file with a non-mappable and a
duplicated row, and a technique-scores file) plus a tiny ATT&CK bundle holding the mapped
techniques. Text formats are pinned byte for byte by golden files under
``tests/golden/exports/`` (rewrite them with ``DEFENSEMAP_UPDATE_GOLDEN=1``, review the diff);
XLSX is read back with openpyxl; STIX is parsed with the ``stix2`` library; Navigator layers are
checked by ``validate_layer`` and by a JSON Schema written here from the layer format 4.5 spec.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import shutil
import uuid
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tests.attack_bundles import small_bundle, write_bundle
from tests.conftest import GOLDEN
from tests.navigator_layer import schema_errors

from defensemap.export.mappings import CSV_FIELDS, SCORE_COLORS, TYPE_COLORS
from defensemap.export.navigator import validate_layer

GOLDEN_EXPORTS = GOLDEN / "exports"
TEXT_FORMATS = ("csv", "json", "yaml", "stix", "navigator")
SUFFIX = {
    "csv": "csv",
    "json": "json",
    "yaml": "yaml",
    "stix": "stix.json",
    "navigator": "layer.json",
    "xlsx": "xlsx",
}
_IDS = uuid.UUID("0d9a3c1e-2b8f-4f57-9a51-7c1f0e6b2d44")  # namespace of the invented STIX ids


# --- synthetic inputs ------------------------------------------------------------------------


def stix_id(attack_id: str) -> str:
    return f"attack-pattern--{uuid.uuid5(_IDS, attack_id)}"


# Techniques the synthetic bundle adds to the two of tests.attack_bundles (T1021, T1021.001).
EXTRA_TECHNIQUES = {
    "T1021.007": "Cloud Services",
    "T1078.004": "Cloud Accounts",
    "T1110.003": "Password Spraying",
}
TECHNIQUE_STIX_IDS = {
    "T1021": "attack-pattern--0042a9f5-f053-4769-b3ef-9ad018dfa298",
    "T1021.001": "attack-pattern--1ecfdab8-7d59-4c98-95d4-dc41970f57fc",
    **{attack_id: stix_id(attack_id) for attack_id in EXTRA_TECHNIQUES},
}


def synthetic_bundle() -> dict[str, Any]:
    bundle = small_bundle()
    template = bundle["objects"][3]  # the sub-technique
    for attack_id, name in EXTRA_TECHNIQUES.items():
        obj = copy.deepcopy(template)
        obj["id"] = stix_id(attack_id)
        obj["name"] = name
        obj["description"] = f"Synthetic technique {attack_id} for export tests."
        obj["external_references"] = [
            {
                "source_name": "mitre-attack",
                "url": f"https://attack.mitre.org/techniques/{attack_id.replace('.', '/')}",
                "external_id": attack_id,
            }
        ]
        bundle["objects"].append(obj)
    return bundle


def _row(
    capability: str | None,
    group: str | None,
    description: str | None,
    mapping_type: str | None,
    technique: str,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "capability_id": capability,
        "capability_group": group,
        "capability_description": description,
        "mapping_type": mapping_type,
        "attack_object_id": technique,
        "attack_object_name": {**EXTRA_TECHNIQUES, "T1021": "Remote Services"}.get(
            technique, "Remote Desktop Protocol"
        ),
        "references": extra.pop("references", []),
        "comments": extra.pop("comments", ""),
        "status": extra.pop("status", "complete"),
        **extra,
    }


# NIST-style file: 3 capabilities in 2 groups, 4 techniques, one non-mappable row, one row twice.
NIST_ROWS = [
    _row(
        "XA-01",
        "XA",
        "Rotate invented cloud keys",
        "mitigates",
        "T1078.004",
        comments='Rotation limits "stolen" keys, per the invented policy.',
        references=["https://example.test/xa-01"],
    ),
    _row("XA-01", "XA", "Rotate invented cloud keys", "mitigates", "T1110.003"),
    _row(
        "XA-02",
        "XA",
        "Lock out after invented thresholds",
        "mitigates",
        "T1110.003",
        comments="Lockout slows spraying — ünïcode survives.",
    ),
    _row("XB-07", "XB", "Invented boundary broker", "mitigates", "T1021.007"),
    _row("XB-07", "XB", "Invented boundary broker", "mitigates", "T1021.001"),
    _row(
        None,
        None,
        None,
        None,
        "T1021",
        status="non_mappable",
        comments="Synthetic: nothing in this file maps here.",
    ),
]
NIST_ROWS.append(copy.deepcopy(NIST_ROWS[1]))  # a duplicated row: stored once, counted twice

NIST_FILE = {
    "metadata": {
        "mapping_version": "",
        "technology_domain": "enterprise",
        "attack_version": "16.1",
        "mapping_framework": "nist_800_53",
        "mapping_framework_version": "rev5",
        "author": None,
        "contact": None,
        "organization": None,
        "creation_date": "01/02/2024",
        "last_update": "03/04/2025",
        "mapping_types": {
            "mitigates": {"name": "mitigates", "description": "Invented: the control mitigates."}
        },
        "capability_groups": {"XA": "Example Access", "XB": "Example Boundary"},
    },
    "mapping_objects": NIST_ROWS,
}

# An older NIST file (ATT&CK 14.1): the default export must ignore it, --attack-version picks it.
OLD_NIST_FILE = copy.deepcopy(NIST_FILE)
OLD_NIST_FILE["metadata"].update(attack_version="14.1", last_update="05/06/2023")
OLD_NIST_FILE["mapping_objects"] = [copy.deepcopy(NIST_ROWS[4])]


def _scored(capability: str, group: str, technique: str, category: str, value: str) -> Any:
    return _row(
        capability,
        group,
        {"CAP-A": "Invented sign-in guard", "CAP-B": "Invented audit trail"}.get(
            capability, "Invented session broker"
        ),
        "technique_score",  # the spelling real files use; normalised to technique_scores
        technique,
        score_category=category,
        score_value=value,
        related_score=technique.split(".", maxsplit=1)[0],
        comments=f"{capability} {category}s {technique} ({value}), invented.",
        references=[f"https://example.test/{capability.lower()}"],
    )


SCORED_FILE = {
    "metadata": {
        "mapping_version": "1.0",
        "technology_domain": "enterprise",
        "attack_version": "16.1",
        "mapping_framework": "m365",
        "mapping_framework_version": "01/02/2025",
        "mapping_framework_version_schema": "ACCESS_DATE",
        "author": "Example Author",
        "contact": "author@example.test",
        "organization": "Example Org",
        "creation_date": "01/02/2025",
        "last_update": "02/03/2025",
        "mapping_types": {
            "technique_score": {"name": "technique_score", "description": "Invented scores."}
        },
        "capability_groups": {"identity": "Invented Identity", "audit": "Invented Audit"},
    },
    "mapping_objects": [
        _scored("CAP-A", "identity", "T1078.004", "protect", "significant"),
        _scored("CAP-A", "identity", "T1078.004", "detect", "partial"),
        _scored("CAP-B", "audit", "T1110.003", "detect", "minimal"),
        _scored("CAP-B", "audit", "T1021.007", "detect", "minimal"),
        _scored("CAP-C", "identity", "T1021.007", "protect", "partial"),
    ],
}


@pytest.fixture(scope="module")
def synthetic_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the synthetic ATT&CK 16.1 bundle and the three mapping files."""
    from defensemap.sources.attack_stix import load_bundle
    from defensemap.sources.mappings import load_mapping_file
    from defensemap.store.attack import ingest_attack
    from defensemap.store.db import open_store
    from defensemap.store.mappings import ingest_mappings

    root = tmp_path_factory.mktemp("synthetic")
    bundle = write_bundle(root / "enterprise-attack-16.1.json", synthetic_bundle())
    files = []
    for name, document in (
        ("nist-rev5-16.1.json", NIST_FILE),
        ("nist-rev5-14.1.json", OLD_NIST_FILE),
        ("scored.json", SCORED_FILE),
    ):
        (root / name).write_text(json.dumps(document, indent=2), encoding="utf-8")
        files.append(load_mapping_file(root / name))
    path = root / "defensemap.sqlite"
    store = open_store(path, write=True)
    ingest_attack(store, [load_bundle(bundle)])
    ingest_mappings(store, files)
    store.close()
    return path


@pytest.fixture
def synthetic_home(home: Path, synthetic_store: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(synthetic_store, home / "defensemap.sqlite")
    return home


def export(cli, out: Path, *args: str) -> bytes:  # type: ignore[no-untyped-def]
    result = cli("export", "mappings", *args, "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out}")
    return out.read_bytes()


def assert_golden(name: str, actual: bytes) -> None:
    golden = GOLDEN_EXPORTS / name
    if not golden.exists() or os.environ.get("DEFENSEMAP_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(actual)
        pytest.fail(f"golden file {golden} was (re)written; review the diff and commit it")
    expected = golden.read_bytes()
    if actual != expected:  # show a readable diff
        assert actual.decode() == expected.decode()
    assert actual == expected


# label -> CLI options choosing what to export
EXPORTS = {
    "nist-rev5": ["--framework", "nist_800_53"],
    "nist-rev5-group-XA": ["--framework", "nist", "--capability-group", "xa"],
    "nist-rev5-capability-XB-07": ["--framework", "nist_800_53", "--capability", "XB-07"],
    "m365": ["--framework", "m365"],
}
GOLDEN_CASES = [
    *((label, fmt) for label in ("nist-rev5", "m365") for fmt in TEXT_FORMATS),
    ("nist-rev5-group-XA", "navigator"),
    ("nist-rev5-group-XA", "stix"),
    ("nist-rev5-capability-XB-07", "navigator"),
    ("nist-rev5-capability-XB-07", "csv"),
]


# --- golden files ----------------------------------------------------------------------------


@pytest.mark.parametrize(("label", "fmt"), GOLDEN_CASES)
def test_text_exports_match_golden_files(
    cli, synthetic_home: Path, tmp_path: Path, label: str, fmt: str
) -> None:
    name = f"{label}.{SUFFIX[fmt]}"
    content = export(cli, tmp_path / name, *EXPORTS[label], "--format", fmt)
    assert b"\r" not in content and content.endswith(b"\n")
    again = export(cli, tmp_path / f"again-{name}", *EXPORTS[label], "--format", fmt)
    assert again == content, "exports must be byte-stable"
    assert_golden(name, content)


# --- tabular -------------------------------------------------------------------------------


def test_csv_has_one_line_per_stored_row_with_counts(cli, synthetic_home: Path, tmp_path: Path):
    content = export(cli, tmp_path / "x.csv", "--framework", "nist_800_53", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(content.decode())))
    assert tuple(rows[0]) == CSV_FIELDS
    assert len(rows) == 6  # 7 rows in the file, the duplicate stored once
    assert [r["occurrences"] for r in rows] == ["1", "2", "1", "1", "1", "1"]
    assert rows[0]["comments"] == NIST_ROWS[0]["comments"]  # quotes and commas round-trip
    assert rows[0]["mapping_type_label"] == "Protects"
    assert rows[0]["capability_group_name"] == "Example Access"
    assert rows[-1]["mapping_type"] == "non_mappable" and rows[-1]["capability_id"] == ""


def test_xlsx_has_typed_sheets_and_is_byte_stable(cli, synthetic_home: Path, tmp_path: Path):
    from openpyxl import load_workbook

    first = export(cli, tmp_path / "a.xlsx", "--framework", "nist_800_53", "--format", "xlsx")
    second = export(cli, tmp_path / "b.xlsx", "--framework", "nist_800_53", "--format", "xlsx")
    assert first == second
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        core = archive.read("docProps/core.xml").decode()
    assert "2000-01-01T00:00:00Z" in core

    book = load_workbook(io.BytesIO(first), read_only=True)
    assert book.sheetnames == [
        "Metadata",
        "Mappings",
        "Non-mappable",
        "Capability Groups",
        "Mapping Types",
    ]
    metadata = {r[0]: r[1] for r in book["Metadata"].iter_rows(min_row=2, values_only=True)}
    assert metadata["mapping_framework"] == "nist_800_53"
    assert metadata["mapping_framework_version"] == "rev5"
    assert metadata["attack_version"] == "16.1"
    assert metadata["rows"] == 6

    mappings = list(book["Mappings"].iter_rows(values_only=True))
    assert mappings[0] == CSV_FIELDS
    records = [dict(zip(CSV_FIELDS, r, strict=True)) for r in mappings[1:]]
    assert len(records) == 5
    assert all(type(r["occurrences"]) is int for r in records)
    assert [r["occurrences"] for r in records] == [1, 2, 1, 1, 1]
    assert [(r["capability_id"], r["attack_object_id"]) for r in records] == [
        ("XA-01", "T1078.004"),
        ("XA-01", "T1110.003"),
        ("XA-02", "T1110.003"),
        ("XB-07", "T1021.007"),
        ("XB-07", "T1021.001"),
    ]
    assert records[2]["comments"] == NIST_ROWS[2]["comments"]
    unmapped = list(book["Non-mappable"].iter_rows(values_only=True))
    assert len(unmapped) == 2 and unmapped[1][CSV_FIELDS.index("attack_object_id")] == "T1021"
    groups = list(book["Capability Groups"].iter_rows(values_only=True))
    assert groups == [
        ("capability_group", "name"),
        ("XA", "Example Access"),
        ("XB", "Example Boundary"),
    ]
    types = list(book["Mapping Types"].iter_rows(values_only=True))
    assert types[1][0] == "mitigates" and types[1][3] == "Protects"
    book.close()


def test_xlsx_of_scored_set_keeps_scores(cli, synthetic_home: Path, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    content = export(cli, tmp_path / "s.xlsx", "--framework", "m365", "--format", "xlsx")
    book = load_workbook(io.BytesIO(content), read_only=True)
    rows = list(book["Mappings"].iter_rows(values_only=True))
    records = [dict(zip(CSV_FIELDS, r, strict=True)) for r in rows[1:]]
    assert [(r["score_category"], r["score_value"]) for r in records] == [
        ("protect", "significant"),
        ("detect", "partial"),
        ("detect", "minimal"),
        ("detect", "minimal"),
        ("protect", "partial"),
    ]
    assert {r["mapping_type"] for r in records} == {"technique_scores"}
    assert list(book["Non-mappable"].iter_rows(values_only=True)) == [CSV_FIELDS]
    book.close()


# --- documents -------------------------------------------------------------------------------


def test_json_and_yaml_give_back_the_unified_document(
    cli, synthetic_home: Path, tmp_path: Path
) -> None:
    import yaml

    as_json = json.loads(
        export(cli, tmp_path / "x.json", "--framework", "nist", "--format", "json")
    )
    as_yaml = yaml.safe_load(
        export(cli, tmp_path / "x.yaml", "--framework", "nist", "--format", "yaml")
    )
    assert as_json == as_yaml
    assert as_json["metadata"] == NIST_FILE["metadata"]
    # every stored row once, in file order: the duplicate (last row) is not repeated
    assert as_json["mapping_objects"] == NIST_ROWS[:-1]


def test_attack_version_option_picks_the_older_set(cli, synthetic_home: Path, tmp_path: Path):
    old = json.loads(
        export(
            cli,
            tmp_path / "old.json",
            "--framework",
            "nist_800_53",
            "--framework-version",
            "REV5",
            "--attack-version",
            "14.1",
            "--format",
            "json",
        )
    )
    assert old["metadata"]["attack_version"] == "14.1"
    assert old["mapping_objects"] == OLD_NIST_FILE["mapping_objects"]


# --- STIX ------------------------------------------------------------------------------------


def _parse_stix(content: bytes) -> tuple[Any, dict[str, Any]]:
    import stix2

    bundle = stix2.parse(content.decode(), allow_custom=True)
    return bundle, {obj["id"]: obj for obj in bundle.objects}


def _check_references(objects: dict[str, Any]) -> None:
    for obj in objects.values():
        if "created_by_ref" in obj:
            assert obj["created_by_ref"] in objects
        if obj["type"] == "relationship":
            assert obj["source_ref"] in objects, obj["id"]
            assert obj["target_ref"] in objects, obj["id"]


def test_stix_bundle_of_mitigations(cli, synthetic_home: Path, tmp_path: Path) -> None:
    content = export(cli, tmp_path / "n.json", "--framework", "nist_800_53", "--format", "stix")
    bundle, objects = _parse_stix(content)
    assert bundle.type == "bundle"
    _check_references(objects)
    kinds = Counter(obj["type"] for obj in objects.values())
    # one identity, 3 capabilities, 4 techniques, 5 mapped rows (non-mappable and the copy of a
    # duplicated row left out)
    assert kinds == {"identity": 1, "course-of-action": 3, "attack-pattern": 4, "relationship": 5}
    relationships = [o for o in objects.values() if o["type"] == "relationship"]
    assert {r["relationship_type"] for r in relationships} == {"mitigates"}
    techniques = {
        o["external_references"][0]["external_id"]: o["id"]
        for o in objects.values()
        if o["type"] == "attack-pattern"
    }
    assert techniques == {k: v for k, v in TECHNIQUE_STIX_IDS.items() if k != "T1021"}
    capabilities = {o["name"]: o for o in objects.values() if o["type"] == "course-of-action"}
    assert sorted(capabilities) == ["XA-01", "XA-02", "XB-07"]
    assert capabilities["XA-01"]["x_mapex_capability_group"] == "XA"
    pairs = {
        (objects[r["source_ref"]]["name"], objects[r["target_ref"]]["name"]) for r in relationships
    }
    assert ("XA-02", "Password Spraying") in pairs and ("XB-07", "Cloud Services") in pairs
    described = [r for r in relationships if "description" in r]
    assert sorted(r["description"] for r in described) == sorted(
        NIST_ROWS[i]["comments"] for i in (0, 2)
    )
    # timestamps are the mapping file's own dates (ATT&CK objects keep ATT&CK's own), never
    # the time of the export
    raw = json.loads(content)["objects"]
    assert {(o["created"], o["modified"]) for o in raw if o["type"] != "attack-pattern"} == {
        ("2024-01-02T00:00:00.000Z", "2025-03-04T00:00:00.000Z")
    }
    store_dates = {(o["created"], o["modified"]) for o in raw if o["type"] == "attack-pattern"}
    assert "2024-01-02T00:00:00.000Z" not in {c for c, _ in store_dates}


def test_stix_bundle_of_technique_scores(cli, synthetic_home: Path, tmp_path: Path) -> None:
    content = export(cli, tmp_path / "m.json", "--framework", "m365", "--format", "stix")
    _, objects = _parse_stix(content)
    _check_references(objects)
    identity = next(o for o in objects.values() if o["type"] == "identity")
    assert identity["name"] == "Example Org"
    relationships = [o for o in objects.values() if o["type"] == "relationship"]
    by_score = Counter((r["x_mapex_score_category"], r["relationship_type"]) for r in relationships)
    # protect scores mitigate; detect scores are related-to
    assert by_score == {("protect", "mitigates"): 2, ("detect", "related-to"): 3}
    assert {r["x_mapex_mapping_type"] for r in relationships} == {"technique_scores"}
    assert {r["x_mapex_score_value"] for r in relationships} == {
        "minimal",
        "partial",
        "significant",
    }
    assert all(r["created_by_ref"] == identity["id"] for r in relationships)


def test_stix_of_a_capability_group_is_a_subset(cli, synthetic_home: Path, tmp_path: Path):
    _, whole = _parse_stix(
        export(cli, tmp_path / "a.json", *EXPORTS["nist-rev5"], "--format", "stix")
    )
    _, part = _parse_stix(
        export(cli, tmp_path / "b.json", *EXPORTS["nist-rev5-group-XA"], "--format", "stix")
    )
    _check_references(part)
    assert set(part) < set(whole)
    assert {o["name"] for o in part.values() if o["type"] == "course-of-action"} == {
        "XA-01",
        "XA-02",
    }


def test_stix_without_attack_loaded_says_what_to_import(
    cli, synthetic_home: Path, tmp_path: Path
) -> None:
    import sqlite3

    conn = sqlite3.connect(synthetic_home / "defensemap.sqlite")
    with conn:
        conn.execute("DELETE FROM attack_object WHERE attack_id = 'T1110.003'")
    conn.close()
    result = cli(
        "export", "mappings", "--framework", "nist_800_53", "--format", "stix",
        "-o", str(tmp_path / "x.json"),
    )  # fmt: skip
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "T1110.003" in line and "defensemap import attack" in line
    assert not (tmp_path / "x.json").exists()


# --- Navigator -------------------------------------------------------------------------------


def _layer(cli, tmp_path: Path, label: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    content = export(cli, tmp_path / f"{label}.json", *EXPORTS[label], "--format", "navigator")
    layer = json.loads(content)
    assert validate_layer(layer) == []
    assert schema_errors(layer) == []
    return layer


def _techniques(layer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["techniqueID"]: t for t in layer["techniques"]}


def test_navigator_layer_for_a_framework(cli, synthetic_home: Path, tmp_path: Path) -> None:
    layer = _layer(cli, tmp_path, "nist-rev5")
    assert layer["name"] == "NIST 800-53 rev5 (ATT&CK 16.1)"
    assert layer["domain"] == "enterprise-attack"
    assert layer["versions"] == {"attack": "16", "navigator": "5.1.0", "layer": "4.5"}
    techniques = _techniques(layer)
    assert list(techniques) == sorted(techniques)  # sorted, byte-stable
    # score = number of mappings (stored rows); the non-mappable T1021 is not in the layer
    assert {k: t["score"] for k, t in techniques.items()} == {
        "T1021.001": 1,
        "T1021.007": 1,
        "T1078.004": 1,
        "T1110.003": 2,
    }
    assert techniques["T1110.003"]["comment"] == "XA-01 (Protects); XA-02 (Protects)"
    assert techniques["T1110.003"]["metadata"] == [
        {"name": "XA-01", "value": "Protects"},
        {"name": "XA-02", "value": "Protects"},
    ]
    assert {t["color"] for t in techniques.values()} == {TYPE_COLORS["Protects"]}
    assert layer["legendItems"] == [{"label": "Protects", "color": TYPE_COLORS["Protects"]}]
    assert layer["gradient"]["maxValue"] == 2
    metadata = {m["name"]: m["value"] for m in layer["metadata"]}
    assert metadata["mapping_framework"] == "nist_800_53"
    assert metadata["mapping_framework_version"] == "rev5"
    assert metadata["attack_version"] == "16.1"
    assert metadata["creation_date"] == "01/02/2024"
    assert metadata["rows"] == "6"
    assert "scope" not in metadata


def test_navigator_layer_per_capability_group(cli, synthetic_home: Path, tmp_path: Path):
    layer = _layer(cli, tmp_path, "nist-rev5-group-XA")
    assert layer["name"] == "NIST 800-53 rev5 (ATT&CK 16.1) — Example Access"
    techniques = _techniques(layer)
    assert {k: t["score"] for k, t in techniques.items()} == {"T1078.004": 1, "T1110.003": 2}
    assert all("XA-0" in t["comment"] for t in techniques.values())
    metadata = {m["name"]: m["value"] for m in layer["metadata"]}
    assert metadata["scope"] == "Example Access" and metadata["rows"] == "3"


def test_navigator_layer_per_capability(cli, synthetic_home: Path, tmp_path: Path) -> None:
    layer = _layer(cli, tmp_path, "nist-rev5-capability-XB-07")
    assert layer["name"] == "NIST 800-53 rev5 (ATT&CK 16.1) — XB-07 Invented boundary broker"
    techniques = _techniques(layer)
    assert {k: (t["score"], t["comment"]) for k, t in techniques.items()} == {
        "T1021.001": (1, "XB-07 (Protects)"),
        "T1021.007": (1, "XB-07 (Protects)"),
    }


def test_navigator_layer_colours_by_strongest_score(cli, synthetic_home: Path, tmp_path: Path):
    layer = _layer(cli, tmp_path, "m365")
    techniques = _techniques(layer)
    assert {k: (t["score"], t["color"]) for k, t in techniques.items()} == {
        "T1021.007": (2, SCORE_COLORS["partial"]),
        "T1078.004": (2, SCORE_COLORS["significant"]),
        "T1110.003": (1, SCORE_COLORS["minimal"]),
    }
    assert techniques["T1078.004"]["comment"] == (
        "CAP-A (Technique Scores: detect partial); CAP-A (Technique Scores: protect significant)"
    )
    assert [item["color"] for item in layer["legendItems"]] == list(SCORE_COLORS.values())
    metadata = {m["name"]: m["value"] for m in layer["metadata"]}
    assert metadata["organization"] == "Example Org"


# validate_layer (and the schema) must reject each of these changes to a good layer.
BAD_LAYERS = {
    "bad techniqueID": (lambda d: d["techniques"][0].update(techniqueID="1021"), "techniqueID"),
    "sub-technique id": (
        lambda d: d["techniques"][0].update(techniqueID="T1021.7"),
        "techniqueID",
    ),
    "bad color": (lambda d: d["techniques"][0].update(color="blue"), "/techniques/0/color"),
    "short color": (lambda d: d["techniques"][0].update(color="#fff"), "/techniques/0/color"),
    "missing name": (lambda d: d.pop("name"), "/name"),
    "empty name": (lambda d: d.update(name=""), "/name"),
    "bad domain": (lambda d: d.update(domain="pre-attack"), "/domain"),
    "string score": (lambda d: d["techniques"][0].update(score="3"), "/techniques/0/score"),
    "boolean score": (lambda d: d["techniques"][0].update(score=True), "/techniques/0/score"),
    "one gradient colour": (
        lambda d: d["gradient"].update(colors=["#ffffff"]),
        "/gradient/colors",
    ),
    "bad gradient colour": (
        lambda d: d["gradient"].update(colors=["#ffffff", "red"]),
        "/gradient/colors",
    ),
    "non-numeric gradient bound": (
        lambda d: d["gradient"].update(maxValue="10"),
        "/gradient/maxValue",
    ),
    "gradient max not above min": (
        lambda d: d["gradient"].update(minValue=5, maxValue=5),
        "/gradient",
    ),
    "bad legend colour": (
        lambda d: d["legendItems"].append({"label": "x", "color": "green"}),
        "/legendItems/1",
    ),
    "metadata without value": (lambda d: d["metadata"].append({"name": "x"}), "/metadata/"),
    "technique metadata not a list": (
        lambda d: d["techniques"][0].update(metadata={"name": "x", "value": "y"}),
        "/techniques/0/metadata",
    ),
    "bad tactic": (
        lambda d: d["techniques"][0].update(tactic="Lateral Movement"),
        "/techniques/0/tactic",
    ),
    "layer version": (lambda d: d["versions"].update(layer="four"), "/versions/layer"),
}


@pytest.fixture(scope="module")
def good_layer(synthetic_store: Path) -> dict[str, Any]:
    """The framework-wide layer, built in-process by the exporter."""
    from defensemap.export.mappings import build_export, export_navigator
    from defensemap.store.db import open_store

    store = open_store(synthetic_store)
    try:
        return json.loads(export_navigator(build_export(store, "nist_800_53")))
    finally:
        store.close()


def test_good_layer_is_valid(good_layer: dict[str, Any]) -> None:
    assert validate_layer(good_layer) == []
    assert schema_errors(good_layer) == []


@pytest.mark.parametrize("case", BAD_LAYERS)
def test_validate_layer_rejects(good_layer: dict[str, Any], case: str) -> None:
    change, pointer = BAD_LAYERS[case]
    layer = copy.deepcopy(good_layer)
    change(layer)
    errors = validate_layer(layer)
    assert errors, f"{case} was accepted"
    assert any(e.startswith(pointer) or pointer in e.split(":")[0] for e in errors), errors
    assert schema_errors(layer), f"the schema accepted {case}"


@pytest.mark.parametrize("document", [[], "layer", None])
def test_validate_layer_rejects_non_objects(document: Any) -> None:
    assert validate_layer(document) == ["/: a layer must be a JSON object"]


def test_cli_offers_every_exporter() -> None:
    from defensemap.cli.export import FORMATS
    from defensemap.export.mappings import EXPORTERS

    assert FORMATS == tuple(EXPORTERS) == ("csv", "xlsx", "json", "yaml", "stix", "navigator")


# --- CLI errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--format", "csv"], "--framework is required"),
        (["--framework", "nist_800_53", "--format", "pdf"], "unknown format 'pdf'"),
        (["--framework", "nist_800_53", "--capability-group", "ZZ"], "no capability group 'ZZ'"),
        (["--framework", "nist_800_53", "--capability", "ZZ-99"], "no capability 'ZZ-99'"),
        (["--framework", "iso27001"], "no mappings for framework 'iso27001'"),
        (["--framework", "nist_800_53", "--framework-version", "rev9"], "no mapping set"),
    ],
)
def test_export_errors_are_one_line_and_exit_2(
    cli, synthetic_home: Path, tmp_path: Path, args: list[str], needle: str
) -> None:
    out = tmp_path / "never.csv"
    result = cli("export", "mappings", *args, "-o", str(out))
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and needle in lines[0]
    assert not out.exists()


def test_unknown_capability_group_lists_the_groups(cli, synthetic_home: Path, tmp_path: Path):
    result = cli(
        "export", "mappings", "--framework", "nist_800_53", "--capability-group", "ZZ",
        "-o", str(tmp_path / "x.csv"),
    )  # fmt: skip
    assert "groups: XA, XB" in result.stderr


def test_export_without_output_file_is_bad_input(cli, synthetic_home: Path) -> None:
    result = cli("export", "mappings", "--framework", "nist_800_53")
    assert result.exit_code == 2
    assert "-o FILE is required" in result.stderr
