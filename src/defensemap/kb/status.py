"""What the store holds and what to run next."""

from __future__ import annotations

from dataclasses import dataclass, field

from defensemap.config import Settings
from defensemap.model.attack import DOMAINS, short_domain
from defensemap.store import attack as attack_store
from defensemap.store import mappings as mapping_store
from defensemap.store.db import open_store, schema_version


@dataclass(frozen=True)
class ReleaseStatus:
    domain: str
    version: str
    spec_version: str
    attack_spec_version: str | None
    imported_at: str
    source: str
    sha256: str
    objects: int
    relationships: int
    counts: dict[str, int]


@dataclass(frozen=True)
class MappingSetStatus:
    framework: str
    framework_version: str
    attack_version: str
    domain: str
    rows: int
    imported_at: str


@dataclass(frozen=True)
class StatusDoc:
    home: str
    store_path: str
    store_exists: bool
    store_bytes: int
    schema_version: int
    attack: list[ReleaseStatus] = field(default_factory=list)
    mappings: list[MappingSetStatus] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)


def status(settings: Settings) -> StatusDoc:
    path = settings.store_path
    releases, sets = [], []
    if path.exists():
        store = open_store(path)
        try:
            releases = attack_store.list_releases(store)
            sets = mapping_store.list_sets(store)
        finally:
            store.close()
    items = [
        ReleaseStatus(
            domain=r.domain,
            version=r.version,
            spec_version=r.spec_version,
            attack_spec_version=r.attack_spec_version,
            imported_at=r.imported_at,
            source=r.source,
            sha256=r.sha256,
            objects=sum(v for k, v in r.counts.items() if k != "relationship"),
            relationships=r.counts.get("relationship", 0),
            counts=r.counts,
        )
        for r in releases
    ]
    return StatusDoc(
        home=str(settings.home),
        store_path=str(path),
        store_exists=path.exists(),
        store_bytes=path.stat().st_size if path.exists() else 0,
        schema_version=schema_version(),
        attack=items,
        mappings=[
            MappingSetStatus(
                s.info.framework,
                s.info.framework_version,
                s.info.attack_version,
                s.info.domain,
                s.rows_stored,
                s.imported_at,
            )
            for s in sets
        ],
        next_steps=_next_steps({r.domain for r in releases}, bool(sets)),
    )


def _next_steps(loaded: set[str], has_mappings: bool) -> list[str]:
    steps = (
        []
        if has_mappings
        else [
            "No mappings yet (what counters each technique). Online: `defensemap sync --mappings`;"
            " offline: `defensemap import mappings FOLDER` with the Mappings Explorer files.",
        ]
    )
    if not loaded:
        return [
            "No ATT&CK data yet. Online: `defensemap sync` downloads the latest enterprise, "
            "mobile and ICS releases.",
            "Offline: `defensemap import attack enterprise-attack-18.1.json [...]` loads bundles "
            "you copied in (.json or .json.gz, STIX 2.0 or 2.1).",
            *steps,
        ]
    missing = [short_domain(d) for d in DOMAINS if d not in loaded]
    if missing:
        steps.insert(
            0,
            f"Not loaded: {', '.join(missing)}. Run `defensemap sync --domain "
            f"{missing[0]}` or `defensemap import attack FILE`.",
        )
    return steps
