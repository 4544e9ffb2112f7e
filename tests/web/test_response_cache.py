"""Rendered pages are reused while the data stays the same, and never outlive it: a
re-imported store shows at once, a changed detection file within a second."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import REPO

from defensemap.config import Settings
from defensemap.web.app import create_app
from defensemap.web.context import LIBRARY_CHECK_SECONDS

FIXTURE = REPO / "tests" / "fixtures" / "detections" / "cloud_cli_login.yml"


@pytest.fixture
def content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "content" / "detections"
    folder.mkdir(parents=True)
    shutil.copy(FIXTURE, folder / "one.yml")
    monkeypatch.setenv("DEFENSEMAP_CONTENT", str(folder.parent))
    return folder


@pytest.fixture
def copied_home(tmp_path: Path, loaded_store_path: Path) -> Path:
    """A data home holding a copy of the session store."""
    path = tmp_path / "home"
    path.mkdir()
    shutil.copy(loaded_store_path, path / "defensemap.sqlite")
    return path


def test_a_changed_library_is_served_within_a_second(content: Path, copied_home: Path) -> None:
    client = TestClient(create_app(Settings(copied_home)))
    first = client.get("/api/v1/detections")
    again = client.get("/api/v1/detections")
    assert first.status_code == again.status_code == 200
    assert first.content == again.content and first.headers["etag"] == again.headers["etag"]
    assert (
        client.get(
            "/api/v1/detections", headers={"If-None-Match": first.headers["etag"]}
        ).status_code
        == 304
    )
    listed = {"If-None-Match": f'"other", W/{first.headers["etag"]}'}
    assert client.get("/api/v1/detections", headers=listed).status_code == 304
    renamed = FIXTURE.read_text().replace(
        "5b0f8a8e-3c1e-4d5e-9a6f-2f4b7c9d1e01", "5b0f8a8e-3c1e-4d5e-9a6f-2f4b7c9d1e02"
    )
    (content / "two.yml").write_text(
        renamed.replace("Cloud CLI interactive login", "Second cloud CLI login")
    )
    time.sleep(LIBRARY_CHECK_SECONDS)
    after = client.get("/api/v1/detections")
    ids = {d["id"] for d in after.json()["data"]["detections"]}
    assert "5b0f8a8e-3c1e-4d5e-9a6f-2f4b7c9d1e02" in ids
    assert after.headers["etag"] != first.headers["etag"]


def test_security_headers_are_on_cached_responses_too(content: Path, copied_home: Path) -> None:
    client = TestClient(create_app(Settings(copied_home)))
    for _ in range(2):
        response = client.get("/")
        assert response.status_code == 200
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"


def test_a_re_imported_store_is_served_at_once(
    content: Path, copied_home: Path, tmp_path: Path
) -> None:
    from tests.conftest import MOBILE_18

    from defensemap.sources.attack_stix import load_bundle
    from defensemap.store.attack import ingest_attack
    from defensemap.store.db import open_store

    client = TestClient(create_app(Settings(copied_home)))
    assert client.get("/api/v1/techniques/T1021.007").status_code == 200
    mobile_only = tmp_path / "mobile.sqlite"
    store = open_store(mobile_only, write=True)
    ingest_attack(store, [load_bundle(MOBILE_18)])
    store.close()
    shutil.move(mobile_only, copied_home / "defensemap.sqlite")
    assert client.get("/api/v1/techniques/T1021.007").status_code == 404


def test_a_broken_or_removed_library_leaves_every_page_working(
    content: Path, copied_home: Path
) -> None:
    client = TestClient(create_app(Settings(copied_home)))
    assert "1 detections in the library" in client.get("/").text
    assert client.get("/techniques/T1021.007").status_code == 200
    (content / "broken.yml").write_text("title: [unclosed\n")
    time.sleep(LIBRARY_CHECK_SECONDS)
    home = client.get("/")
    assert home.status_code == 200 and "the detection library did not load" in home.text
    assert "broken.yml" in home.text
    for url in ("/techniques/T1021.007", "/api/v1/techniques/T1021.007", "/groups/G0016"):
        assert client.get(url).status_code == 200, url
    shutil.rmtree(content)
    time.sleep(LIBRARY_CHECK_SECONDS)
    assert client.get("/techniques/T1021.007").status_code == 200
    assert "no detection library at" in client.get("/").text


def test_head_answers_like_get_without_the_body(content: Path, copied_home: Path) -> None:
    client = TestClient(create_app(Settings(copied_home)))
    for _ in range(2):  # rendered (by the HEAD), then kept
        head = client.head("/techniques/T1021.007")
        get = client.get("/techniques/T1021.007")
        assert head.status_code == get.status_code == 200
        assert head.content == b""
        assert head.headers["etag"] == get.headers["etag"]
        assert head.headers["content-length"] == str(len(get.content))
    assert client.head("/techniques/T9999").status_code == 404
    assert client.head("/static/style.css").status_code == 200
