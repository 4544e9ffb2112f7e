"""Find and download official ATT&CK releases (the attack-stix-data repository layout).

The layout is ``<root>/index.json`` listing every release of every domain, and
``<root>/<domain>/<domain>-<version>.json`` for the bundles; a mirror with the same layout
works through ``--source``. This is the only module that touches the network.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from defensemap.errors import NetworkError, SchemaError, SourceLocation
from defensemap.model.attack import DOMAINS, version_key
from defensemap.sources.files import max_input_bytes

DEFAULT_SOURCE = "https://raw.githubusercontent.com/mitre-attack/attack-stix-data/master"
CONNECT_TIMEOUT = 8.0
READ_TIMEOUT = 30.0
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


def _open(url: str, timeout: float) -> Any:
    request = urllib.request.Request(url, headers={"User-Agent": "defensemap"})
    return urllib.request.urlopen(request, timeout=timeout)


def _open_with_deadline(url: str) -> Any:
    """Open ``url``, giving up after ``CONNECT_TIMEOUT`` even when name resolution hangs."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(_open, url, CONNECT_TIMEOUT)
    try:
        return future.result(timeout=CONNECT_TIMEOUT + 1)
    except concurrent.futures.TimeoutError:
        raise NetworkError(
            f"no answer from {url} within {CONNECT_TIMEOUT:.0f} s", hint=OFFLINE_HINT
        ) from None
    except urllib.error.HTTPError as exc:
        raise NetworkError(
            f"{url} answered HTTP {exc.code} {exc.reason}", hint=OFFLINE_HINT
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NetworkError(f"cannot reach {url}: {reason}", hint=OFFLINE_HINT) from None
    finally:
        pool.shutdown(wait=False)


def fetch_index(source: str = DEFAULT_SOURCE) -> list[ReleaseFile]:
    """Every release the source lists, URLs rewritten onto ``source``."""
    root = source.rstrip("/")
    url = f"{root}/index.json"
    with _open_with_deadline(url) as response:
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


def download(
    release: ReleaseFile, folder: Path, on_progress: Callable[[int, int | None], None]
) -> Path:
    """Stream one bundle to ``folder``; ``on_progress(done, total)`` after each chunk."""
    target = folder / f"{release.domain}-{release.version}.json"
    limit = max_input_bytes()
    with _open_with_deadline(release.url) as response, target.open("wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdecimal() else None
        done = 0
        try:
            while chunk := response.read(1 << 20):
                done += len(chunk)
                if done > limit:
                    raise NetworkError(
                        f"{release.url} is larger than {limit >> 20} MiB; refusing it"
                    )
                out.write(chunk)
                on_progress(done, total)
        except (TimeoutError, OSError) as exc:
            raise NetworkError(
                f"download of {release.url} failed: {exc}", hint=OFFLINE_HINT
            ) from None
    return target


def clear(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
