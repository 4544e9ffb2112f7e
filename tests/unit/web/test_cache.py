"""The kept-pages cache stays inside its count and byte budgets, least recently used first."""

from __future__ import annotations

from defensemap.web.cache import Cached, ResponseCache


def _page(size: int) -> Cached:
    return Cached(b"x" * size, ((b"content-length", str(size).encode()),))


def test_least_recently_used_goes_first_when_over_the_count() -> None:
    cache = ResponseCache(size=2, max_bytes=1000)
    cache.put("/a", "s", _page(1))
    cache.put("/b", "s", _page(1))
    assert cache.get("/a", "s") is not None  # /a is now the most recent
    cache.put("/c", "s", _page(1))
    assert cache.get("/b", "s") is None
    assert cache.get("/a", "s") is not None and cache.get("/c", "s") is not None


def test_bytes_are_bounded_and_a_page_larger_than_the_budget_is_not_kept() -> None:
    cache = ResponseCache(size=100, max_bytes=250)
    for name in ("/a", "/b", "/c"):
        cache.put(name, "s", _page(100))
    assert cache.get("/a", "s") is None and len(cache) == 2
    cache.put("/huge", "s", _page(251))
    assert cache.get("/huge", "s") is None and len(cache) == 2
    cache.put("/b", "s", _page(50))  # replacing an entry counts its new size only
    cache.put("/d", "s", _page(100))
    assert len(cache) == 3


def test_the_same_url_in_another_data_state_is_another_entry() -> None:
    cache = ResponseCache()
    cache.put("/a", "store-1", _page(1))
    assert cache.get("/a", "store-2") is None
    assert cache.get("/a", "store-1") is not None


def test_if_none_match_accepts_lists_weak_tags_and_star() -> None:
    from defensemap.web.cache import etag_matches

    tag = '"abc"'
    assert etag_matches('"abc"', tag)
    assert etag_matches('"x", W/"abc"', tag)
    assert etag_matches("*", tag)
    assert not etag_matches('"abcd"', tag)
    assert not etag_matches(None, tag) and not etag_matches("", tag)
