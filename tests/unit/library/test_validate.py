"""`content validate` finds what a reviewer would: each check on a detection broken in one
place, with the file and field named, while a sound detection passes."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import yaml
from tests.conftest import SHARED_DATA, require_shared_data

from defensemap.library.loader import content_dir

REFERENCE = content_dir() / "detections" / "t1021.007-cloud-cli-login-new-on-endpoint.yml"
LSASS_PROCDUMP = "0be2230c-9ab3-4ac2-8826-3199b9a0ebf8"  # an Atomic test of T1003.001
RELATED = sorted((content_dir() / "detections").glob("t1021.007-*.yml"))


def _library(tmp_path: Path, *, with_related: bool = False, **changes: object) -> Path:
    """The reference detection changed as given (with the detections it names as related, or
    with its related list emptied: fewer queries to check)."""
    folder = tmp_path / "lib"
    folder.mkdir()
    for path in RELATED if with_related else []:
        shutil.copy(path, folder / path.name)
    data = _changed(changes)
    if with_related:
        data["related"] = yaml.safe_load(REFERENCE.read_text())["related"]
    (folder / REFERENCE.name).write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def _changed(changes: dict[str, object]) -> dict:
    """The reference detection with ``a__b`` keys set (no related links unless given)."""
    data = yaml.safe_load(REFERENCE.read_text())
    data["related"] = []
    for dotted, value in changes.items():
        target = data
        *parents, last = dotted.split("__")
        for key in parents:
            target = target[key]
        target[last] = value
    return data


def _validate(cli, folder: Path) -> tuple[int, list[dict]]:
    result = cli(
        "content",
        "validate",
        str(folder),
        "--atomics",
        str(SHARED_DATA / "atomic-red-team"),
        "--json",
    )
    return result.exit_code, result.json()["data"]["findings"]


def test_the_t1021_007_detections_pass(cli, loaded_home: Path, tmp_path: Path) -> None:
    require_shared_data()
    code, findings = _validate(cli, _library(tmp_path, with_related=True))
    assert code == 0
    assert [f for f in findings if f["severity"] == "error"] == []
    # the cloud rules' fields have no SecOps UDM or QRadar mapping: said, not hidden
    warned = {(f["path"].rsplit("/", 1)[-1], f["message"].split(":")[0]) for f in findings}
    assert warned == {
        (f"t1021.007-{name}.yml", target)
        for name in ("admin-client-signin-first-use", "admin-client-signin-then-directory-change")
        for target in ("secops", "qradar")
    }


SELF = "the case's own id"
CASES = {
    "unknown technique": ({"techniques": ["T1021.007", "T9999"]}, "attack", "T9999"),
    "revoked technique": ({"techniques": ["T1021.007", "T1574.002"]}, "attack", "revoked"),
    "data source": (
        {"data_sources": ["Process Creation", "Telepathy"]},
        "data_sources",
        "Telepathy",
    ),
    "related id": (
        {"related": ["00000000-0000-4000-8000-000000000000"]},
        "related",
        "not in the library",
    ),
    "related to itself": (
        {"related": [SELF]},
        "related",
        "itself",
    ),
    "table": ({"required_tables": ["DeviceProcessEvents", "NoSuchTable"]}, "tables", "NoSuchTable"),
    "column": (
        {"queries__kql": "DeviceProcessEvents | where CommandLyne has 'x'"},
        "kql",
        "CommandLyne",
    ),
    "table not declared": (
        {"queries__kql": "SigninLogs | where ResultType == '0'"},
        "tables",
        "SigninLogs",
    ),
    "hunting query": (
        {"hunting_queries": [{"name": "h", "purpose": "p", "kql": "DeviceProcessEvents | bogus"}]},
        "kql",
        "hunting_queries[0]",
    ),
    "empty field": ({"tuning": []}, "complete", "tuning is empty"),
    "schedule timespan": ({"schedule__frequency": "hourly"}, "schema", "schedule/frequency"),
    "sigma tactic tags": (
        {"sigma__tags": ["attack.lateral-movement"]},
        "sigma",
        "missing_tactic: attack.execution",
    ),
    "atomic guid": (
        {
            "atomic_tests": {
                "tests": [{"guid": "0be2230c-9ab3-4ac2-8826-3199b9a0ebf8", "name": "x"}]
            }
        },
        "atomic_tests",
        "emulates T1003.001",
    ),
}


def test_each_check_names_the_problem(cli, loaded_home: Path, tmp_path: Path) -> None:
    """One library holding one broken copy of the reference detection per case (each with
    its own id and file), validated once: every case must be found in its own file."""
    require_shared_data()
    folder = tmp_path / "lib"
    folder.mkdir()
    for number, (changes, _, _) in enumerate(CASES.values()):
        data = _changed(changes)
        data["id"] = str(uuid.UUID(int=number + 1, version=4))
        data["related"] = [data["id"] if r == SELF else r for r in data["related"]]
        (folder / f"case-{number:02d}.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    code, findings = _validate(cli, folder)
    assert code == 1
    for number, (name, (_, check, fragment)) in enumerate(CASES.items()):
        mine = [f for f in findings if f["path"].endswith(f"case-{number:02d}.yml")]
        assert any(f["check"] == check and fragment in f["message"] for f in mine), (name, mine)


def test_a_broken_file_does_not_hide_the_others(cli, loaded_home: Path, tmp_path: Path) -> None:
    require_shared_data()
    folder = _library(tmp_path)
    (folder / "broken.yml").write_text("id: [unclosed\n")
    dup = yaml.safe_load(REFERENCE.read_text())
    (folder / "copy.yml").write_text(yaml.safe_dump(dup))
    code, findings = _validate(cli, folder)
    assert code == 1
    assert [f["check"] for f in findings if f["path"].endswith("broken.yml")] == ["schema"]
    assert any(f["check"] == "id" and "also used by" in f["message"] for f in findings)


def test_without_attack_data_the_references_are_said_unchecked(
    cli, home: Path, tmp_path: Path
) -> None:
    result = cli("content", "validate", str(_library(tmp_path)), "--json")
    notes = result.json()["data"]["notes"]
    assert "ATT&CK references not checked: no ATT&CK data in the store" in notes
    assert "atomic test GUIDs not checked: give --atomics PATH" in notes


def test_schema_validates_every_library_file(cli, tmp_path: Path) -> None:
    import jsonschema

    result = cli("schema", "detection")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted((content_dir() / "detections").glob("*.yml")):
        data = json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))
        errors = [e.message for e in validator.iter_errors(data)]
        assert not errors, (path.name, errors)
    bad = {"id": "not-a-uuid", "title": "t", "techniques": ["T1021.007"], "severity": "urgent"}
    assert list(validator.iter_errors(bad))
