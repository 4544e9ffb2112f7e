"""Atomic Red Team tests (the ``atomics/T####/T####.yaml`` layout): an index by GUID, so
detections can name the tests that make them fire and validation can check the names."""

from __future__ import annotations

from pathlib import Path

from defensemap.errors import SourceError, SourceLocation
from defensemap.model.atomics import AtomicIndex, AtomicTest
from defensemap.sources.yamlfiles import load_yaml


def load_atomics(root: Path) -> AtomicIndex:
    """Every test of every ``T*.yaml`` under ``root`` (the repository or its atomics folder)."""
    folder = root / "atomics" if (root / "atomics").is_dir() else root
    files = sorted(folder.glob("T*/T*.yaml"))
    if not files:
        raise SourceError(
            "no Atomic Red Team technique files (atomics/T####/T####.yaml) found",
            location=SourceLocation(path=str(root)),
            hint="point at a checkout of redcanaryco/atomic-red-team",
        )
    tests: dict[str, AtomicTest] = {}
    for path in files:
        for test in _tests_of(path):
            tests[test.guid] = test
    return AtomicIndex(tests)


def _tests_of(path: Path) -> list[AtomicTest]:
    data = load_yaml(path.read_text(encoding="utf-8"), path)
    if not isinstance(data, dict):
        return []
    technique = str(data.get("attack_technique") or path.stem).upper()
    found = []
    for item in data.get("atomic_tests") or []:
        guid = item.get("auto_generated_guid") if isinstance(item, dict) else None
        if isinstance(guid, str):
            platforms = tuple(str(p) for p in item.get("supported_platforms") or [])
            found.append(AtomicTest(guid.lower(), str(item.get("name", "")), technique, platforms))
    return found
