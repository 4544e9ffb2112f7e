"""Threat profiles: the techniques the adversaries an organisation worries about use, and the
Atomic Red Team tests that exercise a technique.

Groups, campaigns and software bring ATT&CK's procedure examples (their ``uses``
relationships to techniques, as plain text); tactics, platforms, Navigator layers and
exploited CVEs (the KEV mappings) are selections of techniques. Everything is resolved on one
enterprise release from one index of it, so a profile of dozens of groups costs a few batch
queries, not one lookup per technique.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from defensemap.errors import DefensemapError, InputError, NotFoundError, SourceLocation, StoreError
from defensemap.kb.lookup import MAX_REVOCATION_HOPS, select_releases
from defensemap.kb.mappings import MAPPINGS_HINT, select_sets
from defensemap.model.atomics import AtomicIndex
from defensemap.model.attack import Release
from defensemap.model.citations import CITATION_RE
from defensemap.model.coverage import (
    ActorKind,
    AtomicCheck,
    Procedure,
    ThreatActor,
    ThreatProfile,
)
from defensemap.model.mappings import NON_MAPPABLE, MappingSet, mapping_type_label
from defensemap.sources.navigator_layer import Layer, LayerEntry, load_layer
from defensemap.store import mappings as mapping_store
from defensemap.store.db import Store

ENTERPRISE = "enterprise-attack"
KEV = "kev"
SEARCH_HINT = "look names up with `defensemap search NAME`"
_LINK_RE = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:])")

# One JSON array per object: [aliases, software aliases, platforms, kill chain, shortname].
_INDEX_SQL = (
    "SELECT stix_id, kind, attack_id, name, revoked, deprecated,"
    " json_extract(raw, '$.aliases', '$.x_mitre_aliases', '$.x_mitre_platforms',"
    " '$.kill_chain_phases', '$.x_mitre_shortname') AS fields"
    " FROM attack_object WHERE release_id = ?"
    " AND kind IN ('technique', 'tactic', 'group', 'campaign', 'software')"
)


@dataclass(frozen=True)
class _Entry:
    """What resolving a profile needs of one ATT&CK object."""

    stix_id: str
    kind: str
    attack_id: str
    name: str
    revoked: bool
    deprecated: bool
    aliases: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    phases: tuple[str, ...] = ()
    shortname: str = ""

    @property
    def active(self) -> bool:
        return not self.revoked and not self.deprecated

    @property
    def label(self) -> str:
        return f"{self.attack_id} {self.name}"


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _phases(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(
        str(p["phase_name"])
        for p in value
        if isinstance(p, dict) and p.get("kill_chain_name") == "mitre-attack"
    )


def _entry(row: sqlite3.Row) -> _Entry:
    aliases, software_aliases, platforms, phases, shortname = orjson.loads(row["fields"])
    return _Entry(
        stix_id=row["stix_id"],
        kind=row["kind"],
        attack_id=row["attack_id"] or "",
        name=row["name"] or "",
        revoked=bool(row["revoked"]),
        deprecated=bool(row["deprecated"]),
        aliases=_strings(aliases) or _strings(software_aliases),
        platforms=_strings(platforms),
        phases=_phases(phases),
        shortname=shortname if isinstance(shortname, str) else "",
    )


class _ReleaseIndex:
    """Techniques, tactics, groups, campaigns and software of one release, read in one query,
    with the ``revoked-by`` links to follow replaced ids."""

    def __init__(self, store: Store, release: Release) -> None:
        self.store = store
        self.release = release
        self.entries = {
            row["stix_id"]: _entry(row) for row in store.conn.execute(_INDEX_SQL, (release.id,))
        }
        self.revoked_by: dict[str, str] = dict(
            store.conn.execute(
                "SELECT source_ref, target_ref FROM attack_relationship"
                " WHERE release_id = ? AND relationship_type = 'revoked-by' AND source_ref IN"
                " (SELECT stix_id FROM attack_object WHERE release_id = ? AND revoked = 1)",
                (release.id, release.id),
            ).fetchall()
        )
        self.techniques: dict[str, _Entry] = {}
        for entry in self.of_kind("technique"):
            known = self.techniques.get(entry.attack_id.upper())
            if known is None or (known.revoked and not entry.revoked):
                self.techniques[entry.attack_id.upper()] = entry

    def of_kind(self, kind: str) -> list[_Entry]:
        return [e for e in self.entries.values() if e.kind == kind and e.attack_id]

    def active_techniques(self) -> list[_Entry]:
        return [e for e in self.of_kind("technique") if e.active]

    def find(self, kind: str, ident: str) -> list[_Entry]:
        """Objects of ``kind`` whose id, else name, else an alias (or a tactic's shortname)
        is ``ident``, case-insensitively."""
        key = ident.strip().casefold()
        pool = self.of_kind(kind)
        for matches in (
            lambda e: e.attack_id.casefold() == key,
            lambda e: e.name.casefold() == key,
            lambda e: key in {a.casefold() for a in (*e.aliases, e.shortname) if a},
        ):
            found = [e for e in pool if matches(e)]
            if found:
                return found
        return []

    def current(self, entry: _Entry) -> _Entry | None:
        """``entry``, or what it was revoked by (followed through a chain of revocations)."""
        for _ in range(MAX_REVOCATION_HOPS):
            if not entry.revoked:
                return entry
            replacement = self.entries.get(self.revoked_by.get(entry.stix_id, ""))
            if replacement is None:
                return None
            entry = replacement
        return None


@dataclass
class _Builder:
    """Collects actors and their techniques in the order given, plus what could not be
    resolved; one procedure per actor and technique (texts of duplicates are joined)."""

    index: _ReleaseIndex
    actors: dict[str, ThreatActor] = field(default_factory=dict)
    uses: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add_actor(self, actor: ThreatActor) -> bool:
        """False when the actor is already in the profile (asked twice, by id and name)."""
        if actor.id in self.actors:
            return False
        self.actors[actor.id] = actor
        self.uses[actor.id] = {}
        return True

    def add(self, actor_id: str, technique: _Entry, description: str) -> None:
        texts = self.uses[actor_id].setdefault(technique.attack_id, [])
        if description not in texts:
            texts.append(description)

    def add_technique(self, actor_id: str, entry: _Entry, description: str) -> None:
        """Count ``entry`` for the actor: a revoked technique as its replacement, a
        deprecated one not at all (both noted)."""
        current = self.index.current(entry)
        actor = self.actors[actor_id].name
        if current is None or current.deprecated:
            self.notes.append(
                f"{entry.label} ({actor}) is {'deprecated' if current else 'revoked'} in "
                f"ATT&CK {self.index.release.version}: left out"
            )
            return
        if current is not entry:
            self.notes.append(
                f"{entry.label} ({actor}) was revoked by {current.label}: counted as "
                f"{current.attack_id}"
            )
        self.add(actor_id, current, description)

    def unknown_name(self, what: str, ident: str, why: str = "") -> None:
        self.unknown.append(f"{what} {ident!r}{f' ({why})' if why else ''}")

    def profile(self) -> ThreatProfile:
        if self.unknown:
            hints = dict.fromkeys([SEARCH_HINT, *self.hints])
            raise NotFoundError(
                f"not found in ATT&CK {self.index.release.label}: {', '.join(self.unknown)}",
                hint="; ".join(hints),
            )
        procedures = tuple(
            Procedure(actor_id, technique, "; ".join(texts))
            for actor_id, techniques in self.uses.items()
            for technique, texts in sorted(techniques.items())
        )
        return ThreatProfile(tuple(self.actors.values()), procedures, tuple(self.notes))


def plain_text(text: str | None) -> str:
    """ATT&CK markdown as one line of text: links keep their label, citations go."""
    flat = CITATION_RE.sub("", _LINK_RE.sub(r"\1", text or ""))
    return _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(flat.split()))


# --- groups, campaigns, software ----------------------------------------------------------


def _resolve_actor(builder: _Builder, kind: str, ident: str) -> _Entry | None:
    """The object a user means: current ones before revoked ones (followed to their
    replacement, noted), non-deprecated before deprecated; an alias shared by several
    objects is reported as ambiguous."""
    found = builder.index.find(kind, ident)
    live = [e for e in found if not e.revoked]
    followed = live or [c for e in found if (c := builder.index.current(e)) is not None]
    candidates = {e.stix_id: e for e in followed if e.active} or {e.stix_id: e for e in followed}
    if not candidates:
        builder.unknown_name(kind, ident)
        return None
    if len(candidates) > 1:
        choices = ", ".join(sorted(e.label for e in candidates.values()))
        builder.unknown_name(kind, ident, f"ambiguous: {choices}; pass the id")
        return None
    entry = next(iter(candidates.values()))
    if not live:
        builder.notes.append(f"{found[0].label} was revoked by {entry.label}: using it")
    if entry.deprecated:
        builder.notes.append(
            f"{entry.label} is deprecated in ATT&CK {builder.index.release.version}"
        )
    return entry


def _actor_relationships(
    store: Store, release: Release, entries: Sequence[_Entry]
) -> list[tuple[str, str, str, str | None]]:
    """Active ``uses`` and ``attributed-to`` relationships from ``entries``, in one query."""
    if not entries:
        return []
    marks = ",".join("?" * len(entries))
    rows = store.conn.execute(
        "SELECT source_ref, target_ref, relationship_type, description FROM attack_relationship"
        " WHERE release_id = ? AND revoked = 0 AND deprecated = 0"
        f" AND relationship_type IN ('uses', 'attributed-to') AND source_ref IN ({marks})"
        " ORDER BY stix_id",
        (release.id, *(e.stix_id for e in entries)),
    ).fetchall()
    return [tuple(row) for row in rows]


def _attribution(index: _ReleaseIndex, campaign: _Entry, links: list[str]) -> str:
    groups = sorted(
        c.label
        for ref in links
        if (e := index.entries.get(ref)) is not None and (c := index.current(e)) is not None
    )
    return f"{campaign.name} (attributed to {', '.join(groups)})" if groups else campaign.name


def _add_attack_actors(builder: _Builder, wanted: Sequence[tuple[ActorKind, str]]) -> None:
    """Groups, campaigns and software with the techniques each uses directly (a campaign's
    attributed group is named, its techniques are not added)."""
    index = builder.index
    chosen = [(kind, e) for kind, ident in wanted if (e := _resolve_actor(builder, kind, ident))]
    uses: dict[str, list[tuple[str, str | None]]] = {}
    attributed: dict[str, list[str]] = {}
    for source, target, rel_type, text in _actor_relationships(
        index.store, index.release, [e for _, e in chosen]
    ):
        if rel_type == "attributed-to":
            attributed.setdefault(source, []).append(target)
        else:
            uses.setdefault(source, []).append((target, text))
    for kind, entry in chosen:
        name = entry.name
        if kind == "campaign":
            name = _attribution(index, entry, attributed.get(entry.stix_id, []))
        if not builder.add_actor(ThreatActor(entry.attack_id, name, kind)):
            continue
        for target, text in uses.get(entry.stix_id, []):
            technique = index.entries.get(target)
            if technique is not None and technique.kind == "technique":
                builder.add_technique(entry.attack_id, technique, plain_text(text))


# --- tactics and platforms ----------------------------------------------------------------


def _add_tactics(builder: _Builder, tactics: Sequence[str]) -> None:
    for ident in tactics:
        found = [e for e in builder.index.find("tactic", ident) if e.active]
        if not found:
            builder.unknown_name("tactic", ident)
            continue
        tactic = found[0]
        if not builder.add_actor(ThreatActor(tactic.attack_id, tactic.name, "tactic")):
            continue
        text = f"all techniques of tactic {tactic.label}"
        for technique in builder.index.active_techniques():
            if tactic.shortname in technique.phases:
                builder.add(tactic.attack_id, technique, text)


def _add_platforms(builder: _Builder, platforms: Sequence[str]) -> None:
    techniques = builder.index.active_techniques()
    spelled = {p.casefold(): p for t in techniques for p in t.platforms}
    for ident in platforms:
        platform = spelled.get(ident.strip().casefold())
        if platform is None:
            builder.unknown_name("platform", ident)
            builder.hints.append(f"platforms: {', '.join(sorted(spelled.values()))}")
            continue
        if not builder.add_actor(ThreatActor(platform, platform, "platform")):
            continue
        text = f"all techniques of platform {platform}"
        for technique in techniques:
            if platform in technique.platforms:
                builder.add(platform, technique, text)


# --- Navigator layers ---------------------------------------------------------------------


def _selected(entries: Sequence[LayerEntry]) -> list[LayerEntry]:
    """Enabled entries scored above 0; every enabled one when the layer has no scores."""
    enabled = [e for e in entries if e.enabled]
    if all(e.score is None for e in entries):
        return enabled
    return [e for e in enabled if e.score is not None and e.score > 0]


def _layer_text(layer: Layer, entry: LayerEntry) -> str:
    if entry.comment.strip():
        return entry.comment.strip()
    if entry.score is None:
        return f"selected in layer {layer.name}"
    return f"score {entry.score:g} in layer {layer.name}"


def _add_layer(builder: _Builder, path: Path) -> None:
    layer = load_layer(path)
    if layer.domain != ENTERPRISE:
        raise InputError(
            f"the layer is for {layer.domain}; threat profiles use enterprise ATT&CK",
            location=SourceLocation(path=str(path)),
            hint="export the layer from the Enterprise matrix of the Navigator",
        )
    actor_id = path.name if path.name not in builder.actors else str(path)
    if not builder.add_actor(ThreatActor(actor_id, layer.name, "layer")):
        return
    for entry in _selected(layer.techniques):
        technique = builder.index.techniques.get(entry.technique_id.upper())
        if technique is None:
            builder.unknown_name("technique", entry.technique_id, f"layer {path.name}")
        else:
            builder.add_technique(actor_id, technique, _layer_text(layer, entry))


# --- exploited vulnerabilities (KEV mappings) ---------------------------------------------


def _kev_set(store: Store) -> MappingSet:
    """The newest enterprise KEV mapping set; none loaded is a store problem, not bad input."""
    try:
        return select_sets(store, framework=KEV, domain=ENTERPRISE)[0]
    except DefensemapError as exc:
        raise StoreError(
            "no KEV mappings are loaded (needed for --cve/--kev)", hint=MAPPINGS_HINT
        ) from exc


def _cve_key(cve: str) -> tuple[int, ...]:
    return tuple(int(p) for p in cve.split("-")[1:] if p.isdecimal())


def _add_cves(builder: _Builder, store: Store, cves: Sequence[str], every: bool) -> None:
    """Each CVE as an actor whose procedures are the techniques KEV maps it to, the mapping
    type (exploitation technique, primary or secondary impact) as the text."""
    kev = _kev_set(store)
    rows = [
        row
        for _, row in mapping_store.rows_for(store, [kev.id])
        if row.capability_id and row.attack_object_id and row.mapping_type != NON_MAPPABLE
    ]
    spelled: dict[str, tuple[str, str]] = {}
    for row in rows:
        cve_id = row.capability_id or ""
        spelled.setdefault(cve_id.casefold(), (cve_id, row.capability_description or cve_id))
    wanted = [*cves, *(sorted((i for i, _ in spelled.values()), key=_cve_key) if every else [])]
    for cve in wanted:
        if cve.strip().casefold() not in spelled:
            builder.unknown_name("CVE", cve, f"not in KEV {kev.info.framework_version}")
        else:
            builder.add_actor(ThreatActor(*spelled[cve.strip().casefold()], "cve"))
    for row in rows:
        cve_id, _ = spelled[(row.capability_id or "").casefold()]
        if cve_id in builder.actors:
            _add_kev_row(builder, cve_id, row.attack_object_id or "", kev, row.mapping_type)


def _add_kev_row(
    builder: _Builder, cve_id: str, technique_id: str, kev: MappingSet, mapping_type: str
) -> None:
    technique = builder.index.techniques.get(technique_id.upper())
    if technique is None:
        builder.notes.append(
            f"{cve_id}: {technique_id} (KEV, mapped on ATT&CK {kev.info.attack_version}) is not "
            f"in ATT&CK {builder.index.release.version}: left out"
        )
        return
    builder.add_technique(cve_id, technique, mapping_type_label(mapping_type))


# --- the profile --------------------------------------------------------------------------


def resolve_profile(
    store: Store,
    *,
    groups: Sequence[str] = (),
    campaigns: Sequence[str] = (),
    software: Sequence[str] = (),
    tactics: Sequence[str] = (),
    platforms: Sequence[str] = (),
    layers: Sequence[Path | str] = (),
    cves: Sequence[str] = (),
    kev: bool = False,
    attack_version: str | None = None,
) -> ThreatProfile:
    """The threat profile on the chosen enterprise release (newest by default): actors in the
    order given (each once), their techniques sorted by id. Every unknown id or name is
    reported together in one :class:`NotFoundError`."""
    release = select_releases(store, attack_version, ENTERPRISE)[0]
    builder = _Builder(_ReleaseIndex(store, release))
    wanted: list[tuple[ActorKind, str]] = [
        *(("group", g) for g in groups),
        *(("campaign", c) for c in campaigns),
        *(("software", s) for s in software),
    ]
    _add_attack_actors(builder, wanted)
    _add_tactics(builder, tactics)
    _add_platforms(builder, platforms)
    for path in dict.fromkeys(Path(p).resolve() for p in layers):  # one file is one actor
        _add_layer(builder, path)
    if cves or kev:
        _add_cves(builder, store, cves, kev)
    return builder.profile()


# --- validation plan ----------------------------------------------------------------------


def validation_plan(
    atomics: AtomicIndex, technique: str, *, include_subtechniques: bool = False
) -> list[AtomicCheck]:
    """The Atomic Red Team tests of ``technique`` on every platform they support, by name
    (then GUID, as names repeat). A parent's plan leaves its sub-techniques' tests out unless
    asked: a detection of T1003 is not expected to fire on every variant its sub-techniques
    describe, and each sub-technique in a profile gets its own plan."""
    wanted = technique.strip().upper()
    tests = [
        t
        for t in atomics.tests.values()
        if t.technique == wanted or (include_subtechniques and t.technique.startswith(f"{wanted}."))
    ]
    tests.sort(key=lambda t: (t.technique, t.name.casefold(), t.guid))
    return [AtomicCheck(t.guid, t.name, t.technique, t.platforms) for t in tests]
