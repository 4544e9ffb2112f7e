"""Make NDJSON, JSON, CSV and Parquet files readable by one SQL query (a ``_Prepared``)
that also gives each record's line or row number in the file."""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass, field
from typing import IO, NoReturn, cast

import duckdb
import orjson

from defensemap.errors import ParseError, SchemaError, SourceError, SourceLocation
from defensemap.logs.context import (
    _MAX_REPORTED_LINES,
    _REC,
    _RN,
    _check_internal,
    _Context,
    _duck_path,
    _label,
    _Prepared,
)
from defensemap.logs.events import _prepare_evtx_json
from defensemap.logs.flatten import is_evtx_json
from defensemap.logs.formats import (
    _CHUNK,
    _duck_error,
    _json_document_error,
    _line_problem,
    _lines,
    _open_text,
    _Source,
)
from defensemap.logs.sql import (
    _MAX_THRESHOLDS,
    _column_type,
    _line_expr,
    _one,
    _q,
    _read_and_column_type,
    _select_list,
    _thresholds,
)

# --------------------------------------------------------------------------- NDJSON


@dataclass
class _LineScan:
    lines: int = 0
    records: int = 0  # non-blank lines
    blanks: list[int] | None = field(default_factory=list)  # None: too many to keep


def _prepare_ndjson(ctx: _Context, source: _Source) -> _Prepared:
    with _open_text(source.absolute, source.gzip, source.where) as (handle, _):
        first = next((line for _, line in _lines(handle) if line is None or line.strip()), None)
    if first is not None and _is_evtx_line(first):
        return _prepare_evtx_json(ctx, source, "ndjson")
    ctx.progress.stage(0.0, 0.15)
    scan = _scan_blank_lines(ctx, source)
    path = _duck_path(ctx, source.absolute, "input")
    ctx.progress.stage(0.15, 0.45)
    described = _describe_json(ctx, source, path, "newline_delimited", source.compression)
    if isinstance(described, _DescribeFailure) or scan.blanks is None:
        if isinstance(described, _DescribeFailure) and not ctx.skip_bad:
            _raise_first_bad_line(ctx, source, described)
        return _prepare_tagged_copy(ctx, source)
    read_columns, proposed = _json_columns(source, described)
    thresholds = _thresholds(scan.blanks)
    line = _line_expr(_RN, thresholds, base=0)
    reader = (
        f"SELECT {_select_list(read_columns)}, {line} AS {_REC} FROM ("
        f"SELECT *, row_number() OVER () AS {_RN} FROM read_json(?, format='newline_delimited',"
        " records='true', columns=?, compression=?))"
    )
    return _Prepared(
        format=_label("ndjson", source),
        reader=reader,
        params=[path, read_columns, source.compression],
        columns=proposed,
        expected_rows=scan.records,
    )


def _is_evtx_line(line: bytes) -> bool:
    try:
        return is_evtx_json(orjson.loads(line))
    except orjson.JSONDecodeError:
        return False


def _scan_blank_lines(ctx: _Context, source: _Source) -> _LineScan:
    """Count lines and note blank ones (DuckDB skips them, so row n is not line n)."""
    scan = _LineScan()
    with source.absolute.open("rb") as raw:
        handle = cast(IO[bytes], gzip.GzipFile(fileobj=raw)) if source.gzip else raw
        try:
            carry = b""
            first = True
            while chunk := handle.read(_CHUNK):
                if first and chunk.startswith(b"\xef\xbb\xbf"):
                    chunk = chunk[3:]
                first = False
                data = carry + chunk
                end = data.rfind(b"\n") + 1
                carry = data[end:]
                _scan_block(scan, data[:end])
                ctx.progress.fraction(raw.tell() / max(source.size, 1))
            if carry:
                _scan_block(scan, carry + b"\n")
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise ParseError(
                f"gzip archive is truncated or corrupt ({exc})", location=source.where
            ) from None
    return scan


# A newline followed by a blank line. Searching for newlines (a literal first character)
# keeps the scan at C speed; the lookahead leaves the blank line's own newline to match
# again when several blank lines follow each other.
_BEFORE_BLANK = re.compile(rb"\n(?=[ \t\r]*\n)")
_BLANK_START = re.compile(rb"[ \t\r]*\n")
_MAYBE_BLANK = re.compile(rb"\n[\n\r \t]")  # measured 2x faster than four `in` tests


def _scan_block(scan: _LineScan, block: bytes) -> None:
    """Account for ``block``: whole lines, each ending with a newline."""
    lines = block.count(b"\n")
    starts_blank = _BLANK_START.match(block) is not None
    if not starts_blank and _MAYBE_BLANK.search(block) is None:
        scan.lines += lines  # the common case, decided at memchr speed
        scan.records += lines
        return
    if scan.blanks is None:
        blanks = starts_blank + sum(1 for _ in _BEFORE_BLANK.finditer(block))
    else:
        if starts_blank:
            scan.blanks.append(scan.lines + 1)
        position, line = 0, scan.lines
        for match in _BEFORE_BLANK.finditer(block):
            # the newline ends line `line`; the blank line is the next one
            line += block.count(b"\n", position, match.start()) + 1
            position = match.start() + 1
            scan.blanks.append(line + 1)
            if len(scan.blanks) > _MAX_THRESHOLDS:
                break
        blanks = starts_blank + sum(1 for _ in _BEFORE_BLANK.finditer(block))
        if len(scan.blanks) > _MAX_THRESHOLDS:
            scan.blanks = None
    scan.lines += lines
    scan.records += lines - blanks


@dataclass
class _DescribeFailure:
    error: duckdb.Error


def _describe_json(
    ctx: _Context, source: _Source, path: str, fmt: str, compression: str
) -> list[tuple[str, str]] | _DescribeFailure:
    """Column names and types of a JSON file over all its records (sample_size=-1)."""
    sql = (
        f"SELECT * FROM read_json(?, format='{fmt}', records='true', sample_size=-1,"
        " maximum_depth=2, compression=?) LIMIT 0"
    )
    try:
        with ctx.progress.query():
            result = ctx.con.execute(sql, [path, compression])
    except duckdb.IOException as exc:
        raise _duck_error(source, exc) from None
    except duckdb.Error as exc:
        return _DescribeFailure(exc)
    return [(d[0], str(d[1])) for d in result.description or []]


def _json_columns(
    source: _Source, described: list[tuple[str, str]], *, internal: str | None = None
) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """How to read each JSON column (``columns=`` of read_json) and the proposed type."""
    folded = {name.casefold() for name, _ in described}
    read: dict[str, str] = {}
    proposed: list[tuple[str, str, str]] = []
    for name, detected in described:
        match = re.fullmatch(r"(.+)_\d+", name)
        if match and match[1].casefold() in folded:
            raise SchemaError(
                f"keys that differ only in case ({match[1]!r} …): SQL column names are"
                " case-insensitive",
                location=source.where,
                hint="rename one of the keys",
            )
        if name == internal:
            continue
        _check_internal(source, name)
        read_type, column_type = _read_and_column_type(detected)
        read[name] = read_type
        proposed.append((name, read_type, column_type))
    return read, proposed


def _raise_first_bad_line(ctx: _Context, source: _Source, failure: _DescribeFailure) -> NoReturn:
    ctx.progress.stage(0.15, 0.45)
    with _open_text(source.absolute, source.gzip, source.where) as (handle, raw):
        for number, line in _lines(handle):
            if number % 4096 == 0:
                ctx.progress.fraction(raw.tell() / max(source.size, 1))
            problem = _line_problem(line)
            if problem is not None:
                message, column = problem
                raise ParseError(
                    f"malformed line: {message}",
                    location=SourceLocation(path=str(source.path), line=number, column=column),
                    hint="fix or remove the line, or pass --skip-bad to skip (and count) such"
                    " lines",
                )
    raise _duck_error(source, failure.error)


def _prepare_tagged_copy(ctx: _Context, source: _Source) -> _Prepared:
    """Copy the good lines to a temporary file, each tagged with its line number.

    Used with --skip-bad when some lines are bad, and when a file has too many blank lines
    to map row numbers to line numbers in SQL. The tag is spliced into each object's text
    (``{"__dm_rec":7,`` + the rest), so lines are not re-serialised.
    """
    ctx.progress.stage(0.15, 0.35)
    target = ctx.temp("tagged.ndjson")
    good = skipped = 0
    bad_lines: list[int] = []
    with (
        _open_text(source.absolute, source.gzip, source.where) as (handle, raw),
        target.open("wb") as out,
    ):
        for number, line in _lines(handle):
            problem = _line_problem(line)
            if problem is not None:
                if not ctx.skip_bad:
                    raise ParseError(
                        f"malformed line: {problem[0]}",
                        location=SourceLocation(path=str(source.path), line=number),
                        hint="fix or remove the line, or pass --skip-bad",
                    )
                skipped += 1
                if len(bad_lines) < _MAX_REPORTED_LINES:
                    bad_lines.append(number)
                continue
            assert line is not None
            body = line.strip()
            if not body:
                continue
            rest = body[1:].lstrip()
            tag = b'{"%s":%d' % (_REC.encode(), number)
            out.write(tag + (b"" if rest.startswith(b"}") else b",") + rest + b"\n")
            good += 1
            if good % 4096 == 0:
                ctx.progress.fraction(raw.tell() / max(source.size, 1))
    if not good:
        raise SourceError(
            f"the file holds no records ({skipped} bad, skipped)", location=source.where
        )
    path = _duck_path(ctx, target, "tagged")
    ctx.progress.stage(0.35, 0.45)
    described = _describe_json(ctx, source, path, "newline_delimited", "none")
    if isinstance(described, _DescribeFailure):
        raise _duck_error(source, described.error)
    read_columns, proposed = _json_columns(source, described, internal=_REC)
    reader = (
        f"SELECT {_select_list(read_columns)}, {_REC} FROM read_json(?,"
        " format='newline_delimited', records='true', columns=?)"
    )
    return _Prepared(
        format=_label("ndjson", source),
        reader=reader,
        params=[path, {**read_columns, _REC: "BIGINT"}],
        columns=proposed,
        expected_rows=good,
        skipped=skipped,
        bad_lines=tuple(bad_lines),
    )


# --------------------------------------------------------------------------- JSON documents


def _prepare_json_documents(ctx: _Context, source: _Source) -> _Prepared:
    """A JSON array of objects, or one or more whole (pretty-printed) JSON objects."""
    fmt = "array" if source.format == "json-array" else "unstructured"
    path = _duck_path(ctx, source.absolute, "input")
    ctx.progress.stage(0.0, 0.1)
    try:
        sample = ctx.con.execute(
            f"SELECT * FROM read_json(?, format='{fmt}', records='true', maximum_depth=3,"
            " compression=?) LIMIT 0",
            [path, source.compression],
        ).description
    except duckdb.Error as exc:
        raise _json_document_error(source, exc) from None
    names = [d[0] for d in sample or []]
    if names == ["Event"] and "System" in str(sample[0][1] if sample else ""):
        return _prepare_evtx_json(ctx, source, fmt)
    ctx.progress.stage(0.1, 0.45)
    described = _describe_json(ctx, source, path, fmt, source.compression)
    if isinstance(described, _DescribeFailure):
        raise _json_document_error(source, described.error)
    read_columns, proposed = _json_columns(source, described)
    reader = (
        f"SELECT {_select_list(read_columns)}, {_RN} AS {_REC} FROM ("
        f"SELECT *, row_number() OVER () AS {_RN} FROM read_json(?, format='{fmt}',"
        " records='true', columns=?, compression=?))"
    )
    return _Prepared(
        format=_label(source.format, source),
        reader=reader,
        params=[path, read_columns, source.compression],
        columns=proposed,
        needs_prepass=True,
    )


# --------------------------------------------------------------------------- CSV, Parquet


def _prepare_csv(ctx: _Context, source: _Source) -> _Prepared:
    path = _duck_path(ctx, source.absolute, "input")
    ctx.progress.stage(0.0, 0.1)
    options = "compression=?, ignore_errors=true"
    try:
        sniff = _one(
            ctx.con.execute(
                f"SELECT HasHeader, SkipRows, Columns, DateFormat, TimestampFormat"
                f" FROM sniff_csv(?, {options})",
                [path, source.compression],
            )
        )
        names = ctx.con.execute(
            f"SELECT * FROM read_csv(?, {options}, all_varchar=true) LIMIT 0",
            [path, source.compression],
        ).description
    except duckdb.Error as exc:
        raise _duck_error(source, exc) from None
    assert sniff is not None
    has_header, skip_rows, sniffed, date_format, timestamp_format = sniff
    names_list = [d[0] for d in names or []]
    types = [c["type"] for c in sniffed or []]
    if len(types) != len(names_list):
        types = ["VARCHAR"] * len(names_list)
    proposed = []
    for name, detected in zip(names_list, types, strict=True):
        _check_internal(source, name)
        _, column_type = _read_and_column_type(detected)
        proposed.append((name, "VARCHAR", column_type))
    rejects = (f"__dm_rejects_{ctx.index}", f"__dm_scans_{ctx.index}")
    header = int(skip_rows or 0) + (1 if has_header else 0)
    prepared = _Prepared(
        format=_label("csv", source),
        reader="",
        params=[],
        columns=proposed,
        needs_prepass=True,
        csv_rejects=rejects,
        time_formats=tuple(f for f in (timestamp_format, date_format) if f),
    )
    # the pre-pass reader records rejected rows; the load reader numbers rows (set later)
    prepared.reader = (
        f"SELECT * FROM read_csv(?, {options}, all_varchar=true, store_rejects=true,"
        f" rejects_table='{rejects[0]}', rejects_scan='{rejects[1]}')"
    )
    prepared.params = [path, source.compression]
    prepared.csv_header = header
    return prepared


def _prepare_parquet(ctx: _Context, source: _Source) -> _Prepared:
    path = _duck_path(ctx, source.absolute, "input")
    ctx.progress.stage(0.0, 0.1)
    try:
        description = ctx.con.execute("SELECT * FROM read_parquet(?) LIMIT 0", [path]).description
        count = _one(ctx.con.execute("SELECT count(*) FROM read_parquet(?)", [path]))
    except duckdb.Error as exc:
        raise _duck_error(source, exc) from None
    proposed = []
    for name, detected in ((d[0], str(d[1])) for d in description or []):
        _check_internal(source, name)
        proposed.append((name, detected, _column_type(detected)))
    columns = ", ".join(_q(c[0]) for c in proposed)
    reader = (
        f"SELECT {columns}, file_row_number + 1 AS {_REC}"
        " FROM read_parquet(?, file_row_number=true)"
    )
    return _Prepared(
        format=_label("parquet", source),
        reader=reader,
        params=[path],
        columns=proposed,
        expected_rows=int(count[0]) if count else None,
    )
