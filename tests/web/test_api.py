"""The JSON API on the real session store: every endpoint answers the CLI's `--json` envelope,
unknown ids are 404s, bad parameters 400s naming the parameter, and responses are cacheable
and carry the security headers."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from defensemap.config import Settings
from defensemap.web.app import create_app


@pytest.fixture(scope="module")
def served_home(tmp_path_factory: pytest.TempPathFactory, loaded_store_path: Path) -> Path:
    """A copy of the session store for the module (the app only reads it)."""
    home = tmp_path_factory.mktemp("api-home")
    shutil.copy(loaded_store_path, home / "defensemap.sqlite")
    return home


@pytest.fixture(scope="module")
def client(served_home: Path) -> TestClient:
    return TestClient(create_app(Settings(served_home)))


def _ok(client: TestClient, url: str, kind: str) -> Any:
    response = client.get(url)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True
    assert body["kind"] == kind
    assert body["schema_version"] == 1
    return body["data"]


def test_status_lists_the_loaded_releases(client: TestClient) -> None:
    data = _ok(client, "/api/v1/status", "status")
    assert {(r["domain"], r["version"]) for r in data["attack"]} >= {
        ("enterprise-attack", "18.1"),
        ("enterprise-attack", "16.1"),
    }


def test_search_finds_ids_and_filters_by_kind(client: TestClient) -> None:
    data = _ok(client, "/api/v1/search?q=APT29&kind=group&limit=5", "search")
    assert data["query"] == "APT29"
    assert data["results"][0]["id"] == "G0016"
    assert {r["kind"] for r in data["results"]} == {"group"}
    capabilities = _ok(client, "/api/v1/search?q=IA-05&kind=capability", "search")["results"]
    assert any(r["framework"] == "nist_800_53" for r in capabilities)


def test_technique(client: TestClient) -> None:
    data = _ok(client, "/api/v1/techniques/t1021.007", "technique")
    assert data["id"] == "T1021.007"
    assert any(f["framework"] == "nist_800_53" for f in data["mappings"])


@pytest.mark.parametrize(
    ("path", "kind", "ident", "field"),
    [
        ("groups/g0016", "group", "G0016", "aliases"),
        ("software/S0154", "software", "S0154", "software_type"),
        ("campaigns/C0024", "campaign", "C0024", "first_seen"),
        ("mitigations/M1032", "mitigation", "M1032", "techniques"),
        ("tactics/TA0008", "tactic", "TA0008", "shortname"),
        ("data-components/DC0001", "data-component", "DC0001", "log_sources"),
        ("detection-strategies/DET0001", "detection-strategy", "DET0001", "analytics"),
    ],
)
def test_attack_objects(client: TestClient, path: str, kind: str, ident: str, field: str) -> None:
    data = _ok(client, f"/api/v1/{path}", kind)
    assert data["id"] == ident
    assert data["attack_version"] == "18.1"
    assert field in data


def test_attack_version_selects_the_release(client: TestClient) -> None:
    data = _ok(client, "/api/v1/groups/G0016?attack_version=16.1", "group")
    assert data["attack_version"] == "16.1"


def test_mappings_capability_and_frameworks(client: TestClient) -> None:
    mappings = _ok(
        client, "/api/v1/techniques/T1021.007/mappings?framework=nist_800_53", "mappings"
    )
    assert [f["framework"] for f in mappings["frameworks"]] == ["nist_800_53"]
    assert any(r["capability_id"] == "IA-05" for r in mappings["frameworks"][0]["rows"])
    capability = _ok(client, "/api/v1/capabilities/nist_800_53/ia-05", "capability")
    mapped = {
        row["attack"]["mapped_id"]
        for doc in capability
        for group in doc["mapping_types"]
        for row in group["rows"]
    }
    assert "T1021.007" in mapped
    frameworks = _ok(client, "/api/v1/frameworks", "frameworks")
    assert {"m365", "nist_800_53", "aws"} <= {f["framework"] for f in frameworks}
    m365 = _ok(client, "/api/v1/frameworks/M365", "framework")
    assert m365["framework"] == "m365"
    assert m365["capability_groups"]


def test_detections_and_one_detection(client: TestClient) -> None:
    listed = _ok(client, "/api/v1/detections?technique=T1003.001", "detections")
    assert listed["detections"]
    assert all(
        any(t.startswith("T1003.001") for t in d["techniques"]) for d in listed["detections"]
    )
    first = listed["detections"][0]["id"]
    detection = _ok(client, f"/api/v1/detections/{first.upper()}", "detection")
    assert detection["id"] == first
    assert detection["support_matrix"]
    high = _ok(client, "/api/v1/detections?severity=high%2B", "detections")["detections"]
    assert {d["severity"] for d in high} <= {"high", "critical"}


def test_coverage_of_a_group(client: TestClient) -> None:
    data = _ok(client, "/api/v1/coverage?group=G0016", "coverage")
    assert [a["id"] for a in data["profile"]["actors"]] == ["G0016"]
    techniques = {t["technique"] for t in data["techniques"]}
    assert "T1021.007" in techniques
    assert data["summary"]["techniques"] == len(techniques)


def test_attack_diff(client: TestClient) -> None:
    data = _ok(client, "/api/v1/attack/diff?old=16.1&new=18.1", "attack-diff")
    revoked = {r["ref"]["id"]: r["replaced_by"]["id"] for r in data["revoked"]}
    assert revoked["T1574.002"] == "T1574.001"


@pytest.mark.parametrize(
    ("url", "args"),
    [
        ("/api/v1/groups/G0016", ("group", "G0016")),
        (
            "/api/v1/capabilities/nist_800_53/IA-05",
            ("capability", "IA-05", "--framework", "nist_800_53"),
        ),
        ("/api/v1/frameworks/m365", ("framework", "m365")),
        ("/api/v1/attack/diff?old=16.1&new=18.1", ("attack", "diff", "16.1", "18.1")),
        ("/api/v1/coverage?group=G0016", ("coverage", "--group", "G0016")),
    ],
)
def test_same_data_as_the_cli(
    client: TestClient,
    served_home: Path,
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    args: tuple[str, ...],
) -> None:
    monkeypatch.setenv("DEFENSEMAP_HOME", str(served_home))
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.stderr
    assert client.get(url).json() == result.json()


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/techniques/T9999",
        "/api/v1/groups/G9999",
        "/api/v1/software/S9999",
        "/api/v1/campaigns/C9999",
        "/api/v1/mitigations/M9999",
        "/api/v1/tactics/TA9999",
        "/api/v1/data-components/DC9999",
        "/api/v1/detection-strategies/DET9999",
        "/api/v1/capabilities/nist_800_53/ZZ-99",
        "/api/v1/frameworks/nope",
        "/api/v1/detections/no-such-rule",
        "/api/v1/coverage?group=G9999",
        "/api/v1/groups/G0016?attack_version=9.9",
    ],
)
def test_unknown_ids_are_404_json(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404
    body = response.json()
    assert body["ok"] is False
    assert body["error"]["code"] == "not_found"
    assert body["error"]["message"]


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("/api/v1/search?q=" + "x" * 201, "q"),
        ("/api/v1/search?q=", "q"),
        ("/api/v1/search?q=apt&limit=0", "limit"),
        ("/api/v1/search?q=apt&limit=101", "limit"),
        ("/api/v1/search?q=apt&kind=planet", "kind"),
        ("/api/v1/search?q=apt&attack_version=latest", "attack_version"),
        ("/api/v1/techniques/T1021.007?attack_version=1.2.3.x", "attack_version"),
        ("/api/v1/techniques/" + "T" * 101, "technique_id"),
        ("/api/v1/techniques/T1021.007/mappings?framework=nope", "framework"),
        ("/api/v1/techniques/T1021.007/mappings?framework=%3Cscript%3E", "framework"),
        ("/api/v1/frameworks/m365?domain=pre", "domain"),
        ("/api/v1/detections?severity=severe", "severity"),
        ("/api/v1/detections?source=everything", "source"),
        ("/api/v1/detections?technique=lsass", "technique"),
        ("/api/v1/coverage", "threat profile"),
        ("/api/v1/coverage?" + "&".join(f"group=G{n:04d}" for n in range(21)), "at most 20"),
        ("/api/v1/coverage?group=G0016&kev=maybe", "kev"),
        ("/api/v1/attack/diff?old=16.1", "new"),
        ("/api/v1/attack/diff?old=18.1&new=18.1", "same"),
        ("/api/v1/attack/diff?old=16.1&new=18.1&kind=relationship", "kind"),
    ],
)
def test_bad_parameters_are_400_json_naming_them(client: TestClient, url: str, named: str) -> None:
    response = client.get(url)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["ok"] is False
    assert named in body["error"]["message"]


def test_etag_revalidates_with_304(client: TestClient) -> None:
    first = client.get("/api/v1/groups/G0016")
    etag = first.headers["etag"]
    assert "max-age" in first.headers["cache-control"]
    again = client.get("/api/v1/groups/G0016", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    other = client.get("/api/v1/groups/G0007", headers={"If-None-Match": etag})
    assert other.status_code == 200


def test_security_headers(client: TestClient) -> None:
    for url in ("/api/v1/frameworks", "/api/v1/groups/G9999"):
        headers = client.get(url).headers
        csp = headers["content-security-policy"]
        script = next(p for p in csp.split(";") if p.strip().startswith("script-src"))
        assert "'unsafe-inline'" not in script
        assert "frame-ancestors 'none'" in csp
        assert headers["x-content-type-options"] == "nosniff"


def test_token_is_required_when_configured(served_home: Path) -> None:
    token = "x" * 20
    client = TestClient(create_app(Settings(served_home), token=token))
    refused = client.get("/api/v1/frameworks")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorised"
    assert (
        client.get("/api/v1/frameworks", headers={"Authorization": "Bearer wrong"}).status_code
        == 401
    )
    with_header = client.get("/api/v1/frameworks", headers={"Authorization": f"Bearer {token}"})
    assert with_header.status_code == 200
    client.cookies.set("defensemap_token", token)
    assert client.get("/api/v1/frameworks").status_code == 200


def test_a_page_visited_with_the_token_sets_a_strict_http_only_cookie(served_home: Path) -> None:
    token = "y" * 24
    client = TestClient(create_app(Settings(served_home), token=token))
    first = client.get(f"/?token={token}")
    assert first.status_code == 200
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"defensemap_token={token};")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert first.headers["x-content-type-options"] == "nosniff"
    assert client.get("/frameworks").status_code == 200
    client.cookies.clear()
    assert client.get("/frameworks").status_code == 401


def test_openapi_lists_every_endpoint_with_a_summary(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/api/v1/status",
        "/api/v1/search",
        "/api/v1/techniques/{technique_id}",
        "/api/v1/groups/{ident}",
        "/api/v1/software/{ident}",
        "/api/v1/campaigns/{ident}",
        "/api/v1/mitigations/{ident}",
        "/api/v1/tactics/{ident}",
        "/api/v1/data-components/{ident}",
        "/api/v1/detection-strategies/{ident}",
        "/api/v1/techniques/{technique_id}/mappings",
        "/api/v1/capabilities/{framework}/{capability_id}",
        "/api/v1/frameworks",
        "/api/v1/frameworks/{framework}",
        "/api/v1/detections",
        "/api/v1/detections/{detection_id}",
        "/api/v1/coverage",
        "/api/v1/attack/diff",
    ):
        assert paths[path]["get"]["summary"], path
    assert not any(p.startswith("/groups") for p in paths)


def test_api_docs_page_describes_every_endpoint_without_outside_or_inline_script(
    client: TestClient,
) -> None:
    """Swagger UI would fetch its script from a CDN and run inline script, which the CSP
    blocks (a blank page) and an air-gapped network cannot load."""
    import lxml.html

    response = client.get("/api/docs")
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    tree = lxml.html.fromstring(response.text)
    assert not tree.xpath("//script[not(@src)]")
    assert all(src.startswith("/static/") for src in tree.xpath("//script/@src"))
    assert not tree.xpath("//*[@style]")
    headings = [" ".join(h.text_content().split()) for h in tree.xpath("//h2")]
    spec = client.get("/api/openapi.json").json()
    assert headings == [f"GET {path}" for path in sorted(spec["paths"])]
    technique = tree.xpath('//h2[.="GET /api/v1/techniques/{technique_id}"]/..')[0]
    rows = [[c.text_content() for c in r.xpath("td")] for r in technique.xpath(".//tbody/tr")]
    assert rows[0] == [
        "technique_id",
        "path",
        "string (≤ 100 characters)",
        "yes",
        "Id or exact name.",
    ]
    assert rows[1][:2] == ["attack_version", "query"] and rows[1][3] == "no"
    assert rows[1][2].startswith("string (≤ 16 characters; pattern")
