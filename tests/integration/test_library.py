"""The shipped detection library, as CI must see it: every detection validates against the
real ATT&CK data, the schema catalog, the Sigma validators and Atomic Red Team, and every
detection's own test events pass through its KQL and its Sigma logic."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import SHARED_DATA, require_shared_data

from defensemap.library.loader import content_dir, load_library

LIBRARY = content_dir() / "detections"
# The bar: T1021.007 and at least 40 further techniques.
MIN_FURTHER_TECHNIQUES = 40


def test_library_covers_the_reference_technique_and_forty_more() -> None:
    library = load_library()
    primary = {d.detection.techniques[0] for d in library.detections}
    assert len(library.for_technique("T1021.007")) >= 3
    assert len(primary - {"T1021.007"}) >= MIN_FURTHER_TECHNIQUES, sorted(primary)


def test_library_validates(cli, loaded_home: Path) -> None:
    require_shared_data()
    result = cli("content", "validate", "--atomics", str(SHARED_DATA / "atomic-red-team"), "--json")
    report = result.json()["data"]
    errors = [f"{f['path']}: [{f['check']}] {f['message']}" for f in report["findings"]]
    assert result.exit_code == 0 and report["ok"], "\n".join(errors)
    assert report["checked"] == len(list(LIBRARY.glob("*.yml")))
    assert not any("ATT&CK references not checked" in n for n in report["notes"])


@pytest.mark.parametrize("path", sorted(LIBRARY.glob("*.yml")), ids=lambda p: p.stem)
def test_detection_passes_its_own_tests(path: Path) -> None:
    from defensemap.engine.testing import run_detection_tests
    from defensemap.sources.detections import load_detection

    result = run_detection_tests(load_detection(path), timeout=60)
    failures = [
        f"{c.kind} {c.name!r} [{c.language}]: {c.message}" for c in result.cases if not c.ok
    ]
    assert result.ok, "\n".join(failures + result.disagreements + result.errors)
    assert result.language_ok("kql") and result.language_ok("sigma")
