"""Parse ATT&CK STIX 2.0 / 2.1 bundles into :class:`AttackBundle` objects.

The loader checks every object's core fields with strict pydantic models (wrong types are
reported with their JSON pointer), keeps each object's full JSON, and reads the ATT&CK
domain and version from the bundle itself.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from defensemap.errors import SchemaError, SourceLocation
from defensemap.model.attack import (
    DOMAINS,
    KIND_BY_TYPE,
    RELATIONSHIP_TYPE,
    AttackBundle,
    AttackObject,
    Relationship,
    version_key,
)
from defensemap.sources.files import RawDocument, read_json
from defensemap.sources.validation import first_problem
from defensemap.util import paused_gc

_ID_RE = re.compile(r"^([a-z0-9][a-z0-9-]*)--[0-9a-fA-F-]{8,}\Z")
_VERSION_IN_NAME = re.compile(r"(?<![\d.])(\d{1,2}\.\d{1,2})(?=\.json)")
_ATTACK_SOURCES = ("mitre-attack", "mitre-mobile-attack", "mitre-ics-attack", "mitre-pre-attack")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class ExternalReference(_Strict):
    source_name: str
    url: str | None = None
    external_id: str | None = None
    description: str | None = None


class KillChainPhase(_Strict):
    kill_chain_name: str
    phase_name: str


class StixObjectModel(_Strict):
    """The fields defensemap reads; every other field is kept untouched in ``raw``."""

    type: str
    id: str
    created: str | None = None
    modified: str | None = None
    name: str | None = None
    description: str | None = None
    revoked: bool = False
    x_mitre_deprecated: bool = False
    x_mitre_version: str | None = None
    external_references: list[ExternalReference] = Field(default_factory=list)
    kill_chain_phases: list[KillChainPhase] = Field(default_factory=list)
    x_mitre_platforms: list[str] = Field(default_factory=list)
    x_mitre_domains: list[str] = Field(default_factory=list)
    x_mitre_is_subtechnique: bool = False
    x_mitre_shortname: str | None = None
    aliases: list[str] = Field(default_factory=list)
    x_mitre_aliases: list[str] = Field(default_factory=list)
    tactic_refs: list[str] = Field(default_factory=list)
    x_mitre_analytic_refs: list[str] = Field(default_factory=list)
    x_mitre_data_source_ref: str | None = None


class RelationshipModel(StixObjectModel):
    relationship_type: str
    source_ref: str
    target_ref: str


def attack_id_of(refs: list[dict[str, Any]] | list[ExternalReference]) -> str | None:
    """The ATT&CK id (T1021.007, G0016, DET0008 ...) from an object's external references."""
    for ref in refs:
        source = ref.source_name if isinstance(ref, ExternalReference) else ref.get("source_name")
        ext = ref.external_id if isinstance(ref, ExternalReference) else ref.get("external_id")
        if source in _ATTACK_SOURCES and ext:
            return str(ext)
    return None


def load_bundle(path: Path, attack_version: str | None = None) -> AttackBundle:
    """Read and parse one bundle file (``.json`` or ``.json.gz``)."""
    with paused_gc():
        return parse_bundle(read_json(path.resolve()), attack_version)


def parse_bundle(doc: RawDocument, attack_version: str | None = None) -> AttackBundle:
    """Turn decoded bundle JSON into an :class:`AttackBundle`, or raise :class:`SchemaError`."""
    data = doc.data
    if not isinstance(data, dict) or data.get("type") != "bundle":
        raise _schema(doc, "", "not a STIX bundle (expected an object with type 'bundle')")
    objects = data.get("objects")
    if not isinstance(objects, list):
        raise _schema(doc, "/objects", "bundle has no 'objects' list")
    if not objects:
        raise _schema(doc, "/objects", "bundle contains no objects")

    parsed: list[AttackObject] = []
    relationships: list[Relationship] = []
    warnings: list[str] = []
    seen: set[str] = set()
    unknown: Counter[str] = Counter()
    models: list[StixObjectModel] = []
    for index, raw in enumerate(objects):
        model = _validate(doc, index, raw)
        if model.id in seen:
            raise _schema(doc, f"/objects/{index}/id", f"duplicate id {model.id}", model.id)
        seen.add(model.id)
        models.append(model)
        if isinstance(model, RelationshipModel):
            relationships.append(_relationship(model, raw))
            continue
        kind = KIND_BY_TYPE.get(model.type, "unknown")
        if kind == "unknown":
            unknown[model.type] += 1
        parsed.append(_object(model, kind, raw))

    for type_name, count in sorted(unknown.items()):
        warnings.append(f"kept {count} object(s) of unknown type '{type_name}' as raw JSON")
    dangling = sum(1 for r in relationships if r.source_ref not in seen or r.target_ref not in seen)
    if dangling:
        warnings.append(f"{dangling} relationship(s) point to objects missing from the bundle")

    return AttackBundle(
        domain=_domain(doc, models),
        version=_version(doc, models, attack_version),
        spec_version=_spec_version(data, objects),
        attack_spec_version=_attack_spec_version(objects),
        source=doc.path,
        sha256=doc.sha256,
        objects=parsed,
        relationships=relationships,
        warnings=warnings,
    )


def _schema(
    doc: RawDocument, pointer: str, message: str, object_id: str | None = None
) -> SchemaError:
    return SchemaError(
        message,
        location=SourceLocation(path=doc.path, pointer=pointer or "/", object_id=object_id),
        hint="this is not a valid ATT&CK STIX bundle; download the official release again",
    )


def _validate(doc: RawDocument, index: int, raw: Any) -> StixObjectModel:
    pointer = f"/objects/{index}"
    if not isinstance(raw, dict):
        raise _schema(doc, pointer, f"expected an object, found {type(raw).__name__}")
    type_name = raw.get("type")
    model_cls = RelationshipModel if type_name == RELATIONSHIP_TYPE else StixObjectModel
    try:
        model = model_cls.model_validate(raw)
    except ValidationError as exc:
        where, message = first_problem(exc)
        object_id = raw.get("id") if isinstance(raw.get("id"), str) else None
        raise _schema(doc, f"{pointer}{where}", message, object_id) from None
    match = _ID_RE.match(model.id)
    if not match or match.group(1) != model.type:
        raise _schema(doc, f"{pointer}/id", f"malformed STIX id {model.id!r}", model.id)
    return model


def _object(model: StixObjectModel, kind: str, raw: dict[str, Any]) -> AttackObject:
    return AttackObject(
        stix_id=model.id,
        type=model.type,
        kind=kind,
        attack_id=attack_id_of(model.external_references),
        name=model.name,
        description=model.description,
        created=model.created,
        modified=model.modified,
        version=model.x_mitre_version,
        revoked=model.revoked,
        deprecated=model.x_mitre_deprecated,
        raw=raw,
    )


def _relationship(model: RelationshipModel, raw: dict[str, Any]) -> Relationship:
    return Relationship(
        stix_id=model.id,
        relationship_type=model.relationship_type,
        source_ref=model.source_ref,
        target_ref=model.target_ref,
        description=model.description,
        revoked=model.revoked,
        deprecated=model.x_mitre_deprecated,
        raw=raw,
    )


def _domain(doc: RawDocument, models: list[StixObjectModel]) -> str:
    """Domain from the matrix's external id, else the domain most objects declare."""
    for model in models:
        if model.type == "x-mitre-matrix":
            ext = attack_id_of(model.external_references)
            if ext in DOMAINS:
                return ext
    declared = Counter(d for m in models for d in m.x_mitre_domains if d in DOMAINS)
    if declared:
        return declared.most_common(1)[0][0]
    raise _schema(
        doc, "/objects", "cannot tell the ATT&CK domain: no matrix and no x_mitre_domains"
    )


def _version(doc: RawDocument, models: list[StixObjectModel], override: str | None) -> str:
    """``--attack-version`` wins, then the collection object, then the file name."""
    if override:
        return override
    for model in models:
        if model.type == "x-mitre-collection" and model.x_mitre_version:
            return model.x_mitre_version
    match = _VERSION_IN_NAME.search(Path(doc.path).name)
    if match:
        return match.group(1)
    raise SchemaError(
        "cannot tell the ATT&CK version: the bundle has no x-mitre-collection object "
        "and the file name carries no version",
        location=SourceLocation(path=doc.path),
        hint="pass --attack-version, e.g. --attack-version 18.1",
    )


def _spec_version(data: dict[str, Any], objects: list[dict[str, Any]]) -> str:
    """STIX 2.0 bundles say so on the bundle; 2.1 objects carry it themselves."""
    if isinstance(data.get("spec_version"), str):
        return str(data["spec_version"])
    for raw in objects:
        if isinstance(raw.get("spec_version"), str):
            return str(raw["spec_version"])
    return "2.0"


def _attack_spec_version(objects: list[dict[str, Any]]) -> str | None:
    versions = {
        v for raw in objects if isinstance(v := raw.get("x_mitre_attack_spec_version"), str)
    }
    return max(versions, key=version_key, default=None)


def dumps(raw: dict[str, Any]) -> str:
    """Compact JSON used to keep each object's raw form in the store."""
    return orjson.dumps(raw).decode()
