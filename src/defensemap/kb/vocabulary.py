"""The ATT&CK names a detection may use, from the newest enterprise release in the store:
technique ids (with their name and tactics), data components and analytics. Validation and
exports (Sentinel tactics, Elastic threat blocks) read it instead of walking the store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

from defensemap.kb.attack import tactic_order
from defensemap.kb.lookup import ReleaseView, select_releases
from defensemap.store.db import Store

ENTERPRISE = "enterprise-attack"


ATTACK_URL = "https://attack.mitre.org"


@dataclass(frozen=True)
class TacticInfo:
    id: str
    name: str
    shortname: str
    position: int

    @property
    def url(self) -> str:
        return f"{ATTACK_URL}/tactics/{self.id}/"


@dataclass(frozen=True)
class TechniqueInfo:
    id: str
    name: str
    tactics: tuple[TacticInfo, ...]
    parent: str | None
    revoked: bool
    deprecated: bool

    @property
    def url(self) -> str:
        return f"{ATTACK_URL}/techniques/{self.id.replace('.', '/')}/"


@dataclass(frozen=True)
class AttackVocabulary:
    """``release`` labels where the names come from (shown in messages), ``version`` is the
    ATT&CK version; technique tactics are in matrix order."""

    release: str
    version: str
    techniques: dict[str, TechniqueInfo]
    data_components: dict[str, str]
    analytics: frozenset[str]

    def technique(self, attack_id: str) -> TechniqueInfo | None:
        return self.techniques.get(attack_id.upper())

    def tactics(self, technique_ids: list[str]) -> list[TacticInfo]:
        """The tactics of these techniques, once each, in matrix order."""
        found = {
            tactic.id: tactic
            for technique_id in technique_ids
            if (info := self.technique(technique_id)) is not None
            for tactic in info.tactics
        }
        return sorted(found.values(), key=lambda t: t.position)

    def is_data_source(self, name: str) -> bool:
        """A data component by name (case-insensitive) or id (DC0032), or an analytic id."""
        key = name.strip()
        return (
            key.casefold() in self.data_components
            or key.upper() in self.data_components.values()
            or key.upper() in self.analytics
        )


def attack_vocabulary(store: Store, attack_version: str | None = None) -> AttackVocabulary:
    release = select_releases(store, attack_version, ENTERPRISE)[0]
    view = ReleaseView(store, release)
    order = tactic_order(view)
    tactics = {
        short: TacticInfo(obj.attack_id or "", obj.name or short, short, position)
        for short, (position, obj) in order.items()
    }
    techniques: dict[str, TechniqueInfo] = {}
    for obj in view.of_kind("technique"):
        if not obj.attack_id:
            continue
        phases = [
            p.get("phase_name")
            for p in obj.raw.get("kill_chain_phases") or []
            if isinstance(p, dict) and p.get("kill_chain_name") == "mitre-attack"
        ]
        techniques[obj.attack_id] = TechniqueInfo(
            id=obj.attack_id,
            name=obj.name or obj.attack_id,
            tactics=tuple(
                sorted(
                    (tactics[p] for p in phases if isinstance(p, str) and p in tactics),
                    key=lambda t: t.position,
                )
            ),
            parent=obj.attack_id.split(".")[0] if "." in obj.attack_id else None,
            revoked=obj.revoked,
            deprecated=obj.deprecated,
        )
    components = {
        (o.name or "").casefold(): o.attack_id or ""
        for o in view.of_kind("data-component")
        if not o.revoked and not o.deprecated
    }
    analytics = frozenset(o.attack_id for o in view.of_kind("analytic") if o.attack_id)
    return AttackVocabulary(release.label, release.version, techniques, components, analytics)


_BUNDLE_KINDS = ("tactic", "technique", "group", "software", "data-source", "mitigation")


def write_attack_bundle(store: Store, path: Path, attack_version: str | None = None) -> Path:
    """A STIX bundle of the enterprise objects tools such as pySigma's ATT&CK tag validator
    read, written from the store so they work offline with the release the user imported."""
    release = select_releases(store, attack_version, ENTERPRISE)[0]
    view = ReleaseView(store, release)
    objects = [o.raw for kind in _BUNDLE_KINDS for o in view.of_kind(kind)]
    collection = {"type": "x-mitre-collection", "x_mitre_version": release.version}
    bundle = {
        "type": "bundle",
        "id": f"bundle--defensemap-{release.version}",
        "objects": [collection, *objects],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(bundle))
    return path
