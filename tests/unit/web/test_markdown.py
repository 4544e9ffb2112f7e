"""The safe Markdown renderer: ATT&CK links become local pages, nothing else is trusted."""

from __future__ import annotations

import lxml.html
import pytest
from hypothesis import given
from hypothesis import strategies as st

from defensemap.web.markdown import local_attack_url, render_markdown


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("https://attack.mitre.org/techniques/T1021/007", "/techniques/T1021.007"),
        ("https://attack.mitre.org/techniques/T1078/", "/techniques/T1078"),
        ("http://attack.mitre.org/groups/g0016", "/groups/G0016"),
        ("https://attack.mitre.org/software/S0154", "/software/S0154"),
        ("https://attack.mitre.org/campaigns/C0024", "/campaigns/C0024"),
        ("https://attack.mitre.org/mitigations/M1032", "/mitigations/M1032"),
        ("https://attack.mitre.org/tactics/TA0008", "/tactics/TA0008"),
        ("https://attack.mitre.org/resources/", None),
        ("https://attack.mitre.org/techniques/T1021/007/extra", None),
        ("https://example.org/techniques/T1021/007", None),
        ("https://attack.mitre.org.evil.example/techniques/T1021", None),
    ],
)
def test_attack_urls_map_to_local_pages(url: str, local: str | None) -> None:
    assert local_attack_url(url) == local


def test_links_in_prose_point_at_this_site_with_its_base_url() -> None:
    text = (
        "Adversaries may use [Cloud Services](https://attack.mitre.org/techniques/T1021/007) "
        "as [APT29](https://attack.mitre.org/groups/G0016) did; see [a blog](https://ex.org/a)."
    )
    hrefs = lxml.html.fromstring(str(render_markdown(text, "/docs/dm"))).xpath("//a/@href")
    assert hrefs == ["/docs/dm/techniques/T1021.007", "/docs/dm/groups/G0016", "https://ex.org/a"]
    assert lxml.html.fromstring(str(render_markdown(text))).xpath("//a/@href")[0] == (
        "/techniques/T1021.007"
    )


def test_hostile_markup_is_text_and_unsafe_links_are_not_links() -> None:
    html = str(
        render_markdown(
            "<script>alert(1)</script> <img src=x onerror=alert(1)> "
            "[x](javascript:alert(1)) [y](data:text/html,hi) ![i](https://ex.org/i.png)"
        )
    )
    tree = lxml.html.fromstring(f"<div>{html}</div>")
    assert not tree.xpath("//script | //img | //*[@onerror]")
    assert tree.xpath("//a/@href") == ["https://ex.org/i.png"], "an image is only a link"
    assert "&lt;script&gt;" in html


@given(st.text(max_size=300))
def test_no_text_yields_script_handlers_or_unsafe_hrefs(text: str) -> None:
    html = str(render_markdown(text, "/base"))
    tree = lxml.html.fromstring(f"<div>{html}</div>")
    assert not tree.xpath("//script | //img | //iframe | //object | //style")
    for element in tree.iter():
        assert not any(name.lower().startswith("on") for name in element.attrib)
    for href in tree.xpath("//a/@href"):
        assert href.lower().startswith(("http://", "https://", "mailto:", "/base/"))


def test_citations_link_to_references_but_never_inside_code_or_links() -> None:
    from defensemap.web.pages_attack import cited_markdown

    html = str(
        cited_markdown("Runs <code>$a[1]</code> per [the guide [2]](https://ex.org/g), seen [1].")
    )
    tree = lxml.html.fromstring(f"<div>{html}</div>")
    assert tree.xpath("//code/text()") == ["$a[1]"]
    assert tree.xpath("//a/@href") == ["https://ex.org/g", "#ref-1"]
    assert not tree.xpath("//a//a")
