"""What an analyst sees in a real browser, on real data: the T1021.007 page, copy buttons,
instant search, the coverage heat map, keyboard use, and hostile ATT&CK text that stays text."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from tests.attack_bundles import TECHNIQUE, small_bundle, write_bundle
from tests.browser.conftest import running_server
from tests.file_server import serve_directory

pytestmark = [pytest.mark.browser, pytest.mark.realdata]

HOSTILE = (
    "Adversaries <script>alert('script ran')</script> may "
    '<img src="x" onerror="alert(\'img ran\')"> abuse '
    "[a link](javascript:alert('link ran')) and <b>bold</b> markup."
)


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def test_technique_page_shows_its_three_sections_and_the_nist_row(server: str, page: Any) -> None:
    expect = _expect()
    page.goto(f"{server}/techniques/T1021.007")
    expect(page.locator("h1")).to_contain_text("Cloud Services")
    for heading in ("What it is", "What counters it", "How to detect it"):
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    nist = page.get_by_role("tab", name=re.compile("NIST"))
    nist.first.click()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="IA-05", exact=True))
    expect(row.first).to_be_visible()
    assert page.dialogs == []
    assert page.errors == []


def test_kql_copy_button_puts_the_query_on_the_clipboard(server: str, page: Any) -> None:
    expect = _expect()
    page.goto(f"{server}/techniques/T1021.007")
    kql = page.get_by_role("tab", name=re.compile(r"^KQL \(Sentinel\)")).first
    kql.click()
    panel = page.locator(f"#{kql.get_attribute('aria-controls')}")
    expect(panel).to_be_visible()
    query = panel.locator("pre code").first.inner_text()
    assert query.strip()
    button = panel.get_by_role("button", name="Copy")
    button.click()
    expect(panel.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == query


def test_typing_in_search_shows_results_and_enter_and_click_navigate(
    server: str, page: Any
) -> None:
    expect = _expect()
    page.goto(server + "/")
    box = page.get_by_role("searchbox")
    box.click()
    box.press_sequentially("APT2", delay=30)
    results = page.get_by_role("listbox", name="Search results")
    expect(results).to_be_visible()
    expect(results.get_by_role("link", name=re.compile("APT29"))).to_be_visible()
    results.get_by_role("link", name=re.compile("APT29")).first.click()
    expect(page).to_have_url(re.compile(r"/groups/G0016$"))
    expect(page.locator("h1")).to_contain_text("APT29")

    box = page.get_by_role("searchbox")
    box.fill("APT2")
    box.press("Enter")
    expect(page).to_have_url(re.compile(r"/search\?q=APT2"))
    expect(page.locator("main").get_by_role("link", name="G0007").first).to_be_visible()  # APT28


def test_coverage_heat_map_cell_opens_its_technique(server: str, page: Any) -> None:
    expect = _expect()
    page.goto(f"{server}/coverage?group=G0016")
    cell = page.locator(".heatmap a.cell").first
    expect(cell).to_be_visible()
    technique = re.match(r"T\d{4}(\.\d{3})?", cell.inner_text().strip())
    assert technique is not None
    cell.click()
    expect(page).to_have_url(re.compile(rf"/techniques/{re.escape(technique.group(0))}$"))
    expect(page.locator("h1")).to_contain_text(technique.group(0))


def test_keyboard_reaches_search_and_tabs_and_arrows_switch_tabs(server: str, page: Any) -> None:
    expect = _expect()
    page.goto(f"{server}/techniques/T1021.007")
    focused: list[str] = []
    for _ in range(60):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id || document.activeElement.role"))
        if page.evaluate("document.activeElement.getAttribute('role')") == "tab":
            break
    assert "q" in focused  # the search box is reached before the first tab
    focus = page.locator(":focus")
    assert focus.get_attribute("aria-selected") == "true"
    first = focus.get_attribute("id")
    page.keyboard.press("ArrowRight")
    expect(focus).not_to_have_id(first)
    expect(focus).to_have_attribute("aria-selected", "true")
    expect(page.locator(f"#{focus.get_attribute('aria-controls')}")).to_be_visible()
    expect(page.locator(f"#{first}")).to_have_attribute("aria-selected", "false")
    page.keyboard.press("ArrowLeft")
    expect(focus).to_have_id(first)
    expect(focus).to_have_attribute("aria-selected", "true")


@pytest.fixture
def hostile_server(tmp_path: Path, cli) -> Any:  # type: ignore[no-untyped-def]
    """A separate home whose only technique's description carries script, an onerror image
    and a javascript: link."""
    bundle = small_bundle()
    bundle["objects"][TECHNIQUE]["description"] = HOSTILE
    path = write_bundle(tmp_path / "enterprise-attack-18.1.json", bundle)
    home = tmp_path / "hostile-home"
    assert cli("--home", str(home), "import", "attack", str(path)).exit_code == 0
    with running_server(home) as url:
        yield url


def test_hostile_description_never_executes_and_renders_as_text(
    hostile_server: str, page: Any
) -> None:
    expect = _expect()
    page.goto(f"{hostile_server}/techniques/T1021")
    expect(page.locator("h1")).to_contain_text("Remote Services")
    page.wait_for_load_state("networkidle")
    text = page.locator("main").inner_text()
    assert "<script>alert('script ran')</script>" in text
    assert "onerror" in text
    assert page.locator("main script, main img, main iframe").count() == 0
    hrefs = page.locator("main a").evaluate_all("links => links.map(a => a.href)")
    assert not [h for h in hrefs if h.lower().startswith("javascript:")]
    page.get_by_text("a link").first.click()  # if it were a javascript: link, it would alert
    page.wait_for_timeout(200)
    assert page.dialogs == []
    assert page.errors == []


@pytest.fixture
def static_site(tmp_path: Path, cli) -> Any:  # type: ignore[no-untyped-def]
    """`build-site --base-url /dm` of the hand-made bundle, served by a plain file server
    (no defensemap behind it); yields the site's URL."""
    path = write_bundle(tmp_path / "enterprise-attack-18.1.json", small_bundle())
    home = tmp_path / "static-home"
    assert cli("--home", str(home), "import", "attack", str(path)).exit_code == 0
    root = tmp_path / "www"
    built = cli("--home", str(home), "build-site", str(root / "dm"), "--base-url", "/dm")
    assert built.exit_code == 0, built.stderr
    with serve_directory(root) as url:
        yield url + "/dm"


def test_static_site_searches_its_prebuilt_index_under_its_base_url(
    static_site: str, page: Any
) -> None:
    expect = _expect()
    page.goto(static_site + "/")
    box = page.get_by_role("searchbox")
    box.click()
    box.press_sequentially("remote desk", delay=30)
    results = page.get_by_role("listbox", name="Search results")
    expect(results.get_by_role("link", name=re.compile("T1021.001"))).to_be_visible()
    results.get_by_role("link", name=re.compile("T1021.001")).first.click()
    expect(page).to_have_url(re.compile(r"/dm/techniques/T1021\.001/?$"))
    expect(page.locator("h1")).to_contain_text("Remote Desktop Protocol")
    page.locator("main").get_by_role("link", name="Remote Services").first.click()
    expect(page).to_have_url(re.compile(r"/dm/techniques/T1021/?$"))

    box = page.get_by_role("searchbox")
    box.fill("T1021")
    box.press("Enter")
    expect(page).to_have_url(re.compile(r"/dm/search/?\?q=T1021"))
    expect(page.locator("main").get_by_role("link", name="T1021.001").first).to_be_visible()
    assert page.errors == []
