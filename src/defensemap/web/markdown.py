"""ATT&CK and Mappings Explorer prose is Markdown written by others: render it with raw HTML
off and only http(s)/mailto links, so a crafted bundle cannot put script on a page.

Links to ATT&CK's own pages for objects defensemap shows (techniques, groups, software,
campaigns, mitigations, tactics) are pointed at the local page instead: an analyst following
"[Cloud Services](https://attack.mitre.org/techniques/T1021/007)" stays on the version and the
counters and detections they are reading, and an air-gapped SOC gets a page that opens."""

from __future__ import annotations

import re
from functools import cache, lru_cache

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markupsafe import Markup

_SAFE_SCHEMES = ("http://", "https://", "mailto:")
_ATTACK_PAGE = re.compile(
    r"https?://attack\.mitre\.org/(techniques|groups|software|campaigns|mitigations|tactics)/"
    r"((?:T|G|S|C|M|TA)\d{4})(?:/(\d{3}))?/?$",
    re.IGNORECASE,
)


def safe_link(url: str | None) -> str | None:
    """``url`` when a browser may follow it (http, https, mailto), else ``None``."""
    if url and url.strip().lower().startswith(_SAFE_SCHEMES):
        return url.strip()
    return None


def local_attack_url(url: str) -> str | None:
    """``https://attack.mitre.org/techniques/T1021/007`` → ``/techniques/T1021.007``; None
    for anything else (other ATT&CK pages, other sites)."""
    match = _ATTACK_PAGE.match(url.strip())
    if match is None:
        return None
    section, ident, sub = match.groups()
    ident = ident.upper() + (f".{sub}" if sub else "")
    return f"/{section.lower()}/{ident}"


def _localise_attack_links(state: StateCore) -> None:
    base_url = state.env.get("base_url", "")
    for block in state.tokens:
        for token in block.children or ():
            if token.type != "link_open":
                continue
            local = local_attack_url(str(token.attrGet("href") or ""))
            if local is not None:
                token.attrSet("href", base_url + local)


@cache
def _renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.validateLink = lambda url: safe_link(url) is not None  # type: ignore[method-assign]
    md.disable("image")
    md.core.ruler.push("local_attack_links", _localise_attack_links)
    return md


@lru_cache(maxsize=16384)
def render_markdown(text: str | None, base_url: str = "") -> Markup:
    """HTML for trusted display; everything the text holds is escaped or dropped. Memoised:
    ATT&CK and mapping prose repeats on every view."""
    return Markup(_renderer().render(text or "", {"base_url": base_url}))
