"""Rendered responses of the read-only server, kept per URL and data state.

Nothing changes a page while the store file and the detection library stay the same, and
serving is read-only: a page rendered once can be sent again until an import rewrites the
store or a detection file changes. Bounded (least recently used goes first)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from fastapi import Request, Response

SIZE = 2048


@dataclass(frozen=True)
class Cached:
    body: bytes
    status: int
    headers: tuple[tuple[str, str], ...]


class ResponseCache:
    def __init__(self, size: int = SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, str], Cached] = OrderedDict()

    @staticmethod
    def cacheable(request: Request) -> bool:
        """GET pages and API documents; not static files (they have their own headers) and
        not requests carrying a token (their response sets a cookie)."""
        return (
            request.method == "GET"
            and not request.url.path.startswith("/static/")
            and "token" not in request.query_params
        )

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


def replay(request: Request, cached: Cached) -> Response:
    """The cached response, or a 304 when the client already holds that ETag."""
    headers = dict(cached.headers)
    etag = headers.get("etag")
    if etag is not None and request.headers.get("if-none-match") == etag:
        keep = {k: v for k, v in headers.items() if k in ("etag", "cache-control")}
        return Response(status_code=304, headers=keep)
    headers.pop("content-length", None)
    return Response(cached.body, status_code=cached.status, headers=headers)
