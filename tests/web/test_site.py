"""`defensemap build-site`: every page as OUT/<path>/index.html, links under --base-url, a
prebuilt search index, and the same bytes on every build."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import orjson
import pytest
from tests.attack_bundles import small_bundle, write_bundle
from tests.conftest import REPO

from defensemap.config import Settings
from defensemap.errors import InputError
from defensemap.web.site import Entry, page_file, routed, site_entries, static_app

DETECTION = "t1021.001-rdp-logon-new-account-host-pair.yml"
DETECTION_ID = "e4289898-0256-4813-8deb-a90a6545099c"


@pytest.fixture
def small_home(home: Path, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> Path:  # type: ignore[no-untyped-def]
    """The hand-made bundle (T1021, T1021.001, TA0008) and a one-detection library."""
    bundle = write_bundle(tmp_path / "enterprise-attack-18.1.json", small_bundle())
    assert cli("import", "attack", str(bundle)).exit_code == 0
    content = tmp_path / "content" / "detections"
    content.mkdir(parents=True)
    shutil.copy(REPO / "content" / "detections" / DETECTION, content / DETECTION)
    monkeypatch.setenv("DEFENSEMAP_CONTENT", str(content.parent))
    return home


def _tree(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


def test_build_site_writes_every_page_under_its_path(small_home: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "site"
    result = cli("build-site", str(out), "--base-url", "https://docs.example/dm/", "--jobs", "1")
    assert result.exit_code == 0, result.stderr
    page = out / "techniques" / "T1021.001" / "index.html"
    html = page.read_text(encoding="utf-8")
    assert "Remote Desktop Protocol" in html
    assert 'href="https://docs.example/dm/static/style.css"' in html
    assert '<script src="https://docs.example/dm/static/static-search.js" defer>' in html
    assert 'href="/' not in html  # every link is under the base URL
    assert '<a href="https://docs.example/dm/techniques/T1021">Remote Services</a>' in html
    assert (out / "techniques" / "T1021" / "index.html").is_file()
    assert (out / "index.html").is_file()
    assert (out / "static" / "style.css").is_file()
    assert (out / "static" / "static-search.js").is_file()
    assert (out / "404.html").is_file()
    index = orjson.loads((out / "static" / "search-index.json").read_bytes())["entries"]
    assert {"id": "T1021.001", "name": "Remote Desktop Protocol", "kind": "technique"} in index
    assert (out / "detections" / DETECTION_ID / "index.html").is_file()
    assert DETECTION_ID in [e["id"] for e in index]
    assert "pages" in result.stderr


def test_build_site_is_deterministic_and_replaces_a_previous_build(
    small_home: Path, tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "site"
    assert cli("build-site", str(out), "--jobs", "1").exit_code == 0
    first = _tree(out)
    (out / "stale.html").write_text("left over")
    assert cli("build-site", str(out), "--jobs", "2").exit_code == 0
    assert _tree(out) == first


def test_build_site_refuses_a_directory_that_is_not_a_site(
    small_home: Path, tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = cli("build-site", str(out))
    assert result.exit_code == 2
    assert "not empty" in result.stderr
    assert (out / "notes.txt").read_text() == "keep me"


def test_page_file_maps_urls_and_refuses_traversal(tmp_path: Path) -> None:
    assert page_file(tmp_path, "/techniques/T1021.007") == (
        tmp_path / "techniques" / "T1021.007" / "index.html"
    )
    assert page_file(tmp_path, "/") == tmp_path / "index.html"
    assert page_file(tmp_path, "/capabilities/veris/action.hacking.variety.Brute%20force") == (
        tmp_path / "capabilities" / "veris" / "action.hacking.variety.Brute force" / "index.html"
    )
    with pytest.raises(InputError):
        page_file(tmp_path, "/detections/../../etc")


def test_only_urls_a_route_answers_are_rendered(home: Path) -> None:
    app = static_app(Settings(home), "")
    kept, absent = routed(app, [Entry("/"), Entry("/no-such-section/x")])
    assert [e.url for e in kept] == ["/"]
    assert absent == ["/no-such-section/x"]


@pytest.mark.realdata
def test_site_lists_every_loaded_technique_and_capability(loaded_store_path: Path) -> None:
    from defensemap.library.loader import Library
    from defensemap.store.db import open_store

    store = open_store(loaded_store_path)
    try:
        entries = site_entries(store, Library())
        older = [e.url for e in site_entries(store, Library(), "16.1")]
    finally:
        store.close()
    urls = [e.url for e in entries]
    assert urls == sorted(set(urls))
    techniques = [e for e in entries if e.kind == "technique"]
    assert len(techniques) > 600  # 18.1: sub-techniques included, revoked ones left out
    assert "/techniques/T1021.007" in urls
    assert "/techniques/T1021" in urls
    assert "/capabilities/nist_800_53/IA-05" in urls
    assert "/frameworks/m365" in urls
    assert "/groups/G0016" in urls
    assert "/techniques/T1629" in urls  # mobile 18.1: Impair Defenses
    assert "/techniques/T0865" in urls  # ICS 18.1: Spearphishing Attachment
    apt28 = next(e for e in entries if e.url == "/groups/G0007")  # enterprise and mobile
    assert apt28.name == "APT28" and urls.count("/groups/G0007") == 1
    assert "/techniques/T1021.007" in older and "/techniques/T1629" not in older  # no mobile 16.1
    cap = next(e for e in entries if e.url == "/capabilities/nist_800_53/IA-05")
    assert cap.indexed()["framework"] == "nist_800_53"


def test_a_site_of_an_older_release_without_forms_a_static_host_cannot_answer(
    small_home: Path, tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    older = write_bundle(tmp_path / "enterprise-attack-16.1.json", small_bundle(" (old)"))
    assert cli("import", "attack", str(older)).exit_code == 0
    out = tmp_path / "site"
    result = cli("build-site", str(out), "--attack-version", "16.1", "--jobs", "1")
    assert result.exit_code == 0, result.stderr
    html = (out / "techniques" / "T1021.001" / "index.html").read_text(encoding="utf-8")
    assert "Remote Desktop Protocol (old)" in html
    assert "This site shows ATT&amp;CK 16.1. Other loaded releases (18.1)" in html
    assert "?attack_version=" not in html and "<select" not in html
    for listing in ("coverage", "diff", "detections"):
        page = (out / listing / "index.html").read_text(encoding="utf-8")
        assert "needs the live server" in page, listing
        assert '<form class="filters"' not in page, listing
    index = orjson.loads((out / "static" / "search-index.json").read_bytes())["entries"]
    assert {"id": "T1021.001", "name": "Remote Desktop Protocol (old)", "kind": "technique"} in (
        index
    )
    refused = cli("build-site", str(out), "--attack-version", "9.9")
    assert refused.exit_code != 0 and "9.9" in refused.stderr
    assert (out / "techniques" / "T1021.001" / "index.html").is_file(), "nothing was deleted"
