"""Log file formats: recognise a file's format from its name and first bytes, read its
bytes and lines (through gzip), and turn read failures into errors that point into the file.
"""

from __future__ import annotations

import gzip
import re
import stat
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import duckdb
import orjson

from defensemap.errors import ParseError, SchemaError, SourceError, SourceLocation

EVTX_MAGIC = b"ElfFile\x00"
PARQUET_MAGIC = b"PAR1"
GZIP_MAGIC = b"\x1f\x8b"
MAX_LINE_BYTES = 16 << 20  # DuckDB's default maximum_object_size for JSON

_HEAD = 64 << 10
_CHUNK = 4 << 20

_SUFFIXES = {
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".evtx": "evtx",
}
SUPPORTED = ".ndjson, .jsonl, .json, .csv, .tsv (each optionally .gz), .parquet, .evtx"


@dataclass(frozen=True)
class _Source:
    path: Path  # as given
    absolute: Path
    format: str  # ndjson, json-array, json, csv, parquet, evtx
    gzip: bool
    size: int

    @property
    def where(self) -> SourceLocation:
        return SourceLocation(path=str(self.path))

    @property
    def compression(self) -> str:
        return "gzip" if self.gzip else "none"


def _sniff(path: Path) -> _Source:
    where = SourceLocation(path=str(path))
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SourceError("file not found", location=where, hint="check the path") from None
    except OSError as exc:
        raise SourceError(f"cannot read the file: {exc.strerror or exc}", location=where) from None
    if stat.S_ISDIR(info.st_mode):
        raise SourceError(
            "is a directory, not a file", location=where, hint="pass the log files themselves"
        )
    if not stat.S_ISREG(info.st_mode):
        raise SourceError(
            "not a regular file", location=where, hint="save the logs to a file first"
        )
    try:
        with path.open("rb") as handle:
            raw = handle.read(_HEAD)
    except OSError as exc:
        raise SourceError(
            f"cannot read the file: {exc.strerror or exc}",
            location=where,
            hint="check the file's permissions",
        ) from None
    if not raw:
        raise SourceError("the file is empty", location=where)
    absolute = path.resolve()
    name = path.name.lower()
    compressed = raw[:2] == GZIP_MAGIC
    if name.endswith(".gz"):
        name = name[:-3]
    suffix = Path(name).suffix
    expected = _SUFFIXES.get(suffix)

    def source(fmt: str) -> _Source:
        return _Source(path, absolute, fmt, compressed, info.st_size)

    if raw.startswith(EVTX_MAGIC):
        return source("evtx")
    if expected == "evtx":
        raise ParseError(
            "not an EVTX file (no 'ElfFile' header)",
            location=where,
            hint="the file is damaged or has the wrong extension",
        )
    if raw.startswith(PARQUET_MAGIC):
        return source("parquet")
    if expected == "parquet":
        raise ParseError("not a Parquet file (no 'PAR1' header)", location=where)
    first = _first_content_byte(path, compressed, where)
    if first is None:
        raise SourceError("the file is empty (only whitespace)", location=where)
    if expected == "csv":
        return source("csv")
    if first == ord("["):
        return source("json-array")
    if first == ord("{"):
        if expected == "ndjson":
            return source("ndjson")
        return source(_json_layout(path, compressed, where))
    if expected in {"ndjson", "json"}:
        raise ParseError(
            f"not JSON: the file starts with {chr(first)!r}",
            location=where,
            hint="the file is damaged or not JSON",
        )
    raise SourceError(
        "unknown log format",
        location=where,
        hint=f"supported: {SUPPORTED}; rename the file to say what it holds",
    )


@contextmanager
def _open_text(
    path: Path, compressed: bool, where: SourceLocation
) -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """(the file's decompressed bytes, the raw file for its position); gzip errors become
    ParseError."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise SourceError(f"cannot read the file: {exc.strerror or exc}", location=where) from None
    with raw:
        try:
            if compressed:
                with gzip.GzipFile(fileobj=raw) as archive:
                    yield cast(IO[bytes], archive), raw
            else:
                yield raw, raw
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise ParseError(
                f"gzip archive is truncated or corrupt ({exc})", location=where
            ) from None


def _first_content_byte(path: Path, compressed: bool, where: SourceLocation) -> int | None:
    with _open_text(path, compressed, where) as (handle, _):
        start = True
        while chunk := handle.read(_CHUNK):
            if start and chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
            start = False
            stripped = chunk.lstrip()
            if stripped:
                return stripped[0]
    return None


def _json_layout(path: Path, compressed: bool, where: SourceLocation) -> str:
    """``{`` first: NDJSON when the first non-blank line is a whole JSON object, else
    one or more (pretty-printed) documents."""
    with _open_text(path, compressed, where) as (handle, _):
        for _, line in _lines(handle):
            if line is None:
                return "ndjson"
            if line.strip():
                try:
                    value = orjson.loads(line)
                except orjson.JSONDecodeError:
                    return "json"
                return "ndjson" if isinstance(value, dict) else "json"
    return "json"


def _lines(handle: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """(1-based line number, line without its newline); None for a line longer than
    MAX_LINE_BYTES, which is skipped over without being held in memory."""
    number = 0
    first = True
    while True:
        line = handle.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if first and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        first = False
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while True:
                rest = handle.readline(_CHUNK)
                if not rest or rest.endswith(b"\n"):
                    break
            yield number, None
            continue
        yield number, line.rstrip(b"\r\n")


def _line_problem(line: bytes | None) -> tuple[str, int | None] | None:
    """Why a non-blank NDJSON line is not a JSON object; None for good and blank lines."""
    if line is None:
        return f"longer than {MAX_LINE_BYTES >> 20} MiB", None
    if not line.strip():
        return None
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg})", exc.colno
    if not isinstance(value, dict):
        return f"a JSON {type(value).__name__.replace('dict', 'object')}, not an object", 1
    return None


def _duck_error(source: _Source, exc: duckdb.Error) -> SourceError:
    message = str(exc).split("\n", 1)[0]
    message = re.sub(r"^[A-Za-z ]*Error: ", "", message)
    if isinstance(exc, duckdb.IOException):
        return SourceError(f"cannot read the file: {message}", location=source.where)
    return ParseError(
        message,
        location=source.where,
        hint="the file is damaged, or not in the format its name says",
    )


def _json_document_error(source: _Source, exc: duckdb.Error) -> SourceError:
    """A precise location from orjson when the file is small enough to parse whole."""
    hint = "the file is damaged or not JSON; --skip-bad skips lines of NDJSON files only"
    if source.size <= 64 << 20 and not source.gzip:
        try:
            value = orjson.loads(source.absolute.read_bytes())
        except orjson.JSONDecodeError as decode_error:
            return ParseError(
                f"not valid JSON: {decode_error.msg}",
                location=SourceLocation(
                    path=str(source.path), line=decode_error.lineno, column=decode_error.colno
                ),
                hint=hint,
            )
        except OSError:
            pass
        else:
            if value == []:
                return SourceError("the file holds no records", location=source.where)
            items = value if isinstance(value, list) else [value]
            for index, item in enumerate(items):
                if not isinstance(item, dict):
                    return SchemaError(
                        f"record {index + 1} is not a JSON object",
                        location=SourceLocation(path=str(source.path), pointer=f"/{index}"),
                        hint="each record must be a JSON object",
                    )
    error = _duck_error(source, exc)
    error.hint = hint
    return error
