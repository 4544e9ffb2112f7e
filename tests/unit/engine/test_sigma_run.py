"""Sigma rule sets end to end on small DuckDB tables: loading, selection, pipelines per table,
the one-pass runner, problems, and correlation rules."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sigma.collection import SigmaCollection
from sigma.rule import SigmaRule

from defensemap.engine.sigma.pipelines import table_kind
from defensemap.engine.sigma.rules import (
    Compilation,
    CompiledRule,
    RuleInfo,
    RuleSet,
    compile_rules,
    load_rules,
    select_rules,
)
from defensemap.engine.sigma.run import run_compiled, run_sigma
from defensemap.errors import InputError
from defensemap.logs.duck import QueryTimeoutError, connect, lock_down

SYSMON = "Microsoft-Windows-Sysmon/Operational"
T0 = datetime(2024, 5, 1, 12, 0, 0)


def make_table(
    con: duckdb.DuckDBPyConnection, name: str, rows: list[dict[str, Any]], types: dict[str, str]
) -> None:
    columns = list(types)
    con.execute(f'CREATE TABLE "{name}" (' + ", ".join(f'"{c}" {types[c]}' for c in columns) + ")")
    for row in rows:
        con.execute(
            f'INSERT INTO "{name}" VALUES ({", ".join("?" * len(columns))})',
            [row.get(c) for c in columns],
        )


WINDOWS_TYPES = {
    "EventID": "BIGINT",
    "Channel": "VARCHAR",
    "Computer": "VARCHAR",
    "Image": "VARCHAR",
    "CommandLine": "VARCHAR",
    "NewProcessName": "VARCHAR",
    "TargetObject": "VARCHAR",
    "User": "VARCHAR",
    "TargetUserName": "VARCHAR",
    "TimeCreated": "TIMESTAMP",
    "_dm_source": "VARCHAR",
    "_dm_record": "BIGINT",
}


def rules_from(*documents: str) -> RuleSet:
    text = "\n---\n".join(textwrap.dedent(d).strip() for d in documents)
    collection = SigmaCollection.from_yaml(text)
    result = RuleSet()
    for rule in collection.rules:
        if isinstance(rule, SigmaRule):
            result.rules.append(rule)
        else:
            result.correlations.append(rule)  # type: ignore[arg-type]
    return result


CMD_RULE = """
    title: Cmd start
    id: 00000000-0000-0000-0000-000000000001
    level: medium
    status: test
    tags: [attack.execution, attack.t1059.003]
    logsource: {product: windows, category: process_creation}
    detection:
        selection:
            Image|endswith: '\\cmd.exe'
        condition: selection
"""
NET_RULE = """
    title: Net connection
    id: 00000000-0000-0000-0000-000000000002
    level: high
    status: stable
    tags: [attack.command-and-control, attack.t1071]
    logsource: {product: windows, category: network_connection}
    detection:
        selection:
            DestinationPort: 4444
        condition: selection
"""
LINUX_RULE = """
    title: Linux thing
    id: 00000000-0000-0000-0000-000000000003
    level: low
    status: experimental
    tags: [attack.discovery, attack.t1082]
    logsource: {product: linux, service: auditd}
    detection:
        selection:
            type: EXECVE
            a0: uname
        condition: selection
"""


def windows_rows() -> list[dict[str, Any]]:
    return [
        # 1 Sysmon process creation
        {"EventID": 1, "Channel": SYSMON, "Image": r"C:\Windows\System32\cmd.exe"},
        # 2 Security 4688 process creation, its own field name
        {"EventID": 4688, "Channel": "Security", "NewProcessName": r"C:\Windows\System32\CMD.EXE"},
        # 3 Sysmon network connection by cmd.exe: not a process creation
        {"EventID": 3, "Channel": SYSMON, "Image": r"C:\Windows\System32\cmd.exe"},
        # 4 right EventID, wrong channel
        {"EventID": 1, "Channel": "Application", "Image": r"C:\Windows\System32\cmd.exe"},
    ]


def test_logsource_selects_sysmon_1_and_security_4688_with_their_field_names() -> None:
    con = connect()
    rows = windows_rows()
    for i, row in enumerate(rows, start=1):
        row["_dm_record"] = i
    make_table(con, "WindowsEvents", rows, WINDOWS_TYPES)
    lock_down(con)
    run = run_sigma(
        con, rules_from(CMD_RULE, NET_RULE, LINUX_RULE), tables=["WindowsEvents"], timeout=30
    )
    cmd = "00000000-0000-0000-0000-000000000001"
    assert sorted(m.row["_dm_record"] for m in run.matches_for(cmd)) == [1, 2]
    assert run.counts[cmd] == 2
    # the network rule converts (Sysmon EID 3) but the table lacks DestinationPort: a warning
    assert run.counts["00000000-0000-0000-0000-000000000002"] == 0
    assert [w.fields for w in run.warnings] == [("DestinationPort",)]
    assert [i.title for i in run.not_applicable] == ["Linux thing"]
    assert not run.problems
    [match] = [m for m in run.matches if m.row["_dm_record"] == 1]
    assert match.table == "WindowsEvents"
    assert match.level == "medium"
    assert match.techniques == ("T1059.003",)
    assert "attack.execution" in match.tags


def test_defender_tables_use_the_xdr_mapping_and_route_by_category() -> None:
    con = connect()
    make_table(
        con,
        "DeviceProcessEvents",
        [
            {"FolderPath": r"C:\Windows\System32\cmd.exe", "ProcessCommandLine": "cmd /c x"},
            {"FolderPath": r"C:\Windows\notepad.exe", "ProcessCommandLine": "notepad"},
        ],
        {
            "Timestamp": "TIMESTAMP",
            "FolderPath": "VARCHAR",
            "ProcessCommandLine": "VARCHAR",
            "ProcessId": "BIGINT",
        },
    )
    make_table(
        con,
        "WindowsEvents",
        [{"EventID": 1, "Channel": SYSMON, "Image": r"D:\cmd.exe"}],
        WINDOWS_TYPES,
    )
    run = run_sigma(
        con,
        rules_from(CMD_RULE, NET_RULE, LINUX_RULE),
        tables=["DeviceProcessEvents", "windowsevents"],  # table names case-insensitive
        timeout=30,
        workers=2,
    )
    cmd = run.matches_for("00000000-0000-0000-0000-000000000001")
    assert sorted(m.table for m in cmd) == ["DeviceProcessEvents", "WindowsEvents"]
    assert run.counts["00000000-0000-0000-0000-000000000001"] == 2
    assert run.rules_by_table == {"DeviceProcessEvents": 1, "WindowsEvents": 2}
    assert table_kind("DeviceNetworkEvents") == "defender"
    assert table_kind("WindowsEvents") == "windows"
    assert table_kind("proxy_logs") == "generic"


def test_generic_table_applies_rules_whose_fields_it_has() -> None:
    con = connect()
    make_table(
        con,
        "auditd",
        [{"type": "EXECVE", "a0": "UNAME"}, {"type": "EXECVE", "a0": "ls"}],
        {"type": "VARCHAR", "a0": "VARCHAR"},
    )
    run = run_sigma(con, rules_from(CMD_RULE, LINUX_RULE), tables=["auditd"], timeout=30)
    assert run.counts == {"00000000-0000-0000-0000-000000000003": 1}
    assert [i.title for i in run.not_applicable] == ["Cmd start"]


def test_unknown_table_is_an_input_error() -> None:
    con = connect()
    with pytest.raises(InputError, match="no table"):
        run_sigma(con, RuleSet(), tables=["Nope"], timeout=5)


def test_a_failing_rule_is_listed_once_with_its_reason() -> None:
    bad = """
        title: Lookahead
        id: 00000000-0000-0000-0000-00000000000b
        logsource: {product: windows, category: process_creation}
        detection:
            selection:
                CommandLine|re: 'a(?!b)'
            condition: selection
    """
    placeholder = """
        title: Placeholder
        id: 00000000-0000-0000-0000-00000000000c
        logsource: {product: windows, category: process_creation}
        detection:
            selection:
                User|expand: '%admins%'
            condition: selection
    """
    schemas = {
        "WindowsEvents": dict(WINDOWS_TYPES),
        "DeviceProcessEvents": {"ProcessCommandLine": "VARCHAR", "FolderPath": "VARCHAR"},
    }
    result = compile_rules(rules_from(bad, placeholder, CMD_RULE), schemas)
    by_id = {p.rule_id: p for p in result.problems}
    assert len(result.problems) == 2
    lookahead = by_id["00000000-0000-0000-0000-00000000000b"]
    assert "WindowsEvents" in lookahead.reason and "RE2" in lookahead.reason
    assert "%admins%" in by_id["00000000-0000-0000-0000-00000000000c"].reason
    assert result.outcome["00000000-0000-0000-0000-000000000001"] == "converted"
    assert result.outcome["00000000-0000-0000-0000-00000000000b"] == "failed"


def test_combined_query_failure_is_isolated_to_the_bad_rule() -> None:
    con = connect()
    make_table(con, "T", [{"a": "x"}], {"a": "VARCHAR"})
    good = CompiledRule(_info("good"), "T", "lower(\"a\") = 'x'")
    broken = CompiledRule(_info("broken"), "T", 'no_such_function("a")')
    run = run_compiled(con, Compilation(rules={"T": [good, broken]}), timeout=30)
    assert run.counts == {"good": 1, "broken": 0}
    [problem] = run.problems
    assert problem.rule_id == "broken" and "DuckDB rejected" in problem.reason


def _info(rule_id: str) -> RuleInfo:
    return RuleInfo(rule_id, rule_id, None, None, (), (), (), None, None, None, None)


def test_matches_are_capped_per_rule_but_counted_exactly() -> None:
    con = connect()
    make_table(con, "T", [{"a": "x"}] * 25, {"a": "VARCHAR"})
    rule = CompiledRule(_info("r"), "T", "lower(\"a\") = 'x'")
    run = run_compiled(con, Compilation(rules={"T": [rule]}), timeout=30, max_matches_per_rule=10)
    assert run.counts == {"r": 25}
    assert len(run.matches) == 10
    assert run.truncated == {"r"}


def test_timeout_stops_the_query() -> None:
    con = connect()
    con.execute("CREATE TABLE T AS SELECT md5(i::VARCHAR) AS a FROM range(3000000) t(i)")
    lock_down(con)
    slow = " AND ".join(f"regexp_matches(\"a\", '{i}.*{i + 1}.*{i + 2}')" for i in range(8))
    rule = CompiledRule(_info("slow"), "T", slow)
    with pytest.raises(QueryTimeoutError, match="Sigma rules on table T"):
        run_compiled(con, Compilation(rules={"T": [rule]}), timeout=0.05)


# -- loading and selection -------------------------------------------------------------------


def test_load_rules_reports_bad_files_and_keeps_the_rest(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(textwrap.dedent(CMD_RULE))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "net.yaml").write_text(textwrap.dedent(NET_RULE))
    (tmp_path / "broken.yml").write_text("title: [unclosed\n")
    (tmp_path / "badmod.yml").write_text(
        textwrap.dedent(CMD_RULE)
        .replace("Image|endswith", "Image|nosuchmodifier")
        .replace("0001", "0009")
    )
    (tmp_path / "notes.txt").write_text("ignored")
    loaded = load_rules([tmp_path])
    assert sorted(r.title for r in loaded.rules) == ["Cmd start", "Net connection"]
    reasons = {Path(p.path or "").name: p.reason for p in loaded.problems}
    assert set(reasons) == {"broken.yml", "badmod.yml"}
    assert reasons["badmod.yml"].startswith("cannot load:")
    assert "nosuchmodifier" in reasons["badmod.yml"]
    with pytest.raises(InputError):
        load_rules([tmp_path / "missing"])


def test_select_rules() -> None:
    rules = rules_from(CMD_RULE, NET_RULE, LINUX_RULE)

    def titles(**kw: Any) -> list[str]:
        return sorted(r.title for r in select_rules(rules, **kw).rules)

    assert titles(techniques=["T1059"]) == ["Cmd start"]  # parent selects sub-technique
    assert titles(techniques=["t1059.003", "T1082"]) == ["Cmd start", "Linux thing"]
    assert titles(techniques=["T1059.001"]) == []
    assert titles(tactics=["Command and Control"]) == ["Net connection"]
    assert titles(tactics=["TA0002"]) == ["Cmd start"]
    assert titles(tactics=["defense_evasion"]) == []
    assert titles(levels=["medium+"]) == ["Cmd start", "Net connection"]
    assert titles(levels=["low"]) == ["Linux thing"]
    assert titles(statuses=["stable", "test"]) == ["Cmd start", "Net connection"]
    assert titles(levels=["high"], statuses=["test"]) == []
    for bad in (
        {"techniques": ["1059"]},
        {"levels": ["severe"]},
        {"statuses": ["done"]},
        {"tactics": ["TA9999x!"]},
    ):
        with pytest.raises(InputError):
            select_rules(rules, **bad)  # type: ignore[arg-type]


# -- correlations ----------------------------------------------------------------------------

FAILED_LOGON = """
    title: Failed logon
    id: 00000000-0000-0000-0000-0000000000f1
    name: failed_logon
    logsource: {product: windows, service: security}
    detection:
        selection:
            EventID: 4625
        condition: selection
"""
SUCCESS_LOGON = """
    title: Successful logon
    id: 00000000-0000-0000-0000-0000000000f2
    name: success_logon
    logsource: {product: windows, service: security}
    detection:
        selection:
            EventID: 4624
        condition: selection
"""


def correlation(body: str, cid: str = "c0") -> str:
    return (
        f"title: Correlation {cid}\nid: 00000000-0000-0000-0000-0000000000{cid}\n"
        "level: high\ntags: [attack.credential-access, attack.t1110]\n" + textwrap.dedent(body)
    )


def logon_table() -> duckdb.DuckDBPyConnection:
    con = connect()
    events = [
        # host A: alice fails 3 times within 2 minutes, then succeeds
        (0, "A", 4625, "alice"),
        (30, "A", 4625, "alice"),
        (90, "A", 4625, "alice"),
        (100, "A", 4624, "alice"),
        # host A: bob fails twice, far apart
        (0, "A", 4625, "bob"),
        (900, "A", 4625, "bob"),
        # host B: failures for 3 different users within a minute
        (0, "B", 4625, "u1"),
        (10, "B", 4625, "u2"),
        (20, "B", 4625, "u3"),
        # host C: success before failure (wrong order)
        (0, "C", 4624, "carol"),
        (5, "C", 4625, "carol"),
    ]
    rows = [
        {
            "EventID": eid,
            "Channel": "Security",
            "Computer": host,
            "TargetUserName": user,
            "TimeCreated": T0 + timedelta(seconds=sec),
        }
        for sec, host, eid, user in events
    ]
    make_table(con, "WindowsEvents", rows, WINDOWS_TYPES)
    return con


def test_event_count_correlation() -> None:
    corr = correlation(
        """
        correlation:
            type: event_count
            rules: [failed_logon]
            group-by: [Computer, TargetUserName]
            timespan: 2m
            condition: {gte: 3}
        """
    )
    run = run_sigma(
        logon_table(), rules_from(FAILED_LOGON, corr), tables=["WindowsEvents"], timeout=30
    )
    [alert] = run.matches_for("00000000-0000-0000-0000-0000000000c0")
    assert alert.row["Computer"] == "A" and alert.row["TargetUserName"] == "alice"
    assert alert.row["first_seen"] == T0
    assert alert.row["last_seen"] == T0 + timedelta(seconds=90)
    assert alert.row["correlation_value"] == 3
    assert alert.techniques == ("T1110",)
    # the referenced rule says generate: false (default), so its own matches are not reported
    assert "00000000-0000-0000-0000-0000000000f1" not in run.counts
    assert not run.problems


def test_value_count_correlation() -> None:
    corr = correlation(
        """
        correlation:
            type: value_count
            rules: [failed_logon]
            group-by: [Computer]
            timespan: 1m
            condition: {gte: 3, field: TargetUserName}
        """
    )
    run = run_sigma(
        logon_table(), rules_from(FAILED_LOGON, corr), tables=["WindowsEvents"], timeout=30
    )
    [alert] = run.matches_for("00000000-0000-0000-0000-0000000000c0")
    assert alert.row["Computer"] == "B" and alert.row["correlation_value"] == 3


def test_temporal_and_temporal_ordered_correlation() -> None:
    unordered = correlation(
        """
        correlation:
            type: temporal
            rules: [failed_logon, success_logon]
            group-by: [Computer, TargetUserName]
            timespan: 5m
            generate: true
        """,
        "c1",
    )
    ordered = correlation(
        """
        correlation:
            type: temporal_ordered
            rules: [failed_logon, success_logon]
            group-by: [Computer, TargetUserName]
            timespan: 5m
            generate: true
        """,
        "c2",
    )
    run = run_sigma(
        logon_table(),
        rules_from(FAILED_LOGON, SUCCESS_LOGON, unordered, ordered),
        tables=["WindowsEvents"],
        timeout=30,
    )
    hosts = sorted(
        m.row["Computer"] for m in run.matches_for("00000000-0000-0000-0000-0000000000c1")
    )
    assert hosts == ["A", "C"]  # both rules seen for alice@A and carol@C
    [ordered_alert] = run.matches_for("00000000-0000-0000-0000-0000000000c2")
    assert ordered_alert.row["Computer"] == "A"  # carol@C succeeded before failing
    assert ordered_alert.row["last_seen"] == T0 + timedelta(seconds=100)
    # both say generate: true, so the base rules report their own matches too
    assert run.counts["00000000-0000-0000-0000-0000000000f1"] == 9


def test_unsupported_correlations_are_problems() -> None:
    extended = correlation(
        """
        correlation:
            type: temporal
            rules: [failed_logon, success_logon]
            timespan: 5m
            condition: failed_logon and not success_logon
        """
    )
    rules = rules_from(FAILED_LOGON, SUCCESS_LOGON, extended)
    result = compile_rules(rules, {"WindowsEvents": dict(WINDOWS_TYPES)})
    [problem] = result.problems
    assert "extended" in problem.reason
    no_time = compile_rules(
        rules_from(
            FAILED_LOGON,
            correlation(
                "correlation:\n  type: event_count\n  rules: [failed_logon]\n  timespan: 1m\n"
                "  condition: {gte: 2}\n"
            ),
        ),
        {"WindowsEvents": {c: t for c, t in WINDOWS_TYPES.items() if c != "TimeCreated"}},
    )
    [problem] = no_time.problems
    assert "timestamp" in problem.reason
