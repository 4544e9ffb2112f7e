"""Bad Mappings Explorer input gets one precise, typed error naming the file and the JSON
pointer; `defensemap import mappings` is all-or-nothing and exits 2 on bad input."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.file_cases import mutated_case, raw_case
from tests.mapping_docs import DUPLICATE, FULL, MINIMAL, small_mapping, write_mapping

from defensemap.errors import DefensemapError, ParseError, SchemaError, SourceError
from defensemap.sources.mappings import collect_files, load_mapping_file

NAME = "example_fw-v1_attack-16.1-enterprise.json"


def _mutated(change: Callable[[dict[str, Any]], object]) -> Callable[[Path], Path]:
    return mutated_case(small_mapping, write_mapping, change, NAME)


def _raw(content: bytes, name: str = NAME) -> Callable[[Path], Path]:
    return raw_case(content, name)


def _meta(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        document["metadata"][key] = value

    return change


def _drop_meta(key: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        del document["metadata"][key]

    return change


def _row(index: int, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        document["mapping_objects"][index][key] = value

    return change


def _drop_row_key(index: int, key: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        del document["mapping_objects"][index][key]

    return change


def _truncated_gzip(tmp_path: Path) -> Path:
    data = gzip.compress(orjson.dumps(small_mapping()))
    path = tmp_path / f"{NAME}.gz"
    path.write_bytes(data[: len(data) // 2])
    return path


def _not_json(tmp_path: Path) -> Path:
    path = tmp_path / NAME
    path.write_text('{\n  "metadata": {},\n  "mapping_objects": [}\n', encoding="utf-8")
    return path


@dataclass(frozen=True)
class Case:
    make: Callable[[Path], Path]
    error: type[DefensemapError]
    where: str  # right after the path in str(error): ":line:col", "#/pointer" or ": "
    message: str  # a fragment of the message


ROW = DUPLICATE  # index 3: errors must name the row's index

CASES: dict[str, Case] = {
    "not-json": Case(_not_json, ParseError, ":3:", "not valid JSON"),
    "empty-file": Case(_raw(b""), ParseError, ":1:1", "not valid JSON"),
    "truncated-gzip": Case(_truncated_gzip, ParseError, ": ", "truncated or corrupt"),
    "json-array": Case(_raw(b"[1, 2]"), SchemaError, "#/", "expected an object with 'metadata'"),
    "json-scalar": Case(_raw(b'"mappings"'), SchemaError, "#/", "expected an object"),
    "missing-metadata": Case(
        _mutated(lambda d: d.pop("metadata")), SchemaError, "#/", "'metadata' and"
    ),
    "missing-mapping-objects": Case(
        _mutated(lambda d: d.pop("mapping_objects")), SchemaError, "#/", "'mapping_objects'"
    ),
    "unknown-top-level-field": Case(
        _mutated(lambda d: d.update(extra=1)),
        SchemaError,
        "#/extra",
        "unexpected top-level field 'extra'",
    ),
    "top-level-field-escaped": Case(
        _mutated(lambda d: d.update({"a/b~c": 1})),
        SchemaError,
        "#/a~1b~0c",
        "unexpected top-level field 'a/b~c'",
    ),
    "metadata-not-object": Case(
        _mutated(lambda d: d.update(metadata=[])), SchemaError, "#/metadata", "valid dictionary"
    ),
    "metadata-missing-attack-version": Case(
        _mutated(_drop_meta("attack_version")),
        SchemaError,
        "#/metadata/attack_version",
        "required field 'attack_version' is missing",
    ),
    "metadata-unknown-field": Case(
        _mutated(_meta("x_note", "hi")),
        SchemaError,
        "#/metadata/x_note",
        "extra inputs are not permitted",
    ),
    "metadata-bad-domain": Case(
        _mutated(_meta("technology_domain", "Enterprise")),
        SchemaError,
        "#/metadata/technology_domain",
        "'enterprise', 'mobile' or 'ics'",
    ),
    "bad-creation-date": Case(
        _mutated(_meta("creation_date", "2024-01-02")),
        SchemaError,
        "#/metadata/creation_date",
        "should match pattern",
    ),
    "bad-last-update": Case(
        _mutated(_meta("last_update", "1/2/2024")),
        SchemaError,
        "#/metadata/last_update",
        "should match pattern",
    ),
    "last-update-null": Case(
        _mutated(_meta("last_update", None)),
        SchemaError,
        "#/metadata/last_update",
        "field 'last_update' must be a string, not null",
    ),
    "version-schema-bad": Case(
        _mutated(_meta("mapping_framework_version_schema", "DATE")),
        SchemaError,
        "#/metadata/mapping_framework_version_schema",
        "'FRAMEWORK_VERSION' or 'ACCESS_DATE'",
    ),
    "mapping-types-not-object": Case(
        _mutated(_meta("mapping_types", ["protects"])),
        SchemaError,
        "#/metadata/mapping_types",
        "valid dictionary",
    ),
    "mapping-type-no-description": Case(
        _mutated(_meta("mapping_types", {"protects": {"name": "Protects"}})),
        SchemaError,
        "#/metadata/mapping_types/protects/description",
        "required field 'description' is missing",
    ),
    "mapping-type-key-escaped": Case(
        _mutated(_meta("mapping_types", {"a/b": {"name": 1, "description": ""}})),
        SchemaError,
        "#/metadata/mapping_types/a~1b/name",
        "valid string",
    ),
    "capability-groups-not-object": Case(
        _mutated(_meta("capability_groups", "EX")),
        SchemaError,
        "#/metadata/capability_groups",
        "valid dictionary",
    ),
    "mapping-objects-not-list": Case(
        _mutated(lambda d: d.update(mapping_objects={"0": {}})),
        SchemaError,
        "#/mapping_objects",
        "'mapping_objects' must be a list",
    ),
    "row-not-object": Case(
        _mutated(lambda d: d["mapping_objects"].__setitem__(ROW, "EX-01")),
        SchemaError,
        "#/mapping_objects/3",
        "expected an object",
    ),
    "row-null": Case(
        _mutated(lambda d: d["mapping_objects"].append(None)),
        SchemaError,
        "#/mapping_objects/4",
        "expected an object",
    ),
    "row-unknown-field": Case(
        _mutated(_row(ROW, "x_score", "high")),
        SchemaError,
        "#/mapping_objects/3/x_score",
        "extra inputs are not permitted",
    ),
    "row-unknown-field-escaped": Case(
        _mutated(_row(ROW, "a/b~c", 1)),
        SchemaError,
        "#/mapping_objects/3/a~1b~0c",
        "extra inputs are not permitted",
    ),
    "row-wrong-type": Case(
        _mutated(_row(ROW, "capability_id", 12)),
        SchemaError,
        "#/mapping_objects/3/capability_id",
        "valid string",
    ),
    "row-reference-not-string": Case(
        _mutated(_row(ROW, "references", ["https://example.org", 7])),
        SchemaError,
        "#/mapping_objects/3/references/1",
        "valid string",
    ),
    "row-references-string": Case(
        _mutated(_row(ROW, "references", "https://example.org")),
        SchemaError,
        "#/mapping_objects/3/references",
        "valid list",
    ),
    "row-missing-mapping-type": Case(
        _mutated(_drop_row_key(ROW, "mapping_type")),
        SchemaError,
        "#/mapping_objects/3/mapping_type",
        "required field 'mapping_type' is missing",
    ),
    "row-missing-capability-group": Case(
        _mutated(_drop_row_key(MINIMAL, "capability_group")),
        SchemaError,
        "#/mapping_objects/1/capability_group",
        "required field 'capability_group' is missing",
    ),
    "row-status-null": Case(
        _mutated(_row(ROW, "status", None)),
        SchemaError,
        "#/mapping_objects/3/status",
        "field 'status' must be a string, not null",
    ),
    "row-status-bad": Case(
        _mutated(_row(ROW, "status", "done")),
        SchemaError,
        "#/mapping_objects/3/status",
        "'complete', 'in_progress' or 'non_mappable'",
    ),
    "row-score-value-bad": Case(
        _mutated(_row(ROW, "score_value", "high")),
        SchemaError,
        "#/mapping_objects/3/score_value",
        "'minimal', 'partial' or 'significant'",
    ),
    "row-attack-version-null": Case(
        _mutated(_row(FULL, "attack_version", None)),
        SchemaError,
        "#/mapping_objects/0/attack_version",
        "must be a string, not null",
    ),
    "file-missing": Case(lambda tmp: tmp / NAME, SourceError, ": ", "file not found"),
    "directory": Case(
        lambda tmp: (tmp / NAME).mkdir() or tmp / NAME, SourceError, ": ", "directory"
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_gets_a_precise_error(case: Case, tmp_path: Path) -> None:
    path = case.make(tmp_path).resolve()

    with pytest.raises(DefensemapError) as caught:
        load_mapping_file(path)

    error = caught.value
    text = str(error)
    assert type(error) is case.error, text
    assert text.startswith(f"{path}{case.where}"), text
    assert case.message in error.message, text
    assert error.location is not None
    assert error.location.path == str(path)
    if case.where.startswith("#"):
        assert error.location.pointer == case.where[1:]
        assert f"{path}#{error.location.pointer}: " in text
    if case.where.startswith(":") and case.where[1:2].isdigit():
        assert error.location.line is not None
        assert error.location.column is not None
    assert error.hint, f"no hint saying what to do: {text}"
    assert "\n" not in text
    assert error.exit_code == 2


def test_the_first_bad_row_is_reported(tmp_path: Path) -> None:
    document = small_mapping()
    document["mapping_objects"][1]["capability_id"] = 1
    document["mapping_objects"][3]["status"] = "done"
    with pytest.raises(SchemaError, match=r"#/mapping_objects/1/capability_id: "):
        load_mapping_file(write_mapping(tmp_path / NAME, document))


def test_a_valid_file_loads_gzipped_too(tmp_path: Path) -> None:
    content = orjson.dumps(small_mapping())
    path = tmp_path / f"{NAME}.gz"
    path.write_bytes(gzip.compress(content))
    parsed = load_mapping_file(path)
    assert (parsed.rows_in_file, len(parsed.rows), parsed.duplicate_rows) == (4, 3, 1)
    assert parsed.info.framework == "example_fw"


# --- collecting files ---------------------------------------------------------------------------


def test_folders_are_searched_recursively_and_sorted(tmp_path: Path) -> None:
    deep = write_mapping(tmp_path / "in" / "a" / "b" / "c" / "deep.json", small_mapping())
    top = write_mapping(tmp_path / "in" / "top.json", small_mapping())
    (tmp_path / "in" / "a" / "notes.txt").write_text("not a mapping", encoding="utf-8")
    single = write_mapping(tmp_path / "single.json", small_mapping())
    assert collect_files([tmp_path / "in", single]) == [deep, top, single]


def test_a_missing_path_or_an_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="file not found"):
        collect_files([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match=r"no mapping files \(\*\.json\) found"):
        collect_files([tmp_path / "empty"])


# --- the CLI ------------------------------------------------------------------------------------


def _one_error_line(result: Any, *fragments: str) -> str:
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    assert " — " in line, f"no hint in {line!r}"
    for fragment in fragments:
        assert fragment in line, line
    return line


CLI_CASES = [
    "not-json",
    "truncated-gzip",
    "missing-metadata",
    "metadata-bad-domain",
    "bad-creation-date",
    "row-wrong-type",
    "row-unknown-field",
    "row-status-null",
]


@pytest.mark.parametrize("name", CLI_CASES)
def test_import_of_a_bad_file_is_one_line_and_exit_2(
    cli: Any, home: Path, tmp_path: Path, name: str
) -> None:
    case = CASES[name]
    path = case.make(tmp_path).resolve()
    result = cli("import", "mappings", str(path))
    assert result.exit_code == 2
    _one_error_line(result, f"error: {path}{case.where}", case.message)
    assert result.stdout == ""
    assert not (home / "defensemap.sqlite").exists()


@pytest.mark.parametrize("name", ["row-wrong-type", "metadata-missing-attack-version"])
def test_import_error_as_json(cli: Any, home: Path, tmp_path: Path, name: str) -> None:
    case = CASES[name]
    path = case.make(tmp_path).resolve()
    result = cli("import", "mappings", "--json", str(path))
    assert result.exit_code == 2
    document = result.json()
    assert isinstance(document, dict)
    assert (document["ok"], document["status"]) == (False, 2)
    error = document["error"]
    assert error["code"] == "schema_error"
    assert error["location"]["path"] == str(path)
    assert error["location"]["pointer"] == case.where[1:]
    assert case.message in error["message"]
    assert error["hint"]


def _frameworks(cli: Any) -> Any:
    result = cli("frameworks", "--json")
    return result.exit_code, result.json()


@pytest.mark.parametrize("already_loaded", [False, True], ids=["empty-home", "loaded-home"])
def test_a_folder_with_one_bad_file_loads_nothing(
    cli: Any, home: Path, tmp_path: Path, already_loaded: bool
) -> None:
    if already_loaded:
        first = write_mapping(tmp_path / "first" / "first.json", small_mapping(version="v0"))
        assert cli("import", "mappings", str(first)).exit_code == 0
    before = _frameworks(cli)
    folder = tmp_path / "in"
    write_mapping(folder / "a.json", small_mapping(version="v1"))
    write_mapping(folder / "nested" / "deeper" / "b.json", small_mapping(version="v2"))
    bad_document = small_mapping(version="v3")
    bad_document["mapping_objects"][3]["score_category"] = "prevent"
    bad = write_mapping(folder / "nested" / "c.json", bad_document).resolve()
    write_mapping(folder / "z.json", small_mapping(version="v4"))

    result = cli("import", "mappings", str(folder))

    assert result.exit_code == 2
    _one_error_line(result, f"{bad}#/mapping_objects/3/score_category")
    assert _frameworks(cli) == before
    if already_loaded:
        code, document = before
        assert code == 0
        (framework,) = document["data"]
        assert [s["framework_version"] for s in framework["sets"]] == ["v0"]
    else:
        assert before[0] != 0
        assert not (home / "defensemap.sqlite").exists()


def test_a_folder_is_imported_recursively(cli: Any, home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    write_mapping(folder / "a.json", small_mapping(version="v1"))
    write_mapping(folder / "x" / "y" / "b.json", small_mapping(version="v2", domain="mobile"))
    result = cli("import", "mappings", "--json", str(folder))
    assert result.exit_code == 0, result.stderr
    document = result.json()
    assert isinstance(document, dict)
    assert document["kind"] == "import-mappings"
    assert [(o["framework_version"], o["domain"], o["status"]) for o in document["data"]] == [
        ("v1", "enterprise-attack", "imported"),
        ("v2", "mobile-attack", "imported"),
    ]
    assert [(o["rows_in_file"], o["rows_stored"]) for o in document["data"]] == [(4, 3), (4, 3)]
    again = cli("import", "mappings", str(folder))
    assert again.exit_code == 0
    assert again.stdout.splitlines() == [
        "unchanged: example_fw v1 on ATT&CK 16.1 enterprise-attack (3 rows, 1 duplicates)",
        "unchanged: example_fw v2 on ATT&CK 16.1 mobile-attack (3 rows, 1 duplicates)",
    ]


def test_two_files_for_one_set_import_nothing(cli: Any, home: Path, tmp_path: Path) -> None:
    one = write_mapping(tmp_path / "one.json", small_mapping())
    other = small_mapping()
    other["mapping_objects"].pop()
    two = write_mapping(tmp_path / "two.json", other)
    result = cli("import", "mappings", str(one), str(two))
    assert result.exit_code == 2
    _one_error_line(result, "example_fw v1 on ATT&CK 16.1 enterprise-attack")
    assert not (home / "defensemap.sqlite").exists()


@pytest.mark.parametrize("kind", ["missing", "empty-folder"])
def test_a_path_that_does_not_exist_exits_2(
    cli: Any, home: Path, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "nope"
    if kind == "empty-folder":
        path.mkdir()
    result = cli("import", "mappings", str(path))
    assert result.exit_code == 2
    _one_error_line(result, f"error: {path}: ")
    assert result.stdout == ""


def test_bad_file_error_names_the_file_not_the_folder(cli: Any, home: Path, tmp_path: Path) -> None:
    """Among many files, the one at fault is named, with where in it."""
    folder = tmp_path / "many"
    for index in range(5):
        write_mapping(folder / f"f{index}.json", small_mapping(version=f"v{index}"))
    (folder / "f3.json").write_text(json.dumps(small_mapping(version="v3"))[:-10], encoding="utf-8")
    result = cli("import", "mappings", str(folder))
    assert result.exit_code == 2
    _one_error_line(result, f"{(folder / 'f3.json').resolve()}:1:", "not valid JSON")
