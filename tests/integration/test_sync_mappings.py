"""`defensemap sync --mappings` against a local mirror of Mappings Explorer on 127.0.0.1.

../shared/data/mappings has the repository layout the sync reads
(``<source>/mappings/<framework>/attack-<ver>/…``), so it is served as it is; mirrors that
lack or break a file are built from symlinks.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from tests.conftest import MAPPINGS_DIR
from tests.file_server import serve_directory

from defensemap.sources.mappings_release import PUBLISHED

pytestmark = pytest.mark.realdata


@pytest.fixture
def mirror(shared_data: Path) -> Iterator[str]:
    """The shared Mappings Explorer files, served as they are."""
    with serve_directory(MAPPINGS_DIR.parent) as url:
        yield url


@pytest.fixture
def make_mirror(tmp_path: Path, shared_data: Path) -> Iterator[Callable[..., str]]:
    """A mirror of symlinks to the shared files; ``skip`` leaves one out, ``broken`` replaces
    one with a truncated copy."""
    with ExitStack() as stack:

        def build(skip: str | None = None, broken: str | None = None) -> str:
            root = tmp_path / "mirror"
            for path in PUBLISHED:
                if path == skip:
                    continue
                target = root / "mappings" / path
                target.parent.mkdir(parents=True, exist_ok=True)
                if path == broken:
                    data = (MAPPINGS_DIR / path).read_bytes()
                    target.write_bytes(data[: len(data) // 2])
                else:
                    target.symlink_to(MAPPINGS_DIR / path)
            return stack.enter_context(serve_directory(root))

        yield build


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _loaded_sets(cli) -> list[tuple[str, str, str, str]]:  # type: ignore[no-untyped-def]
    result = cli("frameworks", "--json")
    if result.exit_code != 0:
        assert "no mappings are loaded" in result.stderr or "no store" in result.stderr
        return []
    return sorted(
        (f["framework"], s["framework_version"], s["attack_version"], s["domain"])
        for f in result.json()["data"]
        for s in f["sets"]
    )


def test_published_list_matches_the_shared_files(shared_data: Path) -> None:
    on_disk = {p.relative_to(MAPPINGS_DIR).as_posix() for p in MAPPINGS_DIR.rglob("*.json")}
    assert on_disk == set(PUBLISHED)
    assert len(PUBLISHED) == 33


def test_sync_mappings_imports_every_published_file(cli, home: Path, mirror: str) -> None:
    result = cli("sync", "--mappings", "--source", mirror, "--json")
    assert result.exit_code == 0, result.stderr
    document = result.json()
    assert document["ok"] is True and document["kind"] == "sync-mappings"
    outcomes = document["data"]
    assert len(outcomes) == 33
    assert {o["status"] for o in outcomes} == {"imported"}
    assert {o["framework"] for o in outcomes} == {p.split("/", 1)[0] for p in PUBLISHED}
    assert len(_loaded_sets(cli)) == 33
    assert not list(home.glob("sync-*")), "downloads must be cleaned up"


def test_sync_mappings_of_one_framework(cli, home: Path, mirror: str) -> None:
    result = cli("sync", "--mappings", "--source", mirror, "--framework", "m365", "--json")
    assert result.exit_code == 0, result.stderr
    outcomes = result.json()["data"]
    assert [(o["framework"], o["attack_version"], o["status"]) for o in outcomes] == [
        ("m365", "14.1", "imported"),
        ("m365", "16.1", "imported"),
    ]
    assert {s[0] for s in _loaded_sets(cli)} == {"m365"}
    again = cli("sync", "--mappings", "--source", mirror, "--framework", "m365", "--json")
    assert {o["status"] for o in again.json()["data"]} == {"unchanged"}


def test_sync_mappings_of_an_unknown_framework_is_bad_input(cli, home: Path) -> None:
    result = cli("sync", "--mappings", "--source", "http://127.0.0.1:9", "--framework", "iso")
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "no published mappings for iso" in line and "nist_800_53" in line


def test_a_missing_file_imports_nothing(cli, home: Path, make_mirror, mirror: str) -> None:
    # one framework loaded first: a failed sync must leave it exactly as it was
    assert cli("sync", "--mappings", "--source", mirror, "--framework", "m365").exit_code == 0
    before = _loaded_sets(cli)
    missing = PUBLISHED[-1]  # the last download, so every other file was fetched first
    result = cli("sync", "--mappings", "--source", make_mirror(skip=missing))
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "HTTP 404" in line and missing in line
    assert "defensemap import mappings" in line
    assert _loaded_sets(cli) == before
    assert not list(home.glob("sync-*"))


def test_a_broken_file_imports_nothing(cli, home: Path, make_mirror) -> None:
    broken = PUBLISHED[5]
    result = cli("sync", "--mappings", "--source", make_mirror(broken=broken))
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("error:")
    assert _loaded_sets(cli) == []
    assert not list(home.glob("sync-*"))


@pytest.mark.parametrize("source", ["closed-port", "http://defensemap-sync-test.invalid"])
def test_sync_mappings_offline_fails_fast_and_names_import(cli, home: Path, source: str) -> None:
    url = f"http://127.0.0.1:{_closed_port()}" if source == "closed-port" else source
    started = time.monotonic()
    result = cli("sync", "--mappings", "--source", url)
    assert time.monotonic() - started < 10
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert line.startswith("error:") and "defensemap import mappings" in line
    assert _loaded_sets(cli) == []
