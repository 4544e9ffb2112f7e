"""Row → line bookkeeping of NDJSON ingestion: the blank-line scan over arbitrary chunk
boundaries, and the SQL that turns DuckDB row numbers back into file line numbers."""

from __future__ import annotations

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from defensemap.logs.readers import _LineScan, _scan_block
from defensemap.logs.sql import _line_expr, _thresholds

LINES = st.lists(st.sampled_from([b"", b" ", b"\r", b" \t\r", b"{}", b'{"a":1}', b" {}"]))


def scan(data: bytes, step: int) -> _LineScan:
    """Feed ``data`` to the scanner the way _scan_blank_lines does, ``step`` bytes a read."""
    result = _LineScan()
    carry = b""
    for start in range(0, len(data), step):
        block = carry + data[start : start + step]
        end = block.rfind(b"\n") + 1
        carry = block[end:]
        _scan_block(result, block[:end])
    if carry:
        _scan_block(result, carry + b"\n")
    return result


@given(LINES, st.booleans(), st.integers(1, 9))
@settings(max_examples=400)
def test_blank_line_scan(lines: list[bytes], final_newline: bool, step: int) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    result = scan(data, step)
    physical = data.split(b"\n")
    if data.endswith(b"\n"):
        physical = physical[:-1]
    if not data:
        physical = []
    blanks = [i for i, line in enumerate(physical, start=1) if not line.strip(b" \t\r")]
    assert result.lines == len(physical)
    assert result.blanks == blanks
    assert result.records == len(physical) - len(blanks)


@given(st.lists(st.booleans(), max_size=60), st.integers(0, 3))
@settings(max_examples=200)
def test_row_numbers_map_back_to_lines(skipped: list[bool], base: int) -> None:
    """``skipped[i]``: line i+1 (after ``base`` header lines) yields no row."""
    positions = [i + 1 for i, s in enumerate(skipped) if s]
    expected = [base + i + 1 for i, s in enumerate(skipped) if not s]
    expr = _line_expr("rn", _thresholds(positions), base=base)
    con = duckdb.connect()
    got = [
        r[0]
        for r in con.execute(
            f"SELECT {expr} FROM range(1, {len(expected) + 1}) t(rn) ORDER BY rn"
        ).fetchall()
    ]
    assert got == expected
