"""`detections`, `detection ID`, the technique page's "How to detect it" and `hunt --community`
as a user sees them, on the fixture library and a small SigmaHQ-layout rule folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.sigma_layout import AWS_ID, CLOUD_LOGIN_ID, VSSADMIN_ID, write_layout

from defensemap.library.convert import TARGETS
from defensemap.model.detection import Detection

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "detections"
FIXTURE_ID = "5b0f8a8e-3c1e-4d5e-9a6f-2f4b7c9d1e01"
DRL = "Detection Rule License 1.1"


@pytest.fixture
def content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A detection library holding copies of the fixture detections."""
    folder = tmp_path / "content" / "detections"
    folder.mkdir(parents=True)
    for path in FIXTURES.glob("*.yml"):
        shutil.copy(path, folder / path.name)
    monkeypatch.setenv("DEFENSEMAP_CONTENT", str(folder.parent))
    return folder


@pytest.fixture
def community(cli, tmp_path: Path) -> Path:
    """The three test rules imported as community rules (into the current data home)."""
    root = write_layout(tmp_path / "sigma")
    result = cli("import", "sigma", str(root))
    assert result.exit_code == 0, result.stderr
    return root


def _ids(result) -> list[str]:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.stderr
    return [d["id"] for d in result.json()["data"]["detections"]]


def test_detections_lists_the_library(cli, home: Path, content: Path) -> None:
    result = cli("detections", "--json")
    assert result.exit_code == 0, result.stderr
    document = result.json()
    assert document["kind"] == "detections"
    (item,) = document["data"]["detections"]
    assert item == {
        "id": FIXTURE_ID,
        "title": "Cloud CLI interactive login started on a Windows endpoint",
        "techniques": ["T1021.007"],
        "severity": "medium",
        "confidence": None,
        "platforms": ["Windows"],
        "tables": ["DeviceProcessEvents"],
        "logsource": None,
        "status": "test",
        "source": "defensemap",
        "attribution": None,
    }
    human = cli("detections")
    assert "Cloud CLI interactive login" in human.stdout
    assert "DeviceProcessEvents" in human.stdout and "1 detection(s)" in human.stdout


@pytest.mark.parametrize(
    ("options", "listed"),
    [
        (["--technique", "T1021"], True),  # a parent selects its sub-techniques
        (["--technique", "T1021.007"], True),
        (["--technique", "T1059"], False),
        (["--severity", "medium+"], True),
        (["--severity", "high+"], False),
        (["--platform", "windows"], True),
        (["--platform", "linux"], False),
    ],
)
def test_detections_filters(
    cli, home: Path, content: Path, options: list[str], listed: bool
) -> None:
    assert _ids(cli("detections", *options, "--json")) == ([FIXTURE_ID] if listed else [])


def test_detections_refuses_unknown_options_values(cli, home: Path, content: Path) -> None:
    bad_severity = cli("detections", "--severity", "severe")
    assert bad_severity.exit_code == 2 and "unknown severity 'severe'" in bad_severity.stderr
    bad_source = cli("detections", "--source", "theirs")
    assert bad_source.exit_code == 2 and "unknown source 'theirs'" in bad_source.stderr


def test_a_missing_library_is_said_not_fatal(
    cli, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEFENSEMAP_CONTENT", str(tmp_path / "nowhere"))
    data = cli("detections", "--json").json()["data"]
    assert data["detections"] == []
    assert data["notes"] == [f"no detection library at {tmp_path / 'nowhere' / 'detections'}"]


def test_community_rules_join_the_list_when_asked_for(
    cli, home: Path, content: Path, community: Path
) -> None:
    assert _ids(cli("detections", "--json")) == [FIXTURE_ID]
    everything = _ids(cli("detections", "--source", "all", "--json"))
    # ours first, then community rules most severe first
    assert everything == [FIXTURE_ID, VSSADMIN_ID, CLOUD_LOGIN_ID, AWS_ID]
    cloud = cli("detections", "--source", "community", "--technique", "T1021.007", "--json")
    assert _ids(cloud) == [CLOUD_LOGIN_ID, AWS_ID]
    aws = cli("detections", "--source", "community", "--platform", "aws", "--json")
    (rule,) = aws.json()["data"]["detections"]
    assert rule["source"] == "sigmahq" and rule["logsource"] == "aws/cloudtrail"
    assert rule["attribution"]["author"] == "Test Author Three"
    assert rule["attribution"]["licence"] == "DRL-1.1"
    human = cli("detections", "--source", "all")
    assert "Test Author Two" in human.stdout
    assert DRL in human.stderr


def test_detection_shows_every_field(cli, home: Path, content: Path) -> None:
    result = cli("detection", FIXTURE_ID, "--json")
    assert result.exit_code == 0, result.stderr
    document = result.json()
    assert document["kind"] == "detection"
    data = document["data"]
    assert set(Detection.model_fields) <= set(data)
    assert data["source"] == "defensemap" and data["path"].endswith("cloud_cli_login.yml")
    # no store here: the technique is named but cannot be resolved
    assert data["technique_refs"] == [
        {"id": "T1021.007", "name": None, "tactics": [], "status": "unchecked", "current_id": None}
    ]
    support = data["support_matrix"]
    assert len({row["target"] for row in support}) == len(support) >= 7
    assert {row["target"]: row["status"] for row in support} == {
        t: "approximate" if t == "elastic-lucene" else "exact" for t in TARGETS
    }  # Lucene compares the command line's letters as written
    assert {row["detection_id"] for row in support} == {FIXTURE_ID}
    human = cli("detection", FIXTURE_ID).stdout
    for needle in (
        "Conversions (support matrix)",
        "Cloud CLI interactive login started on a Windows endpoint",
        "KQL — Microsoft Sentinel",
        'where FileName in~ ("az.cmd"',
        "Sigma (scope: exact)",
        "Image|endswith",
        "Test cases (1 positive, 1 negative)",
        "positive: az login with device code — DeviceProcessEvents, 2 event(s), expects 1",
        "negative: az without a login",
    ):
        assert needle in human, needle


def test_detection_resolves_techniques_and_tactics_in_the_store(
    cli, loaded_home: Path, content: Path
) -> None:
    data = cli("detection", FIXTURE_ID, "--json").json()["data"]
    (ref,) = data["technique_refs"]
    assert (ref["name"], ref["status"]) == ("Cloud Services", "current")
    assert data["tactics"] == [
        {"id": "TA0008", "shortname": "lateral-movement", "name": "Lateral Movement"}
    ]
    assert "T1021.007 Cloud Services (Lateral Movement)" in cli("detection", FIXTURE_ID).stdout


def test_community_rule_is_shown_with_its_attribution(
    cli, home: Path, content: Path, community: Path
) -> None:
    url = (
        "https://github.com/SigmaHQ/sigma/blob/master/"
        "rules/windows/process_creation/proc_creation_win_test_azure_cli.yml"
    )
    document = cli("detection", CLOUD_LOGIN_ID, "--json").json()
    assert document["kind"] == "community-rule"
    attribution = document["data"]["attribution"]
    assert attribution["author"] == "Test Author Two"
    assert attribution["source_url"] == url
    assert attribution["text"] == (
        f"“Azure CLI login on an endpoint (test rule)” by Test Author Two (SigmaHQ), {DRL}"
        f" (DRL-1.1): {url}"
    )
    human = cli("detection", CLOUD_LOGIN_ID).stdout
    for needle in ("Test Author Two", url, "DRL-1.1", "Attribution:", "azure.cli"):
        assert needle in human, needle


def test_unknown_detection_id(cli, home: Path, content: Path, community: Path) -> None:
    result = cli("detection", "no-such-rule")
    assert result.exit_code == 2
    assert "no detection or community rule 'no-such-rule'" in result.stderr


def test_technique_page_shows_how_to_detect_it(
    cli, loaded_home: Path, content: Path, community: Path
) -> None:
    data = cli("technique", "T1021.007", "--json").json()["data"]
    assert [d["id"] for d in data["detections"]] == [FIXTURE_ID]
    assert [r["id"] for r in data["community_rules"]] == [CLOUD_LOGIN_ID, AWS_ID]
    assert all(r["attribution"]["licence"] == "DRL-1.1" for r in data["community_rules"])
    human = cli("technique", "T1021.007").stdout
    section = human.split("How to detect it", 1)[1]
    assert "defensemap detections (1)" in section and "DeviceProcessEvents" in section
    assert "Community rules — SigmaHQ (2)" in section
    assert "Test Author Two" in section and "Test Author Three" in section
    assert "aws_test_signin_token.yml" in section.replace("\n", "").replace("│", "").replace(
        " ", ""
    )
    assert DRL in " ".join(section.split())
    parent = cli("technique", "T1021", "--json").json()["data"]
    assert [d["id"] for d in parent["detections"]] == [FIXTURE_ID]


def test_technique_page_without_library_or_rules(
    cli, loaded_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEFENSEMAP_CONTENT", str(tmp_path / "nowhere"))
    result = cli("technique", "T1021.007")
    assert result.exit_code == 0, result.stderr
    assert "No defensemap detection names this technique." in result.stdout
    assert "No community (SigmaHQ) rule tagged with this technique" in result.stdout
    assert "no detection library at" in result.stdout


def test_hunt_community_runs_the_imported_rules(
    cli, home: Path, community: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sysmon.ndjson"
    made = cli("generate", "telemetry", "--table", "Sysmon", "--rows", "2000", "-o", str(out))
    assert made.exit_code == 0, made.stderr
    truth = json.loads(out.with_name(out.name + ".truth.json").read_text())
    result = cli("hunt", "--community", "--logs", str(out), "--format", "json")
    assert result.exit_code == 0, result.stderr
    alerts = [json.loads(line) for line in result.stdout.splitlines()]
    shadow = [t["record"] for t in truth if t["technique"] == "T1490"]
    assert shadow
    assert [int(a["source"].rsplit(":", 1)[1]) for a in alerts] == shadow
    assert {a["rule_id"] for a in alerts} == {VSSADMIN_ID}
    assert f"[{AWS_ID}] (sigma): no loaded table matches its logsource" in result.stderr
    assert DRL in result.stderr
    only_cloud = cli(
        "hunt", "--community", "--technique", "T1021.007", "--logs", str(out), "--format", "json"
    )
    assert only_cloud.exit_code == 0 and only_cloud.stdout == ""


def test_hunt_community_without_imported_rules(cli, loaded_home: Path, tmp_path: Path) -> None:
    log = tmp_path / "events.ndjson"
    log.write_text('{"EventID": 1}\n')
    result = cli("hunt", "--community", "--logs", str(log))
    assert result.exit_code == 2
    assert "no community rules imported" in result.stderr


def test_a_broken_library_warns_but_the_technique_page_still_works(
    cli, loaded_home: Path, content: Path
) -> None:
    (content / "broken.yml").write_text("id: [unclosed\n", encoding="utf-8")
    result = cli("technique", "T1021.007", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["data"]["detections"] == []
    assert "warning: the detection library did not load:" in result.stderr
    assert "broken.yml" in result.stderr
    listed = cli("detections")  # the library's own list reports the error itself
    assert listed.exit_code == 2
    assert "broken.yml" in listed.stderr and "not valid YAML" in listed.stderr
