"""`export detections`: every format parsed back with its required keys and types, and golden
files for the T1021.007 detections and the engine fixture (rewrite them with
``DEFENSEMAP_UPDATE_GOLDEN=1``, review the diff). Tactics and technique names come from the
real ATT&CK 18.1 store."""

from __future__ import annotations

import configparser
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.conftest import GOLDEN, REPO
from tests.navigator_layer import schema_errors

from defensemap.export.detections import (
    FORMATS,
    DetectionExport,
    export_detections,
    iso_duration,
    splunk_cron,
)
from defensemap.export.navigator import validate_layer
from defensemap.kb.vocabulary import AttackVocabulary, attack_vocabulary
from defensemap.sources.detections import LoadedDetection, load_detection
from defensemap.store.db import open_store

GOLDEN_DETECTIONS = GOLDEN / "detections"
FIXTURE = REPO / "tests" / "fixtures" / "detections" / "cloud_cli_login.yml"
GOLDEN_SOURCES = [FIXTURE, *sorted((REPO / "content" / "detections").glob("t1021.007-*.yml"))]
_TECHNIQUE = re.compile(r"^T\d{4}$")
_SUB = re.compile(r"^T\d{4}\.\d{3}$")
_SENTINEL_TACTICS = {
    "Reconnaissance",
    "ResourceDevelopment",
    "InitialAccess",
    "Execution",
    "Persistence",
    "PrivilegeEscalation",
    "DefenseEvasion",
    "CredentialAccess",
    "Discovery",
    "LateralMovement",
    "Collection",
    "Exfiltration",
    "CommandAndControl",
    "Impact",
}


@pytest.fixture(scope="module")
def detections() -> list[LoadedDetection]:
    return [load_detection(p) for p in GOLDEN_SOURCES]


@pytest.fixture(scope="module")
def attack(
    loaded_store_path: Path, detections: list[LoadedDetection]
) -> Iterator[AttackVocabulary]:
    store = open_store(loaded_store_path)
    try:
        yield attack_vocabulary(store)
    finally:
        store.close()


def run(detections: list[LoadedDetection], fmt: str, attack: AttackVocabulary) -> DetectionExport:
    result = export_detections(detections, fmt, attack)
    again = export_detections(detections, fmt, attack)
    assert again.files == result.files, "exports must be byte-stable"
    assert set(result.exported).isdisjoint({s.detection_id for s in result.skipped})
    for content in result.files.values():
        assert content.endswith(b"\n") and b"\r" not in content
    return result


def assert_golden(name: str, actual: bytes) -> None:
    golden = GOLDEN_DETECTIONS / name
    if not golden.exists() or os.environ.get("DEFENSEMAP_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(actual)
        pytest.fail(f"golden file {golden} was (re)written; review the diff and commit it")
    expected = golden.read_bytes()
    if actual != expected:
        assert actual.decode() == expected.decode()


# --- golden files ----------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("source", GOLDEN_SOURCES, ids=lambda p: p.stem)
def test_exports_match_golden_files(source: Path, fmt: str, attack: AttackVocabulary) -> None:
    result = run([load_detection(source)], fmt, attack)
    parts = [f"# {name}\n".encode() + content for name, content in sorted(result.files.items())]
    parts += [f"# skipped: {s.reason}\n".encode() for s in result.skipped]
    assert_golden(f"{source.stem}.{fmt}.txt", b"".join(parts))


# --- formats parsed back ---------------------------------------------------------------------


@pytest.mark.realdata
def test_sentinel_yaml_has_the_analytic_rule_keys(
    detections: list[LoadedDetection], attack: AttackVocabulary
) -> None:
    result = run(detections, "sentinel-yaml", attack)
    assert result.files
    for name, content in result.files.items():
        rule = yaml.safe_load(content)
        for key in ("id", "name", "description", "severity", "requiredDataConnectors", "query"):
            assert rule[key], (name, key)
        assert rule["severity"] in {"Informational", "Low", "Medium", "High"}
        assert rule["kind"] == "Scheduled" and rule["triggerOperator"] == "gt"
        assert isinstance(rule["triggerThreshold"], int)
        assert re.match(r"^\d+[mhd]$", rule["queryFrequency"])
        assert all(_TECHNIQUE.match(t) for t in rule["relevantTechniques"]), rule
        assert all(_SUB.match(t) for t in rule.get("subTechniques", []))
        assert rule["tactics"] and set(rule["tactics"]) <= _SENTINEL_TACTICS
        for connector in rule["requiredDataConnectors"]:
            assert isinstance(connector["connectorId"], str) and connector["dataTypes"]
        for entity in rule.get("entityMappings", []):
            assert entity["fieldMappings"][0].keys() == {"identifier", "columnName"}


@pytest.mark.realdata
def test_fixture_sentinel_rule_splits_the_sub_technique(
    detections: list[LoadedDetection], attack: AttackVocabulary
) -> None:
    rule = yaml.safe_load(
        run(detections[:1], "sentinel-yaml", attack).files["cloud_cli_login.yaml"]
    )
    assert rule["relevantTechniques"] == ["T1021"]
    assert rule["subTechniques"] == ["T1021.007"]
    assert rule["tactics"] == ["LateralMovement"]
    assert rule["requiredDataConnectors"] == [
        {"connectorId": "MicrosoftThreatProtection", "dataTypes": ["DeviceProcessEvents"]}
    ]


@pytest.mark.realdata
def test_sentinel_arm_template_is_deployable_shape(
    detections: list[LoadedDetection], attack: AttackVocabulary
) -> None:
    result = run(detections, "sentinel-arm", attack)
    template = json.loads(result.files["sentinel-analytic-rules.json"])
    assert template["parameters"]["workspace"]["type"] == "string"
    names = set()
    for resource in template["resources"]:
        assert resource["type"] == "Microsoft.OperationalInsights/workspaces/providers/alertRules"
        assert resource["kind"] == "Scheduled"
        guid = re.search(r"Microsoft\.SecurityInsights/([0-9a-f-]{36})'\)\]$", resource["name"])
        assert guid, resource["name"]
        names.add(guid[1])
        props = resource["properties"]
        assert re.match(r"^P(T\d+[HM]|\d+D)", props["queryFrequency"])
        assert props["triggerOperator"] == "GreaterThan"
        assert all(_TECHNIQUE.match(t) for t in props["techniques"])
        assert all(_SUB.match(t) for t in props["subTechniques"])
    assert len(names) == len(template["resources"]) == len(result.exported)


@pytest.mark.realdata
def test_defender_custom_rules_or_named_skips(
    detections: list[LoadedDetection], attack: AttackVocabulary
) -> None:
    result = run(detections, "defender-custom", attack)
    assert len(result.exported) + len(result.skipped) == len(detections)
    fixture = next(s for s in result.skipped if s.detection_id.startswith("5b0f8a8e"))
    assert "impacted asset" in fixture.reason
    for content in result.files.values():
        rule = json.loads(content)
        template = rule["detectionAction"]["alertTemplate"]
        assert rule["queryCondition"]["queryText"]
        assert rule["schedule"]["period"] in {"1H", "3H", "12H", "24H"}
        assert template["severity"] in {"informational", "low", "medium", "high"}
        assert template["impactedAssets"]


@pytest.mark.realdata
def test_elastic_ndjson_has_the_threat_block(
    detections: list[LoadedDetection], attack: AttackVocabulary
) -> None:
    result = run(detections, "elastic-ndjson", attack)
    lines = result.files["detection-rules.ndjson"].decode().splitlines()
    assert len(lines) == len(result.exported)
    for line in lines:
        rule = json.loads(line)
        assert rule["rule_id"] in result.exported
        assert rule["type"] in {"esql", "query"} and rule["query"]
        assert rule["severity"] in {"low", "medium", "high", "critical"}
        assert isinstance(rule["risk_score"], int)
        for block in rule["threat"]:
            assert block["framework"] == "MITRE ATT&CK"
            assert set(block["tactic"]) == {"id", "name", "reference"}
            for technique in block["technique"]:
                assert _TECHNIQUE.match(technique["id"]) and technique["name"]
                assert all(_SUB.match(s["id"]) for s in technique["subtechnique"])
    fixture = json.loads(lines[0])
    (block,) = fixture["threat"]
    assert block["tactic"]["id"] == "TA0008"
    (technique,) = block["technique"]
    assert technique["id"] == "T1021"
    assert [s["id"] for s in technique["subtechnique"]] == ["T1021.007"]


@pytest.mark.realdata
def test_splunk_savedsearches_parse_as_conf(
    detections: list[LoadedDetection], attack: AttackVocabulary
) -> None:
    result = run(detections, "splunk", attack)
    parser = configparser.RawConfigParser(delimiters=("=",), comment_prefixes=("#",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(result.files["savedsearches.conf"].decode())
    assert len(parser.sections()) == len(result.exported)
    for section in parser.sections():
        stanza = parser[section]
        assert stanza["search"] and stanza["cron_schedule"]
        assert json.loads(stanza["action.correlationsearch.annotations"])["mitre_attack"]
        assert stanza["enableSched"] in {"0", "1"}


def test_splunk_search_keeps_the_spaces_inside_its_values(
    detections: list[LoadedDetection], attack: AttackVocabulary
) -> None:
    """``-enc  JAB`` (two spaces) is a different value from ``-enc JAB``."""
    loaded = detections[0]
    sigma = dict(loaded.detection.sigma or {})
    sigma["detection"] = {
        "cli": {"CommandLine|contains": "-enc  JAB"},
        "condition": "cli",
    }
    changed = loaded.detection.model_copy(update={"sigma": sigma})
    result = run([LoadedDetection(changed, loaded.path)], "splunk", attack)
    assert 'CommandLine="*-enc  JAB*"' in result.files["savedsearches.conf"].decode()


@pytest.mark.realdata
def test_sigma_export_is_a_plain_sigma_rule(
    detections: list[LoadedDetection], attack: AttackVocabulary
) -> None:
    from defensemap.library.convert import convert

    result = run(detections, "sigma", attack)
    for loaded in detections:
        rule = yaml.safe_load(result.files[f"{loaded.path.stem}.yml"])
        assert rule["id"] == str(loaded.detection.id)
        assert rule["level"] == loaded.detection.severity
        for technique in loaded.detection.techniques:
            assert f"attack.{technique.lower()}" in rule["tags"]
        assert rule["logsource"] and rule["detection"]["condition"]
        assert convert(rule, "splunk").status != "refused"


@pytest.mark.realdata
def test_navigator_layer_is_valid(
    detections: list[LoadedDetection], attack: AttackVocabulary
) -> None:
    layer = json.loads(run(detections, "navigator", attack).files["detections.layer.json"])
    assert validate_layer(layer) == [] and schema_errors(layer) == []
    ids = {t["techniqueID"] for t in layer["techniques"]}
    assert "T1021.007" in ids


def test_formats_needing_attack_refuse_without_it() -> None:
    from defensemap.errors import ExportError

    with pytest.raises(ExportError, match="needs ATT&CK"):
        export_detections([load_detection(FIXTURE)], "sentinel-yaml", None)
    assert export_detections([load_detection(FIXTURE)], "sigma", None).files


@pytest.mark.parametrize(
    ("minutes", "iso", "cron"),
    [
        (5, "PT5M", "*/5 * * * *"),
        (60, "PT1H", "0 * * * *"),
        (90, "PT1H30M", "0 * * * *"),
        (360, "PT6H", "0 */6 * * *"),
        (1440, "P1D", "0 0 * * *"),
        (20160, "P14D", "0 0 * * *"),
    ],
)
def test_durations(minutes: int, iso: str, cron: str) -> None:
    from datetime import timedelta

    assert iso_duration(timedelta(minutes=minutes)) == iso
    assert splunk_cron(timedelta(minutes=minutes)) == cron
