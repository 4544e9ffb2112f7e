"""Server-rendered pages. URLs are stable and ids case-insensitive; `?attack_version=`
selects a release as on the CLI."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from defensemap.web.api import VersionQuery
from defensemap.web.context import web

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request) -> Response:
    """Search, what is loaded and — on an empty store — exactly what to run."""
    from defensemap.kb.status import status

    context = web(request)
    doc = status(context.settings)
    library = context.library()
    return context.page(
        request, "home.html", status_doc=doc, library=library, library_note=context.library_note
    )


@router.get("/search")
def search_page(
    request: Request,
    q: Annotated[str, Query(max_length=200)] = "",
    attack_version: VersionQuery = None,
) -> Response:
    from defensemap.kb.search import search as run

    context = web(request)
    results = []
    if q.strip():
        with context.store() as store:
            results = run(store, q, limit=50, attack_version=attack_version)
    return context.page(request, "search.html", query=q, results=results)
