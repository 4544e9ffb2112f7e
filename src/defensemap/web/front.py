"""The outermost layer of every request: the token check, rendered pages sent again without
touching the routes, and the security headers on everything that leaves.

A pure ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``: a cached page must
cost less than the request/response objects that middleware builds around it."""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from defensemap.web.cache import Cached, ResponseCache, etag_matches
from defensemap.web.context import WebContext

TOKEN_COOKIE = "defensemap_token"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
_RAW_SECURITY = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]


class FrontDoor:
    """Token guard, response cache and security headers around the whole application."""

    def __init__(
        self, app: ASGIApp, context: WebContext, token: str | None, keep_pages: bool = True
    ) -> None:
        self.app = app
        self.context = context
        self.token = token
        self.cache = ResponseCache() if keep_pages else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        offered = query.get("token", [""])[0]
        if self.token is not None and not _authorised(headers, offered, self.token):
            await _unauthorised(scope["path"], send)
            return
        cookie = self.token if self.token is not None and offered == self.token else None
        if scope["method"] == "HEAD" and not scope["path"].startswith("/static/"):
            scope, send = {**scope, "method": "GET"}, _headers_only(send)  # routes answer GET
        if self.cache is None or not _cacheable(scope, query):
            await self.app(scope, receive, _decorating(send, cookie))
            return
        url = scope["path"] + "?" + scope.get("query_string", b"").decode("latin-1")
        state = self.context.data_state()
        found = self.cache.get(url, state)
        if found is None:
            await self.app(scope, receive, self._keeping(self.cache, send, url, state))
            return
        await _replay(found, headers.get("if-none-match"), send)

    @staticmethod
    def _keeping(cache: ResponseCache, send: Send, url: str, state: str) -> Send:
        """Forward the response as it is produced and keep a complete 200 for next time."""
        start: list[Message] = []
        chunks: list[bytes] = []

        async def forward(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": _secured(message.get("headers", []))}
                start.append(message)
            elif message["type"] == "http.response.body" and start:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False) and start[0]["status"] == 200:
                    headers = tuple((bytes(n), bytes(v)) for n, v in start[0]["headers"])
                    cache.put(url, state, Cached(b"".join(chunks), headers))
            await send(message)

        return forward


def _cacheable(scope: Scope, query: dict[str, list[str]]) -> bool:
    """GET pages and API documents; not static files (they have their own validators) and
    not requests carrying a token (their response sets a cookie)."""
    return (
        scope["method"] == "GET"
        and not scope["path"].startswith("/static/")
        and "token" not in query
    )


def _decorating(send: Send, cookie: str | None) -> Send:
    async def forward(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = _secured(message.get("headers", []))
            if cookie is not None:
                value = f"{TOKEN_COOKIE}={cookie}; HttpOnly; Path=/; SameSite=strict"
                headers.append((b"set-cookie", value.encode()))
            message = {**message, "headers": headers}
        await send(message)

    return forward


def _headers_only(send: Send) -> Send:
    """A HEAD answer: the GET response's status and headers, without its body."""

    async def forward(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return forward


def _secured(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    present = {bytes(name).lower() for name, _ in headers}
    return [*headers, *((n, v) for n, v in _RAW_SECURITY if n not in present)]


async def _replay(cached: Cached, if_none_match: str | None, send: Send) -> None:
    """The kept response, or a 304 when the client already holds its ETag."""
    etag = cached.etag
    if etag is not None and etag_matches(if_none_match, etag.decode("latin-1")):
        await send(
            {"type": "http.response.start", "status": 304, "headers": cached.not_modified_headers()}
        )
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": list(cached.headers)})
    await send({"type": "http.response.body", "body": cached.body})


def _authorised(headers: Headers, offered_in_query: str, token: str) -> bool:
    cookies = cookie_parser(headers.get("cookie", ""))
    offered = (
        headers.get("authorization", "").removeprefix("Bearer ").strip()
        or offered_in_query
        or cookies.get(TOKEN_COOKIE, "")
    )
    return bool(offered) and hmac.compare_digest(offered.encode(), token.encode())


async def _unauthorised(path: str, send: Send) -> None:
    if path.startswith("/api/"):
        body = b'{"ok":false,"error":{"code":"unauthorised","message":"a token is required"}}'
        media = b"application/json"
    else:
        body, media = b"a token is required", b"text/plain; charset=utf-8"
    headers = _secured([(b"content-type", media), (b"content-length", str(len(body)).encode())])
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})
