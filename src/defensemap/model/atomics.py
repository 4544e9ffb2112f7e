"""Atomic Red Team tests, indexed by GUID: detections name the tests that make them fire,
validation checks the names, coverage plans purple-team checks with them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AtomicTest:
    guid: str
    name: str
    technique: str
    platforms: tuple[str, ...]


@dataclass(frozen=True)
class AtomicIndex:
    tests: dict[str, AtomicTest]

    def find(self, guid: str) -> AtomicTest | None:
        return self.tests.get(guid.strip().lower())

    def for_technique(self, technique: str) -> list[AtomicTest]:
        return [t for t in self.tests.values() if t.technique == technique.upper()]
