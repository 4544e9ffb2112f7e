"""Rendered responses of the read-only server, kept per URL and data state.

Nothing changes a page while the store file and the detection library stay the same, and
serving is read-only: a page rendered once can be sent again until an import rewrites the
store or a detection file changes. Bounded (least recently used goes first)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

SIZE = 2048


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


class ResponseCache:
    def __init__(self, size: int = SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, str], Cached] = OrderedDict()

    def get(self, url: str, state: str) -> Cached | None:
        found = self._entries.get((url, state))
        if found is not None:
            self._entries.move_to_end((url, state))
        return found

    def put(self, url: str, state: str, response: Cached) -> None:
        self._entries[(url, state)] = response
        self._entries.move_to_end((url, state))
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
