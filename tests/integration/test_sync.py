"""`defensemap sync` against a local mirror with the attack-stix-data layout on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import ENTERPRISE_18, ICS_18_STIX21, MOBILE_18
from tests.file_server import serve_directory


@pytest.fixture
def mirror(tmp_path: Path, shared_data: Path) -> Iterator[str]:
    """Serve index.json plus <domain>/<domain>-<version>.json from ../shared/data/attack."""
    root = tmp_path / "mirror"
    for domain, source in (
        ("enterprise-attack", ENTERPRISE_18),
        ("mobile-attack", MOBILE_18),
        ("ics-attack", ICS_18_STIX21),
    ):
        (root / domain).mkdir(parents=True)
        (root / domain / f"{domain}-18.1.json").symlink_to(source)
    shutil.copy(shared_data / "attack" / "stix21" / "index.json", root / "index.json")
    with serve_directory(root) as url:
        yield url


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sync_one_domain_reads_version_from_the_index(cli, home: Path, mirror: str) -> None:
    result = cli("sync", "--source", mirror, "--domain", "ics", "--json")
    assert result.exit_code == 0, result.stderr
    outcome = result.json()["data"]
    assert [(o["domain"], o["version"], o["status"]) for o in outcome] == [
        ("ics-attack", "18.1", "imported")
    ]
    assert cli("technique", "T0800", "--json").json()["data"]["domain"] == "ics-attack"
    assert not list(home.glob("sync-*")), "downloads must be cleaned up"


def test_sync_all_domains_then_again_is_idempotent(cli, home: Path, mirror: str) -> None:
    first = cli("sync", "--source", mirror, "--json")
    assert first.exit_code == 0, first.stderr
    assert {(o["domain"], o["status"]) for o in first.json()["data"]} == {
        ("enterprise-attack", "imported"),
        ("mobile-attack", "imported"),
        ("ics-attack", "imported"),
    }
    again = cli("sync", "--source", mirror, "--json")
    assert {o["status"] for o in again.json()["data"]} == {"unchanged"}
    assert cli("technique", "T1021.007", "--json").json()["data"]["name"] == "Cloud Services"


def test_sync_of_a_version_the_mirror_lacks_fails_cleanly(cli, home: Path, mirror: str) -> None:
    result = cli("sync", "--source", mirror, "--domain", "enterprise", "--attack-version", "17.0")
    assert result.exit_code == 1
    assert "HTTP 404" in result.stderr
    assert (
        not (home / "defensemap.sqlite").exists()
        or cli("attack", "versions", "--json").json()["data"] == []
    )


@pytest.mark.parametrize("source", ["closed-port", "http://defensemap-sync-test.invalid"])
def test_sync_without_network_fails_fast_and_names_import(cli, home: Path, source: str) -> None:
    url = f"http://127.0.0.1:{_closed_port()}" if source == "closed-port" else source
    started = time.monotonic()
    result = cli("sync", "--source", url)
    assert time.monotonic() - started < 10
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert line.startswith("error:") and "defensemap import attack" in line
    assert len(line.splitlines()) == 1


def test_index_lists_versions_by_domain(shared_data: Path) -> None:
    from defensemap.sources.attack_release import _parse_index, choose

    index = json.loads((shared_data / "attack" / "stix21" / "index.json").read_text())
    files = _parse_index(index, "http://mirror", "http://mirror/index.json")
    newest = choose(files, [], None)
    assert [(f.domain, f.version) for f in newest] == [
        ("enterprise-attack", "18.1"),
        ("mobile-attack", "18.1"),
        ("ics-attack", "18.1"),
    ]
    assert newest[0].url == "http://mirror/enterprise-attack/enterprise-attack-18.1.json"
    assert [f.version for f in choose(files, ["enterprise-attack"], "16.1")] == ["16.1"]
