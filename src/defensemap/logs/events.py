"""Windows events (EVTX files and their JSON exports), flattened by
:func:`defensemap.logs.flatten.flatten_event` into a temporary NDJSON file that read_json loads."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, cast

import duckdb
import orjson

from defensemap.errors import ParseError, SourceLocation
from defensemap.logs.context import (
    _MAX_REPORTED_LINES,
    _REC,
    _Context,
    _duck_path,
    _label,
    _Prepared,
    _reserved,
)
from defensemap.logs.flatten import flatten_event, is_evtx_json
from defensemap.logs.formats import (
    _json_document_error,
    _line_problem,
    _lines,
    _open_text,
    _Source,
)
from defensemap.logs.sql import _select_list

WINDOWS_EVENTS_TABLE = "WindowsEvents"

BATCH = 5000

_WINDOWS_TYPES = {"EventID": "BIGINT", "TimeCreated": "TIMESTAMP"}


class _EventWriter:
    """Flattened events to a temporary NDJSON file that read_json loads.

    Why a file and not ``executemany``: DuckDB runs an ``executemany`` INSERT one row at a
    time (measured: ~1,700 rows/s for 30 columns), while read_json loads the same rows
    vectorised; the writer also learns the union of all columns before the table is
    touched, so the load is a single ``INSERT BY NAME`` instead of a stream of ``ALTER
    TABLE``s. Memory stays at one record: rows go straight to disk.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = path.open("wb")
        self.columns: dict[str, str] = {}  # case-folded name -> first spelling seen
        self.rows = 0
        self.channels: dict[str, None] = {}

    def write(self, record_number: int, flat: dict[str, Any]) -> None:
        row: dict[str, Any] = {_REC: record_number}
        for key, value in flat.items():
            name = key if not _reserved(key) else f"Data{key}"
            row[self.columns.setdefault(name.casefold(), name)] = value
        channel = flat.get("Channel")
        if isinstance(channel, str) and len(self.channels) < 50:
            self.channels.setdefault(channel, None)
        try:
            data = orjson.dumps(row, default=str)
        except TypeError:  # strings with lone surrogates
            import json

            data = json.dumps(row, default=str, ensure_ascii=False).encode("utf-8", "replace")
        self.handle.write(data + b"\n")
        self.rows += 1

    def close(self) -> None:
        self.handle.close()


def _prepare_evtx(ctx: _Context, source: _Source) -> _Prepared:
    import evtx

    writer = _EventWriter(ctx.temp("events.ndjson"))
    skipped = 0
    ctx.progress.stage(0.0, 0.4)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            parser = evtx.PyEvtxParser(str(source.absolute), skip_errors=ctx.skip_bad)
            for number, record in enumerate(parser.records_json(), start=1):
                try:
                    data = orjson.loads(cast(dict[str, Any], record)["data"])
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    if not ctx.skip_bad:
                        raise ParseError(
                            f"EVTX record {number} is not valid JSON",
                            location=source.where,
                            hint="pass --skip-bad to skip such records",
                        ) from None
                    skipped += 1
                    continue
                writer.write(number, flatten_event(data))
                if caught:
                    skipped += sum(1 for w in caught if issubclass(w.category, RuntimeWarning))
                    caught.clear()
                if number % 1024 == 0:  # about a kilobyte per record
                    ctx.progress.fraction(number * 1024 / max(source.size, 1))
            skipped += sum(1 for w in caught if issubclass(w.category, RuntimeWarning))
    except (RuntimeError, OSError, ValueError) as exc:
        raise ParseError(
            f"cannot read the EVTX file: {exc}",
            location=source.where,
            hint="the file is damaged; pass --skip-bad to skip damaged records",
        ) from None
    finally:
        writer.close()
    return _events_prepared(ctx, source, writer, "evtx", skipped, ())


def _prepare_evtx_json(ctx: _Context, source: _Source, layout: str) -> _Prepared:
    """Windows events exported as JSON: NDJSON lines, an array, or whole documents."""
    writer = _EventWriter(ctx.temp("events.ndjson"))
    skipped = 0
    bad_lines: list[int] = []
    ctx.progress.stage(0.0, 0.4)

    def bad(number: int, message: str, *, line: bool) -> None:
        nonlocal skipped
        if not ctx.skip_bad:
            where = (
                SourceLocation(path=str(source.path), line=number)
                if line
                else SourceLocation(path=str(source.path), pointer=f"/{number - 1}")
            )
            raise ParseError(message, location=where, hint="pass --skip-bad to skip it")
        skipped += 1
        if len(bad_lines) < _MAX_REPORTED_LINES:
            bad_lines.append(number)

    try:
        if layout == "ndjson":
            with _open_text(source.absolute, source.gzip, source.where) as (handle, raw):
                for number, line in _lines(handle):
                    problem = _line_problem(line)
                    if problem is not None:
                        bad(number, f"malformed line: {problem[0]}", line=True)
                        continue
                    assert line is not None
                    if not line.strip():
                        continue
                    record = orjson.loads(line)
                    if not is_evtx_json(record):
                        bad(number, "not a Windows event (no Event.System)", line=True)
                        continue
                    writer.write(number, flatten_event(record))
                    if writer.rows % 4096 == 0:
                        ctx.progress.fraction(raw.tell() / max(source.size, 1))
        else:
            path = _duck_path(ctx, source.absolute, "input")
            try:
                cursor = ctx.con.execute(
                    f"SELECT Event FROM read_json(?, format='{layout}', records='true',"
                    " columns={'Event': 'JSON'}, compression=?)",
                    [path, source.compression],
                )
                number = 0
                while batch := cursor.fetchmany(BATCH):
                    for (event,) in batch:
                        number += 1
                        record = {"Event": orjson.loads(event) if event is not None else None}
                        if not is_evtx_json(record):
                            bad(number, f"record {number} is not a Windows event", line=False)
                            continue
                        writer.write(number, flatten_event(record))
            except duckdb.Error as exc:
                raise _json_document_error(source, exc) from None
    finally:
        writer.close()
    return _events_prepared(ctx, source, writer, "evtx-json", skipped, tuple(bad_lines))


def _events_prepared(
    ctx: _Context,
    source: _Source,
    writer: _EventWriter,
    fmt: str,
    skipped: int,
    bad_lines: tuple[int, ...],
) -> _Prepared:
    names = list(writer.columns.values())
    read_columns = {name: "BIGINT" if name == "EventID" else "VARCHAR" for name in names}
    proposed = [(name, read_columns[name], _WINDOWS_TYPES.get(name, "VARCHAR")) for name in names]
    path = _duck_path(ctx, writer.path, "events")
    reader = (
        f"SELECT {_select_list(read_columns)}, {_REC} FROM read_json(?,"
        " format='newline_delimited', records='true', columns=?)"
    )
    return _Prepared(
        format=_label(fmt, source),
        reader=reader,
        params=[path, {**read_columns, _REC: "BIGINT"}],
        columns=proposed,
        expected_rows=writer.rows,
        skipped=skipped,
        bad_lines=bad_lines,
        windows=True,
        channels=tuple(writer.channels),
    )
