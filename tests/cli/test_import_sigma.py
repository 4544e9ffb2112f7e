"""`import sigma` as a user runs it: what loads, what is skipped and why (file and line), the
--strict abort, one transaction, and a re-import that replaces the set."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tests.sigma_layout import AWS_ID, CLOUD_LOGIN_ID, VSSADMIN, VSSADMIN_ID, write_layout

BROKEN_YAML = "title: broken\nid: 1\ndetection:\n  sel: [a\n  condition: sel\n"


def _community_ids(cli) -> set[str]:
    result = cli("detections", "--source", "community", "--json")
    assert result.exit_code == 0, result.stderr
    return {d["id"] for d in result.json()["data"]["detections"]}


def test_imports_every_rule_with_its_source_and_reports_per_logsource(
    cli, home: Path, tmp_path: Path
) -> None:
    root = write_layout(tmp_path / "sigma")
    result = cli("import", "sigma", str(root), "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()["data"]
    assert (data["found"], data["loaded"], data["skipped"]) == (3, 3, [])
    assert data["licence"] == "DRL-1.1"
    assert data["by_logsource"] == {"windows/process_creation": 2, "aws/cloudtrail": 1}
    assert _community_ids(cli) == {VSSADMIN_ID, CLOUD_LOGIN_ID, AWS_ID}
    shown = cli("detection", VSSADMIN_ID, "--json").json()["data"]
    assert shown["yaml"] == VSSADMIN  # the rule's text exactly as written
    assert shown["path"] == "rules/windows/process_creation/proc_creation_win_test_vssadmin.yml"
    assert shown["attribution"]["source_url"] == (
        "https://github.com/SigmaHQ/sigma/blob/master/" + shown["path"]
    )
    assert shown["attribution"]["author"] == "Test Author One"
    human = cli("import", "sigma", str(root))
    assert "imported 3 community Sigma rule(s) from 3 file(s) (0 skipped), replacing 3" in (
        human.stdout
    )
    assert "windows/process_creation" in human.stdout


def test_bad_files_are_skipped_and_named_with_their_line(cli, home: Path, tmp_path: Path) -> None:
    root = write_layout(
        tmp_path / "sigma",
        {
            "rules/windows/good.yml": VSSADMIN,
            "rules/windows/broken.yml": BROKEN_YAML,
            "rules/windows/not_sigma.yml": "name: a list of things\nitems: [1, 2]\n",
            "rules/windows/bad_level.yml": VSSADMIN.replace(VSSADMIN_ID, "x-1").replace(
                "level: high", "level: severe"
            ),
            "rules/windows/same_id.yml": VSSADMIN,
        },
    )
    result = cli("import", "sigma", str(root))
    assert result.exit_code == 0, result.stderr
    assert "imported 1 community Sigma rule(s) from 5 file(s) (4 skipped)" in result.stdout
    skipped = {
        line.split(": ", 2)[1].rsplit("/", 1)[-1]: line
        for line in result.stderr.splitlines()
        if line.startswith("skipped: ")
    }
    assert set(skipped) == {"broken.yml:5:12", "not_sigma.yml", "bad_level.yml", "same_id.yml"}
    assert "not valid YAML" in skipped["broken.yml:5:12"]
    assert "not a Sigma rule" in skipped["not_sigma.yml"]
    assert "pySigma rejects it" in skipped["bad_level.yml"]
    assert "good.yml" in skipped["same_id.yml"]
    assert _community_ids(cli) == {VSSADMIN_ID}


def test_strict_aborts_and_leaves_the_store_as_it_was(cli, home: Path, tmp_path: Path) -> None:
    assert cli("import", "sigma", str(write_layout(tmp_path / "first"))).exit_code == 0
    second = write_layout(
        tmp_path / "second", {"rules/a.yml": VSSADMIN, "rules/b/broken.yml": BROKEN_YAML}
    )
    result = cli("import", "sigma", str(second), "--strict")
    assert result.exit_code == 2
    assert "broken.yml:5:12: not valid YAML" in result.stderr
    assert "nothing was imported" in result.stderr
    assert _community_ids(cli) == {VSSADMIN_ID, CLOUD_LOGIN_ID, AWS_ID}


def test_a_failed_write_rolls_back_everything(
    cli, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("import", "sigma", str(write_layout(tmp_path / "first"))).exit_code == 0

    def fail(*_args: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr("defensemap.store.sigma._insert_import", fail)
    second = write_layout(tmp_path / "second", {"rules/only.yml": VSSADMIN})
    result = cli("import", "sigma", str(second))
    assert result.exit_code == 1
    assert "rolled back" in result.stderr
    assert _community_ids(cli) == {VSSADMIN_ID, CLOUD_LOGIN_ID, AWS_ID}
    found = cli("search", "Azure CLI login", "--kind", "sigma-rule", "--json").json()["data"]
    assert [r["id"] for r in found["results"]] == [CLOUD_LOGIN_ID]


def test_reimport_replaces_the_set_and_its_search_entries(
    cli, loaded_home: Path, tmp_path: Path
) -> None:
    assert cli("import", "sigma", str(write_layout(tmp_path / "first"))).exit_code == 0
    hit = cli("search", CLOUD_LOGIN_ID, "--json").json()["data"]["results"]
    assert [(r["id"], r["kind"], r["match"]) for r in hit] == [(CLOUD_LOGIN_ID, "sigma-rule", "id")]
    second = write_layout(tmp_path / "second", {"rules/windows/only.yml": VSSADMIN})
    result = cli("import", "sigma", str(second), "--json")
    assert result.json()["data"]["replaced"] == 3
    assert _community_ids(cli) == {VSSADMIN_ID}
    gone = cli("search", "Azure CLI login", "--kind", "sigma-rule", "--json").json()["data"]
    assert gone["results"] == []


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no usable Sigma rule in 0 file(s)"),
        ({"rules/x.yml": BROKEN_YAML}, "first problem:"),
        ({"elsewhere/x.yml": VSSADMIN}, "not inside a SigmaHQ rules folder"),
    ],
)
def test_nothing_usable_is_an_error(
    cli, home: Path, tmp_path: Path, files: dict[str, str], message: str
) -> None:
    root = write_layout(tmp_path / "sigma", files)
    root.mkdir(exist_ok=True)
    result = cli("import", "sigma", str(root))
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (home / "defensemap.sqlite").exists()


def test_a_missing_path_names_it(cli, home: Path, tmp_path: Path) -> None:
    result = cli("import", "sigma", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert f"{tmp_path / 'nope'}: no such file or folder" in result.stderr
