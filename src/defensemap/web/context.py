"""What every page and endpoint shares: the store (opened read-only per request), the
templates, the detection library, and the JSON / ETag helpers."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from fastapi import Request, Response
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import Markup

from defensemap.config import Settings
from defensemap.errors import StoreError
from defensemap.library.loader import (
    Library,
    content_dir,
    library_stamp,
    load_library_for_views,
)
from defensemap.store.db import LOAD_HINT, Store, open_store
from defensemap.web.cache import etag_matches
from defensemap.web.markdown import render_markdown, safe_link
from defensemap.web.urls import capability_url, object_url, result_url

TEMPLATES = Path(__file__).parent / "templates"
CACHE_CONTROL = "private, max-age=60, must-revalidate"
LIBRARY_CHECK_SECONDS = 1.0
NO_LIBRARY = "no-library"


class WebContext:
    """Per-application state; nothing here writes to the store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._library: tuple[str, Library] | None = None
        self._library_checked: tuple[float, str] = (-LIBRARY_CHECK_SECONDS, "")
        self.library_note: str | None = None
        self.templates = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["markdown"] = _markdown
        self.templates.filters["result_url"] = result_url
        self.templates.globals["object_url"] = object_url
        self.templates.globals["capability_url"] = capability_url
        self.templates.globals["safe_link"] = safe_link

    @contextmanager
    def store(self) -> Iterator[Store]:
        path = self.settings.store_path
        if not path.exists():
            raise StoreError("no data loaded yet", hint=LOAD_HINT)
        store = open_store(path)
        try:
            yield store
        finally:
            store.close()

    def library(self) -> Library:
        """The detection library, kept in memory until a detection file changes; missing or
        broken, an empty one (``library_note`` says why): a bad file must not take every
        page down."""
        stamp = self.library_state()
        if self._library is None or self._library[0] != stamp:
            load = load_library_for_views(cache_dir=self.settings.home / "cache")
            self._library = (stamp, load.library)
            self.library_note = load.note
        return self._library[1]

    def data_state(self) -> str:
        """Store and library stamps: a rendered page stays valid while both are unchanged."""
        store = self.store_stamp() if self.settings.store_path.exists() else "no-store"
        return f"{store}|{self.library_state()}"

    def library_state(self) -> str:
        """The library's stamp, taken at most once a second: stat-ing every detection file
        costs more than serving a kept page, and an edited file shows within that second."""
        now = time.monotonic()
        checked_at, stamp = self._library_checked
        if now - checked_at >= LIBRARY_CHECK_SECONDS:
            folder = content_dir() / "detections"
            stamp = library_stamp([folder]) if folder.is_dir() else NO_LIBRARY
            self._library_checked = (now, stamp)
        return stamp

    def store_stamp(self) -> str:
        """Changes when an import rewrites the store: keys per-process document caches."""
        info = self.settings.store_path.stat()
        return f"{info.st_size}:{info.st_mtime_ns}"

    def page(self, request: Request, template: str, status: int = 200, **values: Any) -> Response:
        html = self.templates.get_template(template).render(request=request, **values)
        return cached(request, html.encode("utf-8"), "text/html; charset=utf-8", status)


@pass_context
def _markdown(context: Context, text: str | None) -> Markup:
    """The ``markdown`` filter: ATT&CK links point at this site (``base_url`` included)."""
    return render_markdown(text, context.get("base_url", ""))


def web(request: Request) -> WebContext:
    context: WebContext = request.app.state.web
    return context


def cached(request: Request, body: bytes, media_type: str, status: int = 200) -> Response:
    """A response with a strong ETag; ``If-None-Match`` with the same tag gets a 304."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if status == 200 and etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, status_code=status, media_type=media_type, headers=headers)


def json_response(request: Request, document: Any, status: int = 200) -> Response:
    body = orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS)
    return cached(request, body, "application/json", status)
