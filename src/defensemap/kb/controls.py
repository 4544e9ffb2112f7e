"""Controls in place checked against the loaded mappings: which capability ids no mapping
set of their framework (and version, when given) knows."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from defensemap.model.coverage import ControlInPlace
from defensemap.model.mappings import MappingSet
from defensemap.store import coverage as coverage_store
from defensemap.store import mappings as mapping_store
from defensemap.store.db import Store

_LEADING_ZEROS = re.compile(r"(?<!\d)0+(?=\d)")


def capability_key(framework: str, capability_id: str) -> str:
    """How a capability id compares: case-insensitive, and for NIST 800-53 without leading
    zeros, because the newest files write ``IA-05`` where older ones (and people) write
    ``IA-5``."""
    key = capability_id.strip().casefold()
    return _LEADING_ZEROS.sub("", key) if framework == "nist_800_53" else key


def _version_key(version: str) -> str:
    """``REV5``/``rev5``, ``07/18/2025``/``07.18.2025`` name the same version."""
    return "".join(ch for ch in version.casefold() if ch.isalnum())


def unknown_capabilities(store: Store, controls: Iterable[ControlInPlace]) -> list[ControlInPlace]:
    """The controls whose capability id is in no loaded mapping set of their framework (of
    their framework version when they name one), in input order."""
    known = _known_capabilities(store, mapping_store.list_sets(store))
    unknown = []
    for control in controls:
        key = capability_key(control.framework, control.capability_id)
        versions = known.get((control.framework, key), set())
        wanted = control.framework_version
        if not versions or (wanted is not None and _version_key(wanted) not in versions):
            unknown.append(control)
    return unknown


def _known_capabilities(store: Store, sets: list[MappingSet]) -> dict[tuple[str, str], set[str]]:
    """(framework, capability key) → the framework versions that map it."""
    by_set = {s.id: s.info for s in sets}
    known: dict[tuple[str, str], set[str]] = defaultdict(set)
    for set_id, capability in coverage_store.mapped_capabilities(store):
        info = by_set[set_id]
        key = capability_key(info.framework, capability)
        known[(info.framework, key)].add(_version_key(info.framework_version))
    return known
