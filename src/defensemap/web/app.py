"""The FastAPI application: read-only over the store, loopback by default, and safe to put
in front of analysts (security headers on every response, a token when exposed)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from defensemap.config import Settings
from defensemap.errors import DefensemapError, InputError, NotFoundError, StoreError
from defensemap.web.context import WebContext
from defensemap.web.front import FrontDoor

STATIC = Path(__file__).parent / "static"


def create_app(
    settings: Settings,
    *,
    token: str | None = None,
    context: WebContext | None = None,
    keep_pages: bool = True,
) -> FastAPI:
    """The app for a data home; with ``token``, every request must carry it (header
    ``Authorization: Bearer …``, or the cookie set by visiting any page with ``?token=…``).
    ``context`` replaces the page context (the static site's); ``keep_pages=False`` renders
    every request afresh (build-site asks each page once)."""
    from defensemap.web import api, apidocs, pages, pages_attack, pages_more

    app = FastAPI(
        title="defensemap",
        docs_url=None,  # /api/docs is our own page (web/apidocs.py): no CDN, no inline script
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.web = context or WebContext(settings)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(api.router)
    app.include_router(apidocs.router)
    app.include_router(pages_attack.router)
    app.include_router(pages.router)
    app.include_router(pages_more.router)

    app.add_middleware(FrontDoor, context=app.state.web, token=token, keep_pages=keep_pages)
    _error_handlers(app)
    return app


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
