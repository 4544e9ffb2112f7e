"""`navigator import` and `navigator merge` on small layers: what a layer means as a threat
profile (the same list `coverage --layer` resolves) or as claimed coverage, and the merge
arithmetic computed by hand (a technique missing from a layer is absent, not 0)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.navigator_layer import schema_errors

from defensemap.export.navigator import validate_layer


def layer_doc(name: str, techniques: list[dict[str, Any]], **header: Any) -> dict[str, Any]:
    document = {
        "name": name,
        "versions": {"attack": "18", "navigator": "5.1.0", "layer": "4.5"},
        "domain": "enterprise-attack",
        "techniques": techniques,
    }
    document.update(header)
    return document


def write(tmp_path: Path, filename: str, document: dict[str, Any]) -> Path:
    path = tmp_path / filename
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


A = [
    {"techniqueID": "T1059", "tactic": "execution", "score": 3, "comment": "from A"},
    {"techniqueID": "T1078.004", "score": 1, "enabled": False},
    {"techniqueID": "T1021.007", "score": 2, "metadata": [{"name": "src", "value": "A"}]},
]
B = [
    {"techniqueID": "T1059", "tactic": "execution", "score": 4, "comment": "from B"},
    {"techniqueID": "T1059", "tactic": "defense-evasion", "score": 10},
    {"techniqueID": "T1078.004", "score": 5},
    {"techniqueID": "T1021.007"},  # listed but unscored: absent from the arithmetic
]
C = [{"techniqueID": "T1059", "tactic": "execution", "score": 8, "comment": "from A"}]


@pytest.fixture
def layers(tmp_path: Path) -> list[Path]:
    return [
        write(tmp_path, "a.json", layer_doc("A", A)),
        write(tmp_path, "b.json", layer_doc("B", B, versions={"layer": "4.4", "attack": "18"})),
        write(tmp_path, "c.json", layer_doc("C", C)),
    ]


def merge(cli, tmp_path: Path, files: list[Path], *options: str) -> dict[tuple[str, str], Any]:  # type: ignore[no-untyped-def]
    out = tmp_path / "out" / "merged.json"
    result = cli("navigator", "merge", *map(str, files), "-o", str(out), *options)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out}:")
    document = json.loads(out.read_bytes())
    assert validate_layer(document) == [] and schema_errors(document) == []
    return {(t["techniqueID"], t.get("tactic", "")): t for t in document["techniques"]}


def scores(merged: dict[tuple[str, str], Any]) -> dict[tuple[str, str], Any]:
    return {key: entry.get("score") for key, entry in merged.items()}


# hand-computed: T1059/execution scored 3, 4, 8; T1059/defense-evasion 10 (B only);
# T1078.004 scored 1 (A), 5 (B); T1021.007 scored 2 (A), unscored in B, missing in C
EXPECTED = {
    "sum": {"T1059/execution": 15, "T1059/defense-evasion": 10, "T1078.004": 6, "T1021.007": 2},
    "max": {"T1059/execution": 8, "T1059/defense-evasion": 10, "T1078.004": 5, "T1021.007": 2},
    "min": {"T1059/execution": 3, "T1059/defense-evasion": 10, "T1078.004": 1, "T1021.007": 2},
    "mean": {"T1059/execution": 5, "T1059/defense-evasion": 10, "T1078.004": 3, "T1021.007": 2},
}


@pytest.mark.parametrize("op", EXPECTED)
def test_merge_arithmetic(cli, home: Path, tmp_path: Path, layers: list[Path], op: str) -> None:
    merged = merge(cli, tmp_path, layers, "--op", op)
    expected = {
        (key.split("/")[0], key.split("/")[1] if "/" in key else ""): value
        for key, value in EXPECTED[op].items()
    }
    assert scores(merged) == expected


def test_merge_mean_of_two(cli, home: Path, tmp_path: Path, layers: list[Path]) -> None:
    merged = merge(cli, tmp_path, layers[:2], "--op", "mean")
    assert merged[("T1059", "execution")]["score"] == 3.5


def test_merge_joins_comments_enabled_and_metadata(
    cli, home: Path, tmp_path: Path, layers: list[Path]
) -> None:
    merged = merge(cli, tmp_path, layers, "--name", "Merged <x>")
    execution = merged[("T1059", "execution")]
    assert execution["comment"] == "from A\nfrom B"  # C repeats A's comment: once
    assert merged[("T1078.004", "")]["enabled"] is True  # disabled in A, enabled in B
    assert merged[("T1021.007", "")]["metadata"] == [{"name": "src", "value": "A"}]
    document = json.loads((tmp_path / "out" / "merged.json").read_bytes())
    assert document["name"] == "Merged <x>"
    assert document["versions"]["attack"] == "18"
    assert document["gradient"]["maxValue"] == 10  # the highest merged score (max)


def test_merge_json(cli, home: Path, tmp_path: Path, layers: list[Path]) -> None:
    out = tmp_path / "m.json"
    result = cli("navigator", "merge", *map(str, layers), "-o", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["kind"] == "navigator-merge"
    data = doc["data"]
    assert (data["op"], data["entries"], data["scored"], data["domain"]) == (
        "max",
        4,
        4,
        "enterprise-attack",
    )
    assert [x["entries"] for x in data["layers"]] == [3, 4, 1]


def test_merge_refuses_mixed_domains(cli, home: Path, tmp_path: Path, layers: list[Path]) -> None:
    mobile = write(tmp_path, "mobile.json", layer_doc("M", C, domain="mobile-attack"))
    out = tmp_path / "never.json"
    result = cli("navigator", "merge", str(layers[0]), str(mobile), "-o", str(out))
    assert result.exit_code == 2
    assert "differ in domain" in result.stderr
    assert f"enterprise-attack: {layers[0]}" in result.stderr.replace("\n", "")
    assert f"mobile-attack: {mobile}" in result.stderr.replace("\n", "")
    assert not out.exists()


def test_merge_refuses_mixed_attack_versions(
    cli, home: Path, tmp_path: Path, layers: list[Path]
) -> None:
    old = write(tmp_path, "old.json", layer_doc("O", C, versions={"layer": "4.5", "attack": "16"}))
    result = cli("navigator", "merge", str(layers[0]), str(old), "-o", str(tmp_path / "x.json"))
    assert result.exit_code == 2
    assert "differ in ATT&CK version (16:" in result.stderr.replace("\n", "")


def test_merge_needs_two_layers_and_a_known_op(
    cli, home: Path, tmp_path: Path, layers: list[Path]
) -> None:
    out = str(tmp_path / "x.json")
    one = cli("navigator", "merge", str(layers[0]), "-o", out)
    assert one.exit_code == 2 and "two or more layers" in one.stderr
    bad = cli("navigator", "merge", *map(str, layers), "-o", out, "--op", "product")
    assert bad.exit_code == 2 and "unknown merge operation 'product'" in bad.stderr


def test_merge_names_the_malformed_layer(
    cli, home: Path, tmp_path: Path, layers: list[Path]
) -> None:
    bad = write(tmp_path, "bad.json", layer_doc("X", [{"techniqueID": "T1059", "score": "9"}]))
    result = cli("navigator", "merge", str(layers[0]), str(bad), "-o", str(tmp_path / "x.json"))
    assert result.exit_code == 2
    assert f"{bad}#/techniques/0/score: not a valid Navigator layer" in result.stderr.replace(
        "\n", ""
    )


# --- navigator import ------------------------------------------------------------------------


@pytest.mark.realdata
def test_import_as_profile(cli, loaded_home: Path, tmp_path: Path) -> None:
    techniques = [
        {"techniqueID": "T1059.001", "score": 2, "comment": "loader"},
        {"techniqueID": "T1021.007", "score": 1},
        {"techniqueID": "T1078.004", "score": 3, "enabled": False},
        {"techniqueID": "T1003", "score": 0},
        {"techniqueID": "T1086", "score": 1},  # revoked: resolves to T1059.001
    ]
    path = write(tmp_path, "apt.json", layer_doc("APT", techniques))
    result = cli("navigator", "import", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert doc["kind"] == "navigator-import"
    data = doc["data"]
    assert (data["name"], data["as"], data["release"]) == (
        "APT",
        "profile",
        "enterprise-attack 18.1",
    )
    assert data["selected"] == ["T1021.007", "T1059.001"]
    by_id = {t["technique_id"]: t for t in data["techniques"]}
    assert by_id["T1059.001"]["name"] == "PowerShell"
    assert by_id["T1086"]["status"] == "revoked"
    assert by_id["T1078.004"]["enabled"] is False
    assert data["notes"] == ["not current techniques of enterprise-attack 18.1: T1086"]
    text = cli("navigator", "import", str(path))
    assert text.exit_code == 0, text.stderr
    assert (
        "threat profile (as coverage --layer reads it): 2 technique(s): T1021.007, T1059.001"
        in (text.stdout)
    )
    assert f"use it: defensemap coverage --layer {path}" in text.stdout


@pytest.mark.realdata
def test_import_as_controls(cli, loaded_home: Path, tmp_path: Path) -> None:
    techniques = [
        {"techniqueID": "T1059.001", "score": 40},
        {"techniqueID": "T1021.007", "score": 80},
        {"techniqueID": "T1078.004"},
        {"techniqueID": "T1003", "score": 0},
    ]
    gradient = {"colors": ["#ff6666", "#8ec843"], "minValue": 0, "maxValue": 160}
    path = write(tmp_path, "cov.json", layer_doc("Cov", techniques, gradient=gradient))
    result = cli("navigator", "import", str(path), "--as", "controls", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()["data"]
    assert data["selected"] == ["T1021.007", "T1059.001"]
    percent = {t["technique_id"]: t["percent"] for t in data["techniques"]}
    assert percent == {"T1059.001": 25.0, "T1021.007": 50.0, "T1078.004": None, "T1003": 0.0}


@pytest.mark.realdata
def test_import_of_a_mobile_layer_says_why_it_is_no_profile(
    cli, loaded_home: Path, tmp_path: Path
) -> None:
    path = write(
        tmp_path, "m.json", layer_doc("M", [{"techniqueID": "T1404"}], domain="mobile-attack")
    )
    result = cli("navigator", "import", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()["data"]
    assert data["release"] == "mobile-attack 18.1"
    assert data["techniques"][0]["status"] == "current"
    assert data["selected"] == []
    assert "coverage --layer would refuse this layer" in data["notes"][0]


def test_import_rejects_unknown_use_and_malformed_layers(cli, home: Path, tmp_path: Path) -> None:
    good = write(tmp_path, "a.json", layer_doc("A", A))
    assert cli("navigator", "import", str(good), "--as", "detections").exit_code == 2
    bad = write(tmp_path, "bad.json", layer_doc("A", A, domain="enterprise"))
    result = cli("navigator", "import", str(bad), "--json")
    assert result.exit_code == 2
    error = result.json()["error"]
    assert (error["code"], error["location"]["path"], error["location"]["pointer"]) == (
        "schema_error",
        str(bad),
        "/domain",
    )
