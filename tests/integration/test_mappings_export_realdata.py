"""`defensemap export mappings` of the newest NIST 800-53 rev5 set in ../shared/data.

Every format is written through the CLI from the session store (opened read-only), checked
against the upstream file and the published unified schema, and written twice to prove the
output is byte-stable.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.conftest import MAPPING_SCHEMA, MAPPINGS_DIR
from tests.navigator_layer import schema_errors

from defensemap.export.navigator import validate_layer

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def newest_rev5(loaded_store_path: Path) -> dict[str, Any]:
    """What the store says about the newest NIST rev5 set, and the file it came from."""
    from defensemap.kb.mappings import select_sets
    from defensemap.store.db import open_store

    store = open_store(loaded_store_path)
    try:
        item = select_sets(store, framework="nist_800_53", framework_version="rev5")[0]
    finally:
        store.close()
    source = Path(item.source)
    assert source.is_relative_to(MAPPINGS_DIR.resolve())
    return {
        "attack_version": item.info.attack_version,
        "rows_stored": item.rows_stored,
        "rows_in_file": item.rows_in_file,
        "document": orjson.loads(source.read_bytes()),
    }


@pytest.fixture
def store_home(loaded_store_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The session store's folder as the data home; export only reads it."""
    monkeypatch.setenv("DEFENSEMAP_HOME", str(loaded_store_path.parent))
    return loaded_store_path.parent


def _export(cli, tmp_path: Path, fmt: str) -> bytes:  # type: ignore[no-untyped-def]
    first, second = tmp_path / f"first.{fmt}", tmp_path / f"second.{fmt}"
    for out in (first, second):
        result = cli(
            "export", "mappings", "--framework", "nist_800_53", "--framework-version", "rev5",
            "--format", fmt, "-o", str(out),
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
    content = first.read_bytes()
    assert content == second.read_bytes(), f"{fmt} export is not byte-stable"
    return content


def _distinct(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the upstream file with exact copies dropped, first occurrence kept."""
    seen: dict[bytes, dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(orjson.dumps(row, option=orjson.OPT_SORT_KEYS), row)
    return list(seen.values())


def test_newest_rev5_set_is_the_one_exported(newest_rev5: dict[str, Any]) -> None:
    assert newest_rev5["attack_version"] == newest_rev5["document"]["metadata"]["attack_version"]
    # the upstream file has duplicated rows, so the store holds fewer rows than the file
    assert newest_rev5["rows_stored"] < newest_rev5["rows_in_file"]
    assert newest_rev5["rows_in_file"] == len(newest_rev5["document"]["mapping_objects"])


def test_json_export_follows_the_unified_schema(
    cli, store_home: Path, tmp_path: Path, newest_rev5: dict[str, Any]
) -> None:
    from jsonschema import Draft202012Validator

    document = json.loads(_export(cli, tmp_path, "json"))
    schema = json.loads(MAPPING_SCHEMA.read_text(encoding="utf-8"))
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(document)]
    assert errors == []
    upstream = newest_rev5["document"]
    assert document["metadata"] == upstream["metadata"]
    assert len(document["mapping_objects"]) == newest_rev5["rows_stored"]
    assert document["mapping_objects"] == _distinct(upstream["mapping_objects"])


def test_yaml_export_is_the_same_document(
    cli, store_home: Path, tmp_path: Path, newest_rev5: dict[str, Any]
) -> None:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    document = yaml.load(_export(cli, tmp_path, "yaml"), Loader=loader)
    assert document["metadata"] == newest_rev5["document"]["metadata"]
    assert document["mapping_objects"] == _distinct(newest_rev5["document"]["mapping_objects"])


def test_csv_and_xlsx_exports_hold_every_stored_row(
    cli, store_home: Path, tmp_path: Path, newest_rev5: dict[str, Any]
) -> None:
    from openpyxl import load_workbook

    from defensemap.export.mappings import CSV_FIELDS

    rows = list(csv.DictReader(io.StringIO(_export(cli, tmp_path, "csv").decode())))
    assert len(rows) == newest_rev5["rows_stored"]
    file_rows = newest_rev5["rows_in_file"]
    assert sum(int(r["occurrences"]) for r in rows) == file_rows

    book = load_workbook(io.BytesIO(_export(cli, tmp_path, "xlsx")), read_only=True)
    try:
        sheets = {
            name: list(book[name].iter_rows(values_only=True))
            for name in ("Mappings", "Non-mappable")
        }
    finally:
        book.close()
    assert all(rows[0] == CSV_FIELDS for rows in sheets.values())
    records = [r for rows in sheets.values() for r in rows[1:]]
    assert len(records) == newest_rev5["rows_stored"]
    occurrences = [r[CSV_FIELDS.index("occurrences")] for r in records]
    assert all(type(n) is int for n in occurrences) and sum(occurrences) == file_rows


def test_stix_export_parses_and_resolves(
    cli, store_home: Path, tmp_path: Path, newest_rev5: dict[str, Any]
) -> None:
    import stix2

    bundle = stix2.parse(_export(cli, tmp_path, "stix").decode(), allow_custom=True)
    objects = {obj["id"]: obj for obj in bundle.objects}
    relationships = [o for o in objects.values() if o["type"] == "relationship"]
    for rel in relationships:
        assert rel["source_ref"] in objects and rel["target_ref"] in objects
        assert rel["created_by_ref"] in objects
    mapped = [
        r
        for r in _distinct(newest_rev5["document"]["mapping_objects"])
        if r.get("status") != "non_mappable" and r.get("capability_id") and r["attack_object_id"]
    ]
    assert len(relationships) == len(mapped)
    assert Counter(r["relationship_type"] for r in relationships) == {"mitigates": len(mapped)}
    techniques = {
        o["external_references"][0]["external_id"]
        for o in objects.values()
        if o["type"] == "attack-pattern"
    }
    assert techniques == {r["attack_object_id"] for r in mapped}
    assert {o["type"] for o in objects.values()} == {
        "identity",
        "course-of-action",
        "attack-pattern",
        "relationship",
    }


def test_navigator_layer_validates(
    cli, store_home: Path, tmp_path: Path, newest_rev5: dict[str, Any]
) -> None:
    layer = json.loads(_export(cli, tmp_path, "navigator"))
    assert validate_layer(layer) == []
    assert schema_errors(layer) == []
    mapped = [
        r
        for r in _distinct(newest_rev5["document"]["mapping_objects"])
        if r.get("status") != "non_mappable" and r.get("capability_id")
    ]
    expected = Counter(r["attack_object_id"] for r in mapped)
    assert {t["techniqueID"]: t["score"] for t in layer["techniques"]} == expected
    assert layer["versions"]["attack"] == newest_rev5["attack_version"].split(".")[0]


@pytest.mark.parametrize("group", ["AC", "SI"])
def test_navigator_layer_per_capability_group_validates(
    cli, store_home: Path, tmp_path: Path, group: str
) -> None:
    out = tmp_path / "layer.json"
    result = cli(
        "export", "mappings", "--framework", "nist_800_53", "--framework-version", "rev5",
        "--capability-group", group, "--format", "navigator", "-o", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    layer = json.loads(out.read_bytes())
    assert validate_layer(layer) == [] and schema_errors(layer) == []
    assert layer["techniques"]
    assert all(f"{group}-" in t["comment"] for t in layer["techniques"])
