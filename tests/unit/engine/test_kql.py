"""KQL through duckdb-kql: offline checks, refusals, confinement, timeouts, built-ins."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from defensemap.engine.kql import (
    KqlCheck,
    KqlError,
    KqlParseError,
    KqlProblem,
    KqlUnknownColumnError,
    KqlUnknownTableError,
    KqlUnsafeError,
    KqlUnsupportedError,
    check_kql,
    format_check,
    run_kql,
)
from defensemap.engine.kql.sql import SAFE_TABLE_FUNCTIONS, _sql_refs, _sql_safety_problem
from defensemap.engine.kql_functions import BUILTINS, INVOKE_PRELUDES, STORED_FUNCTIONS
from defensemap.errors import InputError
from defensemap.logs.duck import QueryTimeoutError, connect, lock_down, with_timeout

# Real-world-style hunting queries, written for these tests.
HUNTING_QUERIES = {
    "office_spawns_encoded_powershell": """
// Encoded PowerShell started by an Office application
let lookback = 7d;
DeviceProcessEvents
| where Timestamp > ago(lookback)
| where InitiatingProcessFileName in~ ("winword.exe", "excel.exe", "outlook.exe")
| where FileName =~ "powershell.exe"
| where ProcessCommandLine has_any ("-enc", "-EncodedCommand", "FromBase64String")
| extend Elevation = tostring(parse_json(AdditionalFields).ProcessTokenElevation)
| summarize Runs = count(), Commands = make_set(ProcessCommandLine, 20), FirstSeen = min(Timestamp)
    by DeviceName, AccountName, bin(Timestamp, 1h)
| where Runs > 2
| project DeviceName, AccountName, Runs, Commands, FirstSeen
| order by Runs desc
""",
    "password_spray": """
SigninLogs
| where TimeGenerated > ago(1d)
| where ResultType != "0" and AppDisplayName contains "Azure"
| extend City = tostring(LocationDetails.city), Browser = tostring(todynamic(DeviceDetail).browser)
| summarize Failures = count(), IPs = make_set(IPAddress), Cities = dcount(City)
    by UserPrincipalName, bin(TimeGenerated, 10m)
| where Failures >= 10 and Cities > 1
""",
    "role_added_by_risky_user": """
AuditLogs
| where OperationName has "Add member to role"
| mv-expand Target = TargetResources
| extend RoleName = tostring(parse_json(tostring(Target.modifiedProperties))[1].newValue)
| extend Actor = tostring(InitiatedBy.user.userPrincipalName),
         TargetUser = tostring(Target.userPrincipalName)
| where RoleName contains "Admin"
| join kind=inner (
    SigninLogs
    | where RiskLevelDuringSignIn in ("high", "medium")
    | project UserPrincipalName, RiskTime = TimeGenerated
  ) on $left.Actor == $right.UserPrincipalName
| project TimeGenerated, Actor, TargetUser, RoleName, RiskTime
""",
    "lolbin_download": """
DeviceProcessEvents
| where FileName in~ ("rundll32.exe", "regsvr32.exe", "mshta.exe")
| where ProcessCommandLine matches regex @"(?i)https?://"
| extend Url = extract(@"(https?://[^\\s""]+)", 1, ProcessCommandLine)
| where isnotempty(Url)
| summarize Devices = dcount(DeviceId), Example = take_any(ProcessCommandLine) by Url
| top 20 by Devices
""",
    "remote_session_processes": """
DeviceProcessEvents
| where Timestamp between (ago(3d) .. now())
| where IsProcessRemoteSession == true
| extend Extra = todynamic(AdditionalFields)
| mv-expand Extra
| summarize Sessions = dcount(ProcessRemoteSessionIP),
            Hosts = make_set(ProcessRemoteSessionDeviceName) by DeviceName
| where Sessions > 3
""",
    "new_device_processes": """
DeviceProcessEvents
| where Timestamp > ago(7d)
| summarize by DeviceId
| join kind=leftanti (DeviceInfo | distinct DeviceId) on DeviceId
""",
}


def _check(text: str, **kwargs: object) -> KqlCheck:
    check = check_kql(text, **kwargs)  # type: ignore[arg-type]
    assert isinstance(check, KqlCheck)
    return check


def _only(check: KqlCheck) -> KqlProblem:
    assert not check.ok, format_check(check)
    assert check.problems
    return check.problems[0]


# --------------------------------------------------------------------------------------
# check_kql: what passes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HUNTING_QUERIES))
def test_hunting_queries_pass(name: str) -> None:
    check = _check(HUNTING_QUERIES[name])
    assert check.ok, format_check(check)
    assert check.problems == []
    assert check.sql and check.sql.lstrip().upper().startswith(("WITH", "SELECT"))
    assert format_check(check) == "ok"


def test_tables_are_reported() -> None:
    assert _check(HUNTING_QUERIES["role_added_by_risky_user"]).tables == [
        "AuditLogs",
        "SigninLogs",
    ]
    assert _check("range x from 1 to 3 step 1").tables == []


def test_extra_tables_for_custom_logs() -> None:
    query = "MyApp_CL | where Level_s == 'Error' | summarize count() by bin(TimeGenerated, 1h)"
    assert _only(_check(query)).kind == "unknown_table"
    extra = {"MyApp_CL": [("TimeGenerated", "datetime"), ("Level_s", "string")]}
    assert _check(query, extra_tables=extra).ok
    with pytest.raises(InputError):
        check_kql(query, extra_tables={"MyApp_CL": [("x", "nonsense")]})


def test_declared_parameters_without_values_still_check_columns() -> None:
    ok = "declare query_parameters(dev:string);\nDeviceProcessEvents | where DeviceName == dev"
    assert _check(ok).ok
    bad = "declare query_parameters(dev:string);\nDeviceProcessEvents | where DeviceNme == dev"
    assert _only(_check(bad)).kind == "unknown_column"


# --------------------------------------------------------------------------------------
# check_kql: what fails, and where
# --------------------------------------------------------------------------------------


def test_parse_error_line_and_column() -> None:
    problem = _only(_check("DeviceProcessEvents\n| where FileName == 'x\n| take 1"))
    assert (problem.kind, problem.construct, problem.line, problem.column) == (
        "parse_error",
        "'x",
        2,
        21,
    )
    problem = _only(_check("DeviceProcessEvents\n| where FileName =="))
    assert (problem.kind, problem.line, problem.column) == ("parse_error", 2, 20)
    assert "ends too early" in problem.message


def test_parse_error_names_an_unknown_operator() -> None:
    problem = _only(_check("DeviceProcessEvents\n| wherex FileName == 'a'"))
    assert (problem.kind, problem.construct, problem.line, problem.column) == (
        "parse_error",
        "wherex",
        2,
        3,
    )


def test_parse_error_points_at_an_unclosed_bracket() -> None:
    problem = _only(_check("DeviceProcessEvents\n| where (FileName == 'x'\n| take 1"))
    assert (problem.kind, problem.construct, problem.line, problem.column) == (
        "parse_error",
        "(",
        2,
        9,
    )


def test_empty_query() -> None:
    problem = _only(_check("  // only a comment\n"))
    assert problem.kind == "parse_error"


@pytest.mark.parametrize(
    ("query", "construct", "line", "column"),
    [
        # operators duckdb-kql does not translate
        (
            "DeviceProcessEvents\n| make-series n = count() on Timestamp step 1h",
            "make-series",
            2,
            3,
        ),
        ("DeviceProcessEvents\n| project-reorder FileName", "project-reorder", 2, 3),
        (
            "DeviceProcessEvents\n| evaluate bag_unpack(AdditionalFields)",
            "evaluate bag_unpack",
            2,
            3,
        ),
        ("DeviceProcessEvents\n| serialize", "serialize", 2, 3),
        # `!has_any`: duckdb-kql misreads it as `!has` applied to a function `_any`
        ("DeviceProcessEvents\n| where FileName !has_any ('a', 'b')", "!has_any", 2, 18),
        # valid KQL the parser rejects: reported as unsupported, not as a syntax error
        ("let f = (t:string) { table(t) | take 1 };\nf('SigninLogs')", "table()", 1, 22),
        # a type literal inside an expression
        (
            "DeviceEvents\n| extend P = extractjson('$.Pipe', AdditionalFields, typeof(string))",
            "typeof",
            2,
            54,
        ),
        # functions duckdb-kql does not translate (the error has no span: found in the text)
        ("DeviceNetworkEvents\n| where ipv4_is_private(RemoteIP)", "ipv4_is_private", 2, 9),
        (
            "DeviceProcessEvents\n| summarize percentiles(FileSize, 50, 95) by DeviceName",
            "percentiles",
            2,
            13,
        ),
    ],
)
def test_unsupported_feature_names_the_construct(
    query: str, construct: str, line: int, column: int
) -> None:
    problem = _only(_check(query))
    assert (problem.kind, problem.construct, problem.line, problem.column) == (
        "unsupported_feature",
        construct,
        line,
        column,
    )
    assert construct.split(maxsplit=1)[0] in problem.message


def test_unsupported_column_is_right_after_an_invoke_prelude() -> None:
    # `invoke DeviceFromIP()` adds a one-line `let` before the query; positions on line 1
    # must still be the user's.
    query = (
        "DeviceNetworkEvents | project IP = LocalIP | invoke DeviceFromIP() "
        "| make-series n = count() on Timestamp step 1h"
    )
    problem = _only(_check(query))
    assert (problem.construct, problem.line, problem.column) == (
        "make-series",
        1,
        query.index("make-series") + 1,
    )


def test_unknown_table_with_suggestion() -> None:
    problem = _only(_check("DeviceProcessEvent\n| take 10"))
    assert (problem.kind, problem.construct, problem.line, problem.column) == (
        "unknown_table",
        "DeviceProcessEvent",
        1,
        1,
    )
    assert "did you mean DeviceProcessEvents?" in problem.message


def test_table_names_are_case_sensitive() -> None:
    # DuckDB would happily bind this; Kusto does not.
    problem = _only(_check("deviceprocessevents | take 1"))
    assert problem.kind == "unknown_table"
    assert "DeviceProcessEvents" in problem.message


def test_unknown_table_inside_join() -> None:
    problem = _only(_check("SigninLogs\n| join kind=inner (AuditLog) on CorrelationId"))
    assert (problem.kind, problem.construct, problem.line) == ("unknown_table", "AuditLog", 2)
    assert "AuditLogs" in problem.message


def test_unknown_column() -> None:
    problem = _only(_check("DeviceProcessEvents\n| where ProcessCommandLin has 'mimikatz'"))
    assert (problem.kind, problem.construct, problem.line, problem.column) == (
        "unknown_column",
        "ProcessCommandLin",
        2,
        9,
    )
    assert "ProcessCommandLine" in problem.message


@pytest.mark.parametrize(
    "query",
    [
        "DeviceProcessEvents | project DeviceName, Nope",
        "DeviceProcessEvents | summarize count() by Nope",
        "DeviceProcessEvents | join kind=inner (DeviceInfo) on Nope",
        "DeviceProcessEvents | project-away Nope",
        "DeviceProcessEvents | sort by Nope",
        "DeviceProcessEvents | mv-expand Nope",
    ],
)
def test_unknown_column_in_any_operator(query: str) -> None:
    problem = _only(_check(query))
    assert (problem.kind, problem.construct, problem.line) == ("unknown_column", "Nope", 1)
    assert problem.column == query.index("Nope") + 1


def test_column_names_are_case_sensitive() -> None:
    problem = _only(_check("DeviceProcessEvents\n| where processcommandline has 'x'"))
    assert (problem.kind, problem.construct, problem.line, problem.column) == (
        "unknown_column",
        "processcommandline",
        2,
        9,
    )
    assert "ProcessCommandLine" in problem.message
    # a name the query defines itself is not a table column
    defines = "DeviceProcessEvents | summarize by devicename = tolower(DeviceName)\n"
    assert _check(defines + "| where devicename startswith 'a'").ok
    # ...but one that clashes with an input column only in case cannot be represented
    problem = _only(_check("DeviceProcessEvents | extend devicename = tolower(DeviceName)"))
    assert problem.kind == "unsupported_feature"
    assert "'DeviceName' and 'devicename'" in problem.message
    # dynamic properties are JSON keys, not columns
    assert _check("SigninLogs | extend c = tostring(LocationDetails.city)").ok


def test_type_errors_are_reported() -> None:
    problem = _only(_check("DeviceProcessEvents | where Timestamp > 5"))
    assert problem.kind == "type_error"


# --------------------------------------------------------------------------------------
# Safety refusals in the KQL text
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "construct"),
    [
        (
            "let iocs = externaldata(sha1:string)[@'https://example.com/iocs.csv'] "
            "with (format='csv');\nDeviceProcessEvents | where SHA1 in (iocs)",
            "externaldata",
        ),
        (
            "externaldata(line:string)[@'file:///etc/passwd'] with (format='txt')",
            "externaldata",
        ),
        ("external_table('Secrets') | take 1", "external_table"),
        (
            "DeviceProcessEvents | evaluate http_request('http://example.com')",
            "evaluate http_request",
        ),
        ("DeviceProcessEvents | evaluate python(typeof(*), 'result = df')", "evaluate python"),
        (
            "DeviceProcessEvents | evaluate sql_request('Server=x', 'SELECT 1')",
            "evaluate sql_request",
        ),
        (".attach database Stolen from @'/etc/passwd'", ".attach"),
        (".ingest into table DeviceProcessEvents (@'/etc/passwd')", ".ingest"),
        (".set-or-replace DeviceProcessEvents <| print x = 1", ".set-or-replace"),
    ],
)
def test_unsafe_constructs_are_refused(query: str, construct: str) -> None:
    problem = _only(_check(query))
    assert (problem.kind, problem.construct) == ("unsafe", construct)
    assert problem.line is not None and problem.column is not None


def test_unsafe_word_inside_a_string_is_fine() -> None:
    query = (
        "DeviceProcessEvents | where ProcessCommandLine has 'externaldata(' "
        "or FileName == 'evaluate' // externaldata in a comment"
    )
    assert _check(query).ok


def test_remote_sources_are_unsupported() -> None:
    problem = _only(_check("cluster('help').database('Samples').StormEvents | take 1"))
    assert (problem.kind, problem.construct) == ("unsupported_feature", "cluster()")
    problem = _only(_check("workspace('other').SigninLogs | take 1"))
    assert (problem.kind, problem.construct) == ("unsupported_feature", "workspace()")


def test_control_commands_that_read_are_not_queries() -> None:
    problem = _only(_check(".show tables"))
    assert (problem.kind, problem.construct) == ("unsupported_feature", ".show")


# --------------------------------------------------------------------------------------
# Output formats and error classes
# --------------------------------------------------------------------------------------


def test_format_check() -> None:
    check = _check("DeviceProcessEvent | take 1")
    assert format_check(check) == (
        "unknown_table: DeviceProcessEvent at line 1, column 1\n"
        "no table named 'DeviceProcessEvent' in the catalog; did you mean DeviceProcessEvents?"
    )
    no_position = KqlCheck(False, [KqlProblem("type_error", "sum", None, None, "bad types")])
    assert format_check(no_position) == "type_error: sum\nbad types"
    assert check.to_dict()["ok"] is False


def test_kql_error_text_and_class() -> None:
    problem = KqlProblem("unknown_column", "Foo", 3, 7, "no column named 'Foo'")
    error = KqlError.from_problem(problem)
    assert isinstance(error, KqlUnknownColumnError)
    assert isinstance(error, InputError) and error.exit_code == 2
    assert str(error) == "unknown_column: Foo at line 3, column 7 — no column named 'Foo'"
    assert error.problem is problem
    assert error.to_dict()["code"] == "unknown_column"
    location = error.to_dict()["location"]
    assert isinstance(location, dict) and location["line"] == 3


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(
            [
                "DeviceProcessEvents",
                "SigninLogs",
                "|",
                "where",
                "project",
                "extend",
                "x",
                "=",
                "==",
                "(",
                ")",
                "'a",
                "'b'",
                "\n",
                "summarize",
                "count()",
                "by",
                ",",
                "join",
                "on",
                "DeviceId",
                "let",
                ";",
                "1d",
                "ago(",
                "evaluate",
                "[",
                "]",
                "mv-expand",
                "$left.",
                "@'",
                "//",
                "datatable(a:string)",
                "invoke",
                "{",
            ]
        ),
        max_size=14,
    ).map(" ".join)
)
def test_check_never_raises(text: str) -> None:
    check = check_kql(text)
    assert check.ok or check.problems


# --------------------------------------------------------------------------------------
# The locked-down connection, and what duckdb-kql generates
# --------------------------------------------------------------------------------------


@pytest.fixture()
def locked() -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect()
    con.execute(
        "CREATE TABLE DeviceProcessEvents (Timestamp TIMESTAMP, DeviceId VARCHAR, "
        "DeviceName VARCHAR, FileName VARCHAR, ProcessCommandLine VARCHAR, "
        "AdditionalFields JSON, _dm_source VARCHAR)"
    )
    con.execute(
        "INSERT INTO DeviceProcessEvents VALUES "
        "(now() - INTERVAL 1 HOUR, 'd1', 'host1', 'powershell.exe', "
        "'powershell -enc SQBFAFgA', '{\"ProcessTokenElevation\": \"Full\"}', 'a.json'), "
        "(now() - INTERVAL 2 HOUR, 'd2', 'host2', 'notepad.exe', 'notepad a.txt', NULL, 'a.json')"
    )
    lock_down(con)
    try:
        yield con
    finally:
        con.close()


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        "COPY DeviceProcessEvents TO '/tmp/defensemap-exfil.csv'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "ATTACH '/tmp/defensemap-other.duckdb' AS other",
        "SELECT * FROM glob('/etc/*')",
    ],
)
def test_locked_connection_refuses_file_and_network_access(
    locked: duckdb.DuckDBPyConnection, statement: str
) -> None:
    with pytest.raises(duckdb.PermissionException):
        locked.execute(statement)


@pytest.mark.parametrize(
    "statement",
    ["SET enable_external_access = true", "RESET lock_configuration", "SET memory_limit = '64GB'"],
)
def test_locked_configuration_cannot_be_undone(
    locked: duckdb.DuckDBPyConnection, statement: str
) -> None:
    with pytest.raises(duckdb.InvalidInputException, match="locked"):
        locked.execute(statement)


def test_generated_sql_is_a_select_over_tables_only(locked: duckdb.DuckDBPyConnection) -> None:
    extra = [
        "range x from 1 to 5 step 1 | extend y = x * 2",
        "datatable(a:string, b:long)['x', 1, 'y', 2] | mv-expand c = pack_array(a, b)",
        "print s = strcat('a', 'b'), n = strlen('abc')",
    ]
    for text in [*HUNTING_QUERIES.values(), *extra]:
        check = _check(text)
        assert check.ok and check.sql, format_check(check)
        refs = _sql_refs(locked, check.sql)
        assert refs.error is None
        assert refs.table_functions <= SAFE_TABLE_FUNCTIONS
        assert _sql_safety_problem(refs) is None


@pytest.mark.parametrize(
    ("sql", "construct"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
        ("WITH a AS (SELECT * FROM read_parquet('/x.parquet')) SELECT * FROM a", "read_parquet"),
        ("SELECT * FROM query('SELECT 1')", "query"),
        ("COPY t TO '/tmp/x.csv'", "generated SQL"),
        ("ATTACH '/tmp/x.db' AS x", "generated SQL"),
        ("SELECT 1; SELECT 2", "generated SQL"),
    ],
)
def test_sql_that_reads_files_is_refused_before_it_runs(
    locked: duckdb.DuckDBPyConnection, sql: str, construct: str
) -> None:
    problem = _sql_safety_problem(_sql_refs(locked, sql))
    assert problem is not None
    assert (problem.kind, problem.construct) == ("unsafe", construct)


# --------------------------------------------------------------------------------------
# run_kql
# --------------------------------------------------------------------------------------


def test_run_kql_on_the_locked_connection(locked: duckdb.DuckDBPyConnection) -> None:
    result = run_kql(
        locked,
        "DeviceProcessEvents\n| where Timestamp > ago(1d)\n"
        "| where ProcessCommandLine has_any ('-enc', '-EncodedCommand')\n"
        "| extend Elevation = tostring(parse_json(AdditionalFields).ProcessTokenElevation)\n"
        "| project DeviceName, FileName, Elevation",
        timeout=10,
        label="rule encoded-ps",
        tables_present=["DeviceProcessEvents"],
    )
    assert result.columns == ["DeviceName", "FileName", "Elevation"]
    assert result.rows == [("host1", "powershell.exe", "Full")]
    assert not result.truncated


def test_run_kql_max_rows(locked: duckdb.DuckDBPyConnection) -> None:
    result = run_kql(
        locked,
        "DeviceProcessEvents | project DeviceName | order by DeviceName asc",
        timeout=10,
        label="r",
        tables_present=["DeviceProcessEvents"],
        max_rows=1,
    )
    assert result.rows == [("host1",)] and result.truncated


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("externaldata(x:string)[@'/etc/passwd'] with (format='txt')", KqlUnsafeError),
        ("DeviceProcessEvents | evaluate http_request('http://example.com')", KqlUnsafeError),
        ("DeviceProcessEvents | where", KqlParseError),
        ("DeviceProcessEvents | make-series n = count() on Timestamp step 1h", KqlUnsupportedError),
        ("DeviceProcessEvents | invoke FileProfile()", KqlUnsupportedError),
        ("SigninLogs | take 1", KqlUnknownTableError),
        ("DeviceProcessEvent | take 1", KqlUnknownTableError),
        ("DeviceProcessEvents | where devicename == 'host1'", KqlUnknownColumnError),
        ("DeviceProcessEvents | where Nope == 'host1'", KqlUnknownColumnError),
    ],
)
def test_run_kql_refuses_before_running(
    locked: duckdb.DuckDBPyConnection, query: str, error: type[KqlError]
) -> None:
    with pytest.raises(error) as caught:
        run_kql(locked, query, timeout=10, label="r", tables_present=["DeviceProcessEvents"])
    assert str(caught.value).startswith(f"{caught.value.problem.kind}: ")


def test_run_kql_table_without_logs(locked: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(KqlUnknownTableError, match="no logs for it are loaded"):
        run_kql(locked, "SigninLogs | take 1", timeout=10, label="r", tables_present=[])


def test_run_kql_names_the_table_behind_a_let(locked: duckdb.DuckDBPyConnection) -> None:
    # duckdb-kql reports the let (WinRmLogons), which is not what is missing
    query = (
        "let WinRmLogons = DeviceLogonEvents | where ActionType == 'LogonSuccess';\n"
        "let Hosts = WinRmLogons | project DeviceName;\n"
        "Hosts | join kind=inner DeviceProcessEvents on DeviceName"
    )
    with pytest.raises(KqlUnknownTableError) as caught:
        run_kql(locked, query, timeout=10, label="r", tables_present=["DeviceProcessEvents"])
    assert str(caught.value) == (
        "unknown_table: DeviceLogonEvents at line 1, column 19 — table 'DeviceLogonEvents' "
        "(read through let WinRmLogons) is in the catalog, but no logs for it are loaded"
    )


def test_check_names_a_misspelt_table_behind_a_let() -> None:
    problem = _only(
        _check(
            "let W = DeviceLogonEvent | where ActionType == 'x';\n"
            "W | join kind=inner DeviceProcessEvents on DeviceName"
        )
    )
    assert (problem.kind, problem.construct, problem.line, problem.column) == (
        "unknown_table",
        "DeviceLogonEvent",
        1,
        9,
    )
    assert problem.message == (
        "no table named 'DeviceLogonEvent' in the catalog (read through let W); "
        "did you mean DeviceLogonEvents?"
    )


# --------------------------------------------------------------------------------------
# Timeout
# --------------------------------------------------------------------------------------

SLOW_SQL = "SELECT count(*) FROM range(100000) a(x), range(100000) b(y) WHERE (a.x * b.y) % 7 = 3"
SLOW_KQL = (
    "range x from 1 to 100000 step 1 | extend k = 1\n"
    "| join kind=inner (range y from 1 to 100000 step 1 | extend k = 1) on k\n"
    "| where (x * y) % 7 == 3\n| count"
)


@pytest.mark.slow
def test_slow_query_really_is_slow(locked: duckdb.DuckDBPyConnection) -> None:
    # Unbounded, the cross join of 1e5 x 1e5 takes far longer than 2 s: a 2.5 s budget
    # is not enough for it.
    start = time.perf_counter()
    with pytest.raises(QueryTimeoutError):
        with_timeout(locked, lambda: locked.execute(SLOW_SQL).fetchall(), 2.5, "probe")
    assert time.perf_counter() - start >= 2.5


@pytest.mark.slow
def test_timeout_interrupts_and_names_the_rule(locked: duckdb.DuckDBPyConnection) -> None:
    start = time.perf_counter()
    with pytest.raises(QueryTimeoutError, match="rule T1059-slow ran longer than 1 s") as caught:
        run_kql(locked, SLOW_KQL, timeout=1, label="rule T1059-slow", tables_present=[])
    elapsed = time.perf_counter() - start
    assert 1.0 <= elapsed < 5.0
    assert caught.value.hint and "--timeout" in caught.value.hint
    # the connection is usable afterwards, and no timer is left running
    assert locked.execute("SELECT 42").fetchall() == [(42,)]
    assert not [t for t in threading.enumerate() if isinstance(t, threading.Timer) and t.is_alive()]


# --------------------------------------------------------------------------------------
# Defender built-ins
# --------------------------------------------------------------------------------------


@pytest.fixture()
def network() -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect()
    con.execute(
        "CREATE TABLE DeviceNetworkInfo (Timestamp TIMESTAMP, DeviceId VARCHAR, "
        "DeviceName VARCHAR, NetworkAdapterName VARCHAR, NetworkAdapterType VARCHAR, "
        "NetworkAdapterStatus VARCHAR, ConnectedNetworks JSON, IPAddresses JSON)"
    )
    con.execute(
        """INSERT INTO DeviceNetworkInfo VALUES
        ('2024-01-01 00:00', 'd1', 'host1', 'eth0', 'Ethernet', 'Up', '[{"Name":"corp"}]',
         '[{"IPAddress":"10.0.0.5","SubnetPrefix":24,"AddressType":"Private"}]'),
        ('2024-01-02 00:00', 'd1', 'host1', 'eth0', 'Ethernet', 'Up', '[{"Name":"corp"}]',
         '[{"IPAddress":"10.0.0.6","SubnetPrefix":24,"AddressType":"Private"},
           {"IPAddress":"fe80::1","SubnetPrefix":64,"AddressType":"LinkLocal"}]'),
        ('2024-01-01 12:00', 'd2', 'host2', 'wifi', 'Wireless80211', 'Up', '[]',
         '[{"IPAddress":"10.0.0.6","SubnetPrefix":24,"AddressType":"Private"}]'),
        ('2024-01-01 12:00', 'd2', 'host2', 'vpn', 'Ppp', 'Down', '[]', '[]')"""
    )
    con.execute(
        "CREATE TABLE DeviceNetworkEvents AS SELECT * FROM (VALUES "
        "(TIMESTAMP '2024-01-02 01:00', '10.0.0.6', '10.0.0.9'), "
        "(TIMESTAMP '2024-01-02 01:00', '10.0.0.5', '10.0.0.9')) t(Timestamp, LocalIP, RemoteIP)"
    )
    lock_down(con)
    try:
        yield con
    finally:
        con.close()


def _run(con: duckdb.DuckDBPyConnection, text: str) -> list[tuple[object, ...]]:
    result = run_kql(
        con,
        text,
        timeout=10,
        label="builtin",
        tables_present=["DeviceNetworkInfo", "DeviceNetworkEvents"],
    )
    return sorted(result.rows, key=repr)


def test_assigned_ip_addresses(network: duckdb.DuckDBPyConnection) -> None:
    latest = _run(network, "AssignedIPAddresses('host1') | project IPAddress, IPType, Timestamp")
    assert [(ip, kind) for ip, kind, _ in latest] == [
        ("10.0.0.6", "Private"),
        ("fe80::1", "LinkLocal"),
    ]
    # by DeviceId and at a time: the report current then
    earlier = _run(
        network, "AssignedIPAddresses('d1', datetime(2024-01-01 06:00)) | project IPAddress"
    )
    assert earlier == [("10.0.0.5",)]
    assert _run(network, "AssignedIPAddresses('nobody')") == []


def test_assigned_ip_addresses_documented_example(network: duckdb.DuckDBPyConnection) -> None:
    query = """
let Date = datetime(2024-01-03);
let Device = "host1";
AssignedIPAddresses(Device, Date)
| project IPAddress, AssignedTime = Timestamp
| join kind=inner DeviceNetworkEvents on $left.IPAddress == $right.LocalIP
| where Timestamp between ((AssignedTime - 1h) .. (AssignedTime + 1h))
| project IPAddress, RemoteIP
"""
    assert _run(network, query) == [("10.0.0.6", "10.0.0.9")]


def test_device_from_ip(network: duckdb.DuckDBPyConnection) -> None:
    assert _run(network, "DeviceFromIP('10.0.0.6')") == [("10.0.0.6", "d1"), ("10.0.0.6", "d2")]
    assert _run(network, "DeviceFromIP('10.0.0.6', datetime(2024-01-01 18:00))") == [
        ("10.0.0.6", "d2")
    ]
    assert _run(network, "DeviceFromIP('10.0.0.5')") == []  # d1 moved on to .6


def test_invoke_device_from_ip(network: duckdb.DuckDBPyConnection) -> None:
    query = "DeviceNetworkEvents\n| project IP = LocalIP\n| invoke DeviceFromIP()"
    assert _run(network, query) == [("10.0.0.6", "d1"), ("10.0.0.6", "d2")]
    at = (
        "DeviceNetworkEvents | project IP = LocalIP "
        "| invoke DeviceFromIP(datetime(2024-01-01 18:00))"
    )
    assert _run(network, at) == [("10.0.0.5", "d1"), ("10.0.0.6", "d2")]


def test_provided_builtins_check_offline() -> None:
    check = _check("AssignedIPAddresses('host1', ago(1d))")
    assert check.ok and check.tables == ["DeviceNetworkInfo"]
    check = _check("DeviceNetworkEvents | project IP = LocalIP | invoke DeviceFromIP()")
    assert check.ok and check.tables == ["DeviceNetworkEvents", "DeviceNetworkInfo"]


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("DeviceFileEvents\n| take 10\n| invoke FileProfile(SHA1, 100)", "FileProfile"),
        ("DeviceFileEvents | project SHA1 | invoke FileProfile()", "FileProfile"),
        ("DeviceInfo\n| where OnboardingStatus != 'Onboarded'\n| invoke SeenBy()", "SeenBy"),
        ("_GetWatchlist('HighValueAssets') | project SearchKey", "_GetWatchlist"),
        ("BehaviorInfo | invoke GetFirstSeenBehaviors()", "GetFirstSeenBehaviors"),
    ],
)
def test_refused_builtins_are_named(query: str, name: str) -> None:
    problem = _only(_check(query))
    assert (problem.kind, problem.construct) == ("unsupported_feature", name)
    assert name in problem.message and BUILTINS[name][1] in problem.message
    assert problem.line == query[: query.index(name)].count("\n") + 1


def test_refused_builtin_in_run_kql(network: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(KqlUnsupportedError, match="FileProfile"):
        _run(network, "DeviceNetworkInfo | project SHA1 = DeviceId | invoke FileProfile()")


def test_builtins_table_is_consistent() -> None:
    defined = " ".join(STORED_FUNCTIONS)
    for name, (availability, why) in BUILTINS.items():
        assert why
        if availability == "provided":
            assert f" {name}(" in f" {defined}" or name in INVOKE_PRELUDES, name
        else:
            assert f"{name}(" not in defined, name


@pytest.mark.parametrize(
    ("query", "columns", "capped"),
    [
        ("T | summarize make_set(F, 2) by D", ["D", "set_F"], "set_F"),
        ("T | summarize Files = make_list(F, 2), n = count()", ["Files", "n"], "Files"),
        ("T | summarize s = tostring(make_set(F, 2))", ["s"], "s"),
    ],
)
def test_capped_aggregates_keep_at_most_max_size(
    query: str, columns: list[str], capped: str
) -> None:
    """duckdb-kql accepts make_set/make_list's maxSize and ignores it; the rewrite applies it
    (Kusto returns "up to maxSize" elements, in no stated order)."""
    con = connect()
    con.execute("CREATE TABLE T AS SELECT 'd' AS D, 'f' || (i % 5) AS F FROM range(20) t(i)")
    lock_down(con)
    result = run_kql(con, query, timeout=10, label="t", tables_present=["T"])
    assert result.columns == columns
    value = json.loads(result.rows[0][columns.index(capped)])
    assert len(value) == 2 and set(value) <= {f"f{i}" for i in range(5)}


@pytest.mark.parametrize(
    ("query", "construct", "column"),
    [
        ("T | summarize make_set(tolower(F), 2)", "make_set(…, maxSize)", 15),
        ("T | summarize b = make_bag(pack('a', F), 2)", "make_bag(…, maxSize)", 19),
        ("T | summarize s = make_set(F, toint(1))", "make_set(…, maxSize)", 19),
    ],
)
def test_capped_aggregates_that_cannot_be_rewritten_are_refused(
    query: str, construct: str, column: int
) -> None:
    problem = _only(check_kql(query, extra_tables={"T": [("D", "string"), ("F", "string")]}))
    assert (problem.kind, problem.construct, problem.line, problem.column) == (
        "unsupported_feature",
        construct,
        1,
        column,
    )
