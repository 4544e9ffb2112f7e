"""Exact KQL rewrites before duckdb-kql: deprecated aliases, 3-argument split, and a
timespan high bound of ``between`` over a datetime column — answers on small tables, the
refusals that stay, and positions reported where the user wrote them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest

from defensemap.engine.kql import KqlTypeError, KqlUnsupportedError, check_kql, run_kql
from defensemap.engine.kql.rewrite import DEPRECATED_ALIASES, rewrite
from defensemap.logs.duck import connect, lock_down


@pytest.fixture()
def logs() -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect()
    con.execute(
        "CREATE TABLE DeviceProcessEvents (Timestamp TIMESTAMP, DeviceName VARCHAR, "
        "FileName VARCHAR, ProcessCommandLine VARCHAR, AdditionalFields JSON)"
    )
    con.execute(
        "INSERT INTO DeviceProcessEvents VALUES "
        "(TIMESTAMP '2024-01-01 00:00:00', 'h1', 'powershell.exe', 'powershell -enc SQBF', "
        "'{\"a\": 1}'), "
        "(TIMESTAMP '2024-01-01 01:00:00', 'h1', 'cmd.exe', 'cmd /c whoami', NULL), "
        "(TIMESTAMP '2024-01-01 03:00:00', 'h2', 'cmd.exe', 'cmd', '{}')"
    )
    con.execute("CREATE TABLE Spans (Name VARCHAR, Took INTERVAL, Low INTERVAL)")
    con.execute(
        "INSERT INTO Spans VALUES ('fast', INTERVAL 30 MINUTE, INTERVAL 10 MINUTE), "
        "('slow', INTERVAL 3 HOUR, INTERVAL 10 MINUTE)"
    )
    lock_down(con)
    try:
        yield con
    finally:
        con.close()


def _rows(con: duckdb.DuckDBPyConnection, query: str) -> list[tuple[Any, ...]]:
    result = run_kql(
        con, query, timeout=10, label="t", tables_present=["DeviceProcessEvents", "Spans"]
    )
    return result.rows


def _values(array: Any) -> list[Any]:
    """A dynamic array as it comes back: JSON text (make_set) or a list (make_list)."""
    return list(json.loads(array) if isinstance(array, str) else array)


# --- deprecated aliases ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            "summarize S = makeset(FileName) by DeviceName",
            "summarize S = make_set(FileName) by DeviceName",
        ),
        (
            "summarize L = makelist(FileName) by DeviceName",
            "summarize L = make_list(FileName) by DeviceName",
        ),
        (
            "extend P = tostring(parsejson(AdditionalFields).a)",
            "extend P = tostring(parse_json(AdditionalFields).a)",
        ),
        (
            "extend N = arraylength(split(ProcessCommandLine, ' '))",
            "extend N = array_length(split(ProcessCommandLine, ' '))",
        ),
        (
            "where notempty(ProcessCommandLine) and notnull(AdditionalFields)",
            "where isnotempty(ProcessCommandLine) and isnotnull(AdditionalFields)",
        ),
    ],
)
def test_deprecated_alias_answers_like_its_modern_form(
    logs: duckdb.DuckDBPyConnection, old: str, new: str
) -> None:
    sort = " | sort by DeviceName asc"
    query = "DeviceProcessEvents | " + old
    expected = _rows(logs, "DeviceProcessEvents | " + new + sort)
    assert expected
    assert _rows(logs, query + sort) == expected
    assert check_kql(query).ok


def test_deprecated_alias_keeps_the_automatic_column_name(
    logs: duckdb.DuckDBPyConnection,
) -> None:
    result = run_kql(
        logs,
        "DeviceProcessEvents | summarize makeset(FileName), makelist(DeviceName)",
        timeout=10,
        label="t",
        tables_present=["DeviceProcessEvents"],
    )
    assert result.columns == ["set_FileName", "list_DeviceName"]


def test_alias_inside_a_string_or_as_a_property_is_left_alone() -> None:
    text = "T | where x == 'makeset(a)' | extend y = d.makeset(1) // makeset(z)"
    assert rewrite(text).text == text
    assert set(DEPRECATED_ALIASES.values()) <= {
        "make_set",
        "make_list",
        "parse_json",
        "array_length",
        "isnotempty",
        "isnotnull",
    }


# --- split(s, delimiter, index) ------------------------------------------------------------


def test_split_with_an_index_is_a_one_element_array(logs: duckdb.DuckDBPyConnection) -> None:
    rows = _rows(
        logs,
        "DeviceProcessEvents | where FileName == 'powershell.exe'\n"
        "| project Second = split(ProcessCommandLine, ' ', 1), "
        "Missing = split(ProcessCommandLine, ' ', 7), "
        "First = tostring(split(ProcessCommandLine, ' ', 0)[0])",
    )
    second, missing, first = rows[0]
    assert [str(second), str(missing), first] == ['["-enc"]', "[]", "powershell"]


@pytest.mark.parametrize("index", ["-1", "n", "1 + 1"])
def test_split_with_an_index_that_is_not_a_plain_literal_is_still_refused(index: str) -> None:
    query = f"let n = 1;\nDeviceProcessEvents | extend P = split(FileName, '.', {index})"
    check = check_kql(query)
    assert not check.ok
    problem = check.problems[0]
    assert (problem.kind, problem.construct, problem.line, problem.column) == (
        "unsupported_feature",
        "split",
        2,
        34,
    )


@pytest.mark.parametrize(
    "query",
    ["T | summarize maxif(Timestamp, true) + 1h", "T | summarize make_set(A, 3) * 2"],
)
def test_an_unnamed_aggregate_inside_an_expression_gets_no_automatic_name(query: str) -> None:
    """Kusto names ``maxif(e, p) + 1h`` ``Column1``, not ``maxif_e``: left as written."""
    assert rewrite(query).text == query
    assert rewrite("T | summarize maxif(Timestamp, true) by A").text == (
        "T | summarize maxif_Timestamp = max(iff(true, Timestamp, dynamic(null))) by A"
    )


def test_split_with_an_empty_argument_is_a_parse_error_not_a_crash() -> None:
    check = check_kql("DeviceProcessEvents | extend P = split(FileName, , 1)")
    assert not check.ok and check.problems[0].kind == "parse_error"


# --- datetime between (low .. timespan) ----------------------------------------------------


def test_between_a_datetime_and_a_timespan_high_bound(logs: duckdb.DuckDBPyConnection) -> None:
    # Kusto: a timespan high bound after a datetime low bound means low + high, both ends
    # inclusive. The window here is 00:00 .. 02:00.
    query = (
        "let start = datetime(2024-01-01 00:30);\n"
        "DeviceProcessEvents\n"
        "| where Timestamp {op} ((start - 30m) .. 2h)\n"
        "| project FileName, Timestamp | sort by Timestamp asc"
    )
    inside = _rows(logs, query.format(op="between"))
    outside = _rows(logs, query.format(op="!between"))
    assert [r[0] for r in inside] == ["powershell.exe", "cmd.exe"]
    assert [str(r[1]) for r in outside] == ["2024-01-01 03:00:00"]
    assert check_kql(query.format(op="between")).ok


def test_between_over_a_timespan_keeps_the_plain_reading(
    logs: duckdb.DuckDBPyConnection,
) -> None:
    # `Took between (Low .. 1h)` over timespans is 10m .. 1h, not 10m .. 1h10m.
    assert _rows(logs, "Spans | where Took between (Low .. 1h) | project Name") == [("fast",)]


def test_between_over_a_redefined_column_is_not_rewritten(
    logs: duckdb.DuckDBPyConnection,
) -> None:
    # The query makes its own `Timestamp`: its type is not the catalog's, so nothing is
    # assumed and DuckDB's type error stands.
    query = (
        "let start = datetime(2024-01-01);\nDeviceProcessEvents\n"
        "| extend Timestamp = Timestamp\n| where Timestamp between ((start - 1m) .. 1h)"
    )
    with pytest.raises(KqlTypeError):
        _rows(logs, query)


# --- positions after a rewrite ---------------------------------------------------------------


def test_positions_after_a_rewrite_are_the_users() -> None:
    query = (
        "let s = datetime(2024-01-01); DeviceProcessEvents | where Timestamp between "
        "((s - 1m) .. 1h) | summarize makeset(FileName) | project-reorder set_FileName"
    )
    check = check_kql(query)
    problem = check.problems[0]
    assert (problem.construct, problem.line, problem.column) == (
        "project-reorder",
        1,
        query.index("project-reorder") + 1,
    )


def test_parse_error_after_a_rewrite_points_at_the_users_text() -> None:
    # the rewritten text is longer before the error; the column is the user's
    query = "DeviceProcessEvents | extend P = split(FileName, '.', 1) | where P == == 1"
    problem = check_kql(query).problems[0]
    assert (problem.kind, problem.construct, problem.line, problem.column) == (
        "parse_error",
        "==",
        1,
        query.rindex("==") + 1,
    )


def test_rewrite_maps_positions_back() -> None:
    text = "T | extend a = makeset(x), b = split(y, ',', 2)"
    rewritten = rewrite(text)
    assert rewritten.text == "T | extend a = make_set(x), b = array_slice(split(y, ','), 2, 2)"
    for word in ("make_set", "split(", "T |"):
        column0 = rewritten.text.index(word)
        expected = text.index(word.replace("make_set", "makeset"))
        assert rewritten.to_original(1, column0) == (1, expected)
    # a position inside inserted text maps to where the insertion is
    assert rewritten.to_original(1, rewritten.text.index("array_slice") + 3) == (
        1,
        text.index("split"),
    )


def test_unsupported_function_is_still_named(logs: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(KqlUnsupportedError) as caught:
        _rows(logs, "DeviceProcessEvents | summarize take_anyif(FileName, DeviceName == 'h1')")
    assert caught.value.problem.construct == "take_anyif"


# --- replace(regex, rewrite, text) -----------------------------------------------------------


def test_deprecated_replace_takes_the_text_last(logs: duckdb.DuckDBPyConnection) -> None:
    # Kusto's replace() is replace_regex with the text LAST; read as replace_string (text
    # first) it would answer 'powershell.exe' unchanged, or the regex itself.
    rows = _rows(
        logs,
        "DeviceProcessEvents | where DeviceName == 'h1'\n"
        "| project Old = replace(@'(\\w+)\\.exe', @'[\\1]', FileName),\n"
        "          New = replace_regex(FileName, @'(\\w+)\\.exe', @'[\\1]')\n"
        "| sort by Old asc",
    )
    assert rows == [("[cmd]", "[cmd]"), ("[powershell]", "[powershell]")]


def test_replace_across_lines_and_inside_another_rewrite() -> None:
    text = "T | summarize S = make_set_if(replace('a',\n 'b', x), y > 1)"
    rewritten = rewrite(text)
    assert rewritten.text == (
        "T | summarize S = make_set(iff(y > 1, replace_regex(x, 'a', 'b'), dynamic(null)))\n"
    )
    assert len(rewritten.passes) == 2
    # what follows the rewritten call keeps its line and column
    text += " | where Q == 1"
    rewritten = rewrite(text)
    assert rewritten.to_original(2, rewritten.text.split("\n")[1].index("Q")) == (
        2,
        text.split("\n")[1].index("Q"),
    )


def test_replace_with_other_arities_is_refused_by_name() -> None:
    problem = check_kql("DeviceProcessEvents | extend P = replace('a', FileName)").problems[0]
    assert (problem.kind, problem.construct, problem.column) == (
        "unsupported_feature",
        "replace",
        34,
    )


# --- conditional aggregates ------------------------------------------------------------------


def test_conditional_aggregates_answer_and_name_like_kusto(
    logs: duckdb.DuckDBPyConnection,
) -> None:
    result = run_kql(
        logs,
        "DeviceProcessEvents\n"
        "| summarize make_set_if(FileName, DeviceName == 'h1'),\n"
        "    Cmds = make_list_if(ProcessCommandLine, FileName == 'cmd.exe'),\n"
        "    maxif(Timestamp, FileName == 'cmd.exe'), minif(Timestamp, FileName == 'cmd.exe'),\n"
        "    None = make_set_if(FileName, DeviceName == 'nobody')",
        timeout=10,
        label="t",
        tables_present=["DeviceProcessEvents"],
    )
    assert result.columns == ["set_FileName", "Cmds", "maxif_Timestamp", "minif_Timestamp", "None"]
    (row,) = result.rows
    assert sorted(_values(row[0])) == ["cmd.exe", "powershell.exe"]
    assert sorted(_values(row[1])) == ["cmd", "cmd /c whoami"]
    assert [str(row[2]), str(row[3])] == ["2024-01-01 03:00:00", "2024-01-01 01:00:00"]
    assert _values(row[4]) == []


def test_conditional_aggregate_skips_nulls_and_null_predicates(
    logs: duckdb.DuckDBPyConnection,
) -> None:
    # AdditionalFields is null on one row: its value is skipped, as make_set skips it, and
    # a predicate that is null (not true) keeps nothing.
    rows = _rows(
        logs,
        "DeviceProcessEvents | summarize A = make_list_if(FileName, isnotnull(AdditionalFields)),"
        " B = make_list_if(AdditionalFields, true), C = make_list_if(FileName, "
        "tobool(AdditionalFields.missing)), D = maxif(FileName, isnull(AdditionalFields))",
    )
    a, b, c, d = rows[0]
    assert sorted(_values(a)) == ["cmd.exe", "powershell.exe"]
    assert len(_values(b)) == 2
    assert _values(c) == []
    assert d == "cmd.exe"


def test_named_conditional_aggregate_inside_an_expression(
    logs: duckdb.DuckDBPyConnection,
) -> None:
    query = "DeviceProcessEvents | summarize N = array_length(make_set_if(FileName, true)) + 0"
    assert _rows(logs, query) == [(2,)]
    query = (
        "DeviceProcessEvents | summarize ['On h2']=make_set_if(FileName, DeviceName == 'h2'), "
        "(N) = count(), maxif(DeviceName, true)"
    )
    result = run_kql(logs, query, timeout=10, label="t", tables_present=["DeviceProcessEvents"])
    assert result.columns == ["On h2", "N", "maxif_DeviceName"]
    assert (_values(result.rows[0][0]), result.rows[0][2]) == (["cmd.exe"], "h2")


@pytest.mark.parametrize(
    "aggregation",
    [
        "make_set_if(tostring(FileName), true)",  # unnamed: Kusto's name is not a plain column's
        "maxif(FileName, true, 3)",
        # duckdb-kql ignores make_set's maxSize: the capped form is not rewritten
        "S = make_set_if(FileName, true, 1)",
    ],
)
def test_other_conditional_aggregate_forms_stay_refused(aggregation: str) -> None:
    check = check_kql(f"DeviceProcessEvents | summarize {aggregation}")
    assert not check.ok
    problem = check.problems[0]
    assert problem.kind == "unsupported_feature"
    assert problem.construct in {"make_set_if", "maxif"}
    assert (problem.line, problem.column) == (
        1,
        len("DeviceProcessEvents | summarize ") + 1 + aggregation.index(problem.construct),
    )
