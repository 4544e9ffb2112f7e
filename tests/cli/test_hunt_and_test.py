"""`hunt` and `test` as a user runs them: real EVTX with a real SigmaHQ rule, generated
telemetry with injected attacks, detections proven by their own events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import SHARED_DATA, require_shared_data

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "detections"
BITSADMIN = "proc_creation_win_bitsadmin_download_file_sharing_domains"


def _alerts(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_real_evtx_with_its_sigmahq_rule(cli, home: Path) -> None:
    require_shared_data()
    rule = SHARED_DATA / "sigma" / "rules" / "windows" / "process_creation" / f"{BITSADMIN}.yml"
    evtx = next((SHARED_DATA / "evtx" / BITSADMIN).glob("*.evtx"))
    result = cli("hunt", "--rules", str(rule), "--logs", str(evtx), "--format", "json")
    assert result.exit_code == 0, result.stderr
    (alert,) = _alerts(result.stdout)
    assert alert["rule_id"] == "8518ed3d-f7c9-4601-a26c-f361a4256a0c"
    assert alert["language"] == "sigma" and alert["severity"] == "high"
    assert "T1197" in alert["techniques"]
    assert alert["source"].endswith(".evtx:1")
    assert alert["event"]["Image"].lower().endswith("bitsadmin.exe")


@pytest.fixture
def telemetry(tmp_path: Path) -> tuple[Path, list[dict]]:
    from defensemap.generate.telemetry import generate

    out = generate("DeviceProcessEvents", 3000, tmp_path / "dpe.parquet", seed=11)
    return out.path, out.attacks


def test_detection_finds_the_injected_attack(cli, home: Path, telemetry) -> None:
    path, attacks = telemetry
    result = cli("hunt", "--rules", str(FIXTURES), "--logs", str(path), "--format", "json")
    assert result.exit_code == 0, result.stderr
    alerts = _alerts(result.stdout)
    t1021 = [a for a in attacks if a["technique"] == "T1021.007"]
    sigma = [a for a in alerts if a["language"] == "sigma"]
    assert [int(a["source"].rsplit(":", 1)[1]) for a in sigma] == [t["record"] for t in t1021]
    assert len([a for a in alerts if a["language"] == "kql"]) == len(t1021)
    assert "Cloud CLI interactive login" in result.stderr  # the per-rule summary


def test_adhoc_kql_csv_and_output_file(cli, home: Path, telemetry, tmp_path: Path) -> None:
    path, attacks = telemetry
    out = tmp_path / "alerts.csv"
    query = 'DeviceProcessEvents | where ProcessCommandLine has "vssadmin"'
    result = cli("hunt", "--kql", query, "--logs", str(path), "--format", "csv", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    lines = out.read_text().splitlines()
    assert lines[0].startswith("rule_id,rule_title")
    assert len(lines) - 1 == sum(a["technique"] == "T1490" for a in attacks)


def test_logs_database_then_hunt(cli, home: Path, telemetry) -> None:
    path, _ = telemetry
    ingested = cli("logs", "ingest", str(path), "--json")
    assert ingested.exit_code == 0, ingested.stderr
    assert ingested.json()["data"]["files"][0]["table"] == "DeviceProcessEvents"
    result = cli("hunt", "--kql", "DeviceProcessEvents | count", "--format", "json")
    assert _alerts(result.stdout)[0]["event"]["Count"] == 3004


@pytest.mark.parametrize(
    "query",
    [
        'externaldata(a: string) ["https://example.org/x"]',
        "DeviceProcessEvents | make-series n = count() on Timestamp step 1h",
    ],
)
def test_refused_kql_is_bad_input(cli, home: Path, telemetry, query: str) -> None:
    path, _ = telemetry
    result = cli("hunt", "--kql", query, "--logs", str(path))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error:")


def test_hunt_needs_logs_and_rules(cli, home: Path) -> None:
    assert cli("hunt", "--kql", "X | take 1").exit_code == 2
    assert cli("hunt").exit_code == 2


def test_test_command_passes_and_writes_junit(cli, home: Path, tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    result = cli("test", str(FIXTURES), "--junit", str(junit), "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    (detection,) = result.json()["data"]
    assert detection["ok"] and detection["kql"] and detection["sigma"]
    assert 'failures="0"' in junit.read_text()


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    text = (FIXTURES / "cloud_cli_login.yml").read_text().replace(old, new)
    path = tmp_path / "variant" / "d.yml"
    path.parent.mkdir()
    path.write_text(text)
    return path


def test_a_missed_positive_fails(cli, home: Path, tmp_path: Path) -> None:
    path = _variant(tmp_path, '"az.cmd", "az.exe"', '"az.exe"')
    result = cli("test", str(path))
    assert result.exit_code == 1
    assert "expected 1 alert(s), got 0" in result.stdout


def test_kql_and_sigma_disagreeing_fails(cli, home: Path, tmp_path: Path) -> None:
    path = _variant(
        tmp_path,
        "      CommandLine|contains: [' login', ' sso login', ' auth login']",
        "      CommandLine|contains: [' login', ' sso login', ' auth login', ' account']",
    )
    result = cli("test", str(path), "--json")
    assert result.exit_code == 1
    (detection,) = result.json()["data"]
    assert any("az without a login" in d for d in detection["disagreements"])
