"""Controls in place checked against the loaded mappings the way coverage judges them: each
against one mapping set of its framework (the newest, or the version it names)."""

from __future__ import annotations

from collections.abc import Iterable

from defensemap.errors import DefensemapError
from defensemap.kb.mappings import select_sets
from defensemap.kb.vocabulary import ENTERPRISE
from defensemap.model.coverage import ControlInPlace
from defensemap.model.mappings import MappingSet, capability_key
from defensemap.store import mappings as mapping_store
from defensemap.store.db import Store


def judging_set(store: Store, framework: str, framework_version: str | None) -> MappingSet:
    """The mapping set a control is judged against: the newest enterprise set of its
    framework, or the framework version it names."""
    return select_sets(
        store, framework=framework, framework_version=framework_version, domain=ENTERPRISE
    )[0]


def unknown_capabilities(store: Store, controls: Iterable[ControlInPlace]) -> list[ControlInPlace]:
    """The controls coverage would refuse, in input order: their capability id is not in the
    set they are judged against (:func:`judging_set`), or no such set is loaded."""
    known: dict[tuple[str, str | None], set[str]] = {}
    unknown = []
    for control in controls:
        group = (control.framework, control.framework_version)
        if group not in known:
            known[group] = _set_capabilities(store, *group)
        if capability_key(control.framework, control.capability_id) not in known[group]:
            unknown.append(control)
    return unknown


def _set_capabilities(store: Store, framework: str, framework_version: str | None) -> set[str]:
    try:
        chosen = judging_set(store, framework, framework_version)
    except DefensemapError:
        return set()
    rows = mapping_store.rows_for(store, [chosen.id])
    return {capability_key(framework, r.capability_id) for _, r in rows if r.capability_id}
