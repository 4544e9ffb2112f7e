"""`defensemap convert` and `defensemap export detections` as a user runs them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.conftest import REPO, require_shared_data

FIXTURE = REPO / "tests" / "fixtures" / "detections" / "cloud_cli_login.yml"
FIXTURE_ID = "5b0f8a8e-3c1e-4d5e-9a6f-2f4b7c9d1e01"


@pytest.fixture
def content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A library holding the fixture detection, selected through $DEFENSEMAP_CONTENT."""
    root = tmp_path / "content"
    (root / "detections").mkdir(parents=True)
    shutil.copy(FIXTURE, root / "detections" / "cloud_cli_login.yml")
    monkeypatch.setenv("DEFENSEMAP_CONTENT", str(root))
    return root


def test_convert_library_id_prints_header_and_query(cli, content: Path) -> None:
    result = cli("convert", FIXTURE_ID, "--to", "kusto")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "// kusto: Microsoft Sentinel / Defender XDR KQL"
    assert lines[1] == "// backend: kusto · pipelines: microsoft_xdr · status: exact"
    assert lines[2] == "DeviceProcessEvents"
    assert 'FolderPath endswith "\\\\az.cmd"' in result.stdout


def test_convert_all_json(cli, content: Path) -> None:
    result = cli("convert", FIXTURE_ID, "--to", "all", "--json")
    assert result.exit_code == 0
    document = result.json()
    assert document["kind"] == "convert"
    assert document["data"]["source"]["id"] == FIXTURE_ID
    conversions = document["data"]["conversions"]
    assert [c["target"] for c in conversions] == [
        "splunk",
        "elastic-esql",
        "elastic-lucene",
        "logscale",
        "secops",
        "qradar",
        "kusto",
    ]
    statuses = {c["target"]: (c["status"], len(c["notes"])) for c in conversions}
    assert statuses.pop("elastic-lucene") == ("approximate", 1)  # letter case, see test_convert
    assert set(statuses.values()) == {("exact", 0)}
    assert all(c["query"] and c["pipelines"] for c in conversions)


def test_convert_refused_exits_non_zero_with_one_line(cli, tmp_path: Path) -> None:
    rule = tmp_path / "placeholder.yml"
    rule.write_text(
        "title: t\nlogsource: {category: process_creation, product: windows}\n"
        "detection:\n  sel: {User|expand: '%admins%'}\n  condition: sel\n",
        encoding="utf-8",
    )
    result = cli("convert", str(rule), "--to", "splunk")
    assert result.exit_code == 1
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1
    assert error_lines[0].startswith("error: splunk: conversion refused: unresolved placeholders")
    assert "Traceback" not in result.stderr


def test_convert_unknown_target_and_id(cli, content: Path) -> None:
    assert cli("convert", FIXTURE_ID, "--to", "sql").exit_code == 2
    missing = cli("convert", "00000000-0000-0000-0000-000000000000", "--to", "splunk")
    assert missing.exit_code == 2 and "no detection" in missing.stderr


def test_convert_sigmahq_file_names_its_author(cli) -> None:
    rule = (
        require_shared_data()
        / "sigma/rules/cloud/azure/signin_logs/azure_ad_sign_ins_from_unknown_devices.yml"
    )
    result = cli("convert", str(rule), "--to", "kusto")
    assert result.exit_code == 0
    assert "// Sigma rule by Michael Epping" in result.stdout
    assert "pipelines: defensemap_sentinel_table(SigninLogs) · status: exact" in result.stdout


def test_export_detections_writes_files_and_lists_skips(
    cli, content: Path, loaded_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = cli("export", "detections", "--format", "defender-custom", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert "0 detection(s) exported, 1 skipped" in result.stdout
    assert f"skipped {FIXTURE_ID}" in result.stderr and "impacted asset" in result.stderr
    assert not list(out.iterdir())
    result = cli("export", "detections", "--format", "sentinel-yaml", "-o", str(out))
    assert result.exit_code == 0
    assert (out / "cloud_cli_login.yaml").exists()


def test_export_detections_technique_filter(cli, content: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli(
        "export", "detections", "--format", "sigma", "-o", str(out), "--technique", "T1021"
    )
    assert result.exit_code == 0 and (out / "cloud_cli_login.yml").exists()
    none = cli("export", "detections", "--format", "sigma", "-o", str(out), "--technique", "T1003")
    assert none.exit_code == 2 and "no detections to export for T1003" in none.stderr


def test_export_needing_attack_without_store_says_how_to_load(
    cli, content: Path, home: Path, tmp_path: Path
) -> None:
    result = cli("export", "detections", "--format", "sentinel-arm", "-o", str(tmp_path / "o"))
    assert result.exit_code == 1
    assert "needs ATT&CK tactics and technique names" in result.stderr
    assert "defensemap import attack" in result.stderr


def test_json_output_doc_lists_convert() -> None:
    doc = (REPO / "docs" / "json-output.md").read_text(encoding="utf-8")
    assert "`convert`" in doc


@pytest.mark.realdata
@pytest.mark.parametrize(
    "rule",
    [
        "rules/cloud/azure/signin_logs/azure_ad_sign_ins_from_unknown_devices.yml",
        "rules/cloud/aws/cloudtrail/aws_cloudtrail_disable_logging.yml",
        "rules/windows/process_creation/proc_creation_win_certutil_download.yml",
    ],
)
def test_kusto_conversions_run_on_the_typed_tables(cli, tmp_path: Path, rule: str) -> None:
    path = require_shared_data() / "sigma" / rule
    converted = cli("convert", str(path), "--to", "kusto", "--json")
    query = converted.json()["data"]["conversions"][0]["query"]  # type: ignore[index]
    (tmp_path / "q.kql").write_text(query, encoding="utf-8")
    checked = cli("kql", "check", str(tmp_path / "q.kql"))
    assert checked.exit_code == 0, checked.stdout + checked.stderr


def test_convert_community_rule_carries_its_attribution(cli, home: Path, content: Path) -> None:
    from tests.conftest import SHARED_DATA

    require_shared_data()
    rule = (
        SHARED_DATA
        / "sigma"
        / "rules"
        / "windows"
        / "process_creation"
        / "proc_creation_win_bitsadmin_download_file_sharing_domains.yml"
    )
    assert cli("import", "sigma", str(rule)).exit_code == 0
    result = cli("convert", "8518ed3d-f7c9-4601-a26c-f361a4256a0c", "--to", "splunk")
    assert result.exit_code == 0, result.stderr
    header = result.stdout.splitlines()[2]
    assert "Florian Roth" in header and "Detection Rule License 1.1" in header
    assert header.endswith(
        "rules/windows/process_creation/proc_creation_win_bitsadmin_download_file_sharing_domains.yml"
    )
    unknown = cli("convert", "00000000-0000-4000-8000-000000000000", "--to", "splunk")
    assert unknown.exit_code == 2 and "no detection or community rule" in unknown.stderr
