"""One place for page URLs, so pages, the API and the static site agree."""

from __future__ import annotations

from urllib.parse import quote

from defensemap.kb.search import SearchResult

_PREFIX = {
    "technique": "techniques",
    "group": "groups",
    "software": "software",
    "campaign": "campaigns",
    "mitigation": "mitigations",
    "tactic": "tactics",
    "data-component": "data-components",
    "detection-strategy": "detection-strategies",
    "sigma-rule": "detections",
    "detection": "detections",
}


def object_url(kind: str, ident: str) -> str:
    return f"/{_PREFIX.get(kind, kind)}/{quote(ident, safe='.-_')}"


def capability_url(framework: str, capability_id: str) -> str:
    return f"/capabilities/{quote(framework, safe='._-')}/{quote(capability_id, safe='.-_')}"


def result_url(result: SearchResult) -> str:
    if result.kind == "capability" and result.framework:
        return capability_url(result.framework, result.id or "")
    return object_url(result.kind, result.id or "")
