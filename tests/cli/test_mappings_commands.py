"""The Mappings Explorer commands as a user runs them, on the real files: `mappings`,
`capability`, `frameworks`, `framework` and the technique page's "What counters it"."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.attack_bundles import small_bundle, write_bundle
from tests.mapping_docs import small_mapping, write_mapping

pytestmark = pytest.mark.realdata

NIST_T1021_007 = ["AC-02", "AC-03", "AC-05", "AC-06", "AC-20", "IA-02", "IA-05"]
FRAMEWORKS = [
    "aws",
    "azure",
    "cri_profile",
    "csa_ccm",
    "gcp",
    "intel-vpro",
    "kev",
    "m365",
    "nist_800_53",
    "veris",
]


@pytest.fixture(scope="module")
def module_home(loaded_store_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the session store for the read-only commands of this module."""
    home = tmp_path_factory.mktemp("mappings-home")
    shutil.copy(loaded_store_path, home / "defensemap.sqlite")
    return home


@pytest.fixture
def reader(module_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("DEFENSEMAP_HOME", str(module_home))
    yield module_home


def _ok(result: Any, kind: str) -> Any:
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    document = result.json()
    assert (document["ok"], document["kind"], document["schema_version"]) == (True, kind, 1)
    return document["data"]


def _one_error_line(result: Any, *fragments: str) -> str:
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# --- mappings ------------------------------------------------------------------------------------


def test_mappings_json(cli: Any, reader: Path) -> None:
    data = _ok(cli("mappings", "T1021.007", "--json"), "mappings")
    assert data["technique"] == "T1021.007"
    blocks = {b["framework"]: b for b in data["frameworks"]}
    assert {"nist_800_53", "m365"} <= set(blocks)
    assert len(data["frameworks"]) == len(blocks)  # the newest set of each framework only
    nist = blocks["nist_800_53"]
    assert (nist["framework_version"], nist["mapped_on"], nist["domain"]) == (
        "rev5",
        "16.1",
        "enterprise-attack",
    )
    assert [r["capability_id"] for r in nist["rows"]] == NIST_T1021_007
    assert {r["mapping_type_label"] for r in nist["rows"]} == {"Protects"}
    row = nist["rows"][-1]
    assert row["attack"] == {
        "mapped_id": "T1021.007",
        "mapped_name": "Cloud Services",
        "current_id": "T1021.007",
        "current_name": "Cloud Services",
        "status": "current",
        "attack_version": "18.1",
    }
    assert blocks["m365"]["framework_version"] == "07/18/2025"


def test_mappings_human(cli: Any, reader: Path) -> None:
    result = cli("mappings", "T1021.007", "--framework", "nist")
    assert result.exit_code == 0, result.stderr
    assert "NIST 800-53 rev5" in result.stdout
    assert "ATT&CK 16.1" in result.stdout
    for capability_id in NIST_T1021_007:
        assert capability_id in result.stdout
    assert "Protects" in result.stdout
    assert "Microsoft 365" not in result.stdout


def test_mappings_framework_filter(cli: Any, reader: Path) -> None:
    data = _ok(cli("mappings", "T1021.007", "--framework", "nist", "--json"), "mappings")
    (block,) = data["frameworks"]
    assert (block["framework"], block["framework_version"]) == ("nist_800_53", "rev5")


def test_mappings_framework_version(cli: Any, reader: Path) -> None:
    data = _ok(
        cli(
            "mappings",
            "T1021.007",
            "--framework",
            "nist",
            "--framework-version",
            "rev4",
            "--json",
        ),
        "mappings",
    )
    (block,) = data["frameworks"]
    assert (block["framework_version"], block["mapped_on"]) == ("rev4", "14.1")
    assert [r["capability_id"] for r in block["rows"]] == [
        "AC-2",
        "AC-20",
        "AC-3",
        "AC-5",
        "AC-6",
        "IA-2",
        "IA-5",
    ]


def test_mappings_all_versions(cli: Any, reader: Path) -> None:
    data = _ok(
        cli("mappings", "T1021.007", "--framework", "m365", "--all-versions", "--json"),
        "mappings",
    )
    assert [(b["framework_version"], b["mapped_on"]) for b in data["frameworks"]] == [
        ("07/18/2025", "16.1"),
        ("12/11/2023", "14.1"),
    ]
    nist = _ok(
        cli("mappings", "T1021.007", "--framework", "nist", "--all-versions", "--json"),
        "mappings",
    )
    # T1021.007 appeared in ATT&CK 13: only the sets mapped on 14.1 and 16.1 name it
    assert sorted((b["framework_version"], b["mapped_on"]) for b in nist["frameworks"]) == [
        ("rev4", "14.1"),
        ("rev5", "14.1"),
        ("rev5", "16.1"),
    ]


def test_mappings_of_a_revoked_technique_on_16_1(cli: Any, reader: Path) -> None:
    now = _ok(cli("mappings", "T1574.001", "--framework", "nist", "--json"), "mappings")
    (block,) = now["frameworks"]
    revoked = [r for r in block["rows"] if r["attack"]["mapped_id"] == "T1574.002"]
    assert revoked
    assert {(r["attack"]["status"], r["attack"]["current_id"]) for r in revoked} == {
        ("revoked", "T1574.001")
    }
    then = _ok(
        cli(
            "mappings",
            "T1574.002",
            "--framework",
            "nist",
            "--attack-version",
            "16.1",
            "--json",
        ),
        "mappings",
    )
    (old,) = then["frameworks"]
    assert len(old["rows"]) == len(revoked)
    assert {(r["attack"]["status"], r["attack"]["current_id"]) for r in old["rows"]} == {
        ("current", "T1574.002")
    }


def test_mappings_unknown_framework_version_lists_the_loaded_sets(cli: Any, reader: Path) -> None:
    result = cli("mappings", "T1021.007", "--framework", "nist", "--framework-version", "rev9")
    assert result.exit_code == 2
    _one_error_line(result, "no mapping set matches nist rev9", "nist_800_53 rev5 (ATT&CK 16.1)")


# --- capability ----------------------------------------------------------------------------------


def test_capability_json(cli: Any, reader: Path) -> None:
    data = _ok(cli("capability", "IA-05", "--framework", "nist_800_53", "--json"), "capability")
    (doc,) = data
    assert (doc["framework"], doc["framework_version"], doc["mapped_on"]) == (
        "nist_800_53",
        "rev5",
        "16.1",
    )
    assert (doc["capability_id"], doc["description"], doc["capability_group_name"]) == (
        "IA-05",
        "Authenticator Management",
        "Identification and Authentication",
    )
    (group,) = doc["mapping_types"]
    assert (group["mapping_type"], group["label"]) == ("mitigates", "Protects")
    ids = [r["attack"]["mapped_id"] for r in group["rows"]]
    assert "T1021.007" in ids
    assert ids == sorted(ids)


def test_capability_human(cli: Any, reader: Path) -> None:
    result = cli("capability", "IA-05", "--framework", "nist_800_53")
    assert result.exit_code == 0, result.stderr
    for text in ("IA-05", "Authenticator Management", "NIST 800-53 rev5", "Protects", "T1021.007"):
        assert text in result.stdout


def test_capability_without_framework_when_not_ambiguous(cli: Any, reader: Path) -> None:
    data = _ok(cli("capability", "IA-05", "--json"), "capability")
    assert [d["framework"] for d in data] == ["nist_800_53"]


def test_capability_without_framework_when_ambiguous(
    cli: Any, loaded_home: Path, tmp_path: Path
) -> None:
    """A second framework with a capability IA-05 (made-up file): --framework is needed."""
    other = write_mapping(
        tmp_path / "other.json", small_mapping(framework="example_fw", capability_id="IA-05")
    )
    assert cli("import", "mappings", str(other)).exit_code == 0
    result = cli("capability", "IA-05")
    assert result.exit_code == 2
    _one_error_line(result, "IA-05 exists in several frameworks: example_fw, nist_800_53")
    assert "--framework" in result.stderr
    chosen = _ok(cli("capability", "IA-05", "--framework", "example_fw", "--json"), "capability")
    assert [d["framework"] for d in chosen] == ["example_fw"]
    nist = _ok(cli("capability", "IA-05", "--framework", "nist", "--json"), "capability")
    assert [d["framework"] for d in nist] == ["nist_800_53"]


def test_unknown_capability_exits_2(cli: Any, reader: Path) -> None:
    result = cli("capability", "ZZ-99", "--framework", "nist")
    assert result.exit_code == 2
    _one_error_line(result, "no capability 'ZZ-99' in nist")


# --- frameworks, framework -----------------------------------------------------------------------


def test_frameworks_json(cli: Any, reader: Path) -> None:
    data = _ok(cli("frameworks", "--json"), "frameworks")
    assert sorted(f["framework"] for f in data) == FRAMEWORKS
    assert sum(len(f["sets"]) for f in data) == 33
    m365 = next(f for f in data if f["framework"] == "m365")
    assert m365["label"] == "Microsoft 365"
    newest = m365["sets"][0]
    assert (newest["framework_version"], newest["attack_version"]) == ("07/18/2025", "16.1")
    assert newest["rows_in_file"] == newest["rows_stored"] + newest["duplicate_rows"]
    assert newest["duplicate_rows"] > 0


def test_frameworks_human(cli: Any, reader: Path) -> None:
    result = cli("frameworks")
    assert result.exit_code == 0, result.stderr
    for text in ("NIST 800-53 (nist_800_53)", "Microsoft 365 (m365)", "rev4", "07/18/2025"):
        assert text in result.stdout


def test_framework_json(cli: Any, reader: Path) -> None:
    data = _ok(cli("framework", "m365", "--json"), "framework")
    assert (data["framework"], data["framework_version"], data["mapped_on"]) == (
        "m365",
        "07/18/2025",
        "16.1",
    )
    assert [g["id"] for g in data["capability_groups"]] == [
        "m365-defender",
        "entra-id",
        "eop",
        "purview",
    ]
    assert all(g["capabilities"] for g in data["capability_groups"])
    older = _ok(
        cli("framework", "m365", "--framework-version", "12/11/2023", "--json"), "framework"
    )
    assert older["mapped_on"] == "14.1"


def test_framework_human(cli: Any, reader: Path) -> None:
    result = cli("framework", "m365")
    assert result.exit_code == 0, result.stderr
    for text in ("Microsoft 365", "Microsoft Entra ID", "EID-PWLA-E3"):
        assert text in result.stdout


def test_framework_non_mappable_techniques(cli: Any, reader: Path) -> None:
    data = _ok(cli("framework", "nist", "--json"), "framework")
    assert "T1496.002" in [t["id"] for t in data["non_mappable_techniques"]]


@pytest.mark.parametrize(
    "args",
    [
        ("framework", "nope"),
        ("framework", "nope", "--json"),
        ("mappings", "T1021.007", "--framework", "nope"),
        ("capability", "IA-05", "--framework", "nope"),
    ],
    ids=["framework", "framework-json", "mappings", "capability"],
)
def test_unknown_framework_exits_2_and_lists_the_loaded_ones(
    cli: Any, reader: Path, args: tuple[str, ...]
) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    if "--json" in args:
        document = result.json()
        assert document["ok"] is False
        assert document["error"]["code"] == "not_found"
        assert document["error"]["hint"] == f"loaded: {', '.join(FRAMEWORKS)}"
    else:
        _one_error_line(
            result, "no mappings for framework 'nope'", f"loaded: {', '.join(FRAMEWORKS)}"
        )


# --- the technique page --------------------------------------------------------------------------


def test_technique_page_shows_what_counters_it(cli: Any, reader: Path) -> None:
    result = cli("technique", "T1021.007")
    assert result.exit_code == 0, result.stderr
    assert "What counters it" in result.stdout
    counters = result.stdout[result.stdout.index("What counters it") :]
    assert "IA-05" in counters
    assert "NIST 800-53 rev5" in counters


def test_commands_without_mappings_loaded(cli: Any, home: Path, tmp_path: Path) -> None:
    """ATT&CK but no mappings: the queries say how to load them (exit 1, one line); the
    technique page says there are none."""
    bundle = write_bundle(tmp_path / "enterprise-attack-99.1.json", small_bundle())
    assert cli("import", "attack", str(bundle)).exit_code == 0
    for args in (("frameworks",), ("mappings", "T1021.001"), ("capability", "IA-05")):
        result = cli(*args)
        assert result.exit_code == 1, args
        _one_error_line(result, "no mappings are loaded", "defensemap import mappings")
    page = cli("technique", "T1021.001")
    assert page.exit_code == 0, page.stderr
    assert "No mappings loaded for this technique." in page.stdout


def test_mappings_without_attack_loaded_are_unchecked(cli: Any, home: Path, tmp_path: Path) -> None:
    """Mappings but no ATT&CK release: rows are shown on the id written in the file."""
    other = write_mapping(tmp_path / "other.json", small_mapping())
    assert cli("import", "mappings", str(other)).exit_code == 0
    data = _ok(cli("frameworks", "--json"), "frameworks")
    assert [f["framework"] for f in data] == ["example_fw"]
    (block,) = _ok(cli("mappings", "T1021.007", "--json"), "mappings")["frameworks"]
    assert [r["capability_id"] for r in block["rows"]] == ["EX-01"]
    assert block["rows"][0]["occurrences"] == 2
    assert block["rows"][0]["attack"]["status"] == "unchecked"
