"""Read JSON input files (plain or gzip) safely: bounded size, precise errors."""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from defensemap.errors import ParseError, SourceError, SourceLocation

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
MAX_BYTES_ENV = "DEFENSEMAP_MAX_INPUT_MB"
DEFAULT_MAX_BYTES = 512 << 20


def max_input_bytes() -> int:
    """Largest (uncompressed) input accepted; official ATT&CK bundles are under 50 MB."""
    env = os.environ.get(MAX_BYTES_ENV)
    if env and env.isdecimal():
        return int(env) << 20
    return DEFAULT_MAX_BYTES


@dataclass(frozen=True)
class RawDocument:
    """The decoded JSON of one file, its bytes' SHA-256 and where it came from."""

    path: str
    sha256: str
    data: Any


def read_text(path: Path, hint: str = "save the file as UTF-8") -> str:
    """Whole content of a text input (a BOM is dropped), or a typed error naming the file."""
    try:
        return read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(
            f"not UTF-8 text (byte {exc.start})",
            location=SourceLocation(path=str(path)),
            hint=hint,
        ) from None


def read_bytes(path: Path, limit: int | None = None) -> bytes:
    """Whole (decompressed) content of ``path``; refuses files above ``limit`` before reading.

    Gzip is detected by its magic number and inflated in chunks, so a truncated archive or a
    gzip bomb is reported instead of exhausting memory.
    """
    limit = max_input_bytes() if limit is None else limit
    where = SourceLocation(path=str(path))
    try:
        with path.open("rb") as handle:
            # peek, not read + seek: a pipe (``<(curl ...)``) cannot seek
            if handle.peek(2)[:2] == GZIP_MAGIC:
                return _inflate(handle, limit, where)
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                # pipes and devices report size 0: bound the read itself
                return _read_limited(handle, limit, where, "input")
            if info.st_size > limit:
                raise ParseError(
                    f"file is {info.st_size / 2**20:.0f} MiB, larger than the {limit >> 20} MiB"
                    " limit",
                    location=where,
                    hint=f"check it is the right file, or raise ${MAX_BYTES_ENV}",
                )
            return handle.read()
    except FileNotFoundError:
        raise SourceError("file not found", location=where, hint="check the path") from None
    except IsADirectoryError:
        raise SourceError(
            "is a directory, not a file",
            location=where,
            hint="pass the bundle file itself (.json or .json.gz)",
        ) from None
    except PermissionError:
        raise SourceError(
            "permission denied", location=where, hint="check the file's permissions"
        ) from None
    except OSError as exc:
        raise SourceError(
            f"cannot read the file: {exc.strerror or exc}",
            location=where,
            hint="check the path, or copy the file to a local disk",
        ) from None


def _read_limited(stream: Any, limit: int, where: SourceLocation, what: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while chunk := stream.read(_CHUNK):
        total += len(chunk)
        if total > limit:
            raise ParseError(
                f"{what} exceeds the {limit >> 20} MiB limit",
                location=where,
                hint=f"check it is the right file, or raise ${MAX_BYTES_ENV}",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _inflate(handle: Any, limit: int, where: SourceLocation) -> bytes:
    try:
        with gzip.GzipFile(fileobj=handle) as archive:
            return _read_limited(archive, limit, where, "gzip content")
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise ParseError(
            f"gzip archive is truncated or corrupt ({exc})",
            location=where,
            hint="download the file again",
        ) from None


def read_json(path: Path, limit: int | None = None) -> RawDocument:
    """Parse a ``.json`` or ``.json.gz`` file; errors name the line and column."""
    content = read_bytes(path, limit)
    digest = hashlib.sha256(content).hexdigest()
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise ParseError(
            f"not valid JSON: {exc.msg}",
            location=SourceLocation(path=str(path), line=exc.lineno, column=exc.colno),
            hint="the file is damaged or not JSON; download or export it again",
        ) from None
    return RawDocument(path=str(path), sha256=digest, data=data)
