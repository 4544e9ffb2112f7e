"""The only network code: bounded downloads that fail fast and say how to work offline."""

from __future__ import annotations

import concurrent.futures
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from defensemap.errors import NetworkError
from defensemap.sources.files import max_input_bytes

CONNECT_TIMEOUT = 8.0


def _open(url: str, timeout: float) -> Any:
    request = urllib.request.Request(url, headers={"User-Agent": "defensemap"})
    return urllib.request.urlopen(request, timeout=timeout)


def open_url(url: str, offline_hint: str) -> Any:
    """Open ``url``, giving up after ``CONNECT_TIMEOUT`` even when name resolution hangs."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(_open, url, CONNECT_TIMEOUT)
    try:
        return future.result(timeout=CONNECT_TIMEOUT + 1)
    except concurrent.futures.TimeoutError:
        raise NetworkError(
            f"no answer from {url} within {CONNECT_TIMEOUT:.0f} s", hint=offline_hint
        ) from None
    except urllib.error.HTTPError as exc:
        raise NetworkError(
            f"{url} answered HTTP {exc.code} {exc.reason}", hint=offline_hint
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NetworkError(f"cannot reach {url}: {reason}", hint=offline_hint) from None
    finally:
        pool.shutdown(wait=False)


def download(
    url: str, target: Path, offline_hint: str, on_progress: Callable[[int, int | None], None]
) -> Path:
    """Stream ``url`` to ``target`` (bounded by the input size limit); ``on_progress(done,
    total)`` after each chunk."""
    limit = max_input_bytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open_url(url, offline_hint) as response, target.open("wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdecimal() else None
        done = 0
        try:
            while chunk := response.read(1 << 20):
                done += len(chunk)
                if done > limit:
                    raise NetworkError(f"{url} is larger than {limit >> 20} MiB; refusing it")
                out.write(chunk)
                on_progress(done, total)
        except (TimeoutError, OSError) as exc:
            raise NetworkError(f"download of {url} failed: {exc}", hint=offline_hint) from None
    return target
