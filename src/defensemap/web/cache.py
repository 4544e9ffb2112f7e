"""Rendered responses of the read-only server, kept per URL and data state.

Nothing changes a page while the store file and the detection library stay the same, and
serving is read-only: a page rendered once can be sent again until an import rewrites the
store or a detection file changes. Bounded by count and by bytes (pages average ~16 KB, the
largest community-rule pages reach a few MB); the least recently used goes first."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

SIZE = 2048
MAX_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Cached:
    """One rendered 200 response, headers as sent (security headers included)."""

    body: bytes
    headers: tuple[tuple[bytes, bytes], ...]

    @property
    def etag(self) -> bytes | None:
        return next((value for name, value in self.headers if name == b"etag"), None)

    def not_modified_headers(self) -> list[tuple[bytes, bytes]]:
        """What a 304 repeats: the validators and the security headers, never the body's."""
        return [(n, v) for n, v in self.headers if n not in (b"content-length", b"content-type")]


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """``If-None-Match`` holds this tag: one tag, a list, weak (``W/``) forms or ``*``
    (RFC 9110 §13.1.2 compares weakly for GET)."""
    if not if_none_match:
        return False
    offered = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in offered or etag.removeprefix("W/") in offered


class ResponseCache:
    def __init__(self, size: int = SIZE, max_bytes: int = MAX_BYTES) -> None:
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[tuple[str, str], Cached] = OrderedDict()

    def get(self, url: str, state: str) -> Cached | None:
        found = self._entries.get((url, state))
        if found is not None:
            self._entries.move_to_end((url, state))
        return found

    def put(self, url: str, state: str, response: Cached) -> None:
        if len(response.body) > self._max_bytes:
            return
        previous = self._entries.pop((url, state), None)
        self._bytes += len(response.body) - (len(previous.body) if previous else 0)
        self._entries[(url, state)] = response
        while len(self._entries) > self._size or self._bytes > self._max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped.body)

    def __len__(self) -> int:
        return len(self._entries)
