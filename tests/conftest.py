"""Shared fixtures: upstream data in ../shared, a store loaded once per session, a CLI runner."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DEFENSEMAP_SHARED_DATA", REPO.parent / "shared" / "data"))
ATTACK_DIR = SHARED_DATA / "attack"
ENTERPRISE_18 = ATTACK_DIR / "enterprise-attack-18.1.json"
ENTERPRISE_16 = ATTACK_DIR / "enterprise-attack-16.1.json"
MOBILE_18 = ATTACK_DIR / "mobile-attack-18.1.json"
ICS_18 = ATTACK_DIR / "ics-attack-18.1.json"
ICS_18_STIX21 = ATTACK_DIR / "stix21" / "ics-attack-18.1.json"
MAPPINGS_DIR = SHARED_DATA / "mappings" / "mappings"
MAPPING_SCHEMA = SHARED_DATA / "mappings" / "schema" / "mapex-unified-data-schema.json"
GOLDEN = REPO / "tests" / "golden"


def require_shared_data() -> Path:
    """Skip locally when ../shared is absent; in CI (CI=true) its absence is a failure."""
    if not ENTERPRISE_18.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the upstream data at {SHARED_DATA}")
        pytest.skip(f"upstream data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return require_shared_data()


@pytest.fixture(scope="session")
def loaded_store_path(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """A store with enterprise 18.1 + 16.1, mobile 18.1, ICS 18.1 (STIX 2.1) and every
    Mappings Explorer file, built once."""
    from defensemap.sources.attack_stix import load_bundle
    from defensemap.sources.mappings import collect_files, load_mapping_file
    from defensemap.store.attack import ingest_attack
    from defensemap.store.db import open_store
    from defensemap.store.mappings import ingest_mappings

    path = tmp_path_factory.mktemp("store") / "defensemap.sqlite"
    store = open_store(path, write=True)
    bundles = [load_bundle(p) for p in (ENTERPRISE_18, ENTERPRISE_16, MOBILE_18, ICS_18_STIX21)]
    ingest_attack(store, bundles)
    ingest_mappings(store, [load_mapping_file(p) for p in collect_files([MAPPINGS_DIR])])
    store.close()
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data home, selected through $DEFENSEMAP_HOME."""
    path = tmp_path / "home"
    monkeypatch.setenv("DEFENSEMAP_HOME", str(path))
    return path


@pytest.fixture
def loaded_home(home: Path, loaded_store_path: Path) -> Iterator[Path]:
    """A data home holding a copy of the session store (tests may write to it)."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(loaded_store_path, home / "defensemap.sqlite")
    yield home


class CliResult:
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr

    def json(self) -> object:
        import json

        return json.loads(self.stdout)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run the real console-script entry point in-process; returns exit code and output."""
    from defensemap.cli.main import run
    from defensemap.cli.output import STATE

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr("sys.argv", ["defensemap", *args])
        monkeypatch.setenv("COLUMNS", "160")
        STATE.json = False
        STATE.home = None
        code = 0
        try:
            run()
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    return invoke
