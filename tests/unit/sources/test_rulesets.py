"""Reading existing rule sets: every format from the fixtures (rules, techniques, enabled
state, language, tables), format detection in folders, and malformed files refused with
their file and place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import REPO

from defensemap.errors import ParseError, SchemaError, SourceError
from defensemap.model.coverage import DeployedRule
from defensemap.sources.rulesets import load_rule_set, read_rule_set

FIXTURES = REPO / "tests" / "fixtures" / "rulesets"


def _summary(rules: list[DeployedRule]) -> list[tuple[str, tuple[str, ...], bool, str]]:
    return [(r.name, r.techniques, r.enabled, r.language) for r in rules]


def test_sentinel_analytic_rule_yaml() -> None:
    rules = {r.id: r for r in load_rule_set(FIXTURES / "sentinel")}
    assert set(rules) == {
        "5c0f1e2a-7b3d-4e8f-9a10-2b3c4d5e6f70",
        "9e8d7c6b-5a49-4838-a726-15f4e3d2c1b0",
        "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    }
    brute = rules["5c0f1e2a-7b3d-4e8f-9a10-2b3c4d5e6f70"]
    # relevantTechniques holds a lower-case sub-technique; subTechniques adds another
    assert brute.techniques == ("T1078.004", "T1110", "T1110.003")
    assert (brute.origin, brute.enabled, brute.language) == ("sentinel", True, "kql")
    assert brute.tables == ("SigninLogs", "AADNonInteractiveUserSignInLogs")
    assert brute.source.endswith("sentinel/brute_force_then_success.yaml")
    forwarding = rules["9e8d7c6b-5a49-4838-a726-15f4e3d2c1b0"]
    assert (forwarding.techniques, forwarding.enabled) == (("T1114.003",), False)
    assert forwarding.tables == ("OfficeActivity",)
    no_technique = rules["0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"]
    assert (no_technique.techniques, no_technique.tables) == ((), ())


def test_sentinel_arm_export_reads_alert_rules_only() -> None:
    rules = load_rule_set(FIXTURES / "sentinel-arm" / "analytic_rules_export.json")
    assert [r.id for r in rules] == [
        "3f2e1d0c-b9a8-4776-8554-433221100fed",
        "a1b2c3d4-e5f6-4788-99aa-bbccddeeff00",
        "f71aba3d-28fb-450b-b192-4e76a83015c8",  # no GUID in its name: its template's
    ]
    assert _summary(rules) == [
        ("Scheduled task created by an Office application", ("T1053", "T1053.005"), True, "kql"),
        ("Security log cleared", ("T1070", "T1070.001"), False, "kql"),
        ("Advanced multistage attack detection", (), True, ""),
    ]
    assert rules[1].source.endswith("analytic_rules_export.json#/resources/1")


def test_elastic_ndjson_export() -> None:
    read = read_rule_set([FIXTURES / "elastic" / "rules_export.ndjson"])
    assert _summary(read.rules) == [
        ("Encoded PowerShell command line", ("T1027", "T1059", "T1059.001"), True, "kuery"),
        ("Process started from a mounted disk image", ("T1553", "T1553.005"), False, "eql"),
        ("Rare outbound connections per host", (), True, "esql"),
    ]
    assert read.rules[0].id == "6b0a1c9e-33f4-4d1e-8f6a-0c2d9e8b7a61"
    assert read.rules[0].tables == ("logs-endpoint.events.process-*", "winlogbeat-*")
    assert read.rules[1].source.endswith("rules_export.ndjson:2")
    # the exception list is named, the export summary line is not a rule and not skipped
    [skipped] = read.skipped
    assert skipped.where.endswith("rules_export.ndjson:4")
    assert "exception list" in skipped.reason


def test_sigma_folder() -> None:
    rules = {r.name: r for r in load_rule_set(FIXTURES / "sigma")}
    lsass = rules["Handle to LSASS memory opened by an unsigned tool"]
    assert (lsass.id, lsass.techniques, lsass.enabled, lsass.language) == (
        "2d6c1e0f-8a7b-4c3d-9e5f-1a2b3c4d5e6f",
        ("T1003.001",),
        True,
        "sigma",
    )
    assert lsass.logsource == "windows/process_access"
    service = rules["Service installed from a temporary folder"]
    assert service.techniques == ("T1543.003", "T1569.002")  # upper-case tag read too
    assert service.logsource == "windows/system"
    deprecated = rules["Whoami run by a service account"]
    assert (deprecated.techniques, deprecated.enabled) == (("T1033",), False)
    untagged = rules["Firewall configuration changed outside the change window"]
    assert (untagged.id, untagged.techniques) == ("no_attack_tags", ())  # no id: file name


def test_splunk_savedsearches() -> None:
    read = read_rule_set([FIXTURES / "splunk" / "savedsearches.conf"])
    assert [(r.id, r.name, r.techniques, r.enabled, r.language) for r in read.rules] == [
        (
            "Threat - Local account created - Rule",
            "Local account created on a server",
            ("T1136.001",),
            True,  # disabled = 1, overridden by a later stanza of the same name
            "spl",
        ),
        (
            "Threat - Remote service creation - Rule",
            "Service created over the network",
            ("T1021.002", "T1569.002"),  # the tactic id TA0008 is not a technique
            False,
            "spl",
        ),
        ("Weekly login volume report", "Weekly login volume report", (), True, "spl"),
    ]
    assert read.rules[1].source.endswith("savedsearches.conf:14")
    assert [(s.where.rsplit(":", 1)[1], s.reason) for s in read.skipped] == [
        ("31", "stanza without a search")
    ]


def test_a_folder_of_every_format_is_detected_and_counted() -> None:
    read = read_rule_set([FIXTURES])
    assert read.by_format == {
        "sigma": 4,
        "elastic-ndjson": 3,
        "sentinel-yaml": 3,
        "sentinel-arm": 3,
        "splunk": 3,
    }
    assert (len(read.rules), read.with_techniques, read.enabled) == (16, 11, 11)
    assert read.files == 11  # README.md is not a candidate
    reasons = {Path(s.where.split(":")[0]).name: s.reason for s in read.skipped}
    assert reasons["workbook_settings.yaml"] == (
        "YAML that is neither a Sentinel analytic rule nor a Sigma rule"
    )


def test_the_first_rule_with_an_id_wins(tmp_path: Path) -> None:
    source = FIXTURES / "sentinel" / "mailbox_forwarding_rule.yaml"
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "rule.yaml").write_text(source.read_text())
    read = read_rule_set([tmp_path])
    assert [r.source for r in read.rules] == [str(tmp_path / "a" / "rule.yaml")]
    [skipped] = read.skipped
    assert skipped.where == str(tmp_path / "b" / "rule.yaml")
    assert "also used by" in skipped.reason


SENTINEL = (FIXTURES / "sentinel" / "mailbox_forwarding_rule.yaml").read_text()
ELASTIC_LINE = (FIXTURES / "elastic" / "rules_export.ndjson").read_text().splitlines()[0]
ARM = json.loads((FIXTURES / "sentinel-arm" / "analytic_rules_export.json").read_text())


def _arm_with(change: str) -> str:
    document = json.loads(json.dumps(ARM))
    properties = document["resources"][1]["properties"]
    if change == "technique":
        properties["subTechniques"] = ["T1070.001", "Clear logs"]
    else:
        properties["enabled"] = "yes"
    return json.dumps(document, indent=2)


BAD = [
    # (file name, content, error type, place, message part)
    (
        "rule.yaml",
        SENTINEL.replace("  - T1114.003", "  - T1114.003\n  - Collection"),
        SchemaError,
        "rule.yaml#/relevantTechniques/1",
        "'Collection' is not an ATT&CK technique id",
    ),
    ("rule.yaml", SENTINEL.replace("query: |", "query: [|"), ParseError, "rule.yaml:", "YAML"),
    (
        "rule.yaml",
        SENTINEL.replace("id: 9e8d7c6b-5a49-4838-a726-15f4e3d2c1b0\n", ""),
        SchemaError,
        "rule.yaml#/id",
        "the rule has no id",
    ),
    (
        "rule.yaml",
        SENTINEL.replace("enabled: false", "enabled: sometimes"),
        SchemaError,
        "rule.yaml#/enabled",
        "expected true or false",
    ),
    (
        "rules.ndjson",
        f'{ELASTIC_LINE}\n{{"rule_id": "x", "name": \n',
        ParseError,
        "rules.ndjson:2",
        "not valid JSON",
    ),
    (
        "rules.ndjson",
        ELASTIC_LINE.replace('"T1027"', '"T27"'),
        SchemaError,
        "rules.ndjson:1#/threat/1/technique/0/id",
        "'T27' is not an ATT&CK technique id",
    ),
    (
        "rules.ndjson",
        f"{ELASTIC_LINE}\n[1, 2]\n",
        SchemaError,
        "rules.ndjson:2",
        "expected a JSON object",
    ),
    (
        "export.json",
        _arm_with("technique"),
        SchemaError,
        "export.json#/resources/1/properties/subTechniques/1",
        "'Clear logs' is not an ATT&CK technique id",
    ),
    (
        "export.json",
        _arm_with("enabled"),
        SchemaError,
        "export.json#/resources/1/properties/enabled",
        "expected true or false",
    ),
    ("export.json", '{"resources": [', ParseError, "export.json:1", "not valid JSON"),
    (
        "savedsearches.conf",
        '[Rule]\nsearch = index=x\naction.correlationsearch.annotations = {"mitre_attack": [\n',
        ParseError,
        "savedsearches.conf:3",
        "not valid JSON",
    ),
    (
        "savedsearches.conf",
        "[Rule]\nsearch = index=x\nthis line has no equals sign\n",
        ParseError,
        "savedsearches.conf:3",
        "expected [stanza] or key = value",
    ),
    (
        "savedsearches.conf",
        "[Rule]\nsearch = x\n"
        'action.correlationsearch.annotations = {"mitre_attack": ["Execution"]}\n',
        SchemaError,
        "savedsearches.conf:3#/mitre_attack/0",
        "'Execution' is not an ATT&CK technique id",
    ),
    ("notes.yaml", "owner: soc\n", SchemaError, "notes.yaml", "not a rule file"),
    ("rules.txt", "hello\n", SchemaError, "rules.txt", "unknown file type .txt"),
    ("rule.yaml", b"title: caf\xe9\n", ParseError, "rule.yaml", "not UTF-8"),
]


@pytest.mark.parametrize(("name", "content", "error", "where", "message"), BAD)
def test_malformed_files_are_refused_naming_file_and_place(
    tmp_path: Path,
    name: str,
    content: str | bytes,
    error: type[Exception],
    where: str,
    message: str,
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(error) as info:
        read_rule_set([path])
    assert message in str(info.value)
    assert str(info.value).startswith(str(tmp_path / where))


def test_a_malformed_file_in_a_folder_refuses_the_whole_folder(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(SENTINEL)
    (tmp_path / "zz_bad.yaml").write_text(SENTINEL.replace("T1114.003", "T1114.3"))
    with pytest.raises(SchemaError, match=r"'T1114\.3' is not an ATT&CK technique id"):
        read_rule_set([tmp_path])


def test_a_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or folder"):
        read_rule_set([tmp_path / "absent"])
