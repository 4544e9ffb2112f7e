"""Small hand-made ATT&CK bundles for tests that must not depend on ../shared data.

The bundle is valid STIX 2.0 as the official ``enterprise-attack-NN.N.json`` files are: a
matrix whose external id names the domain, a tactic, a technique and its sub-technique (both
with kill-chain phases and ``mitre-attack`` references) and a ``subtechnique-of``
relationship. The ATT&CK version comes from the file name, as for the real files.
"""

from __future__ import annotations

import copy
import gzip
import sqlite3
from hashlib import sha256
from pathlib import Path
from typing import Any

import orjson

MATRIX_ID = "x-mitre-matrix--eafc1b4c-5e56-4965-bd4e-66a6a89c88cc"
TACTIC_ID = "x-mitre-tactic--4ca45d45-df4d-4613-8980-bac22d278fa5"
TECHNIQUE_ID = "attack-pattern--0042a9f5-f053-4769-b3ef-9ad018dfa298"
SUBTECHNIQUE_ID = "attack-pattern--1ecfdab8-7d59-4c98-95d4-dc41970f57fc"
RELATIONSHIP_ID = "relationship--0b4f5f64-1a8c-4a40-9d5d-5a7b2d0c1f3e"
COLLECTION_ID = "x-mitre-collection--1f5f1533-f617-4ca8-9ab4-6a02367fa019"

# Positions of the objects in ``small_bundle()["objects"]``.
MATRIX, TACTIC, TECHNIQUE, SUBTECHNIQUE, RELATIONSHIP = range(5)

_CREATED = "2020-01-14T17:18:32.126Z"
_MODIFIED = "2024-10-15T16:01:34.519Z"


def _ref(external_id: str, kind: str) -> dict[str, str]:
    return {
        "source_name": "mitre-attack",
        "url": f"https://attack.mitre.org/{kind}/{external_id.replace('.', '/')}",
        "external_id": external_id,
    }


def small_objects(label: str = "") -> list[dict[str, Any]]:
    """Five valid objects; ``label`` is appended to names so two releases can differ."""
    phase = [{"kill_chain_name": "mitre-attack", "phase_name": "lateral-movement"}]
    common = {"created": _CREATED, "modified": _MODIFIED, "x_mitre_version": "1.0"}
    return [
        {
            "type": "x-mitre-matrix",
            "id": MATRIX_ID,
            **common,
            "name": f"Enterprise ATT&CK{label}",
            "description": "The test matrix.",
            "external_references": [
                {
                    "source_name": "mitre-attack",
                    "url": "https://attack.mitre.org/matrices/enterprise",
                    "external_id": "enterprise-attack",
                }
            ],
            "tactic_refs": [TACTIC_ID],
            "x_mitre_domains": ["enterprise-attack"],
        },
        {
            "type": "x-mitre-tactic",
            "id": TACTIC_ID,
            **common,
            "name": f"Lateral Movement{label}",
            "description": "The adversary is trying to move through your environment.",
            "x_mitre_shortname": "lateral-movement",
            "external_references": [_ref("TA0008", "tactics")],
            "x_mitre_domains": ["enterprise-attack"],
        },
        {
            "type": "attack-pattern",
            "id": TECHNIQUE_ID,
            **common,
            "name": f"Remote Services{label}",
            "description": "Adversaries may use valid accounts to log into a service.",
            "kill_chain_phases": copy.deepcopy(phase),
            "external_references": [
                _ref("T1021", "techniques"),
                {"source_name": "Some Blog", "description": "A citation.", "url": "https://x"},
            ],
            "x_mitre_platforms": ["Windows", "Linux", "macOS"],
            "x_mitre_domains": ["enterprise-attack"],
            "x_mitre_is_subtechnique": False,
        },
        {
            "type": "attack-pattern",
            "id": SUBTECHNIQUE_ID,
            **common,
            "name": f"Remote Desktop Protocol{label}",
            "description": (
                "Adversaries may use valid accounts to log into a computer using RDP, a kind"
                " of [Remote Services](https://attack.mitre.org/techniques/T1021)."
            ),
            "kill_chain_phases": copy.deepcopy(phase),
            "external_references": [_ref("T1021.001", "techniques")],
            "x_mitre_platforms": ["Windows"],
            "x_mitre_domains": ["enterprise-attack"],
            "x_mitre_is_subtechnique": True,
        },
        {
            "type": "relationship",
            "id": RELATIONSHIP_ID,
            "created": _CREATED,
            "modified": _MODIFIED,
            "relationship_type": "subtechnique-of",
            "source_ref": SUBTECHNIQUE_ID,
            "target_ref": TECHNIQUE_ID,
        },
    ]


def small_bundle(label: str = "") -> dict[str, Any]:
    """A fresh STIX 2.0 bundle dict (safe to mutate)."""
    return {
        "type": "bundle",
        "id": "bundle--581128e1-dc57-5a73-8f13-f4eea559933f",
        "spec_version": "2.0",
        "objects": small_objects(label),
    }


def collection(version: str) -> dict[str, Any]:
    """The STIX 2.1 ``x-mitre-collection`` object that names the release version."""
    return {
        "type": "x-mitre-collection",
        "id": COLLECTION_ID,
        "spec_version": "2.1",
        "x_mitre_attack_spec_version": "3.2.0",
        "name": "Enterprise ATT&CK",
        "x_mitre_version": version,
        "created": _CREATED,
        "modified": _MODIFIED,
        "x_mitre_contents": [],
    }


def encode(bundle: Any) -> bytes:
    return orjson.dumps(bundle, option=orjson.OPT_INDENT_2)


def write_bundle(path: Path, bundle: Any) -> Path:
    """Write ``bundle`` as JSON, gzip-compressed when the name ends in ``.gz``."""
    data = encode(bundle)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def store_dump(store_file: Path) -> str:
    """Every row of the store (FTS shadow tables included) as SQL, opened read-only."""
    conn = sqlite3.connect(f"file:{store_file}?mode=ro", uri=True)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def store_digest(store_file: Path) -> str:
    return sha256(store_dump(store_file).encode()).hexdigest()


def release_counts(store_file: Path) -> dict[str, Any]:
    """Releases and per-release row counts: what an interrupted import must not change."""
    conn = sqlite3.connect(f"file:{store_file}?mode=ro", uri=True)
    try:
        releases = conn.execute(
            "SELECT id, domain, version, sha256, counts FROM attack_release ORDER BY id"
        ).fetchall()
        objects = conn.execute(
            "SELECT release_id, count(*) FROM attack_object GROUP BY release_id ORDER BY 1"
        ).fetchall()
        relationships = conn.execute(
            "SELECT release_id, count(*) FROM attack_relationship GROUP BY release_id ORDER BY 1"
        ).fetchall()
        search = conn.execute(
            "SELECT scope, count(*) FROM search_index GROUP BY scope ORDER BY 1"
        ).fetchall()
    finally:
        conn.close()
    return {
        "releases": releases,
        "objects": objects,
        "relationships": relationships,
        "search": search,
    }
