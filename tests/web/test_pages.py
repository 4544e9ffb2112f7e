"""The pages around the technique page, on the real session store: capabilities and frameworks,
ATT&CK objects with their coverage column, the detection list, the coverage heat map and the
version diff; unknown ids are 404 pages."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import lxml.html
import pytest
from fastapi.testclient import TestClient
from lxml.html import HtmlElement

from defensemap.config import Settings
from defensemap.web.app import create_app


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, loaded_store_path: Path) -> TestClient:
    """The app on a copy of the session store (read-only use: one copy for the module)."""
    home = tmp_path_factory.mktemp("pages-home")
    shutil.copy(loaded_store_path, home / "defensemap.sqlite")
    return TestClient(create_app(Settings(home)))


def page(client: TestClient, url: str) -> HtmlElement:
    response = client.get(url)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    tree = lxml.html.fromstring(response.text)
    assert not tree.xpath("//*[@style]"), "inline styles are forbidden by the CSP"
    assert not tree.xpath("//script[not(@src)]"), "inline scripts are forbidden by the CSP"
    main: HtmlElement = tree.get_element_by_id("main")
    return main


def links(element: HtmlElement) -> dict[str, str]:
    """href → link text (whitespace collapsed)."""
    return {a.get("href"): " ".join(a.text_content().split()) for a in element.iter("a")}


def row_of(main: HtmlElement, href: str) -> HtmlElement:
    found = main.xpath(f'.//tr[.//a[@href="{href}"]]')
    assert found, f"no table row links to {href}"
    row: HtmlElement = found[0]
    return row


def test_capability_lists_every_mapped_technique(client: TestClient) -> None:
    main = page(client, "/capabilities/nist_800_53/ia-05")
    assert "IA-05" in main.findtext(".//h1")
    assert "Authenticator Management" in main.findtext(".//h1")
    row = row_of(main, "/techniques/T1021.007")
    assert "Cloud Services" in row.text_content()
    assert any(h.text_content().startswith("Protects") for h in main.iter("h3"))
    assert main.xpath('.//a[@href="/frameworks/nist_800_53"]')


def test_a_capability_the_newest_set_dropped_comes_from_the_newest_set_that_maps_it(
    client: TestClient,
) -> None:
    """Azure's 2021 set named services Microsoft has since renamed; rev4 spells AC-2."""
    main = page(client, "/capabilities/azure/azure_ad_multi-factor_authentication")
    heading = main.findtext(".//h2")
    assert "06/29/2021" in heading and "mapped on ATT&CK 8.2" in heading
    assert main.xpath('.//a[starts-with(@href, "/techniques/T")]')
    assert "rev4" in page(client, "/capabilities/nist_800_53/AC-2").findtext(".//h2")
    assert "rev5" in page(client, "/capabilities/nist_800_53/AC-02").findtext(".//h2")


def test_frameworks_and_one_framework(client: TestClient) -> None:
    main = page(client, "/frameworks")
    found = links(main)
    assert found["/frameworks/m365"] == "Microsoft 365"
    assert "/frameworks/nist_800_53" in found
    m365 = page(client, "/frameworks/M365")
    assert "Microsoft 365" in m365.findtext(".//h1")
    capabilities = [h for h in links(m365) if h.startswith("/capabilities/m365/")]
    assert len(capabilities) > 10
    assert client.get(capabilities[0]).status_code == 200


def test_group_lists_techniques_with_procedures_and_coverage(client: TestClient) -> None:
    main = page(client, "/groups/g0016")
    assert main.findtext(".//h1").strip() == "G0016 APT29"
    row = row_of(main, "/techniques/T1021.007")
    cells = row.findall("td")
    assert "APT29" in cells[2].text_content()
    counts = " ".join(cells[3].text_content().split())
    assert re.fullmatch(r"\d+ detections? \d+ mapped", counts), counts
    assert int(counts.split()[-2]) > 0, "NIST and others map T1021.007"
    description = main.xpath('.//div[@class="prose"]')[0]
    local = description.xpath(".//a[starts-with(@href, '/')]/@href")
    assert local and all(client.get(href).status_code == 200 for href in local)
    assert not description.xpath(".//a[contains(@href, 'attack.mitre.org/groups/')]")
    assert main.xpath('.//ol[@class="references"]/li')


def test_detection_counts_follow_the_library(client: TestClient) -> None:
    from defensemap.library.loader import load_library

    library = load_library()
    technique = library.detections[0].detection.techniques[0]
    expected = len(library.for_technique(technique))
    data = client.get(f"/api/v1/techniques/{technique}").json()["data"]
    users = [g["ref"]["id"] for g in data["groups"]]
    assert users, f"no group uses {technique}"
    row = row_of(page(client, f"/groups/{users[0]}"), f"/techniques/{technique}")
    assert row.findall("td")[3].text_content().split()[0] == str(expected)


@pytest.mark.parametrize(
    ("url", "title", "linked"),
    [
        ("/software/s0154", "S0154 Cobalt Strike", "/techniques/T1059.001"),
        ("/campaigns/C0024", "C0024 SolarWinds Compromise", "/groups/G0016"),
        ("/mitigations/M1032", "M1032 Multi-factor Authentication", "/techniques/T1021.007"),
        ("/tactics/TA0008", "TA0008 Lateral Movement", "/techniques/T1021.007"),
        ("/data-components/DC0001", "DC0001", "/techniques/"),
        ("/detection-strategies/DET0001", "DET0001", "/techniques/"),
    ],
)
def test_attack_object_pages(client: TestClient, url: str, title: str, linked: str) -> None:
    main = page(client, url)
    assert main.findtext(".//h1").strip().startswith(title)
    assert any(h.startswith(linked) for h in links(main))


def test_attack_version_switches_release(client: TestClient) -> None:
    main = page(client, "/groups/G0016?attack_version=16.1")
    assert "16.1" in main.xpath('.//p[@class="kind"]')[0].text_content()
    switch = main.xpath('.//nav[@class="versions"]')[0]
    assert "?attack_version=18.1" in links(switch)
    assert switch.xpath('.//strong[@aria-current="page"]')[0].text == "16.1"


def test_detections_list_and_filters(client: TestClient) -> None:
    main = page(client, "/detections")
    rows = main.xpath(".//tbody/tr")
    assert rows
    first = rows[0].xpath(".//a")[0].get("href")
    assert first.startswith("/detections/")
    lsass = page(client, "/detections?technique=T1003.001&severity=high%2B")
    assert lsass.xpath(".//tbody/tr")
    for row in lsass.xpath(".//tbody/tr"):
        assert "T1003.001" in row.text_content()
        assert row.xpath('.//span[contains(@class, "badge")]')[0].text in {"high", "critical"}
    assert lsass.xpath('.//select[@name="severity"]/option[@selected]')[0].get("value") == "high+"
    assert client.get("/detections?severity=severe").status_code == 400


def test_coverage_heat_map_links_cells_to_techniques(client: TestClient) -> None:
    main = page(client, "/coverage")
    assert "/groups/G0016" in links(main.xpath('.//dl[@class="facts"]')[0])
    cell = main.xpath('.//div[@class="heatmap"]//a[@href="/techniques/T1021.007"]')
    assert len(cell) == 1
    classes = cell[0].get("class").split()
    assert "cell" in classes
    assert any(re.fullmatch(r"band-\d+", c) for c in classes), "APT29 uses T1021.007"
    bands = {
        c for a in main.xpath('.//a[contains(@class, "cell")]') for c in a.get("class").split()
    }
    assert "out" in bands, "techniques APT29 does not use are drawn outside the profile"
    chosen = page(client, "/coverage?software=S0154")
    assert "/software/S0154" in links(chosen.xpath('.//dl[@class="facts"]')[0])


def test_coverage_form_keeps_the_profile_out_of_the_search_box(client: TestClient) -> None:
    html = client.get("/coverage?group=G0016").text
    assert 'id="q" name="q" type="search"' in html
    search_box = html.split('id="q"', 1)[1].split(">", 1)[0]
    assert 'value=""' in search_box and "CoverageQuery" not in html
    assert 'name="group" value="G0016"' in html


def test_coverage_bands_are_styled() -> None:
    css = (Path(__file__).parents[2] / "src/defensemap/web/static/style.css").read_text()
    for band in range(11):
        assert re.search(rf"\.band-{band} \{{ background: #[0-9a-f]{{6}}; }}", css), band


def test_diff_shows_the_revocation(client: TestClient) -> None:
    main = page(client, "/diff?old=16.1&new=18.1")
    assert "16.1 → 18.1" in main.findtext(".//h1")
    revoked = row_of(main, "/techniques/T1574.002?attack_version=16.1")
    assert "/techniques/T1574.001?attack_version=18.1" in links(revoked)
    assert page(client, "/diff").findtext(".//h1") == main.findtext(".//h1")


@pytest.mark.parametrize(
    "url",
    [
        "/groups/G9999",
        "/software/S9999",
        "/campaigns/C9999",
        "/mitigations/M9999",
        "/tactics/TA9999",
        "/data-components/DC9999",
        "/detection-strategies/DET9999",
        "/capabilities/nist_800_53/ZZ-99",
        "/frameworks/nope",
        "/coverage?group=G9999",
    ],
)
def test_unknown_ids_are_404_pages(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Not found" in response.text


def test_a_capability_id_holding_a_slash_has_its_page(client: TestClient) -> None:
    """VERIS names such as ``action.malware.variety.Spyware/Keylogger`` keep the slash."""
    url = "/capabilities/veris/action.malware.variety.Spyware%2FKeylogger"
    main = page(client, url)
    assert "Spyware/Keylogger" in main.findtext(".//h1")
    assert client.get("/api/v1" + url).json()["data"][0]["capability_id"] == (
        "action.malware.variety.Spyware/Keylogger"
    )
    assert page(client, "/capabilities/nist_800_53/IA-05/").findtext(".//h1").startswith("IA-05")
