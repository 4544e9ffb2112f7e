"""`coverage controls import|list`, `coverage rules import|list` and `import atomics` as a
user runs them: round trips through the store, re-imports that replace, unknown capability
ids named, bad files refused with their place and the store left as it was."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import REPO, require_shared_data

FIXTURES = REPO / "tests" / "fixtures" / "rulesets"
CONTROLS = """framework,capability_id,status,framework_version
NIST 800-53,IA-5,implemented,rev5
nist_800_53,AC-02,partial,
Microsoft 365,EID-CA-E3,n/a,
azure,no_such_capability,planned,
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_controls_import_list_and_reimport_replaces(cli, home: Path, tmp_path: Path) -> None:
    first = _write(tmp_path / "controls.csv", CONTROLS)
    result = cli("coverage", "controls", "import", str(first), "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()["data"]
    assert (data["controls"], data["replaced"], data["unknown"]) == (4, 0, [])
    assert data["notes"] == ["no mappings loaded: capability ids were not checked"]
    assert data["by_status"] == {"implemented": 1, "partial": 1, "not-applicable": 1, "planned": 1}
    listed = cli("coverage", "controls", "list", "--json").json()["data"]
    assert [(c["framework"], c["capability_id"], c["status"]) for c in listed["controls"]] == [
        ("nist_800_53", "IA-5", "implemented"),
        ("nist_800_53", "AC-02", "partial"),
        ("m365", "EID-CA-E3", "not-applicable"),
        ("azure", "no_such_capability", "planned"),
    ]
    assert listed["controls"][0]["source"] == "controls.csv:2"
    second = _write(tmp_path / "controls.yaml", "aws:\n  aws_rds: implemented\n")
    human = cli("coverage", "controls", "import", str(second))
    assert human.exit_code == 0, human.stderr
    assert f"imported 1 control(s) from {second}, replacing 4" in human.stdout
    shown = cli("coverage", "controls", "list")
    assert "aws_rds" in shown.stdout
    assert "IA-5" not in shown.stdout


def test_unknown_capability_ids_are_named_against_the_loaded_mappings(
    cli, loaded_home: Path, tmp_path: Path
) -> None:
    path = _write(tmp_path / "controls.csv", CONTROLS)
    data = cli("coverage", "controls", "import", str(path), "--json").json()["data"]
    # IA-5 is written IA-05 in the newest rev5 files: still known
    assert [(u["capability_id"], u["source"]) for u in data["unknown"]] == [
        ("no_such_capability", "controls.csv:5")
    ]
    human = cli("coverage", "controls", "import", str(path))
    assert (
        "warning: controls.csv:5: azure no_such_capability is not in the mapping set coverage"
        " judges it by (the newest, or the version it names)" in human.stderr
    )


def test_a_bad_controls_file_is_refused_and_the_saved_controls_stay(
    cli, home: Path, tmp_path: Path
) -> None:
    good = _write(tmp_path / "good.csv", CONTROLS)
    assert cli("coverage", "controls", "import", str(good)).exit_code == 0
    bad = _write(tmp_path / "bad.csv", CONTROLS + "aws,aws_rds,sometimes,\n")
    result = cli("coverage", "controls", "import", str(bad), "--json")
    assert result.exit_code == 2
    error = result.json()["error"]
    assert (error["code"], error["location"]["line"]) == ("schema_error", 6)
    assert f"{bad}:6: unknown status 'sometimes'" in result.stderr
    listed = cli("coverage", "controls", "list", "--json").json()["data"]
    assert len(listed["controls"]) == 4


def test_rules_import_list_and_reimport_of_a_name_replaces_that_set(
    cli, home: Path, tmp_path: Path
) -> None:
    result = cli("coverage", "rules", "import", str(FIXTURES), "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()["data"]
    assert data["name"] == "rulesets"  # the folder's name
    assert (data["rules"], data["with_techniques"], data["no_technique"], data["enabled"]) == (
        16,
        11,
        5,
        11,
    )
    assert data["by_format"]["splunk"] == 3
    assert len(data["skipped"]) == 3
    sigma = cli("coverage", "rules", "import", str(FIXTURES / "sigma"), "--name", "lab")
    assert sigma.exit_code == 0, sigma.stderr
    assert "imported rule set 'lab': 4 rule(s) from 4 file(s), 3 enabled" in sigma.stdout
    assert "1 with no ATT&CK technique" in sigma.stdout
    again = cli(
        "coverage", "rules", "import", str(FIXTURES / "splunk" / "savedsearches.conf"),
        "--name", "lab", "--json",
    )  # fmt: skip
    assert again.json()["data"]["replaced"] == 4
    listed = cli("coverage", "rules", "list", "--json").json()["data"]
    assert {s["name"]: s["rules"] for s in listed["sets"]} == {"lab": 3, "rulesets": 16}
    assert len(listed["rules"]) == 19
    lab = cli("coverage", "rules", "list", "--name", "LAB", "--json").json()["data"]
    assert [r["origin"] for r in lab["rules"]] == ["splunk"] * 3
    human = cli("coverage", "rules", "list", "--name", "lab")
    assert "Service created over the network" in human.stdout
    assert "no ATT&CK technique" in human.stdout


def test_rules_import_errors_name_the_file_and_leave_the_store(
    cli, home: Path, tmp_path: Path
) -> None:
    assert cli("coverage", "rules", "import", str(FIXTURES / "sigma"), "--name", "s").exit_code == 0
    bad = _write(tmp_path / "rules.ndjson", '{"rule_id": "a", "name": "x"}\n{"rule_id": \n')
    result = cli("coverage", "rules", "import", str(bad), "--name", "s")
    assert result.exit_code == 2
    assert f"error: {bad}:2" in result.stderr
    assert "not valid JSON" in result.stderr
    assert cli("coverage", "rules", "list", "--json").json()["data"]["sets"][0]["rules"] == 4
    empty = tmp_path / "empty"
    empty.mkdir()
    _write(empty / "notes.yaml", "owner: soc\n")
    nothing = cli("coverage", "rules", "import", str(empty))
    assert nothing.exit_code == 2
    assert "no rules in 1 file(s)" in nothing.stderr
    unknown = cli("coverage", "rules", "list", "--name", "nope")
    assert unknown.exit_code == 2
    assert "no rule set named 'nope'" in unknown.stderr


def _independent_atomic_counts(root: Path) -> tuple[int, int]:
    """Tests and techniques counted from the text, without the YAML loader."""
    guids: set[str] = set()
    techniques: set[str] = set()
    for path in (root / "atomics").glob("T*/T*.yaml"):
        found = re.findall(r"auto_generated_guid:\s*([0-9a-fA-F-]{36})", path.read_text())
        guids.update(g.lower() for g in found)
        if found:
            techniques.add(path.stem.upper())
    return len(guids), len(techniques)


def test_import_atomics_counts_every_test_and_technique(cli, home: Path) -> None:
    root = require_shared_data() / "atomic-red-team"
    tests, techniques = _independent_atomic_counts(root)
    assert tests > 1000  # the snapshot: 1,819 tests of 341 techniques
    result = cli("import", "atomics", str(root), "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()["data"]
    assert (data["tests"], data["techniques"], data["replaced"]) == (tests, techniques, 0)
    again = cli("import", "atomics", str(root / "atomics"))
    assert again.exit_code == 0, again.stderr
    assert (
        f"imported {tests} Atomic Red Team test(s) for {techniques} technique(s)"
        f" from {root / 'atomics'}, replacing {tests}"
    ) in again.stdout


def test_import_atomics_refuses_a_folder_without_tests(cli, home: Path, tmp_path: Path) -> None:
    result = cli("import", "atomics", str(tmp_path))
    assert result.exit_code == 2
    assert "no Atomic Red Team technique files" in result.stderr
