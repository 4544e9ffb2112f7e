"""All SigmaHQ rules in ../shared/data/sigma through our backend, and the real EVTX samples
through the rules that name them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import evtx
import orjson
import pytest
import yaml
from tests.conftest import SHARED_DATA, require_shared_data

from defensemap.catalog import load_catalog
from defensemap.engine.sigma.rules import (
    Compilation,
    RuleSet,
    compile_rules,
    load_rules,
)
from defensemap.engine.sigma.run import run_compiled, table_schemas
from defensemap.logs.duck import connect, lock_down
from defensemap.logs.flatten import flatten_event

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

SIGMA_DIR = SHARED_DATA / "sigma"
EVTX_DIR = SHARED_DATA / "evtx"

# Columns of a WindowsEvents table holding Sysmon and Security events (the header fields
# flatten_event writes plus common EventData fields). Fields outside it only cause warnings.
WINDOWS_COLUMNS = (
    "EventID",
    "Channel",
    "Computer",
    "Provider_Name",
    "TimeCreated",
    "EventRecordID",
    "Image",
    "CommandLine",
    "ParentImage",
    "ParentCommandLine",
    "OriginalFileName",
    "User",
    "CurrentDirectory",
    "IntegrityLevel",
    "Hashes",
    "Company",
    "Description",
    "Product",
    "FileVersion",
    "ProcessId",
    "ParentProcessId",
    "LogonId",
    "TargetObject",
    "Details",
    "EventType",
    "NewName",
    "DestinationIp",
    "DestinationPort",
    "DestinationHostname",
    "SourceIp",
    "SourcePort",
    "Initiated",
    "Protocol",
    "QueryName",
    "QueryResults",
    "TargetFilename",
    "ImageLoaded",
    "Signed",
    "Signature",
    "SignatureStatus",
    "PipeName",
    "SourceImage",
    "TargetImage",
    "GrantedAccess",
    "CallTrace",
    "StartAddress",
    "StartModule",
    "StartFunction",
    "ScriptBlockText",
    "Payload",
    "ContextInfo",
    "ServiceName",
    "ImagePath",
    "ServiceFileName",
    "NewProcessName",
    "ParentProcessName",
    "SubjectUserName",
    "SubjectDomainName",
    "SubjectLogonId",
    "TargetUserName",
    "TargetDomainName",
    "TargetLogonId",
    "LogonType",
    "IpAddress",
    "WorkstationName",
    "ProcessName",
    "ObjectName",
    "ObjectType",
    "AccessMask",
    "ShareName",
    "RelativeTargetName",
    "TaskName",
    "Provider_Guid",
)


@pytest.fixture(scope="module")
def sigma_rules() -> RuleSet:
    require_shared_data()
    if not SIGMA_DIR.exists():
        pytest.skip(f"no Sigma rules at {SIGMA_DIR}")
    return load_rules([SIGMA_DIR])


@pytest.fixture(scope="module")
def compiled(sigma_rules: RuleSet) -> Compilation:
    windows = dict.fromkeys(WINDOWS_COLUMNS, "VARCHAR")
    windows.update({"EventID": "BIGINT", "TimeCreated": "TIMESTAMP"})
    table = load_catalog().table("DeviceProcessEvents")
    assert table is not None
    defender = {c.name: c.duckdb_type for c in table.columns}
    return compile_rules(sigma_rules, {"WindowsEvents": windows, "DeviceProcessEvents": defender})


def test_every_rule_loads(sigma_rules: RuleSet) -> None:
    assert len(sigma_rules.rules) + len(sigma_rules.problems) >= 3700
    assert not sigma_rules.problems, [str(p) for p in sigma_rules.problems[:5]]


def test_windows_process_creation_rules_convert(compiled: Compilation) -> None:
    process_creation = {
        rule_id
        for rule_id, info in compiled.infos.items()
        if info.product == "windows" and info.category == "process_creation"
    }
    assert len(process_creation) > 1000
    on_windows = {r.info.rule_id for r in compiled.rules["WindowsEvents"]}
    on_defender = {r.info.rule_id for r in compiled.rules["DeviceProcessEvents"]}
    converted = process_creation & on_windows
    assert len(converted) / len(process_creation) >= 0.95
    # the Microsoft XDR mapping routes process_creation to DeviceProcessEvents
    assert len(process_creation & on_defender) / len(process_creation) >= 0.9
    # every rule that did not convert is listed, with a reason, exactly once
    problems = Counter(p.rule_id for p in compiled.problems)
    assert all(n == 1 for n in problems.values())
    for rule_id in process_creation - on_windows:
        assert problems[rule_id] == 1
    assert all(p.reason.strip() for p in compiled.problems)
    for rule_id, outcome in compiled.outcome.items():
        if outcome == "failed":
            assert problems[rule_id] == 1, rule_id


def test_every_rule_has_an_outcome(sigma_rules: RuleSet, compiled: Compilation) -> None:
    assert len(compiled.outcome) == len(sigma_rules.rules) + len(sigma_rules.correlations)
    counts = Counter(compiled.outcome.values())
    assert counts["converted"] > 2800
    # placeholders are refused by name
    placeholder = [p for p in compiled.problems if "placeholder" in p.reason]
    assert placeholder and all("%" in p.reason for p in placeholder)


def _samples() -> list[Path]:
    if not EVTX_DIR.exists():
        return []
    return sorted(p for p in EVTX_DIR.iterdir() if (p / "info.yml").exists())


def _flattened(sample: Path) -> list[dict[str, Any]]:
    [path] = sample.glob("*.evtx")
    parser = evtx.PyEvtxParser(str(path))
    return [flatten_event(orjson.loads(record["data"])) for record in parser.records_json()]


def _column_type(name: str) -> str:
    return {"EventID": "BIGINT", "TimeCreated": "TIMESTAMP"}.get(name, "VARCHAR")


def _value(name: str, value: Any) -> Any:
    if value is None or name in ("EventID", "TimeCreated"):
        return value
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def test_evtx_samples_match_the_rule_they_are_for(sigma_rules: RuleSet) -> None:
    samples = _samples()
    if len(samples) != 4:
        pytest.skip(f"expected the 4 EVTX samples in {EVTX_DIR}")
    rows: list[dict[str, Any]] = []
    expected: dict[str, tuple[str, int]] = {}
    for sample in samples:
        info = yaml.safe_load((sample / "info.yml").read_text(encoding="utf-8"))
        rule_id = info["rule_metadata"][0]["id"]
        count = info["regression_tests_info"][0]["match_count"]
        expected[sample.name] = (rule_id, count)
        for number, row in enumerate(_flattened(sample), start=1):
            rows.append({**row, "_dm_source": sample.name, "_dm_record": number})
    columns: list[str] = []
    folded: set[str] = set()
    for row in rows:
        for key in row:
            if key.casefold() not in folded:
                folded.add(key.casefold())
                columns.append(key)
    con: duckdb.DuckDBPyConnection = connect()
    con.execute(
        "CREATE TABLE WindowsEvents ("
        + ", ".join(f'"{c}" {_column_type(c)}' for c in columns)
        + ")"
    )
    con.executemany(
        f"INSERT INTO WindowsEvents VALUES ({', '.join('?' * len(columns))})",
        [[_value(c, row.get(c)) for c in columns] for row in rows],
    )
    lock_down(con)
    # the whole rule set over all four samples at once
    compilation = compile_rules(sigma_rules, table_schemas(con, ["WindowsEvents"]))
    run = run_compiled(con, compilation, timeout=60)
    for sample, (rule_id, count) in expected.items():
        hits = [m for m in run.matches_for(rule_id) if m.row["_dm_source"] == sample]
        assert len(hits) == count, (sample, rule_id, run.counts.get(rule_id))
        assert all(m.table == "WindowsEvents" for m in hits)
    # nothing fired on a sample it was not written for except rules for the same activity
    fired = {m.rule_title for m in run.matches}
    assert "Sysmon Configuration Change" in fired
    assert not [p for p in run.problems if "DuckDB" in p.reason]
