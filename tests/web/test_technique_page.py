"""The technique page on real data: what it is, what counters it, how to detect it; revoked
ids redirect, unknown ids 404, and hostile ATT&CK prose never becomes markup."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.attack_bundles import TECHNIQUE, small_bundle, write_bundle

from defensemap.config import Settings
from defensemap.library.loader import load_library
from defensemap.web.app import create_app

VOID = {"br", "img", "input", "meta", "link", "hr", "source", "wbr", "col", "area", "base"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    parent: Element | None
    content: list[str | Element] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.content)

    def iter(self) -> Iterator[Element]:
        yield self
        for child in self.content:
            if isinstance(child, Element):
                yield from child.iter()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.iter()
            if (tag is None or e.tag == tag)
            and all(e.attrs.get(k.rstrip("_").replace("_", "-")) == v for k, v in attrs.items())
        ]


class Page(HTMLParser):
    """A page as a tree of elements (enough for assertions on structure)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", {}, None)
        self._open = self.root
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs}, self._open)
        self._open.content.append(element)
        if tag not in VOID:
            self._open = element

    def handle_endtag(self, tag: str) -> None:
        node: Element | None = self._open
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self._open = node.parent

    def handle_data(self, data: str) -> None:
        self._open.content.append(data)

    def by_id(self, ident: str) -> Element:
        found = self.root.find_all(id=ident)
        assert len(found) == 1, f"{len(found)} elements with id {ident!r}"
        return found[0]

    @property
    def main(self) -> Element:
        return self.by_id("main")


def panel_of(page: Page, tab: Element) -> Element:
    """The tabpanel a tab controls (and it must say it is labelled by that tab)."""
    panel = page.by_id(tab.attrs["aria-controls"])
    assert panel.attrs["role"] == "tabpanel"
    assert panel.attrs["aria-labelledby"] == tab.attrs["id"]
    return panel


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, loaded_store_path: Path) -> TestClient:
    """The app on a copy of the session store (read-only use: one copy for the module)."""
    home = tmp_path_factory.mktemp("web-home")
    shutil.copy(loaded_store_path, home / "defensemap.sqlite")
    return TestClient(create_app(Settings(home)))


def page_of(client: TestClient, url: str) -> Page:
    response = client.get(url)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    return Page(response.text)


@pytest.mark.realdata
def test_t1021_007_has_all_three_sections(client: TestClient) -> None:
    page = page_of(client, "/techniques/T1021.007")
    h1 = page.main.find_all("h1")[0].text()
    assert "T1021.007" in h1 and "Cloud Services" in h1
    for ident, heading in (
        ("what-it-is", "What it is"),
        ("what-counters-it", "What counters it"),
        ("how-to-detect-it", "How to detect it"),
    ):
        assert page.by_id(ident).text() == heading
    description = page.main.find_all("div", class_="prose description")[0]
    assert "using Valid Accounts that are synchronized" in description.text()
    assert description.find_all("code")[0].text() == "Connect-AZAccount"  # ATT&CK's <code>
    # citations are numbered as on the ATT&CK site and link to their reference
    apt29 = next(
        r
        for r in page.main.find_all("table", aria_labelledby="groups")[0].find_all("tr")
        if "APT29" in r.text()
    )
    cited = apt29.find_all("a", href="#ref-2")
    assert cited and cited[0].text() == "[2]"
    reference = page.by_id("ref-2")
    assert reference.attrs["value"] == "2"
    assert reference.find_all("a")[0].attrs["href"].startswith("https://")


@pytest.mark.realdata
def test_nist_tab_lists_ia_05_with_its_capability_link(client: TestClient) -> None:
    page = page_of(client, "/techniques/T1021.007")
    tab = page.main.find_all("button", role="tab", data_framework="nist_800_53")
    assert len(tab) == 1 and tab[0].text().startswith("NIST 800-53")
    rows = panel_of(page, tab[0]).find_all("tr")
    ia05 = [r for r in rows if r.find_all("a", href="/capabilities/nist_800_53/IA-05")]
    assert len(ia05) == 1
    cells = [td.text().strip() for td in ia05[0].find_all("td")]
    assert cells[0] == "IA-05"
    assert "Authenticator Management" in cells[1]
    assert cells[3] == "Protects"  # mapping type, as Mappings Explorer labels it
    assert cells[7].startswith("16.1")  # mapped on ATT&CK 16.1


@pytest.mark.realdata
def test_kql_tab_copy_button_targets_the_detection_query(client: TestClient) -> None:
    page = page_of(client, "/techniques/T1021.007")
    library = {str(d.detection.id): d.detection for d in load_library().detections}
    cards = page.main.find_all("article")
    assert cards, "no detection card"
    for card in cards:
        detection_id = card.find_all("a")[0].attrs["href"].rsplit("/", 1)[1]
        kql_tab = [t for t in card.find_all("button", role="tab") if t.text() == "KQL (Sentinel)"]
        assert len(kql_tab) == 1 and kql_tab[0].attrs["aria-selected"] == "true"
        panel = panel_of(page, kql_tab[0])
        copy = panel.find_all("button", class_="copy")[0]
        code = page.by_id(copy.attrs["data-copy"])
        assert code.tag == "code"
        assert code.text() == library[detection_id].queries.kql
    # every Copy button on the page copies an element that exists
    for button in page.main.find_all("button", class_="copy"):
        assert page.by_id(button.attrs["data-copy"]).tag == "code"


@pytest.mark.realdata
def test_language_tabs_show_backend_status_or_refusal(client: TestClient) -> None:
    page = page_of(client, "/techniques/T1021.007")
    labels = [t.text() for t in page.main.find_all("article")[0].find_all("button", role="tab")]
    assert labels[:2] == ["KQL (Sentinel)", "Sigma"]
    assert {"SPL", "ES|QL", "Lucene", "LogScale", "YARA-L (SecOps)", "AQL (QRadar)"} <= set(labels)
    sigma = next(t for t in page.main.find_all("button", role="tab") if t.text() == "Sigma")
    sigma_code = panel_of(page, sigma).find_all("code")
    assert any(c.attrs.get("id") and "logsource:" in c.text() for c in sigma_code)
    verdicts = page.main.find_all("p", class_="conv-meta")
    assert any("backend" in v.text() for v in verdicts)
    for panel in page.main.find_all("div", role="tabpanel"):
        refused = panel.find_all("p", class_="refused")
        if refused:  # a refused conversion says why and shows no query
            assert refused[0].text().startswith("Not converted: ") and len(refused[0].text()) > 16
            assert not panel.find_all("pre")


@pytest.mark.realdata
def test_used_by_mitigations_and_detection_strategies_link_their_pages(client: TestClient) -> None:
    page = page_of(client, "/techniques/T1021.007")
    hrefs = {a.attrs.get("href") for a in page.main.find_all("a")}
    assert {"/groups/G0016", "/mitigations/M1026", "/tactics/TA0008"} <= hrefs
    assert any(h and h.startswith("/detection-strategies/DET") for h in hrefs)
    assert "https://attack.mitre.org/techniques/T1021/007" in hrefs


@pytest.mark.realdata
def test_ids_are_case_insensitive(client: TestClient) -> None:
    page = page_of(client, "/techniques/t1021.007")
    assert "T1021.007" in page.main.find_all("h1")[0].text()


@pytest.mark.realdata
def test_revoked_id_redirects_to_its_replacement_with_a_note(client: TestClient) -> None:
    response = client.get("/techniques/T1086", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/techniques/T1059.001?revoked=T1086"
    page = page_of(client, response.headers["location"])
    assert "T1059.001" in page.main.find_all("h1")[0].text()
    assert "T1086 was revoked" in page.main.find_all("div", class_="callout")[0].text()


@pytest.mark.realdata
def test_unknown_id_is_a_404_page(client: TestClient) -> None:
    response = client.get("/techniques/T9999")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "T9999" in Page(response.text).main.text()


def test_bad_version_parameter_is_a_400_page(client: TestClient) -> None:
    response = client.get("/techniques/T1021.007?attack_version=latest")
    assert response.status_code == 400
    assert "attack_version" in response.text


@pytest.mark.realdata
def test_attack_version_switches_release(client: TestClient) -> None:
    page = page_of(client, "/techniques/T1021.007?attack_version=16.1")
    facts = page.main.find_all("dl", class_="facts")[0].text()
    assert "ATT&CK 16.1 (enterprise-attack)" in facts
    select = page.by_id("attack_version")
    options = {o.attrs["value"]: "selected" in o.attrs for o in select.find_all("option")}
    assert options == {"18.1": False, "16.1": True}
    default = page_of(client, "/techniques/T1021.007").by_id("attack_version")
    assert [o.attrs["value"] for o in default.find_all("option") if "selected" in o.attrs] == [
        "18.1"
    ]


HOSTILE = (
    "Adversaries may <script>alert(1)</script> and <img src=x onerror=alert(1)> and"
    ' [click](javascript:alert(1)) and <a href="javascript:alert(2)">raw</a>.'
    "(Citation: Evil)"
)


def _hostile_bundle() -> dict[str, Any]:
    bundle = small_bundle()
    technique = bundle["objects"][TECHNIQUE]
    technique["description"] = HOSTILE
    technique["external_references"].append(
        {"source_name": "Evil", "description": "<b>evil</b>", "url": "javascript:alert(3)"}
    )
    return bundle


def test_hostile_description_never_becomes_markup(cli: Any, home: Path, tmp_path: Path) -> None:
    path = write_bundle(tmp_path / "enterprise-attack-99.1.json", _hostile_bundle())
    assert cli("import", "attack", str(path)).exit_code == 0
    response = TestClient(create_app(Settings(home))).get("/techniques/T1021")
    assert response.status_code == 200
    main = Page(response.text).main
    assert not main.find_all("script") and not main.find_all("img")
    for element in main.iter():
        assert not any(name.startswith("on") for name in element.attrs), element
        href = element.attrs.get("href", "").strip().lower()
        assert not href.startswith(("javascript:", "data:", "vbscript:")), href
    description = main.find_all("div", class_="prose description")[0].text()
    assert "<script>alert(1)</script>" in description  # shown as text, not run
    assert "<img src=x onerror=alert(1)>" in description
    assert "evil" in Page(response.text).by_id("ref-1").text()
