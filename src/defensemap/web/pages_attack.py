"""The technique page (what it is, what counters it, how to detect it) and the detection page.

Both render the documents the CLI builds; the only work done here is presentation, plus a
per-process cache of Sigma conversions (pySigma is most of a cold page's cost)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import urlencode

import yaml
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import RedirectResponse
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from defensemap.errors import NotFoundError
from defensemap.kb.detections import CommunityRuleDoc, community_rule_doc, detection_doc
from defensemap.library.convert import (
    TARGETS,
    Conversion,
    SupportRow,
    convert,
    convert_detection,
    support_matrix,
)
from defensemap.library.loader import Library, content_dir
from defensemap.library.sigma import effective_sigma
from defensemap.model.detection import Detection
from defensemap.store.attack import list_releases
from defensemap.store.db import Store
from defensemap.web.api import VersionQuery
from defensemap.web.context import WebContext, web
from defensemap.web.documents import technique_document
from defensemap.web.markdown import render_markdown
from defensemap.web.urls import object_url

router = APIRouter(include_in_schema=False)

IdPath = Annotated[str, Path(max_length=64)]
RevokedQuery = Annotated[
    str | None, Query(max_length=16, pattern=r"^[Tt]\d{4}(\.\d{3})?$", description="revoked id")
]
# target -> tab label, in the order the tabs appear after KQL and Sigma
CONVERTED_TABS: dict[str, str] = {
    "splunk": "SPL",
    "elastic-esql": "ES|QL",
    "elastic-lucene": "Lucene",
    "logscale": "LogScale",
    "secops": "YARA-L (SecOps)",
    "qradar": "AQL (QRadar)",
    "kusto": "KQL from Sigma",
}
_CODE_TAG = re.compile(r"</?code>")
_TAG_OR_TEXT = re.compile(r"(<[^>]*>)")
_CITATION = re.compile(r"\[(\d{1,3})\]")
_KEEP_TAG = re.compile(r"<(/?)(?:code|pre|a)[\s>]")


# --- presentation helpers ------------------------------------------------------------------------


@lru_cache(maxsize=16384)
def cited_markdown(text: str | None, base_url: str = "") -> Markup:
    """ATT&CK prose as safe HTML, each ``[n]`` citation linked to reference ``n`` below.
    ATT&CK's inline ``<code>`` tags become code spans first (raw HTML is off)."""
    html = str(render_markdown(_CODE_TAG.sub("`", text or ""), base_url))
    parts = _TAG_OR_TEXT.split(html)
    inside = (
        0  # within <code>, <pre> or <a>: a citation link there would corrupt code or nest links
    )
    for index, part in enumerate(parts):
        if index % 2:
            opening = _KEEP_TAG.match(part)
            if opening:
                inside += -1 if opening[1] else 1
        elif not inside:
            parts[index] = _CITATION.sub(r'<sup><a href="#ref-\1">[\1]</a></sup>', part)
    return Markup("".join(parts))


@pass_context
def _cite(context: Context, text: str | None) -> Markup:
    return cited_markdown(text, context.get("base_url", ""))


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def _shown_path(path: str) -> str:
    """A detection's file relative to the content folder (no server paths on pages)."""
    try:
        return str(FilePath(path).resolve().relative_to(content_dir().resolve()))
    except ValueError:
        return FilePath(path).name


HELPERS: dict[str, Any] = {
    "cite": _cite,
    "shown_path": _shown_path,
}


# --- conversions, cached per process -------------------------------------------------------------


@dataclass(frozen=True)
class _Keyed:
    """A cache key (id + content digest) carrying the object it stands for."""

    key: tuple[str, str]
    payload: Any = field(compare=False)


def _keyed_detection(detection: Detection) -> _Keyed:
    digest = hashlib.sha256(detection.model_dump_json().encode()).hexdigest()
    return _Keyed((str(detection.id), digest), detection)


@lru_cache(maxsize=1024)
def _detection_conversions(item: _Keyed) -> dict[str, Conversion]:
    return {target: convert_detection(item.payload, target) for target in TARGETS}


@lru_cache(maxsize=1024)
def _detection_support(item: _Keyed) -> tuple[SupportRow, ...]:
    return tuple(support_matrix([item.payload]))


@lru_cache(maxsize=1024)
def _community_conversions(item: _Keyed) -> dict[str, Conversion]:
    try:
        rule = yaml.safe_load(item.payload)
    except yaml.YAMLError:
        rule = None
    if not isinstance(rule, dict):
        rule = {}
    return {target: convert(rule, target) for target in TARGETS}


# --- view models ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryTab:
    """One language tab: a query as written (``conversion`` is ``None``) or converted."""

    key: str
    label: str
    query: str | None
    note: str = ""
    conversion: Conversion | None = None


@dataclass(frozen=True)
class QueryTabs:
    """The language tabs of one detection or rule; ``prefix`` keeps element ids unique."""

    prefix: str
    tabs: list[QueryTab]


def _converted(conversions: dict[str, Conversion]) -> list[QueryTab]:
    return [
        QueryTab(target, label, conversions[target].query, conversion=conversions[target])
        for target, label in CONVERTED_TABS.items()
    ]


def detection_tabs(prefix: str, detection: Detection) -> QueryTabs:
    """KQL as written, the published Sigma rule, then Sigma in every other language."""
    return _detection_tabs(prefix, _keyed_detection(detection))


@lru_cache(maxsize=1024)
def _detection_tabs(prefix: str, item: _Keyed) -> QueryTabs:
    detection: Detection = item.payload
    tabs: list[QueryTab] = []
    if detection.queries.kql:
        tabs.append(QueryTab("kql", "KQL (Sentinel)", detection.queries.kql))
    if detection.queries.defender_kql:
        tabs.append(QueryTab("defender", "KQL (Defender XDR)", detection.queries.defender_kql))
    sigma = effective_sigma(detection)
    if sigma is not None:
        note = f"Sigma scope: {detection.sigma_scope}"
        tabs.append(QueryTab("sigma", "Sigma", _yaml(sigma), note))
    tabs += _converted(_detection_conversions(item))
    return QueryTabs(prefix, tabs)


def community_tabs(prefix: str, doc: CommunityRuleDoc) -> QueryTabs:
    digest = hashlib.sha256(doc.yaml.encode()).hexdigest()
    conversions = _community_conversions(_Keyed((doc.id, digest), doc.yaml))
    tabs = [QueryTab("sigma", "Sigma", doc.yaml, "as published by SigmaHQ")]
    return QueryTabs(prefix, tabs + _converted(conversions))


@dataclass(frozen=True)
class DetectionCard:
    """One of our detections on the technique page."""

    detection: Detection
    tabs: QueryTabs
    related: list[tuple[str, str]]


def related_titles(library: Library, detection: Detection) -> list[tuple[str, str]]:
    """``(id, title)`` of each related detection; the id alone when not in the library."""
    found = []
    for ident in map(str, detection.related):
        title = library.get(ident).detection.title if library.has(ident) else ident
        found.append((ident, title))
    return found


def _card(library: Library, index: int, detection_id: str) -> DetectionCard:
    detection = library.get(detection_id).detection
    tabs = detection_tabs(f"d{index}", detection)
    return DetectionCard(detection, tabs, related_titles(library, detection))


# --- routes ---------------------------------------------------------------------------------------


def _technique_href(technique_id: str, attack_version: str | None, revoked: str) -> str:
    query = {"revoked": revoked.upper()} | (
        {"attack_version": attack_version} if attack_version else {}
    )
    return object_url("technique", technique_id) + "?" + urlencode(query)


@router.get("/techniques/{technique_id}")
def technique_page(
    request: Request,
    technique_id: IdPath,
    attack_version: VersionQuery = None,
    revoked: RevokedQuery = None,
) -> Response:
    """A revoked id redirects to its replacement, which then says so."""
    context = web(request)
    library = context.library()
    with context.store() as store:
        doc = technique_document(store, library, technique_id, attack_version)
        versions = [r.version for r in list_releases(store) if r.domain == doc.common.domain]
    moved = doc.common.status.resolved_from
    if moved and doc.common.id:
        return RedirectResponse(_technique_href(doc.common.id, attack_version, moved), 307)
    cards = [_card(library, i, s.id) for i, s in enumerate(doc.detections)]
    return context.page(
        request,
        "technique.html",
        doc=doc,
        cards=cards,
        versions=versions,
        revoked_from=revoked.upper() if revoked else None,
        **HELPERS,
    )


@router.get("/detections/{detection_id}")
def detection_page(
    request: Request, detection_id: IdPath, attack_version: VersionQuery = None
) -> Response:
    """One of our detections, else an imported community (SigmaHQ) rule with attribution."""
    context = web(request)
    library = context.library()
    if not library.has(detection_id):
        return _community_page(request, context, detection_id, attack_version)
    loaded = library.get(detection_id)
    with _optional_store(context) as store:
        doc = detection_doc(store, loaded, attack_version)
    keyed = _keyed_detection(loaded.detection)
    return context.page(
        request,
        "detection.html",
        doc=doc,
        tabs=detection_tabs("d", loaded.detection),
        support=_detection_support(keyed),
        related=related_titles(library, loaded.detection),
        **HELPERS,
    )


def _community_page(
    request: Request, context: WebContext, rule_id: str, attack_version: str | None
) -> Response:
    with context.store() as store:
        try:
            doc = community_rule_doc(store, rule_id, attack_version)
        except NotFoundError:
            doc = community_rule_doc(store, rule_id.strip().lower(), attack_version)
    return context.page(
        request, "detection.html", rule=doc, tabs=community_tabs("r", doc), **HELPERS
    )


@contextmanager
def _optional_store(context: WebContext) -> Iterator[Store | None]:
    """The store when there is one: our detections show without it, less resolved."""
    if not context.settings.store_path.exists():
        yield None
        return
    with context.store() as store:
        yield store
