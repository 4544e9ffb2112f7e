"""Find and download official ATT&CK releases (the attack-stix-data repository layout).

The layout is ``<root>/index.json`` listing every release of every domain, and
``<root>/<domain>/<domain>-<version>.json`` for the bundles; a mirror with the same layout
works through ``--source``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from defensemap.errors import SchemaError, SourceLocation
from defensemap.model.attack import DOMAINS, version_key
from defensemap.sources.http import open_url

DEFAULT_SOURCE = "https://raw.githubusercontent.com/mitre-attack/attack-stix-data/master"
OFFLINE_HINT = (
    "offline or blocked? download the release files on another machine and load them with "
    "`defensemap import attack FILE...`"
)
_COLLECTION_DOMAINS = {
    "Enterprise ATT&CK": "enterprise-attack",
    "Mobile ATT&CK": "mobile-attack",
    "ICS ATT&CK": "ics-attack",
}


@dataclass(frozen=True)
class ReleaseFile:
    """One downloadable bundle: its domain, version and URL under the chosen source."""

    domain: str
    version: str
    url: str
    modified: str | None


def fetch_index(source: str = DEFAULT_SOURCE) -> list[ReleaseFile]:
    """Every release the source lists, URLs rewritten onto ``source``."""
    root = source.rstrip("/")
    url = f"{root}/index.json"
    with open_url(url, OFFLINE_HINT) as response:
        body = response.read(16 << 20)
    try:
        index = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SchemaError(
            f"index is not JSON: {exc.msg}", location=SourceLocation(path=url)
        ) from None
    return _parse_index(index, root, url)


def _parse_index(index: Any, root: str, url: str) -> list[ReleaseFile]:
    collections = index.get("collections") if isinstance(index, dict) else None
    if not isinstance(collections, list):
        raise SchemaError(
            "index has no 'collections' list",
            location=SourceLocation(path=url, pointer="/collections"),
        )
    files = []
    for c_index, collection in enumerate(collections):
        domain = _COLLECTION_DOMAINS.get(str(collection.get("name")))
        versions = collection.get("versions")
        if domain is None or not isinstance(versions, list):
            continue
        for v_index, entry in enumerate(versions):
            if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
                raise SchemaError(
                    "release entry has no url",
                    location=SourceLocation(
                        path=url, pointer=f"/collections/{c_index}/versions/{v_index}"
                    ),
                )
            tail = "/".join(entry["url"].rstrip("/").split("/")[-2:])
            files.append(
                ReleaseFile(
                    domain, str(entry.get("version")), f"{root}/{tail}", entry.get("modified")
                )
            )
    return files


def choose(files: list[ReleaseFile], domains: list[str], version: str | None) -> list[ReleaseFile]:
    """The requested version of each domain, or the newest one when no version is given."""
    chosen = []
    for domain in domains or list(DOMAINS):
        candidates = [f for f in files if f.domain == domain]
        if version:
            candidates = [f for f in candidates if f.version == version]
        if candidates:
            chosen.append(max(candidates, key=lambda f: version_key(f.version)))
    return chosen
