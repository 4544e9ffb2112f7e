"""ATT&CK and Mappings Explorer prose is Markdown written by others: render it with raw HTML
off and only http(s)/mailto links, so a crafted bundle cannot put script on a page."""

from __future__ import annotations

from functools import cache

from markdown_it import MarkdownIt
from markupsafe import Markup

_SAFE_SCHEMES = ("http://", "https://", "mailto:")


def _safe_link(url: str) -> bool:
    return url.strip().lower().startswith(_SAFE_SCHEMES)


@cache
def _renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.validateLink = _safe_link  # type: ignore[method-assign]
    md.disable("image")
    return md


def render_markdown(text: str | None) -> Markup:
    """HTML for trusted display; everything the text holds is escaped or dropped."""
    return Markup(_renderer().render(text or ""))
