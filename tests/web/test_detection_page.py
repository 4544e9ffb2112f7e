"""The detection page: every field of one of our detections with its language tabs and
support matrix, and an imported SigmaHQ rule with its attribution (DRL 1.1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import SHARED_DATA
from tests.web.test_technique_page import Page, panel_of

from defensemap.config import Settings
from defensemap.library.convert import TARGETS
from defensemap.library.loader import load_library
from defensemap.web.app import create_app

DETECTION = "41b28a93-de4b-4c0c-a2e9-e46278f616bd"  # first sign-in through a cloud admin client
RULE_FILE = (
    SHARED_DATA
    / "sigma"
    / "rules"
    / "cloud"
    / "aws"
    / "cloudtrail"
    / "aws_console_getsignintoken.yml"
)
RULE_ID = "f8103686-e3e8-46f3-be72-65f7fcb4aa53"


def _page(client: TestClient, url: str) -> Page:
    response = client.get(url)
    assert response.status_code == 200, response.text[:500]
    return Page(response.text)


@pytest.mark.realdata
def test_library_detection_shows_every_field(loaded_home: Path) -> None:
    detection = load_library().get(DETECTION).detection
    page = _page(TestClient(create_app(Settings(loaded_home))), f"/detections/{DETECTION.upper()}")
    main = page.main
    assert main.find_all("h1")[0].text() == detection.title
    facts = main.find_all("dl", class_="facts")[0].text()
    for expected in (
        DETECTION,
        detection.confidence.reason if detection.confidence else "",
        "T1021.007",
        "Lateral Movement",
        *detection.required_tables,
        f"every {detection.schedule.frequency} over {detection.schedule.period}",
        "detections/",
    ):
        assert expected in facts, expected
    assert "/work" not in facts  # no server paths
    kql = next(t for t in main.find_all("button", role="tab") if t.text() == "KQL (Sentinel)")
    code = page.by_id(panel_of(page, kql).find_all("button", class_="copy")[0].attrs["data-copy"])
    assert code.text() == detection.queries.kql
    matrix = main.find_all("table", aria_labelledby="support")[0]
    targets = [row.find_all("td")[0].text() for row in matrix.find_all("tr")[1:]]
    assert targets == list(TARGETS)
    headings = {h.text() for h in main.find_all("h3")}
    assert {"False positives", "Investigation", "Response", "Test status"} <= headings
    tests = f"{len(detection.tests.positive)} positive and {len(detection.tests.negative)} negative"
    assert tests in main.text()


@pytest.mark.realdata
def test_community_rule_page_carries_its_attribution(cli: Any, loaded_home: Path) -> None:
    assert cli("import", "sigma", str(RULE_FILE)).exit_code == 0
    client = TestClient(create_app(Settings(loaded_home)))
    page = _page(client, f"/detections/{RULE_ID}")
    main = page.main
    assert main.find_all("h1")[0].text() == "AWS Console GetSigninToken Potential Abuse"
    attribution = main.find_all("p", class_="attribution callout")[0].text()
    assert "Detection Rule License 1.1" in attribution and "(SigmaHQ)" in attribution
    hrefs = {a.attrs["href"] for a in main.find_all("a")}
    assert "https://github.com/SigmaHQ/Detection-Rule-License" in hrefs
    assert any(h.startswith("https://github.com/SigmaHQ/sigma/") for h in hrefs)
    sigma = next(t for t in main.find_all("button", role="tab") if t.text() == "Sigma")
    yaml_code = page.by_id(
        panel_of(page, sigma).find_all("button", class_="copy")[0].attrs["data-copy"]
    )
    assert yaml_code.text() == RULE_FILE.read_text(encoding="utf-8")
    assert "Converted from “AWS Console GetSigninToken Potential Abuse”" in main.text()
    # and the technique page lists it with its author and a link to this page
    technique = _page(client, "/techniques/T1021.007").main
    rows = [r for r in technique.find_all("tr") if r.find_all("a", href=f"/detections/{RULE_ID}")]
    assert len(rows) == 1 and "Chester Le Bron" in rows[0].text()
    assert "Detection Rule License 1.1" in technique.find_all("p", class_="attribution")[0].text()


@pytest.mark.realdata
def test_unknown_detection_is_a_404_page(loaded_home: Path) -> None:
    response = TestClient(create_app(Settings(loaded_home))).get("/detections/nope")
    assert response.status_code == 404
    assert "nope" in Page(response.text).main.text()
