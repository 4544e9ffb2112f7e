"""`build-site`: the web UI rendered once into plain files that any static host can serve.

The pages are not rendered a second way: the FastAPI app answers every URL in-process and
its HTML is written to ``OUT/<path>/index.html``. Only URLs some page route answers are
rendered, so the site grows with the app's routes without changes here."""

from __future__ import annotations

import asyncio
import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import orjson
from fastapi import FastAPI
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from defensemap.config import Settings
from defensemap.errors import ExportError, InputError
from defensemap.kb.lookup import select_releases
from defensemap.library.loader import Library
from defensemap.model.mappings import NON_MAPPABLE
from defensemap.store import attack as attack_store
from defensemap.store import mappings as mapping_store
from defensemap.store import sigma as sigma_store
from defensemap.store.db import Store
from defensemap.web.app import STATIC, create_app
from defensemap.web.context import WebContext
from defensemap.web.urls import capability_url, object_url

INDEX_FILE = Path("static") / "search-index.json"
# Listing pages, rendered when the app has a route for them.
TOP_PAGES = ("/", "/frameworks", "/detections", "/coverage", "/diff", "/search")
# ATT&CK kinds with a page, in the order they are listed in the search index.
ATTACK_KINDS = (
    "technique",
    "tactic",
    "group",
    "software",
    "campaign",
    "mitigation",
    "data-component",
    "detection-strategy",
)
NOT_FOUND_PAGE = "/__not-found__"
REDIRECTS = {301, 302, 303, 307, 308}
LEFT_OUT = {404, 503}  # no such object / that data is not loaded: no page, no error
CHUNK = 32


@dataclass(frozen=True)
class Entry:
    """One page of the site; ``kind`` set means it is also a search-index entry."""

    url: str
    id: str = ""
    name: str = ""
    kind: str = ""
    framework: str = ""

    def indexed(self) -> dict[str, str]:
        entry = {"id": self.id, "name": self.name, "kind": self.kind}
        if self.framework:
            entry["framework"] = self.framework
        return entry


@dataclass
class SiteReport:
    out: Path
    pages: int = 0
    indexed: int = 0
    missing: list[str] = field(default_factory=list)
    routes_absent: list[str] = field(default_factory=list)


# --- what to render --------------------------------------------------------------------------


def site_entries(store: Store, library: Library, attack_version: str | None = None) -> list[Entry]:
    """Every page the store and library have content for, sorted by URL."""
    entries = [Entry(url) for url in TOP_PAGES]
    entries += _attack_entries(store, attack_version)
    entries += _mapping_entries(store)
    entries += [
        Entry(
            object_url("detection", str(d.detection.id)),
            str(d.detection.id),
            d.detection.title,
            "detection",
        )
        for d in library.detections
    ]
    entries += [
        Entry(object_url("sigma-rule", r.id), r.id, r.title, "sigma-rule")
        for r in sigma_store.list_rules(store)
    ]
    unique: dict[str, Entry] = {}
    for entry in entries:  # a group in two domains has one page: the first domain names it
        unique.setdefault(entry.url, entry)
    return [unique[url] for url in sorted(unique)]


def _attack_entries(store: Store, attack_version: str | None) -> Iterator[Entry]:
    """Objects of every loaded domain's chosen release (default: its newest), enterprise
    first, sub-techniques included, revoked ones left out. With a version, domains that do
    not have it are left out: their pages would answer 404."""
    if not attack_store.list_releases(store):
        return
    for release in select_releases(store, attack_version):
        for kind in ATTACK_KINDS:
            for obj in attack_store.objects_of_kind(store, release.id, kind):
                if obj.attack_id and not obj.revoked:
                    url = object_url(kind, obj.attack_id)
                    yield Entry(url, obj.attack_id, obj.name or "", kind)


def _mapping_entries(store: Store) -> Iterator[Entry]:
    """Every framework and every capability mapped in any of its sets (ids as first written)."""
    sets = mapping_store.list_sets(store)
    framework_of = {s.id: s.info.framework for s in sets}
    seen: set[tuple[str, str]] = set()
    for framework in sorted(set(framework_of.values())):
        yield Entry(f"/frameworks/{framework}")
    for set_id, row in mapping_store.rows_for(store, [s.id for s in sets]):
        framework = framework_of[set_id]
        key = (framework, (row.capability_id or "").lower())
        if not row.capability_id or row.mapping_type == NON_MAPPABLE or key in seen:
            continue
        seen.add(key)
        name = (row.capability_description or "").split("\n", 1)[0][:160]
        yield Entry(
            capability_url(framework, row.capability_id),
            row.capability_id,
            name,
            "capability",
            framework,
        )


def routed(app: FastAPI, entries: Iterable[Entry]) -> tuple[list[Entry], list[str]]:
    """Entries some GET route of the app answers (asked the way Starlette dispatches), and
    the URLs no route answers."""
    kept: list[Entry] = []
    absent: list[str] = []
    for entry in entries:
        scope = {"type": "http", "method": "GET", "path": entry.url, "root_path": ""}
        if any(route.matches(scope)[0] is Match.FULL for route in app.routes):
            kept.append(entry)
        else:
            absent.append(entry.url)
    return kept, absent


def page_file(out: Path, url: str) -> Path:
    """``/techniques/T1021.007`` → ``OUT/techniques/T1021.007/index.html``; percent-escapes
    are decoded, as a static host decodes the request path before looking for the file."""
    parts = [unquote(p) if "%2f" not in p.lower() else p for p in url.split("/") if p]
    if any(p in {".", ".."} for p in parts):
        raise InputError(f"refusing to write page {url!r} outside the site")
    return out.joinpath(*parts, "index.html")


# --- rendering ---------------------------------------------------------------------------------


class StaticSiteContext(WebContext):
    """The page context of the static site: every link prefixed with ``base_url``, the
    static search script loaded, and forms that need a server replaced by a note
    (``static_site``)."""

    def __init__(self, settings: Settings, base_url: str, attack_version: str | None) -> None:
        super().__init__(settings)
        self.templates.globals.update(
            base_url=base_url, static_site=True, site_attack_version=attack_version
        )


def static_app(settings: Settings, base_url: str, attack_version: str | None = None) -> FastAPI:
    context = StaticSiteContext(settings, base_url, attack_version)
    return create_app(settings, context=context, keep_pages=False)


class PinnedVersion:
    """Every request of a static build asks for one ATT&CK release, as ``?attack_version=``
    does on the server: a static host cannot answer a query string."""

    def __init__(self, app: ASGIApp, attack_version: str) -> None:
        self.app = app
        self.pin = b"attack_version=" + quote(attack_version).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query = scope.get("query_string", b"")
            scope = {**scope, "query_string": query + b"&" + self.pin if query else self.pin}
        await self.app(scope, receive, send)


@dataclass
class _Worker:
    """What one render process holds: the app (pinned to a release if asked) and the output."""

    app: ASGIApp
    out: Path


_worker: list[_Worker] = []


def _start_worker(home: str, base_url: str, out: str, attack_version: str | None) -> None:
    """One app per render process. pySigma's per-rule warnings are not repeated on the
    console: each page already shows its conversion notes."""
    warnings.filterwarnings("ignore", module=r"sigma\.")
    app: ASGIApp = static_app(Settings(Path(home)), base_url, attack_version)
    if attack_version:
        app = PinnedVersion(app, attack_version)
    _worker[:] = [_Worker(app, Path(out))]


async def fetch(app: ASGIApp, url: str) -> tuple[int, bytes, str | None]:
    """GET ``url`` from the app in-process: status, body and ``Location`` (no HTTP client or
    server between: the pages are the app's own answers)."""
    path, _, query = url.partition("?")
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "server": ("static-site", 80),
        "client": ("127.0.0.1", 0),
        "root_path": "",
        "path": unquote(path),
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(b"host", b"static-site")],
    }
    started: dict[str, Any] = {}
    body: list[bytes] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            started.update(message)
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    await app(scope, receive, send)
    headers = {bytes(k).lower(): bytes(v) for k, v in started.get("headers", [])}
    location = headers.get(b"location")
    return int(started["status"]), b"".join(body), location.decode() if location else None


async def _render_all(worker: _Worker, urls: Sequence[str]) -> list[tuple[str, int]]:
    statuses: list[tuple[str, int]] = []
    for url in urls:
        status, body, location = await fetch(worker.app, url)
        if status in REDIRECTS and location:
            status, body, _ = await fetch(worker.app, location)
        statuses.append((url, status))
        if status == 200:
            target = page_file(worker.out, url)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
        elif url == NOT_FOUND_PAGE:
            (worker.out / "404.html").write_bytes(body)
    return statuses


def _render_chunk(urls: Sequence[str]) -> list[tuple[str, int]]:
    """Write each URL's page; return the status of each (non-200 pages are not written)."""
    return asyncio.run(_render_all(_worker[0], urls))


def _chunks(urls: list[str], jobs: int) -> list[list[str]]:
    size = max(1, min(CHUNK, len(urls) // (jobs * 4) or 1))
    return [urls[i : i + size] for i in range(0, len(urls), size)]


def render_pages(
    settings: Settings,
    out: Path,
    urls: list[str],
    base_url: str,
    jobs: int,
    advance: Callable[[int], None],
    attack_version: str | None = None,
) -> list[tuple[str, int]]:
    """Render ``urls`` over ``jobs`` processes; each worker holds one app and test client."""
    args = (str(settings.home), base_url, str(out), attack_version)
    chunks = _chunks(urls, jobs)
    statuses: list[tuple[str, int]] = []
    if jobs == 1:
        # A thread of its own, so a caller whose thread already runs an event loop (a
        # notebook, a test session driving a browser) can build a site in-process too; the
        # caller's warning filters are given back afterwards.
        with warnings.catch_warnings(), ThreadPoolExecutor(1) as thread:
            _start_worker(*args)
            for chunk in chunks:
                statuses += thread.submit(_render_chunk, chunk).result()
                advance(len(chunk))
        return statuses
    with ProcessPoolExecutor(jobs, initializer=_start_worker, initargs=args) as pool:
        for done in pool.map(_render_chunk, chunks):
            statuses += done
            advance(len(done))
    return statuses


# --- the site ----------------------------------------------------------------------------------


def prepare_out(out: Path) -> None:
    """An empty or missing directory, or a previous build (replaced); anything else is refused
    so a typo cannot delete someone's files."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is not a directory", hint="give a new or empty directory")
    if out.is_dir() and any(out.iterdir()):
        if not (out / INDEX_FILE).is_file():
            raise InputError(
                f"{out} is not empty and holds no previous site",
                hint="give a new or empty directory (a previous build is replaced)",
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def write_static(out: Path, index: list[dict[str, str]]) -> None:
    shutil.copytree(STATIC, out / "static", dirs_exist_ok=True)
    body = orjson.dumps({"version": 1, "entries": index}, option=orjson.OPT_SORT_KEYS)
    (out / INDEX_FILE).write_bytes(body + b"\n")


def plan_site(
    settings: Settings, base_url: str, attack_version: str | None = None
) -> tuple[list[Entry], list[str]]:
    """The entries to render (those a route answers) and the URLs left out for want of one."""
    context = StaticSiteContext(settings, base_url, attack_version)
    with context.store() as store:
        entries = site_entries(store, context.library(), attack_version)
    return routed(static_app(settings, base_url), entries)


def build_site(
    settings: Settings,
    out: Path,
    base_url: str = "",
    *,
    attack_version: str | None = None,
    jobs: int | None = None,
    on_plan: Callable[[int], None] = lambda total: None,
    advance: Callable[[int], None] = lambda done: None,
) -> SiteReport:
    """Render every page into ``out``; pages that answer 404 (no such object) or 503 (that
    data is not loaded) are left out and listed, any other failure stops the build."""
    base_url = base_url.rstrip("/")
    entries, absent = plan_site(settings, base_url, attack_version)
    prepare_out(out)
    urls = [e.url for e in entries] + [NOT_FOUND_PAGE]
    on_plan(len(urls))
    workers = jobs or min(4, len(os.sched_getaffinity(0)))
    statuses = dict(render_pages(settings, out, urls, base_url, workers, advance, attack_version))
    failed = [f"{url} ({code})" for url, code in statuses.items() if code not in {200, *LEFT_OUT}]
    if failed:
        raise ExportError(f"{len(failed)} pages failed to render: {', '.join(failed[:5])}")
    ok = [e for e in entries if statuses.get(e.url) == 200]
    index = [e.indexed() for e in ok if e.kind]
    write_static(out, index)
    return SiteReport(
        out=out,
        pages=len(ok),
        indexed=len(index),
        missing=[e.url for e in entries if statuses.get(e.url) in LEFT_OUT],
        routes_absent=sorted({"/" + u.split("/")[1] for u in absent}),
    )
