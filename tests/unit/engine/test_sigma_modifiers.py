"""Each Sigma modifier on a tiny DuckDB table, against matches worked out by hand.

Every rule runs twice: as the backend's standalone ``SELECT ... WHERE`` and inside the combined
one-pass query of :mod:`defensemap.engine.sigma.run` (lowered columns hoisted, RE2 merging), and
both must select the same rows.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sigma.collection import SigmaCollection
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule

from defensemap.engine.sigma.backend import MERGE_MIN, DuckDBBackend, quote_identifier
from defensemap.engine.sigma.rules import CompiledRule, RuleInfo, RuleSet, compile_rules
from defensemap.engine.sigma.run import combined_query

Row = Mapping[str, Any]


def _table(
    rows: Sequence[Row], types: Mapping[str, str] | None = None
) -> tuple[duckdb.DuckDBPyConnection, dict[str, str]]:
    types = dict(types or {})
    columns: list[str] = ["id"]
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    for name in list(types):
        if name not in columns:
            columns.append(name)
    schema = {c: types.get(c, "BIGINT" if c == "id" else "VARCHAR") for c in columns}
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE T ("
        + ", ".join(f"{quote_identifier(c)} {t}" for c, t in schema.items())
        + ")"
    )
    for number, row in enumerate(rows, start=1):
        values = [number] + [row.get(c) for c in columns[1:]]
        con.execute(f"INSERT INTO T VALUES ({', '.join('?' * len(columns))})", values)
    return con, schema


def _rule(detection: str) -> str:
    return (
        "title: modifier test\nid: 6c1d4bd8-4d7b-4a5b-9e1a-3c9a8f2d0b11\n"
        "logsource: {product: windows, category: process_creation}\n"
        f"detection:\n{detection}"
    )


def matching(
    detection: str, rows: Sequence[Row], types: Mapping[str, str] | None = None
) -> set[int]:
    """Row numbers (1-based) the rule selects; checks both query forms agree."""
    con, schema = _table(rows, types)
    backend = DuckDBBackend(table="T", schemas={"T": schema})
    [sql] = backend.convert(SigmaCollection.from_yaml(_rule(detection)))
    direct = {r[0] for r in con.execute(f"SELECT id FROM ({sql})").fetchall()}
    rule = SigmaCollection.from_yaml(_rule(detection)).rules[0]
    assert isinstance(rule, SigmaRule)
    [where] = DuckDBBackend(table="T", schemas={"T": schema}).convert_rule(rule, "where")
    compiled = CompiledRule(RuleInfo.of(rule), "T", where)
    combined = {
        r[0] for r in con.execute(f"SELECT id FROM ({combined_query('T', [compiled])})").fetchall()
    }
    assert direct == combined, (sql, direct, combined)
    return direct


# -- plain strings and wildcards -----------------------------------------------------------------


def test_equality_is_case_insensitive() -> None:
    rows = [
        {"Image": r"C:\Windows\System32\CMD.EXE"},
        {"Image": r"c:\windows\system32\cmd.exe"},
        {"Image": r"C:\Windows\System32\cmd.exe.bak"},
        {"Image": None},
    ]
    assert matching("  s:\n    Image: 'C:\\Windows\\System32\\cmd.exe'\n  condition: s", rows) == {
        1,
        2,
    }


def test_wildcards_map_to_like_and_sql_wildcards_stay_literal() -> None:
    rows = [
        {"Image": r"C:\Program Files\x\cmd.exe"},  # 1: * spans anything
        {"Image": r"D:\cmd.exe"},  # 2: wrong drive
        {"Image": "a_c"},  # 3
        {"Image": "abc"},  # 4: '_' in the value is literal, not one character
        {"Image": "100%"},  # 5
        {"Image": "1000"},  # 6: '%' in the value is literal
        {"Image": "aXc"},  # 7: matched by 'a?c'
        {"Image": "ac"},  # 8: '?' needs exactly one character
    ]
    # YAML 'c:\\*\cmd.exe' is Sigma c:\ + wildcard + \cmd.exe (a single \* would be a
    # literal asterisk)
    assert matching("  s:\n    Image: 'c:\\\\*\\cmd.exe'\n  condition: s", rows) == {1}
    assert matching("  s:\n    Image: 'a_c'\n  condition: s", rows) == {3}
    assert matching("  s:\n    Image: '100%'\n  condition: s", rows) == {5}
    assert matching("  s:\n    Image: 'a?c'\n  condition: s", rows) == {3, 4, 7}


def test_escaped_wildcards_stay_literal() -> None:
    rows = [{"CommandLine": "echo *"}, {"CommandLine": "echo x"}, {"CommandLine": "echo ?"}]
    assert matching("  s:\n    CommandLine: 'echo \\*'\n  condition: s", rows) == {1}
    assert matching("  s:\n    CommandLine: 'echo \\?'\n  condition: s", rows) == {3}
    assert matching("  s:\n    CommandLine: 'echo *'\n  condition: s", rows) == {1, 2, 3}
    # a backslash before an ordinary character is itself literal
    rows = [{"Path": r"C:\temp\x"}, {"Path": "C:tempx"}]
    assert matching("  s:\n    Path: 'C:\\temp\\x'\n  condition: s", rows) == {1}


def test_contains_startswith_endswith() -> None:
    rows = [
        {"CommandLine": "powershell -EncodedCommand AAAA"},
        {"CommandLine": "cmd /c whoami"},
        {"CommandLine": "WHOAMI /all"},
        {"CommandLine": None},
    ]
    assert matching("  s:\n    CommandLine|contains: 'encodedcommand'\n  condition: s", rows) == {1}
    assert matching("  s:\n    CommandLine|startswith: 'whoami'\n  condition: s", rows) == {3}
    assert matching("  s:\n    CommandLine|endswith: 'WHOAMI'\n  condition: s", rows) == {2}
    assert matching(
        "  s:\n    CommandLine|contains: ['whoami', 'encoded']\n  condition: s", rows
    ) == {
        1,
        2,
        3,
    }


def test_contains_all() -> None:
    rows = [
        {"CommandLine": "net user admin /add"},
        {"CommandLine": "net user admin"},
        {"CommandLine": "/ADD net USER"},
    ]
    detection = "  s:\n    CommandLine|contains|all: ['net user', '/add']\n  condition: s"
    assert matching(detection, rows) == {1, 3}


def test_long_value_lists_merge_into_one_regex_with_the_same_meaning() -> None:
    # MERGE_MIN or more values on one field become one RE2 alternation: metacharacters in the
    # values must stay literal and anchoring must follow the modifier.
    values = ["a.b", "(x)", "$HOME", "100%", r"back\slash", "x|y", "[z]", "^up"]
    assert len(values) >= MERGE_MIN
    listed = ", ".join(f"'{v}'" for v in values)
    rows = [
        {"F": "see A.B here"},  # 1: contains a.b (case-insensitive)
        {"F": "aXb"},  # 2: '.' is literal
        {"F": "run (X) now"},  # 3
        {"F": "echo $home"},  # 4
        {"F": "1000"},  # 5: '%' literal
        {"F": r"C:\back\slash"},  # 6
        {"F": "x|y"},  # 7
        {"F": "xy"},  # 8: '|' literal
        {"F": "[Z]"},  # 9
        {"F": "go ^UP"},  # 10
        {"F": "up"},  # 11: '^' literal
        {"F": None},  # 12
    ]
    assert matching(f"  s:\n    F|contains: [{listed}]\n  condition: s", rows) == {
        1,
        3,
        4,
        6,
        7,
        9,
        10,
    }
    ends = [
        "\\cmd.exe",
        "\\powershell.exe",
        "\\pwsh.exe",
        "\\wscript.exe",
        "\\cscript.exe",
        "\\mshta.exe",
        "\\rundll32.exe",
    ]
    rows = [
        {"Image": r"C:\Windows\System32\CMD.exe"},  # 1
        {"Image": r"C:\Windows\System32\cmd.exe.bak"},  # 2: not at the end
        {"Image": r"C:\x\mshta.exe"},  # 3
        {"Image": "mshta.exe"},  # 4: no backslash
    ]
    listed = ", ".join(f"'{v}'" for v in ends)
    assert matching(f"  s:\n    Image|endswith: [{listed}]\n  condition: s", rows) == {1, 3}
    rows = [{"Image": "cmd.exe"}, {"Image": "xcmd.exe"}, {"Image": "CMD.EXE"}]
    names = ["cmd.exe", "a*", "b?c", "d", "e", "f", "g"]
    listed = ", ".join(f"'{v}'" for v in names)
    assert matching(f"  s:\n    Image: [{listed}]\n  condition: s", rows) == {1, 3}


# -- regular expressions -------------------------------------------------------------------------


def test_re_is_case_sensitive_unanchored_search_and_i_flag() -> None:
    rows = [
        {"CommandLine": "invoke-mimikatz -dump"},
        {"CommandLine": "Invoke-Mimikatz -Dump"},
        {"CommandLine": "x"},
    ]
    assert matching("  s:\n    CommandLine|re: 'mimi[a-z]+'\n  condition: s", rows) == {1}
    assert matching("  s:\n    CommandLine|re|i: 'mimi[a-z]+'\n  condition: s", rows) == {1, 2}
    assert matching("  s:\n    CommandLine|re: '^x$'\n  condition: s", rows) == {3}


def test_re_m_and_s_flags() -> None:
    rows = [{"F": "first\nsecond"}, {"F": "firstsecond"}]
    assert matching("  s:\n    F|re: '^second'\n  condition: s", rows) == set()
    assert matching("  s:\n    F|re|m: '^second'\n  condition: s", rows) == {1}
    assert matching("  s:\n    F|re: 'first.second'\n  condition: s", rows) == set()
    assert matching("  s:\n    F|re|s: 'first.second'\n  condition: s", rows) == {1}


def test_regex_re2_cannot_compile_is_a_problem_with_a_reason() -> None:
    collection = SigmaCollection.from_yaml(_rule("  s:\n    F|re: 'a(?=b)'\n  condition: s"))
    rule = collection.rules[0]
    assert isinstance(rule, SigmaRule)
    result = compile_rules(RuleSet(rules=[rule]), {"Logs": {"F": "VARCHAR"}})
    assert not result.rules
    [problem] = result.problems
    assert "RE2" in problem.reason and "a(?=b)" in problem.reason


# -- CIDR ----------------------------------------------------------------------------------------


def test_cidr_ipv4() -> None:
    rows = [
        {"Ip": "10.0.0.1"},  # 1
        {"Ip": "10.255.255.255"},  # 2
        {"Ip": "11.0.0.0"},  # 3
        {"Ip": "192.168.1.77"},  # 4
        {"Ip": "192.168.2.1"},  # 5
        {"Ip": "10.0.0.256"},  # 6: not an address
        {"Ip": "fe80::1"},  # 7
        {"Ip": None},  # 8
    ]
    detection = "  s:\n    Ip|cidr: ['10.0.0.0/8', '192.168.1.0/24']\n  condition: s"
    assert matching(detection, rows) == {1, 2, 4}
    assert matching("  s:\n    Ip|cidr: '0.0.0.0/0'\n  condition: s", rows) == {1, 2, 3, 4, 5}


def test_cidr_ipv6() -> None:
    rows = [
        {"Ip": "fe80::1"},  # 1
        {"Ip": "FE80::abcd:1%eth0"},  # 2: zone id and upper case
        {"Ip": "fec0::1"},  # 3: outside fe80::/10
        {"Ip": "2001:db8:0:0:0:0:0:1"},  # 4
        {"Ip": "2001:db9::1"},  # 5
        {"Ip": "::1"},  # 6
        {"Ip": "10.0.0.1"},  # 7
        {"Ip": "1::2::3"},  # 8: not an address
    ]
    detection = "  s:\n    Ip|cidr: ['fe80::/10', '2001:db8::/32', '::1/128']\n  condition: s"
    assert matching(detection, rows) == {1, 2, 4, 6}


# -- encodings -----------------------------------------------------------------------------------


def test_base64() -> None:
    rows = [
        {"CommandLine": "powershell -e " + base64.b64encode(b"http://evil").decode()},
        {"CommandLine": "powershell -e " + base64.b64encode(b"xhttp://evil").decode()},
        {"CommandLine": base64.b64encode(b"http://evil").decode()},
    ]
    # base64("http://evil") = aHR0cDovL2V2aWw=, base64("http:/") = aHR0cDov (no padding);
    # the value is encoded as a whole, so only the unshifted encoding contains it
    assert rows[0]["CommandLine"].endswith("aHR0cDovL2V2aWw=")
    detection = "  s:\n    CommandLine|base64|contains: 'http:/'\n  condition: s"
    assert matching(detection, rows) == {1, 3}
    # with padding ('aHR0cDovLw==' for 'http://') the encoding of a longer text never contains it
    detection = "  s:\n    CommandLine|base64|contains: 'http://'\n  condition: s"
    assert matching(detection, rows) == set()
    assert matching("  s:\n    CommandLine|base64: 'http://evil'\n  condition: s", rows) == {3}


def test_base64offset_finds_all_three_alignments() -> None:
    rows = [
        {"CommandLine": "-e " + base64.b64encode(b"http://evil").decode()},  # offset 0
        {"CommandLine": "-e " + base64.b64encode(b"xhttp://evil").decode()},  # offset 1
        {"CommandLine": "-e " + base64.b64encode(b"xxhttp://evil").decode()},  # offset 2
        {"CommandLine": "-e " + base64.b64encode(b"ftp://evil").decode()},
    ]
    detection = "  s:\n    CommandLine|base64offset|contains: 'http://'\n  condition: s"
    assert matching(detection, rows) == {1, 2, 3}


def test_windash_expands_dash_slash_and_unicode_dashes() -> None:
    rows = [
        {"CommandLine": "powershell -enc AAA"},  # 1 hyphen-minus
        {"CommandLine": "powershell /enc AAA"},  # 2 slash
        {"CommandLine": "powershell \u2013enc AAA"},  # 3 en dash
        {"CommandLine": "powershell \u2014enc AAA"},  # 4 em dash
        {"CommandLine": "powershell \u2015enc AAA"},  # 5 horizontal bar
        {"CommandLine": "powershell enc AAA"},  # 6 no dash
        {"CommandLine": "powershell +enc AAA"},  # 7
    ]
    detection = "  s:\n    CommandLine|windash|contains: ' -enc '\n  condition: s"
    assert matching(detection, rows) == {1, 2, 3, 4, 5}


def _utf16_b64(text: str, encoding: str, offset: int) -> str:
    return base64.b64encode(b"\x00" * offset + text.encode(encoding)).decode()


def test_wide_and_utf16_with_base64offset() -> None:
    script = "ping 10.0.0.1"
    rows = [
        {"CommandLine": "-enc " + _utf16_b64(script, "utf-16le", 0)},  # 1 wide, offset 0
        {"CommandLine": "-enc " + _utf16_b64("x" + script, "utf-16le", 0)},  # 2 shifted 2 bytes
        {"CommandLine": "-enc " + _utf16_b64(script, "utf-16le", 1)},  # 3 shifted 1 byte
        {"CommandLine": "-enc " + _utf16_b64(script, "utf-16be", 0)},  # 4 big endian
        {"CommandLine": "-enc " + base64.b64encode(script.encode()).decode()},  # 5 utf-8
    ]
    # row 4: UTF-16BE text at offset 0 is the UTF-16LE byte sequence shifted by one byte
    # (00 'p' 00 'i' ... contains 'p' 00 'i' 00 ...), so base64offset rightly finds it
    wide = "  s:\n    CommandLine|wide|base64offset|contains: 'ping'\n  condition: s"
    assert matching(wide, rows) == {1, 2, 3, 4}
    # UTF-16BE 'ping' = 00 'p' 00 'i' 00 'n' 00 'g': in row 2 the 'x' 00 before it supplies the
    # leading 00, row 3 is shifted by a zero byte, row 1 starts with 'p' and has no 00 before it
    utf16be = "  s:\n    CommandLine|utf16be|base64offset|contains: 'ping'\n  condition: s"
    assert matching(utf16be, rows) == {2, 3, 4}
    # utf16 = byte order mark + UTF-16LE. pySigma 1.5.1 puts the BOM in as the character
    # U+FEFF, which its base64 step encodes as UTF-8 (EF BB BF), not FF FE as the spec says, and
    # its base64offset then keeps the padding of the unshifted variant ('77u/cABpAG4AZwA='), so
    # only an encoded text that is exactly BOM + 'ping' matches. The backend matches what pySigma
    # produces; no SigmaHQ rule uses utf16 (two use wide).
    spec_bom = base64.b64encode(b"\xff\xfe" + "ping".encode("utf-16le")).decode()
    pysigma_bom = base64.b64encode(b"\xef\xbb\xbf" + "ping".encode("utf-16le")).decode()
    assert pysigma_bom == "77u/cABpAG4AZwA="
    rows_bom = [{"CommandLine": "-enc " + spec_bom}, {"CommandLine": "-enc " + pysigma_bom}]
    utf16 = "  s:\n    CommandLine|utf16|base64offset|contains: 'ping'\n  condition: s"
    assert matching(utf16, rows_bom) == {2}


# -- field existence, references, case, null, numbers ---------------------------------------------


def test_exists_true_and_false() -> None:
    rows = [{"User": "bob"}, {"User": None}, {"User": ""}]
    assert matching("  s:\n    User|exists: true\n  condition: s", rows) == {1, 3}
    assert matching("  s:\n    User|exists: false\n  condition: s", rows) == {2}
    # a field the table does not have exists nowhere
    assert matching("  s:\n    Nope|exists: true\n  condition: s", rows) == set()
    assert matching("  s:\n    Nope|exists: false\n  condition: s", rows) == {1, 2, 3}


def test_fieldref() -> None:
    rows = [
        {"SourceUser": "bob", "TargetUser": "BOB"},  # 1 equal ignoring case
        {"SourceUser": "bob", "TargetUser": "alice"},  # 2
        {"SourceUser": "bob", "TargetUser": None},  # 3
        {"SourceUser": "bobby", "TargetUser": "bob"},  # 4 starts with the other
    ]
    assert matching("  s:\n    SourceUser|fieldref: TargetUser\n  condition: s", rows) == {1}
    assert matching(
        "  s:\n    SourceUser|fieldref|startswith: TargetUser\n  condition: s", rows
    ) == {1, 4}
    assert matching(
        "  s:\n    SourceUser: bob\n  f:\n    SourceUser|fieldref: TargetUser\n"
        "  condition: s and not f",
        rows,
    ) == {2, 3}


def test_cased() -> None:
    rows = [{"F": "CMD.exe"}, {"F": "cmd.exe"}, {"F": "run CMD.exe now"}]
    assert matching("  s:\n    F|cased: 'CMD.exe'\n  condition: s", rows) == {1}
    assert matching("  s:\n    F|contains|cased: 'CMD'\n  condition: s", rows) == {1, 3}
    assert matching("  s:\n    F|re: 'CMD'\n  condition: s", rows) == {1, 3}


def test_null() -> None:
    rows = [{"Parent": None}, {"Parent": "explorer.exe"}, {"Parent": ""}]
    assert matching("  s:\n    Parent: null\n  condition: s", rows) == {1}
    assert matching("  s:\n    Parent: ''\n  condition: s", rows) == {3}


def test_numbers_and_comparisons() -> None:
    rows = [{"Port": 22, "Size": "100"}, {"Port": 443, "Size": "2048"}, {"Port": 8080, "Size": "x"}]
    types = {"Port": "BIGINT"}
    assert matching("  s:\n    Port: 443\n  condition: s", rows, types) == {2}
    assert matching("  s:\n    Port|gt: 443\n  condition: s", rows, types) == {3}
    assert matching("  s:\n    Port|gte: 443\n  condition: s", rows, types) == {2, 3}
    assert matching("  s:\n    Port|lt: 443\n  condition: s", rows, types) == {1}
    assert matching("  s:\n    Port|lte: 443\n  condition: s", rows, types) == {1, 2}
    # numbers stored as text compare numerically; text that is no number never matches
    assert matching("  s:\n    Size|gt: 1000\n  condition: s", rows, types) == {2}
    assert matching("  s:\n    Size|lt: 1000\n  condition: s", rows, types) == {1}
    assert matching("  s:\n    Size: 100\n  condition: s", rows, types) == {1}
    # a string value against a numeric column compares the text
    assert matching("  s:\n    Port: '443'\n  condition: s", rows, types) == {2}


def test_neq_negates_the_item_and_keeps_absent_values() -> None:
    rows = [{"User": "SYSTEM"}, {"User": "bob"}, {"User": None}]
    # 'neq' negates the item: Sigma's NOT of "User = system", true where User is absent
    assert matching("  s:\n    User|neq: 'system'\n  condition: s", rows) == {2, 3}


def test_timestamp_parts() -> None:
    rows = [
        {"Time": "2024-03-05 10:15:00"},
        {"Time": "2024-03-05 23:59:00"},
        {"Time": "2025-12-31 10:00:00"},
        {"Time": "not a time"},
    ]
    assert matching("  s:\n    Time|hour: 10\n  condition: s", rows) == {1, 3}
    assert matching("  s:\n    Time|minute: 59\n  condition: s", rows) == {2}
    assert matching("  s:\n    Time|month: 3\n  condition: s", rows) == {1, 2}
    assert matching("  s:\n    Time|year: 2025\n  condition: s", rows) == {3}
    assert matching("  s:\n    Time|day: 5\n  condition: s", rows) == {1, 2}


def test_not_on_absent_field_keeps_the_event() -> None:
    rows = [
        {"Image": r"C:\Windows\cmd.exe", "ParentImage": None},  # 1: parent unknown
        {"Image": r"C:\Windows\cmd.exe", "ParentImage": r"C:\Windows\explorer.exe"},  # 2
        {"Image": r"C:\Windows\cmd.exe", "ParentImage": r"C:\Tools\legit.exe"},  # 3: filtered
        {"Image": r"C:\Windows\notepad.exe", "ParentImage": None},  # 4
    ]
    detection = (
        "  s:\n    Image|endswith: '\\cmd.exe'\n"
        "  filter:\n    ParentImage|endswith: '\\legit.exe'\n"
        "  filter_absent:\n    NotAColumn: 'x'\n"
        "  condition: s and not filter and not filter_absent"
    )
    assert matching(detection, rows) == {1, 2}
    # nested negation: not (a and not b) with b on an absent field
    detection = (
        "  s:\n    Image|endswith: '.exe'\n  a:\n    Image|endswith: '\\cmd.exe'\n"
        "  b:\n    NotAColumn: 'x'\n  condition: s and not (a and not b)"
    )
    assert matching(detection, rows) == {4}


def test_keywords_search_all_text_columns() -> None:
    rows = [
        {"CommandLine": "run MIMIKATZ now", "Image": "x", "Count": 1},
        {"CommandLine": "clean", "Image": r"C:\mimikatz.exe", "Count": 2},
        {"CommandLine": "clean", "Image": "y", "Count": 3},
        {"CommandLine": "mimi*katz", "Image": "z", "Count": 4},
    ]
    types = {"Count": "BIGINT", "_dm_source": "VARCHAR"}
    assert matching("  keywords:\n    - 'mimikatz'\n  condition: keywords", rows, types) == {1, 2}
    assert matching("  keywords:\n    - 'mimi*katz'\n  condition: keywords", rows, types) == {
        1,
        2,
        4,
    }
    assert matching("  keywords:\n    - 'mimi\\*katz'\n  condition: keywords", rows, types) == {4}
    # provenance columns are not searched
    rows = [{"CommandLine": "clean", "_dm_source": "mimikatz.evtx"}]
    assert matching("  keywords:\n    - 'mimikatz'\n  condition: keywords", rows, types) == set()


def test_keywords_without_a_schema_are_refused() -> None:
    backend = DuckDBBackend(table="T")
    with pytest.raises(SigmaError, match="keyword"):
        backend.convert(SigmaCollection.from_yaml(_rule("  k:\n    - evil\n  condition: k")))


def test_typed_columns_are_cast_for_text_matching() -> None:
    rows = [{"Pid": 4242, "Flag": True}, {"Pid": 17, "Flag": False}]
    types = {"Pid": "BIGINT", "Flag": "BOOLEAN"}
    assert matching("  s:\n    Pid|startswith: '42'\n  condition: s", rows, types) == {1}
    assert matching("  s:\n    Flag: true\n  condition: s", rows, types) == {1}


# -- quoting: no SQL injection from rule content -----------------------------------------------


def _sigma_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


def _rule_from_dict(field: str, modifier: str, value: str) -> SigmaRule:
    key = f"{field}|{modifier}" if modifier else field
    return SigmaRule.from_dict(
        {
            "title": "injection",
            "logsource": {"product": "windows"},
            "detection": {"s": {key: _sigma_escape(value)}, "condition": "s"},
        }
    )


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=40)


@settings(max_examples=150, deadline=None)
@given(value=texts)
def test_arbitrary_strings_round_trip_through_equality(value: str) -> None:
    con = duckdb.connect()
    con.execute('CREATE TABLE T ("F" VARCHAR, "G" VARCHAR)')
    con.execute("INSERT INTO T VALUES (?, 'other'), (? || 'x', 'other')", [value, value])
    schema = {"F": "VARCHAR", "G": "VARCHAR"}
    for modifier, expected in (("", 1), ("cased", 1), ("startswith", 2), ("contains", 2)):
        rule = _rule_from_dict("F", modifier, value)
        [where] = DuckDBBackend(table="T", schemas={"T": schema}).convert_rule(rule, "where")
        count = con.execute(f"SELECT count(*) FROM T WHERE {where}").fetchone()
        assert count == (expected,), (modifier, where)
        compiled = CompiledRule(RuleInfo.of(rule), "T", where)
        hits = con.execute(f"SELECT count(*) FROM ({combined_query('T', [compiled])})").fetchone()
        assert hits == (expected,), (modifier, where)
    # the table is untouched by anything in the value
    assert con.execute("SELECT count(*) FROM T").fetchone() == (2,)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(texts, min_size=MERGE_MIN, max_size=MERGE_MIN + 2), probe=texts)
def test_merged_value_lists_equal_one_comparison_per_value(values: list[str], probe: str) -> None:
    con = duckdb.connect()
    con.execute('CREATE TABLE T ("F" VARCHAR)')
    con.execute("INSERT INTO T VALUES (?)", [probe])
    schema = {"F": "VARCHAR"}
    rule = SigmaRule.from_dict(
        {
            "title": "list",
            "logsource": {"product": "windows"},
            "detection": {
                "s": {"F|contains": [_sigma_escape(v) for v in values]},
                "condition": "s",
            },
        }
    )
    [where] = DuckDBBackend(table="T", schemas={"T": schema}).convert_rule(rule, "where")
    assert "regexp_matches" in where
    [[got]] = con.execute(f"SELECT coalesce({where}, false) FROM T").fetchall()
    lowered = con.execute("SELECT lower(?)", [probe]).fetchone()
    assert lowered is not None
    expected = any(
        con.execute("SELECT contains(lower(?), lower(?))", [probe, v]).fetchone() == (True,)
        for v in values
    )
    assert got == expected


def test_identifiers_with_quotes_are_safe() -> None:
    name = 'we"ird\' lower("x")'
    con, schema = _table([{name: "v"}])
    backend = DuckDBBackend(table="T", schemas={"T": schema})
    rule = SigmaRule.from_dict(
        {
            "title": "odd field",
            "logsource": {"product": "windows"},
            "detection": {"s": {name: "V"}, "condition": "s"},
        }
    )
    [where] = backend.convert_rule(rule, "where")
    compiled = CompiledRule(RuleInfo.of(rule), "T", where)
    assert con.execute(f"SELECT count(*) FROM T WHERE {where}").fetchone() == (1,)
    assert con.execute(f"SELECT count(*) FROM ({combined_query('T', [compiled])})").fetchone() == (
        1,
    )


def test_unknown_fields_become_null_and_are_reported() -> None:
    backend = DuckDBBackend(table="T", schemas={"T": {"Image": "VARCHAR"}})
    rule = SigmaRule.from_dict(
        {
            "title": "unknown",
            "logsource": {"product": "windows"},
            "detection": {"s": {"Image": "x", "Missing|contains": "y"}, "condition": "s"},
        }
    )
    [where] = backend.convert_rule(rule, "where")
    assert backend.unknown_fields == {"Missing"}
    assert "CAST(NULL AS VARCHAR)" in where
    [sql] = backend.convert_rule(
        SigmaRule.from_dict(
            {
                "title": "full",
                "logsource": {"product": "windows"},
                "detection": {"s": {"image": "x"}, "condition": "s"},
            }
        )
    )
    assert sql.startswith('SELECT * FROM "T" WHERE ')
    assert '"Image"' in sql  # case-insensitive column lookup, canonical spelling
