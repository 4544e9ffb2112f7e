"""The FastAPI application: read-only over the store, loopback by default, and safe to put
in front of analysts (security headers on every response, a token when exposed)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from defensemap.config import Settings
from defensemap.errors import DefensemapError, InputError, NotFoundError, StoreError
from defensemap.web.cache import Cached, ResponseCache, replay
from defensemap.web.context import WebContext

STATIC = Path(__file__).parent / "static"
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

Handler = Callable[[Request], Awaitable[Response]]


def create_app(settings: Settings, *, token: str | None = None) -> FastAPI:
    """The app for a data home; with ``token``, every request must carry it (header
    ``Authorization: Bearer …``, or the cookie set by visiting any page with ``?token=…``)."""
    from defensemap.web import api, pages, pages_attack, pages_more

    app = FastAPI(
        title="defensemap",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.web = WebContext(settings)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(api.router)
    app.include_router(pages_attack.router)
    app.include_router(pages.router)
    app.include_router(pages_more.router)

    cache = ResponseCache()

    @app.middleware("http")
    async def guard(request: Request, call_next: Handler) -> Response:
        if token is not None and not _authorised(request, token):
            return _unauthorised(request)
        response = await _cached(request, call_next, cache)
        if token is not None and request.query_params.get("token") == token:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    _error_handlers(app)
    return app


async def _cached(request: Request, call_next: Handler, cache: ResponseCache) -> Response:
    """Serve a page rendered for the same URL and data state, or render and keep it."""
    if not cache.cacheable(request):
        return await call_next(request)
    context: WebContext = request.app.state.web
    url, state = str(request.url), context.data_state()
    found = cache.get(url, state)
    if found is not None:
        return replay(request, found)
    response = await call_next(request)
    if response.status_code != 200:
        return response
    body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
    entry = Cached(body, response.status_code, tuple(response.headers.items()))
    cache.put(url, state, entry)
    return replay(request, entry)


def _status_of(error: DefensemapError) -> int:
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, InputError):
        return 400
    if isinstance(error, StoreError):
        return 503
    return 500


def _error_handlers(app: FastAPI) -> None:
    """Typed errors become a JSON error (API) or an error page, never a traceback."""

    @app.exception_handler(DefensemapError)
    async def known(request: Request, error: DefensemapError) -> Response:
        return _error_response(request, _status_of(error), error.message, error.hint, error)

    @app.exception_handler(StarletteHTTPException)
    async def http(request: Request, error: StarletteHTTPException) -> Response:
        return _error_response(request, error.status_code, str(error.detail), None, None)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{where}: {first.get('msg', 'invalid request')}"
        return _error_response(request, 400, message, None, None)


def _error_response(
    request: Request, status: int, message: str, hint: str | None, error: DefensemapError | None
) -> Response:
    if request.url.path.startswith("/api/"):
        detail = error.to_dict() if error else {"code": "http", "message": message, "hint": hint}
        return JSONResponse({"ok": False, "error": detail, "status": status}, status_code=status)
    context: WebContext = request.app.state.web
    title = {404: "Not found", 400: "Bad request", 503: "No data yet"}.get(status, "Error")
    html = context.templates.get_template("error.html").render(
        request=request, status=status, title=title, message=message, hint=hint
    )
    return HTMLResponse(html, status_code=status)


def _authorised(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    offered = (
        header.removeprefix("Bearer ").strip()
        or request.query_params.get("token", "")
        or request.cookies.get(TOKEN_COOKIE, "")
    )
    return bool(offered) and hmac.compare_digest(offered.encode(), token.encode())


def _unauthorised(request: Request) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse(
            {"ok": False, "error": {"code": "unauthorised", "message": "a token is required"}},
            status_code=401,
            headers=SECURITY_HEADERS,
        )
    return PlainTextResponse("a token is required", status_code=401, headers=SECURITY_HEADERS)
