"""Logs in: every input format into DuckDB, typed catalog tables, exact bad-line reporting,
--skip-bad counting, all-or-nothing imports, provenance, and bounded memory."""

from __future__ import annotations

import gzip
import json
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from tests.conftest import SHARED_DATA, require_shared_data

from defensemap.errors import InputError, ParseError, SchemaError, SourceError
from defensemap.logs.duck import PROVENANCE_COLUMNS, connect, user_tables
from defensemap.logs.ingest import WINDOWS_EVENTS_TABLE, IngestReport, detect_format, ingest

EVTX_DIR = SHARED_DATA / "evtx"
BITSADMIN = "proc_creation_win_bitsadmin_download_file_sharing_domains"

# A Defender export's columns: enough distinctive ones to tell DeviceProcessEvents apart.
DPE_ROW: dict[str, Any] = {
    "Timestamp": "2024-05-01T10:00:00.1234567Z",
    "DeviceId": "d1",
    "DeviceName": "pc1.corp",
    "ActionType": "ProcessCreated",
    "FileName": "cmd.exe",
    "FolderPath": "C:\\Windows\\System32\\cmd.exe",
    "ProcessId": 4242,
    "ProcessCommandLine": "cmd.exe /c whoami",
    "ProcessCreationTime": "2024-05-01T10:00:00Z",
    "ProcessIntegrityLevel": "High",
    "ProcessTokenElevation": "TokenElevationTypeFull",
    "InitiatingProcessFileName": "explorer.exe",
    "InitiatingProcessCommandLine": "explorer.exe",
    "AccountName": "alice",
    "AdditionalFields": {"Elevated": True, "List": [1, 2]},
    "ReportId": 7,
}


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(tmp_path / "logs.duckdb")
    yield connection
    connection.close()


def write_ndjson(path: Path, rows: list[Any], *, sep: str = "\n") -> Path:
    path.write_text(sep.join(json.dumps(r) for r in rows) + sep, encoding="utf-8")
    return path


def rows_of(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    result = con.execute(sql)
    names = [d[0] for d in result.description or []]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def types_of(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f'DESCRIBE "{table}"').fetchall()}


def one(reports: list[IngestReport]) -> IngestReport:
    assert len(reports) == 1
    return reports[0]


def table_snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    return {
        t: (types_of(con, t), con.execute(f'SELECT count(*) FROM "{t}"').fetchone())
        for t in user_tables(con)
    }


# ----------------------------------------------------------------------------- NDJSON


def test_ndjson_types_provenance_and_line_numbers(con, tmp_path: Path) -> None:
    path = tmp_path / "app.ndjson"
    path.write_bytes(
        b"\n"  # line 1 blank
        b'{"n": 1, "s": "a", "when": "2024-01-01T10:00:00+02:00", "obj": {"k": [1]}}\n'
        b"   \n"  # line 3 whitespace only
        b'{"n": 2, "s": "b", "flag": true}\r\n'
        b"\r\n"  # line 5 blank (CRLF)
        b'{"n": 3}'  # line 6, no final newline
    )
    report = one(ingest(con, [path]))
    assert (report.format, report.table, report.rows, report.skipped_bad) == (
        "ndjson", "app", 3, 0,
    )  # fmt: skip
    assert report.table_reason == "file name"
    assert report.created_table
    types = types_of(con, "app")
    assert types["n"] == "BIGINT"
    assert types["s"] == "VARCHAR"
    assert types["when"] == "TIMESTAMP"
    assert types["obj"] == "JSON"
    assert types["flag"] == "BOOLEAN"
    assert types["_dm_source"] == "VARCHAR"
    assert types["_dm_record"] == "BIGINT"
    rows = rows_of(con, 'SELECT n, "when", obj, _dm_source, _dm_record FROM app ORDER BY n')
    assert [r["_dm_record"] for r in rows] == [2, 4, 6]
    assert {r["_dm_source"] for r in rows} == {str(path.resolve())}
    assert str(rows[0]["when"]) == "2024-01-01 08:00:00"  # converted to UTC
    assert json.loads(rows[0]["obj"]) == {"k": [1]}


def test_ndjson_types_are_read_from_the_whole_file(con, tmp_path: Path) -> None:
    # DuckDB samples 20,480 records by default; a different type after that must not fail
    path = tmp_path / "late.ndjson"
    with path.open("w") as f:
        for i in range(25_000):
            f.write(f'{{"id": {i}, "when": "2024-01-01T00:00:00Z"}}\n')
        f.write('{"id": "x-1", "when": "2024-01-02T00:00:00Z", "late": 1}\n')
    report = one(ingest(con, [path]))
    assert report.rows == 25_001
    assert con.execute("SELECT count(*) FROM late WHERE late = 1").fetchone() == (1,)
    assert con.execute("SELECT _dm_record FROM late WHERE late = 1").fetchone() == (25_001,)


def test_gzip_ndjson(con, tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n\n{"a": 2}\n'))
    report = one(ingest(con, [path]))
    assert (report.format, report.table, report.rows) == ("ndjson+gzip", "events", 2)
    assert con.execute("SELECT a, _dm_record FROM events ORDER BY a").fetchall() == [
        (1, 1),
        (2, 3),
    ]


def test_many_blank_lines_still_give_exact_line_numbers(con, tmp_path: Path) -> None:
    path = tmp_path / "sparse.ndjson"
    path.write_text("".join(f'{{"i": {i}}}\n\n' for i in range(5000)))  # > 4096 blank lines
    report = one(ingest(con, [path]))
    assert report.rows == 5000
    rows = con.execute("SELECT i, _dm_record FROM sparse ORDER BY i").fetchall()
    assert rows == [(i, 2 * i + 1) for i in range(5000)]


def test_json_lines_extension_and_glob_characters_in_the_name(con, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "logs[1]*.jsonl", [{"a": 1}])
    report = one(ingest(con, [path]))
    assert report.table == "logs_1"
    assert report.rows == 1


# ----------------------------------------------------------------------------- JSON documents


def test_json_array(con, tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    path.write_text(json.dumps([{"id": 1, "tags": ["a"]}, {"id": 2, "extra": "x"}], indent=2))
    report = one(ingest(con, [path]))
    assert (report.format, report.rows) == ("json-array", 2)
    rows = rows_of(con, "SELECT id, tags, extra, _dm_record FROM alerts ORDER BY id")
    assert [(r["id"], r["_dm_record"]) for r in rows] == [(1, 1), (2, 2)]
    assert json.loads(rows[0]["tags"]) == ["a"]
    assert rows[1]["extra"] == "x"


def test_pretty_printed_json_documents(con, tmp_path: Path) -> None:
    path = tmp_path / "docs.json"
    path.write_text(json.dumps({"a": 1}, indent=2) + "\n" + json.dumps({"a": 2}, indent=2))
    report = one(ingest(con, [path]))
    assert (report.format, report.rows) == ("json", 2)
    assert con.execute("SELECT a, _dm_record FROM docs ORDER BY a").fetchall() == [(1, 1), (2, 2)]


def test_malformed_json_array_names_line_and_column(con, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[{"a": 1},\n {"a": }]')
    with pytest.raises(ParseError) as err:
        ingest(con, [path])
    assert err.value.location is not None
    assert (err.value.location.path, err.value.location.line) == (str(path), 2)


def test_json_array_of_non_objects(con, tmp_path: Path) -> None:
    path = tmp_path / "numbers.json"
    path.write_text('[{"a": 1}, 3]')
    with pytest.raises(SchemaError, match="record 2 is not a JSON object"):
        ingest(con, [path])


# ----------------------------------------------------------------------------- CSV, Parquet


def test_csv_and_tsv(con, tmp_path: Path) -> None:
    csv = tmp_path / "proxy.csv"
    csv.write_text("host,bytes,seen\nh1,10,2024-01-01 10:00:00\nh2,20,2024-01-02 11:00:00\n")
    tsv = tmp_path / "dns.tsv.gz"
    tsv.write_bytes(gzip.compress(b"name\tcount\nexample.org\t3\n"))
    reports = ingest(con, [csv, tsv])
    assert [(r.format, r.table, r.rows) for r in reports] == [
        ("csv", "proxy", 2),
        ("csv+gzip", "dns", 1),
    ]
    types = types_of(con, "proxy")
    assert (types["host"], types["bytes"], types["seen"]) == ("VARCHAR", "BIGINT", "TIMESTAMP")
    assert con.execute("SELECT host, _dm_record FROM proxy ORDER BY host").fetchall() == [
        ("h1", 2),
        ("h2", 3),
    ]
    assert con.execute("SELECT name, count FROM dns").fetchall() == [("example.org", 3)]


def test_csv_bad_rows_fail_with_their_line_or_are_counted(con, tmp_path: Path) -> None:
    path = tmp_path / "fw.csv"
    path.write_text("src,dst,port\na,b,1\nc,d\ne,f,3\ng,h,4,extra\ni,j,5\n")
    with pytest.raises(ParseError) as err:
        ingest(con, [path])
    assert err.value.location is not None and err.value.location.line == 3
    assert "fw" not in user_tables(con)
    report = one(ingest(con, [path], skip_bad=True))
    assert (report.rows, report.skipped_bad, report.bad_lines) == (3, 2, (3, 5))
    rows = con.execute("SELECT src, _dm_record FROM fw ORDER BY src").fetchall()
    assert rows == [("a", 2), ("e", 4), ("i", 6)]


def test_parquet(con, tmp_path: Path) -> None:
    path = tmp_path / "flows.parquet"
    con.execute(
        "COPY (SELECT i AS id, 'h' || i AS host, {'k': i} AS meta,"
        " TIMESTAMPTZ '2024-01-01 12:00:00+01' AS ts FROM range(3) t(i))"
        f" TO '{path}' (FORMAT parquet)"
    )
    report = one(ingest(con, [path]))
    assert (report.format, report.table, report.rows) == ("parquet", "flows", 3)
    types = types_of(con, "flows")
    assert (types["meta"], types["ts"]) == ("JSON", "TIMESTAMP")
    rows = con.execute("SELECT id, ts, _dm_record FROM flows ORDER BY id").fetchall()
    assert [(r[0], r[2]) for r in rows] == [(0, 1), (1, 2), (2, 3)]
    assert str(rows[0][1]) == "2024-01-01 11:00:00"


# ----------------------------------------------------------------------------- catalog typing


def test_defender_export_lands_in_its_typed_catalog_table(con, tmp_path: Path) -> None:
    second = {**DPE_ROW, "ProcessId": 4243, "AdditionalFields": '{"Elevated": false}'}
    second["MyCustomColumn"] = "kept"
    path = write_ndjson(tmp_path / "export.ndjson", [DPE_ROW, second])
    report = one(ingest(con, [path]))
    assert report.table == "DeviceProcessEvents"
    assert report.table_reason.startswith("inferred from columns (DeviceProcessEvents, score")
    assert report.extra_columns == ("MyCustomColumn",)
    assert report.cast_failures == ()
    types = types_of(con, "DeviceProcessEvents")
    assert types["Timestamp"] == "TIMESTAMP"
    assert types["ProcessCreationTime"] == "TIMESTAMP"
    assert types["AdditionalFields"] == "JSON"
    assert types["ProcessId"] == "BIGINT"
    assert types["MyCustomColumn"] == "VARCHAR"
    assert "InitiatingProcessParentId" in types  # every catalog column exists
    rows = rows_of(
        con,
        "SELECT ProcessId, Timestamp, AdditionalFields, AdditionalFields.Elevated AS elevated"
        " FROM DeviceProcessEvents ORDER BY ProcessId",
    )
    assert str(rows[0]["Timestamp"]) == "2024-05-01 10:00:00.123456"
    assert json.loads(rows[0]["AdditionalFields"]) == {"Elevated": True, "List": [1, 2]}
    # a dynamic value exported as JSON text is stored as the JSON it holds
    assert json.loads(rows[1]["AdditionalFields"]) == {"Elevated": False}
    assert json.loads(rows[1]["elevated"]) is False


def test_catalog_conversion_failures_are_counted(con, tmp_path: Path) -> None:
    rows = [DPE_ROW, {**DPE_ROW, "Timestamp": "not a time", "ProcessId": "abc"}]
    report = one(ingest(con, [write_ndjson(tmp_path / "x.ndjson", rows)]))
    assert report.table == "DeviceProcessEvents"
    assert dict(report.cast_failures) == {"Timestamp": 1, "ProcessId": 1}
    assert con.execute("SELECT count(*) FROM DeviceProcessEvents").fetchone() == (2,)


def test_sentinel_csv_export_is_inferred_as_signinlogs(con, tmp_path: Path) -> None:
    path = tmp_path / "query_data.csv"
    status = json.dumps({"errorCode": 0}).replace('"', '""')
    path.write_text(
        "TimeGenerated [UTC],UserPrincipalName,AppDisplayName,IPAddress,ResultType,"
        "Location,Status,ClientAppUsed,ConditionalAccessStatus\n"
        f'"5/1/2024, 10:00:00.000 AM",alice@corp.com,Azure Portal,10.0.0.1,0,DE,"{status}",'
        "Browser,success\n"
        f"2024-05-02T11:00:00Z,bob@corp.com,Teams,10.0.0.2,50126,FR,{{}},Mobile,failure\n"
    )
    report = one(ingest(con, [path]))
    assert report.table == "SigninLogs"
    assert report.table_reason.startswith("inferred from columns (SigninLogs")
    types = types_of(con, "SigninLogs")
    assert types["TimeGenerated"] == "TIMESTAMP"
    assert types["Status"] == "JSON"
    rows = rows_of(
        con, "SELECT UserPrincipalName, TimeGenerated, Status FROM SigninLogs ORDER BY 1"
    )
    assert [str(r["TimeGenerated"]) for r in rows] == [
        "2024-05-01 10:00:00",
        "2024-05-02 11:00:00",
    ]
    assert json.loads(rows[0]["Status"]) == {"errorCode": 0}


def test_table_named_by_the_file(con, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "SigninLogs_2024-05.ndjson", [{"Custom": 1}])
    report = one(ingest(con, [path]))
    assert report.table == "SigninLogs"
    assert report.table_reason == "file name (known table SigninLogs)"
    assert report.extra_columns == ("Custom",)


def test_table_option_wins_and_existing_spelling_is_kept(con, tmp_path: Path) -> None:
    con.execute("CREATE TABLE MyLogs (a BIGINT, _dm_source VARCHAR, _dm_record BIGINT)")
    path = write_ndjson(tmp_path / "DeviceProcessEvents.ndjson", [{"a": "5", "b": "new"}])
    report = one(ingest(con, [path], table="mylogs"))
    assert (report.table, report.table_reason) == ("MyLogs", "--table")
    assert report.new_columns == ("b",)
    assert not report.created_table
    assert con.execute("SELECT a, b FROM MyLogs").fetchall() == [(5, "new")]


def test_guessed_types_fall_back_to_text_instead_of_losing_values(con, tmp_path: Path) -> None:
    # DuckDB's CSV sniffer types columns from a sample; a late value that does not fit
    path = tmp_path / "late.csv"
    lines = ["seen,n"] + [f"2024-01-01 10:00:{i % 60:02d},{i}" for i in range(25_000)]
    path.write_text("\n".join([*lines, "yesterday,25000", ""]))
    report = one(ingest(con, [path]))
    assert report.warnings == ("column seen kept as text: 1 value(s) are not TIMESTAMP",)
    assert types_of(con, "late")["seen"] == "VARCHAR"
    assert con.execute("SELECT seen FROM late WHERE n = 25000").fetchone() == ("yesterday",)


def test_existing_column_types_are_kept_and_failures_counted(con, tmp_path: Path) -> None:
    con.execute("CREATE TABLE t (n BIGINT)")
    path = write_ndjson(tmp_path / "t.ndjson", [{"n": "12"}, {"n": "twelve"}])
    report = one(ingest(con, [path], table="t"))
    assert dict(report.cast_failures) == {"n": 1}
    assert report.new_columns == ()
    assert con.execute("SELECT n FROM t ORDER BY _dm_record").fetchall() == [(12,), (None,)]


def test_csv_datetimes_in_the_format_the_sniffer_found(con, tmp_path: Path) -> None:
    path = tmp_path / "eu.csv"
    path.write_text("when,n\n25/12/2024 10:00:00,1\n26/12/2024 11:30:00,2\n")
    report = one(ingest(con, [path]))
    assert report.warnings == ()
    assert types_of(con, "eu")["when"] == "TIMESTAMP"
    assert [str(r[0]) for r in con.execute('SELECT "when" FROM eu ORDER BY n').fetchall()] == [
        "2024-12-25 10:00:00",
        "2024-12-26 11:30:00",
    ]


# ----------------------------------------------------------------------------- bad input


def test_bad_ndjson_line_is_reported_with_its_line_number(con, tmp_path: Path) -> None:
    path = tmp_path / "bad.ndjson"
    path.write_bytes(b'{"a": 1}\r\n\r\n{"a": 2}\n\n{"a": }\n{"a": 3}\n')
    with pytest.raises(ParseError) as err:
        ingest(con, [path])
    assert err.value.location is not None
    assert (err.value.location.path, err.value.location.line) == (str(path), 5)
    assert "--skip-bad" in (err.value.hint or "")
    assert user_tables(con) == []


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "not an object"),
        (b'"text"', "not an object"),
        (b'{"a": 1} {"a": 2}', "not valid JSON"),
        (b'{"a": 1', "not valid JSON"),
    ],
)
def test_each_kind_of_bad_line(con, tmp_path: Path, line: bytes, why: str) -> None:
    path = tmp_path / "bad.ndjson"
    path.write_bytes(b'{"a": 1}\n' * 3 + line + b"\n" + b'{"a": 1}\n')
    with pytest.raises(ParseError, match=why) as err:
        ingest(con, [path])
    assert err.value.location is not None and err.value.location.line == 4


def test_bad_line_far_beyond_the_sample(con, tmp_path: Path) -> None:
    path = tmp_path / "deep.ndjson"
    path.write_text('{"a": 1}\n' * 30_000 + '{"a": \n' + '{"a": 1}\n')
    with pytest.raises(ParseError) as err:
        ingest(con, [path])
    assert err.value.location is not None and err.value.location.line == 30_001


def test_skip_bad_counts_and_reports_bad_lines(con, tmp_path: Path) -> None:
    path = tmp_path / "mixed.ndjson"
    path.write_bytes(b'{"a": 1}\noops\n\n{"a": 2}\n[1]\n{"a": 3, "b": "x"}\n{"a": \n')
    report = one(ingest(con, [path], skip_bad=True))
    assert (report.rows, report.skipped_bad, report.bad_lines) == (3, 3, (2, 5, 7))
    rows = con.execute("SELECT a, b, _dm_record FROM mixed ORDER BY a").fetchall()
    assert rows == [(1, None, 1), (2, None, 4), (3, "x", 6)]


def test_skip_bad_with_only_bad_lines_is_an_error(con, tmp_path: Path) -> None:
    path = tmp_path / "junk.ndjson"
    path.write_text("{oops\n{nope\n")
    with pytest.raises(SourceError, match="no records"):
        ingest(con, [path], skip_bad=True)


def test_all_or_nothing(con, tmp_path: Path) -> None:
    existing = write_ndjson(tmp_path / "base.ndjson", [{"a": 1}])
    ingest(con, [existing])
    before = table_snapshot(con)
    good = write_ndjson(tmp_path / "good.ndjson", [{"a": 2, "new_column": "x"}])
    new = write_ndjson(tmp_path / "other.ndjson", [{"z": 1}])
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"a": 3}\n{"a": \n')
    with pytest.raises(ParseError):
        ingest(con, [good, new, bad], table=None)
    # the same when the failure is only found while loading (a CSV row, here)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("a,b\n1,2\n3\n")
    with pytest.raises(ParseError):
        ingest(con, [good, new, bad_csv])
    with pytest.raises(ParseError):
        ingest(con, [good, bad], table="base")
    assert table_snapshot(con) == before


def test_rollback_when_the_load_itself_fails(
    con, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest(con, [write_ndjson(tmp_path / "base.ndjson", [{"a": 1}])])
    before = table_snapshot(con)
    import defensemap.logs.ingest as module

    real = module._insert
    calls = []

    def failing(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise SourceError("simulated failure")
        return real(*args)

    monkeypatch.setattr(module, "_insert", failing)
    files = [
        write_ndjson(tmp_path / "one.ndjson", [{"a": 2, "c": 1}]),
        write_ndjson(tmp_path / "two.ndjson", [{"a": 3}]),
    ]
    with pytest.raises(SourceError, match="simulated"):
        ingest(con, files, table="base")
    assert table_snapshot(con) == before


@pytest.mark.parametrize(
    "name",
    [
        'x"; DROP TABLE y; --',
        "a b",
        "",
        "1abc",
        "t-1",
        "naïve",
        "x" * 129,
        "__dm_rec",
        "_dm_source",
        "main.t",
        "t;",
    ],
)
def test_hostile_table_names_are_refused(con, tmp_path: Path, name: str) -> None:
    path = write_ndjson(tmp_path / "a.ndjson", [{"a": 1}])
    with pytest.raises(InputError):
        ingest(con, [path], table=name)
    assert user_tables(con) == []


def test_hostile_column_names_are_quoted(con, tmp_path: Path) -> None:
    row = {'x"; DROP TABLE t; --': 1, "a b": "c", "ü": True, "_dm_source": "forged"}
    report = one(ingest(con, [write_ndjson(tmp_path / "h.ndjson", [row])]))
    assert report.rows == 1
    assert any("_dm_source" in w for w in report.warnings)
    row_out = rows_of(con, "SELECT * FROM h")[0]
    assert row_out['x"; DROP TABLE t; --'] == 1
    assert row_out["_dm_source"] == str((tmp_path / "h.ndjson").resolve())


def test_internal_column_names_are_refused(con, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "x.ndjson", [{"__dm_rec": 1, "a": 2}])
    with pytest.raises(SchemaError, match="reserved"):
        ingest(con, [path])


def test_values_of_mixed_types_are_stored_as_text(con, tmp_path: Path) -> None:
    rows = [{"v": 1}, {"v": "x"}, {"v": True}, {"v": {"k": 1}}, {"v": None}]
    one(ingest(con, [write_ndjson(tmp_path / "mixed.ndjson", rows)]))
    assert types_of(con, "mixed")["v"] == "VARCHAR"
    assert con.execute("SELECT v FROM mixed ORDER BY _dm_record").fetchall() == [
        ("1",),
        ("x",),
        ("true",),
        ('{"k":1}',),
        (None,),
    ]


def test_keys_differing_only_in_case_are_refused(con, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "case.ndjson", [{"User": "a", "user": "b"}])
    with pytest.raises(SchemaError, match="case"):
        ingest(con, [path])


@pytest.mark.parametrize(
    ("name", "content", "error", "message"),
    [
        ("empty.ndjson", b"", SourceError, "empty"),
        ("blank.json", b"  \n\n ", SourceError, "empty"),
        ("header.csv", b"a,b\n", SourceError, "no records"),
        ("empty.json", b"[]", SourceError, "no records"),
        ("notes.txt", b"hello", SourceError, "unknown log format"),
        ("data.bin", b"\x00\x01", SourceError, "unknown log format"),
        ("fake.evtx", b"MZ not evtx", ParseError, "not an EVTX file"),
        ("fake.parquet", b"nope", ParseError, "not a Parquet file"),
        ("cut.parquet", b"PAR1\x00\x00", ParseError, "."),
        ("text.json", b"hello", ParseError, "not JSON"),
        ("cut.ndjson.gz", gzip.compress(b'{"a": 1}\n' * 50)[:-12], ParseError, "gzip"),
    ],
)
def test_bad_files(
    con, tmp_path: Path, name: str, content: bytes, error: type[Exception], message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(error, match=message) as err:
        ingest(con, [path])
    assert str(path) in str(err.value)
    assert user_tables(con) == []


def test_missing_directory_and_unreadable_files(con, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        ingest(con, [tmp_path / "nope.ndjson"])
    with pytest.raises(SourceError, match="directory"):
        ingest(con, [tmp_path])
    if os.geteuid() != 0:  # root reads anything
        locked = write_ndjson(tmp_path / "locked.ndjson", [{"a": 1}])
        locked.chmod(0)
        with pytest.raises(SourceError, match="cannot read"):
            ingest(con, [locked])


def test_detect_format(tmp_path: Path) -> None:
    cases = {
        "a.ndjson": b'{"a":1}\n',
        "b.json": b'{"a":1}\n{"a":2}\n',
        "c.json": b'{\n  "a": 1\n}\n',
        "d.json": b"  [1]",
        "e.csv": b"a\n1\n",
        "f.log": b'{"a":1}\n',
        "g.json.gz": gzip.compress(b'[{"a":1}]'),
    }
    found = {}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        found[name] = detect_format(tmp_path / name)
    assert found == {
        "a.ndjson": "ndjson",
        "b.json": "ndjson",
        "c.json": "json",
        "d.json": "json-array",
        "e.csv": "csv",
        "f.log": "ndjson",
        "g.json.gz": "json-array+gzip",
    }


def test_progress_is_reported_up_to_the_total(con, tmp_path: Path) -> None:
    files = [write_ndjson(tmp_path / f"p{i}.ndjson", [{"a": i}] * 100) for i in range(3)]
    seen: list[tuple[int, int]] = []
    ingest(con, files, on_progress=lambda done, total: seen.append((done, total)))
    total = sum(f.stat().st_size for f in files)
    assert seen[-1] == (total, total)
    assert all(t == total for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    # the connection's settings are left as they were
    assert con.execute("SELECT current_setting('enable_progress_bar')").fetchone() == (False,)


@pytest.mark.slow
@pytest.mark.parametrize("bad_line", [False, True], ids=["direct", "skip-bad-copy"])
def test_bounded_python_memory_on_a_large_file(con, tmp_path: Path, bad_line: bool) -> None:
    """~50 MB of NDJSON: what Python allocates stays far below the file's size (DuckDB's own
    buffers are outside tracemalloc; they are bounded by DuckDB's streaming readers). With a
    bad line, --skip-bad takes the Python path that validates and copies every line."""
    path = tmp_path / "big.ndjson"
    with path.open("wb") as f:
        line = {**DPE_ROW, "ProcessCommandLine": "cmd.exe /c " + "x" * 150}
        for i in range(140_000):
            line["ReportId"] = i
            f.write(orjson.dumps(line) + b"\n")
            if i % 10_000 == 0:
                f.write(b"\n")
        if bad_line:
            f.write(b"oops\n")
    assert path.stat().st_size > 50 << 20
    tracemalloc.start()
    try:
        report = one(ingest(con, [path], skip_bad=True))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (report.rows, report.skipped_bad) == (140_000, int(bad_line))
    assert peak < 50 << 20, f"Python peak {peak / 2**20:.1f} MiB"


# ----------------------------------------------------------------------------- Windows events


def evtx_samples() -> list[tuple[Path, Path]]:
    require_shared_data()
    if not EVTX_DIR.is_dir():
        pytest.skip(f"EVTX samples not found at {EVTX_DIR}")
    pairs = []
    for evtx in sorted(EVTX_DIR.glob("*/*.evtx")):
        pairs.append((evtx, evtx.with_suffix(".json")))
    assert len(pairs) == 4
    return pairs


def windows_rows(con: duckdb.DuckDBPyConnection, paths: list[Path]) -> list[dict[str, Any]]:
    wanted = ", ".join(f"'{p.resolve()}'" for p in paths)
    return rows_of(
        con,
        f"SELECT * EXCLUDE (_dm_source) FROM {WINDOWS_EVENTS_TABLE}"
        f" WHERE _dm_source IN ({wanted}) ORDER BY EventRecordID, Channel",
    )


@pytest.mark.realdata
def test_real_evtx_files_and_their_json_form_give_the_same_rows(con, tmp_path: Path) -> None:
    pairs = evtx_samples()
    evtx_files = [p[0] for p in pairs]
    json_files = [p[1] for p in pairs]
    reports = ingest(con, evtx_files)
    assert {r.table for r in reports} == {WINDOWS_EVENTS_TABLE}
    assert all(r.format == "evtx" and r.rows == 1 for r in reports)
    assert {r.table_reason for r in reports} == {
        "EVTX channel Microsoft-Windows-Sysmon/Operational",
        "EVTX channel Security",
    }
    json_reports = ingest(con, json_files)
    assert all(r.format == "evtx-json" and r.rows == 1 for r in json_reports)
    # the same events as one NDJSON file and as one JSON array
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in json_files]
    ndjson = write_ndjson(tmp_path / "events.ndjson", docs)
    array = tmp_path / "events.json"
    array.write_text(json.dumps(docs))
    for path, fmt in ((ndjson, "evtx-json"), (array, "evtx-json")):
        report = one(ingest(con, [path]))
        assert (report.format, report.table, report.rows) == (fmt, WINDOWS_EVENTS_TABLE, 4)

    from_evtx = windows_rows(con, evtx_files)
    from_json = windows_rows(con, json_files)
    assert len(from_evtx) == len(from_json) == 4
    for a, b in zip(from_evtx, from_json, strict=True):
        assert a == b
    from_ndjson = windows_rows(con, [ndjson])
    from_array = windows_rows(con, [array])
    strip = lambda rows: [{k: v for k, v in r.items() if k != "_dm_record"} for r in rows]  # noqa: E731
    assert strip(from_ndjson) == strip(from_array) == strip(from_evtx)

    types = types_of(con, WINDOWS_EVENTS_TABLE)
    assert types["EventID"] == "BIGINT"
    assert types["TimeCreated"] == "TIMESTAMP"
    assert {t for c, t in types.items() if c not in {"EventID", "TimeCreated", "_dm_record"}} == {
        "VARCHAR"
    }


@pytest.mark.realdata
def test_bitsadmin_sample_has_the_fields_its_sigma_rule_needs(con) -> None:
    evtx = next(p for p, _ in evtx_samples() if p.parent.name == BITSADMIN)
    one(ingest(con, [evtx]))
    row = rows_of(con, f"SELECT * FROM {WINDOWS_EVENTS_TABLE}")[0]
    assert row["EventID"] == 1
    assert row["Channel"] == "Microsoft-Windows-Sysmon/Operational"
    assert row["Provider_Name"] == "Microsoft-Windows-Sysmon"
    assert row["Image"].lower().endswith("\\bitsadmin.exe")
    assert "https://raw.githubusercontent.com/" in row["CommandLine"]
    assert "/transfer" in row["CommandLine"]
    assert row["ProcessId"] == "8924"
    assert row["System_ProcessID"] == "3208"
    assert str(row["TimeCreated"]) == "2025-12-10 04:47:28.250802"
    assert row["_dm_source"] == str(evtx.resolve())
    assert row["_dm_record"] == 1


@pytest.mark.realdata
def test_security_event_fields(con) -> None:
    evtx = next(p for p, _ in evtx_samples() if "security" in p.parent.name)
    one(ingest(con, [evtx], table="Logons"))
    row = rows_of(con, "SELECT * FROM Logons")[0]
    assert (row["EventID"], row["Channel"]) == (4648, "Security")
    assert row["TargetUserName"] == "testuser"
    assert row["ProcessName"].endswith("LegacyHive.exe")


@pytest.mark.realdata
def test_damaged_evtx(con, tmp_path: Path) -> None:
    evtx, _ = evtx_samples()[0]
    data = bytearray(evtx.read_bytes())
    truncated = tmp_path / "truncated.evtx"
    truncated.write_bytes(bytes(data[:4096]))  # the file header only: no chunk, no record
    with pytest.raises(SourceError, match="no records"):
        ingest(con, [truncated])
    data[4096 + 512 : 4096 + 900] = b"A" * 388  # garble the chunk holding the event
    damaged = tmp_path / "damaged.evtx"
    damaged.write_bytes(bytes(data))
    with pytest.raises(ParseError, match="--skip-bad") as err:
        ingest(con, [damaged])
    assert str(damaged) in str(err.value)
    # skipped and counted: here that leaves nothing, which is an error of its own
    with pytest.raises(SourceError, match=r"no records \(1 bad, skipped\)"):
        ingest(con, [damaged], skip_bad=True)
    assert user_tables(con) == []


def test_evtx_json_lines_bad_and_non_event_lines(con, tmp_path: Path) -> None:
    event = {"Event": {"System": {"EventID": 4624, "Channel": "Security"}, "EventData": {"A": 1}}}
    path = tmp_path / "sec.ndjson"
    path.write_text(
        json.dumps(event) + "\n" + '{"Event": \n' + json.dumps({"x": 1}) + "\n" + json.dumps(event)
    )
    with pytest.raises(ParseError) as err:
        ingest(con, [path])
    assert err.value.location is not None and err.value.location.line == 2
    report = one(ingest(con, [path], skip_bad=True))
    assert (report.format, report.table, report.rows, report.skipped_bad, report.bad_lines) == (
        "evtx-json", WINDOWS_EVENTS_TABLE, 2, 2, (2, 3),
    )  # fmt: skip
    assert con.execute(f"SELECT EventID, A, _dm_record FROM {WINDOWS_EVENTS_TABLE}").fetchall() == [
        (4624, "1", 1),
        (4624, "1", 4),
    ]


def test_windows_events_union_columns_across_files(con, tmp_path: Path) -> None:
    def event(eid: int, **data: Any) -> dict[str, Any]:
        return {"Event": {"System": {"EventID": eid, "Channel": "C"}, "EventData": data}}

    first = write_ndjson(tmp_path / "a.ndjson", [event(1, Image="a.exe")])
    ingest(con, [first])
    second = write_ndjson(tmp_path / "b.ndjson", [event(3, DestinationIp="10.0.0.1")])
    report = one(ingest(con, [second]))
    assert report.new_columns == ("DestinationIp",)
    rows = con.execute(
        f"SELECT EventID, Image, DestinationIp FROM {WINDOWS_EVENTS_TABLE} ORDER BY EventID"
    ).fetchall()
    assert rows == [(1, "a.exe", None), (3, None, "10.0.0.1")]


def test_provenance_columns_on_every_table(con, tmp_path: Path) -> None:
    files = [
        write_ndjson(tmp_path / "n.ndjson", [{"a": 1}]),
        write_ndjson(tmp_path / "w.ndjson", [{"Event": {"System": {"EventID": 1}}}]),
    ]
    (tmp_path / "c.csv").write_text("a\n1\n")
    files.append(tmp_path / "c.csv")
    ingest(con, files)
    for table in user_tables(con):
        columns = types_of(con, table)
        for name in PROVENANCE_COLUMNS:
            assert name in columns, (table, name)
        assert con.execute(
            f'SELECT count(*) FROM "{table}" WHERE _dm_source IS NULL OR _dm_record IS NULL'
        ).fetchone() == (0,)


def test_database_problems_are_store_errors(tmp_path: Path) -> None:
    from defensemap.errors import StoreError

    path = write_ndjson(tmp_path / "a.ndjson", [{"a": 1}])
    db = tmp_path / "ro.duckdb"
    connect(db).close()
    read_only = connect(db, read_only=True)
    with pytest.raises(StoreError, match="cannot create"):
        ingest(read_only, [path])
    read_only.close()
    busy = connect(tmp_path / "busy.duckdb")
    busy.execute("BEGIN TRANSACTION")
    with pytest.raises(StoreError, match="transaction"):
        ingest(busy, [path])
    busy.close()
